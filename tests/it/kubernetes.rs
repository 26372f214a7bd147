//! The Kubernetes layer against the sandbox's real kube-apiserver: drift detection and healing,
//! field-manager conflicts, no false drift from server-side normalisation, and the cost of a
//! no-op plan (requests per kind, not per object).

use crate::common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};

/// The number after `Kubernetes` in the CLI's `API calls:` line.
fn kube_requests(stdout: &str) -> u64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("API calls:"))
        .expect("API calls line");
    let after = line.split("Kubernetes ").nth(1).expect("Kubernetes count");
    after
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a number")
}

/// An environment with only Kubernetes objects: `n` ConfigMaps and the hello chart.
fn cluster_only(name: &str, n: usize, chart_values: &str) -> String {
    let mut env = format!(
        "apiVersion: envboot.dev/v1alpha1\nkind: Environment\nname: {name}\ncloud: {{provider: aws, region: us-east-1}}\ncluster: {{type: existing, context: envboot-sandbox}}\nreleases:\n  - name: hello\n    chart: hello\n    namespace: {name}\n    values: {chart_values}\nconfigMaps:\n"
    );
    for i in 0..n {
        env.push_str(&format!(
            "  - {{name: settings-{i}, namespace: {name}, data: {{LOG_LEVEL: debug}}}}\n"
        ));
    }
    env
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_is_detected_and_apply_heals_it() {
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("drift");
    let repo = Repo::new(&name, &cluster_only(&name, 1, "{}"));
    envboot(&repo, settings, &["apply", &name]).assert_ok();
    let run = envboot(&repo, settings, &["drift", &name]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);

    // Someone edits the ConfigMap by hand (an imperative update, as `kubectl edit` does).
    let client = kube_client(settings).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &name);
    let patch = serde_json::json!({"data": {"LOG_LEVEL": "trace", "EXTRA": "x"}});
    cms.patch(
        "settings-0",
        &PatchParams {
            field_manager: Some("kubectl-edit".into()),
            ..Default::default()
        },
        &Patch::Merge(&patch),
    )
    .await
    .expect("edit by hand");

    let run = envboot(&repo, settings, &["drift", &name]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains(&format!("~ ConfigMap {name}/settings-0")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("~ data.LOG_LEVEL: \"trace\" -> \"debug\""),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("EXTRA"),
        "a field envboot does not own is not drift: {}",
        run.stdout
    );

    envboot(&repo, settings, &["apply", &name]).assert_ok();
    let cm = cms.get("settings-0").await.expect("cm");
    let data = cm.data.unwrap_or_default();
    assert_eq!(data["LOG_LEVEL"], "debug", "healed");
    assert_eq!(
        data["EXTRA"], "x",
        "the other manager's own field is left alone"
    );
    assert_eq!(envboot(&repo, settings, &["drift", &name]).code, 0);

    envboot(&repo, settings, &["destroy", &name]).assert_ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_field_another_applier_owns_is_a_conflict_unless_forced() {
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("conflict");
    let repo = Repo::new(&name, &cluster_only(&name, 1, "{}"));
    envboot(&repo, settings, &["apply", &name]).assert_ok();

    // Another declarative tool takes the field over with server-side apply.
    let client = kube_client(settings).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &name);
    let theirs = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings-0"}, "data": {"LOG_LEVEL": "warn"}});
    cms.patch(
        "settings-0",
        &PatchParams::apply("other-tool").force(),
        &Patch::Apply(&theirs),
    )
    .await
    .expect("other tool applies");

    let run = envboot(&repo, settings, &["plan", &name]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "ConfigMap {name}/settings-0: another field manager owns fields"
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("other-tool") && run.stderr.contains("--force-conflicts"),
        "{}",
        run.stderr
    );
    assert_eq!(
        cms.get("settings-0")
            .await
            .expect("cm")
            .data
            .unwrap_or_default()["LOG_LEVEL"],
        "warn",
        "untouched"
    );

    envboot(&repo, settings, &["apply", &name, "--force-conflicts"]).assert_ok();
    assert_eq!(
        cms.get("settings-0")
            .await
            .expect("cm")
            .data
            .unwrap_or_default()["LOG_LEVEL"],
        "debug"
    );

    envboot(&repo, settings, &["destroy", &name]).assert_ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn values_the_server_normalises_are_not_drift() {
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("normal");
    // CPU "0.5" is stored as "500m", 1Gi memory written as 1024Mi is stored as "1Gi".
    let repo = Repo::new(
        &name,
        &cluster_only(
            &name,
            0,
            "{resources: {limits: {cpu: '0.5', memory: 1024Mi}}}",
        ),
    );
    envboot(&repo, settings, &["apply", &name]).assert_ok();
    let client = kube_client(settings).await;
    let deployment = Api::<Deployment>::namespaced(client, &name)
        .get("hello")
        .await
        .expect("deployment");
    let limits = deployment
        .spec
        .and_then(|s| s.template.spec)
        .map(|s| s.containers[0].resources.clone())
        .expect("resources");
    let cpu = limits.and_then(|r| r.limits).expect("limits")["cpu"]
        .0
        .clone();
    assert_eq!(cpu, "500m", "the server normalised the quantity");

    let run = envboot(&repo, settings, &["plan", &name]);
    run.assert_ok();
    assert!(run.stdout.contains("No changes."), "{}", run.stdout);
    envboot(&repo, settings, &["destroy", &name]).assert_ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_no_op_plan_costs_the_same_for_3_or_30_objects() {
    let shared = sandbox();
    let settings = shared.settings();
    let mut requests = Vec::new();
    for n in [3, 30] {
        let name = unique(&format!("cost{n}"));
        let repo = Repo::new(&name, &cluster_only(&name, n, "{}"));
        envboot(&repo, settings, &["apply", &name]).assert_ok();
        let run = envboot(&repo, settings, &["plan", &name]);
        run.assert_ok();
        assert!(run.stdout.contains("No changes."), "{}", run.stdout);
        assert!(
            run.stdout.contains("Kubernetes") && run.stdout.trim_end().ends_with("(0 writes)."),
            "{}",
            run.stdout
        );
        requests.push(kube_requests(&run.stdout));
        envboot(&repo, settings, &["destroy", &name]).assert_ok();
    }
    assert_eq!(
        requests[0], requests[1],
        "requests must not grow with the number of objects: {requests:?}"
    );
    // the inventory, the namespaces, one discovery per group-version (v1, apps/v1) and one
    // list per kind the inventory names (Namespace, ConfigMap, Deployment, Service)
    assert!(
        requests[0] <= 8,
        "the inventory, the namespaces, one discovery per group-version and one list per kind \
         of the environment: {requests:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_runs_never_hold_the_lock_at_once_and_a_dead_runs_lock_expires() {
    use std::time::Duration;
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("lock");
    let client = kube_client(settings).await;

    // Two runs race for the lock: exactly one gets it, the other is told who holds it.
    let first = envboot::kube::Kube::from_client(client.clone());
    let second = envboot::kube::Kube::from_client(client.clone());
    let (a, b) = tokio::join!(
        first.lock(&name, "run A", Duration::from_secs(60), Default::default()),
        second.lock(&name, "run B", Duration::from_secs(60), Default::default())
    );
    let (held, refused) = match (a, b) {
        (Ok(g), Err(e)) | (Err(e), Ok(g)) => (g, e),
        (Ok(_), Ok(_)) => panic!("both runs got the lock"),
        (Err(a), Err(b)) => panic!("neither run got the lock: {a}; {b}"),
    };
    let message = refused.to_string();
    assert!(
        message.contains(&format!("environment `{name}` is locked by run ")),
        "{message}"
    );
    held.release().await;
    second
        .lock(&name, "run B", Duration::from_secs(60), Default::default())
        .await
        .expect("free after release")
        .release()
        .await;

    // The CLI: a live lock stops apply at once (exit 5, naming the holder) before any change.
    let repo = Repo::new(&name, &cluster_only(&name, 1, "{}"));
    let guard = first
        .lock(
            &name,
            "a colleague's nightly run",
            Duration::from_secs(60),
            Default::default(),
        )
        .await
        .expect("lock");
    let run = envboot(&repo, settings, &["apply", &name]);
    assert_eq!(run.code, 5, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("locked by a colleague's nightly run"),
        "{}",
        run.stderr
    );
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    assert!(
        namespaces.get_opt(&name).await.expect("get").is_none(),
        "nothing was applied"
    );
    guard.release().await;

    // A lock whose holder stopped renewing it (a crashed run) expires and is taken over.
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), "default");
    let stale: k8s_openapi::api::coordination::v1::Lease =
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("envboot-lock-{name}")},
            "spec": {"holderIdentity": "a crashed run", "leaseDurationSeconds": 60,
                     "renewTime": "2020-01-01T00:00:00.000000Z"},
        }))
        .expect("lease");
    leases
        .create(&Default::default(), &stale)
        .await
        .expect("a crashed run's lease");
    envboot(&repo, settings, &["apply", &name]).assert_ok();
    assert!(
        leases
            .get_opt(&format!("envboot-lock-{name}"))
            .await
            .expect("get")
            .is_none(),
        "released after apply"
    );
    envboot(&repo, settings, &["destroy", &name]).assert_ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_wait_and_verify_follow_the_pods_real_readiness() {
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("ready");
    // An image the node does not have, with a pull policy that never pulls: the kubelet says
    // so, and the report carries its reason.
    let missing = "{replicaCount: 2, image: {tag: no-such-tag}}";
    let repo = Repo::new(&name, &cluster_only(&name, 1, missing));
    let run = envboot(&repo, settings, &["apply", &name, "--wait", "20s"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let out = format!("{}{}", run.stdout, run.stderr);
    assert!(
        out.contains(&format!("Deployment {name}/hello: 0 of 2 replicas ready"))
            && out.contains("container web: ErrImageNeverPull"),
        "{out}"
    );
    let run = envboot(&repo, settings, &["verify", &name, "--timeout", "1s"]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("ErrImageNeverPull"), "{}", run.stdout);

    // The image the node has: apply --wait returns once both pods serve (readiness probe).
    std::fs::write(
        repo.path()
            .join(format!("environments/{name}/environment.yaml")),
        cluster_only(&name, 1, "{replicaCount: 2}"),
    )
    .expect("write");
    repo.commit("an image that exists");
    envboot(&repo, settings, &["apply", &name, "--wait", "120s"]).assert_ok();
    let client = kube_client(settings).await;
    let hello = Api::<Deployment>::namespaced(client.clone(), &name)
        .get("hello")
        .await
        .expect("deployment");
    let status = hello.status.expect("status");
    assert_eq!(status.available_replicas, Some(2), "{status:?}");
    let running = pods(&client, &name, "app.kubernetes.io/instance=hello").await;
    let ready = running.iter().filter(|p| {
        p.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
    });
    assert_eq!(ready.count(), 2, "{running:?}");
    let run = envboot(&repo, settings, &["verify", &name]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("Verified"), "{}", run.stdout);
    envboot(&repo, settings, &["destroy", &name]).assert_ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_fails_on_a_crash_looping_workload_with_its_exit_code() {
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("crashloop");
    let env = format!(
        "apiVersion: envboot.dev/v1alpha1\nkind: Environment\nname: {name}\ncloud: {{provider: aws, region: us-east-1}}\ncluster: {{type: existing, context: envboot-sandbox}}\nreleases:\n  - {{name: worker, chart: worker, namespace: {name}}}\n"
    );
    let repo = Repo::new(&name, &env);
    repo.write(
        "modules/worker/Chart.yaml",
        "apiVersion: v2\nname: worker\nversion: 0.1.0\n",
    );
    repo.write(
        "modules/worker/templates/deployment.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: worker\nspec:\n  minReadySeconds: 10\n  selector: {matchLabels: {app: worker}}\n  template:\n    metadata: {labels: {app: worker}}\n    spec:\n      containers:\n        - name: worker\n          image: envboot.local/busybox:1.35\n          imagePullPolicy: Never\n          command: [sh, -c, \"echo no database; exit 3\"]\n",
    );
    // (a container without a readiness probe is ready while it runs, for the few milliseconds
    // before it exits: `minReadySeconds` makes such a blink not count as available, as on a
    // real cluster a crash-looping worker is not)
    repo.commit("a worker that cannot start");
    envboot(&repo, settings, &["apply", &name]).assert_ok();
    let run = envboot(&repo, settings, &["verify", &name, "--timeout", "30s"]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains(&format!("Deployment {name}/worker: 0 of 1 replicas ready"))
            && run.stdout.contains("container worker")
            && run.stdout.contains("code 3"),
        "{}",
        run.stdout
    );
    envboot(&repo, settings, &["destroy", &name]).assert_ok();
}

/// Waits, through a watch, until ConfigMap `name` has `key` = `value`; panics after 60 s.
async fn until_value(cms: &Api<ConfigMap>, name: &str, key: &str, value: &str) {
    use futures::StreamExt;
    let has = |cm: &ConfigMap| {
        cm.data
            .as_ref()
            .and_then(|d| d.get(key))
            .is_some_and(|v| v == value)
    };
    let current = cms.get(name).await.expect("get");
    if has(&current) {
        return;
    }
    let version = current.metadata.resource_version.unwrap_or_default();
    let params = kube::api::WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(60);
    let mut events = cms.watch(&params, &version).await.expect("watch").boxed();
    while let Some(event) = events.next().await {
        if let Ok(kube::api::WatchEvent::Modified(cm) | kube::api::WatchEvent::Added(cm)) = event {
            if has(&cm) {
                return;
            }
        }
    }
    panic!("{name} never got {key}={value}");
}

#[tokio::test(flavor = "multi_thread")]
async fn reconcile_heals_drift_and_follows_new_commits_until_stopped() {
    use std::io::BufRead;
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("reconcile");
    let repo = Repo::new(&name, &cluster_only(&name, 1, "{}"));
    let mut child = Envboot::new(settings)
        .args(["reconcile", &name, "--watch", "--interval", "1s"])
        .repo(&repo)
        .spawn();
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = || {
        rx.recv_timeout(std::time::Duration::from_secs(60))
            .expect("a reconcile round")
    };
    let first = next();
    assert!(first.contains("applied 5 change(s)"), "{first}");

    // Someone edits the ConfigMap by hand: the next rounds put Git's value back.
    let client = kube_client(settings).await;
    let cms: Api<ConfigMap> = Api::namespaced(client, &name);
    let patch = serde_json::json!({"data": {"LOG_LEVEL": "trace"}});
    cms.patch(
        "settings-0",
        &PatchParams {
            field_manager: Some("kubectl-edit".into()),
            ..Default::default()
        },
        &Patch::Merge(&patch),
    )
    .await
    .expect("edit by hand");
    until_value(&cms, "settings-0", "LOG_LEVEL", "debug").await;

    // A new commit in Git is applied without anyone running apply.
    repo.edit(
        &format!("environments/{name}/environment.yaml"),
        "LOG_LEVEL: debug",
        "LOG_LEVEL: info",
    );
    repo.commit("info");
    until_value(&cms, "settings-0", "LOG_LEVEL", "info").await;

    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = child.wait().expect("reconcile stops");
    assert!(exit.success(), "{exit:?}");
    let lines: Vec<String> = rx.try_iter().collect();
    assert_eq!(
        lines.last().map(String::as_str),
        Some("reconcile: stopped"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("applied 1 change(s): ~ ConfigMap")),
        "{lines:?}"
    );
    envboot(&repo, settings, &["destroy", &name]).assert_ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_public_chart_is_released_with_per_environment_values_and_reapplied_as_no_op() {
    let corpus = project_root().join("../shared/helm-corpus/charts/podinfo");
    if !corpus.is_dir() {
        skipped(
            "kubernetes::a_public_chart_is_released_with_per_environment_values_and_reapplied_as_no_op",
            &format!("the helm corpus is not there ({} not found)", corpus.display()),
        );
        return;
    }
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("public");
    let env = format!(
        "apiVersion: envboot.dev/v1alpha1\nkind: Environment\nname: {name}\ncloud: {{provider: aws, region: us-east-1}}\ncluster: {{type: existing, context: envboot-sandbox}}\nreleases:\n  - name: web\n    chart: podinfo\n    namespace: {name}\n    values: {{replicaCount: 3}}\n"
    );
    let repo = Repo::new(&name, &env);
    let copy = std::process::Command::new("cp")
        .arg("-r")
        .arg(&corpus)
        .arg(repo.path().join("modules/podinfo"))
        .status()
        .expect("cp");
    assert!(copy.success());
    repo.commit("podinfo");
    // The chart asks for Kubernetes 1.23 or later and the sandbox is 1.20: refused before any
    // write, in helm install's words (render, which does not ask the cluster, renders it).
    let r = envboot(&repo, settings, &["apply", &name]);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(
            "chart requires kubeVersion: >=1.23.0-0 which is incompatible with Kubernetes v1.20.2"
        ),
        "{}",
        r.stderr
    );
    envboot(&repo, settings, &["render", &name]).assert_ok();
    repo.edit(
        "modules/podinfo/Chart.yaml",
        "kubeVersion: \">=1.23.0-0\"\n",
        "",
    );
    repo.commit("podinfo for the sandbox's Kubernetes 1.20");
    envboot(&repo, settings, &["apply", &name]).assert_ok();
    let client = kube_client(settings).await;
    let deployment = Api::<Deployment>::namespaced(client, &name)
        .get("web-podinfo")
        .await
        .expect("the chart's Deployment");
    assert_eq!(
        deployment.spec.and_then(|s| s.replicas),
        Some(3),
        "the environment's value wins"
    );
    let run = envboot(&repo, settings, &["apply", &name]);
    assert!(run.stdout.contains("No changes."), "{}", run.stdout);
    envboot(&repo, settings, &["destroy", &name]).assert_ok();
}

/// The client-side rate limit (`ENVBOOT_KUBE_QPS`, `ENVBOOT_KUBE_BURST`) spaces requests: a run
/// that makes R requests at 4 a second with bursts of 1 cannot take less than (R - 1) / 4
/// seconds. (A lower bound that the limiter guarantees, not a timing of the machine.)
#[tokio::test(flavor = "multi_thread")]
async fn the_client_side_rate_limit_spaces_requests() {
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("ratelimit");
    let repo = Repo::new(&name, &cluster_only(&name, 2, "{}"));
    envboot(&repo, settings, &["apply", &name]).assert_ok();
    let mut limited = settings.clone();
    limited.insert("ENVBOOT_KUBE_QPS".into(), "4".into());
    limited.insert("ENVBOOT_KUBE_BURST".into(), "1".into());
    let started = std::time::Instant::now();
    let r = envboot(&repo, &limited, &["plan", &name]);
    let elapsed = started.elapsed().as_secs_f64();
    r.assert_ok();
    let requests: f64 = r
        .stdout
        .split("Kubernetes ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("the request count");
    assert!(requests >= 5.0, "{}", r.stdout);
    let floor = (requests - 1.0) / 4.0;
    assert!(
        elapsed >= floor,
        "{requests} requests in {elapsed:.2}s: faster than 4 a second allows ({floor:.2}s)"
    );
    envboot(&repo, settings, &["destroy", &name]).assert_ok();
}
