//! Ordering without user effort: a CRD and resources of it in one run (the CRD is applied and
//! Established first); `dependsOn` between releases (a release waits until the ones it depends
//! on are ready, each with its own timeout). Readiness is real: the platform's database runs on
//! the sandbox's node and passes its readiness probe some seconds after it starts.

use crate::common::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ApiResource, DynamicObject};

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.envboot.dev
spec:
  group: example.envboot.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
"#;

const WIDGET: &str = r#"apiVersion: example.envboot.dev/v1
kind: Widget
metadata:
  name: db
spec:
  size: {{ .Values.size }}
"#;

/// Ready 8 s after it starts (the probe's initial delay), and rolled by a change of `size`.
const DATABASE: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: db
spec:
  selector: {matchLabels: {app: db}}
  template:
    metadata:
      labels: {app: db}
      annotations: {size: "{{ .Values.size }}"}
    spec:
      containers:
        - name: db
          image: envboot.local/busybox:1.35
          imagePullPolicy: Never
          command: [sh, -c, "trap 'exit 0' TERM; sleep 3600 & wait"]
          readinessProbe:
            exec: {command: ["true"]}
            initialDelaySeconds: 8
            periodSeconds: 1
"#;

fn environment(name: &str, timeout: &str) -> String {
    format!(
        r#"apiVersion: envboot.dev/v1alpha1
kind: Environment
name: {name}
cloud: {{provider: aws, region: us-east-1}}
cluster: {{type: existing, context: envboot-sandbox}}
releases:
  - name: app
    chart: app
    namespace: {name}
    dependsOn: [platform]
  - name: platform
    chart: platform
    namespace: {name}
    timeout: {timeout}
    values: {{size: 3}}
"#
    )
}

fn repo(name: &str, timeout: &str) -> Repo {
    let repo = Repo::new(name, &environment(name, timeout));
    repo.write(
        "modules/platform/Chart.yaml",
        "apiVersion: v2\nname: platform\nversion: 0.1.0\n",
    );
    repo.write("modules/platform/templates/crd.yaml", CRD);
    repo.write("modules/platform/templates/widget.yaml", WIDGET);
    repo.write("modules/platform/templates/database.yaml", DATABASE);
    repo.write(
        "modules/app/Chart.yaml",
        "apiVersion: v2\nname: app\nversion: 0.1.0\n",
    );
    repo.write(
        "modules/app/templates/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-config\ndata: {DB: db}\n",
    );
    repo.commit("platform and app");
    repo
}

fn widgets(client: kube::Client, ns: &str) -> Api<DynamicObject> {
    let ar = ApiResource {
        group: "example.envboot.dev".into(),
        version: "v1".into(),
        api_version: "example.envboot.dev/v1".into(),
        kind: "Widget".into(),
        plural: "widgets".into(),
    };
    Api::namespaced_with(client, ns, &ar)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crd_and_its_resources_in_one_run_and_releases_wait_for_what_they_depend_on() {
    // The CRD changes what the whole cluster serves: no other test runs envboot meanwhile.
    let shared = sandbox_alone();
    let settings = shared.settings();
    let name = unique("order");
    let repo = repo(&name, "3s");
    let client = kube_client(settings).await;
    let configs = Api::<ConfigMap>::namespaced(client.clone(), &name);

    // The database cannot be ready within the platform's 3 s: app is not applied.
    let run = envboot(&repo, settings, &["apply", &name]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("release `platform` (which app depends on) is not ready"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(&format!("Deployment {name}/db: 0 of 1 replicas ready")),
        "names what is not ready and why: {}",
        run.stderr
    );
    let widget = widgets(client.clone(), &name)
        .get("db")
        .await
        .expect("the CRD was Established and the Widget applied in the same run");
    assert_eq!(widget.data["spec"]["size"], 3);
    assert!(configs.get_opt("app-config").await.expect("get").is_none());

    // With a longer timeout (and a new database pod), app follows once the database is ready.
    repo.edit(
        &format!("environments/{name}/environment.yaml"),
        "timeout: 3s",
        "timeout: 120s",
    );
    repo.edit(
        &format!("environments/{name}/environment.yaml"),
        "size: 3",
        "size: 4",
    );
    repo.commit("give the platform time, and a bigger database");
    envboot(&repo, settings, &["apply", &name]).assert_ok();
    let db = pods(&client, &name, "app=db").await;
    let db = db
        .iter()
        .find(|p| {
            p.metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.get("size").map(String::as_str) == Some("4"))
        })
        .unwrap_or_else(|| panic!("the rolled database pod: {db:?}"));
    let ready_at = db
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready" && c.status == "True"))
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| panic!("the database pod is ready: {db:?}"));
    let created_at = created_at(&configs, "app-config").await;
    assert!(
        created_at >= ready_at.0,
        "app was applied ({created_at:?}) only once the database was ready ({:?})",
        ready_at.0
    );
    assert_eq!(
        configs
            .get("app-config")
            .await
            .expect("applied")
            .data
            .unwrap_or_default()["DB"],
        "db"
    );

    let plan = envboot(&repo, settings, &["plan", &name, "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    envboot(&repo, settings, &["destroy", &name]).assert_ok();
}
