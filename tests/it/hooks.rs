//! Helm hooks run at their phases: a pre-install Job runs (and must succeed) before the
//! release's objects are applied, a post-install hook after them; an unchanged release runs no
//! hooks; a pre-upgrade hook whose Job fails stops the upgrade before it changes anything. The
//! hooks' Jobs run for real on the sandbox's node.

use crate::common::*;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};

fn environment(name: &str, timeout: &str) -> String {
    format!(
        "apiVersion: envboot.dev/v1alpha1\nkind: Environment\nname: {name}\ncloud: {{provider: aws, region: us-east-1}}\ncluster: {{type: existing, context: envboot-sandbox}}\nreleases:\n  - name: app\n    chart: app\n    namespace: {name}\n    timeout: {timeout}\n    values: {{level: info}}\n"
    )
}

const MIGRATE: &str = r#"apiVersion: batch/v1
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
          # The migration fails for level `broken`.
          command: [sh, -c, 'echo migrating to {{ .Values.level }}; test {{ .Values.level | quote }} != broken']
"#;

const NOTIFY: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: post-done
  annotations:
    helm.sh/hook: post-install,post-upgrade
    helm.sh/hook-weight: "5"
data:
  level: {{ .Values.level | quote }}
"#;

fn repo(name: &str) -> Repo {
    let repo = Repo::new(name, &environment(name, "120s"));
    repo.write(
        "modules/app/Chart.yaml",
        "apiVersion: v2\nname: app\nversion: 0.1.0\n",
    );
    repo.write(
        "modules/app/templates/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-config\ndata:\n  level: {{ .Values.level | quote }}\n",
    );
    repo.write("modules/app/templates/migrate.yaml", MIGRATE);
    repo.write("modules/app/templates/notify.yaml", NOTIFY);
    repo.commit("app with hooks");
    repo
}

#[tokio::test(flavor = "multi_thread")]
async fn hooks_run_at_their_phases_and_a_failing_hook_stops_the_upgrade() {
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("hooks");
    let repo = repo(&name);

    // `render` prints the hooks after the release's other objects, as `helm template` does;
    // `--no-hooks` leaves them out.
    let r = envboot(&repo, settings, &["render", &name]);
    r.assert_ok();
    let config_at = r.stdout.find("name: app-config").expect("the ConfigMap");
    let hook_at = r
        .stdout
        .find("name: migrate")
        .expect("the pre-install hook");
    assert!(config_at < hook_at, "{}", r.stdout);
    assert!(
        r.stdout.contains("helm.sh/hook: pre-install,pre-upgrade"),
        "{}",
        r.stdout
    );
    let r = envboot(&repo, settings, &["render", &name, "--no-hooks"]);
    r.assert_ok();
    assert!(r.stdout.contains("name: app-config"), "{}", r.stdout);
    assert!(!r.stdout.contains("helm.sh/hook"), "{}", r.stdout);
    let client = kube_client(settings).await;
    let configs = Api::<ConfigMap>::namespaced(client.clone(), &name);
    let jobs = Api::<Job>::namespaced(client.clone(), &name);

    let apply = spawn_json(&repo, settings, &["apply", &name]);
    let out = apply.wait_with_output().expect("apply ends");
    let events = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{events}");
    assert!(
        events.contains(&format!(
            "hook Job {name}/migrate (pre-install of release app) done"
        )),
        "{events}"
    );
    // The release's objects were created once the Job had completed (the job controller's
    // event says when; the Job itself is gone, deleted on success).
    let completed = Api::<k8s_openapi::api::core::v1::Event>::namespaced(client.clone(), &name)
        .list(&ListParams::default().fields("involvedObject.name=migrate,reason=Completed"))
        .await
        .expect("events")
        .items;
    let completed_at = completed
        .iter()
        .filter_map(|e| e.last_timestamp.as_ref().or(e.first_timestamp.as_ref()))
        .map(|t| t.0)
        .max()
        .unwrap_or_else(|| panic!("the Job completed: {completed:?}"));
    let created_at = created_at(&configs, "app-config").await;
    assert!(
        created_at >= completed_at,
        "app-config created at {created_at:?}, the Job completed at {completed_at:?}"
    );
    assert_eq!(
        configs
            .get("app-config")
            .await
            .expect("applied")
            .data
            .unwrap_or_default()["level"],
        "info"
    );
    assert_eq!(
        configs
            .get("post-done")
            .await
            .expect("post-install hook")
            .data
            .unwrap_or_default()["level"],
        "info"
    );
    let deleted = |job: Option<Job>| job.is_none_or(|j| j.metadata.deletion_timestamp.is_some());
    assert!(
        deleted(jobs.get_opt("migrate").await.expect("get")),
        "hook-succeeded: the Job is deleted"
    );

    // Unchanged: nothing to do, and no hook runs.
    let again = envboot(&repo, settings, &["apply", &name]);
    again.assert_ok();
    assert!(!again.stdout.contains("hook "), "{}", again.stdout);
    assert!(deleted(jobs.get_opt("migrate").await.expect("get")));

    // An upgrade whose pre-upgrade migration fails changes nothing, and says why.
    std::fs::write(
        repo.path()
            .join(format!("environments/{name}/environment.yaml")),
        environment(&name, "120s").replace("level: info", "level: broken"),
    )
    .expect("write");
    repo.commit("a migration that fails");
    let failed = envboot(&repo, settings, &["apply", &name]);
    assert_eq!(failed.code, 1, "{}{}", failed.stdout, failed.stderr);
    assert!(
        failed.stderr.contains(&format!(
            "the pre-upgrade hook Job {name}/migrate of release `app` did not succeed"
        )),
        "{}",
        failed.stderr
    );
    assert!(
        failed.stderr.contains("BackoffLimitExceeded")
            && failed
                .stderr
                .contains("container migrate exited with code 1"),
        "{}",
        failed.stderr
    );
    assert_eq!(
        configs
            .get("app-config")
            .await
            .expect("get")
            .data
            .unwrap_or_default()["level"],
        "info",
        "the release was not changed"
    );

    envboot(&repo, settings, &["destroy", &name]).assert_ok();
    let left = configs
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter(|c| c.metadata.name.as_deref() != Some("kube-root-ca.crt"))
        .count();
    assert_eq!(left, 0, "hooks are removed by destroy");
}
