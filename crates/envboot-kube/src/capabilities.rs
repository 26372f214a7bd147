//! What a chart rendered for this cluster may ask of it, as `helm install` answers: the
//! cluster's version and API versions (`.Capabilities`), and `lookup` (read-only).

use std::collections::BTreeSet;

use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::{json, Value};

use crate::{Error, Kube, Result};

/// The cluster's `.Capabilities`, as Helm's `GetVersionSet` and `ServerVersion` give them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    pub git_version: String,
    pub major: String,
    pub minor: String,
    /// Every served group version, and `group/version/Kind` of every resource in it
    /// (subresources included: Helm counts `apps/v1/Scale`), sorted.
    pub api_versions: Vec<String>,
}

/// How many group versions discovery asks about at once.
const CONCURRENT_DISCOVERY: usize = 8;

impl Kube {
    /// The cluster's version and API versions, asked once per client (`GET /version`, `/api`,
    /// `/apis`, and each group version's resources).
    pub async fn capabilities(&self) -> Result<Capabilities> {
        self.capabilities
            .get_or_try_init(|| self.read_capabilities())
            .await
            .cloned()
    }

    async fn read_capabilities(&self) -> Result<Capabilities> {
        let failed = |object: &str| {
            let object = object.to_string();
            move |source| Error::CallFailed {
                object,
                call: "discovery",
                source,
            }
        };
        let version = self
            .client
            .apiserver_version()
            .await
            .map_err(failed("the API server's version"))?;
        let core = self
            .client
            .list_core_api_versions()
            .await
            .map_err(failed("the core API versions"))?;
        let groups = self
            .client
            .list_api_groups()
            .await
            .map_err(failed("the cluster's API groups"))?;
        let mut group_versions: Vec<String> = core.versions.clone();
        for g in &groups.groups {
            group_versions.extend(g.versions.iter().map(|v| v.group_version.clone()));
        }
        let core_versions: BTreeSet<String> = core.versions.into_iter().collect();
        let lists: Vec<(String, Vec<String>)> = futures::stream::iter(group_versions.clone())
            .map(|gv| async {
                let list = if core_versions.contains(&gv) {
                    self.client.list_core_api_resources(&gv).await
                } else {
                    self.client.list_api_group_resources(&gv).await
                }
                .map_err(failed(&format!("API group-version {gv}")))?;
                let kinds = list.resources.into_iter().map(|r| r.kind).collect();
                Ok::<_, Error>((gv, kinds))
            })
            .buffer_unordered(CONCURRENT_DISCOVERY)
            .try_collect()
            .await?;
        let mut set: BTreeSet<String> = group_versions.into_iter().collect();
        for (gv, kinds) in lists {
            set.extend(kinds.into_iter().map(|k| format!("{gv}/{k}")));
        }
        Ok(Capabilities {
            git_version: version.git_version,
            major: version.major,
            minor: version.minor,
            api_versions: set.into_iter().collect(),
        })
    }

    /// Helm's `lookup`: the object `name` of `kind` (or, for an empty name, the list of them) in
    /// `namespace` (every namespace when empty, and ignored for cluster-scoped kinds), as the
    /// API server sends it; `null` when it does not exist. The error is Helm's words for a
    /// kind the cluster does not serve.
    pub async fn lookup(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> std::result::Result<Value, String> {
        let (ar, namespaced) = self
            .resource(api_version, kind)
            .await
            .map_err(|e| match e {
                Error::UnknownKind { .. } => format!(
                    "unable to get apiresource from unstructured: {api_version}, Kind={kind}: the server has no kind {kind} in {api_version}"
                ),
                e => e.to_string(),
            })?;
        let api: Api<DynamicObject> = if namespaced && !namespace.is_empty() {
            Api::namespaced_with(self.client.clone(), namespace, &ar)
        } else {
            Api::all_with(self.client.clone(), &ar)
        };
        let what = || {
            if name.is_empty() {
                format!("{kind} list")
            } else {
                format!("{kind} {namespace}/{name}")
            }
        };
        let read_failed = |e: kube::Error| format!("lookup of {}: {e}", what());
        if !name.is_empty() {
            return match api.get_opt(name).await.map_err(read_failed)? {
                Some(o) => serde_json::to_value(o).map_err(|e| e.to_string()),
                None => Ok(Value::Null),
            };
        }
        let list = match api.list(&ListParams::default()).await {
            Ok(list) => list,
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Value::Null),
            Err(e) => return Err(read_failed(e)),
        };
        // As Kubernetes' unstructured decoding gives a typed list to Helm: each item gets the
        // list's apiVersion and its kind.
        let items: Vec<Value> = list
            .items
            .into_iter()
            .map(|o| {
                let mut v = serde_json::to_value(o).unwrap_or(Value::Null);
                v["apiVersion"] = json!(api_version);
                v["kind"] = json!(kind);
                v
            })
            .collect();
        Ok(json!({
            "apiVersion": api_version,
            "kind": format!("{kind}List"),
            "metadata": {"resourceVersion": list.metadata.resource_version.unwrap_or_default()},
            "items": items,
        }))
    }
}
