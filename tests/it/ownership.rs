//! What envboot owns in Kubernetes, and nothing else: a namespace holding objects that are not
//! the environment's (of any kind the cluster serves, custom resources included) survives
//! destroy with them; an object Git declares that exists without the environment's label is a
//! conflict that changes nothing, until `--adopt` takes it over.

use crate::common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolumeClaim};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::wait::{await_condition, conditions};

/// An environment of two ConfigMaps in namespace `name` (which envboot creates).
fn two_config_maps(name: &str) -> String {
    format!(
        "apiVersion: envboot.dev/v1alpha1\nkind: Environment\nname: {name}\ncloud: {{provider: aws, region: us-east-1}}\ncluster: {{type: existing, context: envboot-sandbox}}\nconfigMaps:\n  - {{name: settings-0, namespace: {name}, data: {{LOG_LEVEL: debug}}}}\n  - {{name: settings-1, namespace: {name}, data: {{LOG_LEVEL: debug}}}}\n"
    )
}

fn object<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).expect("a valid object")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_namespace_holding_objects_of_any_kind_that_are_not_ours_survives_destroy() {
    // A CRD changes what the whole cluster serves: no other test runs beside this one.
    let shared = sandbox_alone();
    let settings = shared.settings();
    let name = unique("foreign");
    let repo = Repo::new(&name, &two_config_maps(&name));
    envboot(&repo, settings, &["apply", &name]).assert_ok();
    let client = kube_client(settings).await;

    // Someone else puts an Ingress, a PersistentVolumeClaim and a custom resource there.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd_name = "gadgets.ownership.envboot.dev";
    let _ = crds.delete(crd_name, &DeleteParams::default()).await;
    crds.create(
        &PostParams::default(),
        &object(serde_json::json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": crd_name},
            "spec": {
                "group": "ownership.envboot.dev",
                "scope": "Namespaced",
                "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
            }
        })),
    )
    .await
    .expect("create the CRD");
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        await_condition(crds.clone(), crd_name, conditions::is_crd_established()),
    )
    .await
    .expect("the CRD is established within 60s")
    .expect("watch the CRD");
    let gvk = GroupVersionKind::gvk("ownership.envboot.dev", "v1", "Gadget");
    let gadgets: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &name, &ApiResource::from_gvk(&gvk));
    gadgets
        .create(
            &PostParams::default(),
            &object(serde_json::json!({
                "apiVersion": "ownership.envboot.dev/v1", "kind": "Gadget",
                "metadata": {"name": "theirs"}, "spec": {"size": 3}
            })),
        )
        .await
        .expect("create the custom resource");
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), &name);
    ingresses
        .create(
            &PostParams::default(),
            &object(serde_json::json!({
                "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": "theirs"},
                "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}
            })),
        )
        .await
        .expect("create the Ingress");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &name);
    claims
        .create(
            &PostParams::default(),
            &object(serde_json::json!({
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "theirs"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
            })),
        )
        .await
        .expect("create the claim");

    let run = envboot(&repo, settings, &["destroy", &name]);
    run.assert_ok();
    // The plan says so before anything is deleted, and the run's note after.
    assert!(
        run.stdout.contains(&format!(
            "- Namespace {name}  (kept, not deleted: it holds objects that envboot does not own ("
        )),
        "{}",
        run.stdout
    );
    let kept = format!("namespace {name} kept: it holds objects that envboot does not own");
    assert!(run.stdout.contains(&kept), "{}", run.stdout);
    for foreign in [
        format!("Gadget {name}/theirs"),
        format!("Ingress {name}/theirs"),
        format!("PersistentVolumeClaim {name}/theirs"),
    ] {
        assert!(
            run.stdout.contains(&foreign),
            "names {foreign}: {}",
            run.stdout
        );
    }
    // Ours are gone; theirs and the namespace are there.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &name);
    assert!(cms.get_opt("settings-0").await.expect("get").is_none());
    assert!(cms.get_opt("settings-1").await.expect("get").is_none());
    assert!(gadgets.get_opt("theirs").await.expect("get").is_some());
    assert!(ingresses.get_opt("theirs").await.expect("get").is_some());
    assert!(claims.get_opt("theirs").await.expect("get").is_some());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert!(namespaces.get_opt(&name).await.expect("get").is_some());

    // A second destroy finds nothing of ours and still keeps what is not.
    envboot(&repo, settings, &["destroy", &name]).assert_ok();
    assert!(gadgets.get_opt("theirs").await.expect("get").is_some());

    let _ = namespaces.delete(&name, &DeleteParams::default()).await;
    let _ = crds.delete(crd_name, &DeleteParams::default()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unlabelled_object_with_a_declared_name_is_a_conflict_until_adopted() {
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("unowned");
    let repo = Repo::new(&name, &two_config_maps(&name));
    let client = kube_client(settings).await;
    // The namespace and one of the ConfigMaps exist already, made by someone else.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &object(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})),
        )
        .await
        .expect("create the namespace");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &name);
    cms.create(
        &PostParams::default(),
        &object(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "settings-0"}, "data": {"LOG_LEVEL": "info"}
        })),
    )
    .await
    .expect("create theirs");

    let run = envboot(&repo, settings, &["plan", &name]);
    run.assert_ok();
    let conflict = format!("CONFLICT: ConfigMap {name}/settings-0 exists without the environment's label; --adopt takes it over");
    assert!(run.stdout.contains(&conflict), "{}", run.stdout);

    let run = envboot(&repo, settings, &["apply", &name]);
    assert_eq!(run.code, 6, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("nothing was changed"), "{}", run.stderr);
    assert!(run.stderr.contains("--adopt"), "{}", run.stderr);
    let theirs = cms.get("settings-0").await.expect("get");
    assert_eq!(
        theirs.data.unwrap_or_default()["LOG_LEVEL"],
        "info",
        "untouched"
    );
    assert!(
        theirs.metadata.labels.unwrap_or_default().is_empty(),
        "not labelled"
    );
    assert!(
        cms.get_opt("settings-1").await.expect("get").is_none(),
        "nothing else was created either"
    );

    let run = envboot(&repo, settings, &["apply", &name, "--adopt"]);
    run.assert_ok();
    let adopted = cms.get("settings-0").await.expect("get");
    assert_eq!(adopted.data.unwrap_or_default()["LOG_LEVEL"], "debug");
    assert_eq!(
        adopted.metadata.labels.unwrap_or_default()["envboot.dev/environment"],
        name
    );
    let run = envboot(&repo, settings, &["plan", &name]);
    run.assert_ok();
    assert!(run.stdout.contains("No changes."), "{}", run.stdout);

    // Now it is ours: destroy removes both ConfigMaps, and keeps the namespace it never owned.
    envboot(&repo, settings, &["destroy", &name]).assert_ok();
    assert!(cms.get_opt("settings-0").await.expect("get").is_none());
    assert!(namespaces.get_opt(&name).await.expect("get").is_some());
    let _ = namespaces.delete(&name, &DeleteParams::default()).await;
}
