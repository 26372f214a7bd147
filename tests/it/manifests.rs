//! Folders of plain manifests: applied and labelled, a change made by hand found as drift and
//! healed, an object whose file is removed pruned.

use crate::common::*;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use kube::api::{Api, Patch, PatchParams};

#[tokio::test]
async fn plain_manifests_are_applied_healed_and_pruned() {
    let sandbox = sandbox();
    let settings = sandbox.settings();
    let name = unique("manifests");
    let env = format!(
        "apiVersion: envboot.dev/v1alpha1\nkind: Environment\nname: {name}\ncloud: {{provider: aws, region: us-east-1}}\ncluster: {{type: existing, context: envboot-sandbox}}\nmanifests:\n  - path: manifests\n    namespace: {name}\n"
    );
    let repo = Repo::new(&name, &env);
    let dir = format!("environments/{name}/manifests");
    repo.write(
        &format!("{dir}/app.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: debug\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: runner\n",
    );
    repo.write(
        &format!("{dir}/extra/more.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\ndata: {n: '1'}\n",
    );
    repo.commit("plain manifests");
    envboot(&repo, settings, &["apply", &name]).assert_ok();

    let client = kube_client(settings).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &name);
    let settings_cm = cms.get("settings").await.expect("the ConfigMap");
    assert_eq!(
        settings_cm
            .metadata
            .labels
            .unwrap_or_default()
            .get("envboot.dev/environment"),
        Some(&name)
    );
    Api::<ServiceAccount>::namespaced(client.clone(), &name)
        .get("runner")
        .await
        .expect("the ServiceAccount");
    let plan = envboot(&repo, settings, &["plan", &name, "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);

    // A change by hand (an imperative update, as `kubectl edit` makes) is drift, and apply
    // heals it.
    cms.patch(
        "settings",
        &PatchParams {
            field_manager: Some("kubectl-edit".into()),
            ..Default::default()
        },
        &Patch::Merge(serde_json::json!({"data": {"mode": "by-hand"}})),
    )
    .await
    .expect("change it by hand");
    let drift = envboot(&repo, settings, &["drift", &name]);
    assert_eq!(drift.code, 2, "{}{}", drift.stdout, drift.stderr);
    assert!(
        drift
            .stdout
            .contains("~ data.mode: \"by-hand\" -> \"debug\""),
        "{}",
        drift.stdout
    );
    envboot(&repo, settings, &["apply", &name]).assert_ok();
    let healed = cms.get("settings").await.expect("the ConfigMap");
    assert_eq!(
        healed
            .data
            .unwrap_or_default()
            .get("mode")
            .map(String::as_str),
        Some("debug")
    );

    // The file removed from Git: its object is pruned, the others stay.
    std::fs::remove_file(repo.path().join(format!("{dir}/extra/more.yaml"))).expect("rm");
    repo.commit("no extra");
    envboot(&repo, settings, &["apply", &name]).assert_ok();
    assert!(cms.get_opt("extra").await.expect("get").is_none(), "pruned");
    assert!(cms.get_opt("settings").await.expect("get").is_some());
    envboot(&repo, settings, &["destroy", &name]).assert_ok();
}
