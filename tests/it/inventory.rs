//! The inventory envboot keeps in the cluster: what each release applied, the commit and the
//! time. It is a cache: deleted by hand, pruning still finds what Git no longer declares (by
//! labels, over every kind the cluster serves) and the next apply writes it again.

use crate::common::*;
use k8s_openapi::api::core::v1::{ConfigMap, LimitRange};
use kube::api::{Api, DeleteParams};

fn environment(name: &str) -> String {
    format!(
        "apiVersion: envboot.dev/v1alpha1\nkind: Environment\nname: {name}\ncloud: {{provider: aws, region: us-east-1}}\ncluster: {{type: existing, context: envboot-sandbox}}\nreleases:\n  - name: extras\n    chart: extras\n    namespace: {name}\nconfigMaps:\n  - name: settings\n    namespace: {name}\n    data: {{A: b}}\n"
    )
}

const CHART: &str = "apiVersion: v2\nname: extras\nversion: 0.1.0\n";
const LIMITS: &str = "apiVersion: v1\nkind: LimitRange\nmetadata:\n  name: limits\nspec:\n  limits:\n    - type: Container\n      default: {cpu: 500m}\n";
const ACCOUNT: &str = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: worker\n";

#[tokio::test(flavor = "multi_thread")]
async fn the_inventory_records_each_apply_and_pruning_works_without_it() {
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("inventory");
    let repo = Repo::new(&name, &environment(&name));
    repo.write("modules/extras/Chart.yaml", CHART);
    repo.write("modules/extras/templates/limits.yaml", LIMITS);
    repo.write("modules/extras/templates/account.yaml", ACCOUNT);
    let first = repo.commit("extras");
    envboot(&repo, settings, &["apply", &name]).assert_ok();

    let client = kube_client(settings).await;
    let inventories = Api::<ConfigMap>::namespaced(client.clone(), "default");
    let inventory_name = format!("envboot-inventory-{name}");
    let inventory = inventories.get(&inventory_name).await.expect("inventory");
    let data = inventory.data.clone().unwrap_or_default();
    assert_eq!(data["revision"], first);
    assert!(
        data["release.extras"].contains(&format!("v1 LimitRange {name} limits")),
        "{data:?}"
    );
    assert!(
        data["environment"].contains(&format!("v1 ConfigMap {name} settings")),
        "{data:?}"
    );

    // A second apply changes nothing, not even the inventory.
    envboot(&repo, settings, &["apply", &name]).assert_ok();
    let again = inventories.get(&inventory_name).await.expect("inventory");
    assert_eq!(
        again.metadata.resource_version,
        inventory.metadata.resource_version
    );

    // Without the inventory, an object of a kind that is neither declared any more nor among
    // the usual kinds is still found by its labels and pruned.
    inventories
        .delete(&inventory_name, &DeleteParams::default())
        .await
        .expect("delete the inventory by hand");
    std::fs::remove_file(repo.path().join("modules/extras/templates/limits.yaml")).expect("rm");
    let second = repo.commit("no more limits");
    let run = envboot(&repo, settings, &["apply", &name]);
    run.assert_ok();
    assert!(
        run.stdout.contains(&format!("- LimitRange {name}/limits")),
        "{}",
        run.stdout
    );
    let limits = Api::<LimitRange>::namespaced(client.clone(), &name);
    assert!(limits.get_opt("limits").await.expect("get").is_none());
    let rebuilt = inventories.get(&inventory_name).await.expect("rebuilt");
    let data = rebuilt.data.unwrap_or_default();
    assert_eq!(data["revision"], second);
    assert!(!data["release.extras"].contains("LimitRange"), "{data:?}");

    let status = envboot(&repo, settings, &["status", &name]);
    status.assert_ok();
    assert!(
        status
            .stdout
            .contains(&format!("Live:   {}, applied ", &second[..12])),
        "{}",
        status.stdout
    );

    envboot(&repo, settings, &["destroy", &name]).assert_ok();
    assert!(inventories
        .get_opt(&inventory_name)
        .await
        .expect("get")
        .is_none());
}
