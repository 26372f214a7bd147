//! Model: the typed, validated desired state of one environment, built from a [`Snapshot`].
//!
//! # Guarantees
//! - Pure: no network IO. Everything is validated here, before any provider is called: references
//!   resolve, resources form no cycle, CIDRs are valid and nested, names are unique, every file
//!   that is named exists.
//! - Every finding names `file:line:column`; all findings are reported at once.

pub mod refs;
pub mod spec;

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
    /// Findings that do not stop a run (e.g. SSH open to the internet); `--deny-warnings` makes
    /// them errors.
    pub warnings: Diagnostics,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// kubeconfig context; the current context when `None`.
    pub context: Option<String>,
    /// The name in the `kubernetes.io/cluster/<name>` tags of what the cluster creates in AWS.
    pub name: String,
    /// A k3s cluster on instances of the environment; `None` for an existing cluster.
    pub k3s: Option<K3s>,
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
    /// Chart defaults < values files < inline values, merged.
    pub values: Value,
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
    pub values: Value,
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
    };
    let env = loader.environment(name, &path, bytes);
    match env {
        Some(env) if loader.diagnostics.is_empty() => Ok(env),
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
}

fn utf8<'b>(path: &str, bytes: &'b [u8]) -> std::result::Result<&'b str, Diagnostic> {
    std::str::from_utf8(bytes).map_err(|e| Diagnostic {
        file: path.to_string(),
        line: 1,
        column: 1,
        message: format!("file is not valid UTF-8: {e}"),
    })
}

fn check_header(
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

/// A DNS-1123 label, as Kubernetes requires for namespaces and most names.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS-1123 subdomain (ConfigMap names).
fn is_dns_subdomain(s: &str) -> bool {
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

/// For each security group, the other security groups it refers to only inside its rules
/// (`ingress`/`egress` `security_groups`), by position (`index`: address to position).
fn security_group_rule_edges(
    resources: &[Resource],
    index: &HashMap<&str, usize>,
) -> BTreeMap<usize, BTreeSet<usize>> {
    let is_group = |i: usize| matches!(resources[i].spec, ResourceSpec::SecurityGroup(_));
    let mut out: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    for (i, r) in resources.iter().enumerate().filter(|(i, _)| is_group(*i)) {
        let mut found = Vec::new();
        refs::collect(
            &serde_json::to_value(&r.spec).unwrap_or(Value::Null),
            "",
            &mut found,
        );
        let target = |expr: &str| {
            refs::Ref::parse(expr)
                .address()
                .and_then(|a| index.get(a).copied())
        };
        let in_rules: BTreeSet<usize> = found
            .iter()
            .filter(|(path, _)| path.starts_with("ingress") || path.starts_with("egress"))
            .filter_map(|(_, e)| target(e))
            .filter(|&j| j != i && is_group(j))
            .collect();
        let elsewhere: BTreeSet<usize> = found
            .iter()
            .filter(|(path, _)| !(path.starts_with("ingress") || path.starts_with("egress")))
            .filter_map(|(_, e)| target(e))
            .collect();
        let only_rules: BTreeSet<usize> = in_rules.difference(&elsewhere).copied().collect();
        if !only_rules.is_empty() {
            out.insert(i, only_rules);
        }
    }
    out
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
        if env.cloud.provider != "aws" {
            self.report(file.at(
                "cloud.provider",
                format!(
                    "unsupported provider `{}`: expected `aws`",
                    env.cloud.provider
                ),
            ));
        }
        let env_dir = format!("environments/{name}");
        let resources = self.infrastructure(&env, &file);
        let releases = self.releases(&env, &file, &env_dir);
        let config_maps = self.config_maps(&env, &file, &env_dir);
        let secrets = self.secrets(&env, &file, &env_dir);
        if env.cluster.is_none()
            && (!env.releases.is_empty() || !env.config_maps.is_empty() || !env.secrets.is_empty())
        {
            self.report(file.at(
                "",
                "releases and configMaps need a `cluster:` (e.g. `cluster: {type: existing, context: NAME}`)",
            ));
        }
        let cluster = env.cluster.as_ref().map(|c| Cluster {
            context: c.context.clone(),
            name: c.name.clone().unwrap_or_else(|| env.name.clone()),
            k3s: self.k3s.take(),
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
            warnings: std::mem::take(&mut self.warnings),
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

    /// Instantiates the modules, returning every resource in dependency order.
    fn infrastructure(&mut self, env: &EnvironmentFile, file: &SourceFile) -> Vec<Resource> {
        // Module instances: unique names, existing modules, order by `${module.X.Y}` references.
        let mut by_name: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, inst) in env.infrastructure.iter().enumerate() {
            let at = idx("infrastructure", i);
            if !is_identifier(&inst.name) || inst.name == "module" || inst.name == "input" {
                self.report(file.at(
                    &key(&at, "name"),
                    format!(
                        "invalid module instance name `{}`: expected letters, digits, `_` or `-`, starting with a letter (`module` and `input` are reserved)",
                        inst.name
                    ),
                ));
            }
            if by_name.insert(&inst.name, i).is_some() {
                self.report(file.at(
                    &key(&at, "name"),
                    format!("duplicate module instance name `{}`", inst.name),
                ));
            }
        }
        let mut deps: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
        for (i, inst) in env.infrastructure.iter().enumerate() {
            let mut found = Vec::new();
            for (k, v) in &inst.inputs {
                refs::collect(
                    v,
                    &key(&key(&idx("infrastructure", i), "inputs"), k),
                    &mut found,
                );
            }
            let entry = deps.entry(i).or_default();
            for (path, expr) in found {
                match refs::Ref::parse(&expr) {
                    refs::Ref::ModuleOutput { instance: m, .. } => match by_name.get(m) {
                        Some(&j) => {
                            entry.insert(j);
                        }
                        None => self.report(file.at(
                            &path,
                            format!("`${{{expr}}}` refers to module instance `{m}`, which is not declared under `infrastructure`"),
                        )),
                    },
                    _ => self.report(file.at(
                        &path,
                        format!("invalid reference `${{{expr}}}`: expected `${{module.INSTANCE.OUTPUT}}`"),
                    )),
                }
            }
        }
        let order = match topo_sort(&deps) {
            Ok(order) => order,
            Err(cycle) => {
                let names: Vec<&str> = cycle
                    .iter()
                    .map(|&i| env.infrastructure[i].name.as_str())
                    .collect();
                self.report(file.at(
                    &idx("infrastructure", cycle[0]),
                    format!(
                        "module instances refer to each other in a cycle: {}",
                        names.join(" -> ")
                    ),
                ));
                return Vec::new();
            }
        };
        // Outputs of each processed instance, as canonical expressions.
        let mut outputs: HashMap<String, BTreeMap<String, Value>> = HashMap::new();
        let mut resources: Vec<Resource> = Vec::new();
        for i in order {
            let inst = &env.infrastructure[i];
            let at = idx("infrastructure", i);
            let Some((module, mfile)) = self.module(&inst.module) else {
                if !self
                    .diagnostics
                    .0
                    .iter()
                    .any(|d| d.file.starts_with(&format!("modules/{}/", inst.module)))
                {
                    self.report(file.at(
                        &key(&at, "module"),
                        format!(
                            "module `{}` not found: expected modules/{}/module.yaml in the commit",
                            inst.module, inst.module
                        ),
                    ));
                }
                continue;
            };
            // Inputs: known, typed, required ones present.
            let mut inputs: BTreeMap<String, Value> = BTreeMap::new();
            for (k, v) in &inst.inputs {
                let path = key(&key(&at, "inputs"), k);
                let Some(spec) = module.inputs.get(k) else {
                    let known: Vec<&str> = module.inputs.keys().map(String::as_str).collect();
                    self.report(file.at(
                        &path,
                        format!(
                            "module `{}` has no input `{k}` (inputs: {})",
                            inst.module,
                            known.join(", ")
                        ),
                    ));
                    continue;
                };
                let mut value = v.clone();
                refs::substitute(&mut value, &mut |expr| match refs::Ref::parse(expr) {
                    refs::Ref::ModuleOutput {
                        instance: m,
                        output: o,
                    } => outputs.get(m).and_then(|outs| outs.get(o)).cloned(),
                    _ => None,
                });
                for (_, expr) in collect_refs(&value) {
                    if let refs::Ref::ModuleOutput {
                        instance: m,
                        output: o,
                    } = refs::Ref::parse(&expr)
                    {
                        if outputs.contains_key(m) {
                            self.report(
                                file.at(
                                    &path,
                                    format!("module instance `{m}` has no output `{o}`"),
                                ),
                            );
                        }
                    }
                }
                let is_reference = v.as_str().and_then(refs::whole).is_some();
                if !is_reference && !spec.kind.accepts(&value) {
                    self.report(
                        file.at(
                            &path,
                            format!(
                                "input `{k}` of module `{}` expects a {:?}, got {}",
                                inst.module,
                                spec.kind,
                                kind_of(&value)
                            )
                            .to_lowercase(),
                        ),
                    );
                }
                inputs.insert(k.clone(), value);
            }
            for (k, spec) in &module.inputs {
                if !inputs.contains_key(k) {
                    match &spec.default {
                        Some(d) => {
                            inputs.insert(k.clone(), d.clone());
                        }
                        None => self.report(file.at(
                            &key(&at, "inputs"),
                            format!("module `{}` requires input `{k}`", inst.module),
                        )),
                    }
                }
            }
            let (mut instance_resources, instance_outputs) = self.instantiate(
                &inst.name,
                &module,
                &mfile,
                &inputs,
                &file.at(&at, "").to_string(),
            );
            resources.append(&mut instance_resources);
            outputs.insert(inst.name.clone(), instance_outputs);
        }
        self.outputs = outputs;
        if let Some(cluster) = &env.cluster {
            resources.extend(self.cluster_nodes(env, cluster, file));
        }
        self.order_resources(resources)
    }

    /// Checks the `cluster:` section; for `k3s`, returns its node instances and keeps the
    /// cluster's settings for [`Cluster::k3s`].
    fn cluster_nodes(
        &mut self,
        env: &EnvironmentFile,
        c: &ClusterSpec,
        file: &SourceFile,
    ) -> Vec<Resource> {
        let k3s_only = [
            ("version", c.version.is_some()),
            ("credentials", c.credentials.is_some()),
            ("installScript", c.install_script.is_some()),
            ("apiTimeout", c.api_timeout.is_some()),
            ("server", c.server.is_some()),
            ("agents", c.agents.is_some()),
        ];
        if c.kind == ClusterKind::Existing {
            for (field, set) in k3s_only {
                if set {
                    self.report(file.at(
                        &key("cluster", field),
                        format!("`{field}` is only for `type: k3s`; an existing cluster is reached through `context`"),
                    ));
                }
            }
            return Vec::new();
        }
        if c.context.is_some() {
            self.report(file.at(
                "cluster.context",
                "`context` is only for `type: existing`: envboot writes a k3s cluster's kubeconfig itself (`envboot kubeconfig`)",
            ));
        }
        if env
            .infrastructure
            .iter()
            .any(|i| i.name == CLUSTER_INSTANCE)
        {
            self.report(file.at(
                "infrastructure",
                format!("the module instance name `{CLUSTER_INSTANCE}` is reserved for the k3s cluster's instances"),
            ));
        }
        let version = match &c.version {
            Some(v) if v.starts_with('v') && !v.contains(char::is_whitespace) => v.clone(),
            Some(v) => {
                self.report(file.at(
                    "cluster.version",
                    format!("invalid k3s version `{v}`: expected a release such as `v1.33.5+k3s1`"),
                ));
                String::new()
            }
            None => {
                self.report(file.at(
                    "cluster",
                    "a k3s cluster needs a pinned `version` (e.g. `version: v1.33.5+k3s1`), so that a rebuild installs what Git says",
                ));
                String::new()
            }
        };
        let api_timeout = match &c.api_timeout {
            None => DEFAULT_API_TIMEOUT,
            Some(t) => parse_duration(t).unwrap_or_else(|e| {
                self.report(file.at("cluster.apiTimeout", e));
                DEFAULT_API_TIMEOUT
            }),
        };
        let env_dir = format!("environments/{}", env.name);
        let rel = c
            .credentials
            .as_deref()
            .unwrap_or(crate::k3s::DEFAULT_CREDENTIALS);
        let at_credentials = if c.credentials.is_some() {
            "cluster.credentials"
        } else {
            "cluster"
        };
        let ciphertext = match join(&env_dir, rel) {
            None => {
                self.report(file.at(
                    at_credentials,
                    format!("file `{rel}` points outside the repository"),
                ));
                None
            }
            Some(path) => match self.snapshot.file(&path) {
                None => {
                    self.report(file.at(
                        at_credentials,
                        format!("the cluster's credentials are not in the commit: expected {path} (create them with `envboot cluster init {}`, then commit)", env.name),
                    ));
                    None
                }
                Some(bytes) if !is_age_encrypted(bytes) => {
                    self.report(file.at(
                        at_credentials,
                        format!("{path} is not age-encrypted: the cluster's keys must never sit in Git in plain text"),
                    ));
                    None
                }
                Some(bytes) => Some((path, bytes.to_vec())),
            },
        };
        let mut out = Vec::new();
        let Some(server) = &c.server else {
            self.report(file.at(
                "cluster",
                "a k3s cluster needs a `server:` (ami, instanceType, subnetId, securityGroupIds)",
            ));
            return out;
        };
        if server.count.is_some() {
            self.report(file.at(
                "cluster.server.count",
                "a k3s cluster has one server; `count` is for `agents`",
            ));
        }
        let server_address = format!("{CLUSTER_INSTANCE}.server");
        out.extend(self.node(server, &server_address, "cluster.server", file, None));
        let mut agents = Vec::new();
        if let Some(a) = &c.agents {
            let count = a.count.unwrap_or(1);
            for n in 1..=count {
                let address = format!("{CLUSTER_INSTANCE}.agent-{n}");
                out.extend(self.node(a, &address, "cluster.agents", file, Some(&server_address)));
                agents.push(address);
            }
        }
        if let Some((credentials_file, ciphertext)) = ciphertext {
            self.k3s = Some(K3s {
                version,
                install_script: c
                    .install_script
                    .clone()
                    .unwrap_or_else(|| DEFAULT_INSTALL_SCRIPT.to_string()),
                api_timeout,
                credentials_file,
                origin: file
                    .at(at_credentials, "")
                    .to_string()
                    .trim_end_matches(": ")
                    .to_string(),
                ciphertext,
                server: server_address,
                agents,
            });
        }
        out
    }

    /// One node's `aws_instance`; its user-data is written after the credentials are decrypted.
    fn node(
        &mut self,
        spec: &NodeSpec,
        address: &str,
        at: &str,
        file: &SourceFile,
        server: Option<&str>,
    ) -> Option<Resource> {
        let mut args = serde_json::json!({
            "ami": spec.ami,
            "instance_type": spec.instance_type,
            "subnet_id": spec.subnet_id,
            "vpc_security_group_ids": spec.security_group_ids,
            "key_name": spec.key_name,
            "root_volume_size": spec.root_volume_size,
            "iam_instance_profile": spec.iam_instance_profile,
        });
        self.cross_layer(&mut args, file, at, None);
        let mut found = Vec::new();
        refs::collect(&args, "", &mut found);
        let mut depends_on: BTreeSet<String> = found
            .iter()
            .filter_map(|(_, expr)| refs::Ref::parse(expr).address().map(str::to_string))
            .collect();
        if let Some(s) = server {
            depends_on.insert(s.to_string());
        }
        let spec = ResourceSpec::from_value(ResourceType::Instance, args)
            .map_err(|e| self.report(file.at(at, e.to_string())))
            .ok()?;
        Some(Resource {
            address: address.to_string(),
            spec,
            depends_on,
            late: BTreeSet::new(),
            origin: file
                .at(at, "")
                .to_string()
                .trim_end_matches(": ")
                .to_string(),
        })
    }

    /// Creates the resources of one module instance; returns them and the instance's outputs.
    fn instantiate(
        &mut self,
        instance: &str,
        module: &ModuleFile,
        mfile: &SourceFile,
        inputs: &BTreeMap<String, Value>,
        used_at: &str,
    ) -> (Vec<Resource>, BTreeMap<String, Value>) {
        let used_at = used_at.trim_end_matches(": ");
        let note = format!(" (module instance `{instance}` at {used_at})");
        let mut names: BTreeMap<String, ResourceType> = BTreeMap::new();
        let mut typed = Vec::new();
        for (j, raw) in module.resources.iter().enumerate() {
            let at = idx("resources", j);
            let name = raw
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let type_name = raw
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if !is_identifier(&name) {
                self.report(mfile.at(&key(&at, "name"), "every resource needs a `name`: letters, digits, `_` or `-`, starting with a letter"));
                continue;
            }
            let Some(ty) = ResourceType::parse(&type_name) else {
                let known: Vec<&str> = ResourceType::ALL.iter().map(|t| t.name()).collect();
                self.report(mfile.at(
                    &key(&at, "type"),
                    format!(
                        "unknown resource type `{type_name}`: expected one of {}",
                        known.join(", ")
                    ),
                ));
                continue;
            };
            if names.insert(name.clone(), ty).is_some() {
                self.report(mfile.at(
                    &key(&at, "name"),
                    format!("duplicate resource name `{name}`"),
                ));
                continue;
            }
            typed.push((j, name, ty));
        }
        let mut out = Vec::new();
        for (j, name, ty) in typed {
            let at = idx("resources", j);
            let mut args = Value::Object(module.resources[j].clone());
            if let Value::Object(map) = &mut args {
                map.remove("name");
                map.remove("type");
            }
            let mut problems = Vec::new();
            let mut depends_on = BTreeSet::new();
            let mut raw_refs = Vec::new();
            refs::collect(&args, &at, &mut raw_refs);
            refs::substitute(&mut args, &mut |expr| match refs::Ref::parse(expr) {
                refs::Ref::Input { name: k } => {
                    let v = inputs.get(k).cloned();
                    if v.is_none() && !module.inputs.contains_key(k) {
                        problems.push(format!("`${{{expr}}}` refers to input `{k}`, which the module does not declare"));
                    }
                    v
                }
                _ => None,
            });
            refs::substitute(&mut args, &mut |expr| {
                match refs::Ref::parse(expr) {
                    refs::Ref::Input { .. } => None,
                    refs::Ref::Local {
                        resource: r,
                        attribute: attr,
                    } => match names.get(r) {
                        Some(t) if t.attributes().contains(&attr) => {
                            depends_on.insert(format!("{instance}.{r}"));
                            Some(Value::String(format!("${{{instance}.{r}.{attr}}}")))
                        }
                        Some(t) => {
                            problems.push(format!(
                                "`${{{expr}}}`: {} has no attribute `{attr}` (attributes: {})",
                                t.name(),
                                t.attributes().join(", ")
                            ));
                            None
                        }
                        None => {
                            problems.push(format!("`${{{expr}}}` refers to `{r}`, which is not a resource of this module"));
                            None
                        }
                    },
                    // Canonical: a reference to another instance's resource that came in through an input.
                    refs::Ref::Attribute { address, .. } => {
                        depends_on.insert(address.to_string());
                        None
                    }
                    _ => {
                        problems.push(format!(
                            "invalid reference `${{{expr}}}`: expected `${{input.NAME}}` or `${{RESOURCE.ATTRIBUTE}}`"
                        ));
                        None
                    }
                }
            });
            let first_ref_path = raw_refs
                .first()
                .map(|(p, _)| p.clone())
                .unwrap_or_else(|| at.clone());
            for p in problems {
                self.report(mfile.at(&first_ref_path, format!("{p}{note}")));
            }
            let spec = self.typed_spec(ty, mfile, &at, args, &note);
            match spec {
                Ok(spec) => {
                    let (line, _) = mfile.position(&at);
                    out.push((
                        at,
                        Resource {
                            address: format!("{instance}.{name}"),
                            spec,
                            depends_on,
                            late: BTreeSet::new(),
                            origin: format!("{}:{line}", mfile.path),
                        },
                    ));
                }
                Err(mut d) => {
                    d.message.push_str(&note);
                    self.report(d);
                }
            }
        }
        self.check_cidrs(&out, mfile, &note);
        let mut outputs = BTreeMap::new();
        for (k, expr) in &module.outputs {
            let mut v = Value::String(expr.clone());
            let mut bad = None;
            refs::substitute(&mut v, &mut |e| match refs::Ref::parse(e) {
                refs::Ref::Input { name: k } => inputs.get(k).cloned(),
                refs::Ref::Local {
                    resource: r,
                    attribute: attr,
                } if names.get(r).is_some_and(|t| t.attributes().contains(&attr)) => {
                    Some(Value::String(format!("${{{instance}.{r}.{attr}}}")))
                }
                _ => {
                    bad = Some(e.to_string());
                    None
                }
            });
            if let Some(e) = bad {
                self.report(mfile.at(
                    &key("outputs", k),
                    format!("output `{k}` refers to `${{{e}}}`, which is not an input or a resource attribute of this module"),
                ));
            }
            outputs.insert(k.clone(), v);
        }
        (out.into_iter().map(|(_, r)| r).collect(), outputs)
    }

    /// Parses a resource's arguments as its type; reads a key pair's `public_key_file`.
    fn typed_spec(
        &mut self,
        ty: ResourceType,
        mfile: &SourceFile,
        at: &str,
        args: Value,
        note: &str,
    ) -> std::result::Result<ResourceSpec, Diagnostic> {
        let f = |args| -> std::result::Result<ResourceSpec, Diagnostic> {
            Ok(match ty {
                ResourceType::Vpc => ResourceSpec::Vpc(diag::from_value(mfile, at, args)?),
                ResourceType::Subnet => ResourceSpec::Subnet(diag::from_value(mfile, at, args)?),
                ResourceType::InternetGateway => {
                    ResourceSpec::InternetGateway(diag::from_value(mfile, at, args)?)
                }
                ResourceType::Eip => ResourceSpec::Eip(diag::from_value(mfile, at, args)?),
                ResourceType::NatGateway => {
                    ResourceSpec::NatGateway(diag::from_value(mfile, at, args)?)
                }
                ResourceType::RouteTable => {
                    ResourceSpec::RouteTable(diag::from_value(mfile, at, args)?)
                }
                ResourceType::SecurityGroup => {
                    ResourceSpec::SecurityGroup(diag::from_value(mfile, at, args)?)
                }
                ResourceType::KeyPair => ResourceSpec::KeyPair(diag::from_value(mfile, at, args)?),
                ResourceType::LaunchTemplate => {
                    ResourceSpec::LaunchTemplate(diag::from_value(mfile, at, args)?)
                }
                ResourceType::Instance => {
                    ResourceSpec::Instance(diag::from_value(mfile, at, args)?)
                }
                ResourceType::EipAssociation => {
                    ResourceSpec::EipAssociation(diag::from_value(mfile, at, args)?)
                }
            })
        };
        let mut spec = f(args)?;
        match &mut spec {
            ResourceSpec::KeyPair(k) => match (&k.public_key_file, &k.public_key) {
                (Some(rel), None) => {
                    let dir = mfile.path.rsplit_once('/').map_or("", |(d, _)| d);
                    let read = join(dir, rel)
                        .ok_or_else(|| format!("public_key_file `{rel}` points outside the repository"))
                        .and_then(|path| {
                            self.snapshot.file(&path).ok_or_else(|| {
                                format!("public_key_file `{rel}` not found: expected {path} in the commit")
                            })
                        })
                        .and_then(|bytes| {
                            std::str::from_utf8(bytes)
                                .map(|t| t.trim().to_string())
                                .map_err(|_| format!("public_key_file `{rel}` is not a text file"))
                        });
                    match read {
                        Ok(text) if text.starts_with("ssh-") || text.starts_with("ecdsa-") => {
                            k.public_key = Some(text)
                        }
                        Ok(_) => {
                            return Err(mfile.at(
                                &key(at, "public_key_file"),
                                format!("public_key_file `{rel}` is not an OpenSSH public key (ssh-ed25519, ssh-rsa, ecdsa-...){note}"),
                            ))
                        }
                        Err(m) => return Err(mfile.at(&key(at, "public_key_file"), format!("{m}{note}"))),
                    }
                }
                (None, Some(_)) => {}
                _ => {
                    return Err(mfile.at(
                        at,
                        format!("an aws_key_pair needs exactly one of `public_key_file` and `public_key`{note}"),
                    ))
                }
            },
            ResourceSpec::RouteTable(t) => {
                for (i, r) in t.routes.iter().enumerate() {
                    if r.gateway_id.is_some() == r.nat_gateway_id.is_some() {
                        return Err(mfile.at(
                            &idx(&key(at, "routes"), i),
                            format!("a route needs exactly one of `gateway_id` and `nat_gateway_id`{note}"),
                        ));
                    }
                }
            }
            ResourceSpec::EipAssociation(a) if refs::whole(&a.allocation_id).is_none() => {
                return Err(mfile.at(
                    &key(at, "allocation_id"),
                    format!("allocation_id must refer to an aws_eip of the environment (`${{eip.id}}`), so that envboot owns the address{note}"),
                ));
            }
            ResourceSpec::Instance(i) if i.root_volume_size.is_some_and(|s| !(1..=16384).contains(&s)) => {
                return Err(mfile.at(
                    &key(at, "root_volume_size"),
                    format!("root_volume_size must be between 1 and 16384 GiB{note}"),
                ));
            }
            _ => {}
        }
        Ok(spec)
    }

    /// CIDRs parse; subnets lie inside their VPC and do not overlap each other.
    fn check_cidrs(&mut self, resources: &[(String, Resource)], mfile: &SourceFile, note: &str) {
        let literal = |s: &str| -> Option<std::result::Result<Ipv4Net, String>> {
            if s.contains("${") {
                return None;
            }
            Some(s.parse::<Ipv4Net>().map_err(|_| {
                format!("invalid CIDR block `{s}`: expected an IPv4 network such as 10.0.0.0/16")
            }))
        };
        let mut vpcs: HashMap<String, Ipv4Net> = HashMap::new();
        for (at, r) in resources {
            if let ResourceSpec::Vpc(v) = &r.spec {
                match literal(&v.cidr_block) {
                    Some(Ok(net)) => {
                        vpcs.insert(format!("${{{}.id}}", r.address), net);
                    }
                    Some(Err(m)) => {
                        self.report(mfile.at(&key(at, "cidr_block"), format!("{m}{note}")))
                    }
                    None => {}
                }
            }
        }
        let mut subnets: Vec<(String, String, Ipv4Net, String)> = Vec::new();
        for (at, r) in resources {
            match &r.spec {
                ResourceSpec::Subnet(s) => match literal(&s.cidr_block) {
                    Some(Ok(net)) => {
                        if let Some(vpc) = vpcs.get(&s.vpc_id) {
                            if !vpc.contains(&net) {
                                self.report(mfile.at(
                                    &key(at, "cidr_block"),
                                    format!("subnet {net} is not inside its VPC's {vpc}{note}"),
                                ));
                            }
                        }
                        for (other_at, other_vpc, other, other_addr) in &subnets {
                            if *other_vpc == s.vpc_id
                                && (other.contains(&net) || net.contains(other))
                            {
                                let _ = other_at;
                                self.report(mfile.at(
                                    &key(at, "cidr_block"),
                                    format!("subnet {net} overlaps {other_addr} ({other}) in the same VPC{note}"),
                                ));
                            }
                        }
                        subnets.push((at.clone(), s.vpc_id.clone(), net, r.address.clone()));
                    }
                    Some(Err(m)) => {
                        self.report(mfile.at(&key(at, "cidr_block"), format!("{m}{note}")))
                    }
                    None => {}
                },
                ResourceSpec::SecurityGroup(g) => {
                    let lists = [("ingress", g.ingress.as_slice())]
                        .into_iter()
                        .chain(g.egress.as_deref().map(|e| ("egress", e)));
                    for (field, rules) in lists {
                        for (i, rule) in rules.iter().enumerate() {
                            let rule_at = idx(&key(at, field), i);
                            self.check_rule(rule, field, &rule_at, &r.address, mfile, note);
                        }
                    }
                }
                ResourceSpec::RouteTable(t) => {
                    for (i, route) in t.routes.iter().enumerate() {
                        if let Some(Err(m)) = literal(&route.cidr_block) {
                            self.report(mfile.at(
                                &key(&idx(&key(at, "routes"), i), "cidr_block"),
                                format!("{m}{note}"),
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// A security group rule: valid CIDRs and protocol, a port range, at least one source, and a
    /// warning for SSH or all ports open to the internet.
    fn check_rule(
        &mut self,
        rule: &spec::Rule,
        field: &str,
        rule_at: &str,
        address: &str,
        mfile: &SourceFile,
        note: &str,
    ) {
        for (c, cidr) in rule.cidr_blocks.iter().enumerate() {
            if !cidr.contains("${") && cidr.parse::<Ipv4Net>().is_err() {
                self.report(mfile.at(
                    &idx(&key(rule_at, "cidr_blocks"), c),
                    format!("invalid CIDR block `{cidr}`: expected an IPv4 network such as 10.0.0.0/16{note}"),
                ));
            }
        }
        if rule.cidr_blocks.is_empty() && rule.security_groups.is_empty() {
            self.report(mfile.at(
                rule_at,
                format!("a rule needs `cidr_blocks` or `security_groups`{note}"),
            ));
        }
        if !matches!(rule.protocol.as_str(), "tcp" | "udp" | "icmp" | "-1") {
            self.report(mfile.at(
                &key(rule_at, "protocol"),
                format!(
                    "invalid protocol `{}`: expected tcp, udp, icmp or -1{note}",
                    rule.protocol
                ),
            ));
        }
        let open_to_all = rule.cidr_blocks.iter().any(|c| c == "0.0.0.0/0");
        let covers = |port: i32| rule.from_port <= port && port <= rule.to_port;
        let all_ports = rule.protocol == "-1" || (rule.from_port <= 0 && rule.to_port >= 65535);
        if field == "ingress"
            && open_to_all
            && (all_ports || (covers(22) && rule.protocol == "tcp"))
        {
            let what = if all_ports {
                "all ports"
            } else {
                "SSH (port 22)"
            };
            self.warnings.push(mfile.at(
                rule_at,
                format!("security group {address} opens {what} to 0.0.0.0/0{note}"),
            ));
        }
        if rule.from_port > rule.to_port {
            self.report(mfile.at(
                &key(rule_at, "from_port"),
                format!(
                    "from_port {} is above to_port {}{note}",
                    rule.from_port, rule.to_port
                ),
            ));
        }
    }

    /// Checks cross-module references and sorts resources so dependencies come first.
    fn order_resources(&mut self, mut resources: Vec<Resource>) -> Vec<Resource> {
        let index: HashMap<&str, usize> = resources
            .iter()
            .enumerate()
            .map(|(i, r)| (r.address.as_str(), i))
            .collect();
        let mut deps: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
        let mut missing = Vec::new();
        for (i, r) in resources.iter().enumerate() {
            let entry = deps.entry(i).or_default();
            for d in &r.depends_on {
                match index.get(d.as_str()) {
                    Some(&j) => {
                        entry.insert(j);
                    }
                    None => missing.push((r.origin.clone(), r.address.clone(), d.clone())),
                }
            }
        }
        for (origin, address, d) in missing {
            let (file, line) = origin.rsplit_once(':').unwrap_or((&origin, "1"));
            self.report(Diagnostic {
                file: file.to_string(),
                line: line.parse().unwrap_or(1),
                column: 1,
                message: format!("{address} refers to `{d}`, which does not exist"),
            });
        }
        // Security groups whose rules refer to each other (web admits db, db admits web) are
        // a cycle only through their rules: such groups are created first, and those rules are
        // added once both exist.
        let sorted = match topo_sort(&deps) {
            Err(_) => {
                let rule_edges = security_group_rule_edges(&resources, &index);
                let mut relaxed = deps.clone();
                for (i, targets) in &rule_edges {
                    if let Some(entry) = relaxed.get_mut(i) {
                        for j in targets {
                            entry.remove(j);
                        }
                    }
                }
                match topo_sort(&relaxed) {
                    Ok(order) => {
                        for (i, targets) in rule_edges {
                            for j in targets {
                                let target = resources[j].address.clone();
                                resources[i].depends_on.remove(&target);
                                resources[i].late.insert(target);
                            }
                        }
                        Ok(order)
                    }
                    // Still a cycle: report the one as declared.
                    Err(_) => topo_sort(&deps),
                }
            }
            ok => ok,
        };
        match sorted {
            Ok(order) => {
                let mut slots: Vec<Option<Resource>> = resources.into_iter().map(Some).collect();
                order.into_iter().filter_map(|i| slots[i].take()).collect()
            }
            Err(cycle) => {
                let names: Vec<&str> = cycle
                    .iter()
                    .map(|&i| resources[i].address.as_str())
                    .collect();
                let first = &resources[cycle[0]].origin;
                let (file, line) = first.rsplit_once(':').unwrap_or((first, "1"));
                self.report(Diagnostic {
                    file: file.to_string(),
                    line: line.parse().unwrap_or(1),
                    column: 1,
                    message: format!(
                        "resources refer to each other in a cycle: {}",
                        names.join(" -> ")
                    ),
                });
                Vec::new()
            }
        }
    }

    fn releases(
        &mut self,
        env: &EnvironmentFile,
        file: &SourceFile,
        env_dir: &str,
    ) -> Vec<Release> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (i, spec) in env.releases.iter().enumerate() {
            let at = idx("releases", i);
            if !is_dns_label(&spec.name) {
                self.report(file.at(
                    &key(&at, "name"),
                    format!(
                        "invalid release name `{}`: expected a DNS label (a-z, 0-9, `-`)",
                        spec.name
                    ),
                ));
            }
            if !seen.insert(spec.name.clone()) {
                self.report(file.at(
                    &key(&at, "name"),
                    format!("duplicate release name `{}`", spec.name),
                ));
            }
            if !is_dns_label(&spec.namespace) {
                self.report(file.at(
                    &key(&at, "namespace"),
                    format!(
                        "invalid namespace `{}`: expected a DNS label (a-z, 0-9, `-`)",
                        spec.namespace
                    ),
                ));
            }
            let Some(chart) = self.chart(&spec.chart, file, &key(&at, "chart")) else {
                continue;
            };
            let mut values = chart.values.clone();
            let mut values_sources = Vec::new();
            for (v, rel) in spec.values_files.iter().enumerate() {
                let vat = idx(&key(&at, "valuesFiles"), v);
                let Some(path) = join(env_dir, rel) else {
                    self.report(file.at(
                        &vat,
                        format!("values file `{rel}` points outside the repository"),
                    ));
                    continue;
                };
                let Some(bytes) = self.snapshot.file(&path) else {
                    self.report(file.at(
                        &vat,
                        format!("values file `{rel}` not found: expected {path} in the commit"),
                    ));
                    continue;
                };
                let Ok(text) = utf8(&path, bytes).map_err(|d| self.report(d)) else {
                    continue;
                };
                match diag::parse::<Option<Value>>(&path, text) {
                    Ok((Some(overlay @ Value::Object(_)), _)) => {
                        merge_values(&mut values, &overlay);
                        values_sources.push((path.clone(), text.to_string()));
                    }
                    Ok((None, _)) => {}
                    Ok((Some(_), vfile)) => {
                        self.report(vfile.at("", "a values file must be a map of values"))
                    }
                    Err(d) => self.report(d),
                }
            }
            let mut inline = Value::Object(spec.values.clone());
            let secret_names: Vec<String> = env.secrets.iter().map(|s| s.name.clone()).collect();
            self.cross_layer(&mut inline, file, &key(&at, "values"), Some(&secret_names));
            merge_values(&mut values, &inline);
            if !spec.values.is_empty() {
                let name = format!("{} (values of release {})", file.path, spec.name);
                values_sources.push((name, serde_yaml_ng::to_string(&inline).unwrap_or_default()));
            }
            let timeout = spec.timeout.as_deref().and_then(|t| {
                parse_duration(t)
                    .map_err(|e| self.report(file.at(&key(&at, "timeout"), e)))
                    .ok()
            });
            out.push(Release {
                name: spec.name.clone(),
                namespace: spec.namespace.clone(),
                chart,
                values,
                values_sources,
                inline_values: inline,
                depends_on: spec.depends_on.clone(),
                timeout,
            });
        }
        self.check_release_order(env, file);
        out
    }

    /// `dependsOn` names declared releases, and never in a circle.
    fn check_release_order(&mut self, env: &EnvironmentFile, file: &SourceFile) {
        let index: BTreeMap<&str, usize> = env
            .releases
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name.as_str(), i))
            .collect();
        let mut deps: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
        for (i, spec) in env.releases.iter().enumerate() {
            let entry = deps.entry(i).or_default();
            for (j, name) in spec.depends_on.iter().enumerate() {
                let at = idx(&key(&idx("releases", i), "dependsOn"), j);
                match index.get(name.as_str()) {
                    Some(&d) if d == i => {
                        self.report(file.at(&at, format!("release `{name}` cannot depend on itself")))
                    }
                    Some(&d) => {
                        entry.insert(d);
                    }
                    None => self.report(file.at(
                        &at,
                        format!("`dependsOn` names release `{name}`, which is not declared under `releases`"),
                    )),
                }
            }
        }
        if let Err(cycle) = topo_sort(&deps) {
            let names: Vec<&str> = cycle
                .iter()
                .map(|&i| env.releases[i].name.as_str())
                .collect();
            let first = cycle.first().copied().unwrap_or(0);
            self.report(file.at(
                &key(&idx("releases", first), "dependsOn"),
                format!(
                    "releases depend on each other in a circle: {}",
                    names.join(" -> ")
                ),
            ));
        }
    }

    fn chart(&mut self, name: &str, file: &SourceFile, at: &str) -> Option<Chart> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct ChartYaml {
            name: String,
            version: String,
            #[serde(default)]
            app_version: Option<String>,
        }
        let dir = format!("modules/{name}");
        let chart_path = format!("{dir}/Chart.yaml");
        let Some(bytes) = self.snapshot.file(&chart_path) else {
            self.report(file.at(
                at,
                format!("chart `{name}` not found: expected {chart_path} in the commit"),
            ));
            return None;
        };
        let text = utf8(&chart_path, bytes).map_err(|d| self.report(d)).ok()?;
        let (meta, _): (ChartYaml, _) = diag::parse(&chart_path, text)
            .map_err(|d| self.report(d))
            .ok()?;
        let values_path = format!("{dir}/values.yaml");
        let values = match self.snapshot.file(&values_path) {
            None => Value::Object(Default::default()),
            Some(bytes) => {
                let text = utf8(&values_path, bytes).map_err(|d| self.report(d)).ok()?;
                match diag::parse::<Option<Value>>(&values_path, text) {
                    Ok((Some(v @ Value::Object(_)), _)) => v,
                    Ok((None, _)) => Value::Object(Default::default()),
                    Ok((Some(_), vfile)) => {
                        self.report(vfile.at("", "values.yaml must be a map of values"));
                        return None;
                    }
                    Err(d) => {
                        self.report(d);
                        return None;
                    }
                }
            }
        };
        let mut templates = BTreeMap::new();
        for (rel, bytes) in self.snapshot.files_under(&format!("{dir}/templates")) {
            let path = format!("{dir}/templates/{rel}");
            if let Ok(text) = utf8(&path, bytes).map_err(|d| self.report(d)) {
                templates.insert(format!("templates/{rel}"), text.to_string());
            }
        }
        let files = self
            .snapshot
            .files_under(&dir)
            .map(|(rel, bytes)| (rel.to_string(), bytes.to_vec()))
            .collect();
        Some(Chart {
            files,
            dir,
            name: meta.name,
            version: meta.version,
            app_version: meta.app_version,
            values,
            templates,
        })
    }

    fn config_maps(
        &mut self,
        env: &EnvironmentFile,
        file: &SourceFile,
        env_dir: &str,
    ) -> Vec<ConfigMap> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (i, spec) in env.config_maps.iter().enumerate() {
            let at = idx("configMaps", i);
            self.check_object_names(
                "ConfigMap",
                file,
                &at,
                &spec.name,
                &spec.namespace,
                &mut seen,
            );
            let mut data = BTreeMap::new();
            for (k, v) in &spec.data {
                let mut value = Value::String(v.clone());
                self.cross_layer(&mut value, file, &key(&key(&at, "data"), k), None);
                data.insert(k.clone(), refs::display(&value));
            }
            let mut cm = ConfigMap {
                name: spec.name.clone(),
                declared_name: spec.name.clone(),
                namespace: spec.namespace.clone(),
                data,
                binary_data: BTreeMap::new(),
            };
            for (f, entry) in spec.files.iter().enumerate() {
                let fat = idx(&key(&at, "files"), f);
                let Some(path) = join(env_dir, &entry.path) else {
                    self.report(file.at(
                        &key(&fat, "path"),
                        format!("file `{}` points outside the repository", entry.path),
                    ));
                    continue;
                };
                let key_name = entry
                    .key
                    .clone()
                    .unwrap_or_else(|| path.rsplit('/').next().unwrap_or_default().to_string());
                let Some(bytes) = self.snapshot.file(&path) else {
                    self.report(file.at(
                        &key(&fat, "path"),
                        format!(
                            "file `{}` not found: expected {path} in the commit",
                            entry.path
                        ),
                    ));
                    continue;
                };
                if cm.data.contains_key(&key_name) || cm.binary_data.contains_key(&key_name) {
                    self.report(file.at(
                        &fat,
                        format!("duplicate key `{key_name}` in ConfigMap `{}`", spec.name),
                    ));
                    continue;
                }
                insert_file(&mut cm, key_name, bytes);
            }
            for (f, folder) in spec.folders.iter().enumerate() {
                let fat = idx(&key(&at, "folders"), f);
                let Some(dir) = join(env_dir, folder) else {
                    self.report(file.at(
                        &fat,
                        format!("folder `{folder}` points outside the repository"),
                    ));
                    continue;
                };
                // Like `kubectl create configmap --from-file=DIR`: the files directly in it.
                let files: Vec<(&str, &[u8])> = self
                    .snapshot
                    .files_under(&dir)
                    .filter(|(rel, _)| !rel.contains('/'))
                    .collect();
                if files.is_empty() {
                    self.report(file.at(
                        &fat,
                        format!("folder `{folder}` not found or empty: expected files in {dir}/ in the commit"),
                    ));
                    continue;
                }
                for (rel, bytes) in files {
                    if !valid_key(rel) {
                        self.report(file.at(&fat, format!("file name `{rel}` in {dir}/ is not a valid ConfigMap key (letters, digits, `-`, `_`, `.`)")));
                    } else if cm.data.contains_key(rel) || cm.binary_data.contains_key(rel) {
                        self.report(file.at(
                            &fat,
                            format!("duplicate key `{rel}` in ConfigMap `{}`", spec.name),
                        ));
                    } else {
                        insert_file(&mut cm, rel.to_string(), bytes);
                    }
                }
            }
            for (f, env_file) in spec.env_files.iter().enumerate() {
                let fat = idx(&key(&at, "envFiles"), f);
                let Some(path) = join(env_dir, env_file) else {
                    self.report(file.at(
                        &fat,
                        format!("env file `{env_file}` points outside the repository"),
                    ));
                    continue;
                };
                let Some(bytes) = self.snapshot.file(&path) else {
                    self.report(file.at(
                        &fat,
                        format!("env file `{env_file}` not found: expected {path} in the commit"),
                    ));
                    continue;
                };
                match parse_env_file(&path, bytes) {
                    Ok(entries) => {
                        for (line, k, v) in entries {
                            if cm.data.contains_key(&k) || cm.binary_data.contains_key(&k) {
                                self.report(crate::diag::Diagnostic {
                                    file: path.clone(),
                                    line,
                                    column: 1,
                                    message: format!(
                                        "duplicate key `{k}` in ConfigMap `{}`",
                                        spec.name
                                    ),
                                });
                            } else {
                                cm.data.insert(k, v);
                            }
                        }
                    }
                    Err(d) => self.report(d),
                }
            }
            if spec.hash_suffix {
                cm.name = format!("{}-{}", spec.name, content_hash(&cm));
            }
            out.push(cm);
        }
        out
    }
}

impl Loader<'_> {
    /// A namespaced object's name (DNS subdomain), namespace (DNS label) and uniqueness, for
    /// ConfigMaps and Secrets declared in the environment.
    fn check_object_names(
        &mut self,
        kind: &str,
        file: &SourceFile,
        at: &str,
        name: &str,
        namespace: &str,
        seen: &mut BTreeSet<(String, String)>,
    ) {
        if !is_dns_subdomain(name) {
            self.report(file.at(
                &key(at, "name"),
                format!(
                    "invalid {kind} name `{name}`: expected a DNS subdomain (a-z, 0-9, `-`, `.`)"
                ),
            ));
        }
        if !is_dns_label(namespace) {
            self.report(file.at(
                &key(at, "namespace"),
                format!("invalid namespace `{namespace}`: expected a DNS label (a-z, 0-9, `-`)"),
            ));
        }
        if !seen.insert((namespace.to_string(), name.to_string())) {
            self.report(file.at(
                &key(at, "name"),
                format!("duplicate {kind} `{namespace}/{name}`"),
            ));
        }
    }

    fn secrets(&mut self, env: &EnvironmentFile, file: &SourceFile, env_dir: &str) -> Vec<Secret> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (i, spec) in env.secrets.iter().enumerate() {
            let at = idx("secrets", i);
            self.check_object_names("Secret", file, &at, &spec.name, &spec.namespace, &mut seen);
            let Some(path) = join(env_dir, &spec.file) else {
                self.report(file.at(
                    &key(&at, "file"),
                    format!("file `{}` points outside the repository", spec.file),
                ));
                continue;
            };
            let Some(bytes) = self.snapshot.file(&path) else {
                self.report(file.at(
                    &key(&at, "file"),
                    format!(
                        "secret file `{}` not found: expected {path} in the commit",
                        spec.file
                    ),
                ));
                continue;
            };
            if !is_age_encrypted(bytes) {
                self.report(file.at(
                    &key(&at, "file"),
                    format!("{path} is not age-encrypted: secrets must never sit in Git in plain text (encrypt it with `envboot secret encrypt`)"),
                ));
                continue;
            }
            out.push(Secret {
                name: spec.name.clone(),
                namespace: spec.namespace.clone(),
                file: path,
                origin: file
                    .at(&key(&at, "file"), "")
                    .to_string()
                    .trim_end_matches(": ")
                    .to_string(),
                ciphertext: bytes.to_vec(),
            });
        }
        out
    }
}

impl Loader<'_> {
    /// Replaces `${module.INSTANCE.OUTPUT}` in Kubernetes-side values (ConfigMap data, chart
    /// values) by the output's canonical expression, resolved against AWS at plan and apply
    /// time. Reports references that do not resolve, at `path` in `file`.
    /// Resolves `${module.X.Y}` in `value`; `${secret.NAME.KEY}` is checked and kept for the
    /// renderer where `secrets` (the declared secrets' names) is given, rejected elsewhere.
    fn cross_layer(
        &mut self,
        value: &mut Value,
        file: &SourceFile,
        path: &str,
        secrets: Option<&[String]>,
    ) {
        let mut problems = Vec::new();
        let outputs = &self.outputs;
        refs::substitute(value, &mut |expr| match refs::Ref::parse(expr) {
            refs::Ref::ModuleOutput {
                instance: m,
                output: o,
            } => match outputs.get(m) {
                Some(outs) => match outs.get(o) {
                    Some(v) => Some(v.clone()),
                    None => {
                        problems.push(format!("module instance `{m}` has no output `{o}`"));
                        None
                    }
                },
                None => {
                    problems.push(format!("`${{{expr}}}` refers to module instance `{m}`, which is not declared under `infrastructure`"));
                    None
                }
            },
            refs::Ref::Secret { name, .. } => {
                match secrets {
                        Some(names) if names.iter().any(|n| n == name) => {}
                        Some(_) => problems.push(format!(
                            "`${{{expr}}}` refers to secret `{name}`, which is not declared under `secrets`"
                        )),
                        None => problems.push(format!(
                            "`${{{expr}}}`: secret values go only into release values and Secrets, never into a ConfigMap"
                        )),
                    }
                None
            }
            _ => {
                let expected = if secrets.is_some() {
                    "`${module.INSTANCE.OUTPUT}` or `${secret.NAME.KEY}`"
                } else {
                    "`${module.INSTANCE.OUTPUT}`"
                };
                problems.push(format!(
                    "invalid reference `${{{expr}}}`: expected {expected}"
                ));
                None
            }
        });
        for p in problems {
            self.report(file.at(path, p));
        }
    }
}

/// A file's bytes as a ConfigMap key: text in `data`, anything not UTF-8 in `binaryData`.
fn insert_file(cm: &mut ConfigMap, key: String, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            cm.data.insert(key, text.to_string());
        }
        Err(_) => {
            cm.binary_data.insert(key, bytes.to_vec());
        }
    }
}

/// A valid ConfigMap key: letters, digits, `-`, `_` and `.`, at most 253 characters.
fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Parses an env file like `kubectl create configmap --from-env-file`: `KEY=VALUE` per line,
/// blank lines and `#` comments skipped, the value taken as written (quotes included).
/// Returns (line, key, value) for each entry.
pub fn parse_env_file(
    path: &str,
    bytes: &[u8],
) -> Result<Vec<(usize, String, String)>, crate::diag::Diagnostic> {
    let at = |line: usize, message: String| crate::diag::Diagnostic {
        file: path.to_string(),
        line,
        column: 1,
        message,
    };
    let text = std::str::from_utf8(bytes)
        .map_err(|_| at(1, "an env file must be UTF-8 text".to_string()))?;
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_start();
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(at(
                i + 1,
                format!("expected KEY=VALUE, found `{}`", raw.trim()),
            ));
        };
        let k = k.trim_end();
        if !valid_key(k) {
            return Err(at(
                i + 1,
                format!("`{k}` is not a valid ConfigMap key (letters, digits, `-`, `_`, `.`)"),
            ));
        }
        out.push((i + 1, k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// The first 10 hex digits of a SHA-256 over the ConfigMap's content (keys sorted; references
/// to AWS values as written, not resolved).
fn content_hash(cm: &ConfigMap) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (k, v) in &cm.data {
        h.update(b"d\0");
        h.update(k.as_bytes());
        h.update(b"\0");
        h.update(v.as_bytes());
        h.update(b"\0");
    }
    for (k, v) in &cm.binary_data {
        h.update(b"b\0");
        h.update(k.as_bytes());
        h.update(b"\0");
        h.update(v);
        h.update(b"\0");
    }
    hex::encode(h.finalize())[..10].to_string()
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

/// Orders nodes so that each comes after its dependencies; on a cycle, returns the cycle.
fn topo_sort(
    deps: &BTreeMap<usize, BTreeSet<usize>>,
) -> std::result::Result<Vec<usize>, Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit(
        n: usize,
        deps: &BTreeMap<usize, BTreeSet<usize>>,
        marks: &mut BTreeMap<usize, Mark>,
        stack: &mut Vec<usize>,
        out: &mut Vec<usize>,
    ) -> std::result::Result<(), Vec<usize>> {
        match marks.get(&n).copied().unwrap_or(Mark::New) {
            Mark::Done => return Ok(()),
            Mark::Active => {
                let start = stack.iter().position(|&s| s == n).unwrap_or(0);
                let mut cycle = stack[start..].to_vec();
                cycle.push(n);
                return Err(cycle);
            }
            Mark::New => {}
        }
        marks.insert(n, Mark::Active);
        stack.push(n);
        for &d in deps.get(&n).into_iter().flatten() {
            visit(d, deps, marks, stack, out)?;
        }
        stack.pop();
        marks.insert(n, Mark::Done);
        out.push(n);
        Ok(())
    }
    let mut marks = BTreeMap::new();
    let mut out = Vec::new();
    for &n in deps.keys() {
        visit(n, deps, &mut marks, &mut Vec::new(), &mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
