//! Model: the typed, validated desired state of one environment, built from a [`Snapshot`].
//!
//! # Guarantees
//! - Pure: no network IO. Everything is validated here, before any provider is called: references
//!   resolve, resources form no cycle, CIDRs are valid and nested, names are unique, every file
//!   that is named exists.
//! - Every finding names `file:line:column`; all findings are reported at once.

mod charts;
mod infrastructure;
mod kubernetes;
mod manifests;
pub mod refs;
pub mod spec;

use infrastructure::topo_sort;
pub use kubernetes::parse_env_file;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ipnet::Ipv4Net;
use serde_json::Value;

use crate::diag::{self, idx, key, Diagnostic, Diagnostics, SourceFile};
use crate::snapshot::Snapshot;
use spec::{ClusterKind, ClusterSpec, EnvironmentFile, ModuleFile, NodeSpec, API_VERSION};
pub use spec::{ResourceSpec, ResourceType};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("environment `{name}` not found: there is no {path} in commit {commit}{hint}")]
    NotFound {
        name: String,
        path: String,
        commit: String,
        hint: String,
    },
    #[error("{0}")]
    Invalid(Diagnostics),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The desired state of one environment at one commit.
#[derive(Debug, Clone)]
pub struct Environment {
    pub name: String,
    pub commit: String,
    pub region: String,
    pub cluster: Option<Cluster>,
    /// AWS resources in dependency order (a resource comes after everything it refers to).
    pub resources: Vec<Resource>,
    pub releases: Vec<Release>,
    pub config_maps: Vec<ConfigMap>,
    pub secrets: Vec<Secret>,
    pub manifests: Vec<ManifestSet>,
    /// Findings that do not stop a run (e.g. SSH open to the internet); `--deny-warnings` makes
    /// them errors.
    pub warnings: Diagnostics,
}

/// The objects of a folder of plain manifests, as kubectl reads them (sigs.k8s.io/yaml).
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestSet {
    /// Repository path of the folder.
    pub path: String,
    pub namespace: String,
    /// `file:line` of each document, and its object.
    pub objects: Vec<(String, Value)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// kubeconfig context; the current context when `None`.
    pub context: Option<String>,
    /// The name in the `kubernetes.io/cluster/<name>` tags of what the cluster creates in AWS.
    pub name: String,
    /// A k3s cluster on instances of the environment; `None` for an existing cluster.
    pub k3s: Option<K3s>,
    /// `.Capabilities.KubeVersion` where the cluster is not asked (`cluster.kubeVersion`, or a
    /// k3s cluster's version); `None`: Helm's default.
    pub kube_version: Option<String>,
    /// `.Capabilities.APIVersions` beside Helm's defaults where the cluster is not asked.
    pub api_versions: Vec<String>,
}

/// A k3s cluster envboot provisions: its nodes are `aws_instance` resources of the environment
/// (`cluster.server`, `cluster.agent-1`, ...), whose user-data is written once the credentials
/// are decrypted.
#[derive(Clone, PartialEq, Eq)]
pub struct K3s {
    pub version: String,
    pub install_script: String,
    /// How long to wait for the API server after the server instance runs.
    pub api_timeout: std::time::Duration,
    /// Repository path of the encrypted credentials.
    pub credentials_file: String,
    /// Where the credentials are declared (`file:line:column`).
    pub origin: String,
    pub ciphertext: Vec<u8>,
    /// Address of the server instance.
    pub server: String,
    /// Addresses of the agent instances.
    pub agents: Vec<String>,
}

impl std::fmt::Debug for K3s {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("K3s")
            .field("version", &self.version)
            .field("credentials_file", &self.credentials_file)
            .field("server", &self.server)
            .field("agents", &self.agents)
            .finish_non_exhaustive()
    }
}

/// The module-instance name of the cluster's nodes (`cluster.server`); reserved.
pub const CLUSTER_INSTANCE: &str = "cluster";
/// Where k3s's install script is fetched from unless `installScript` says.
pub const DEFAULT_INSTALL_SCRIPT: &str = "https://get.k3s.io";
/// How long to wait for a k3s API server unless `apiTimeout` says.
pub const DEFAULT_API_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// One AWS resource, addressed as `<module instance>.<resource name>`.
#[derive(Debug, Clone)]
pub struct Resource {
    pub address: String,
    /// Arguments; strings may still hold `${address.attribute}` references to other resources.
    pub spec: ResourceSpec,
    /// Addresses of the resources this one refers to, created before it.
    pub depends_on: BTreeSet<String>,
    /// Security groups this one (a security group) refers to only in its rules, which refer
    /// back to it: created without those rules, which are added once both groups exist.
    pub late: BTreeSet<String>,
    /// Where it is declared (`file:line`).
    pub origin: String,
}

#[derive(Debug, Clone)]
pub struct Release {
    pub name: String,
    pub namespace: String,
    pub chart: Chart,
    /// The values files and then the inline values (as YAML), in the order Helm merges them
    /// over the chart's defaults: (name, YAML text).
    pub values_sources: Vec<(String, String)>,
    /// The inline values, where `${secret.NAME.KEY}` references may sit (filled in at render).
    pub inline_values: Value,
    /// Releases that must be applied and ready first.
    pub depends_on: Vec<String>,
    /// How long to wait for this release to be ready, if set.
    pub timeout: Option<std::time::Duration>,
}

/// The longest duration envboot accepts anywhere (a timeout, a wait, an interval).
pub const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// Parses `90s`, `5m`, `1h30m` (humantime's units) or a number of seconds, at most
/// [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> std::result::Result<std::time::Duration, String> {
    let parsed = match text.parse::<u64>() {
        Ok(seconds) => Ok(std::time::Duration::from_secs(seconds)),
        Err(_) => humantime::parse_duration(text),
    };
    match parsed {
        Ok(d) if d <= MAX_DURATION => Ok(d),
        Ok(_) | Err(humantime::DurationError::NumberOverflow) => Err(format!(
            "`{text}` is too long: a duration is at most 30 days (720h)"
        )),
        Err(e) => Err(format!(
            "`{text}` is not a duration such as 90s, 5m or 1h30m ({e})"
        )),
    }
}

/// A Helm chart read from the commit.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Repository path of the chart folder.
    pub dir: String,
    pub name: String,
    pub version: String,
    pub app_version: Option<String>,
    /// Template path (relative to the chart folder, e.g. `templates/deployment.yaml`) to text.
    pub templates: BTreeMap<String, String>,
    /// Every file of the chart folder (relative path to contents), for the Helm engine.
    pub files: BTreeMap<String, Vec<u8>>,
}

/// A Secret declared in Git; its data is decrypted later, in memory only.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    pub name: String,
    pub namespace: String,
    /// Repository path of the encrypted file.
    pub file: String,
    /// Where it is declared (`file:line:column`), for errors about the file.
    pub origin: String,
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("name", &self.name)
            .field("namespace", &self.namespace)
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigMap {
    /// The name it is created with: `declared_name`, or with `hashSuffix` the declared name and
    /// a hash of the content.
    pub name: String,
    /// The name written in environment.yaml (what workloads refer to).
    pub declared_name: String,
    pub namespace: String,
    pub data: BTreeMap<String, String>,
    pub binary_data: BTreeMap<String, Vec<u8>>,
}

impl Environment {
    /// Namespaces used by releases and ConfigMaps, sorted.
    pub fn namespaces(&self) -> BTreeSet<String> {
        self.releases
            .iter()
            .map(|r| r.namespace.clone())
            .chain(self.config_maps.iter().map(|c| c.namespace.clone()))
            .chain(self.secrets.iter().map(|c| c.namespace.clone()))
            .chain(self.manifests.iter().map(|m| m.namespace.clone()))
            .collect()
    }
}

/// Path of an environment's file in the repository.
pub fn environment_path(name: &str) -> String {
    format!("environments/{name}/environment.yaml")
}

/// Loads and validates environment `name` from `snapshot`.
///
/// # Errors
/// [`Error::NotFound`] if the environment does not exist; [`Error::Invalid`] with every finding otherwise.
pub fn load(snapshot: &Snapshot, name: &str) -> Result<Environment> {
    run_loader(snapshot, name, false).map(|(env, _)| env)
}

/// The remote charts environment `name` uses (its releases' charts, and the dependencies its
/// chart folders declare from a repository without vendoring them), which its lock must pin.
///
/// # Errors
/// As [`load`], for everything but the lock.
pub fn chart_requirements(
    snapshot: &Snapshot,
    name: &str,
) -> Result<Vec<crate::charts::Requirement>> {
    run_loader(snapshot, name, true).map(|(_, found)| found)
}

fn run_loader(
    snapshot: &Snapshot,
    name: &str,
    collect: bool,
) -> Result<(Environment, Vec<crate::charts::Requirement>)> {
    let path = environment_path(name);
    let Some(bytes) = snapshot.file(&path) else {
        let known: Vec<String> = snapshot
            .files
            .keys()
            .filter_map(|p| {
                p.strip_prefix("environments/")
                    .and_then(|r| r.strip_suffix("/environment.yaml"))
                    .map(str::to_string)
            })
            .collect();
        let hint = if known.is_empty() {
            String::new()
        } else {
            format!(" (environments there: {})", known.join(", "))
        };
        return Err(Error::NotFound {
            name: name.to_string(),
            path,
            commit: snapshot.short_commit().to_string(),
            hint,
        });
    };
    let mut loader = Loader {
        snapshot,
        diagnostics: Diagnostics::default(),
        warnings: Diagnostics::default(),
        outputs: HashMap::new(),
        modules: HashMap::new(),
        k3s: None,
        networks: Default::default(),
        charts: Default::default(),
        env_name: name.to_string(),
        lock: None,
        lock_used: BTreeSet::new(),
        requirements: collect.then(Vec::new),
    };
    let env = loader.environment(name, &path, bytes);
    // links where envboot reads: the environment's folder, the modules and charts it uses
    let mut read_dirs = vec![format!("environments/{name}")];
    read_dirs.extend(loader.modules.keys().map(|m| format!("modules/{m}")));
    read_dirs.extend(loader.charts.iter().cloned());
    read_dirs.push(crate::charts::VENDOR_DIR.to_string());
    read_dirs.extend(
        env.iter()
            .flat_map(|e| e.manifests.iter().map(|m| m.path.clone())),
    );
    for (link, target) in &snapshot.links {
        if read_dirs
            .iter()
            .any(|d| link == d || link.starts_with(&format!("{d}/")))
        {
            loader.report(Diagnostic {
                file: link.clone(),
                line: 1,
                column: 1,
                message: format!(
                    "a symbolic link (to `{target}`): envboot reads files as committed and does not follow links; commit the file or folder itself"
                ),
            });
        }
    }
    match env {
        Some(env) if loader.diagnostics.is_empty() => {
            Ok((env, loader.requirements.unwrap_or_default()))
        }
        _ => Err(Error::Invalid(loader.diagnostics)),
    }
}

struct Loader<'a> {
    snapshot: &'a Snapshot,
    diagnostics: Diagnostics,
    warnings: Diagnostics,
    /// Each module instance's outputs, as canonical expressions (`${net.vpc.id}`).
    outputs: HashMap<String, BTreeMap<String, Value>>,
    /// Module name to its parsed file, or `None` if it failed to load.
    modules: HashMap<String, Option<(ModuleFile, SourceFile)>>,
    /// The k3s cluster's settings, once `cluster:` is checked.
    k3s: Option<K3s>,
    /// Every VPC and subnet with a literal CIDR, for the checks across module instances.
    networks: infrastructure::Networks,
    /// The chart folders the environment's releases name (found or not).
    charts: std::collections::BTreeSet<String>,
    env_name: String,
    /// The environment's lock entries, once read.
    lock: Option<Vec<crate::charts::Locked>>,
    /// Which lock entries a chart used.
    lock_used: BTreeSet<usize>,
    /// When collecting what the lock must pin ([`chart_requirements`]): what was found.
    requirements: Option<Vec<crate::charts::Requirement>>,
}

fn utf8<'b>(path: &str, bytes: &'b [u8]) -> std::result::Result<&'b str, Diagnostic> {
    std::str::from_utf8(bytes).map_err(|e| Diagnostic {
        file: path.to_string(),
        line: 1,
        column: 1,
        message: format!("file is not valid UTF-8: {e}"),
    })
}

pub(crate) fn check_header(
    file: &SourceFile,
    api_version: &str,
    kind: &str,
    want_kind: &str,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    if api_version != API_VERSION {
        out.push(file.at(
            "apiVersion",
            format!("unsupported apiVersion `{api_version}`: expected `{API_VERSION}`"),
        ));
    }
    if kind != want_kind {
        out.push(file.at("kind", format!("kind is `{kind}`: expected `{want_kind}`")));
    }
    out
}

/// An AWS region name: `us-east-1`, `us-gov-west-1`, `eusc-de-east-1`.
fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && (2..=4).contains(&parts[0].len())
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok()
}

/// A DNS-1123 label, as Kubernetes requires for namespaces and most names.
pub(crate) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS-1123 subdomain (ConfigMap names).
pub(crate) fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && s.as_bytes()[0].is_ascii_alphabetic()
}

/// Joins a path relative to `base` (a repository folder), refusing to leave the repository.
fn join(base: &str, rel: &str) -> Option<String> {
    let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// Whether a file is age-encrypted (armoured or binary), as secrets in Git must be.
fn is_age_encrypted(bytes: &[u8]) -> bool {
    bytes.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----")
        || bytes.starts_with(b"age-encryption.org/")
}

/// Helm's merge: maps merge recursively, `null` deletes a key, anything else replaces.
pub fn merge_values(base: &mut Value, overlay: &Value) {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                if v.is_null() {
                    b.remove(k);
                } else if let Some(existing) = b.get_mut(k) {
                    if existing.is_object() && v.is_object() {
                        merge_values(existing, v);
                    } else {
                        *existing = v.clone();
                    }
                } else {
                    b.insert(k.clone(), v.clone());
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

impl Loader<'_> {
    fn report(&mut self, d: Diagnostic) {
        self.diagnostics.push(d);
    }

    fn environment(&mut self, name: &str, path: &str, bytes: &[u8]) -> Option<Environment> {
        let text = utf8(path, bytes).map_err(|d| self.report(d)).ok()?;
        let (env, file): (EnvironmentFile, SourceFile) =
            diag::parse(path, text).map_err(|d| self.report(d)).ok()?;
        for d in check_header(&file, &env.api_version, &env.kind, "Environment") {
            self.report(d);
        }
        if env.name != name {
            self.report(file.at(
                "name",
                format!(
                    "name `{}` does not match the folder: expected `{name}`",
                    env.name
                ),
            ));
        }
        if !is_dns_label(&env.name) {
            self.report(file.at(
                "name",
                format!(
                    "invalid environment name `{}`: expected a DNS label (a-z, 0-9, `-`, at most 63 characters), as it labels Kubernetes objects and names AWS resources",
                    env.name
                ),
            ));
        }
        if env.cloud.provider != "aws" {
            self.report(file.at(
                "cloud.provider",
                format!(
                    "unsupported provider `{}`: expected `aws`",
                    env.cloud.provider
                ),
            ));
        }
        if !is_region(&env.cloud.region) {
            self.report(file.at(
                "cloud.region",
                format!(
                    "invalid AWS region `{}`: expected a region name such as us-east-1 or eu-central-1",
                    env.cloud.region
                ),
            ));
        }
        let env_dir = format!("environments/{name}");
        let resources = self.infrastructure(&env, &file);
        for r in &resources {
            let spec::ResourceSpec::Subnet(subnet) = &r.spec else {
                continue;
            };
            let zone = &subnet.availability_zone;
            let in_region = zone
                .strip_prefix(env.cloud.region.as_str())
                .is_some_and(|rest| !rest.is_empty());
            if !zone.contains("${") && !in_region && is_region(&env.cloud.region) {
                self.report(Diagnostic::at_origin(
                    &r.origin,
                    format!(
                        "{}: availability zone `{zone}` is not in the environment's region {} (expected e.g. {}a)",
                        r.address, env.cloud.region, env.cloud.region
                    ),
                ));
            }
        }
        let releases = self.releases(&env, &file, &env_dir);
        let config_maps = self.config_maps(&env, &file, &env_dir);
        let secrets = self.secrets(&env, &file, &env_dir);
        let manifests = self.manifests(&env, &file, &env_dir);
        if env.cluster.is_none()
            && (!env.releases.is_empty()
                || !env.config_maps.is_empty()
                || !env.secrets.is_empty()
                || !env.manifests.is_empty())
        {
            self.report(file.at(
                "",
                "releases and configMaps need a `cluster:` (e.g. `cluster: {type: existing, context: NAME}`)",
            ));
        }
        if let Some(c) = &env.cluster {
            if let Some(v) = &c.kube_version {
                if !envboot_helm::is_kube_version(v) {
                    self.report(file.at(
                        "cluster.kubeVersion",
                        format!("invalid kubeVersion `{v}`: expected a Kubernetes version such as `v1.30.4`"),
                    ));
                }
            }
            for (i, v) in c.api_versions.iter().enumerate() {
                let parts: Vec<&str> = v.split('/').collect();
                if v.is_empty()
                    || parts.len() > 3
                    || parts
                        .iter()
                        .any(|p| p.is_empty() || p.contains(char::is_whitespace))
                {
                    self.report(file.at(
                        &format!("cluster.apiVersions[{i}]"),
                        format!("invalid API version `{v}`: expected `group/version` or `group/version/Kind` (`apps/v1`, `apps/v1/Deployment`)"),
                    ));
                }
            }
        }
        let cluster = env.cluster.as_ref().map(|c| {
            let k3s = self.k3s.take();
            let kube_version = c.kube_version.clone().or_else(|| {
                // k3s's release `v1.33.5+k3s1` is Kubernetes v1.33.5
                k3s.as_ref()
                    .map(|k| k.version.split('+').next().unwrap_or_default().to_string())
                    .filter(|v| envboot_helm::is_kube_version(v))
            });
            Cluster {
                context: c.context.clone(),
                name: c.name.clone().unwrap_or_else(|| env.name.clone()),
                k3s,
                kube_version,
                api_versions: c.api_versions.clone(),
            }
        });
        Some(Environment {
            name: env.name.clone(),
            commit: self.snapshot.commit.clone(),
            region: env.cloud.region.clone(),
            cluster,
            resources,
            releases,
            config_maps,
            secrets,
            manifests,
            warnings: {
                self.unused_lock_entries();
                std::mem::take(&mut self.warnings)
            },
        })
    }

    fn module(&mut self, name: &str) -> Option<(ModuleFile, SourceFile)> {
        if let Some(cached) = self.modules.get(name) {
            return cached.clone();
        }
        let path = format!("modules/{name}/module.yaml");
        let loaded = self.snapshot.file(&path).and_then(|bytes| {
            let text = utf8(&path, bytes).map_err(|d| self.report(d)).ok()?;
            let (module, file): (ModuleFile, SourceFile) =
                diag::parse(&path, text).map_err(|d| self.report(d)).ok()?;
            for d in check_header(&file, &module.api_version, &module.kind, "Module") {
                self.report(d);
            }
            Some((module, file))
        });
        self.modules.insert(name.to_string(), loaded.clone());
        loaded
    }
}

fn collect_refs(value: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    refs::collect(value, "", &mut out);
    out
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

#[cfg(test)]
mod tests;
