//! The engine's order of work, from data: apply driven through an in-memory provider that
//! records every call, so ordering, waves, hooks, the parallelism bound and a failure half way
//! are checked without a server (the integration tests cover the real providers).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::task::Poll;
use std::time::Duration;

use serde_json::{json, Value};

use super::apply::execute;
use super::provider::{Cloud, CloudDiscovery, Cluster, ClusterDiscovery};
use super::*;
use crate::aws::{Actual, DeleteContext, Named};
use crate::kube::inventory::Inventory;
use crate::model::spec::{SecurityGroup, Subnet, Vpc};
use crate::model::{Resource, ResourceSpec};

/// Yields to the executor `n` times: a call that takes `n` turns, with no clock involved.
async fn turns(n: u32) {
    for _ in 0..n {
        let mut yielded = false;
        futures::future::poll_fn(|cx| {
            if yielded {
                Poll::Ready(())
            } else {
                yielded = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
        .await;
    }
}

/// Both layers in memory. Every call is logged as `verb what`; calls take a few turns so that
/// concurrent ones overlap, and the most that ever ran at once is recorded.
#[derive(Default)]
struct Memory {
    log: RefCell<Vec<String>>,
    running: Cell<usize>,
    most: Cell<usize>,
    /// Calls whose log line this is fail.
    fail: BTreeSet<String>,
    /// Objects (`Kind ns/name`) that never become ready.
    never_ready: BTreeSet<String>,
    /// Namespaces kept on deletion, with the foreign objects they hold.
    foreign: BTreeMap<String, String>,
    /// What AWS has with the environment's tags.
    actual: Vec<Actual>,
    /// What AWS has named like resources to create.
    named: Vec<Named>,
    /// What the cluster has with the environment's labels.
    live: Vec<Value>,
    /// Objects to create that exist without the environment's label, with why.
    unowned: BTreeMap<ObjectKey, String>,
}

impl Memory {
    async fn call(&self, line: String) -> std::result::Result<(), String> {
        self.running.set(self.running.get() + 1);
        self.most.set(self.most.get().max(self.running.get()));
        turns(3).await;
        self.running.set(self.running.get() - 1);
        self.log.borrow_mut().push(line.clone());
        if self.fail.contains(&line) {
            return Err(line);
        }
        Ok(())
    }

    fn log(&self) -> Vec<String> {
        self.log.borrow().clone()
    }

    /// Where `line` is in the log (panics if it is not there, naming the log).
    fn at(&self, line: &str) -> usize {
        let log = self.log();
        log.iter()
            .position(|l| l == line)
            .unwrap_or_else(|| panic!("`{line}` not in {log:#?}"))
    }
}

fn aws_failed(line: String) -> aws::Error {
    aws::Error::CallFailed {
        resource: line,
        call: "Test",
        code: None,
        message: "injected".into(),
    }
}

fn kube_failed(line: String) -> kube::Error {
    kube::Error::Conflict {
        object: line,
        message: "injected".into(),
    }
}

impl Cloud for Memory {
    async fn create(
        &self,
        _environment: &str,
        _revision: &str,
        address: &str,
        spec: &ResourceSpec,
    ) -> aws::Result<BTreeMap<String, String>> {
        let detail = match spec {
            ResourceSpec::Subnet(s) => format!(" in {}", s.vpc_id),
            _ => String::new(),
        };
        self.call(format!("create {address}{detail}"))
            .await
            .map_err(aws_failed)?;
        Ok(BTreeMap::from([(
            "id".to_string(),
            format!("id-{address}"),
        )]))
    }
    async fn update(
        &self,
        _environment: &str,
        _revision: &str,
        change: &AwsChange,
        _spec: &ResourceSpec,
    ) -> aws::Result<()> {
        self.call(format!("update {}", change.change.address))
            .await
            .map_err(aws_failed)
    }
    async fn delete(&self, change: &AwsChange, _ctx: &DeleteContext) -> aws::Result<()> {
        self.call(format!("delete {}", change.change.address))
            .await
            .map_err(aws_failed)
    }
    async fn settle(&self, change: &AwsChange) -> aws::Result<()> {
        self.call(format!("settle {}", change.change.address))
            .await
            .map_err(aws_failed)
    }
    fn needs_settling(&self, _change: &AwsChange) -> bool {
        false
    }
    async fn add_missing_rules(
        &self,
        address: &str,
        _group: &str,
        _made: &SecurityGroup,
        _full: &SecurityGroup,
    ) -> aws::Result<()> {
        self.call(format!("rules {address}"))
            .await
            .map_err(aws_failed)
    }
}

impl Cluster for Memory {
    async fn apply(
        &self,
        _api_version: &str,
        key: &ObjectKey,
        object: &Value,
        _force: bool,
    ) -> kube::Result<()> {
        let data = object["data"]["vpc"]
            .as_str()
            .map(|v| format!(" vpc={v}"))
            .unwrap_or_default();
        self.call(format!("apply {key}{data}"))
            .await
            .map_err(kube_failed)
    }
    async fn delete(
        &self,
        _api_version: &str,
        key: &ObjectKey,
        _environment: &str,
    ) -> kube::Result<kube::Deletion> {
        self.call(format!("delete {key}"))
            .await
            .map_err(kube_failed)?;
        Ok(match self.foreign.get(&key.to_string()) {
            Some(foreign) => kube::Deletion::Kept {
                foreign: foreign.clone(),
            },
            None => kube::Deletion::Deleted,
        })
    }
    async fn wait_deleted(
        &self,
        _api_version: &str,
        _key: &ObjectKey,
        _timeout: Duration,
    ) -> kube::Result<bool> {
        Ok(true)
    }
    async fn wait_ready(
        &self,
        _environment: &str,
        targets: &[(String, ObjectKey)],
        _timeout: Duration,
    ) -> kube::Result<Vec<(ObjectKey, String)>> {
        let names: Vec<String> = targets.iter().map(|(_, k)| k.to_string()).collect();
        self.call(format!("ready {}", names.join(", ")))
            .await
            .map_err(kube_failed)?;
        Ok(targets
            .iter()
            .filter(|(_, k)| self.never_ready.contains(&k.to_string()))
            .map(|(_, k)| (k.clone(), "injected: not ready".to_string()))
            .collect())
    }
    async fn write_inventory(&self, environment: &str, inventory: &Inventory) -> kube::Result<()> {
        let line = match inventory.pending.is_empty() {
            true => format!("inventory {environment}"),
            false => {
                let kinds: Vec<String> = inventory
                    .pending
                    .iter()
                    .map(|(a, k)| format!("{a} {k}"))
                    .collect();
                format!("announce {environment}: {}", kinds.join(", "))
            }
        };
        self.call(line).await.map_err(kube_failed)
    }
    async fn delete_inventory(&self, environment: &str) -> kube::Result<()> {
        self.call(format!("delete inventory {environment}"))
            .await
            .map_err(kube_failed)
    }
}

impl CloudDiscovery for Memory {
    async fn discover(&self, environment: &str) -> aws::Result<Vec<Actual>> {
        self.call(format!("discover aws {environment}"))
            .await
            .map_err(aws_failed)?;
        Ok(self.actual.clone())
    }
    async fn find_named(
        &self,
        _environment: &str,
        changes: &[AwsChange],
    ) -> aws::Result<Vec<Named>> {
        let creates: BTreeSet<&str> = changes
            .iter()
            .filter(|c| c.change.action == Action::Create)
            .map(|c| c.change.address.as_str())
            .collect();
        Ok(self
            .named
            .iter()
            .filter(|n| creates.contains(n.actual.address.as_str()))
            .cloned()
            .collect())
    }
}

impl ClusterDiscovery for Memory {
    async fn place(&self, object: &mut Value, default_namespace: Option<&str>) -> kube::Result<()> {
        if object["kind"] == "Namespace" {
            return Ok(());
        }
        if let (true, Some(ns)) = (object["metadata"]["namespace"].is_null(), default_namespace) {
            object["metadata"]["namespace"] = json!(ns);
        }
        Ok(())
    }
    async fn read_inventory(&self, _environment: &str) -> kube::Result<Option<Inventory>> {
        Ok(None)
    }
    async fn listable_kinds(&self) -> kube::Result<BTreeSet<(String, String)>> {
        Ok(BTreeSet::new())
    }
    async fn capabilities(&self) -> kube::Result<kube::Capabilities> {
        Ok(kube::Capabilities {
            git_version: "v1.20.2".into(),
            major: "1".into(),
            minor: "20".into(),
            api_versions: vec!["v1".into(), "v1/ConfigMap".into()],
        })
    }
    async fn schema(&self) -> kube::Result<std::sync::Arc<kube::schema::Schema>> {
        Ok(std::sync::Arc::default())
    }
    async fn lookup(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> std::result::Result<Value, String> {
        Ok(self
            .live
            .iter()
            .find(|o| {
                o["apiVersion"] == api_version
                    && o["kind"] == kind
                    && o["metadata"]["namespace"] == namespace
                    && o["metadata"]["name"] == name
            })
            .cloned()
            .unwrap_or(Value::Null))
    }
    async fn discover(
        &self,
        environment: &str,
        _kinds: &BTreeSet<(String, String)>,
        _extra: &BTreeSet<(String, String)>,
    ) -> kube::Result<Vec<Value>> {
        self.call(format!("discover kube {environment}"))
            .await
            .map_err(kube_failed)?;
        Ok(self.live.clone())
    }
    async fn namespaces(&self, _environment: &str) -> kube::Result<kube::Namespaces> {
        Ok(kube::Namespaces {
            foreign: self.foreign.keys().cloned().collect(),
            own: BTreeSet::new(),
        })
    }
    async fn unowned_existing(
        &self,
        _environment: &str,
        creates: &[(String, ObjectKey)],
        _namespaces: &BTreeSet<String>,
    ) -> kube::Result<BTreeMap<ObjectKey, String>> {
        Ok(creates
            .iter()
            .filter_map(|(_, k)| Some((k.clone(), self.unowned.get(k)?.clone())))
            .collect())
    }
    async fn foreign_objects(&self, ns: &str, _environment: &str) -> kube::Result<Vec<String>> {
        Ok(self.foreign.get(ns).into_iter().cloned().collect())
    }
    async fn dry_run(
        &self,
        _api_version: &str,
        key: &ObjectKey,
        object: &Value,
        _live: &Value,
        _force_conflicts: bool,
    ) -> kube::Result<(Value, bool)> {
        self.call(format!("dry-run {key}"))
            .await
            .map_err(kube_failed)?;
        Ok((object.clone(), false))
    }
}

const ENV: &str = "test";

fn vpc(address: &str, cidr: &str) -> Resource {
    Resource {
        address: address.into(),
        spec: ResourceSpec::Vpc(Vpc {
            cidr_block: cidr.into(),
            enable_dns_support: true,
            enable_dns_hostnames: false,
            tags: BTreeMap::new(),
        }),
        depends_on: BTreeSet::new(),
        late: BTreeSet::new(),
        origin: "environment.yaml:1".into(),
    }
}

fn subnet(address: &str, vpc: &str) -> Resource {
    Resource {
        address: address.into(),
        spec: ResourceSpec::Subnet(Subnet {
            vpc_id: format!("${{{vpc}.id}}"),
            cidr_block: "10.0.1.0/24".into(),
            availability_zone: "us-east-1a".into(),
            map_public_ip_on_launch: false,
            tags: BTreeMap::new(),
        }),
        depends_on: BTreeSet::from([vpc.to_string()]),
        late: BTreeSet::new(),
        origin: "environment.yaml:2".into(),
    }
}

/// What discovery would find for `r`, with `id`.
fn found(r: &Resource, id: &str) -> Actual {
    Actual {
        rtype: r.spec.resource_type(),
        address: r.address.clone(),
        id: id.into(),
        revision: Some("0ld".into()),
        fields: aws::diff::fields(&r.spec, ENV, &r.address),
        attributes: BTreeMap::from([("id".to_string(), id.to_string())]),
    }
}

/// A Kubernetes object to create, labelled with its release (if any).
fn object(kind: &str, name: &str, release: Option<&str>, extra: Value) -> KubeChange {
    let api_version = match kind {
        "Deployment" => "apps/v1",
        "Job" => "batch/v1",
        _ => "v1",
    };
    let namespace = (kind != "Namespace").then_some("apps");
    let mut desired = json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "labels": {}},
    });
    if let Some(ns) = namespace {
        desired["metadata"]["namespace"] = json!(ns);
    }
    if let Some(r) = release {
        desired["metadata"]["labels"][render::LABEL_RELEASE] = json!(r);
    }
    if let (Value::Object(d), Value::Object(e)) = (&mut desired, extra) {
        d.extend(e);
    }
    let key = ObjectKey::of(&desired);
    KubeChange {
        change: plan::Change {
            kind: kind.into(),
            address: key.address(),
            action: Action::Create,
            fields: Vec::new(),
            reason: None,
        },
        key,
        api_version: api_version.into(),
        desired: Some(desired),
        live: None,
        force: false,
        conflict: None,
    }
}

fn hook(name: &str, release: &str, event: &str, weight: i64) -> (String, Value) {
    let mut o = object("Job", name, Some(release), json!({}))
        .desired
        .unwrap_or_default();
    o["metadata"]["annotations"] = json!({
        render::ANNOTATION_HOOK: event,
        "helm.sh/hook-weight": weight.to_string(),
        "helm.sh/hook-delete-policy": "hook-succeeded",
    });
    (release.to_string(), o)
}

struct Setup {
    goal: Goal,
    desired: Vec<Resource>,
    actual: Vec<Actual>,
    kube: Vec<KubeChange>,
    releases: ReleaseOrder,
    hooks: Vec<(String, Value)>,
    parallelism: usize,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            goal: Goal::Apply,
            desired: Vec::new(),
            actual: Vec::new(),
            kube: Vec::new(),
            releases: ReleaseOrder::new(),
            hooks: Vec::new(),
            parallelism: DEFAULT_PARALLELISM,
        }
    }
}

impl Setup {
    /// The plan, with AWS changes from the pure diff of `desired` and `actual`.
    fn plan(self) -> Plan {
        let desired = if self.goal == Goal::Destroy {
            Vec::new()
        } else {
            self.desired
        };
        Plan {
            environment: ENV.into(),
            commit: "c0ffee".into(),
            goal: self.goal,
            aws: aws::diff::diff(ENV, &desired, &self.actual),
            kube: self.kube,
            aws_client: Aws::unconnected(),
            kube_client: None,
            inventory: None,
            releases: self.releases,
            hooks: self.hooks,
            options: PlanOptions {
                parallelism: self.parallelism,
                ..PlanOptions::default()
            },
            pending: None,
            deferred: None,
            cluster_client: Default::default(),
        }
    }
}

fn run(plan: &Plan, memory: &Memory) -> Result<Report> {
    futures::executor::block_on(execute(plan, memory, Some(memory), &mut |_| {}))
}

#[test]
fn deletions_come_first_then_creations_in_dependency_order_with_references_resolved() {
    let old_vpc = vpc("old.vpc", "10.9.0.0/16");
    let old_subnet = subnet("old.subnet", "old.vpc");
    let plan = Setup {
        desired: vec![
            vpc("net.vpc", "10.0.0.0/16"),
            subnet("net.subnet", "net.vpc"),
        ],
        actual: vec![found(&old_vpc, "vpc-1"), found(&old_subnet, "subnet-1")],
        ..Setup::default()
    }
    .plan();
    let memory = Memory::default();
    run(&plan, &memory).unwrap();
    // The subnet goes before its VPC (AWS refuses the other order); both before any creation.
    assert!(memory.at("delete old.subnet") < memory.at("delete old.vpc"));
    assert!(memory.at("delete old.vpc") < memory.at("create net.vpc"));
    // The subnet waits for its VPC and is created in it.
    assert!(memory.at("create net.vpc") < memory.at("create net.subnet in id-net.vpc"));
}

#[test]
fn a_replacement_deletes_the_old_resource_before_creating_the_new_one() {
    let plan = Setup {
        desired: vec![vpc("net.vpc", "10.0.0.0/16")],
        actual: vec![found(&vpc("net.vpc", "10.1.0.0/16"), "vpc-1")],
        ..Setup::default()
    }
    .plan();
    assert_eq!(plan.aws[0].change.action, Action::Replace);
    let memory = Memory::default();
    let report = run(&plan, &memory).unwrap();
    assert_eq!(
        memory.log(),
        ["delete net.vpc", "create net.vpc", "inventory test"]
    );
    assert_eq!(report.summary.replace, 1);
}

#[test]
fn kubernetes_follows_aws_in_install_order_and_sees_the_ids_aws_gave() {
    let plan = Setup {
        desired: vec![vpc("net.vpc", "10.0.0.0/16")],
        kube: vec![
            object("Namespace", "apps", None, json!({})),
            object(
                "ConfigMap",
                "ids",
                None,
                json!({"data": {"vpc": "${net.vpc.id}"}}),
            ),
            object("Deployment", "web", None, json!({})),
        ],
        ..Setup::default()
    }
    .plan();
    let memory = Memory::default();
    run(&plan, &memory).unwrap();
    assert_eq!(
        memory.log(),
        [
            "create net.vpc",
            "announce test: apps/v1 Deployment, v1 ConfigMap, v1 Namespace",
            "apply Namespace apps",
            "apply ConfigMap apps/ids vpc=id-net.vpc",
            "apply Deployment apps/web",
            "inventory test",
        ]
    );
}

fn two_releases(never_ready: &[&str]) -> (Plan, Memory) {
    let plan = Setup {
        kube: vec![
            object("ConfigMap", "db-config", Some("db"), json!({})),
            object("ConfigMap", "web-config", Some("web"), json!({})),
        ],
        releases: ReleaseOrder::from([
            ("db".to_string(), (Vec::new(), None)),
            ("web".to_string(), (vec!["db".to_string()], None)),
        ]),
        ..Setup::default()
    }
    .plan();
    let memory = Memory {
        never_ready: never_ready.iter().map(|s| s.to_string()).collect(),
        ..Memory::default()
    };
    (plan, memory)
}

#[test]
fn a_release_waits_for_the_releases_it_depends_on_to_be_ready() {
    let (plan, memory) = two_releases(&[]);
    run(&plan, &memory).unwrap();
    assert_eq!(
        memory.log(),
        [
            "announce test: v1 ConfigMap",
            "apply ConfigMap apps/db-config",
            "ready ConfigMap apps/db-config",
            "apply ConfigMap apps/web-config",
            "inventory test",
        ]
    );
}

#[test]
fn a_dependency_that_is_never_ready_stops_the_releases_after_it() {
    let (plan, memory) = two_releases(&["ConfigMap apps/db-config"]);
    let err = run(&plan, &memory).unwrap_err();
    assert!(matches!(err, Error::NotReady { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("release `db` (which web depends on)"),
        "{err}"
    );
    assert!(!memory.log().iter().any(|l| l.contains("web-config")));
    assert!(!memory.log().contains(&"inventory test".to_string()));
}

#[test]
fn hooks_run_around_their_release_by_weight_and_only_when_it_changes() {
    let setup = || Setup {
        kube: vec![
            object("Namespace", "apps", None, json!({})),
            object("ConfigMap", "db-config", Some("db"), json!({})),
        ],
        releases: ReleaseOrder::from([("db".to_string(), (Vec::new(), None))]),
        hooks: vec![
            hook("migrate", "db", "pre-install", 5),
            hook("schema", "db", "pre-install", -1),
            hook("smoke", "db", "post-install", 0),
            hook("upgrade-only", "db", "pre-upgrade", 0),
        ],
        ..Setup::default()
    };
    let memory = Memory::default();
    run(&setup().plan(), &memory).unwrap();
    assert_eq!(
        memory.log(),
        [
            "announce test: v1 ConfigMap, v1 Namespace",
            "apply Namespace apps",
            "apply Job apps/schema",
            "ready Job apps/schema",
            "delete Job apps/schema",
            "apply Job apps/migrate",
            "ready Job apps/migrate",
            "delete Job apps/migrate",
            "apply ConfigMap apps/db-config",
            "apply Job apps/smoke",
            "ready Job apps/smoke",
            "delete Job apps/smoke",
            "inventory test",
        ]
    );
    // Nothing changes: no hook runs.
    let mut unchanged = setup().plan();
    for c in &mut unchanged.kube {
        c.change.action = Action::NoOp;
    }
    let memory = Memory::default();
    run(&unchanged, &memory).unwrap();
    assert!(
        !memory.log().iter().any(|l| l.contains("Job")),
        "{:?}",
        memory.log()
    );
}

#[test]
fn a_failing_hook_stops_the_release() {
    let plan = Setup {
        kube: vec![object("ConfigMap", "db-config", Some("db"), json!({}))],
        releases: ReleaseOrder::from([("db".to_string(), (Vec::new(), None))]),
        hooks: vec![hook("migrate", "db", "pre-install", 0)],
        ..Setup::default()
    }
    .plan();
    let memory = Memory {
        never_ready: BTreeSet::from(["Job apps/migrate".to_string()]),
        ..Memory::default()
    };
    let err = run(&plan, &memory).unwrap_err();
    assert!(matches!(err, Error::HookFailed { .. }), "{err}");
    assert!(!memory.log().iter().any(|l| l.contains("db-config")));
}

fn many_vpcs(n: usize, parallelism: usize) -> Plan {
    Setup {
        desired: (0..n)
            .map(|i| vpc(&format!("m{i}.vpc"), &format!("10.{i}.0.0/16")))
            .collect(),
        parallelism,
        ..Setup::default()
    }
    .plan()
}

#[test]
fn parallelism_bounds_concurrent_changes() {
    let memory = Memory::default();
    run(&many_vpcs(6, 2), &memory).unwrap();
    assert_eq!(memory.most.get(), 2);
    let memory = Memory::default();
    run(&many_vpcs(6, 8), &memory).unwrap();
    assert_eq!(memory.most.get(), 6, "independent changes overlap");
    let memory = Memory::default();
    run(&many_vpcs(3, 1), &memory).unwrap();
    assert_eq!(memory.most.get(), 1);
}

#[test]
fn a_failure_half_way_stops_dependents_and_leaves_kubernetes_alone() {
    let plan = Setup {
        desired: vec![
            vpc("net.vpc", "10.0.0.0/16"),
            subnet("net.subnet", "net.vpc"),
            vpc("other.vpc", "10.5.0.0/16"),
        ],
        kube: vec![object("Namespace", "apps", None, json!({}))],
        ..Setup::default()
    }
    .plan();
    let memory = Memory {
        fail: BTreeSet::from(["create net.vpc".to_string()]),
        ..Memory::default()
    };
    let err = run(&plan, &memory).unwrap_err();
    assert!(err.to_string().contains("create net.vpc"), "{err}");
    let log = memory.log();
    // What ran beside the failure finished; nothing that needed it started; no Kubernetes write.
    assert!(log.contains(&"create other.vpc".to_string()), "{log:?}");
    assert!(
        !log.iter().any(|l| l.starts_with("create net.subnet")),
        "{log:?}"
    );
    assert!(!log
        .iter()
        .any(|l| l.starts_with("apply") || l.starts_with("inventory")));
}

#[test]
fn destroy_removes_kubernetes_first_then_aws_by_deletion_order() {
    let v = vpc("net.vpc", "10.0.0.0/16");
    let s = subnet("net.subnet", "net.vpc");
    let mut ns = object("Namespace", "apps", None, json!({}));
    ns.change.action = Action::Delete;
    ns.live = ns.desired.take();
    let plan = Setup {
        goal: Goal::Destroy,
        actual: vec![found(&v, "vpc-1"), found(&s, "subnet-1")],
        kube: vec![ns],
        ..Setup::default()
    }
    .plan();
    let memory = Memory::default();
    run(&plan, &memory).unwrap();
    assert_eq!(
        memory.log(),
        [
            "delete Namespace apps",
            "delete inventory test",
            "delete net.subnet",
            "delete net.vpc",
        ]
    );
}

#[test]
fn a_plan_with_a_conflict_changes_nothing() {
    let mut plan = Setup {
        desired: vec![vpc("net.vpc", "10.0.0.0/16")],
        ..Setup::default()
    }
    .plan();
    plan.aws[0].conflict = Some("vpc-0abc".into());
    let memory = Memory::default();
    assert!(run(&plan, &memory).is_err());
    assert!(memory.log().is_empty());
}

#[test]
fn release_waves_count_the_longest_chain_of_dependencies() {
    let releases = ReleaseOrder::from([
        ("a".to_string(), (Vec::new(), None)),
        ("b".to_string(), (vec!["a".to_string()], None)),
        (
            "c".to_string(),
            (vec!["a".to_string(), "b".to_string()], None),
        ),
        ("d".to_string(), (vec!["unknown".to_string()], None)),
    ]);
    let waves = release_waves(&releases);
    assert_eq!(
        waves,
        BTreeMap::from([("a", 0), ("b", 1), ("c", 2), ("d", 0)])
    );
}

#[test]
fn an_unowned_kubernetes_object_is_a_conflict_and_nothing_is_written() {
    let mut plan = Setup {
        desired: vec![vpc("net.vpc", "10.0.0.0/16")],
        kube: vec![object("ConfigMap", "taken", None, json!({}))],
        ..Setup::default()
    }
    .plan();
    plan.kube[0].conflict =
        Some("ConfigMap apps/taken exists without the environment's label".into());
    let memory = Memory::default();
    let err = run(&plan, &memory).unwrap_err();
    assert_eq!(err.exit_code(), exit::CONFLICT, "{err}");
    assert!(err.to_string().contains("ConfigMap apps/taken"), "{err}");
    assert!(memory.log().is_empty(), "{:?}", memory.log());
}

#[test]
fn a_namespace_holding_foreign_objects_is_kept_and_says_what_it_holds() {
    let mut ns = object("Namespace", "apps", None, json!({}));
    ns.change.action = Action::Delete;
    ns.live = ns.desired.take();
    let plan = Setup {
        goal: Goal::Destroy,
        kube: vec![ns],
        ..Setup::default()
    }
    .plan();
    let memory = Memory {
        foreign: BTreeMap::from([(
            "Namespace apps".to_string(),
            "Ingress apps/web, PersistentVolumeClaim apps/data".to_string(),
        )]),
        ..Memory::default()
    };
    let report = run(&plan, &memory).unwrap();
    assert_eq!(report.kept, vec!["apps".to_string()]);
    assert_eq!(
        report.notes,
        vec!["namespace apps kept: it holds objects that envboot does not own (Ingress apps/web, PersistentVolumeClaim apps/data)".to_string()]
    );
}

#[test]
fn a_lost_lock_stops_the_run_before_its_next_write() {
    let plan = Setup {
        desired: vec![vpc("net.vpc", "10.0.0.0/16")],
        ..Setup::default()
    }
    .plan();
    let health = std::sync::Arc::new(envboot_core::lock::LockHealth::default());
    health.lose("renewing the lock failed: injected".into());
    LOCKS
        .lock()
        .expect("locks")
        .insert(plan.environment.clone(), health);
    let memory = Memory::default();
    let guarded = provider::Guarded::new(&memory, &plan.environment);
    let err = futures::executor::block_on(execute(&plan, &guarded, Some(&guarded), &mut |_| {}))
        .unwrap_err();
    LOCKS.lock().expect("locks").remove(&plan.environment);
    assert!(
        err.to_string().contains("renewing the lock failed"),
        "{err}"
    );
    assert!(
        memory.log().is_empty(),
        "nothing written: {:?}",
        memory.log()
    );
}

/// Plans both layers through the in-memory discovery.
fn plan_layers(
    memory: &Memory,
    resources: &[Resource],
    manifests: &[Manifest],
    adopt: bool,
) -> (Vec<AwsChange>, Vec<KubeChange>) {
    futures::executor::block_on(async {
        let aws = plan_cloud(memory, ENV, resources, adopt).await.unwrap();
        let options = PlanOptions {
            adopt,
            ..PlanOptions::default()
        };
        let (kube, _, _) = plan_cluster(
            ENV,
            None,
            manifests,
            &[],
            Goal::Apply,
            options,
            memory,
            &known_attributes(&aws),
            &cloud_addresses(resources.iter().map(|r| r.address.as_str())),
        )
        .await
        .unwrap();
        (aws, kube)
    })
}

fn manifest(object: Value) -> Manifest {
    Manifest {
        source: "configMaps".into(),
        object,
        default_namespace: Some("apps".into()),
        sensitive: Vec::new(),
    }
}

#[test]
fn a_resource_named_like_one_to_create_is_a_conflict_unless_adopted() {
    let net = vpc("net.vpc", "10.0.0.0/16");
    let mut untagged = found(&net, "vpc-9");
    untagged.revision = None;
    let memory = Memory {
        named: vec![Named {
            what: "aws_vpc `test-net.vpc` (vpc-9) exists".into(),
            owner: None,
            actual: untagged,
        }],
        ..Memory::default()
    };
    let (aws, _) = plan_layers(&memory, std::slice::from_ref(&net), &[], false);
    assert_eq!(aws[0].change.action, Action::Create);
    assert!(
        aws[0]
            .conflict
            .as_deref()
            .unwrap_or_default()
            .contains("--adopt"),
        "{aws:?}"
    );
    let (adopted, _) = plan_layers(&memory, std::slice::from_ref(&net), &[], true);
    assert_eq!(adopted[0].change.action, Action::Update);
    assert!(adopted[0].adopt && adopted[0].conflict.is_none());
    assert_eq!(adopted[0].id.as_deref(), Some("vpc-9"));
}

#[test]
fn objects_are_planned_from_what_the_cluster_has_with_aws_ids_resolved() {
    let net = vpc("net.vpc", "10.0.0.0/16");
    let cm = |name: &str, data: Value| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "apps"}, "data": data})
    };
    // What envboot applied carries its field manager, as the server records it.
    let applied = |mut object: Value| {
        object["metadata"]["managedFields"] =
            json!([{"manager": "envboot", "operation": "Apply", "fieldsV1": {}}]);
        object
    };
    let memory = Memory {
        actual: vec![found(&net, "vpc-1")],
        live: vec![
            applied(cm("same", json!({"vpc": "vpc-1"}))),
            applied(cm("gone", json!({}))),
        ],
        unowned: BTreeMap::from([(
            ObjectKey::of(&cm("theirs", json!({}))),
            "it exists without the environment's label".to_string(),
        )]),
        ..Memory::default()
    };
    let declared = [
        manifest(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "same"}, "data": {"vpc": "${net.vpc.id}"}})),
        manifest(cm("theirs", json!({}))),
    ];
    let (aws, kube) = plan_layers(&memory, &[net], &declared, false);
    assert_eq!(aws[0].change.action, Action::NoOp);
    let by_name = |n: &str| {
        kube.iter()
            .find(|c| c.key.name == n)
            .unwrap_or_else(|| panic!("{n} not planned: {kube:?}"))
    };
    assert_eq!(by_name("same").change.action, Action::NoOp);
    assert_eq!(by_name("gone").change.action, Action::Delete);
    assert!(by_name("theirs").conflict.is_some());
    assert_eq!(memory.log(), ["discover aws test", "discover kube test"]);
}

#[test]
fn only_references_to_the_environments_cloud_resources_are_envboots_in_kubernetes_objects() {
    let cloud = cloud_addresses(["network.vpc", "web.server"]);
    let chart_text = serde_json::json!({"data": {
        "start.sh": "exec app --home ${HOME:-/root} ${ENVIRONMENT:+($ENVIRONMENT)}",
        "application.properties": "url=${spring.datasource.url}",
        "two": "${a.b}",
    }});
    assert_eq!(cloud_reference(&chart_text, &cloud), None);
    let with_vpc = serde_json::json!({"data": {"VPC": "${network.vpc.id}", "HOME": "${HOME}"}});
    assert_eq!(
        cloud_reference(&with_vpc, &cloud).as_deref(),
        Some("network.vpc.id")
    );
}

#[test]
fn fields_derived_from_a_secret_stay_masked_after_the_dry_run_confirms_them() {
    let cm = |greeting: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "hello-config", "namespace": "apps"},
            "data": {"GREETING": greeting, "LEVEL": "info"}})
    };
    let mut live = cm("postgres://app:old-value@db");
    live["metadata"]["managedFields"] =
        json!([{"manager": "envboot", "operation": "Apply", "fieldsV1": {}}]);
    let memory = Memory {
        live: vec![live],
        ..Memory::default()
    };
    let mut declared = manifest(cm("postgres://app:new-value@db"));
    declared.object["data"]["LEVEL"] = json!("debug");
    declared.sensitive = vec![vec!["data".into(), "GREETING".into()]];
    let (_, kube) = plan_layers(&memory, &[], &[declared], false);
    let change = kube
        .iter()
        .find(|c| c.key.name == "hello-config")
        .expect("planned");
    assert!(
        memory.log().iter().any(|l| l.starts_with("dry-run")),
        "{:?}",
        memory.log()
    );
    let field = |path: &str| {
        change
            .change
            .fields
            .iter()
            .find(|f| f.path == path)
            .unwrap_or_else(|| panic!("{path} not in {:?}", change.change.fields))
    };
    let greeting = field("data.GREETING");
    assert_eq!(greeting.before, Some(envboot_core::plan::Value::Sensitive));
    assert_eq!(greeting.after, Some(envboot_core::plan::Value::Sensitive));
    // what no secret reaches is shown as it is
    assert_eq!(
        field("data.LEVEL").after,
        Some(envboot_core::plan::Value::Known("\"debug\"".into()))
    );
}

#[test]
fn a_plan_searches_the_inventorys_kinds_or_every_kind_where_envboot_may_have_written() {
    let none = kube::Namespaces::default();
    let ours = kube::Namespaces {
        own: ["shop".to_string()].into(),
        ..kube::Namespaces::default()
    };
    let inventory = Inventory {
        pending: [("v1".to_string(), "LimitRange".to_string())].into(),
        ..Inventory::default()
    };
    // never applied here: the declared and the usual kinds only
    let usual = super::kinds_to_search(None, Goal::Apply, &none).expect("some kinds");
    assert_eq!(usual.len(), kube::USUAL_KINDS.len());
    assert!(usual.contains(&("apps/v1".to_string(), "Deployment".to_string())));
    // the inventory is gone but the environment's namespace is there: every kind
    assert_eq!(super::kinds_to_search(None, Goal::Apply, &ours), None);
    // with one, exactly the kinds it names: it names all envboot may have written
    assert_eq!(
        super::kinds_to_search(Some(&inventory), Goal::Apply, &ours),
        Some(inventory.kinds())
    );
    // destroy leaves nothing labelled behind
    assert_eq!(
        super::kinds_to_search(Some(&inventory), Goal::Destroy, &none),
        None
    );
}

#[test]
fn an_apply_names_the_kinds_it_will_write_before_its_first_write() {
    let mut plan = Setup {
        kube: vec![
            object("Namespace", "apps", None, json!({})),
            object("ConfigMap", "settings", None, json!({})),
            object("Deployment", "web", None, json!({})),
        ],
        ..Setup::default()
    }
    .plan();
    // a crash half-way: the deployment is never written
    let memory = Memory {
        fail: ["apply Deployment apps/web".to_string()].into(),
        ..Memory::default()
    };
    assert!(run(&plan, &memory).is_err());
    assert_eq!(
        memory.log(),
        [
            "announce test: apps/v1 Deployment, v1 ConfigMap, v1 Namespace",
            "apply Namespace apps",
            "apply ConfigMap apps/settings",
            "apply Deployment apps/web",
        ]
    );

    // kinds the inventory names already are not announced again; a new one is
    let mut inventory = Inventory {
        pending: [
            ("apps/v1".to_string(), "Deployment".to_string()),
            ("v1".to_string(), "ConfigMap".to_string()),
            ("v1".to_string(), "Namespace".to_string()),
        ]
        .into(),
        ..Inventory::default()
    };
    plan.inventory = Some(inventory.clone());
    let memory = Memory::default();
    run(&plan, &memory).unwrap();
    assert!(memory.log().iter().all(|l| !l.starts_with("announce")));
    assert_eq!(
        memory.log().last().map(String::as_str),
        Some("inventory test")
    );
    inventory
        .pending
        .remove(&("v1".to_string(), "ConfigMap".to_string()));
    plan.inventory = Some(inventory);
    let memory = Memory::default();
    run(&plan, &memory).unwrap();
    assert_eq!(
        memory.log()[0],
        "announce test: apps/v1 Deployment, v1 ConfigMap, v1 Namespace"
    );
}
