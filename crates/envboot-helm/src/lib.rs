//! A Helm chart renderer that produces exactly what `helm template` (v4) prints.
//!
//! The engine implements Go's text/template semantics (`parse`, `exec`), Go's `fmt` printing
//! (`gofmt`, `value`), Go's builtins, Sprig's and Helm's functions (`funcs`: a registry of
//! names filled by one module per family, resolved when a template is parsed), YAML and JSON
//! as go-yaml v2 and `encoding/json` read and write them (`yaml`: `read`, `write`, `json`),
//! Masterminds semver constraints (`semver`), `--set` parsing (`strvals`) and the
//! `values.schema.json` check (`schema`). This module loads charts, computes values as Helm
//! does (chart defaults < values files < `--set`, subcharts and `global`), renders every
//! template, and orders and frames the output like `helm template`.

mod coalesce;
mod exec;
mod funcs;
mod gofmt;
pub mod manifest;
mod parse;
mod schema;
mod semver;
mod stack;
mod strvals;
mod value;
mod yaml;

#[cfg(test)]
mod install_tests;
#[cfg(test)]
mod limits_tests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::rc::Rc;

use value::{FileData, Obj, Value};

/// Errors of loading, values and rendering. Messages follow Helm's wording.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("{0}")]
    Chart(String),
    #[error("{0}")]
    Values(String),
    #[error("{0}")]
    Schema(String),
    #[error(
        "chart requires kubeVersion: {constraint} which is incompatible with Kubernetes {version}"
    )]
    KubeVersion { constraint: String, version: String },
    #[error("parse error at ({file}:{line}): {message}")]
    Parse {
        chart: String,
        file: String,
        line: usize,
        message: String,
    },
    /// A template failed: `message` is what Helm prints, `expression` the failing action.
    #[error("{message}")]
    Render {
        chart: String,
        file: String,
        line: usize,
        expression: String,
        message: String,
    },
    #[error("YAML parse error on {file}: {message}")]
    Manifest { file: String, message: String },
}

/// Helm's `MaxDecompressedFileSize`: the largest file a chart may hold.
const MAX_FILE_SIZE: usize = 5 * 1024 * 1024;
/// Helm's `MaxDecompressedChartSize`: the most a chart archive may unpack to.
const MAX_CHART_SIZE: u64 = 100 * 1024 * 1024;

/// A chart folder: every file, by path relative to the chart root.
#[derive(Debug, Clone)]
pub struct Chart {
    files: BTreeMap<String, FileData>,
}

impl Chart {
    /// A chart from its files, as Helm loads a folder: `.helmignore` applies, no file may be
    /// larger than Helm's 5 MiB.
    pub fn from_files(files: BTreeMap<String, Vec<u8>>) -> Result<Chart, Error> {
        Chart::from_file_data(files.into_iter().map(|(k, v)| (k, v.into())).collect())
    }

    fn from_file_data(mut files: BTreeMap<String, FileData>) -> Result<Chart, Error> {
        let ignore = files
            .get(".helmignore")
            .map(|b| value::text(b))
            .unwrap_or_default();
        let patterns: Vec<String> = ignore
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
            .map(String::from)
            .collect();
        if !patterns.is_empty() {
            files.retain(|k, _| !helmignored(&patterns, k));
        }
        if !files.contains_key("Chart.yaml") {
            return Err(Error::Chart("Chart.yaml file is missing".to_string()));
        }
        if let Some((name, _)) = files.iter().find(|(_, b)| b.len() > MAX_FILE_SIZE) {
            let base = name.rsplit('/').next().unwrap_or(name);
            return Err(Error::Chart(format!(
                "chart file {base:?} is larger than the maximum file size {MAX_FILE_SIZE}"
            )));
        }
        Ok(Chart { files })
    }

    pub fn from_dir(path: &Path) -> Result<Chart, Error> {
        let mut files = BTreeMap::new();
        read_dir(path, path, &mut files)?;
        Chart::from_file_data(files)
    }

    pub fn files(&self) -> &BTreeMap<String, FileData> {
        &self.files
    }
}

fn helmignored(patterns: &[String], path: &str) -> bool {
    if path == "Chart.yaml" {
        return false;
    }
    let parts: Vec<&str> = path.split('/').collect();
    patterns.iter().any(|p| {
        let dir_only = p.ends_with('/');
        let p = p.trim_end_matches('/').trim_start_matches("./");
        if p.contains('/') {
            let p = p.trim_start_matches('/');
            return funcs::glob_match(p, path)
                || path.strip_prefix(p).is_some_and(|r| r.starts_with('/'));
        }
        parts.iter().enumerate().any(|(i, seg)| {
            let is_dir = i + 1 < parts.len();
            (!dir_only || is_dir) && funcs::glob_match(p, seg)
        })
    })
}

fn read_dir(root: &Path, dir: &Path, out: &mut BTreeMap<String, FileData>) -> Result<(), Error> {
    let io = |p: &Path, e: std::io::Error| Error::Io {
        path: p.display().to_string(),
        message: e.to_string(),
    };
    let entries = std::fs::read_dir(dir).map_err(|e| io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io(dir, e))?;
        let p = entry.path();
        let ft = entry.file_type().map_err(|e| io(&p, e))?;
        if ft.is_dir() {
            read_dir(root, &p, out)?;
        } else if ft.is_file() {
            let rel = p
                .strip_prefix(root)
                .map(|r| r.to_string_lossy().replace('\\', "/"))
                .unwrap_or_default();
            let data = std::fs::read(&p).map_err(|e| io(&p, e))?;
            out.insert(rel, data.into());
        }
    }
    Ok(())
}

/// What `helm template` is told.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub release_name: String,
    pub namespace: String,
    /// e.g. "1.30.0"
    pub kube_version: String,
    pub api_versions: Vec<String>,
    /// (name, YAML text), in the order given.
    pub values_files: Vec<(String, String)>,
    pub set: Vec<String>,
    pub set_string: Vec<String>,
    pub is_upgrade: bool,
    /// The most steps the render may take (template nodes walked); `None` is envboot's default
    /// budget, [`MAX_STEPS`].
    pub max_steps: Option<u64>,
    /// What the cluster says of itself, as `helm install` asks it: `.Capabilities` are then the
    /// cluster's version and exactly the API versions it serves (instead of `kube_version` and
    /// Helm's default set with `api_versions`).
    pub cluster: Option<ClusterCapabilities>,
    /// What `lookup` finds: `None` is `helm template` (every lookup is an empty map); `Some` holds
    /// the objects read from the cluster, and the lookups it lacks are reported by
    /// [`template_with_lookups`] (the caller reads them and renders again: rendering does no IO).
    pub lookups: Option<std::sync::Arc<Lookups>>,
    /// Where `randAlphaNum`, `uuidv4`, `shuffle` and the other random functions draw from.
    pub randomness: Randomness,
}

/// What the cluster says of itself (its discovery), as `helm install` builds `.Capabilities`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterCapabilities {
    /// The server's `gitVersion` (`v1.20.2`, `v1.33.5+k3s1`), as `.Capabilities.KubeVersion.Version`.
    pub git_version: String,
    /// `major` and `minor` as the server gives them (`1`, `20`; some providers say `27+`).
    pub major: String,
    pub minor: String,
    /// Every group version (`apps/v1`) and group version kind (`apps/v1/Deployment`) served.
    pub api_versions: Vec<String>,
}

/// A `lookup apiVersion kind namespace name` call (an empty name lists).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LookupKey {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

/// The answers to lookups, read from the cluster: the object (or list) as the API server sent
/// it, `null` for one that does not exist (an empty map to the template, as in Helm), or the
/// error the read met (the render fails with it, as `helm install` does). What a render looked
/// up without an answer here is noted ([`Lookups::unread`]), also when the render then failed
/// (a template that needs what the lookup finds).
#[derive(Debug, Default)]
pub struct Lookups {
    pub found: BTreeMap<LookupKey, Result<serde_json::Value, String>>,
    unread: std::sync::Mutex<BTreeSet<LookupKey>>,
}

impl Clone for Lookups {
    /// The answers; nothing unread.
    fn clone(&self) -> Lookups {
        Lookups {
            found: self.found.clone(),
            unread: Default::default(),
        }
    }
}

impl Lookups {
    /// The lookups renders made that [`Lookups::found`] has no answer for.
    pub fn unread(&self) -> BTreeSet<LookupKey> {
        self.unread
            .lock()
            .map(|u| u.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    pub(crate) fn note_unread(&self, key: LookupKey) {
        if let Ok(mut u) = self.unread.lock() {
            u.insert(key);
        }
    }
}

/// The source of the random functions' values.
#[derive(Clone, Default)]
pub enum Randomness {
    /// Fresh from the operating system on every render, as `helm template` and `helm install`.
    #[default]
    Fresh,
    /// Derived from this key: each template file draws from its own stream,
    /// HMAC-SHA256(key, file name) seeding ChaCha20, so the same key renders the same values.
    Derived([u8; 32]),
}

impl std::fmt::Debug for Randomness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Randomness::Fresh => f.write_str("Fresh"),
            // never the key
            Randomness::Derived(_) => f.write_str("Derived(..)"),
        }
    }
}

pub use exec::MAX_STEPS;
pub use funcs::{MAX_LIST_ITEMS, MAX_VALUE_BYTES};
pub use yaml::{load_values, tabs_after_colons, ValuesError};

/// Masterminds/semver v3, as Helm uses it for chart versions and dependency constraints.
pub mod versions {
    pub use crate::semver::{compare as satisfies, is_valid};

    /// `s` is a constraint Masterminds semver reads (`^1.2`, `>=1, <2`, `1.x`).
    pub fn is_constraint(s: &str) -> bool {
        crate::semver::Constraint::parse(s).is_ok()
    }

    /// Orders two versions as semver does (a version that does not parse sorts first).
    pub fn cmp(a: &str, b: &str) -> std::cmp::Ordering {
        match (
            crate::semver::Version::parse(a),
            crate::semver::Version::parse(b),
        ) {
            (Ok(a), Ok(b)) => a.cmp(&b),
            (a, b) => a.is_ok().cmp(&b.is_ok()),
        }
    }
}

/// The files of a `helm package`d chart archive (`.tgz`), relative to its top folder, with
/// Helm's size limits.
///
/// # Errors
/// The archive is not a gzipped tar, is too large, or holds no `Chart.yaml`.
pub fn unpack_archive(data: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, String> {
    untar_chart(data)
}

/// Whether `v` is a version Helm accepts for `--kube-version` (SemVer, `v` prefix optional).
pub fn is_kube_version(v: &str) -> bool {
    semver::Version::parse(v.trim()).is_ok()
}

/// One rendered manifest (one YAML document), in output order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// "podinfo/templates/deployment.yaml"
    pub source: String,
    pub content: String,
    /// A Helm hook (printed after the other manifests).
    pub hook: bool,
}

/// The API versions Helm v4.1.4 assumes without a cluster.
const DEFAULT_API_VERSIONS: &[&str] = &[
    "v1",
    "admissionregistration.k8s.io/v1",
    "admissionregistration.k8s.io/v1alpha1",
    "admissionregistration.k8s.io/v1beta1",
    "internal.apiserver.k8s.io/v1alpha1",
    "apps/v1",
    "apps/v1beta1",
    "apps/v1beta2",
    "authentication.k8s.io/v1",
    "authentication.k8s.io/v1alpha1",
    "authentication.k8s.io/v1beta1",
    "authorization.k8s.io/v1",
    "authorization.k8s.io/v1beta1",
    "autoscaling/v1",
    "autoscaling/v2",
    "autoscaling/v2beta1",
    "autoscaling/v2beta2",
    "batch/v1",
    "batch/v1beta1",
    "certificates.k8s.io/v1",
    "certificates.k8s.io/v1beta1",
    "certificates.k8s.io/v1alpha1",
    "coordination.k8s.io/v1alpha2",
    "coordination.k8s.io/v1beta1",
    "coordination.k8s.io/v1",
    "discovery.k8s.io/v1",
    "discovery.k8s.io/v1beta1",
    "events.k8s.io/v1",
    "events.k8s.io/v1beta1",
    "extensions/v1beta1",
    "flowcontrol.apiserver.k8s.io/v1",
    "flowcontrol.apiserver.k8s.io/v1beta1",
    "flowcontrol.apiserver.k8s.io/v1beta2",
    "flowcontrol.apiserver.k8s.io/v1beta3",
    "networking.k8s.io/v1",
    "networking.k8s.io/v1beta1",
    "node.k8s.io/v1",
    "node.k8s.io/v1alpha1",
    "node.k8s.io/v1beta1",
    "policy/v1",
    "policy/v1beta1",
    "rbac.authorization.k8s.io/v1",
    "rbac.authorization.k8s.io/v1beta1",
    "rbac.authorization.k8s.io/v1alpha1",
    "resource.k8s.io/v1",
    "resource.k8s.io/v1beta2",
    "resource.k8s.io/v1beta1",
    "resource.k8s.io/v1alpha3",
    "scheduling.k8s.io/v1alpha1",
    "scheduling.k8s.io/v1beta1",
    "scheduling.k8s.io/v1",
    "storage.k8s.io/v1beta1",
    "storage.k8s.io/v1",
    "storage.k8s.io/v1alpha1",
    "storagemigration.k8s.io/v1beta1",
    "apiextensions.k8s.io/v1beta1",
    "apiextensions.k8s.io/v1",
];

/// Helm's install order of kinds.
pub const INSTALL_ORDER: &[&str] = &[
    "PriorityClass",
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// A loaded chart with its subcharts.
#[derive(Clone)]
struct Loaded {
    name: String,
    /// `version` of Chart.yaml
    version: String,
    /// `.Chart`
    metadata: Value,
    kube_version: String,
    defaults: Value,
    schema: Option<String>,
    templates: Vec<(String, String)>,
    files: BTreeMap<String, FileData>,
    subcharts: Vec<Loaded>,
    /// `dependencies` of Chart.yaml (or requirements.yaml)
    deps: Vec<Dep>,
}

/// One entry of `dependencies`.
#[derive(Clone)]
struct Dep {
    name: String,
    alias: String,
    version: String,
    condition: String,
    tags: Vec<String>,
    /// its entry in `.Chart.Dependencies`
    meta: Value,
}

fn chart_str(v: Option<&Value>) -> Value {
    match v {
        None | Some(Value::Nil) => Value::str(""),
        Some(Value::Str(s)) => Value::Str(s.clone()),
        Some(Value::Int(i)) => Value::string(i.to_string()),
        Some(Value::Float(f)) => Value::string(value::go_float(*f)),
        Some(Value::Bool(b)) => Value::string(b.to_string()),
        Some(v) => v.clone(),
    }
}

/// Helm's checks of a chart's metadata when it loads it (`Metadata.Validate`), in its order and
/// words.
fn validate_metadata(
    m: &BTreeMap<String, Value>,
    raw: &BTreeMap<String, Value>,
    deps: &[Dep],
) -> Result<(), Error> {
    let field = |k: &str| match m.get(k) {
        Some(Value::Str(s)) => s.to_string(),
        _ => String::new(),
    };
    let invalid = |msg: String| Err(Error::Chart(format!("validation: {msg}")));
    // an absent apiVersion is read as v1; v3 charts are not something Helm 4 renders
    if !matches!(field("APIVersion").as_str(), "" | "v1" | "v2") {
        return Err(Error::Chart("invalid chart apiVersion".into()));
    }
    let name = field("Name");
    if name.is_empty() {
        return invalid("chart.metadata.name is required".into());
    }
    if name.contains('/') || name == "." || name == ".." {
        return invalid(format!("chart.metadata.name {name:?} is invalid"));
    }
    let version = field("Version");
    if version.is_empty() {
        return invalid("chart.metadata.version is required".into());
    }
    if !semver::is_valid(&version) {
        return invalid(format!("chart.metadata.version {version:?} is invalid"));
    }
    if !matches!(field("Type").as_str(), "" | "application" | "library") {
        return invalid("chart.metadata.type must be application or library".into());
    }
    if let Some(Value::List(l)) = raw.get("maintainers") {
        if l.iter().any(Value::is_nil) {
            return invalid("maintainers must not contain empty or null nodes".into());
        }
    }
    if let Some(Value::List(l)) = raw.get("dependencies") {
        if l.iter().any(Value::is_nil) {
            return invalid("dependencies must not contain empty or null nodes".into());
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for d in deps {
        let alias_ok = d
            .alias
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !alias_ok {
            return invalid(format!(
                "dependency {:?} has disallowed characters in the alias",
                d.name
            ));
        }
        let key = if d.alias.is_empty() {
            &d.name
        } else {
            &d.alias
        };
        if !seen.insert(key.clone()) {
            return invalid(format!(
                "more than one dependency with name or alias {key:?}"
            ));
        }
    }
    Ok(())
}

fn load(files: &BTreeMap<String, FileData>, is_root: bool) -> Result<Loaded, Error> {
    let text = |p: &str| files.get(p).map(|b| value::text(b));
    let chart_yaml =
        text("Chart.yaml").ok_or_else(|| Error::Chart("Chart.yaml file is missing".into()))?;
    let meta = yaml::parse(&chart_yaml).map_err(|e| {
        Error::Chart(format!(
            "cannot load Chart.yaml: error converting YAML to JSON: {e}"
        ))
    })?;
    let meta_map = match &meta {
        Value::Map(m) => m.borrow().clone(),
        _ => BTreeMap::new(),
    };
    let name = match meta_map.get("name") {
        Some(Value::Str(s)) => s.to_string(),
        _ => String::new(),
    };
    let mut m = BTreeMap::new();
    let fields = [
        ("APIVersion", "apiVersion"),
        ("AppVersion", "appVersion"),
        ("Condition", "condition"),
        ("Description", "description"),
        ("Home", "home"),
        ("Icon", "icon"),
        ("KubeVersion", "kubeVersion"),
        ("Name", "name"),
        ("Tags", "tags"),
        ("Type", "type"),
        ("Version", "version"),
    ];
    for (f, k) in fields {
        m.insert(f.to_string(), chart_str(meta_map.get(k)));
    }
    let list_field = |k: &str| match meta_map.get(k) {
        Some(Value::List(l)) => Value::List(l.clone()),
        _ => Value::list(Vec::new()),
    };
    m.insert("Sources".into(), list_field("sources"));
    m.insert("Keywords".into(), list_field("keywords"));
    let maint: Vec<Value> = match meta_map.get("maintainers") {
        Some(Value::List(l)) => l
            .iter()
            .map(|x| {
                let get = |k: &str| match x {
                    Value::Map(mm) => chart_str(mm.borrow().get(k)),
                    _ => Value::str(""),
                };
                let mut mm = BTreeMap::new();
                mm.insert("Name".to_string(), get("name"));
                mm.insert("Email".to_string(), get("email"));
                mm.insert("URL".to_string(), get("url"));
                Value::map(mm)
            })
            .collect(),
        _ => Vec::new(),
    };
    m.insert("Maintainers".into(), Value::list(maint));
    let annotations = match meta_map.get("annotations") {
        Some(Value::Map(a)) => Value::map(
            a.borrow()
                .iter()
                .map(|(k, v)| (k.clone(), chart_str(Some(v))))
                .collect(),
        ),
        _ => Value::empty_map(),
    };
    m.insert("Annotations".into(), annotations);
    m.insert(
        "Deprecated".into(),
        Value::Bool(matches!(
            meta_map.get("deprecated"),
            Some(Value::Bool(true))
        )),
    );
    // requirements.yaml (apiVersion v1) is read into the same metadata, after Chart.yaml
    let mut dep_list = meta_map.get("dependencies").cloned();
    if let Some(t) = text("requirements.yaml") {
        let req = yaml::parse(&t).map_err(|e| {
            Error::Chart(format!(
                "cannot load requirements.yaml: error converting YAML to JSON: {e}"
            ))
        })?;
        if let Value::Map(rm) = &req {
            if let Some(d) = rm.borrow().get("dependencies") {
                dep_list = Some(d.clone());
            }
        }
    }
    let mut deps = Vec::new();
    if let Some(Value::List(l)) = &dep_list {
        for d in l.iter() {
            let get = |k: &str| match d {
                Value::Map(mm) => mm.borrow().get(k).cloned(),
                _ => None,
            };
            let s = |k: &str| match chart_str(get(k).as_ref()) {
                Value::Str(s) => s.to_string(),
                _ => String::new(),
            };
            let tags: Vec<String> = match get("tags") {
                Some(Value::List(t)) => t
                    .iter()
                    .filter_map(|x| match x {
                        Value::Str(s) => Some(s.to_string()),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let mut mm = BTreeMap::new();
            mm.insert("Name".to_string(), Value::string(s("name")));
            mm.insert("Version".to_string(), Value::string(s("version")));
            mm.insert("Repository".to_string(), Value::string(s("repository")));
            mm.insert("Condition".to_string(), Value::string(s("condition")));
            mm.insert(
                "Tags".to_string(),
                Value::list(tags.iter().map(|t| Value::string(t.clone())).collect()),
            );
            mm.insert("Alias".to_string(), Value::string(s("alias")));
            mm.insert("Enabled".to_string(), Value::Bool(true));
            let imports = match get("import-values") {
                Some(Value::List(l)) => Value::List(l),
                _ => Value::list(Vec::new()),
            };
            mm.insert("ImportValues".to_string(), imports);
            deps.push(Dep {
                name: s("name"),
                alias: s("alias"),
                version: s("version"),
                condition: s("condition"),
                tags,
                meta: Value::map(mm),
            });
        }
    }
    let dep_values: Vec<Value> = deps.iter().map(|d| d.meta.clone()).collect();
    m.insert("Dependencies".into(), Value::list(dep_values));
    m.insert("IsRoot".into(), Value::Bool(is_root));
    let kube_version = match m.get("KubeVersion") {
        Some(Value::Str(s)) => s.to_string(),
        _ => String::new(),
    };

    let defaults = match text("values.yaml") {
        Some(t) => yaml::load_values(&t)
            .map_err(|e| Error::Values(format!("cannot load values.yaml: {}", e.message)))?,
        None => Value::empty_map(),
    };
    let schema = text("values.schema.json");
    validate_metadata(&m, &meta_map, &deps)?;

    let mut templates = Vec::new();
    let mut other = BTreeMap::new();
    let mut sub_files: BTreeMap<String, BTreeMap<String, FileData>> = BTreeMap::new();
    let mut archives: Vec<(String, FileData)> = Vec::new();
    for (path, data) in files {
        if let Some(rest) = path.strip_prefix("templates/") {
            let _ = rest;
            templates.push((format!("{name}/{path}"), value::text(data)));
        } else if let Some(rest) = path.strip_prefix("charts/") {
            if let Some((sub, inner)) = rest.split_once('/') {
                sub_files
                    .entry(sub.to_string())
                    .or_default()
                    .insert(inner.to_string(), data.clone());
            } else if rest.ends_with(".tgz") || rest.ends_with(".tar.gz") {
                archives.push((rest.to_string(), data.clone()));
            } else if rest.ends_with(".prov") {
                other.insert(path.clone(), data.clone());
            }
        } else if !matches!(
            path.as_str(),
            "Chart.yaml"
                | "values.yaml"
                | "values.schema.json"
                | "Chart.lock"
                | "requirements.yaml"
                | "requirements.lock"
        ) {
            other.insert(path.clone(), data.clone());
        }
    }
    let mut subcharts = Vec::new();
    for (_, sf) in sub_files {
        if sf.contains_key("Chart.yaml") {
            subcharts.push(load(&sf, false)?);
        }
    }
    for (arch, data) in archives {
        let sf = untar_chart(&data)
            .map_err(|e| Error::Chart(format!("error unpacking subchart {arch} in {name}: {e}")))?;
        let sf = sf.into_iter().map(|(k, v)| (k, v.into())).collect();
        let sub = load(&sf, false)
            .map_err(|e| Error::Chart(format!("error unpacking subchart {arch} in {name}: {e}")))?;
        subcharts.push(sub);
    }
    let version = match m.get("Version") {
        Some(Value::Str(s)) => s.to_string(),
        _ => String::new(),
    };
    Ok(Loaded {
        name,
        version,
        metadata: Value::map(m),
        kube_version,
        defaults,
        schema,
        templates,
        files: other,
        subcharts,
        deps,
    })
}

fn lookup_path(values: &Value, path: &str) -> Option<Value> {
    let mut cur = values.clone();
    for part in path.split('.') {
        let next = match &cur {
            Value::Map(m) => m.borrow().get(part).cloned(),
            _ => None,
        }?;
        cur = next;
    }
    Some(cur)
}

/// Masterminds' `IsCompatibleRange`: false when either side does not parse.
fn compatible_range(constraint: &str, version: &str) -> bool {
    match (
        semver::Constraint::parse(constraint),
        semver::Version::parse(version),
    ) {
        (Ok(c), Ok(v)) => c.check(&v),
        _ => false,
    }
}

/// Helm's `CheckDependencies`: every dependency of the chart must be in its charts/.
fn check_dependencies(chart: &Loaded) -> Result<(), Error> {
    let missing: Vec<&str> = chart
        .deps
        .iter()
        .filter(|d| !chart.subcharts.iter().any(|s| s.name == d.name))
        .map(|d| d.name.as_str())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::Chart(format!(
        "an error occurred while checking for chart dependencies. You may need to run `helm dependency build` to fetch missing dependencies: found in Chart.yaml, but missing in charts/ directory: {}",
        missing.join(", ")
    )))
}

/// The first half of Helm's `processDependencyEnabled`, for the whole tree: the subcharts
/// that no dependency names are kept as they are; each dependency takes (a copy of) the
/// first subchart of its name and compatible version, renamed to its alias.
fn resolve_aliases(chart: &mut Loaded) {
    let existing = std::mem::take(&mut chart.subcharts);
    let mut out: Vec<Loaded> = existing
        .iter()
        .filter(|e| {
            !chart
                .deps
                .iter()
                .any(|d| d.name == e.name && compatible_range(&d.version, &e.version))
        })
        .cloned()
        .collect();
    for d in chart.deps.iter_mut() {
        let found = existing
            .iter()
            .find(|e| e.name == d.name && compatible_range(&d.version, &e.version));
        if let Some(e) = found {
            let mut c = e.clone();
            if !d.alias.is_empty() {
                c.name = d.alias.clone();
                let md = c.metadata.deep_copy();
                if let Value::Map(m) = &md {
                    m.borrow_mut()
                        .insert("Name".into(), Value::string(d.alias.clone()));
                }
                c.metadata = md;
            }
            out.push(c);
        }
        if !d.alias.is_empty() {
            d.name = d.alias.clone();
        }
    }
    chart.subcharts = out;
    for s in chart.subcharts.iter_mut() {
        resolve_aliases(s);
    }
}

/// Helm's `PathValue`: the value at a dotted path, if it is not a table.
fn path_value(values: &Value, path: &str) -> Option<Value> {
    let v = lookup_path(values, path)?;
    match v {
        Value::Map(_) => None,
        v => Some(v),
    }
}

/// The second half of `processDependencyEnabled`: tags and conditions (read from the
/// coalesced values of the whole release, conditions under the chart's path) drop subcharts.
/// Whether `chart` or any subchart declares dependencies (which conditions and tags may disable).
fn has_dependencies(chart: &Loaded) -> bool {
    !chart.deps.is_empty() || chart.subcharts.iter().any(has_dependencies)
}

fn process_enabled(chart: &mut Loaded, cvals: &Value, path: &str) {
    let tags = match cvals {
        Value::Map(m) => match m.borrow().get("tags") {
            Some(Value::Map(t)) => Some(t.borrow().clone()),
            _ => None,
        },
        _ => None,
    };
    let mut disabled = Vec::new();
    for d in &chart.deps {
        let mut enabled = true;
        if let Some(t) = &tags {
            let (mut has_true, mut has_false) = (false, false);
            for k in &d.tags {
                match t.get(k) {
                    Some(Value::Bool(true)) => has_true = true,
                    Some(Value::Bool(false)) => has_false = true,
                    _ => {}
                }
            }
            enabled = has_true || !has_false;
        }
        for c in d.condition.trim().split(',') {
            if c.is_empty() {
                continue;
            }
            if let Some(Value::Bool(b)) = path_value(cvals, &format!("{path}{c}")) {
                enabled = b;
                break;
            }
        }
        if !enabled {
            disabled.push(d.name.clone());
        }
    }
    chart.subcharts.retain(|s| !disabled.contains(&s.name));
    chart.deps.retain(|d| !disabled.contains(&d.name));
    for s in chart.subcharts.iter_mut() {
        let sub_path = format!("{path}{}.", s.name);
        process_enabled(s, cvals, &sub_path);
    }
    // `.Chart.Dependencies`: the enabled ones, under their aliases
    let list: Vec<Value> = chart
        .deps
        .iter()
        .map(|d| {
            let m = d.meta.deep_copy();
            if let Value::Map(mm) = &m {
                mm.borrow_mut()
                    .insert("Name".into(), Value::string(d.name.clone()));
            }
            m
        })
        .collect();
    if let Value::Map(md) = &chart.metadata {
        md.borrow_mut()
            .insert("Dependencies".into(), Value::list(list));
    }
}

/// A `helm package`d chart archive: its files, without the top folder.
fn untar_chart(data: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, String> {
    use std::io::Read;
    let gz = flate2::read::GzDecoder::new(data);
    let mut ar = tar::Archive::new(gz);
    let mut out = BTreeMap::new();
    let mut remaining = MAX_CHART_SIZE;
    let entries = ar.entries().map_err(|e| e.to_string())?;
    for entry in entries {
        let mut entry = entry.map_err(|e| e.to_string())?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry
            .path()
            .map_err(|e| e.to_string())?
            .to_string_lossy()
            .replace('\\', "/");
        // Helm's limits, checked against the header and again while reading (a header can lie)
        let size = entry.header().size().map_err(|e| e.to_string())?;
        if size > remaining {
            return Err(format!(
                "decompressed chart is larger than the maximum file size {MAX_CHART_SIZE}"
            ));
        }
        if size > MAX_FILE_SIZE as u64 {
            return Err(format!(
                "decompressed chart file {path:?} is larger than the maximum file size {MAX_FILE_SIZE}"
            ));
        }
        let Some((_, rel)) = path.split_once('/') else {
            continue;
        };
        if rel.is_empty() || rel.split('/').any(|p| p == "..") {
            continue;
        }
        let mut buf = Vec::new();
        (&mut entry)
            .take(remaining.min(MAX_FILE_SIZE as u64 + 1))
            .read_to_end(&mut buf)
            .map_err(|e| e.to_string())?;
        remaining = remaining.saturating_sub(buf.len() as u64);
        out.insert(rel.to_string(), buf);
    }
    if !out.contains_key("Chart.yaml") {
        return Err("Chart.yaml file is missing".into());
    }
    Ok(out)
}

struct Job {
    name: String,
    base_path: String,
    top: value::MapRef,
}

/// Adds the chart's templates and their top-level objects (Helm's `recAllTpls`); returns
/// the chart's top-level map, which its parent lists in `.Subcharts`.
/// `type` of Chart.yaml ("" when absent).
fn chart_type(chart: &Loaded) -> String {
    match &chart.metadata {
        Value::Map(m) => match m.borrow().get("Type") {
            Some(Value::Str(s)) => s.to_string(),
            _ => String::new(),
        },
        _ => String::new(),
    }
}

fn collect(
    chart: &Loaded,
    prefix: &str,
    values: Value,
    common: &BTreeMap<String, Value>,
    files_out: &mut Vec<(String, String)>,
    jobs: &mut BTreeMap<String, Job>,
) -> Value {
    let path = if prefix.is_empty() {
        chart.name.clone()
    } else {
        format!("{prefix}/charts/{}", chart.name)
    };
    let mut subs = BTreeMap::new();
    for s in &chart.subcharts {
        let sv = match &values {
            Value::Map(m) => match m.borrow().get(&s.name) {
                Some(v @ Value::Map(_)) => v.clone(),
                _ => Value::empty_map(),
            },
            _ => Value::empty_map(),
        };
        let child = collect(s, &path, sv, common, files_out, jobs);
        subs.insert(s.name.clone(), child);
    }
    let mut top = common.clone();
    top.insert("Values".into(), values);
    top.insert("Chart".into(), chart.metadata.clone());
    top.insert(
        "Files".into(),
        Value::Obj(Rc::new(Obj::Files(chart.files.clone()))),
    );
    top.insert("Subcharts".into(), Value::map(subs));
    let top_v = Value::map(top);
    let Value::Map(top) = &top_v else {
        return top_v;
    };
    let library = chart_type(chart) == "library";
    for (name, text) in &chart.templates {
        // `name` is "chart/templates/..."; rebase onto the full path
        let rel = name.split_once('/').map(|x| x.1).unwrap_or(name);
        // Helm's isTemplateValid: a library chart contributes its partials only
        if library && !rel.rsplit('/').next().unwrap_or(rel).starts_with('_') {
            continue;
        }
        let full = format!("{path}/{rel}");
        files_out.push((full.clone(), text.clone()));
        jobs.insert(
            full.clone(),
            Job {
                name: full,
                base_path: format!("{path}/templates"),
                top: top.clone(),
            },
        );
    }
    top_v
}

fn validate_schemas(chart: &Loaded, values: &Value, errors: &mut Vec<String>) {
    if let Some(s) = &chart.schema {
        if let Err(e) = schema::validate(s, values) {
            errors.push(format!("{}:\n{}", chart.name, e));
        }
    }
    for sub in &chart.subcharts {
        let sv = match values {
            Value::Map(m) => m
                .borrow()
                .get(&sub.name)
                .cloned()
                .unwrap_or_else(Value::empty_map),
            _ => Value::empty_map(),
        };
        validate_schemas(sub, &sv, errors);
    }
}

/// Helm's `sortTemplates`: deeper paths first, then reverse lexical order.
fn sort_templates(names: &mut [String]) {
    names.sort_by(|a, b| {
        let (ca, cb) = (a.matches('/').count(), b.matches('/').count());
        cb.cmp(&ca).then_with(|| b.cmp(a))
    });
}

/// Render a chart like `helm template`.
pub fn template(chart: &Chart, options: &Options) -> Result<Vec<Rendered>, Error> {
    template_with_lookups(chart, options).map(|r| r.rendered)
}

/// What [`template_with_lookups`] rendered, and what the render needed from outside.
#[derive(Debug, Clone)]
pub struct Rendering {
    pub rendered: Vec<Rendered>,
    /// The lookups the chart made that [`Options::lookups`] holds no answer for (they returned
    /// an empty map). A caller reads those and renders again until none is missing.
    pub unread: BTreeSet<LookupKey>,
    /// The template files that drew random values (`randAlphaNum`, `uuidv4`, `genCA`, ...), as
    /// [`Rendered::source`] names them.
    pub random: BTreeSet<String>,
    /// Whether the chart read `.Capabilities.KubeVersion` or `.Capabilities.APIVersions`.
    pub capabilities: bool,
    /// Whether the chart may read `.Release.IsUpgrade` or `.Release.IsInstall` (a template, a
    /// file or a values file names them), so that it may render differently on upgrade.
    pub install_state: bool,
}

/// Whether `IsUpgrade` or `IsInstall` is named anywhere the chart or its values could read it
/// from (templates, files through `tpl`, values), in the chart and its subcharts.
fn names_install_state(loaded: &Loaded, values_files: &[(String, String)]) -> bool {
    fn names(text: &[u8]) -> bool {
        // both words start "Is": one search for it, then a look at what follows
        memchr::memmem::find_iter(text, b"Is")
            .any(|i| matches!(text.get(i + 2..i + 9), Some(b"Upgrade" | b"Install")))
    }
    fn chart_names(l: &Loaded) -> bool {
        l.templates.iter().any(|(_, t)| names(t.as_bytes()))
            || l.files.values().any(|f| names(f))
            || l.subcharts.iter().any(chart_names)
    }
    chart_names(loaded) || values_files.iter().any(|(_, t)| names(t.as_bytes()))
}

/// Below this many bytes of input, one thread is quicker than starting others.
const PARALLEL_BYTES: usize = 128 * 1024;

/// `f` of every item, on as many threads as there are cores, each thread a run of consecutive
/// items of about the same total `weight` (bytes). The results come back in the order given,
/// so the first error in that order is the one reported, as when done one after the other.
/// What a large chart's render spends most on (parsing its templates, reading its manifests)
/// is done so.
fn par_map<T: Send, R: Send>(
    items: Vec<T>,
    weight: impl Fn(&T) -> usize,
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    let total: usize = items.iter().map(&weight).sum();
    let threads = std::thread::available_parallelism()
        .map(std::num::NonZeroUsize::get)
        .unwrap_or(1)
        .min(items.len());
    if threads < 2 || total < PARALLEL_BYTES {
        return items.into_iter().map(f).collect();
    }
    let mut runs: Vec<Vec<T>> = vec![Vec::new()];
    let mut done = 0;
    for item in items {
        done += weight(&item);
        let last = runs.len() - 1;
        runs[last].push(item);
        if done >= total * runs.len() / threads && runs.len() < threads {
            runs.push(Vec::new());
        }
    }
    let f = &f;
    std::thread::scope(|scope| {
        // a run whose thread cannot start (a process limit) is done here, in its turn
        let started: Vec<_> = runs
            .into_iter()
            .map(|run| {
                let (tx, rx) = std::sync::mpsc::channel();
                let thread = std::thread::Builder::new().spawn_scoped(scope, move || {
                    let run: Vec<T> = rx.recv().unwrap_or_default();
                    run.into_iter().map(f).collect::<Vec<R>>()
                });
                match thread {
                    Ok(h) => match tx.send(run) {
                        Ok(()) => Ok(h),
                        Err(std::sync::mpsc::SendError(run)) => Err(run),
                    },
                    Err(_) => Err(run),
                }
            })
            .collect();
        let mut out = Vec::new();
        for s in started {
            match s {
                Ok(h) => match h.join() {
                    Ok(results) => out.extend(results),
                    // the work is the same as on one thread: a panic there is carried on here
                    Err(p) => std::panic::resume_unwind(p),
                },
                Err(run) => out.extend(run.into_iter().map(f)),
            }
        }
        out
    })
}

type ParseResult = Result<(parse::Source, parse::Parsed), (String, parse::ParseError)>;

/// Parse the files ([`par_map`]).
fn parse_all(sources: Vec<parse::Source>) -> Vec<ParseResult> {
    par_map(
        sources,
        |s| s.text.len(),
        |src| match parse::parse(&src) {
            Ok(p) => Ok((src, p)),
            Err(e) => Err((src.name, e)),
        },
    )
}

/// Render a chart like `helm install` given what it read ([`Options::lookups`]).
pub fn template_with_lookups(chart: &Chart, options: &Options) -> Result<Rendering, Error> {
    let mut loaded = load(&chart.files, true)?;
    // Helm's CheckIfInstallable
    match chart_type(&loaded).as_str() {
        "" | "application" => {}
        t => return Err(Error::Chart(format!("{t} charts are not installable"))),
    }

    // User values: values files, then --set, then --set-string.
    let mut user = Value::empty_map();
    for (name, text) in &options.values_files {
        let v = yaml::load_values(text)
            .map_err(|e| Error::Values(format!("failed to parse {name}: {}", e.message)))?;
        user = coalesce::merge_maps(&user, &v);
    }
    for s in &options.set {
        strvals::parse_into(s, &user, false)
            .map_err(|e| Error::Values(format!("failed parsing --set data: {e}")))?;
    }
    for s in &options.set_string {
        strvals::parse_into(s, &user, true)
            .map_err(|e| Error::Values(format!("failed parsing --set-string data: {e}")))?;
    }
    check_dependencies(&loaded)?;
    resolve_aliases(&mut loaded);
    // conditions and tags of dependencies are read from the values coalesced once (a copy); a
    // chart without dependencies reads none, and needs no copy of large values
    if has_dependencies(&loaded) {
        let Value::Map(first) = user.deep_copy() else {
            return Err(Error::Values("values are not a map".into()));
        };
        coalesce::chart_values(&loaded, &first)?;
        process_enabled(&mut loaded, &Value::Map(first), "");
    } else {
        process_enabled(&mut loaded, &Value::empty_map(), "");
    }
    // the user's values themselves (no copy: nothing else holds them now)
    let Value::Map(user_map) = user else {
        return Err(Error::Values("values are not a map".into()));
    };
    coalesce::chart_values(&loaded, &user_map)?;
    let values = Value::Map(user_map);

    let mut schema_errors = Vec::new();
    validate_schemas(&loaded, &values, &mut schema_errors);
    if !schema_errors.is_empty() {
        return Err(Error::Schema(format!(
            "values don't meet the specifications of the schema(s) in the following chart(s):\n{}",
            schema_errors.join("\n")
        )));
    }

    // Kubernetes version
    let (kparsed, kube_git, kube_major, kube_minor) = match &options.cluster {
        Some(c) => {
            let parsed = semver::Version::parse(c.git_version.trim()).map_err(Error::Values)?;
            (
                parsed,
                c.git_version.clone(),
                c.major.clone(),
                c.minor.clone(),
            )
        }
        None => {
            let kv = options.kube_version.trim();
            let kv = if kv.is_empty() { "1.20.0" } else { kv };
            let parsed = semver::Version::parse(kv).map_err(Error::Values)?;
            let git = format!("v{}.{}.{}", parsed.major, parsed.minor, parsed.patch);
            let (major, minor) = (parsed.major.to_string(), parsed.minor.to_string());
            (parsed, git, major, minor)
        }
    };
    if !loaded.kube_version.is_empty() {
        let ok = semver::Constraint::parse(&loaded.kube_version)
            .map(|c| c.check(&kparsed))
            .unwrap_or(false);
        if !ok {
            return Err(Error::KubeVersion {
                constraint: loaded.kube_version.clone(),
                version: kube_git,
            });
        }
    }

    // The top-level objects.
    let mut common = BTreeMap::new();
    let mut release = BTreeMap::new();
    release.insert("Name".to_string(), Value::str(&options.release_name));
    release.insert("Namespace".to_string(), Value::str(&options.namespace));
    release.insert("IsInstall".to_string(), Value::Bool(!options.is_upgrade));
    release.insert("IsUpgrade".to_string(), Value::Bool(options.is_upgrade));
    release.insert("Revision".to_string(), Value::Int(1));
    release.insert("Service".to_string(), Value::str("Helm"));
    common.insert("Release".to_string(), Value::map(release));
    let apis: Vec<String> = match &options.cluster {
        Some(c) => c.api_versions.clone(),
        None => DEFAULT_API_VERSIONS
            .iter()
            .map(|s| s.to_string())
            .chain(options.api_versions.iter().cloned())
            .collect(),
    };
    let mut caps = BTreeMap::new();
    let read = Rc::new(std::cell::Cell::new(false));
    caps.insert(
        "KubeVersion".to_string(),
        Value::Obj(Rc::new(Obj::KubeVersion {
            version: value::Tracked::new(kube_git.clone(), &read),
            major: value::Tracked::new(kube_major, &read),
            minor: value::Tracked::new(kube_minor, &read),
        })),
    );
    caps.insert(
        "APIVersions".to_string(),
        Value::Obj(Rc::new(Obj::ApiVersions(value::Tracked::new(apis, &read)))),
    );
    let mut hv = BTreeMap::new();
    hv.insert("Version".to_string(), Value::str("v4.1.4"));
    caps.insert("HelmVersion".to_string(), Value::map(hv));
    common.insert("Capabilities".to_string(), Value::map(caps));

    let mut files = Vec::new();
    let mut jobs = BTreeMap::new();
    let _ = collect(&loaded, "", values, &common, &mut files, &mut jobs);

    // Parse every template in Helm's order (later definitions win).
    let mut engine = exec::Engine::new();
    engine.max_steps = options.max_steps.unwrap_or(MAX_STEPS);
    engine.lookups = options.lookups.clone();
    engine.randomness = options.randomness.clone();
    let mut texts: BTreeMap<String, String> = files.into_iter().collect();
    let mut order: Vec<String> = texts.keys().cloned().collect();
    sort_templates(&mut order);
    let sources: Vec<parse::Source> = order
        .iter()
        .map(|name| parse::Source {
            name: name.clone(),
            text: texts.remove(name).unwrap_or_default(),
        })
        .collect();
    for parsed in parse_all(sources) {
        let (src, parsed) = parsed.map_err(|(name, e)| {
            let (file, line) = split_location(&e.location);
            Error::Parse {
                chart: name.split('/').next().unwrap_or("").to_string(),
                file,
                line,
                message: e.message,
            }
        })?;
        engine.add_parsed(src, parsed);
    }

    // Execute, in the same order.
    let mut outputs: BTreeMap<String, String> = BTreeMap::new();
    let mut random = BTreeSet::new();
    for name in &order {
        let base = name.rsplit('/').next().unwrap_or(name);
        if base.starts_with('_') {
            continue;
        }
        let Some(job) = jobs.get(name) else { continue };
        let mut t = BTreeMap::new();
        t.insert("Name".to_string(), Value::str(&job.name));
        t.insert("BasePath".to_string(), Value::str(&job.base_path));
        job.top
            .borrow_mut()
            .insert("Template".into(), Value::map(t));
        let dot = Value::Map(job.top.clone());
        engine
            .draw_for(name)
            .map_err(|e| Error::Chart(e.to_string()))?;
        let draws = engine.draws;
        let out = engine
            .execute(name, &dot)
            .map_err(|e| render_error(name, &e))?;
        if engine.draws > draws {
            random.insert(name.clone());
        }
        outputs.insert(name.clone(), out.replace("<no value>", ""));
    }

    // NOTES.txt are not manifests.
    outputs.retain(|k, _| !k.ends_with("/NOTES.txt"));

    Ok(Rendering {
        rendered: sort_manifests(&outputs)?,
        unread: std::mem::take(&mut engine.unread),
        random,
        // a kubeVersion constraint is checked against the version too
        capabilities: read.get() || !loaded.kube_version.is_empty(),
        install_state: names_install_state(&loaded, &options.values_files),
    })
}

fn split_location(loc: &str) -> (String, usize) {
    let mut parts = loc.rsplitn(3, ':');
    let _col = parts.next();
    let line = parts.next().and_then(|l| l.parse().ok()).unwrap_or(0);
    let file = parts.next().unwrap_or(loc).to_string();
    (file, line)
}

fn render_error(name: &str, e: &exec::ExecError) -> Error {
    let chart = name.split('/').next().unwrap_or("").to_string();
    let message = e.helm_message();
    Error::Render {
        chart,
        file: e.file.clone(),
        line: e.line,
        expression: e.context.clone(),
        message,
    }
}

struct Manifest {
    source: String,
    content: String,
    kind: String,
    hook: bool,
}

/// What Helm reads of a manifest to sort it (`releaseutil.SimpleHead`): its kind, and whether
/// it is a hook; an error where the YAML does not read.
fn manifest_head(path: &str, doc: &str) -> Result<(String, bool), Error> {
    let head = yaml::parse(doc).map_err(|e| Error::Manifest {
        file: path.to_string(),
        message: format!("error converting YAML to JSON: {e}"),
    })?;
    match &head {
        Value::Map(m) => {
            let m = m.borrow();
            let kind = match m.get("kind") {
                Some(Value::Str(s)) => s.to_string(),
                _ => String::new(),
            };
            let hook = match m.get("metadata") {
                Some(Value::Map(md)) => match md.borrow().get("annotations") {
                    Some(Value::Map(a)) => a.borrow().contains_key("helm.sh/hook"),
                    _ => false,
                },
                _ => false,
            };
            Ok((kind, hook))
        }
        Value::Nil => Ok((String::new(), false)),
        other => Err(Error::Manifest {
            file: path.to_string(),
            message: format!(
                "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {} into Go value of type releaseutil.SimpleHead",
                yaml::json_kind(other)
            ),
        }),
    }
}

fn split_manifests(text: &str) -> Vec<String> {
    // regexp `(?:^|\s*\n)---\s*` on the trimmed text
    static SEP: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    let sep = SEP.get_or_init(|| regex::Regex::new(r"(?:^|\s*\n)---\s*").ok());
    let trimmed = text.trim_matches(|c: char| c.is_whitespace());
    let docs: Vec<&str> = match sep {
        Some(re) => re.split(trimmed).collect(),
        None => vec![trimmed],
    };
    docs.into_iter()
        .filter(|d| !d.is_empty())
        .map(|d| d.trim_matches(|c: char| c.is_whitespace()).to_string())
        .collect()
}

fn sort_manifests(outputs: &BTreeMap<String, String>) -> Result<Vec<Rendered>, Error> {
    let mut docs = Vec::new();
    for (path, content) in outputs {
        let base = path.rsplit('/').next().unwrap_or(path);
        if base.starts_with('_') || content.trim().is_empty() {
            continue;
        }
        docs.extend(split_manifests(content).into_iter().map(|doc| (path, doc)));
    }
    let heads = par_map(
        docs,
        |(_, doc)| doc.len(),
        |(path, doc)| manifest_head(path, &doc).map(|(kind, hook)| (path, doc, kind, hook)),
    );
    let mut generic = Vec::new();
    let mut hooks = Vec::new();
    for head in heads {
        let (path, doc, kind, is_hook) = head?;
        let m = Manifest {
            source: path.clone(),
            content: doc,
            kind,
            hook: is_hook,
        };
        if is_hook {
            hooks.push(m);
        } else {
            generic.push(m);
        }
    }
    let rank = |k: &str| INSTALL_ORDER.iter().position(|x| *x == k);
    let by_kind = |a: &Manifest, b: &Manifest| match (rank(&a.kind), rank(&b.kind)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.kind.cmp(&b.kind),
    };
    generic.sort_by(by_kind);
    hooks.sort_by(by_kind);
    Ok(generic
        .into_iter()
        .chain(hooks)
        .map(|m| Rendered {
            source: m.source,
            content: m.content,
            hook: m.hook,
        })
        .collect())
}

/// The text `helm template` prints for these manifests.
pub fn to_helm_output(rendered: &[Rendered]) -> String {
    let mut manifests = String::new();
    for r in rendered.iter().filter(|r| !r.hook) {
        manifests.push_str(&format!("---\n# Source: {}\n{}\n", r.source, r.content));
    }
    let mut out = manifests.trim().to_string();
    out.push('\n');
    for r in rendered.iter().filter(|r| r.hook) {
        out.push_str(&format!("---\n# Source: {}\n{}\n", r.source, r.content));
    }
    out
}
