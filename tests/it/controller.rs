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
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;

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
        let child = Command::new("git")
            .args([
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--listen=127.0.0.1",
            ])
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
fn install_definition(settings: &HashMap<String, String>) {
    let crd = Envboot::new(settings).args(["controller", "crd"]).run();
    crd.assert_ok();
    let mut kubectl = Command::new("kubectl")
        .args(["apply", "-f", "-"])
        .env("KUBECONFIG", &settings["KUBECONFIG"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("kubectl");
    kubectl
        .stdin
        .take()
        .expect("stdin")
        .write_all(crd.stdout.as_bytes())
        .expect("write");
    assert!(
        kubectl.wait().expect("kubectl").success(),
        "kubectl apply of the CRD"
    );
    let established = Command::new("kubectl")
        .args(["wait", "--for=condition=Established", "--timeout=60s"])
        .args(["crd/environments.envboot.dev"])
        .env("KUBECONFIG", &settings["KUBECONFIG"])
        .output()
        .expect("kubectl wait");
    assert!(established.status.success(), "CRD established");
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
        install_definition(alone.settings());
    }
    let sandbox = sandbox();
    let settings = sandbox.settings();
    let client = kube_client(settings).await;
    let (heal, report, pushed) = (unique("ctlh"), unique("ctlr"), unique("ctlp"));
    let repo = Repo::new(&heal, &environment(&heal, "one"));
    repo.write(
        &format!("environments/{report}/environment.yaml"),
        &environment(&report, "one"),
    );
    repo.write(
        &format!("environments/{pushed}/environment.yaml"),
        &environment(&pushed, "one"),
    );
    repo.commit("three environments");
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
        wait_for(&api, name, "Ready at the first commit", 120, |e| {
            condition(e, "Ready").is_some_and(|c| c.0 == "True")
                && e.status
                    .as_ref()
                    .and_then(|s| s.last_applied_commit.as_deref())
                    == Some(first.as_str())
        })
        .await;
        assert_eq!(mode(&client, name).await, "one");
    }

    // a change by hand: healed at once under Heal...
    set_mode_by_hand(&client, &heal, "by-hand").await;
    let cm: Api<ConfigMap> = Api::namespaced(client.clone(), &heal);
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(cm, "settings", |c: Option<&ConfigMap>| {
            c.and_then(|c| c.data.as_ref())
                .and_then(|d| d.get("MODE"))
                .map(String::as_str)
                == Some("one")
        }),
    )
    .await
    .expect("the drift under Heal was healed")
    .expect("watch");

    // ...reported and kept under Report, until `envboot sync`
    set_mode_by_hand(&client, &report, "by-hand").await;
    let drifted = wait_for(&api, &report, "Drifted", 60, |e| {
        condition(e, "Drifted").is_some_and(|c| c.0 == "True")
    })
    .await;
    assert_eq!(
        condition(&drifted, "Ready"),
        Some(("False".into(), "DriftDetected".into()))
    );
    assert_eq!(mode(&client, &report).await, "by-hand");
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
}
