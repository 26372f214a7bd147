//! The environment's inventory in its cluster: what envboot applied last, per release, with the
//! commit and the time. A ConfigMap `envboot-inventory-<environment>` in the lock namespace,
//! labelled `envboot.dev/inventory-for: <environment>` (not with the ownership label, so it is
//! never planned, pruned or reported as the user's).
//!
//! # Guarantees
//! - **Written ahead**: before an apply writes an object of a kind the inventory does not
//!   name, the kind is added under `pending` (and the inventory created if there is none). So
//!   at every moment the inventory names every kind envboot may have written for the
//!   environment, even after a crash half-way, and a plan lists only those kinds and the
//!   declared ones. Without an inventory, a plan also lists the usual kinds
//!   ([`crate::USUAL_KINDS`]).
//! - Labels stay the truth. Where no inventory exists but a namespace carries the environment's
//!   label (the inventory was deleted by hand), pruning lists every kind the cluster serves
//!   ([`Kube::listable_kinds`]) and the next apply writes the inventory again. No inventory and
//!   no such namespace means envboot never wrote there for the environment: a first plan costs
//!   requests in proportion to the kinds declared, not the kinds served.
//! - Keys: `revision`, `appliedAt` (RFC 3339 with nanoseconds; both empty until a first apply
//!   completes), `pending` (one `apiVersion kind` line per kind an unfinished apply may have
//!   written; a completed apply removes it), and one key per group of objects: `release.<name>`
//!   for a chart release, `environment` for namespaces, ConfigMaps and Secrets. Each holds one
//!   `apiVersion kind namespace name` line per object (`-` for no namespace).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::{json, Value};

use super::lock::LOCK_NAMESPACE;
use super::{Error, Kube, ObjectKey, Result, FIELD_MANAGER};

/// Label naming the environment an inventory belongs to.
pub const LABEL_INVENTORY: &str = "envboot.dev/inventory-for";

/// The key of the kinds an unfinished apply may have written.
const PENDING: &str = "pending";

/// One object in the inventory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub api_version: String,
    pub key: ObjectKey,
}

/// What envboot applied last to an environment's cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    pub revision: String,
    pub applied_at: String,
    /// Group (`release.<name>` or `environment`) to its objects.
    pub groups: BTreeMap<String, BTreeSet<Entry>>,
    /// Kinds (apiVersion, kind) an apply that has not completed may have written.
    pub pending: BTreeSet<(String, String)>,
}

/// The name of an environment's inventory ConfigMap.
pub fn name(environment: &str) -> String {
    format!("envboot-inventory-{environment}")
}

/// The inventory group of a rendered object: its release, or the environment's own objects.
pub fn group_of(object: &Value) -> String {
    match object["metadata"]["labels"][envboot_core::render::LABEL_RELEASE].as_str() {
        Some(release) => format!("release.{release}"),
        None => "environment".to_string(),
    }
}

impl Inventory {
    /// The releases it lists objects for (groups `release.<name>`, see [`group_of`]).
    pub fn releases(&self) -> BTreeSet<String> {
        self.groups
            .iter()
            .filter(|(_, entries)| !entries.is_empty())
            .filter_map(|(group, _)| group.strip_prefix("release."))
            .map(str::to_string)
            .collect()
    }

    /// Every (apiVersion, kind) it holds, pending ones included.
    pub fn kinds(&self) -> BTreeSet<(String, String)> {
        let mut kinds: BTreeSet<(String, String)> = self
            .groups
            .values()
            .flatten()
            .map(|e| (e.api_version.clone(), e.key.kind.clone()))
            .collect();
        kinds.extend(self.pending.iter().cloned());
        kinds
    }

    /// Whether both list the same objects (and pending kinds) for the same commit.
    pub fn same_content(&self, other: &Inventory) -> bool {
        self.revision == other.revision
            && self.groups == other.groups
            && self.pending == other.pending
    }

    /// Whether a completed apply wrote it (not only an apply announcing what it may write).
    pub fn applied(&self) -> bool {
        !self.revision.is_empty()
    }

    fn to_data(&self) -> BTreeMap<String, String> {
        let mut data = BTreeMap::new();
        data.insert("revision".to_string(), self.revision.clone());
        data.insert("appliedAt".to_string(), self.applied_at.clone());
        if !self.pending.is_empty() {
            let lines: Vec<String> = self
                .pending
                .iter()
                .map(|(api_version, kind)| format!("{api_version} {kind}"))
                .collect();
            data.insert(PENDING.to_string(), lines.join("\n"));
        }
        for (group, entries) in &self.groups {
            let lines: Vec<String> = entries
                .iter()
                .map(|e| {
                    format!(
                        "{} {} {} {}",
                        e.api_version,
                        e.key.kind,
                        e.key.namespace.as_deref().unwrap_or("-"),
                        e.key.name
                    )
                })
                .collect();
            data.insert(group.clone(), lines.join("\n"));
        }
        data
    }

    fn from_data(data: &BTreeMap<String, String>) -> Inventory {
        let mut inventory = Inventory {
            revision: data.get("revision").cloned().unwrap_or_default(),
            applied_at: data.get("appliedAt").cloned().unwrap_or_default(),
            groups: BTreeMap::new(),
            pending: BTreeSet::new(),
        };
        for (group, text) in data {
            if group == PENDING {
                inventory.pending = text
                    .lines()
                    .filter_map(|line| line.split_once(' '))
                    .map(|(a, k)| (a.to_string(), k.to_string()))
                    .collect();
                continue;
            }
            if group == "revision" || group == "appliedAt" {
                continue;
            }
            let entries = text
                .lines()
                .filter_map(|line| {
                    let mut parts = line.split(' ');
                    let (api_version, kind, namespace, name) =
                        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
                    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
                    Some(Entry {
                        api_version: api_version.to_string(),
                        key: ObjectKey {
                            group: group.to_string(),
                            kind: kind.to_string(),
                            namespace: (namespace != "-").then(|| namespace.to_string()),
                            name: name.to_string(),
                        },
                    })
                })
                .collect();
            inventory.groups.insert(group.clone(), entries);
        }
        inventory
    }
}

/// Now, in RFC 3339 with nanoseconds.
pub fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

impl Kube {
    fn inventories(&self) -> Api<ConfigMap> {
        Api::namespaced(self.client.clone(), LOCK_NAMESPACE)
    }

    /// The environment's inventory, if the cluster has one.
    pub async fn read_inventory(&self, environment: &str) -> Result<Option<Inventory>> {
        let name = name(environment);
        let found =
            self.inventories()
                .get_opt(&name)
                .await
                .map_err(|source| Error::CallFailed {
                    object: format!("ConfigMap {LOCK_NAMESPACE}/{name}"),
                    call: "get",
                    source,
                })?;
        Ok(found.map(|cm| Inventory::from_data(&cm.data.unwrap_or_default())))
    }

    /// Writes the environment's inventory (server-side apply, field manager `envboot`).
    pub async fn write_inventory(&self, environment: &str, inventory: &Inventory) -> Result<()> {
        let name = name(environment);
        let object = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": LOCK_NAMESPACE,
                "labels": {LABEL_INVENTORY: environment},
            },
            "data": inventory.to_data(),
        });
        self.inventories()
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&object),
            )
            .await
            .map_err(|source| Error::CallFailed {
                object: format!("ConfigMap {LOCK_NAMESPACE}/{name}"),
                call: "apply",
                source,
            })?;
        Ok(())
    }

    /// Deletes the environment's inventory (after destroy).
    pub async fn delete_inventory(&self, environment: &str) -> Result<()> {
        let name = name(environment);
        match self
            .inventories()
            .delete(&name, &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(source) => Err(Error::CallFailed {
                object: format!("ConfigMap {LOCK_NAMESPACE}/{name}"),
                call: "delete",
                source,
            }),
        }
    }

    /// Every kind the cluster serves that can be listed (preferred versions), to rebuild an
    /// inventory from labels.
    pub async fn listable_kinds(&self) -> Result<BTreeSet<(String, String)>> {
        let discovery = kube::discovery::Discovery::new(self.client.clone())
            .run()
            .await
            .map_err(|source| Error::CallFailed {
                object: "the cluster's API groups".to_string(),
                call: "discovery",
                source,
            })?;
        let mut kinds = BTreeSet::new();
        for group in discovery.groups() {
            for (ar, caps) in group.recommended_resources() {
                let skip = ar.plural.contains('/')
                    || !caps.supports_operation(kube::discovery::verbs::LIST)
                    || matches!(ar.kind.as_str(), "Event" | "ComponentStatus");
                if !skip {
                    kinds.insert((ar.api_version.clone(), ar.kind.clone()));
                }
            }
        }
        Ok(kinds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inventory_round_trips_through_its_configmap_data() {
        let mut inventory = Inventory {
            revision: "abc".into(),
            applied_at: now(),
            groups: BTreeMap::new(),
            pending: [
                (
                    "networking.k8s.io/v1".to_string(),
                    "NetworkPolicy".to_string(),
                ),
                ("v1".to_string(), "ResourceQuota".to_string()),
            ]
            .into(),
        };
        inventory.groups.insert(
            "release.web".into(),
            [
                Entry {
                    api_version: "apps/v1".into(),
                    key: ObjectKey {
                        group: "apps".into(),
                        kind: "Deployment".into(),
                        namespace: Some("shop".into()),
                        name: "web".into(),
                    },
                },
                Entry {
                    api_version: "rbac.authorization.k8s.io/v1".into(),
                    key: ObjectKey {
                        group: "rbac.authorization.k8s.io".into(),
                        kind: "ClusterRole".into(),
                        namespace: None,
                        name: "reader".into(),
                    },
                },
            ]
            .into(),
        );
        let back = Inventory::from_data(&inventory.to_data());
        assert_eq!(back, inventory);
        assert!(back
            .kinds()
            .contains(&("apps/v1".into(), "Deployment".into())));
        assert!(back
            .kinds()
            .contains(&("v1".into(), "ResourceQuota".into())));
        assert_eq!(back.releases(), ["web".to_string()].into());
    }

    #[test]
    fn pending_kinds_make_an_inventory_differ_and_only_a_revision_makes_it_applied() {
        let announced = Inventory {
            pending: [("v1".to_string(), "ConfigMap".to_string())].into(),
            ..Inventory::default()
        };
        assert!(!announced.applied());
        assert!(!announced.same_content(&Inventory::default()));
        let data = announced.to_data();
        assert_eq!(data["pending"], "v1 ConfigMap");
        assert!(!Inventory::default().to_data().contains_key("pending"));
    }
}
