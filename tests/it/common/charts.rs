//! Chart repositories on 127.0.0.1 for the tests: a Helm HTTP repository (charts packaged and
//! indexed by the real `helm package` and `helm repo index`, served by Python's http.server)
//! and an OCI registry (Debian's `docker-registry`, charts pushed by `helm push --plain-http`).
//! Each test starts its own on free ports; they stop (their processes only) when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// The servers of one test, with the `helm` that fills them.
pub struct ChartServers {
    pub dir: tempfile::TempDir,
    pub helm: String,
    /// `http://127.0.0.1:<port>`: the Helm repository.
    pub repository: String,
    /// `oci://127.0.0.1:<port>/charts`: the registry.
    pub registry: String,
    http: Option<Child>,
    oci: Option<Child>,
}

impl ChartServers {
    /// Starts both servers, or says why they cannot run here (no helm, no docker-registry).
    pub fn start() -> Result<ChartServers, String> {
        let helm = super::helm()?;
        if Command::new("docker-registry")
            .arg("--version")
            .output()
            .is_err()
        {
            return Err("docker-registry is not installed (scripts/sandbox up installs it)".into());
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        std::fs::create_dir_all(dir.path().join("repo")).map_err(|e| e.to_string())?;
        let (http_port, oci_port) = (free_port(), free_port());
        let mut servers = ChartServers {
            repository: format!("http://127.0.0.1:{http_port}"),
            registry: format!("oci://127.0.0.1:{oci_port}/charts"),
            dir,
            helm,
            http: None,
            oci: None,
        };
        servers.index();
        servers.http = Some(
            Command::new("python3")
                .args([
                    "-m",
                    "http.server",
                    &http_port.to_string(),
                    "--bind",
                    "127.0.0.1",
                ])
                .current_dir(servers.repo_dir())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("python3 -m http.server: {e}"))?,
        );
        servers.oci = Some(start_registry(servers.dir.path(), oci_port, "")?);
        await_port(http_port)?;
        Ok(servers)
    }

    pub fn repo_dir(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    pub fn run_helm(&self, args: &[&str]) -> String {
        run_helm_in(&self.helm, self.dir.path(), args)
    }

    /// `helm repo index` of the repository folder.
    fn index(&self) {
        let dir = self.repo_dir();
        self.run_helm(&[
            "repo",
            "index",
            dir.to_str().expect("utf-8"),
            "--url",
            &self.repository,
        ]);
    }

    /// Packages the chart folder `chart` (`helm package`), publishes it in the Helm repository
    /// (indexed again) and pushes it to the registry; returns the archive's bytes.
    pub fn publish(&self, chart: &Path) -> Vec<u8> {
        let staging = self.dir.path().join("package");
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).expect("mkdir");
        let out = self.run_helm(&[
            "package",
            chart.to_str().expect("utf-8"),
            "-d",
            staging.to_str().expect("utf-8"),
        ]);
        let archive = std::fs::read_dir(&staging)
            .expect("read the package folder")
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "tgz"))
            .unwrap_or_else(|| panic!("helm package wrote no archive: {out}"));
        let name = archive.file_name().expect("file name");
        std::fs::copy(&archive, self.repo_dir().join(name)).expect("copy the archive");
        self.index();
        self.run_helm(&[
            "push",
            archive.to_str().expect("utf-8"),
            &self.registry,
            "--plain-http",
        ]);
        std::fs::read(&archive).expect("read the archive")
    }

    /// Stops both servers.
    pub fn stop(&mut self) {
        for child in [self.http.take(), self.oci.take()].into_iter().flatten() {
            stop(child);
        }
    }
}

impl Drop for ChartServers {
    fn drop(&mut self) {
        self.stop();
    }
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs `helm` with `args`, its configuration, cache, data, registry logins and Docker
/// configuration all under `home` (nothing of this machine's user is read or written); panics
/// if it fails. Returns what it printed.
pub fn run_helm_in(helm: &str, home: &Path, args: &[&str]) -> String {
    let out = Command::new(helm)
        .args(args)
        .env("HELM_CONFIG_HOME", home.join("helm-config"))
        .env("HELM_CACHE_HOME", home.join("helm-cache"))
        .env("HELM_DATA_HOME", home.join("helm-data"))
        .env(
            "HELM_REGISTRY_CONFIG",
            home.join("helm-config/registry.json"),
        )
        .env("DOCKER_CONFIG", home.join("docker"))
        .output()
        .expect("run helm");
    // (a password among the arguments is not printed)
    let shown: Vec<&&str> = args.iter().take_while(|a| **a != "--password").collect();
    assert!(
        out.status.success(),
        "helm {shown:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts Debian's docker-registry on 127.0.0.1:`port`, storing under `dir/registry`, with
/// `extra` appended to its configuration (an `auth:` section, say), and waits until it listens.
pub fn start_registry(dir: &Path, port: u16, extra: &str) -> Result<Child, String> {
    if Command::new("docker-registry")
        .arg("--version")
        .output()
        .is_err()
    {
        return Err("docker-registry is not installed (scripts/sandbox up installs it)".into());
    }
    let config = dir.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog: {{level: error}}\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete: {{enabled: true}}\nhttp:\n  addr: 127.0.0.1:{port}\n{extra}",
            dir.join("registry").display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("docker-registry: {e}"))?;
    if let Err(e) = await_port(port) {
        stop(child);
        return Err(e);
    }
    Ok(child)
}

/// An environment of the sandbox's cluster with one release `hello` of `chart` (a folder's
/// name, or a `{repository, name, version}` flow map) in namespace `name`.
pub fn chart_environment(name: &str, chart: &str) -> String {
    format!(
        "apiVersion: envboot.dev/v1alpha1\nkind: Environment\nname: {name}\ncloud: {{provider: aws, region: us-east-1}}\ncluster: {{type: existing, context: envboot-sandbox}}\nreleases:\n  - name: hello\n    chart: {chart}\n    namespace: {name}\n    values:\n      greeting: Hello from {name}\n"
    )
}

/// `settings` with chart archives cached in `cache`.
pub fn with_chart_cache(
    settings: std::collections::HashMap<String, String>,
    cache: &Path,
) -> std::collections::HashMap<String, String> {
    let mut s = settings;
    s.insert(
        "ENVBOOT_CHART_CACHE".into(),
        cache.to_str().expect("utf-8").into(),
    );
    s
}

/// Waits until something accepts connections on `port` (a server just started), for at most
/// 30 seconds.
fn await_port(port: u16) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("nothing listens on 127.0.0.1:{port} after 30 s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
