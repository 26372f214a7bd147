//! The inventory envboot keeps in the cluster: what each release applied, the commit and the
//! time, written ahead of an apply's writes. Deleted by hand, pruning still finds what Git no
//! longer declares (by labels, over every kind the cluster serves, as the environment's
//! namespace is there) and the next apply writes it again. A first plan lists only the kinds
//! the environment declares; an apply that stopped half-way left the kinds it may have written
//! in the inventory, so a later plan still finds them.

use crate::common::*;
use k8s_openapi::api::core::v1::{ConfigMap, LimitRange, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, PostParams};

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

/// The number after `Kubernetes` in the CLI's `API calls:` line.
fn kube_requests(stdout: &str) -> u64 {
    stdout
        .lines()
        .find(|l| l.starts_with("API calls:"))
        .and_then(|l| l.split("Kubernetes ").nth(1))
        .and_then(|after| after.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no Kubernetes request count in:\n{stdout}"))
}

/// A chart release into `namespace`, which someone else made (not the environment's).
fn in_foreign_namespace(name: &str, namespace: &str) -> String {
    format!(
        "apiVersion: envboot.dev/v1alpha1\nkind: Environment\nname: {name}\ncloud: {{provider: aws, region: us-east-1}}\ncluster: {{type: existing, context: envboot-sandbox}}\nreleases:\n  - name: extras\n    chart: extras\n    namespace: {namespace}\n"
    )
}

const POLICY: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: deny\nspec:\n  podSelector: {}\n  policyTypes: [Ingress]\n";
const QUOTA: &str = "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: pods\nspec:\n  hard:\n    pods: \"100\"\n";
/// The API server refuses it on create (a node port outside 30000-32767: 422), which stops
/// the apply after the policy and the quota are written (Services come after both).
const REFUSED: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: refused\nspec:\n  type: NodePort\n  selector: {app: none}\n  ports:\n    - port: 80\n      nodePort: 1\n";

#[tokio::test(flavor = "multi_thread")]
async fn an_apply_stopped_half_way_leaves_nothing_a_later_plan_does_not_find() {
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("halfway");
    let namespace = format!("{name}-theirs");
    let client = kube_client(settings).await;
    let namespaces = Api::<Namespace>::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}}))
                .expect("namespace"),
        )
        .await
        .expect("create the namespace someone else owns");
    let repo = Repo::new(&name, &in_foreign_namespace(&name, &namespace));
    repo.write("modules/extras/Chart.yaml", CHART);
    repo.write("modules/extras/templates/policy.yaml", POLICY);
    repo.write("modules/extras/templates/quota.yaml", QUOTA);
    repo.write("modules/extras/templates/refused.yaml", REFUSED);
    repo.commit("a release the API server stops half-way");

    // A first plan lists the kinds declared and the usual ones, not every kind served.
    let plan = envboot(&repo, settings, &["plan", &name]);
    plan.assert_ok();
    let first = kube_requests(&plan.stdout);
    eprintln!("a first plan of 4 kinds: {first} Kubernetes requests");
    assert!(
        first <= 30,
        "a first plan costs requests by the kinds declared: {first}\n{}",
        plan.stdout
    );

    let run = envboot(&repo, settings, &["apply", &name]);
    assert_ne!(
        run.code, 0,
        "the quota refuses the ConfigMap: {}",
        run.stdout
    );
    assert!(
        run.stderr.contains("refused"),
        "names the object refused: {}",
        run.stderr
    );
    let policies = Api::<NetworkPolicy>::namespaced(client.clone(), &namespace);
    let quotas = Api::<ResourceQuota>::namespaced(client.clone(), &namespace);
    assert!(policies.get_opt("deny").await.expect("get").is_some());
    assert!(quotas.get_opt("pods").await.expect("get").is_some());

    // Git no longer declares them: neither kind is declared nor usual, and the environment
    // has no namespace of its own, yet the next apply finds both and deletes them.
    for file in ["policy.yaml", "quota.yaml", "refused.yaml"] {
        std::fs::remove_file(repo.path().join("modules/extras/templates").join(file)).expect("rm");
    }
    repo.write("modules/extras/templates/account.yaml", ACCOUNT);
    repo.commit("only an account");
    let run = envboot(&repo, settings, &["apply", &name]);
    run.assert_ok();
    for deleted in [
        format!("- NetworkPolicy {namespace}/deny"),
        format!("- ResourceQuota {namespace}/pods"),
    ] {
        assert!(run.stdout.contains(&deleted), "{deleted}: {}", run.stdout);
    }
    assert!(policies.get_opt("deny").await.expect("get").is_none());
    assert!(quotas.get_opt("pods").await.expect("get").is_none());
    // the completed apply's inventory has nothing pending
    let inventories = Api::<ConfigMap>::namespaced(client.clone(), "default");
    let data = inventories
        .get(&format!("envboot-inventory-{name}"))
        .await
        .expect("inventory")
        .data
        .unwrap_or_default();
    assert!(!data.contains_key("pending"), "{data:?}");

    envboot(&repo, settings, &["destroy", &name]).assert_ok();
    namespaces
        .delete(&namespace, &DeleteParams::default())
        .await
        .expect("delete the namespace");
}
