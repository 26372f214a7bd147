//! Shared helpers for the integration tests: the sandbox servers, throwaway environment
//! repositories, running the `envboot` binary, and reading AWS and Kubernetes directly.
//!
//! Every test uses its own environment name (and so its own tags, labels and namespaces), so
//! tests run in parallel against one sandbox without seeing each other.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The project's root folder.
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Starts the sandbox if it is not running (`scripts/sandbox up`, idempotent and locked) and
/// returns its settings (`.sandbox/env`).
pub fn sandbox() -> &'static HashMap<String, String> {
    static SETTINGS: OnceLock<HashMap<String, String>> = OnceLock::new();
    SETTINGS.get_or_init(|| {
        let root = project_root();
        let status = Command::new("bash")
            .arg(root.join("scripts/sandbox"))
            .arg("up")
            .status()
            .expect("run scripts/sandbox up");
        assert!(
            status.success(),
            "scripts/sandbox up failed; see its output above"
        );
        let dir = std::env::var("ENVBOOT_SANDBOX_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join(".sandbox"));
        let text = std::fs::read_to_string(dir.join("env")).expect("read the sandbox's env file");
        text.lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    })
}

/// A name unique to this test run: `prefix-<pid>-<n>`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A Git repository in a temporary folder holding the project's `modules/` and one environment.
pub struct Repo {
    pub dir: tempfile::TempDir,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

impl Repo {
    /// A repository with the project's modules and `environments/<name>/environment.yaml` = `env`.
    pub fn new(name: &str, env: &str) -> Repo {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_dir(&project_root().join("modules"), &dir.path().join("modules"));
        let repo = Repo { dir };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.write(&format!("environments/{name}/environment.yaml"), env);
        repo.commit("initial environment");
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, text: &str) {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel)).expect("read")
    }

    /// Replaces `from` by `to` in a file (which must contain it).
    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = self.read(rel);
        assert!(text.contains(from), "{rel} does not contain {from:?}");
        self.write(rel, &text.replacen(from, to, 1));
    }

    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args([
                "-c",
                "user.name=envboot tests",
                "-c",
                "user.email=tests@envboot.invalid",
            ])
            .args(args)
            .current_dir(self.path())
            .output()
            .expect("run git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Commits everything; returns the commit SHA.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }
}

/// What a run of the binary printed and returned.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn assert_ok(&self) -> &Run {
        assert_eq!(
            self.code, 0,
            "envboot failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Runs `envboot ARGS --repo <repo>` with the given settings as its environment.
pub fn envboot(repo: &Repo, settings: &HashMap<String, String>, args: &[&str]) -> Run {
    Command::new(env!("CARGO_BIN_EXE_envboot"))
        .args(args)
        .arg("--repo")
        .arg(repo.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .env("ENVBOOT_OUTPUT", "text")
        .envs(settings)
        .output()
        .expect("run envboot")
        .into()
}

/// Starts `envboot ARGS --output json --repo <repo>` with its JSON events on a pipe (stdout)
/// and its stderr discarded, for tests that act while it runs.
pub fn spawn_json(
    repo: &Repo,
    settings: &HashMap<String, String>,
    args: &[&str],
) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_envboot"))
        .args(args)
        .args(["--output", "json", "--repo"])
        .arg(repo.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .envs(settings)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn envboot")
}

/// An environment file for the sandbox: the network and web-tier modules, one release of the
/// `hello` chart and one ConfigMap, all in namespace `<name>-apps`.
pub fn sandbox_environment(name: &str) -> String {
    format!(
        r##"apiVersion: envboot.dev/v1alpha1
kind: Environment
name: {name}
cloud:
  provider: aws
  region: us-east-1
infrastructure:
  - name: network
    module: network
    inputs:
      cidr: 10.42.0.0/16
      zone_a: us-east-1a
      zone_b: us-east-1b
      subnet_a_cidr: 10.42.1.0/24
      subnet_b_cidr: 10.42.2.0/24
  - name: web
    module: web-tier
    inputs:
      vpc_id: ${{module.network.vpc_id}}
      subnet_id: ${{module.network.subnet_a_id}}
      ami: ami-03cf127a
      user_data: "#!/bin/sh\necho hello\n"
cluster:
  type: existing
  context: envboot-sandbox
releases:
  - name: hello
    chart: hello
    namespace: {name}-apps
    values:
      greeting: Hello from {name}
configMaps:
  - name: app-settings
    namespace: {name}-apps
    data:
      LOG_LEVEL: debug
      VPC_ID: ${{module.network.vpc_id}}
      WEB_URL: http://${{module.web.private_ip}}/
    files:
      - path: config/app.properties
"##
    )
}

/// The sandbox's AWS settings as an SDK configuration (the same ones envboot reads from its
/// environment).
pub fn ec2_config(settings: &HashMap<String, String>) -> aws_sdk_ec2::config::Builder {
    let creds = aws_sdk_ec2::config::Credentials::new(
        &settings["AWS_ACCESS_KEY_ID"],
        &settings["AWS_SECRET_ACCESS_KEY"],
        None,
        None,
        "sandbox",
    );
    aws_sdk_ec2::config::Builder::new()
        .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
        .region(aws_sdk_ec2::config::Region::new(
            settings["AWS_REGION"].clone(),
        ))
        .endpoint_url(&settings["AWS_ENDPOINT_URL"])
        .credentials_provider(creds)
}

/// An EC2 client for the sandbox.
pub async fn ec2(settings: &HashMap<String, String>) -> aws_sdk_ec2::Client {
    let config = ec2_config(settings).build();
    aws_sdk_ec2::Client::from_conf(config)
}

/// A Kubernetes client for the sandbox (its kubeconfig, context `envboot-sandbox`).
pub async fn kube_client(settings: &HashMap<String, String>) -> kube::Client {
    let kubeconfig =
        kube::config::Kubeconfig::read_from(&settings["KUBECONFIG"]).expect("read kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions {
            context: Some("envboot-sandbox".into()),
            ..Default::default()
        },
    )
    .await
    .expect("kubeconfig");
    kube::Client::try_from(config).expect("kube client")
}

fn tag_filter(key: &str, value: &str) -> aws_sdk_ec2::types::Filter {
    aws_sdk_ec2::types::Filter::builder()
        .name(format!("tag:{key}"))
        .values(value)
        .build()
}

/// Tags of a described resource as a map.
pub fn tags(tags: &[aws_sdk_ec2::types::Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
        .collect()
}

/// Everything in AWS carrying the environment's tag, as (type, address, id, tags).
pub async fn owned_aws(
    ec2: &aws_sdk_ec2::Client,
    env: &str,
) -> Vec<(String, String, String, BTreeMap<String, String>)> {
    let f = || tag_filter("envboot:environment", env);
    let mut out = Vec::new();
    for v in ec2
        .describe_vpcs()
        .filters(f())
        .send()
        .await
        .expect("DescribeVpcs")
        .vpcs()
    {
        let t = tags(v.tags());
        out.push((
            "vpc".into(),
            t["envboot:address"].clone(),
            v.vpc_id().unwrap_or_default().into(),
            t,
        ));
    }
    for s in ec2
        .describe_subnets()
        .filters(f())
        .send()
        .await
        .expect("DescribeSubnets")
        .subnets()
    {
        let t = tags(s.tags());
        out.push((
            "subnet".into(),
            t["envboot:address"].clone(),
            s.subnet_id().unwrap_or_default().into(),
            t,
        ));
    }
    for g in ec2
        .describe_security_groups()
        .filters(f())
        .send()
        .await
        .expect("DescribeSecurityGroups")
        .security_groups()
    {
        let t = tags(g.tags());
        out.push((
            "sg".into(),
            t["envboot:address"].clone(),
            g.group_id().unwrap_or_default().into(),
            t,
        ));
    }
    for g in ec2
        .describe_internet_gateways()
        .filters(f())
        .send()
        .await
        .expect("DescribeInternetGateways")
        .internet_gateways()
    {
        let t = tags(g.tags());
        out.push((
            "igw".into(),
            t["envboot:address"].clone(),
            g.internet_gateway_id().unwrap_or_default().into(),
            t,
        ));
    }
    for r in ec2
        .describe_route_tables()
        .filters(f())
        .send()
        .await
        .expect("DescribeRouteTables")
        .route_tables()
    {
        let t = tags(r.tags());
        out.push((
            "route-table".into(),
            t["envboot:address"].clone(),
            r.route_table_id().unwrap_or_default().into(),
            t,
        ));
    }
    let state = aws_sdk_ec2::types::Filter::builder()
        .name("instance-state-name")
        .values("pending")
        .values("running")
        .values("stopping")
        .values("stopped")
        .build();
    let instances = ec2
        .describe_instances()
        .filters(f())
        .filters(state)
        .send()
        .await
        .expect("DescribeInstances");
    for i in instances.reservations().iter().flat_map(|r| r.instances()) {
        let t = tags(i.tags());
        out.push((
            "instance".into(),
            t["envboot:address"].clone(),
            i.instance_id().unwrap_or_default().into(),
            t,
        ));
    }
    out.sort();
    out
}

/// A repository holding [`sandbox_environment`] for `name`, with its ConfigMap file.
pub fn sandbox_repo(name: &str) -> Repo {
    let repo = Repo::new(name, &sandbox_environment(name));
    repo.write(
        &format!("environments/{name}/config/app.properties"),
        "server.port=8080\ncache.size=64\n",
    );
    repo.commit("add the ConfigMap file");
    repo
}

/// Settings under which any AWS or Kubernetes call fails at once (closed port 9 on loopback):
/// a test of input errors that gets exit code 1 instead of its own code made an API call.
pub fn unreachable(dir: &Path) -> HashMap<String, String> {
    let kubeconfig = dir.join(".kubeconfig-unreachable");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:9'}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: envboot-sandbox\n  context: {cluster: c, user: u}\ncurrent-context: envboot-sandbox\n",
    )
    .expect("write kubeconfig");
    [
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "none"),
        ("AWS_SECRET_ACCESS_KEY", "none"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("KUBECONFIG", kubeconfig.to_str().expect("utf-8 path")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A sandbox of this test's own, stopped (its processes only) when dropped.
pub struct PrivateSandbox {
    pub dir: tempfile::TempDir,
    pub ports: Vec<(&'static str, u16)>,
    pub settings: HashMap<String, String>,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/sandbox")
}

impl PrivateSandbox {
    pub fn command(&self, verb: &str) -> std::process::ExitStatus {
        Command::new("bash")
            .arg(script())
            .arg(verb)
            .env("ENVBOOT_SANDBOX_DIR", self.dir.path())
            .envs(self.ports.iter().map(|(k, v)| (*k, v.to_string())))
            .stdout(Stdio::null())
            .status()
            .expect("run scripts/sandbox")
    }

    pub fn start() -> PrivateSandbox {
        Self::start_with(|_| {})
    }

    /// Starts one whose folder `prepare` filled first: `ca.crt` and `ca.key` there make the
    /// API server's certificate issued by that CA; `client-ca.crt` makes it accept client
    /// certificates that CA signed.
    pub fn start_with(prepare: impl FnOnce(&Path)) -> PrivateSandbox {
        let mut sandbox = PrivateSandbox {
            dir: tempfile::tempdir().expect("tempdir"),
            ports: ["ETCD_PORT", "ETCD_PEER_PORT", "APISERVER_PORT", "MOTO_PORT"]
                .into_iter()
                .map(|k| (k, free_port()))
                .collect(),
            settings: HashMap::new(),
        };
        prepare(sandbox.dir.path());
        assert!(sandbox.command("up").success(), "private sandbox up");
        let text =
            std::fs::read_to_string(sandbox.dir.path().join("env")).expect("sandbox settings");
        sandbox.settings = text
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        sandbox
    }

    /// Kills one of its servers (SIGKILL, by the PID the sandbox recorded) and starts it again.
    pub fn restart(&self, server: &str) {
        let pid = std::fs::read_to_string(self.dir.path().join(format!("{server}.pid")))
            .expect("pid file");
        let killed = Command::new("kill")
            .args(["-9", pid.trim()])
            .status()
            .expect("kill");
        assert!(killed.success(), "killed {server}");
        assert!(self.command("up").success(), "{server} restarted");
    }
}

impl Drop for PrivateSandbox {
    fn drop(&mut self) {
        self.command("down");
    }
}
