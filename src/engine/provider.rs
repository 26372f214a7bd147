//! What the engine drives: the cloud layer ([`Cloud`]) and the cluster layer ([`Cluster`]).
//!
//! envboot-aws's `Aws` and envboot-kube's `Kube` implement these for real servers; the
//! engine's unit tests (tests.rs) drive apply through an in-memory implementation, so the
//! order of changes, waves, hooks, the parallelism bound and failures half way are tested from
//! data. Plan reads through [`CloudDiscovery`] and [`ClusterDiscovery`] (what exists, by the
//! environment's tags and labels) and diffs with the providers' pure diff functions; apply
//! writes and waits through [`Cloud`] and [`Cluster`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use crate::aws::{self, Actual, Aws, AwsChange, DeleteContext, Named};
use crate::kube::{self, inventory::Inventory, Deletion, Kube, ObjectKey};
use crate::model::spec::SecurityGroup;
use crate::model::ResourceSpec;

/// What the cloud layer has: the reads a plan makes. Never writes.
pub(crate) trait CloudDiscovery {
    /// Everything that carries the environment's tags.
    async fn discover(&self, environment: &str) -> aws::Result<Vec<Actual>>;
    /// Resources named like those `changes` create (tagged or not): conflicts, or adoptions.
    async fn find_named(&self, environment: &str, changes: &[AwsChange])
        -> aws::Result<Vec<Named>>;
}

/// What the cluster layer has: the reads a plan makes, and server-side dry runs. Never writes.
pub(crate) trait ClusterDiscovery {
    /// Sets or clears `metadata.namespace` by whether the kind is namespaced.
    async fn place(&self, object: &mut Value, default_namespace: Option<&str>) -> kube::Result<()>;
    /// The record of what the environment has in the cluster, if any.
    async fn read_inventory(&self, environment: &str) -> kube::Result<Option<Inventory>>;
    /// Every (apiVersion, kind) the cluster can list.
    async fn listable_kinds(&self) -> kube::Result<BTreeSet<(String, String)>>;
    /// The environment's objects (by label) of `kinds` and `extra`.
    async fn discover(
        &self,
        environment: &str,
        kinds: &BTreeSet<(String, String)>,
        extra: &BTreeSet<(String, String)>,
    ) -> kube::Result<Vec<Value>>;
    /// The namespaces that exist, the environment's and the others.
    async fn namespaces(&self, environment: &str) -> kube::Result<kube::Namespaces>;
    /// Of the objects to create, those that exist without the environment's label, with why.
    async fn unowned_existing(
        &self,
        environment: &str,
        creates: &[(String, ObjectKey)],
        namespaces: &BTreeSet<String>,
    ) -> kube::Result<BTreeMap<ObjectKey, String>>;
    /// What namespace `ns` holds that is not the environment's, as `Kind name`.
    async fn foreign_objects(&self, ns: &str, environment: &str) -> kube::Result<Vec<String>>;
    /// The cluster's version and API versions, as charts see them in `.Capabilities`.
    async fn capabilities(&self) -> kube::Result<kube::Capabilities>;
    /// The cluster's OpenAPI schema, which `helm install` checks objects against.
    async fn schema(&self) -> kube::Result<std::sync::Arc<kube::schema::Schema>>;
    /// Helm's `lookup` (see [`Kube::lookup`]).
    async fn lookup(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> std::result::Result<Value, String>;
    /// The object a server-side apply would leave, and whether forcing heals drift only.
    async fn dry_run(
        &self,
        api_version: &str,
        key: &ObjectKey,
        object: &Value,
        live: &Value,
        force_conflicts: bool,
    ) -> kube::Result<(Value, bool)>;
}

impl CloudDiscovery for Aws {
    async fn discover(&self, environment: &str) -> aws::Result<Vec<Actual>> {
        Aws::discover(self, environment).await
    }
    async fn find_named(
        &self,
        environment: &str,
        changes: &[AwsChange],
    ) -> aws::Result<Vec<Named>> {
        Aws::find_named(self, environment, changes).await
    }
}

impl ClusterDiscovery for Kube {
    async fn place(&self, object: &mut Value, default_namespace: Option<&str>) -> kube::Result<()> {
        Kube::place(self, object, default_namespace).await
    }
    async fn read_inventory(&self, environment: &str) -> kube::Result<Option<Inventory>> {
        Kube::read_inventory(self, environment).await
    }
    async fn listable_kinds(&self) -> kube::Result<BTreeSet<(String, String)>> {
        Kube::listable_kinds(self).await
    }
    async fn capabilities(&self) -> kube::Result<kube::Capabilities> {
        Kube::capabilities(self).await
    }
    async fn schema(&self) -> kube::Result<std::sync::Arc<kube::schema::Schema>> {
        Kube::schema(self).await
    }
    async fn lookup(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> std::result::Result<Value, String> {
        Kube::lookup(self, api_version, kind, namespace, name).await
    }
    async fn discover(
        &self,
        environment: &str,
        kinds: &BTreeSet<(String, String)>,
        extra: &BTreeSet<(String, String)>,
    ) -> kube::Result<Vec<Value>> {
        Kube::discover(self, environment, kinds, extra).await
    }
    async fn namespaces(&self, environment: &str) -> kube::Result<kube::Namespaces> {
        Kube::namespaces(self, environment).await
    }
    async fn unowned_existing(
        &self,
        environment: &str,
        creates: &[(String, ObjectKey)],
        namespaces: &BTreeSet<String>,
    ) -> kube::Result<BTreeMap<ObjectKey, String>> {
        Kube::unowned_existing(self, environment, creates, namespaces).await
    }
    async fn foreign_objects(&self, ns: &str, environment: &str) -> kube::Result<Vec<String>> {
        Kube::foreign_objects(self, ns, environment).await
    }
    async fn dry_run(
        &self,
        api_version: &str,
        key: &ObjectKey,
        object: &Value,
        live: &Value,
        force_conflicts: bool,
    ) -> kube::Result<(Value, bool)> {
        Kube::dry_run(self, api_version, key, object, live, force_conflicts).await
    }
}

/// The cloud layer's writes and waits.
///
/// # Assumptions
/// Every call is idempotent across runs: a create carries a client token derived from the
/// environment, address, revision and spec, so a rerun after a crash never duplicates.
pub(crate) trait Cloud {
    /// Creates the resource `address`; returns its attributes (`id`, ...).
    async fn create(
        &self,
        environment: &str,
        revision: &str,
        address: &str,
        spec: &ResourceSpec,
    ) -> aws::Result<BTreeMap<String, String>>;
    /// Changes an existing resource in place to `spec`.
    async fn update(
        &self,
        environment: &str,
        revision: &str,
        change: &AwsChange,
        spec: &ResourceSpec,
    ) -> aws::Result<()>;
    /// Deletes an existing resource (and what AWS needs gone first).
    async fn delete(&self, change: &AwsChange, ctx: &DeleteContext) -> aws::Result<()>;
    /// Waits for a kept resource that is still becoming available.
    async fn settle(&self, change: &AwsChange) -> aws::Result<()>;
    /// Whether `settle` has anything to wait for.
    fn needs_settling(&self, change: &AwsChange) -> bool;
    /// Adds the rules a security group was created without (their sources did not exist yet).
    async fn add_missing_rules(
        &self,
        address: &str,
        group: &str,
        made: &SecurityGroup,
        full: &SecurityGroup,
    ) -> aws::Result<()>;
}

/// The cluster layer's writes and waits.
pub(crate) trait Cluster {
    /// Server-side applies `object`.
    async fn apply(
        &self,
        api_version: &str,
        key: &ObjectKey,
        object: &Value,
        force: bool,
    ) -> kube::Result<()>;
    /// Deletes the object, or keeps it (a namespace holding objects that are not ours).
    async fn delete(
        &self,
        api_version: &str,
        key: &ObjectKey,
        environment: &str,
    ) -> kube::Result<Deletion>;
    /// Waits until the object is gone; `false` if it is still there after `timeout`.
    async fn wait_deleted(
        &self,
        api_version: &str,
        key: &ObjectKey,
        timeout: Duration,
    ) -> kube::Result<bool>;
    /// Waits until every target is ready; returns those that are not, with why.
    async fn wait_ready(
        &self,
        environment: &str,
        targets: &[(String, ObjectKey)],
        timeout: Duration,
    ) -> kube::Result<Vec<(ObjectKey, String)>>;
    /// Records what the environment has in the cluster.
    async fn write_inventory(&self, environment: &str, inventory: &Inventory) -> kube::Result<()>;
    /// Removes the record (destroy).
    async fn delete_inventory(&self, environment: &str) -> kube::Result<()>;
}

impl Cloud for Aws {
    async fn create(
        &self,
        environment: &str,
        revision: &str,
        address: &str,
        spec: &ResourceSpec,
    ) -> aws::Result<BTreeMap<String, String>> {
        Aws::create(self, environment, revision, address, spec).await
    }
    async fn update(
        &self,
        environment: &str,
        revision: &str,
        change: &AwsChange,
        spec: &ResourceSpec,
    ) -> aws::Result<()> {
        Aws::update(self, environment, revision, change, spec).await
    }
    async fn delete(&self, change: &AwsChange, ctx: &DeleteContext) -> aws::Result<()> {
        Aws::delete(self, change, ctx).await
    }
    async fn settle(&self, change: &AwsChange) -> aws::Result<()> {
        Aws::settle(self, change).await
    }
    fn needs_settling(&self, change: &AwsChange) -> bool {
        aws::needs_settling(change)
    }
    async fn add_missing_rules(
        &self,
        address: &str,
        group: &str,
        made: &SecurityGroup,
        full: &SecurityGroup,
    ) -> aws::Result<()> {
        Aws::add_missing_rules(self, address, group, made, full).await
    }
}

impl Cluster for Kube {
    async fn apply(
        &self,
        api_version: &str,
        key: &ObjectKey,
        object: &Value,
        force: bool,
    ) -> kube::Result<()> {
        Kube::apply(self, api_version, key, object, force).await
    }
    async fn delete(
        &self,
        api_version: &str,
        key: &ObjectKey,
        environment: &str,
    ) -> kube::Result<Deletion> {
        Kube::delete(self, api_version, key, environment).await
    }
    async fn wait_deleted(
        &self,
        api_version: &str,
        key: &ObjectKey,
        timeout: Duration,
    ) -> kube::Result<bool> {
        Kube::wait_deleted(self, api_version, key, timeout).await
    }
    async fn wait_ready(
        &self,
        environment: &str,
        targets: &[(String, ObjectKey)],
        timeout: Duration,
    ) -> kube::Result<Vec<(ObjectKey, String)>> {
        Kube::wait_ready(self, environment, targets, timeout).await
    }
    async fn write_inventory(&self, environment: &str, inventory: &Inventory) -> kube::Result<()> {
        Kube::write_inventory(self, environment, inventory).await
    }
    async fn delete_inventory(&self, environment: &str) -> kube::Result<()> {
        Kube::delete_inventory(self, environment).await
    }
}

/// A provider that checks the environment's lock before every write: a run whose lock could
/// not be renewed (another run may hold it now) stops before its next change.
pub(crate) struct Guarded<'a, P> {
    inner: &'a P,
    environment: &'a str,
}

impl<'a, P> Guarded<'a, P> {
    pub(crate) fn new(inner: &'a P, environment: &'a str) -> Guarded<'a, P> {
        Guarded { inner, environment }
    }

    fn check(&self) -> Result<(), super::Error> {
        match super::lock_lost(self.environment) {
            Some(why) => Err(super::Error::LockLost {
                environment: self.environment.to_string(),
                why,
            }),
            None => Ok(()),
        }
    }
}

/// The error a guarded AWS call reports for a lost lock.
fn aws_stopped(e: super::Error) -> aws::Error {
    aws::Error::CallFailed {
        resource: "the environment's lock".into(),
        call: "renew",
        code: Some("LockLost".into()),
        message: e.to_string(),
    }
}

/// The error a guarded Kubernetes call reports for a lost lock.
fn kube_stopped(e: super::Error) -> kube::Error {
    kube::Error::Conflict {
        object: "the environment's lock".into(),
        message: e.to_string(),
    }
}

impl<P: Cloud> Cloud for Guarded<'_, P> {
    async fn create(
        &self,
        environment: &str,
        revision: &str,
        address: &str,
        spec: &ResourceSpec,
    ) -> aws::Result<BTreeMap<String, String>> {
        self.check().map_err(aws_stopped)?;
        self.inner
            .create(environment, revision, address, spec)
            .await
    }
    async fn update(
        &self,
        environment: &str,
        revision: &str,
        change: &AwsChange,
        spec: &ResourceSpec,
    ) -> aws::Result<()> {
        self.check().map_err(aws_stopped)?;
        self.inner.update(environment, revision, change, spec).await
    }
    async fn delete(&self, change: &AwsChange, ctx: &DeleteContext) -> aws::Result<()> {
        self.check().map_err(aws_stopped)?;
        self.inner.delete(change, ctx).await
    }
    async fn settle(&self, change: &AwsChange) -> aws::Result<()> {
        self.inner.settle(change).await
    }
    fn needs_settling(&self, change: &AwsChange) -> bool {
        self.inner.needs_settling(change)
    }
    async fn add_missing_rules(
        &self,
        address: &str,
        group: &str,
        made: &SecurityGroup,
        full: &SecurityGroup,
    ) -> aws::Result<()> {
        self.check().map_err(aws_stopped)?;
        self.inner
            .add_missing_rules(address, group, made, full)
            .await
    }
}

impl<P: Cluster> Cluster for Guarded<'_, P> {
    async fn apply(
        &self,
        api_version: &str,
        key: &ObjectKey,
        object: &Value,
        force: bool,
    ) -> kube::Result<()> {
        self.check().map_err(kube_stopped)?;
        self.inner.apply(api_version, key, object, force).await
    }
    async fn delete(
        &self,
        api_version: &str,
        key: &ObjectKey,
        environment: &str,
    ) -> kube::Result<Deletion> {
        self.check().map_err(kube_stopped)?;
        self.inner.delete(api_version, key, environment).await
    }
    async fn wait_deleted(
        &self,
        api_version: &str,
        key: &ObjectKey,
        timeout: Duration,
    ) -> kube::Result<bool> {
        self.inner.wait_deleted(api_version, key, timeout).await
    }
    async fn wait_ready(
        &self,
        environment: &str,
        targets: &[(String, ObjectKey)],
        timeout: Duration,
    ) -> kube::Result<Vec<(ObjectKey, String)>> {
        self.inner.wait_ready(environment, targets, timeout).await
    }
    async fn write_inventory(&self, environment: &str, inventory: &Inventory) -> kube::Result<()> {
        self.check().map_err(kube_stopped)?;
        self.inner.write_inventory(environment, inventory).await
    }
    async fn delete_inventory(&self, environment: &str) -> kube::Result<()> {
        self.check().map_err(kube_stopped)?;
        self.inner.delete_inventory(environment).await
    }
}
