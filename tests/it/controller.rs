//! `envboot controller` against the sandbox: Environment resources following a Git repository
//! served by `git daemon` on 127.0.0.1, reconciled by controller processes (drift healed or
//! reported, `envboot sync`, the push webhook, Events, metrics, notifications), and two
//! replicas electing one leader, the standby finishing what a killed leader began.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use envboot::controller::Environment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use kube::runtime::wait::{await_condition, conditions};
use kube::ResourceExt;

use crate::common::*;

/// A `git daemon` serving the folder holding a test repository, stopped when dropped.
struct GitDaemon {
    child: Child,
    url: String,
}

impl GitDaemon {
    fn serve(repo: &Repo) -> GitDaemon {
        let port = free_port();
        let base = repo.path().parent().expect("parent");
        let name = repo.path().file_name().expect("name").to_string_lossy();
        // git-daemon itself, not `git daemon`: the `git` wrapper runs it as a child of its own,
        // which killing the wrapper would leave behind
        let exec_path = Command::new("git")
            .arg("--exec-path")
            .output()
            .expect("git --exec-path");
        let daemon = std::path::Path::new(String::from_utf8_lossy(&exec_path.stdout).trim())
            .join("git-daemon");
        let child = Command::new(daemon)
            .args(["--reuseaddr", "--export-all", "--listen=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(repo.path())
            .stderr(Stdio::null())
            .spawn()
            .expect("start git daemon");
        // ready when it accepts a connection
        let url = format!("git://127.0.0.1:{port}/{name}");
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return GitDaemon { child, url };
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
        panic!("git daemon did not listen on {port}");
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP receiver of notifications: every request body it got.
fn notification_receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/notify", listener.local_addr().expect("addr"));
    let bodies: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok() {
                seen.lock()
                    .expect("lock")
                    .push(String::from_utf8_lossy(&body).into_owned());
            }
            let _ = reader
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (url, bodies)
}

/// The environment file: one ConfigMap, `MODE` as given.
fn environment(name: &str, mode: &str) -> String {
    format!(
        "apiVersion: envboot.dev/v1alpha1\nkind: Environment\nname: {name}\n\
         cloud: {{provider: aws, region: us-east-1}}\n\
         cluster: {{type: existing, context: envboot-sandbox}}\n\
         configMaps:\n  - name: settings\n    namespace: {name}\n    data: {{MODE: {mode}}}\n"
    )
}

fn resource(name: &str, url: &str, environment: &str, interval: &str, drift: &str) -> Environment {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "envboot.dev/v1alpha1",
        "kind": "Environment",
        "metadata": {"name": name},
        "spec": {
            "source": {"url": url, "ref": {"branch": "main"}},
            "environment": environment,
            "interval": interval,
            "drift": drift,
        },
    }))
    .expect("Environment")
}

/// Installs the CustomResourceDefinition (alone on the cluster: it changes what it serves).
async fn install_definition(settings: &HashMap<String, String>) {
    let crd = Envboot::new(settings).args(["controller", "crd"]).run();
    crd.assert_ok();
    let client = kube_client(settings).await;
    apply_all(&client, &crd.stdout).await;
    let api: Api<CustomResourceDefinition> = Api::all(client);
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(
            api,
            "environments.envboot.dev",
            conditions::is_crd_established(),
        ),
    )
    .await
    .expect("the CRD established")
    .expect("watch");
}

/// Server-side applies every document of `yaml`, as `kubectl apply --server-side` does.
async fn apply_all(client: &kube::Client, yaml: &str) {
    use serde::Deserialize;
    let discovery = kube::Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    for document in serde_yaml_ng::Deserializer::from_str(yaml) {
        let value = serde_json::Value::deserialize(document).expect("a YAML document");
        if value.is_null() {
            continue;
        }
        let object: DynamicObject = serde_json::from_value(value).expect("an object");
        let types = object.types.clone().expect("apiVersion and kind");
        let gvk = GroupVersionKind::try_from(&types).expect("group, version, kind");
        let (resource, capabilities) = discovery.resolve_gvk(&gvk).expect("a kind served");
        let api: Api<DynamicObject> = match capabilities.scope {
            Scope::Namespaced => Api::namespaced_with(
                client.clone(),
                object.metadata.namespace.as_deref().unwrap_or("default"),
                &resource,
            ),
            Scope::Cluster => Api::all_with(client.clone(), &resource),
        };
        api.patch(
            &object.name_any(),
            &PatchParams::apply("envboot-tests").force(),
            &Patch::Apply(&object),
        )
        .await
        .expect("server-side apply");
    }
}

/// Deletes a namespace and waits until it is gone.
async fn delete_namespace(client: &kube::Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    api.delete(name, &DeleteParams::default())
        .await
        .expect("delete the namespace");
    tokio::time::timeout(
        Duration::from_secs(120),
        await_condition(api, name, |n: Option<&Namespace>| n.is_none()),
    )
    .await
    .expect("the namespace deleted")
    .expect("watch");
}

/// Starts a controller process watching `namespace`, its Lease there; logs on a pipe.
fn start_controller(
    settings: &HashMap<String, String>,
    namespace: &str,
    listen: &str,
    extra: &[&str],
) -> Child {
    Envboot::new(settings)
        .args(["controller", "run", "--namespace", namespace])
        .args(["--listen", listen, "--leader-election-namespace", namespace])
        .args(extra)
        .spawn_with_output()
}

fn condition(env: &Environment, type_: &str) -> Option<(String, String)> {
    env.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

async fn wait_for(
    api: &Api<Environment>,
    name: &str,
    what: &str,
    seconds: u64,
    test: impl Fn(&Environment) -> bool,
) -> Environment {
    let found = tokio::time::timeout(
        Duration::from_secs(seconds),
        await_condition(api.clone(), name, move |e: Option<&Environment>| {
            e.is_some_and(&test)
        }),
    )
    .await;
    match found {
        Ok(Ok(Some(env))) => env,
        _ => panic!(
            "Environment {name}: {what} within {seconds}s; it is {:?}",
            api.get(name).await.ok().and_then(|e| e.status)
        ),
    }
}

/// Waits until the Environment is Ready with `commit` applied.
async fn ready_at(api: &Api<Environment>, name: &str, commit: &str, seconds: u64) {
    let commit = commit.to_string();
    wait_for(
        api,
        name,
        &format!("Ready at {commit}"),
        seconds,
        move |e| {
            condition(e, "Ready").is_some_and(|c| c.0 == "True")
                && e.status
                    .as_ref()
                    .and_then(|s| s.last_applied_commit.as_deref())
                    == Some(commit.as_str())
        },
    )
    .await;
}

/// Changes both environments' ConfigMap by hand: `heal` (drift Heal) is healed, `report`
/// (drift Report) is marked Drifted, not Ready, and keeps the change.
async fn heals_one_and_reports_the_other(
    client: &kube::Client,
    api: &Api<Environment>,
    heal: &str,
    report: &str,
) {
    set_mode_by_hand(client, heal, "by-hand").await;
    until_mode(client, heal, "one", "the drift under Heal healed").await;
    set_mode_by_hand(client, report, "by-hand").await;
    let drifted = wait_for(api, report, "Drifted", 60, |e| {
        condition(e, "Drifted").is_some_and(|c| c.0 == "True")
    })
    .await;
    assert_eq!(
        condition(&drifted, "Ready"),
        Some(("False".into(), "DriftDetected".into()))
    );
    assert_eq!(mode(client, report).await, "by-hand");
}

async fn mode(client: &kube::Client, namespace: &str) -> String {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    api.get("settings")
        .await
        .ok()
        .and_then(|c| c.data)
        .and_then(|d| d.get("MODE").cloned())
        .unwrap_or_default()
}

async fn set_mode_by_hand(client: &kube::Client, namespace: &str, value: &str) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    api.patch(
        "settings",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"data": {"MODE": value}})),
    )
    .await
    .expect("edit the ConfigMap by hand");
}

/// Waits until the environment's ConfigMap holds `MODE: value`.
async fn until_mode(client: &kube::Client, namespace: &str, value: &str, what: &str) {
    let cm: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let found = tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(cm, "settings", |c: Option<&ConfigMap>| {
            c.and_then(|c| c.data.as_ref())
                .and_then(|d| d.get("MODE"))
                .is_some_and(|m| m == value)
        }),
    )
    .await;
    assert!(
        matches!(found, Ok(Ok(_))),
        "{what} within 60s: MODE is {:?}",
        mode(client, namespace).await
    );
}

async fn scrape(listen: &str) -> String {
    let listen = listen.to_string();
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(&listen).expect("connect to /metrics");
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("request");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("response");
        out
    })
    .await
    .expect("join")
}

fn post_push(listen: &str, secret: &[u8], body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("mac");
    mac.update(body.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    let mut s = std::net::TcpStream::connect(listen).expect("connect to /hook");
    write!(
        s,
        "POST /hook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         X-GitHub-Event: push\r\nX-Hub-Signature-256: sha256={signature}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("request");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("response");
    out
}

/// Stops a controller with SIGTERM (its graceful shutdown) and returns its log.
fn stop(child: Child) -> String {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let out = child.wait_with_output().expect("controller output");
    assert!(
        out.status.success(),
        "the controller stopped with {:?}:\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn namespace(client: &kube::Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).expect("ns");
    api.create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_controller_applies_heals_reports_drift_and_answers_a_push() {
    {
        let alone = sandbox_alone();
        install_definition(alone.settings()).await;
    }
    let sandbox = sandbox();
    let settings = sandbox.settings();
    let client = kube_client(settings).await;
    let (heal, report, pushed) = (unique("ctlh"), unique("ctlr"), unique("ctlp"));
    let sharded = unique("ctls");
    let repo = Repo::new(&heal, &environment(&heal, "one"));
    repo.write(
        &format!("environments/{report}/environment.yaml"),
        &environment(&report, "one"),
    );
    repo.write(
        &format!("environments/{pushed}/environment.yaml"),
        &environment(&pushed, "one"),
    );
    repo.write(
        &format!("environments/{sharded}/environment.yaml"),
        &environment(&sharded, "one"),
    );
    repo.commit("four environments");
    let git = GitDaemon::serve(&repo);
    let ns = unique("ctl");
    namespace(&client, &ns).await;
    let api: Api<Environment> = Api::namespaced(client.clone(), &ns);
    for (name, interval, drift) in [
        (&heal, "2s", "Heal"),
        (&report, "2s", "Report"),
        (&pushed, "1h", "Heal"),
    ] {
        api.create(
            &PostParams::default(),
            &resource(name, &git.url, name, interval, drift),
        )
        .await
        .expect("create the Environment");
    }
    // one in another shard: only a controller of that shard takes it
    let mut in_shard = resource(&sharded, &git.url, &sharded, "1h", "Heal");
    in_shard
        .metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert("envboot.dev/shard".into(), "other".into());
    api.create(&PostParams::default(), &in_shard)
        .await
        .expect("create the sharded Environment");
    let (notify_url, notifications) = notification_receiver();
    let secret_file = tempfile::NamedTempFile::new().expect("secret file");
    std::fs::write(secret_file.path(), "push-s3cret\n").expect("write secret");
    let listen = format!("127.0.0.1:{}", free_port());
    let controller = start_controller(
        settings,
        &ns,
        &listen,
        &[
            "--notify",
            &format!("webhook={notify_url}"),
            "--webhook-secret-file",
            &secret_file.path().display().to_string(),
        ],
    );

    // both applied from Git, Ready, with the commit
    let first = repo.git(&["rev-parse", "HEAD"]);
    for name in [&heal, &report, &pushed] {
        ready_at(&api, name, &first, 120).await;
        assert_eq!(mode(&client, name).await, "one");
    }

    // a change by hand: healed at once under Heal, reported and kept under Report (until
    // `envboot sync`)
    heals_one_and_reports_the_other(&client, &api, &heal, &report).await;
    let sync = Envboot::new(settings)
        .args(["sync", &report, "--namespace", &ns, "--timeout", "60s"])
        .run();
    sync.assert_ok();
    assert!(
        sync.stdout.contains("True (SyncApplied)"),
        "{}",
        sync.stdout
    );
    assert_eq!(mode(&client, &report).await, "one");

    // a new commit is picked up at once on a signed push, though the interval is an hour
    repo.write(
        &format!("environments/{pushed}/environment.yaml"),
        &environment(&pushed, "two"),
    );
    let second = repo.commit("mode two");
    let url = git.url.clone();
    let listen_for_push = listen.clone();
    let unsigned = tokio::task::spawn_blocking(move || {
        post_push(
            &listen_for_push,
            b"wrong",
            &format!(r#"{{"repository":{{"clone_url":"{url}"}}}}"#),
        )
    })
    .await
    .expect("join");
    assert!(unsigned.starts_with("HTTP/1.1 401"), "{unsigned}");
    let (url, listen_for_push) = (git.url.clone(), listen.clone());
    let accepted = tokio::task::spawn_blocking(move || {
        post_push(
            &listen_for_push,
            b"push-s3cret",
            &format!(r#"{{"ref":"refs/heads/main","repository":{{"clone_url":"{url}.git"}}}}"#),
        )
    })
    .await
    .expect("join");
    assert!(accepted.starts_with("HTTP/1.1 202"), "{accepted}");
    assert!(
        accepted.contains("queued a reconcile of 3 Environment(s)"),
        "{accepted}"
    );
    wait_for(&api, &pushed, "applied at the pushed commit", 60, |e| {
        e.status
            .as_ref()
            .and_then(|s| s.last_applied_commit.as_deref())
            == Some(second.as_str())
    })
    .await;
    assert_eq!(mode(&client, &pushed).await, "two");

    // the other shard's Environment was left alone, until its shard's controller runs
    let untouched = api.get(&sharded).await.expect("the sharded Environment");
    assert_eq!(
        untouched.status, None,
        "the unsharded controller reconciled it"
    );
    let shard_listen = format!("127.0.0.1:{}", free_port());
    let shard = start_controller(settings, &ns, &shard_listen, &["--shard", "other"]);
    wait_for(&api, &sharded, "Ready, reconciled by its shard", 60, |e| {
        condition(e, "Ready").is_some_and(|c| c.0 == "True")
    })
    .await;
    assert_eq!(mode(&client, &sharded).await, "one");
    stop(shard);

    // Events on the Environment: each apply with its commit, author and what ran it
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &ns);
    let events = events
        .list(&Default::default())
        .await
        .expect("events")
        .items;
    let about = |name: &str, reason: &str| {
        events.iter().any(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                && e.reason.as_deref() == Some(reason)
                && e.note
                    .as_deref()
                    .is_some_and(|n| n.contains("by envboot tests <tests@envboot.invalid>"))
        })
    };
    assert!(about(&heal, "DriftHealed"), "{events:#?}");
    assert!(about(&report, "DriftDetected"));
    assert!(about(&report, "SyncApplied"));
    assert!(about(&pushed, "Applied"));

    // metrics
    let metrics = scrape(&listen).await;
    for line in [
        format!(
            r#"envboot_reconciles_total{{namespace="{ns}",name="{heal}",result="drift_healed"}}"#
        ),
        format!(r#"envboot_reconciles_total{{namespace="{ns}",name="{report}",result="drifted"}}"#),
        format!(r#"envboot_drift_detected_total{{namespace="{ns}",name="{heal}"}}"#),
        format!(r#"envboot_environment_ready{{namespace="{ns}",name="{pushed}"}} 1"#),
        "envboot_controller_leader 1".to_string(),
    ] {
        assert!(metrics.contains(&line), "{line} not in:\n{metrics}");
    }

    // notifications: the generic format, with commit and author
    let sent = notifications.lock().expect("lock").clone();
    let parsed: Vec<serde_json::Value> = sent
        .iter()
        .filter_map(|b| serde_json::from_str(b).ok())
        .collect();
    assert!(
        parsed.iter().any(|n| n["event"] == "drift_healed"
            && n["environment"] == heal.as_str()
            && n["commit"] == first.as_str()
            && n["author"] == "envboot tests <tests@envboot.invalid>"),
        "{sent:#?}"
    );
    assert!(parsed
        .iter()
        .any(|n| n["event"] == "drifted" && n["environment"] == report.as_str()));

    // a graceful stop gives the leader Lease up at once
    let logs = stop(controller);
    assert!(
        logs.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "{logs}"
    );
    let lease: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let lease = lease
        .get("envboot-controller")
        .await
        .expect("the leader Lease");
    assert_eq!(lease.spec.and_then(|s| s.holder_identity), None);

    // clean up: the Environments (no controller would find their repository again), then
    // what each environment made
    delete_namespace(&client, &ns).await;
    for name in [&heal, &report, &pushed, &sharded] {
        Envboot::new(settings)
            .args(["destroy", name])
            .repo(&repo)
            .run()
            .assert_ok();
    }
}

/// A chart whose install takes a while: a pre-install hook Job sleeping, then a ConfigMap.
const SLOW_HOOK: &str = r#"apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: envboot.local/busybox:1.35
          imagePullPolicy: Never
          command: [sh, -c, 'sleep 15']
"#;

async fn leader(client: &kube::Client, namespace: &str) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    leases
        .get_opt("envboot-controller")
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

#[tokio::test(flavor = "multi_thread")]
async fn as_pods_two_replicas_elect_a_leader_and_the_standby_finishes_what_a_killed_leader_began() {
    {
        let alone = sandbox_alone();
        install_definition(alone.settings()).await;
    }
    let sandbox = sandbox();
    let settings = sandbox.settings();
    let client = kube_client(settings).await;

    // the image, from the binary under test
    let image = Command::new("bash")
        .arg(project_root().join("scripts/controller-image"))
        .arg(env!("CARGO_BIN_EXE_envboot"))
        .envs(
            settings
                .iter()
                .filter(|(k, _)| k.starts_with("ENVBOOT_SANDBOX")),
        )
        .output()
        .expect("scripts/controller-image");
    assert!(
        image.status.success(),
        "{}",
        String::from_utf8_lossy(&image.stderr)
    );

    // two releases of the chart, one replica each (host network: one port each), one Lease
    let ns = unique("ctlpods");
    namespace(&client, &ns).await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns);
    let kubeconfig = std::fs::read_to_string(&settings["KUBECONFIG"]).expect("kubeconfig");
    let secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "kubeconfig"},
        "stringData": {"kubeconfig": kubeconfig},
    }))
    .expect("Secret");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create the kubeconfig Secret");
    let releases = [unique("ctla"), unique("ctlb")];
    let mut ports = Vec::new();
    for release in &releases {
        let port = free_port();
        ports.push(port);
        let values = tempfile::NamedTempFile::new().expect("values");
        let env: Vec<serde_json::Value> = [
            "AWS_ENDPOINT_URL",
            "AWS_REGION",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_EC2_METADATA_DISABLED",
        ]
        .iter()
        .filter_map(|k| {
            settings
                .get(*k)
                .map(|v| serde_json::json!({"name": k, "value": v}))
        })
        .collect();
        let values_json = serde_json::json!({
            "replicas": 1,
            "image": {"pullPolicy": "Never"},
            "hostNetwork": true,
            "port": port,
            "watchNamespace": ns,
            "kubeconfigSecret": "kubeconfig",
            "leaderElection": {"lease": "4s"},
            "terminationGracePeriodSeconds": 5,
            "env": env,
            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
        });
        std::fs::write(values.path(), values_json.to_string()).expect("values");
        let rendered = Envboot::new(settings)
            .args([
                "template",
                release,
                &project_root()
                    .join("deploy/envboot-controller")
                    .display()
                    .to_string(),
            ])
            .args([
                "--namespace",
                &ns,
                "-f",
                &values.path().display().to_string(),
            ])
            .run();
        rendered.assert_ok();
        apply_all(&client, &rendered.stdout).await;
    }

    // an environment with a slow install, followed from a git daemon
    let name = unique("ctlslow");
    let repo = Repo::new(
        &name,
        &format!(
            "apiVersion: envboot.dev/v1alpha1\nkind: Environment\nname: {name}\n\
             cloud: {{provider: aws, region: us-east-1}}\n\
             cluster: {{type: existing, context: envboot-sandbox}}\n\
             releases:\n  - name: app\n    chart: slow\n    namespace: {name}\n    timeout: 120s\n"
        ),
    );
    repo.write(
        "modules/slow/Chart.yaml",
        "apiVersion: v2\nname: slow\nversion: 0.1.0\n",
    );
    repo.write("modules/slow/templates/migrate.yaml", SLOW_HOOK);
    repo.write(
        "modules/slow/templates/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-config\ndata:\n  ready: \"yes\"\n",
    );
    // and two small ones beside it: drift healed in one, reported in the other
    let (healed, reported) = (unique("ctlph"), unique("ctlpr"));
    for small in [&healed, &reported] {
        repo.write(
            &format!("environments/{small}/environment.yaml"),
            &environment(small, "one"),
        );
    }
    let commit = repo.commit("a slow app and two small environments");
    let git = GitDaemon::serve(&repo);
    let api: Api<Environment> = Api::namespaced(client.clone(), &ns);
    for (env, interval, drift) in [
        (&name, "5s", "Heal"),
        (&healed, "2s", "Heal"),
        (&reported, "2s", "Report"),
    ] {
        api.create(
            &PostParams::default(),
            &resource(env, &git.url, env, interval, drift),
        )
        .await
        .expect("create the Environment");
    }

    // the leader starts the apply; it is killed in the middle of it
    wait_for(&api, &name, "Reconciling (the apply running)", 180, |e| {
        condition(e, "Reconciling").is_some_and(|c| c.0 == "True")
    })
    .await;
    let first = leader(&client, &ns)
        .await
        .expect("a leader holds the Lease");
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), &ns);
    let now = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };
    pods.delete(&first, &now)
        .await
        .expect("kill the leader's pod");

    // the other replica takes over and finishes: Ready at the commit, applied by it
    ready_at(&api, &name, &commit, 300).await;
    let second = leader(&client, &ns)
        .await
        .expect("a leader holds the Lease");
    assert_ne!(second, first, "the Lease moved to the standby");
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &ns);
    let applied_by: Vec<String> = events
        .list(&Default::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("Applied"))
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name.as_str()))
        .filter_map(|e| e.reporting_instance)
        .collect();
    assert_eq!(
        applied_by,
        std::slice::from_ref(&second),
        "one apply, by the new leader"
    );
    // nothing twice: one ConfigMap, the hook Job deleted once it succeeded
    let configs: Api<ConfigMap> = Api::namespaced(client.clone(), &name);
    let ours = configs
        .list(&labelled(&name))
        .await
        .expect("configmaps")
        .items;
    assert_eq!(ours.len(), 1, "{ours:?}");
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(client.clone(), &name);
    assert!(jobs
        .list(&Default::default())
        .await
        .expect("jobs")
        .items
        .is_empty());

    // the small ones: Ready at the commit; a change by hand healed in one, reported in the other
    for small in [&healed, &reported] {
        ready_at(&api, small, &commit, 120).await;
        assert_eq!(mode(&client, small).await, "one");
    }
    heals_one_and_reports_the_other(&client, &api, &healed, &reported).await;
    let events = events
        .list(&Default::default())
        .await
        .expect("events")
        .items;
    let by_leader = |env: &str, reason: &str| {
        events.iter().any(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(env)
                && e.reason.as_deref() == Some(reason)
                && e.reporting_instance.as_deref() == Some(second.as_str())
        })
    };
    assert!(by_leader(&healed, "DriftHealed"), "{events:#?}");
    assert!(by_leader(&reported, "DriftDetected"), "{events:#?}");

    // the leader's metrics, on its pod's port
    let pod = pods.get(&second).await.expect("the leader's pod");
    let port = pod
        .spec
        .and_then(|s| s.containers.into_iter().next())
        .and_then(|c| c.ports)
        .and_then(|p| p.into_iter().next())
        .map(|p| p.container_port)
        .expect("port");
    let metrics = scrape(&format!("127.0.0.1:{port}")).await;
    for line in [
        "envboot_controller_leader 1".to_string(),
        format!(r#"envboot_environment_ready{{namespace="{ns}",name="{name}"}} 1"#),
        format!(
            r#"envboot_reconciles_total{{namespace="{ns}",name="{healed}",result="drift_healed"}}"#
        ),
        format!(r#"envboot_drift_detected_total{{namespace="{ns}",name="{healed}"}}"#),
        format!(
            r#"envboot_reconciles_total{{namespace="{ns}",name="{reported}",result="drifted"}}"#
        ),
        format!(r#"envboot_environment_ready{{namespace="{ns}",name="{reported}"}} 0"#),
    ] {
        assert!(metrics.contains(&line), "{line} not in:\n{metrics}");
    }

    // clean up: the controllers (cluster-scoped RBAC by label), then what the environment made
    delete_namespace(&client, &ns).await;
    for release in &releases {
        let selector =
            ListParams::default().labels(&format!("app.kubernetes.io/instance={release}"));
        let all = DeleteParams::default();
        let roles: Api<ClusterRole> = Api::all(client.clone());
        roles
            .delete_collection(&all, &selector)
            .await
            .expect("delete ClusterRoles");
        let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
        bindings
            .delete_collection(&all, &selector)
            .await
            .expect("delete ClusterRoleBindings");
        let roles: Api<Role> = Api::namespaced(client.clone(), "default");
        roles
            .delete_collection(&all, &selector)
            .await
            .expect("delete Roles");
        let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), "default");
        bindings
            .delete_collection(&all, &selector)
            .await
            .expect("delete RoleBindings");
    }
    for env in [&name, &healed, &reported] {
        Envboot::new(settings)
            .args(["destroy", env])
            .repo(&repo)
            .run()
            .assert_ok();
    }
}

#[test]
fn the_chart_carries_the_definition_the_binary_prints() {
    let printed = Envboot::new(&HashMap::new())
        .args(["controller", "crd"])
        .run();
    printed.assert_ok();
    let chart = std::fs::read_to_string(
        project_root().join("deploy/envboot-controller/crds/environments.envboot.dev.yaml"),
    )
    .expect("the chart's CRD");
    assert_eq!(
        chart, printed.stdout,
        "regenerate it: envboot controller crd > deploy/envboot-controller/crds/environments.envboot.dev.yaml"
    );
}
