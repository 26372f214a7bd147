//! Render: turns the model's namespaces, ConfigMaps and chart releases into Kubernetes objects.
//!
//! # Guarantees
//! - Pure: no network IO; the same environment renders to the same objects.
//! - Every object carries the ownership label `envboot.dev/environment` and the annotation
//!   `envboot.dev/revision` (the commit); chart objects also carry `envboot.dev/release`.
//! - A ConfigMap with a hash suffix is referred to by its current name in every pod spec of its
//!   namespace.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{json, Map, Value};

use crate::model::{is_dns_label, is_dns_subdomain, Environment, Release};

/// Label naming the environment that owns an object.
pub const LABEL_ENVIRONMENT: &str = "envboot.dev/environment";
/// Label naming the release an object was rendered from.
pub const LABEL_RELEASE: &str = "envboot.dev/release";
/// Annotation holding the commit the object was last applied from.
pub const ANNOTATION_REVISION: &str = "envboot.dev/revision";

/// Namespaces that exist in every cluster and are never created or deleted by envboot.
pub const SYSTEM_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{file}:{line}: {message} (release `{release}`)")]
    TemplateFailed {
        release: String,
        file: String,
        line: usize,
        message: String,
    },
    #[error("{message} (release `{release}`)")]
    ChartFailed { release: String, message: String },
    #[error("{file}: the output is not valid YAML: {message} (release `{release}`)")]
    InvalidOutput {
        release: String,
        file: String,
        message: String,
    },
    #[error("`${{secret.{secret}.{key}}}` in the values of release `{release}`: secret `{secret}` ({file}) has no key `{key}`")]
    MissingSecretKey {
        release: String,
        secret: String,
        key: String,
        file: String,
    },
    #[error("{source_file}: {object}: {message}")]
    InvalidObject {
        source_file: String,
        object: String,
        message: String,
    },
    #[error("{object} is rendered twice, by {first} and by {second}: apply would never settle")]
    Duplicate {
        object: String,
        first: String,
        second: String,
    },
    #[error("{file}: rendered object #{index} has no {missing} (release `{release}`)")]
    IncompleteObject {
        release: String,
        file: String,
        index: usize,
        missing: &'static str,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One rendered Kubernetes object.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// Where it comes from: a chart template path, or `configMaps` / `namespaces`.
    pub source: String,
    pub object: Value,
    /// Namespace for a namespaced object that names none (the release's namespace).
    pub default_namespace: Option<String>,
    /// Fields (paths of keys and `[i]` list indices) whose values derive from a secret: shown as
    /// `(sensitive)` in everything printed, whatever the chart did to the secret.
    pub sensitive: Vec<Vec<String>>,
}

impl Manifest {
    pub fn api_version(&self) -> &str {
        self.object["apiVersion"].as_str().unwrap_or_default()
    }
    pub fn kind(&self) -> &str {
        self.object["kind"].as_str().unwrap_or_default()
    }
    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }
    pub fn namespace(&self) -> Option<&str> {
        self.object["metadata"]["namespace"].as_str()
    }
}

/// A Secret's decrypted data: held in memory only, never printed ([`fmt::Debug`] masks it).
#[derive(Clone)]
pub struct SecretData {
    pub name: String,
    pub namespace: String,
    /// Repository path of the encrypted file it came from.
    pub file: String,
    pub data: std::collections::BTreeMap<String, String>,
}

impl std::fmt::Debug for SecretData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretData")
            .field("name", &self.name)
            .field("namespace", &self.namespace)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Replaces the values of a Secret's `data` and `stringData` with `(sensitive)`.
pub fn mask(object: &Value) -> Value {
    let mut v = object.clone();
    if v["kind"] == "Secret" {
        for field in ["data", "stringData"] {
            // (`get_mut`: a field the Secret lacks is not added as null)
            if let Some(Value::Object(map)) = v.get_mut(field) {
                for value in map.values_mut() {
                    *value = Value::String(crate::sensitive::SENSITIVE.to_string());
                }
            }
        }
    }
    v
}

/// Position of `kind` in the install order.
pub fn kind_rank(kind: &str) -> usize {
    let order = envboot_helm::INSTALL_ORDER;
    order.iter().position(|k| *k == kind).unwrap_or(order.len())
}

/// Renders every Kubernetes object of `env`, in install order.
///
/// # Errors
/// A chart template fails or produces something that is not a Kubernetes object.
pub fn render(env: &Environment, secrets: &[SecretData]) -> Result<Vec<Manifest>> {
    Ok(render_with_hooks(env, secrets)?.0)
}

/// The annotation that makes a chart object a Helm hook.
pub const ANNOTATION_HOOK: &str = "helm.sh/hook";

/// What a CustomResourceDefinition object defines: its group and kind, whether the kind is
/// namespaced, and its versions with whether each is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrdKinds<'a> {
    pub group: &'a str,
    pub kind: &'a str,
    pub namespaced: bool,
    pub versions: Vec<(&'a str, bool)>,
}

/// The kinds `object` defines, if it is a CustomResourceDefinition with a group and a kind.
pub fn crd_kinds(object: &Value) -> Option<CrdKinds<'_>> {
    if object["kind"] != "CustomResourceDefinition" {
        return None;
    }
    let spec = &object["spec"];
    Some(CrdKinds {
        group: spec["group"].as_str()?,
        kind: spec["names"]["kind"].as_str()?,
        namespaced: spec["scope"].as_str() != Some("Cluster"),
        versions: spec["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| Some((v["name"].as_str()?, v["served"].as_bool() != Some(false))))
            .collect(),
    })
}

/// Whether an object is a Helm hook (run at a phase of its release, not kept as part of it).
pub fn is_hook(object: &Value) -> bool {
    object["metadata"]["annotations"][ANNOTATION_HOOK].is_string()
}

/// A hook's phases (`pre-install`, `post-upgrade`, ...), weight and delete policies, from its
/// annotations (Helm's default policy: `before-hook-creation`).
pub fn hook_spec(object: &Value) -> (Vec<String>, i64, Vec<String>) {
    let annotations = &object["metadata"]["annotations"];
    let list = |key: &str| -> Vec<String> {
        annotations[key]
            .as_str()
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let weight = annotations["helm.sh/hook-weight"]
        .as_str()
        .and_then(|w| w.trim().parse().ok())
        .unwrap_or(0);
    let mut policies = list("helm.sh/hook-delete-policy");
    if policies.is_empty() {
        policies.push("before-hook-creation".to_string());
    }
    (list(ANNOTATION_HOOK), weight, policies)
}

/// What a render knows of the cluster it renders for.
#[derive(Clone, Default)]
pub struct ClusterFacts {
    /// The cluster's own answer (plan, apply); `None`: the environment's pins
    /// (`cluster.kubeVersion`, `cluster.apiVersions`) or Helm's defaults, as `helm template`.
    pub capabilities: Option<envboot_helm::ClusterCapabilities>,
    /// Objects read from the cluster for `lookup` (plan, apply); `None`: every lookup is an
    /// empty map, as in `helm template`.
    pub lookups: Option<std::sync::Arc<envboot_helm::Lookups>>,
    /// The environment's key that generated values derive from ([`release_randomness`]);
    /// `None`: fresh randomness on every render.
    pub randomness_key: Option<[u8; 32]>,
    /// The releases the cluster holds already (from the inventory), which render as an upgrade
    /// (`.Release.IsUpgrade`); `None`: every release renders as a first install, as in
    /// `helm template`.
    pub installed: Option<BTreeSet<String>>,
}

/// What the charts needed from outside the commit while rendering.
#[derive(Debug, Clone, Default)]
pub struct Needs {
    /// Lookups [`ClusterFacts::lookups`] had no answer for.
    pub unread: BTreeSet<envboot_helm::LookupKey>,
    /// Releases whose charts drew random values into objects that are not hooks.
    pub random: BTreeSet<String>,
    /// Whether a chart read `.Capabilities` (or has a `kubeVersion` constraint).
    pub capabilities: bool,
    /// Whether a chart may render differently on upgrade (it names `.Release.IsUpgrade` or
    /// `.Release.IsInstall`).
    pub install_state: bool,
}

/// The environment's key for generated values, from secret key material only its operators
/// hold (the age identity): HMAC-SHA256(material, environment name).
pub fn environment_randomness(material: &[u8], environment: &str) -> [u8; 32] {
    use hmac::Mac;
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(material)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(b"envboot/environment-randomness/v1\0");
    mac.update(environment.as_bytes());
    mac.finalize().into_bytes().into()
}

/// The key release `release` (in `namespace`) draws its random values from:
/// HMAC-SHA256(environment key, namespace/name), so that two releases never share values and a
/// rebuild with the same key renders the same ones.
pub fn release_randomness(key: &[u8; 32], namespace: &str, release: &str) -> [u8; 32] {
    use hmac::Mac;
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(b"envboot/release-randomness/v1\0");
    mac.update(namespace.as_bytes());
    mac.update(b"/");
    mac.update(release.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Every object of `env` in install order, and separately the Helm hooks of its releases
/// (stamped like the others; the engine runs them at their phases), rendered as `helm template`
/// would (no cluster asked).
pub fn render_with_hooks(
    env: &Environment,
    secrets: &[SecretData],
) -> Result<(Vec<Manifest>, Vec<Manifest>)> {
    render_for(env, secrets, &ClusterFacts::default()).map(|(m, h, _)| (m, h))
}

/// [`render_with_hooks`] for a cluster: `facts` says what it is and what it holds; [`Needs`]
/// says what the charts asked for beyond that.
pub fn render_for(
    env: &Environment,
    secrets: &[SecretData],
    facts: &ClusterFacts,
) -> Result<(Vec<Manifest>, Vec<Manifest>, Needs)> {
    let mut needs = Needs::default();
    let mut out = Vec::new();
    for ns in env.namespaces() {
        if SYSTEM_NAMESPACES.contains(&ns.as_str()) {
            continue;
        }
        out.push(Manifest {
            source: "namespaces".into(),
            object: json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            default_namespace: None,
            sensitive: Vec::new(),
        });
    }
    for cm in &env.config_maps {
        let mut object = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": cm.name, "namespace": cm.namespace},
        });
        if !cm.data.is_empty() {
            object["data"] = json!(cm.data);
        }
        if !cm.binary_data.is_empty() {
            let encoded: Map<String, Value> = cm
                .binary_data
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(base64(v))))
                .collect();
            object["binaryData"] = Value::Object(encoded);
        }
        out.push(Manifest {
            source: "configMaps".into(),
            object,
            default_namespace: None,
            sensitive: Vec::new(),
        });
    }
    for secret in secrets {
        let data: Map<String, Value> = secret
            .data
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(base64(v.as_bytes()))))
            .collect();
        out.push(Manifest {
            source: secret.file.clone(),
            object: json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": secret.name, "namespace": secret.namespace},
                "type": "Opaque",
                "data": data,
            }),
            default_namespace: None,
            sensitive: Vec::new(),
        });
    }
    for release in &env.releases {
        out.extend(render_release(env, release, secrets, facts, &mut needs)?);
    }
    for set in &env.manifests {
        out.extend(set.objects.iter().map(|(source, object)| Manifest {
            source: source.clone(),
            object: object.clone(),
            default_namespace: Some(set.namespace.clone()),
            sensitive: Vec::new(),
        }));
    }
    // ConfigMaps with a hash suffix: workloads in their namespace refer to them by the declared
    // name; point them at the current one, so that a change of content rolls them.
    let mut renamed: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
    for cm in env.config_maps.iter().filter(|c| c.name != c.declared_name) {
        renamed
            .entry(cm.namespace.as_str())
            .or_default()
            .insert(cm.declared_name.as_str(), cm.name.as_str());
    }
    if !renamed.is_empty() {
        for m in &mut out {
            let namespace = m.object["metadata"]["namespace"]
                .as_str()
                .map(str::to_string)
                .or_else(|| m.default_namespace.clone());
            let Some(names) = namespace.as_deref().and_then(|ns| renamed.get(ns)) else {
                continue;
            };
            if let Some(spec) = pod_spec_mut(&mut m.object) {
                rewrite_config_map_refs(spec, names);
            }
        }
    }
    for m in &mut out {
        stamp(&mut m.object, &env.name, &env.commit);
    }
    check_objects(&out)?;
    out.sort_by_key(|m| kind_rank(m.kind()));
    let (hooks, objects): (Vec<Manifest>, Vec<Manifest>) =
        out.into_iter().partition(|m| is_hook(&m.object));
    Ok((objects, hooks, needs))
}

/// Kubernetes' limit on a ConfigMap's or Secret's data (values of `data` and `binaryData`).
pub const MAX_DATA_BYTES: usize = 1024 * 1024;

/// What the API server would refuse, and what no apply could settle, found before any call:
/// names and namespaces as Kubernetes validates them, ConfigMap and Secret keys and sizes, and
/// one object rendered twice (two releases, or a release and `configMaps`).
fn check_objects(objects: &[Manifest]) -> Result<()> {
    let cluster_scoped = cluster_scoped_kinds(objects);
    let mut seen: HashMap<(String, String, String, String), &str> = HashMap::new();
    for m in objects {
        let (kind, name) = (m.kind(), m.name());
        let namespaced = !cluster_scoped.contains(kind);
        let namespace = if namespaced {
            m.namespace()
                .or(m.default_namespace.as_deref())
                .unwrap_or_default()
        } else {
            ""
        };
        let object = if namespace.is_empty() {
            format!("{kind} {name}")
        } else {
            format!("{kind} {namespace}/{name}")
        };
        let invalid = |message: String| Error::InvalidObject {
            source_file: m.source.clone(),
            object: object.clone(),
            message,
        };
        if let Some(rule) = name_rule(kind, name) {
            return Err(invalid(format!("invalid name `{name}`: {rule}")));
        }
        if let Some(ns) = m.namespace().filter(|_| namespaced) {
            if !is_dns_label(ns) {
                return Err(invalid(format!(
                    "invalid namespace `{ns}`: a namespace is a DNS label (a-z, 0-9 and `-`, starting and ending with a letter or digit, at most 63 characters)"
                )));
            }
        }
        if matches!(kind, "ConfigMap" | "Secret") && m.api_version() == "v1" {
            let mut total = 0usize;
            for field in ["data", "binaryData", "stringData"] {
                let Some(map) = m.object[field].as_object() else {
                    continue;
                };
                for (k, v) in map {
                    if !valid_data_key(k) {
                        return Err(invalid(format!(
                            "`{field}` key `{k}` is not valid: letters, digits, `-`, `_` and `.` (not `.` or `..`, not starting with `..`), at most 253 characters"
                        )));
                    }
                    let len = v.as_str().map(str::len).unwrap_or_default();
                    // Secret `data` and `binaryData` hold base64: the limit is on the bytes
                    total += if field == "stringData" || (kind == "ConfigMap" && field == "data") {
                        len
                    } else {
                        len / 4 * 3
                    };
                }
            }
            if total > MAX_DATA_BYTES {
                return Err(invalid(format!(
                    "its data is {total} bytes; Kubernetes holds at most {MAX_DATA_BYTES} bytes in a {kind}"
                )));
            }
        }
        let group = m.api_version().split_once('/').map(|g| g.0).unwrap_or("");
        let key = (
            group.to_string(),
            kind.to_string(),
            namespace.to_string(),
            name.to_string(),
        );
        if let Some(first) = seen.insert(key, &m.source) {
            return Err(Error::Duplicate {
                object,
                first: first.to_string(),
                second: m.source.clone(),
            });
        }
    }
    Ok(())
}

/// What Kubernetes requires of a `kind`'s names, if `name` breaks it.
fn name_rule(kind: &str, name: &str) -> Option<&'static str> {
    let path_segment = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('%');
    match kind {
        "Namespace" if !is_dns_label(name) => Some(
            "a Namespace's name is a DNS label (a-z, 0-9 and `-`, starting and ending with a letter or digit, at most 63 characters)",
        ),
        "Service" if !is_dns_label(name) || !name.starts_with(|c: char| c.is_ascii_lowercase()) => Some(
            "a Service's name is a DNS-1035 label (a-z, 0-9 and `-`, starting with a letter, ending with a letter or digit, at most 63 characters)",
        ),
        "ConfigMap" | "Secret" | "ServiceAccount" | "Pod" | "Deployment" | "StatefulSet"
        | "DaemonSet" | "ReplicaSet" | "Job" | "CronJob" | "PersistentVolumeClaim"
        | "PersistentVolume" | "StorageClass" | "Ingress" | "IngressClass" | "NetworkPolicy"
        | "PodDisruptionBudget" | "HorizontalPodAutoscaler" | "PriorityClass" | "LimitRange"
        | "ResourceQuota" | "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration"
            if !is_dns_subdomain(name) =>
        {
            Some("Kubernetes requires a DNS subdomain here (a-z, 0-9, `-` and `.`, each part starting and ending with a letter or digit, at most 253 characters)")
        }
        _ if !path_segment => {
            Some("a name must not be empty, `.` or `..`, nor contain `/` or `%`")
        }
        _ => None,
    }
}

/// Kubernetes' `IsConfigMapKey`.
pub fn valid_data_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key != "."
        && !key.starts_with("..")
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Standard base64 with padding, as Kubernetes stores `binaryData` and Secret `data`.
pub fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Where a workload's pod spec sits, by kind.
fn pod_spec_mut(object: &mut Value) -> Option<&mut Value> {
    let kind = object["kind"].as_str().unwrap_or_default().to_string();
    let spec = match kind.as_str() {
        "Pod" => object.get_mut("spec")?,
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => object
            .get_mut("spec")?
            .get_mut("template")?
            .get_mut("spec")?,
        "CronJob" => object
            .get_mut("spec")?
            .get_mut("jobTemplate")?
            .get_mut("spec")?
            .get_mut("template")?
            .get_mut("spec")?,
        _ => return None,
    };
    spec.is_object().then_some(spec)
}

/// Points every reference to a renamed ConfigMap (hash suffix) in a pod spec at its new name:
/// volumes (also projected), `envFrom` and `env[].valueFrom` of containers and init containers.
fn rewrite_config_map_refs(spec: &mut Value, renamed: &BTreeMap<&str, &str>) {
    // `get_mut` all the way: indexing a serde_json map mutably would add the missing keys.
    fn at<'a>(v: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
        path.iter().try_fold(v, |v, k| v.get_mut(*k))
    }
    let rename = |v: &mut Value, path: &[&str]| {
        if let Some(name) = at(v, path) {
            if let Some(new) = name.as_str().and_then(|n| renamed.get(n)) {
                *name = Value::String(new.to_string());
            }
        }
    };
    if let Some(Value::Array(volumes)) = spec.get_mut("volumes") {
        for v in volumes {
            rename(v, &["configMap", "name"]);
            if let Some(Value::Array(sources)) = at(v, &["projected", "sources"]) {
                for s in sources {
                    rename(s, &["configMap", "name"]);
                }
            }
        }
    }
    for field in ["containers", "initContainers"] {
        let Some(Value::Array(containers)) = spec.get_mut(field) else {
            continue;
        };
        for c in containers {
            if let Some(Value::Array(env_from)) = c.get_mut("envFrom") {
                for e in env_from {
                    rename(e, &["configMapRef", "name"]);
                }
            }
            if let Some(Value::Array(env)) = c.get_mut("env") {
                for e in env {
                    rename(e, &["valueFrom", "configMapKeyRef", "name"]);
                }
            }
        }
    }
}

/// Adds envboot's ownership label and revision annotation.
fn stamp(object: &mut Value, environment: &str, commit: &str) {
    let metadata = &mut object["metadata"];
    metadata["labels"][LABEL_ENVIRONMENT] = json!(environment);
    metadata["annotations"][ANNOTATION_REVISION] = json!(commit);
}

/// The Kubernetes version charts see in `.Capabilities.KubeVersion`.
pub const KUBE_VERSION: &str = "1.30.0";

/// Renders one release's chart with the Helm-compatible engine, as `helm template` would, and
/// parses the objects. Hooks are left out (they run at phases, not as part of the release).
fn render_release(
    env: &Environment,
    release: &Release,
    secrets: &[SecretData],
    facts: &ClusterFacts,
    needs: &mut Needs,
) -> Result<Vec<Manifest>> {
    // One key for both renders below: random values are the same in each, so only what
    // secrets change differs.
    let key = match &facts.randomness_key {
        Some(k) => release_randomness(k, &release.namespace, &release.name),
        None => {
            let mut fresh = [0u8; 32];
            getrandom::fill(&mut fresh).map_err(|e| Error::ChartFailed {
                release: release.name.clone(),
                message: format!("no randomness from the operating system: {e}"),
            })?;
            fresh
        }
    };
    let ctx = RenderContext { env, facts, key };
    let Some(overlay) = secret_values(release, secrets, &|v| v.to_string())? else {
        return render_with(&ctx, release, None, needs);
    };
    let mut out = render_with(&ctx, release, Some(&overlay), needs)?;
    // Secrecy as data: render again with every secret value changed (character by character,
    // keeping its form), and every field that changes with it derives from a secret, whatever
    // the chart did to it (upper, trunc, toJson, base64 twice, one character at a time).
    let probe = secret_values(release, secrets, &probe_value)?;
    let probed = probe
        .as_ref()
        .and_then(|p| render_with(&ctx, release, Some(p), &mut Needs::default()).ok());
    match probed {
        Some(probed) if probed.len() == out.len() => {
            for (m, p) in out.iter_mut().zip(&probed) {
                differing(&m.object, &p.object, &mut Vec::new(), &mut m.sensitive);
            }
        }
        // the chart rendered other objects: everything but their identity is sensitive
        _ => {
            for m in &mut out {
                if let Value::Object(fields) = &m.object {
                    m.sensitive = fields
                        .keys()
                        .filter(|k| !matches!(k.as_str(), "apiVersion" | "kind" | "metadata"))
                        .map(|k| vec![k.clone()])
                        .collect();
                }
            }
        }
    }
    // and the last line of defence masks their values wherever they are printed
    let mut derived = Vec::new();
    for m in &out {
        for path in &m.sensitive {
            leaf_strings(at_path(&m.object, path), &mut derived);
        }
    }
    crate::sensitive::register_sensitive(derived.iter().map(String::as_str));
    Ok(out)
}

/// A secret value changed in every character but whitespace, its length and form kept (a
/// letter stays a letter of its case, a digit a digit, punctuation punctuation), so that a
/// chart's checks of its format still pass.
fn probe_value(v: &str) -> String {
    const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
    v.chars()
        .map(|c| match c {
            'a'..='y' | 'A'..='Y' | '0'..='8' => char::from(c as u8 + 1),
            'z' => 'a',
            'Z' => 'A',
            '9' => '0',
            c => match PUNCTUATION.find(c) {
                Some(i) => PUNCTUATION[i + 1..]
                    .chars()
                    .next()
                    .or(PUNCTUATION.chars().next())
                    .unwrap_or(c),
                None => c,
            },
        })
        .collect()
}

/// The paths where `a` and `b` differ (a key only `a` has, a list of another length, a value).
fn differing(a: &Value, b: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                path.push(k.clone());
                match y.get(k) {
                    Some(vb) => differing(va, vb, path, out),
                    None => out.push(path.clone()),
                }
                path.pop();
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                path.push(format!("[{i}]"));
                differing(va, vb, path, out);
                path.pop();
            }
        }
        _ if a != b => out.push(path.clone()),
        _ => {}
    }
}

/// A path segment's list index (`[3]`).
fn index(segment: &str) -> Option<usize> {
    segment.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

/// A path as plans name fields: `spec.template.spec.containers[0].env[2].value`.
pub fn field_path(path: &[String]) -> String {
    let mut out = String::new();
    for seg in path {
        if !out.is_empty() && !seg.starts_with('[') {
            out.push('.');
        }
        out.push_str(seg);
    }
    out
}

/// The value at `path` (keys and list indices), or null.
fn at_path<'v>(v: &'v Value, path: &[String]) -> &'v Value {
    path.iter().fold(v, |v, k| match v {
        Value::Array(a) => index(k).and_then(|i| a.get(i)).unwrap_or(&Value::Null),
        v => &v[k.as_str()],
    })
}

fn leaf_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| leaf_strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| leaf_strings(x, out)),
        Value::Number(n) => out.push(n.to_string()),
        _ => {}
    }
}

/// [`mask`], and every field [`Manifest::sensitive`] names shown as `(sensitive)`.
pub fn mask_manifest(m: &Manifest) -> Value {
    let mut v = mask(&m.object);
    for path in &m.sensitive {
        set_sensitive(&mut v, path);
    }
    v
}

fn set_sensitive(v: &mut Value, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        *v = Value::String(crate::sensitive::SENSITIVE.to_string());
        return;
    };
    let next = match v {
        Value::Array(a) => index(first).and_then(|i| a.get_mut(i)),
        Value::Object(o) => o.get_mut(first),
        _ => None,
    };
    if let Some(next) = next {
        set_sensitive(next, rest);
    }
}

/// What every render of one release shares.
struct RenderContext<'a> {
    env: &'a Environment,
    facts: &'a ClusterFacts,
    /// The release's randomness ([`release_randomness`], or fresh).
    key: [u8; 32],
}

/// Renders `release`'s chart, with `overlay` (its values from secrets) merged last.
fn render_with(
    ctx: &RenderContext,
    release: &Release,
    overlay: Option<&Value>,
    needs: &mut Needs,
) -> Result<Vec<Manifest>> {
    let chart = &release.chart;
    let mut values_files = release.values_sources.clone();
    if let Some(overlay) = overlay {
        let text = serde_yaml_ng::to_string(overlay).unwrap_or_default();
        values_files.push((format!("(secret values of release {})", release.name), text));
    }
    // Helm names files `<chart name>/templates/...`; envboot names them by repository path.
    let located =
        |message: String| message.replace(&format!("{}/", chart.name), &format!("{}/", chart.dir));
    let failed = |message: String| Error::ChartFailed {
        release: release.name.clone(),
        message: located(message),
    };
    // what Helm says of the chart itself names no file: say which chart
    let chart_failed = |e: envboot_helm::Error| match e {
        envboot_helm::Error::Chart(m) => failed(format!("{}: {m}", chart.dir)),
        e => failed(e.to_string()),
    };
    let engine_chart =
        envboot_helm::Chart::from_files(chart.files.clone()).map_err(chart_failed)?;
    let options = envboot_helm::Options {
        release_name: release.name.clone(),
        namespace: release.namespace.clone(),
        kube_version: ctx
            .env
            .cluster
            .as_ref()
            .and_then(|c| c.kube_version.clone())
            .unwrap_or_else(|| KUBE_VERSION.to_string()),
        api_versions: ctx
            .env
            .cluster
            .as_ref()
            .map(|c| c.api_versions.clone())
            .unwrap_or_default(),
        values_files,
        set: Vec::new(),
        set_string: Vec::new(),
        is_upgrade: ctx
            .facts
            .installed
            .as_ref()
            .is_some_and(|installed| installed.contains(&release.name)),
        max_steps: None,
        cluster: ctx.facts.capabilities.clone(),
        lookups: ctx.facts.lookups.clone(),
        randomness: envboot_helm::Randomness::Derived(ctx.key),
    };
    let rendering =
        envboot_helm::template_with_lookups(&engine_chart, &options).map_err(chart_failed)?;
    needs.unread.extend(rendering.unread);
    needs.capabilities |= rendering.capabilities;
    needs.install_state |= rendering.install_state;
    let drew = rendering.random;
    let rendered = rendering.rendered;
    let mut out = Vec::new();
    for r in &rendered {
        let file = located(r.source.clone());
        for (index, (_, doc)) in split_documents(&r.content).into_iter().enumerate() {
            // read as `helm install` reads it (sigs.k8s.io/yaml: go-yaml v2, then JSON)
            let value: Value =
                envboot_helm::manifest::to_json(doc).map_err(|message| Error::InvalidOutput {
                    release: release.name.clone(),
                    file: file.clone(),
                    message,
                })?;
            if value.is_null() {
                continue;
            }
            let mut object = value;
            for (field, missing) in [("apiVersion", "apiVersion"), ("kind", "kind")] {
                if !object[field].is_string() {
                    return Err(Error::IncompleteObject {
                        release: release.name.clone(),
                        file,
                        index,
                        missing,
                    });
                }
            }
            if !object["metadata"]["name"].is_string() {
                return Err(Error::IncompleteObject {
                    release: release.name.clone(),
                    file,
                    index,
                    missing: "metadata.name",
                });
            }
            object["metadata"]["labels"][LABEL_RELEASE] = json!(release.name);
            // random values matter where they reach what apply keeps (a hook, `helm test`'s
            // pods among them, is made anew each time it runs)
            if drew.contains(&r.source) && !is_hook(&object) {
                needs.random.insert(release.name.clone());
            }
            out.push(Manifest {
                source: file.clone(),
                object,
                default_namespace: Some(release.namespace.clone()),
                sensitive: Vec::new(),
            });
        }
    }
    Ok(out)
}

/// The top-level keys of a release's inline values that hold `${secret.NAME.KEY}` references,
/// with the decrypted values filled in: merged last, over the inline values they came from.
fn secret_values(
    release: &Release,
    secrets: &[SecretData],
    form: &dyn Fn(&str) -> String,
) -> Result<Option<Value>> {
    let Value::Object(inline) = &release.inline_values else {
        return Ok(None);
    };
    let mut overlay = Map::new();
    let mut missing = None;
    for (key, value) in inline {
        let mut found = Vec::new();
        crate::model::refs::collect(value, "", &mut found);
        if !found.iter().any(|(_, e)| {
            matches!(
                crate::model::refs::Ref::parse(e),
                crate::model::refs::Ref::Secret { .. }
            )
        }) {
            continue;
        }
        let mut filled = value.clone();
        crate::model::refs::substitute(&mut filled, &mut |expr| {
            let crate::model::refs::Ref::Secret { name, key: k } =
                crate::model::refs::Ref::parse(expr)
            else {
                return None;
            };
            let secret = secrets
                .iter()
                .find(|s| s.name == name && s.namespace == release.namespace)
                .or_else(|| secrets.iter().find(|s| s.name == name))?;
            match secret.data.get(k) {
                Some(v) => Some(Value::String(form(v))),
                None => {
                    missing.get_or_insert(Error::MissingSecretKey {
                        release: release.name.clone(),
                        secret: name.to_string(),
                        key: k.to_string(),
                        file: secret.file.clone(),
                    });
                    None
                }
            }
        });
        overlay.insert(key.clone(), filled);
    }
    match missing {
        Some(e) => Err(e),
        None if overlay.is_empty() => Ok(None),
        None => Ok(Some(Value::Object(overlay))),
    }
}

/// Splits a multi-document YAML stream at `---` lines: the documents that are not blank, each
/// with the line it starts on.
pub(crate) fn split_documents(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let (mut start, mut start_line, mut offset) = (0, 1, 0);
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_end() == "---" || line.starts_with("--- ") {
            out.push((start_line, &text[start..offset]));
            start = offset + line.len();
            start_line = i + 2;
        }
        offset += line.len();
    }
    out.push((start_line, &text[start..]));
    out.retain(|(_, d)| !d.trim().is_empty());
    out
}

/// Prints manifests as one YAML stream with `# Source:` comments, like `helm template`.
pub fn to_yaml_stream(manifests: &[Manifest]) -> String {
    let mut out = String::new();
    for doc in to_yaml_documents(manifests) {
        out.push_str("---\n");
        out.push_str(&doc);
    }
    out
}

/// Each manifest as a YAML document headed by its source, Secrets' data masked: as apply sends
/// it (a namespaced object names its namespace), in go-yaml's style, so that `kubectl apply -f`
/// reads the same object (a string such as `yes` or `on` is quoted, as go-yaml would read it as
/// a boolean otherwise).
pub fn to_yaml_documents(manifests: &[Manifest]) -> Vec<String> {
    let cluster_scoped = cluster_scoped_kinds(manifests);
    manifests
        .iter()
        .map(|m| {
            let mut object = mask_manifest(m);
            if object["metadata"]["namespace"].is_null() && !cluster_scoped.contains(m.kind()) {
                if let Some(ns) = &m.default_namespace {
                    object["metadata"]["namespace"] = json!(ns);
                }
            }
            format!(
                "# Source: {}\n{}",
                m.source,
                envboot_helm::manifest::to_yaml(&object)
            )
        })
        .collect()
}

/// Built-in kinds that are not namespaced (what a plan or render made without the cluster
/// assumes; apply asks the cluster's discovery).
pub const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "IngressClass",
    "RuntimeClass",
    "APIService",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "CSIDriver",
    "CSINode",
    "VolumeAttachment",
    "Node",
    "CertificateSigningRequest",
    "FlowSchema",
    "PriorityLevelConfiguration",
];

/// [`CLUSTER_SCOPED`] and the cluster-scoped kinds the manifests' own CRDs define.
pub fn cluster_scoped_kinds(manifests: &[Manifest]) -> BTreeSet<String> {
    let mut kinds: BTreeSet<String> = CLUSTER_SCOPED.iter().map(|k| k.to_string()).collect();
    for m in manifests {
        if let Some(crd) = crd_kinds(&m.object) {
            if !crd.namespaced {
                kinds.insert(crd.kind.to_string());
            }
        }
    }
    kinds
}

/// One file name per manifest: install-order position, kind, namespace and name
/// (`003-configmap-shop-settings.yaml`), lower case.
pub fn file_names(manifests: &[Manifest]) -> Vec<String> {
    let width = manifests.len().to_string().len().max(3);
    manifests
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut parts = vec![m.kind().to_lowercase()];
            if let Some(ns) = m.namespace().or(m.default_namespace.as_deref()) {
                parts.push(ns.to_string());
            }
            parts.push(m.name().to_string());
            let stem: String = parts
                .join("-")
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            format!("{:0width$}-{stem}.yaml", i + 1)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_split_at_separator_lines_only() {
        let docs = split_documents("a: 1\n---\nb: '---'\n---\n\n---\nc: 3\n");
        assert_eq!(docs, vec![(1, "a: 1\n"), (3, "b: '---'\n"), (7, "c: 3\n")]);
    }

    #[test]
    fn kinds_follow_helm_install_order() {
        assert!(kind_rank("Namespace") < kind_rank("ConfigMap"));
        assert!(kind_rank("ConfigMap") < kind_rank("Deployment"));
        assert!(kind_rank("Deployment") < kind_rank("SomeCustomKind"));
    }

    #[test]
    fn a_crd_defines_its_kind_in_each_version_with_whether_it_is_served() {
        let crd = serde_json::json!({"kind": "CustomResourceDefinition", "spec": {
            "group": "example.dev", "names": {"kind": "Widget"}, "scope": "Cluster",
            "versions": [{"name": "v1", "served": true}, {"name": "v0", "served": false},
                         {"name": "v2"}]}});
        assert_eq!(
            crd_kinds(&crd),
            Some(CrdKinds {
                group: "example.dev",
                kind: "Widget",
                namespaced: false,
                versions: vec![("v1", true), ("v0", false), ("v2", true)],
            })
        );
        assert_eq!(crd_kinds(&serde_json::json!({"kind": "ConfigMap"})), None);
    }
}
