//! Kubernetes provider: finds the environment's objects by label and applies changes with
//! server-side apply (field manager `envboot`).
//!
//! # Guarantees
//! - Only objects labelled `envboot.dev/environment=<name>` are ever changed or deleted.
//! - A no-op plan lists each kind once, cluster-wide, with a label selector: never one GET per object.
//! - A namespace is deleted only if nothing that envboot does not own lives in it.

mod capabilities;
pub mod diff;
pub mod inventory;
pub mod lock;
pub mod ratelimit;
pub mod ready;
pub mod retry;
pub mod schema;

use futures::StreamExt;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersion, GroupVersionKind};
use kube::discovery::Scope;
use kube::Client;
use serde_json::Value;

pub use capabilities::Capabilities;
pub use diff::{KubeChange, ObjectKey, FIELD_MANAGER};
use envboot_core::render::LABEL_ENVIRONMENT;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot load the kubeconfig{}: {source}", context.as_ref().map(|c| format!(" context `{c}`")).unwrap_or_default())]
    Config {
        context: Option<String>,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("nothing was changed: {} object(s) that Git declares exist without the environment's label:\n{}\nrerun with --adopt to take them over (envboot labels them), or remove or rename them", .0.len(), .0.iter().map(|c| format!("  {c}")).collect::<Vec<_>>().join("\n"))]
    Unowned(Vec<String>),
    #[error("no kubeconfig, and the pod's service account cannot be read: {0}")]
    InCluster(#[source] kube::config::InClusterError),
    #[error("cannot build a Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    #[error("the cluster has no resource for apiVersion `{api_version}` kind `{kind}`: {source}")]
    UnknownKind {
        api_version: String,
        kind: String,
        #[source]
        source: kube::Error,
    },
    #[error("{object}: another field manager owns fields envboot sets ({message}); change them in Git or pass --force-conflicts to take them over")]
    Conflict { object: String, message: String },
    #[error("environment `{environment}` is locked by {holder} (last renewed {renewed}); it expires if that run died")]
    Locked {
        environment: String,
        holder: String,
        renewed: String,
    },
    #[error("the cluster's schema (Kubernetes {version}) does not declare these fields, so `helm install` refuses them too and nothing was changed:\n{}\nchange the values that set them, or use a chart version made for this cluster", .fields.iter().map(|f| format!("  {f}")).collect::<Vec<_>>().join("\n"))]
    Undeclared {
        version: String,
        fields: Vec<String>,
    },
    #[error("{call} {object} failed: {}", explain(source))]
    CallFailed {
        object: String,
        call: &'static str,
        #[source]
        source: kube::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A kube error for people: the API server's own message and status code, or, when the answer
/// had no Kubernetes status in it (a proxy or an overloaded server), the HTTP status.
fn explain(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if status.message.is_empty() => {
            let reason = http::StatusCode::from_u16(status.code)
                .ok()
                .and_then(|c| c.canonical_reason())
                .unwrap_or("");
            format!("the API server answered HTTP {} {reason}", status.code)
        }
        kube::Error::Api(status) => format!("{} (HTTP {})", status.message, status.code),
        other => other.to_string(),
    }
}

/// Counts requests to the API server by HTTP method (`GET`, `PATCH`, ...); dry-run requests
/// are counted as `DRYRUN`. The requests of envboot's lock are not counted.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(Arc<Mutex<BTreeMap<String, u64>>>);

impl RequestCounter {
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Requests that may change something: everything but GET and dry runs.
    pub fn writes(&self) -> u64 {
        self.snapshot()
            .iter()
            .filter(|(m, _)| *m != "GET" && *m != "DRYRUN")
            .map(|(_, n)| n)
            .sum()
    }
}

/// The tower service that counts requests.
#[derive(Clone)]
pub struct Counting<S> {
    inner: S,
    counter: RequestCounter,
}

impl<S, B> tower::Service<http::Request<B>> for Counting<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // the run's lock (taking, renewing, giving back its Lease) is not the run's work: a
        // no-op apply reports no writes however long it holds the lock
        if lock::is_lock_request(req.uri().path()) {
            return self.inner.call(req);
        }
        let dry_run = req.uri().query().is_some_and(|q| q.contains("dryRun"));
        let method = if dry_run {
            "DRYRUN".to_string()
        } else {
            req.method().to_string()
        };
        if let Ok(mut map) = self.counter.0.lock() {
            *map.entry(method).or_default() += 1;
        }
        self.inner.call(req)
    }
}

/// A connection to one cluster.
#[derive(Clone)]
pub struct Kube {
    client: Client,
    pub calls: RequestCounter,
    groups: Arc<tokio::sync::Mutex<ResourceCache>>,
    /// Every namespaced, listable kind, once discovered.
    namespaced: Arc<tokio::sync::OnceCell<Vec<ApiResource>>>,
    /// The cluster's `.Capabilities`, once discovered.
    capabilities: Arc<tokio::sync::OnceCell<Capabilities>>,
    /// The cluster's OpenAPI schema, once read.
    schema: Arc<tokio::sync::OnceCell<Arc<schema::Schema>>>,
}

/// What a deletion did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deletion {
    Deleted,
    /// A namespace kept because it holds objects that are not the environment's (named).
    Kept {
        foreign: String,
    },
}

/// How many foreign objects a kept namespace's note names.
pub const FOREIGN_SHOWN: usize = 10;

/// Whether an object carries `environment`'s label.
fn labelled_as(metadata: &kube::core::ObjectMeta, environment: &str) -> bool {
    metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_ENVIRONMENT))
        .is_some_and(|e| e == environment)
}

/// Whether `o` (of `kind`) is the environment's, or made by Kubernetes itself or by another
/// object, so that it does not keep its namespace.
fn owned_or_automatic(kind: &str, o: &DynamicObject, environment: &str) -> bool {
    let owned = labelled_as(&o.metadata, environment);
    let name = o.metadata.name.as_deref().unwrap_or_default();
    let by_another = o
        .metadata
        .owner_references
        .as_ref()
        .is_some_and(|r| !r.is_empty());
    let by_kubernetes = match kind {
        "ConfigMap" => name == "kube-root-ca.crt",
        "ServiceAccount" => name == "default",
        "Secret" => o.data["type"] == "kubernetes.io/service-account-token",
        // The endpoints controller names them after their Service, without an owner.
        "Endpoints" => true,
        "EndpointSlice" => o
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key("kubernetes.io/service-name")),
        _ => false,
    };
    owned || by_another || by_kubernetes
}

/// apiVersion to its API resources and whether each is namespaced.
type ResourceCache = HashMap<String, Vec<(ApiResource, bool)>>;

/// The namespaces of a cluster, as one environment sees them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespaces {
    /// Without the environment's label: used, never changed.
    pub foreign: BTreeSet<String>,
    /// With the environment's label.
    pub own: BTreeSet<String>,
}

/// The usual kinds: listed for pruning where no inventory names the kinds envboot applied
/// (see `inventory`), even when Git no longer declares any object of them.
pub const USUAL_KINDS: [(&str, &str); 12] = [
    ("v1", "Namespace"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("batch/v1", "Job"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("networking.k8s.io/v1", "Ingress"),
];

fn gvk(api_version: &str, kind: &str) -> GroupVersionKind {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    GroupVersionKind::gvk(group, version, kind)
}

impl Kube {
    /// Wraps an existing client (requests made through it are not counted).
    pub fn from_client(client: Client) -> Kube {
        Kube {
            client,
            calls: RequestCounter::default(),
            groups: Arc::default(),
            namespaced: Arc::default(),
            capabilities: Arc::default(),
            schema: Arc::default(),
        }
    }

    /// Connects through the kubeconfig (`KUBECONFIG` or `~/.kube/config`), with `context` or
    /// the current context. In a pod with no kubeconfig at all (envboot's controller), the
    /// context is the pod's own cluster, through its service account.
    pub async fn connect(context: Option<&str>) -> Result<Kube> {
        let options = kube::config::KubeConfigOptions {
            context: context.map(str::to_string),
            ..Default::default()
        };
        let config = match kube::Config::from_kubeconfig(&options).await {
            Ok(config) => config,
            Err(
                kube::config::KubeconfigError::FindPath
                | kube::config::KubeconfigError::ReadConfig(..),
            ) if std::env::var_os("KUBECONFIG").is_none()
                && std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() =>
            {
                kube::Config::incluster().map_err(Error::InCluster)?
            }
            Err(source) => {
                return Err(Error::Config {
                    context: context.map(str::to_string),
                    source,
                })
            }
        };
        Self::with_config(config)
    }

    /// Connects with a kubeconfig envboot wrote itself (a k3s cluster's).
    pub async fn connect_kubeconfig(kubeconfig: kube::config::Kubeconfig) -> Result<Kube> {
        let context = kubeconfig.current_context.clone();
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .map_err(|source| Error::Config { context, source })?;
        Self::with_config(config)
    }

    fn with_config(config: kube::Config) -> Result<Kube> {
        // TLS through ring's primitives (randomness from the kernel), unless the process chose
        // a provider already: kube's default, aws-lc, gathers CPU-jitter entropy at its first
        // handshake, about 0.1 s of CPU in every run.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // the only error: another thread installed one meanwhile, which is as good
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let mut config = config;
        // envboot's own policy replaces kube's (see `retry`).
        config.default_retry = false;
        let calls = RequestCounter::default();
        let counter = calls.clone();
        let client = kube::client::ClientBuilder::try_from(config)
            .map_err(Error::Client)?
            .with_layer(&tower::layer::layer_fn(move |inner| Counting {
                inner,
                counter: counter.clone(),
            }))
            .with_layer(&tower::buffer::BufferLayer::new(1024))
            .with_layer(&{
                let (qps, burst) = ratelimit::from_env();
                ratelimit::RateLimitLayer::new(qps, burst)
            })
            .with_layer(&tower::retry::RetryLayer::new(retry::RetryPolicy::default()))
            .build();
        Ok(Kube {
            client,
            calls,
            groups: Arc::default(),
            namespaced: Arc::default(),
            capabilities: Arc::default(),
            schema: Arc::default(),
        })
    }

    /// Whether the API server says it is ready (`GET /readyz`); the reason if not.
    pub async fn api_ready(&self) -> std::result::Result<(), String> {
        let request = http::Request::get("/readyz")
            .body(Vec::new())
            .map_err(|e| e.to_string())?;
        match self.client.request_text(request).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) => {
                Err(format!("HTTP {}: {}", status.code, status.message.trim()))
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// The API resource of a kind and whether it is namespaced. Discovery asks once per
    /// group-version (`/api/v1`, `/apis/apps/v1`, ...) and caches the answer.
    pub async fn resource(&self, api_version: &str, kind: &str) -> Result<(ApiResource, bool)> {
        let unknown = |source| Error::UnknownKind {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            source,
        };
        let mut groups = self.groups.lock().await;
        if !groups.contains_key(api_version) {
            let gv = gvk(api_version, kind);
            let group = kube::discovery::pinned_group(
                &self.client,
                &GroupVersion::gv(&gv.group, &gv.version),
            )
            .await
            .map_err(|source| match &source {
                kube::Error::Api(status) if status.code == 404 => unknown(source),
                _ => Error::CallFailed {
                    object: format!("API group-version {api_version}"),
                    call: "discovery",
                    source,
                },
            })?;
            let resources = group
                .versioned_resources(&gv.version)
                .into_iter()
                .map(|(ar, caps)| (ar, caps.scope == Scope::Namespaced))
                .collect();
            groups.insert(api_version.to_string(), resources);
        }
        groups
            .get(api_version)
            .and_then(|resources| {
                resources
                    .iter()
                    .find(|(ar, _)| ar.kind == kind && !ar.plural.contains('/'))
            })
            .cloned()
            .ok_or_else(|| {
                unknown(kube::Error::Discovery(
                    kube::error::DiscoveryError::MissingKind(format!("{api_version} {kind}")),
                ))
            })
    }

    /// Sets the namespace of namespaced objects that have none and drops it from cluster-scoped ones.
    pub async fn place(&self, object: &mut Value, default_namespace: Option<&str>) -> Result<()> {
        let api_version = object["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        let (_, namespaced) = self.resource(&api_version, &kind).await?;
        let metadata = &mut object["metadata"];
        if !namespaced {
            if let Value::Object(m) = metadata {
                m.remove("namespace");
            }
        } else if metadata["namespace"].is_null() {
            if let Some(ns) = default_namespace {
                metadata["namespace"] = Value::String(ns.to_string());
            }
        }
        Ok(())
    }

    /// Every object labelled as `environment`'s, of the given kinds and the `extra` kinds (from
    /// the inventory, or the usual ones); an extra kind the cluster does not serve holds
    /// nothing. (Not all of them are envboot's to delete: see [`diff::diff`].)
    pub async fn discover(
        &self,
        environment: &str,
        kinds: &BTreeSet<(String, String)>,
        extra: &BTreeSet<(String, String)>,
    ) -> Result<Vec<Value>> {
        let mut all: BTreeSet<(String, String)> = kinds.clone();
        all.extend(extra.iter().cloned());
        let selector = format!("{LABEL_ENVIRONMENT}={environment}");
        let lists = all.iter().map(|(api_version, kind)| {
            let selector = selector.clone();
            async move {
                let (ar, _) = match self.resource(api_version, kind).await {
                    Ok(found) => found,
                    // An extra kind this cluster does not serve holds nothing of ours.
                    Err(Error::UnknownKind { .. })
                        if !kinds.contains(&(api_version.clone(), kind.clone())) =>
                    {
                        return Ok(Vec::new());
                    }
                    Err(e) => return Err(e),
                };
                let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &ar);
                let list = match api.list(&ListParams::default().labels(&selector)).await {
                    Ok(list) => list,
                    // The kind went away since discovery (its CRD was deleted): nothing of it
                    // is left to find.
                    Err(kube::Error::Api(status)) if status.code == 404 => return Ok(Vec::new()),
                    Err(source) => {
                        return Err(Error::CallFailed {
                            object: format!("{kind} ({selector})"),
                            call: "list",
                            source,
                        })
                    }
                };
                Ok(list
                    .items
                    .into_iter()
                    .filter_map(|mut o| {
                        o.types = Some(kube::core::TypeMeta {
                            api_version: api_version.clone(),
                            kind: kind.clone(),
                        });
                        serde_json::to_value(o).ok()
                    })
                    .collect::<Vec<_>>())
            }
        });
        let results = futures::future::try_join_all(lists).await?;
        Ok(results.into_iter().flatten().collect())
    }

    /// The namespaces that exist, by whether they carry `environment`'s label.
    pub async fn namespaces(&self, environment: &str) -> Result<Namespaces> {
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|source| Error::CallFailed {
                object: "namespaces".into(),
                call: "list",
                source,
            })?;
        let mut namespaces = Namespaces::default();
        for n in list.items {
            let ours = labelled_as(&n.metadata, environment);
            if let Some(name) = n.metadata.name {
                match ours {
                    true => namespaces.own.insert(name),
                    false => namespaces.foreign.insert(name),
                };
            }
        }
        Ok(namespaces)
    }

    async fn api(&self, api_version: &str, key: &ObjectKey) -> Result<Api<DynamicObject>> {
        let (ar, namespaced) = self.resource(api_version, &key.kind).await?;
        Ok(match (&key.namespace, namespaced) {
            (Some(ns), true) => Api::namespaced_with(self.client.clone(), ns, &ar),
            _ => Api::all_with(self.client.clone(), &ar),
        })
    }

    fn params(force_conflicts: bool) -> PatchParams {
        let params = PatchParams::apply(FIELD_MANAGER);
        if force_conflicts {
            params.force()
        } else {
            params
        }
    }

    fn apply_failed(key: &ObjectKey, call: &'static str, source: kube::Error) -> Error {
        match source {
            kube::Error::Api(status) if status.code == 409 => Error::Conflict {
                object: key.to_string(),
                message: status.message,
            },
            source => Error::CallFailed {
                object: key.to_string(),
                call,
                source,
            },
        }
    }

    /// Server-side applies `object`.
    pub async fn apply(
        &self,
        api_version: &str,
        key: &ObjectKey,
        object: &Value,
        force_conflicts: bool,
    ) -> Result<()> {
        let api = self.api(api_version, key).await?;
        api.patch(
            &key.name,
            &Self::params(force_conflicts),
            &Patch::Apply(object),
        )
        .await
        .map_err(|source| Self::apply_failed(key, "server-side apply", source))?;
        Ok(())
    }

    /// What applying `object` would make of it: a server-side dry run (writes nothing).
    ///
    /// A conflict with managers that only ever *updated* the object (`kubectl edit`, `kubectl
    /// patch`, scripts) is drift, and Git wins: the second element is then `true`, and apply
    /// must force. A conflict with another *apply* manager (another declarative tool) is an
    /// error unless `force_conflicts`.
    pub async fn dry_run(
        &self,
        api_version: &str,
        key: &ObjectKey,
        object: &Value,
        live: &Value,
        force_conflicts: bool,
    ) -> Result<(Value, bool)> {
        let api = self.api(api_version, key).await?;
        let mut force = force_conflicts;
        let result = loop {
            match api
                .patch(
                    &key.name,
                    &Self::params(force).dry_run(),
                    &Patch::Apply(object),
                )
                .await
            {
                Ok(result) => break result,
                Err(kube::Error::Api(status))
                    if status.code == 409 && !force && diff::only_drift(&status.message, live) =>
                {
                    force = true;
                }
                Err(source) => {
                    return Err(Self::apply_failed(
                        key,
                        "server-side apply (dry run)",
                        source,
                    ))
                }
            }
        };
        let result = serde_json::to_value(result).map_err(|e| Error::CallFailed {
            object: key.to_string(),
            call: "server-side apply (dry run)",
            source: kube::Error::SerdeError(e),
        })?;
        Ok((result, force))
    }

    /// Deletes an owned object (foreground propagation). A namespace that still holds objects
    /// envboot does not own is kept; returns `false` then.
    pub async fn delete(
        &self,
        api_version: &str,
        key: &ObjectKey,
        environment: &str,
    ) -> Result<Deletion> {
        if key.kind == "Namespace" && key.group.is_empty() {
            let foreign = self.foreign_objects(&key.name, environment).await?;
            if !foreign.is_empty() {
                return Ok(Deletion::Kept {
                    foreign: foreign.join(", "),
                });
            }
        }
        let api = self.api(api_version, key).await?;
        match api.delete(&key.name, &DeleteParams::foreground()).await {
            Ok(_) => Ok(Deletion::Deleted),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(Deletion::Deleted),
            Err(source) => Err(Error::CallFailed {
                object: key.to_string(),
                call: "delete",
                source,
            }),
        }
    }

    /// Waits, through watches, until every target is ready (see [`ready::readiness`]) or
    /// `timeout` passes. Returns the targets that are not ready, with the reason.
    pub async fn wait_ready(
        &self,
        environment: &str,
        targets: &[(String, ObjectKey)],
        timeout: std::time::Duration,
    ) -> Result<Vec<(ObjectKey, String)>> {
        use kube::runtime::{watcher, WatchStreamExt};
        let deadline = tokio::time::Instant::now() + timeout;
        let mut pending: BTreeMap<ObjectKey, String> = targets
            .iter()
            .map(|(_, k)| (k.clone(), "not found".to_string()))
            .collect();
        let selector = format!("{LABEL_ENVIRONMENT}={environment}");
        let mut groups: BTreeMap<(String, String, Option<String>), ()> = BTreeMap::new();
        for (api_version, key) in targets {
            groups.insert(
                (api_version.clone(), key.kind.clone(), key.namespace.clone()),
                (),
            );
        }
        // CRDs seen Established, as the watch showed them; workloads last seen not ready.
        let mut established: Vec<Value> = Vec::new();
        let mut workloads: BTreeMap<ObjectKey, Value> = BTreeMap::new();
        // Targets that failed for good (a Job, a Pod): waiting longer cannot help.
        let mut failed: BTreeMap<ObjectKey, String> = BTreeMap::new();
        let mut update = |pending: &mut BTreeMap<ObjectKey, String>,
                          object: &DynamicObject,
                          api_version: &str,
                          kind: &str| {
            let mut value = serde_json::to_value(object).unwrap_or(Value::Null);
            value["apiVersion"] = Value::String(api_version.to_string());
            value["kind"] = Value::String(kind.to_string());
            let key = ObjectKey::of(&value);
            if let Some(reason) = pending.get_mut(&key) {
                match ready::readiness(&value) {
                    ready::Readiness::Ready => {
                        pending.remove(&key);
                        workloads.remove(&key);
                        if kind == "CustomResourceDefinition" {
                            established.push(value);
                        }
                    }
                    ready::Readiness::NotReady(why) => {
                        *reason = why;
                        if ready::has_pods(kind) {
                            workloads.insert(key, value);
                        }
                    }
                    ready::Readiness::Failed(why) => {
                        pending.remove(&key);
                        failed.insert(key.clone(), why);
                        if ready::has_pods(kind) {
                            workloads.insert(key, value);
                        }
                    }
                }
            }
        };
        // One watcher per kind and namespace (kube's `watcher`: it lists, watches, and lists
        // and watches again on its own with a backoff when the server ends a watch or fails),
        // until everything is ready or the deadline passes.
        let mut streams = Vec::new();
        for (api_version, kind, namespace) in groups.keys() {
            let (ar, namespaced) = self.resource(api_version, kind).await?;
            let api: Api<DynamicObject> = match (namespace, namespaced) {
                (Some(ns), true) => Api::namespaced_with(self.client.clone(), ns, &ar),
                _ => Api::all_with(self.client.clone(), &ar),
            };
            let (api_version, kind) = (api_version.clone(), kind.clone());
            let stream = watcher(api, watcher::Config::default().labels(&selector))
                .default_backoff()
                .map(move |event| (api_version.clone(), kind.clone(), event));
            streams.push(stream.boxed());
        }
        let mut events = futures::stream::select_all(streams);
        let mut failure: Option<String> = None;
        while !pending.is_empty() {
            match tokio::time::timeout_at(deadline, events.next()).await {
                Ok(Some((
                    api_version,
                    kind,
                    Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)),
                ))) => update(&mut pending, &o, &api_version, &kind),
                // The watcher tries again after a backoff; the error explains a timeout.
                Ok(Some((_, kind, Err(e)))) => failure = Some(format!("watching {kind}: {e}")),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        if let Some(why) = failure {
            for reason in pending.values_mut().filter(|r| r.as_str() == "not found") {
                *reason = format!("not seen ({why})");
            }
        }
        pending.append(&mut failed);
        // A workload that is not ready: its pods tell why (the image, a crash, the scheduler).
        for (key, workload) in &workloads {
            if let Some(reason) = pending.get_mut(key) {
                for problem in self.pod_problems(key, workload).await {
                    reason.push_str("; ");
                    reason.push_str(&problem);
                }
            }
        }
        // An Established CRD's kinds reach discovery a moment later: what is applied next
        // needs them served.
        for crd in &established {
            if let Some(why) = self.wait_served(crd, deadline).await? {
                pending.insert(ObjectKey::of(crd), why);
            }
        }
        Ok(pending.into_iter().collect())
    }

    /// What the pods of `workload` (selected by its `spec.selector`) report as keeping them
    /// from running or being ready; a failed listing is reported as such.
    async fn pod_problems(&self, key: &ObjectKey, workload: &Value) -> Vec<String> {
        let (Some(namespace), Some(selector)) = (
            key.namespace.as_deref(),
            ready::selector_query(&workload["spec"]["selector"]),
        ) else {
            return Vec::new();
        };
        let pods: Api<k8s_openapi::api::core::v1::Pod> =
            Api::namespaced(self.client.clone(), namespace);
        match pods.list(&ListParams::default().labels(&selector)).await {
            Ok(list) => {
                let pods: Vec<Value> = list
                    .items
                    .iter()
                    .filter_map(|p| serde_json::to_value(p).ok())
                    .collect();
                ready::pod_problems(&pods)
            }
            Err(e) => vec![format!("its pods could not be listed: {e}")],
        }
    }

    /// Waits until discovery serves every served version of the CRD `crd`, polling with a
    /// backoff until `deadline`; `Some(why)` if it still does not.
    async fn wait_served(
        &self,
        crd: &Value,
        deadline: tokio::time::Instant,
    ) -> Result<Option<String>> {
        let Some(defined) = envboot_core::render::crd_kinds(crd) else {
            return Ok(None);
        };
        let (group, kind) = (defined.group, defined.kind);
        let versions = defined.versions.iter().filter(|(_, served)| *served);
        let mut pause = std::time::Duration::from_millis(25);
        for (version, _) in versions {
            let api_version = format!("{group}/{version}");
            loop {
                // Asked afresh each time: a lookup from before the kind was served is stale.
                self.groups.lock().await.remove(&api_version);
                match self.resource(&api_version, kind).await {
                    Ok(_) => break,
                    Err(Error::UnknownKind { .. }) => {}
                    Err(e) => return Err(e),
                }
                if tokio::time::Instant::now() + pause > deadline {
                    return Ok(Some(format!(
                        "Established, but {api_version} {kind} is not served yet"
                    )));
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(1));
            }
        }
        Ok(None)
    }

    /// Waits until an object is gone (foreground deletion finishes when its dependents are),
    /// for at most `timeout`.
    pub async fn wait_deleted(
        &self,
        api_version: &str,
        key: &ObjectKey,
        timeout: std::time::Duration,
    ) -> Result<bool> {
        use kube::runtime::wait::{await_condition, conditions};
        let api = self.api(api_version, key).await?;
        let failed = |call: &'static str| {
            move |source| Error::CallFailed {
                object: key.to_string(),
                call,
                source,
            }
        };
        // Any 404 is gone: the object, or its whole kind (a CRD deleted before its objects
        // answers with a plain "404 page not found").
        let found = match api.get(&key.name).await {
            Ok(found) => found,
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(true),
            Err(e) => return Err(failed("get")(e)),
        };
        let uid = found.metadata.uid.unwrap_or_default();
        // kube-runtime's wait: a watch on the one object until it is gone (or replaced by
        // another of the same name, which has another uid).
        let gone = await_condition(api, &key.name, conditions::is_deleted(&uid));
        match tokio::time::timeout(timeout, gone).await {
            Ok(Ok(_)) => Ok(true),
            Ok(Err(kube::runtime::wait::Error::ProbeFailed(e))) => Err(Error::CallFailed {
                object: key.to_string(),
                call: "watch",
                source: match e {
                    kube::runtime::watcher::Error::InitialListFailed(e)
                    | kube::runtime::watcher::Error::WatchStartFailed(e)
                    | kube::runtime::watcher::Error::WatchFailed(e) => e,
                    other => kube::Error::Service(Box::new(other)),
                },
            }),
            Err(_elapsed) => Ok(false),
        }
    }

    /// The objects among `creates` (to be created, by apiVersion and key) that exist already
    /// without `environment`'s label, with why they are a conflict. Only namespaces in
    /// `namespaces` (those that exist) are searched: nothing can be in one that does not. One
    /// metadata-only GET per object, at most 8 at once.
    pub async fn unowned_existing(
        &self,
        environment: &str,
        creates: &[(String, ObjectKey)],
        namespaces: &BTreeSet<String>,
    ) -> Result<BTreeMap<ObjectKey, String>> {
        let checks = creates
            .iter()
            .filter(|(_, key)| {
                key.namespace
                    .as_ref()
                    .is_none_or(|ns| namespaces.contains(ns))
            })
            .map(|(api_version, key)| async move {
                let api = match self.api(api_version, key).await {
                    Ok(api) => api,
                    // A kind the cluster does not serve yet (its CRD comes in this apply).
                    Err(Error::UnknownKind { .. }) => return Ok(None),
                    Err(e) => return Err(e),
                };
                let found =
                    api.get_metadata_opt(&key.name)
                        .await
                        .map_err(|source| Error::CallFailed {
                            object: key.to_string(),
                            call: "get",
                            source,
                        })?;
                Ok(found.map(|o| {
                    let owner = o
                        .metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(LABEL_ENVIRONMENT))
                        .cloned();
                    let why = match owner {
                        Some(other) if other != environment => {
                            format!("{key} exists, owned by environment `{other}`")
                        }
                        _ => format!(
                            "{key} exists without the environment's label; --adopt takes it over"
                        ),
                    };
                    (key.clone(), why)
                }))
            });
        let found: Vec<Result<Option<(ObjectKey, String)>>> = futures::stream::iter(checks)
            .buffer_unordered(8)
            .collect()
            .await;
        let mut out = BTreeMap::new();
        for f in found {
            if let Some((key, why)) = f? {
                out.insert(key, why);
            }
        }
        Ok(out)
    }

    /// Objects in namespace `ns` that are not `environment`'s, as `Kind ns/name` (at most
    /// [`FOREIGN_SHOWN`] of them, then `...`): every namespaced kind the cluster serves is
    /// searched (discovery, custom resources included), leaving out what Kubernetes makes in
    /// every namespace (the `default` ServiceAccount, `kube-root-ca.crt`, service account token
    /// Secrets, Events, a Service's Endpoints and EndpointSlices) and objects another object
    /// owns (Pods of a Deployment's ReplicaSet, ...).
    pub async fn foreign_objects(&self, ns: &str, environment: &str) -> Result<Vec<String>> {
        let kinds = self.namespaced_kinds().await?;
        let lists = kinds.iter().map(|ar| async move {
            let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, ar);
            match api.list(&ListParams::default()).await {
                Ok(list) => Ok(list
                    .items
                    .into_iter()
                    .filter(|o| !owned_or_automatic(&ar.kind, o, environment))
                    .map(|o| format!("{} {ns}/{}", ar.kind, o.metadata.name.unwrap_or_default()))
                    .collect::<Vec<_>>()),
                // A kind served by an aggregated API that does not answer, or that this client
                // may not list: nothing is known to be there, but nothing is known to be absent.
                Err(kube::Error::Api(status)) if status.code == 403 || status.code == 503 => {
                    Ok(vec![format!(
                        "{} in {ns} (cannot be listed: {})",
                        ar.kind, status.message
                    )])
                }
                Err(kube::Error::Api(status)) if status.code == 404 || status.code == 405 => {
                    Ok(Vec::new())
                }
                Err(source) => Err(Error::CallFailed {
                    object: format!("{} in namespace {ns}", ar.kind),
                    call: "list",
                    source,
                }),
            }
        });
        let mut found: Vec<String> = futures::stream::iter(lists)
            .buffer_unordered(8)
            .collect::<Vec<Result<Vec<String>>>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .collect();
        found.sort();
        if found.len() > FOREIGN_SHOWN {
            found.truncate(FOREIGN_SHOWN);
            found.push("...".into());
        }
        Ok(found)
    }

    /// Every namespaced kind the cluster serves that can be listed (discovery, once per
    /// connection).
    async fn namespaced_kinds(&self) -> Result<Vec<ApiResource>> {
        let kinds = self
            .namespaced
            .get_or_try_init(|| async {
                let discovery = kube::discovery::Discovery::new(self.client.clone())
                    .run()
                    .await
                    .map_err(|source| Error::CallFailed {
                        object: "the cluster's API groups".to_string(),
                        call: "discovery",
                        source,
                    })?;
                let mut kinds = Vec::new();
                for group in discovery.groups() {
                    for (ar, caps) in group.recommended_resources() {
                        let usable = caps.scope == kube::discovery::Scope::Namespaced
                            && !ar.plural.contains('/')
                            && caps.supports_operation(kube::discovery::verbs::LIST)
                            && ar.kind != "Event";
                        if usable {
                            kinds.push(ar);
                        }
                    }
                }
                Ok::<_, Error>(kinds)
            })
            .await?;
        Ok(kinds.clone())
    }
}
