//! Ordering without user effort: a CRD and resources of it in one run (the CRD is applied and
//! Established first); `dependsOn` between releases (a release waits until the ones it depends
//! on are ready, each with its own timeout).

use crate::common::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};

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
status:
  conditions:
    - type: Ready
      status: "False"
      reason: Starting
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

    // The Widget never becomes ready within the platform's 3 s: app is not applied.
    let run = envboot(&repo, settings, &["apply", &name]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("release `platform` (which app depends on) is not ready"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("Widget") && run.stderr.contains("Starting"),
        "names what is not ready and why: {}",
        run.stderr
    );
    let widget = widgets(client.clone(), &name)
        .get("db")
        .await
        .expect("the CRD was Established and the Widget applied in the same run");
    assert_eq!(widget.data["spec"]["size"], 3);
    assert!(configs.get_opt("app-config").await.expect("get").is_none());

    // With a longer timeout, app follows as soon as the Widget reports Ready.
    repo.edit(
        &format!("environments/{name}/environment.yaml"),
        "timeout: 3s",
        "timeout: 120s",
    );
    repo.commit("give the platform time");
    let mut apply = spawn_json(&repo, settings, &["apply", &name]);
    let stdout = apply.stdout.take().expect("stdout");
    // Wait until envboot is past planning (the plan event), then check it holds app back.
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let planned = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.contains("\"event\":\"plan\""));
    assert!(planned, "envboot printed its plan");
    assert!(
        configs.get_opt("app-config").await.expect("get").is_none(),
        "app waits for the platform"
    );
    widgets(client.clone(), &name)
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"status": {"conditions": [
                {"type": "Ready", "status": "True", "reason": "Running"}]}})),
        )
        .await
        .expect("report the Widget ready");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = apply.wait().expect("apply finishes");
    assert!(status.success(), "{rest:?}");
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
