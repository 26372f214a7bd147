//! Engine: runs the pipeline (source -> model -> render -> plan -> apply) for one environment.
//!
//! # Assumptions
//! Every step of apply is idempotent and safe after a partly finished earlier run: the plan is
//! always computed from what exists now, found by tags and labels, so a rerun after a crash
//! creates only what is missing.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures::StreamExt;
use std::time::{Duration, Instant};

mod cluster;

pub(crate) use cluster::k3s_user_data;
pub use cluster::{cluster_init, kubeconfig};
use cluster::{k3s_access, k3s_live_endpoint, k3s_plan, k3s_ready_client, pending_creates};

use crate::aws::{self, Aws, AwsChange};
use crate::k3s;
use crate::kube::{self, Kube, KubeChange, ObjectKey};
use crate::model::{self, Environment, ResourceSpec};
use crate::plan::{self, Action, Change, Summary};
use crate::render::{self, Manifest};
use crate::source::{self, Snapshot};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Source(#[from] source::Error),
    #[error(transparent)]
    Model(#[from] model::Error),
    #[error(transparent)]
    Render(#[from] render::Error),
    #[error(transparent)]
    Aws(#[from] aws::Error),
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error("warnings are errors (--deny-warnings):\n{0}")]
    Warnings(crate::diag::Diagnostics),
    #[error("{origin}: {message}")]
    Secret { origin: String, message: String },
    #[error("{0}")]
    Chart(String),
    #[error("resources exist with the names environment `{environment}` would create, but envboot does not own them:\n{list}\n{advice}")]
    Conflict {
        environment: String,
        list: String,
        advice: &'static str,
    },
    #[error("the k3s API server at {endpoint} did not answer /readyz within {seconds}s: {why}")]
    ApiUnreachable {
        endpoint: String,
        seconds: u64,
        why: String,
    },
    #[error("not ready after {seconds}s:\n{report}")]
    NotReady { seconds: u64, report: String },
    #[error("destroy left behind what still carries the environment's tags or labels:\n{list}")]
    Leaked { list: String },
    #[error("the {phase} hook {hook} of release `{release}` did not succeed: {why}")]
    HookFailed {
        release: String,
        phase: String,
        hook: String,
        why: String,
    },
    #[error("cannot write {path}: {source}")]
    Output {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot resolve `${{{reference}}}` for {address}: {reason}")]
    Unresolved {
        address: String,
        reference: String,
        reason: &'static str,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Exit codes, documented in `envboot --help` and the README.
pub mod exit {
    /// Success (with `--detailed-exitcode`: success and no changes).
    pub const OK: u8 = 0;
    /// AWS or Kubernetes failed, or another runtime error.
    pub const FAILED: u8 = 1;
    /// `plan --detailed-exitcode`: success, and there are changes.
    pub const CHANGES: u8 = 2;
    /// The environment is invalid (files, references, templates).
    pub const INVALID: u8 = 3;
    /// The repository or revision cannot be read.
    pub const SOURCE: u8 = 4;
    /// Another run holds the environment's lock.
    pub const LOCKED: u8 = 5;
    /// The command line is wrong.
    pub const USAGE: u8 = 64;
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Source(_) => exit::SOURCE,
            Error::Model(_)
            | Error::Render(_)
            | Error::Warnings(_)
            | Error::Secret { .. }
            | Error::Chart(_) => exit::INVALID,
            Error::Kube(kube::Error::Locked { .. }) => exit::LOCKED,
            Error::Aws(_)
            | Error::Kube(_)
            | Error::Unresolved { .. }
            | Error::Output { .. }
            | Error::Leaked { .. }
            | Error::HookFailed { .. }
            | Error::NotReady { .. }
            | Error::ApiUnreachable { .. }
            | Error::Conflict { .. } => exit::FAILED,
        }
    }
}

/// Where to read the environment from.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// Local path or URL of the Git repository.
    pub repo: String,
    /// Branch, tag or commit.
    pub revision: String,
    /// Treat warnings (e.g. SSH open to the internet) as errors.
    pub deny_warnings: bool,
}

/// An environment read from Git and rendered: everything that needs no server.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub snapshot: Snapshot,
    pub env: Environment,
    pub manifests: Vec<Manifest>,
    /// Helm hooks of the releases, run at their phases by apply.
    pub hooks: Vec<Manifest>,
    /// A k3s cluster's credentials, decrypted (in memory only).
    pub credentials: Option<k3s::Credentials>,
}

/// Reads, validates and renders environment `name`. Makes no call to AWS or Kubernetes.
pub fn load(options: &SourceOptions, name: &str) -> Result<Loaded> {
    let (snapshot, env) = read_model(options, name)?;
    decrypt_and_render(snapshot, env)
}

/// The commit and the environment's model, checked; warnings are errors if asked.
fn read_model(options: &SourceOptions, name: &str) -> Result<(Snapshot, Environment)> {
    let snapshot = source::read(&options.repo, &options.revision)?;
    let env = model::load(&snapshot, name)?;
    if options.deny_warnings && !env.warnings.is_empty() {
        return Err(Error::Warnings(env.warnings));
    }
    Ok((snapshot, env))
}

/// Decrypts the environment's secrets and k3s credentials (in memory) and renders it.
fn decrypt_and_render(snapshot: Snapshot, mut env: Environment) -> Result<Loaded> {
    let secrets = decrypt_secrets(&env)?;
    let credentials = k3s_user_data(&mut env)?;
    let (manifests, hooks) = render::render_with_hooks(&env, &secrets)?;
    Ok(Loaded {
        snapshot,
        env,
        manifests,
        hooks,
        credentials,
    })
}

/// What [`validate`] found.
pub struct Validated {
    pub loaded: Loaded,
    /// False when no age identity was given: encrypted files were checked to be encrypted,
    /// their content was not.
    pub decrypted: bool,
}

/// Like [`load`], for `validate`: without an age identity (a pull request's CI without the
/// key, say), encrypted files are not decrypted instead of failing: the files, references and
/// templates are still checked, with a placeholder where a secret's value would go.
pub fn validate(options: &SourceOptions, name: &str) -> Result<Validated> {
    let (snapshot, env) = read_model(options, name)?;
    let encrypted =
        !env.secrets.is_empty() || env.cluster.as_ref().is_some_and(|c| c.k3s.is_some());
    let no_identity = matches!(
        crate::secrets::identities_from_env(),
        Err(crate::secrets::Error::NoIdentity)
    );
    if !encrypted || !no_identity {
        return Ok(Validated {
            loaded: decrypt_and_render(snapshot, env)?,
            decrypted: true,
        });
    }
    // Every key the releases take from a secret, with a placeholder value.
    let mut referenced: Vec<(String, String)> = Vec::new();
    for r in &env.releases {
        let mut found = Vec::new();
        model::refs::collect(&r.inline_values, "", &mut found);
        for (_, expr) in found {
            if let ["secret", secret, key] = expr.split('.').collect::<Vec<_>>()[..] {
                referenced.push((secret.to_string(), key.to_string()));
            }
        }
    }
    let secrets: Vec<render::SecretData> = env
        .secrets
        .iter()
        .map(|s| render::SecretData {
            name: s.name.clone(),
            namespace: s.namespace.clone(),
            file: s.file.clone(),
            data: referenced
                .iter()
                .filter(|(name, _)| *name == s.name)
                .map(|(_, key)| (key.clone(), "(not decrypted)".to_string()))
                .collect(),
        })
        .collect();
    let (manifests, hooks) = render::render_with_hooks(&env, &secrets)?;
    Ok(Validated {
        loaded: Loaded {
            snapshot,
            env,
            manifests,
            hooks,
            credentials: None,
        },
        decrypted: false,
    })
}

/// Decrypts the environment's secrets in memory. Asks for the identity only when there are any.
pub(crate) fn decrypt_secrets(env: &Environment) -> Result<Vec<render::SecretData>> {
    if env.secrets.is_empty() {
        return Ok(Vec::new());
    }
    let identities = crate::secrets::identities_from_env().map_err(|e| Error::Secret {
        origin: env.secrets[0].origin.clone(),
        message: e.to_string(),
    })?;
    env.secrets
        .iter()
        .map(|s| {
            let failed = |message: String| Error::Secret {
                origin: s.origin.clone(),
                message: format!("{}: {message}", s.file),
            };
            let plaintext = crate::secrets::decrypt(&s.ciphertext, &identities)
                .map_err(|e| failed(e.to_string()))?;
            // Never echo the content: a parse error could quote it.
            let data: std::collections::BTreeMap<String, String> =
                serde_yaml_ng::from_slice(&plaintext).map_err(|_| {
                    failed(
                        "the decrypted content is not a YAML map of names to string values".into(),
                    )
                })?;
            crate::secrets::register_sensitive(data.values().map(String::as_str));
            Ok(render::SecretData {
                name: s.name.clone(),
                namespace: s.namespace.clone(),
                file: s.file.clone(),
                data,
            })
        })
        .collect()
}

/// How long a lock lives without renewal (a crashed run's lock expires after this).
pub const LOCK_DURATION: Duration = Duration::from_secs(60);

/// Takes the environment's lock (a Lease in its cluster) so that two runs never change it at
/// once; fails at once naming the holder. Environments without a cluster are not locked.
pub async fn lock(loaded: &Loaded, holder: &str) -> Result<Option<kube::lock::LockGuard>> {
    let Some(cluster) = &loaded.env.cluster else {
        return Ok(None);
    };
    let k = if cluster.k3s.is_some() {
        // A k3s cluster's API exists only once its server runs: before that, nothing is locked
        // (creations carry client tokens, so two first runs still make one of each).
        let Some(endpoint) = k3s_live_endpoint(loaded).await? else {
            return Ok(None);
        };
        match k3s_ready_client(loaded, &endpoint).await? {
            Ok(k) => k,
            Err(_) => return Ok(None),
        }
    } else {
        Kube::connect(cluster.context.as_deref()).await?
    };
    Ok(Some(k.lock(&loaded.env.name, holder, LOCK_DURATION).await?))
}

/// Who runs: `envboot <command> (user@host, pid N)`, shown to a second run that finds the lock.
pub fn holder(command: &str) -> String {
    kube::lock::holder_identity(command)
}

/// What to converge to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// Make the live environment match Git.
    Apply,
    /// Remove everything the environment owns.
    Destroy,
}

/// The plan for one environment, with the connections that will carry it out.
pub struct Plan {
    pub environment: String,
    pub commit: String,
    pub goal: Goal,
    pub aws: Vec<AwsChange>,
    pub kube: Vec<KubeChange>,
    aws_client: Aws,
    kube_client: Option<Kube>,
    /// The inventory the cluster holds (what the last apply left), if any.
    pub inventory: Option<kube::inventory::Inventory>,
    /// Each release's `dependsOn` and readiness timeout.
    releases: ReleaseOrder,
    /// The releases' Helm hooks: (release, object placed and resolved), run at their phases.
    hooks: Vec<(String, serde_json::Value)>,
    options: PlanOptions,
    /// Why the Kubernetes layer is not planned against the cluster (a k3s cluster whose API
    /// server this run creates or that does not answer yet). Apply plans it once the API
    /// server answers; `kube` holds the declared objects as creations until then.
    pub pending: Option<String>,
    /// What apply plans the Kubernetes layer from when it is pending.
    deferred: Option<Box<Loaded>>,
    /// The client apply reached a pending cluster with (for its call counts).
    cluster_client: std::sync::OnceLock<Kube>,
}

/// Objects to wait for: (apiVersion, key).
type Targets = Vec<(String, ObjectKey)>;

/// Release name to its `dependsOn` and readiness timeout.
type ReleaseOrder = BTreeMap<String, (Vec<String>, Option<Duration>)>;

/// How long a release that others depend on may take to become ready, unless it says.
pub const RELEASE_TIMEOUT: Duration = Duration::from_secs(300);

/// The release a rendered object belongs to.
fn release_of(c: &KubeChange) -> Option<&str> {
    c.desired.as_ref()?["metadata"]["labels"][render::LABEL_RELEASE].as_str()
}

/// Each release's wave: 0 without `dependsOn`, else one more than the latest it depends on.
fn release_waves(
    releases: &BTreeMap<String, (Vec<String>, Option<Duration>)>,
) -> BTreeMap<&str, usize> {
    fn wave<'a>(
        name: &'a str,
        releases: &'a ReleaseOrder,
        memo: &mut BTreeMap<&'a str, usize>,
        depth: usize,
    ) -> usize {
        if let Some(w) = memo.get(name) {
            return *w;
        }
        // Validation rejects cycles; the depth bound only guards against a bug.
        let w = match releases.get_key_value(name) {
            Some((_, (deps, _))) if depth < releases.len() => deps
                .iter()
                .filter_map(|d| releases.get_key_value(d.as_str()))
                .map(|(d, _)| wave(d, releases, memo, depth + 1) + 1)
                .max()
                .unwrap_or(0),
            _ => 0,
        };
        memo.insert(name, w);
        w
    }
    let mut memo = BTreeMap::new();
    for name in releases.keys() {
        wave(name, releases, &mut memo, 0);
    }
    memo
}

impl Plan {
    pub fn changes(&self) -> impl Iterator<Item = &Change> + Clone {
        self.aws
            .iter()
            .map(|c| &c.change)
            .chain(self.kube.iter().map(|c| &c.change))
    }

    pub fn summary(&self) -> Summary {
        Summary::of(self.changes())
    }

    /// The plan as JSON (`envboot.dev/plan/v1`, see docs/plan-json.md).
    pub fn to_json(&self) -> String {
        let changes = self
            .aws
            .iter()
            .map(|c| plan::json::Change::new("aws", &c.change, c.id.as_deref()))
            .chain(
                self.kube
                    .iter()
                    .map(|c| plan::json::Change::new("kubernetes", &c.change, None)),
            )
            .collect();
        let doc = plan::json::Plan {
            format_version: plan::json::FORMAT_VERSION,
            environment: &self.environment,
            commit: &self.commit,
            goal: match self.goal {
                Goal::Apply => "apply",
                Goal::Destroy => "destroy",
            },
            summary: self.summary().into(),
            changes,
            kubernetes_pending: self.pending.as_deref(),
        };
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    }

    /// Declared Kubernetes objects that are not ready within `timeout`, as `Kind ns/name: why`.
    pub async fn not_ready(&self, timeout: Duration) -> Result<Vec<String>> {
        let Some(k) = &self.kube_client else {
            return Ok(Vec::new());
        };
        // Objects grouped by how long they may take: their release's `timeout`, or `timeout`.
        let mut groups: BTreeMap<(Duration, Option<&str>), Targets> = BTreeMap::new();
        for c in self.kube.iter().filter(|c| c.desired.is_some()) {
            let release = release_of(c);
            let limit = release
                .and_then(|r| self.releases.get(r))
                .and_then(|(_, t)| *t)
                .unwrap_or(timeout);
            groups
                .entry((limit, release))
                .or_default()
                .push((c.api_version.clone(), c.key.clone()));
        }
        let waits = groups.iter().map(|((limit, release), targets)| async move {
            let pending = k.wait_ready(&self.environment, targets, *limit).await?;
            Ok::<_, Error>(
                pending
                    .into_iter()
                    .map(|(key, why)| match release {
                        Some(r) => {
                            format!("  {key}: {why} (release {r}, within {}s)", limit.as_secs())
                        }
                        None => format!("  {key}: {why}"),
                    })
                    .collect::<Vec<_>>(),
            )
        });
        Ok(futures::future::try_join_all(waits)
            .await?
            .into_iter()
            .flatten()
            .collect())
    }

    /// What is live: the commits that created or last changed each existing resource (with how
    /// many resources carry each), and when envboot last applied a Kubernetes object.
    pub fn live(&self) -> LiveState {
        let mut revisions: std::collections::BTreeMap<String, usize> = Default::default();
        let mut latest: Option<(String, String)> = None;
        for c in &self.aws {
            if let Some(r) = &c.revision {
                *revisions.entry(r.clone()).or_default() += 1;
            }
        }
        for live in self.kube.iter().filter_map(|c| c.live.as_ref()) {
            let Some(r) = live["metadata"]["annotations"][render::ANNOTATION_REVISION].as_str()
            else {
                continue;
            };
            *revisions.entry(r.to_string()).or_default() += 1;
            let applied = live["metadata"]["managedFields"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|m| m["manager"] == kube::FIELD_MANAGER)
                .filter_map(|m| m["time"].as_str())
                .max();
            if let Some(t) = applied {
                if latest.as_ref().is_none_or(|(time, _)| t > time.as_str()) {
                    latest = Some((t.to_string(), r.to_string()));
                }
            }
        }
        if let Some(inv) = &self.inventory {
            return LiveState {
                commit: Some(inv.revision.clone()),
                applied_at: Some(inv.applied_at.clone()),
                revisions,
            };
        }
        let commit = latest.as_ref().map(|(_, r)| r.clone()).or_else(|| {
            revisions
                .iter()
                .max_by_key(|(_, n)| **n)
                .map(|(r, _)| r.clone())
        });
        LiveState {
            commit,
            applied_at: latest.map(|(t, _)| t),
            revisions,
        }
    }

    /// The plan as text, like `terraform plan`.
    pub fn to_text(&self) -> String {
        let mut text = plan::format_changes(self.changes());
        if let Some(why) = &self.pending {
            text.push_str(&format!("\nKubernetes: {why}.\n"));
        }
        text
    }

    /// API calls made so far: (AWS by operation, Kubernetes by method).
    pub fn calls(
        &self,
    ) -> (
        std::collections::BTreeMap<String, u64>,
        std::collections::BTreeMap<String, u64>,
    ) {
        (
            self.aws_client.calls.snapshot(),
            self.kube_client
                .as_ref()
                .or(self.cluster_client.get())
                .map(|k| k.calls.snapshot())
                .unwrap_or_default(),
        )
    }

    /// Calls to AWS so far that may change something.
    pub fn aws_writes(&self) -> u64 {
        self.aws_client.calls.writes()
    }

    /// Requests to Kubernetes so far that may change something.
    pub fn kube_writes(&self) -> u64 {
        self.kube_client
            .as_ref()
            .or(self.cluster_client.get())
            .map_or(0, |k| k.calls.writes())
    }
}

/// How to plan and apply.
#[derive(Debug, Clone, Copy)]
pub struct PlanOptions {
    /// Take over fields that another field manager owns in Kubernetes objects.
    pub force_conflicts: bool,
    /// After applying, wait at most this long for every Kubernetes object to be ready.
    pub wait: Option<Duration>,
    /// Take over AWS resources that are named like the environment's but not tagged as its own.
    pub adopt: bool,
    /// At most this many AWS calls and Kubernetes writes at once (default 8).
    pub parallelism: usize,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            force_conflicts: false,
            wait: None,
            adopt: false,
            parallelism: DEFAULT_PARALLELISM,
        }
    }
}

/// How many changes run at once unless `--parallelism` says.
pub const DEFAULT_PARALLELISM: usize = 8;

impl Plan {
    /// The bound on concurrent changes.
    fn parallelism(&self) -> usize {
        self.options.parallelism.max(1)
    }
}

/// Computes the plan: reads what exists (by tags and labels) and compares it with Git.
/// Kubernetes updates are confirmed by a server-side dry run, so defaulted or normalised
/// fields are never reported as changes. Never writes.
/// What the Kubernetes layer's plan finds: changes, the inventory, the hooks.
type KubePlan = (
    Vec<KubeChange>,
    Option<kube::inventory::Inventory>,
    Vec<(String, serde_json::Value)>,
);

/// Plans the Kubernetes layer against the cluster `k`, with the AWS attributes `known` so far.
async fn plan_kube(
    loaded: &Loaded,
    goal: Goal,
    options: PlanOptions,
    k: &Kube,
    known: &HashMap<String, String>,
) -> Result<KubePlan> {
    let env = &loaded.env;
    let mut desired = Vec::new();
    let mut kinds = BTreeSet::new();
    // Kinds that CRDs of this environment define: the cluster may not serve them yet.
    let defined = crd_kinds(&loaded.manifests);
    for m in &loaded.manifests {
        let kind = (m.api_version().to_string(), m.kind().to_string());
        let mut object = resolve_object(&m.object, known);
        match (
            k.place(&mut object, m.default_namespace.as_deref()).await,
            defined.get(&kind),
        ) {
            (Ok(()), _) => {}
            (Err(kube::Error::UnknownKind { .. }), Some(namespaced)) => {
                if *namespaced && object["metadata"]["namespace"].is_null() {
                    if let Some(ns) = &m.default_namespace {
                        object["metadata"]["namespace"] = serde_json::json!(ns);
                    }
                }
            }
            (Err(e), _) => return Err(e.into()),
        }
        if !defined.contains_key(&kind) {
            kinds.insert(kind);
        }
        desired.push(object);
    }
    // The inventory names the kinds applied before; without one, every listable kind is
    // searched for the environment's labels.
    let inventory = k.read_inventory(&env.name).await?;
    // Destroy always searches every kind: nothing labelled may be left behind.
    let mut extra = match (&inventory, goal) {
        (Some(inv), Goal::Apply) => inv.kinds(),
        _ => k.listable_kinds().await?,
    };
    extra.extend(defined.keys().cloned());
    let mut live = k.discover(&env.name, &kinds, &extra).await?;
    register_live_secrets(&live);
    // Hooks left from earlier runs are not part of the release: only destroy removes them.
    if goal == Goal::Apply {
        live.retain(|o| !render::is_hook(o));
    }
    let mut hooks = Vec::new();
    for m in &loaded.hooks {
        let mut object = resolve_object(&m.object, known);
        // A kind the cluster does not serve yet is reported when the hook is applied.
        let _ = k.place(&mut object, m.default_namespace.as_deref()).await;
        let release = object["metadata"]["labels"][render::LABEL_RELEASE]
            .as_str()
            .unwrap_or_default()
            .to_string();
        hooks.push((release, object));
    }
    let foreign = k.foreign_namespaces(&env.name).await?;
    let desired = match goal {
        Goal::Apply => desired,
        Goal::Destroy => Vec::new(),
    };
    let mut changes = kube::diff::diff(&desired, &live, &foreign);
    for c in changes
        .iter_mut()
        .filter(|c| c.change.action == Action::Update)
    {
        let (Some(object), Some(live)) = (&c.desired, &c.live) else {
            continue;
        };
        if has_references(object) {
            // Only apply can tell: an AWS resource it refers to is still to be created.
            for f in &mut c.change.fields {
                if f.after.as_deref().is_some_and(|a| a.contains("${")) {
                    f.after = Some(plan::KNOWN_AFTER_APPLY.to_string());
                }
            }
            continue;
        }
        let (result, heals_drift) = k
            .dry_run(
                &c.api_version,
                &c.key,
                object,
                live,
                options.force_conflicts,
            )
            .await?;
        c.force = heals_drift;
        c.change.fields = kube::diff::dry_run_changes(&result, live);
        kube::diff::mask(&c.key.kind, &mut c.change.fields);
        if c.change.fields.is_empty() {
            c.change.action = Action::NoOp;
        }
    }
    Ok((changes, inventory, hooks))
}

pub async fn plan(loaded: &Loaded, goal: Goal, options: PlanOptions) -> Result<Plan> {
    let env = &loaded.env;
    let aws_client = Aws::connect(&env.region)
        .await
        .with_cluster(env.cluster.as_ref().map(|c| c.name.clone()));
    let desired_resources = match goal {
        Goal::Apply => env.resources.as_slice(),
        Goal::Destroy => &[],
    };
    // AWS first: Kubernetes values may refer to AWS attributes (`${module.network.vpc_id}`).
    let aws_changes = aws_client
        .plan(&env.name, desired_resources, options.adopt)
        .await?;
    let known = known_attributes(&aws_changes);
    let (kube_client, pending) = match &env.cluster {
        None => (None, None),
        Some(c) if c.k3s.is_none() => (Some(Kube::connect(c.context.as_deref()).await?), None),
        Some(_) => k3s_access(loaded, goal, &aws_changes).await?,
    };
    let (kube_changes, inventory, hooks) = match (&kube_client, &pending) {
        (Some(k), _) => plan_kube(loaded, goal, options, k, &known).await?,
        (None, Some(_)) if goal == Goal::Apply => {
            (pending_creates(loaded, &known), None, Vec::new())
        }
        _ => (Vec::new(), None, Vec::new()),
    };
    let deferred = (pending.is_some() && goal == Goal::Apply).then(|| Box::new(loaded.clone()));
    Ok(Plan {
        environment: env.name.clone(),
        commit: env.commit.clone(),
        goal,
        aws: aws_changes,
        kube: kube_changes,
        aws_client,
        kube_client,
        inventory,
        hooks,
        releases: env
            .releases
            .iter()
            .map(|r| (r.name.clone(), (r.depends_on.clone(), r.timeout)))
            .collect(),
        options,
        pending,
        deferred,
        cluster_client: std::sync::OnceLock::new(),
    })
}

/// What is live, as found by tags and labels.
#[derive(Debug, Clone, Default)]
pub struct LiveState {
    /// The commit of the most recent apply: from the cluster's inventory; without one, by the
    /// Kubernetes managedFields time, else the commit most resources carry.
    pub commit: Option<String>,
    /// When envboot last applied a Kubernetes object (RFC 3339).
    pub applied_at: Option<String>,
    /// Commit to the number of resources it created or last changed.
    pub revisions: std::collections::BTreeMap<String, usize>,
}

/// The values of the environment's live Secrets are as sensitive as the new ones (a rotated
/// password must not show as the `before` of a change).
fn register_live_secrets(live: &[serde_json::Value]) {
    use base64::Engine;
    let decode = |v: &serde_json::Value| {
        v.as_str()
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
            .and_then(|b| String::from_utf8(b).ok())
    };
    for object in live.iter().filter(|o| o["kind"] == "Secret") {
        if let Some(data) = object["data"].as_object() {
            let values: Vec<String> = data.values().filter_map(decode).collect();
            crate::secrets::register_sensitive(values.iter().map(String::as_str));
        }
    }
}

/// Attributes of the AWS resources that stay (`network.vpc.id` to `vpc-123`).
fn known_attributes(changes: &[AwsChange]) -> HashMap<String, String> {
    changes
        .iter()
        .filter(|c| matches!(c.change.action, Action::NoOp | Action::Update))
        .flat_map(|c| {
            c.attributes
                .iter()
                .map(move |(attr, value)| (format!("{}.{attr}", c.change.address), value.clone()))
        })
        .collect()
}

/// `object` with every known `${address.attribute}` replaced by its value.
fn resolve_object(
    object: &serde_json::Value,
    known: &HashMap<String, String>,
) -> serde_json::Value {
    let mut v = object.clone();
    model::refs::substitute(&mut v, &mut |expr| {
        known
            .get(expr)
            .map(|s| serde_json::Value::String(s.clone()))
    });
    v
}

/// Whether a string in `object` still holds a reference.
fn has_references(object: &serde_json::Value) -> bool {
    first_reference(object).is_some()
}

/// The first reference (`network.vpc.id`) still in a string of `object`.
fn first_reference(object: &serde_json::Value) -> Option<String> {
    let mut found = Vec::new();
    model::refs::collect(object, "", &mut found);
    found.into_iter().next().map(|(_, expr)| expr)
}

/// What one executed step did, for progress output.
#[derive(Debug, Clone)]
pub struct Step<'a> {
    pub change: &'a Change,
    /// The action carried out (a replacement is reported as its delete and its create).
    pub action: Action,
    /// The AWS id, where there is one.
    pub id: Option<String>,
    /// Anything the user should know (e.g. a namespace kept because it holds other objects).
    pub note: Option<String>,
}

/// The outcome of apply or destroy.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub summary: Summary,
    pub elapsed: Duration,
    pub notes: Vec<String>,
    /// Namespaces destroy kept because they hold objects envboot does not own.
    pub kept: Vec<String>,
}

/// What still carries the environment's tags (AWS, one Describe per type) or labels
/// (Kubernetes) after a destroy, as `kind address`; namespaces in `kept` (kept on purpose
/// because they hold objects envboot does not own) are left out.
pub async fn leaks(loaded: &Loaded, options: PlanOptions, kept: &[String]) -> Result<Vec<String>> {
    let plan = plan(loaded, Goal::Destroy, options).await?;
    Ok(plan
        .changes()
        .filter(|c| c.action == Action::Delete)
        .filter(|c| !(c.kind == "Namespace" && kept.contains(&c.address)))
        .map(|c| format!("{} {}", c.kind, c.address))
        .collect())
}

/// Carries out `plan`, calling `progress` after each step.
///
/// Order: for apply, AWS deletions (including the old half of replacements, by deletion rank,
/// parallel within a rank), then AWS creations and updates along the dependency graph (in
/// parallel where independent, at most `--parallelism` at once), then Kubernetes objects in
/// install order, then Kubernetes objects no longer declared. For destroy, Kubernetes first,
/// then AWS. A plan with a conflict changes nothing.
///
/// # Errors
/// The first failing call stops the run; rerunning apply continues from what exists.
pub async fn apply(plan: &Plan, progress: &mut dyn FnMut(Step<'_>)) -> Result<Report> {
    let started = Instant::now();
    let mut notes = Vec::new();
    let mut kept = Vec::new();
    aws::check_conflicts(&plan.aws)?;
    if plan.goal == Goal::Destroy {
        kube_deletes(plan, progress, &mut notes, &mut kept).await?;
        if let Some(k) = &plan.kube_client {
            k.delete_inventory(&plan.environment).await?;
        }
    }
    aws_deletes(plan, progress).await?;
    let known = aws_creates(plan, progress).await?;
    let summary = match plan.deferred.as_deref() {
        Some(loaded) if plan.goal == Goal::Apply => {
            // The cluster's API server runs now (or soon): plan its layer against it.
            let cluster = k3s_plan(plan, loaded, &known, progress).await?;
            if let Some(k) = &cluster.kube_client {
                let _ = plan.cluster_client.set(k.clone());
            }
            kube_phase(&cluster, &known, progress, &mut notes, &mut kept).await?;
            Summary::of(
                plan.aws
                    .iter()
                    .map(|c| &c.change)
                    .chain(cluster.kube.iter().map(|c| &c.change)),
            )
        }
        _ => {
            kube_phase(plan, &known, progress, &mut notes, &mut kept).await?;
            plan.summary()
        }
    };
    Ok(Report {
        summary,
        elapsed: started.elapsed(),
        notes,
        kept,
    })
}

/// The Kubernetes part of apply: objects in install order and waves, hooks, deletions of what
/// is no longer declared, the inventory, and the readiness wait.
async fn kube_phase(
    plan: &Plan,
    known: &HashMap<String, String>,
    progress: &mut dyn FnMut(Step<'_>),
    notes: &mut Vec<String>,
    kept: &mut Vec<String>,
) -> Result<()> {
    // Kubernetes objects, in install order: kinds one after the other (namespaces before what
    // lives in them), objects of one kind concurrently, at most `--parallelism` at once.
    // Releases with `dependsOn` go in waves: a wave starts once the releases it depends on
    // are applied and ready.
    if let Some(k) = &plan.kube_client {
        let waves = release_waves(&plan.releases);
        let wave_of = |c: &KubeChange| {
            release_of(c)
                .and_then(|r| waves.get(r))
                .copied()
                .unwrap_or(0)
        };
        let last = waves.values().copied().max().unwrap_or(0);
        for wave in 0..=last {
            if wave > 0 {
                wait_for_dependencies(plan, k, &waves, wave).await?;
            }
            let in_wave: Vec<&str> = plan
                .releases
                .keys()
                .map(String::as_str)
                .filter(|r| waves.get(r) == Some(&wave))
                .collect();
            // Pre-hooks run once the namespaces exist, before anything else of the wave.
            let mut pre_done = plan.goal != Goal::Apply;
            let applies: Vec<&KubeChange> = plan
                .kube
                .iter()
                .filter(|c| {
                    matches!(c.change.action, Action::Create | Action::Update)
                        && c.desired.is_some()
                        && wave_of(c) == wave
                })
                .collect();
            for group in applies
                .chunk_by(|a, b| render::kind_rank(&a.key.kind) == render::kind_rank(&b.key.kind))
            {
                if !pre_done && group.first().is_some_and(|c| c.key.kind != "Namespace") {
                    run_hooks(plan, k, &in_wave, "pre", notes).await?;
                    pre_done = true;
                }
                let force = plan.options.force_conflicts;

                let mut done = futures::stream::iter(group.iter().copied())
                    .map(|c| async move {
                        let desired = c.desired.as_ref().unwrap_or(&serde_json::Value::Null);
                        let object = resolve_object(desired, known);
                        if let Some(reference) = first_reference(&object) {
                            return Err(Error::Unresolved {
                                address: c.key.to_string(),
                                reference,
                                reason: "the AWS resource it refers to does not exist",
                            });
                        }
                        k.apply(&c.api_version, &c.key, &object, force || c.force)
                            .await
                            .map(|()| c)
                            .map_err(Error::from)
                    })
                    .buffer_unordered(plan.parallelism());
                while let Some(result) = done.next().await {
                    let c = result?;
                    progress(Step {
                        change: &c.change,
                        action: c.change.action,
                        id: None,
                        note: None,
                    });
                }
                // Custom resources come later in the install order: their CRDs must be served first.
                let crds: Vec<(String, ObjectKey)> = group
                    .iter()
                    .filter(|c| c.key.kind == "CustomResourceDefinition")
                    .map(|c| (c.api_version.clone(), c.key.clone()))
                    .collect();
                if !crds.is_empty() {
                    let pending = k.wait_ready(&plan.environment, &crds, CRD_TIMEOUT).await?;
                    if !pending.is_empty() {
                        return Err(Error::NotReady {
                            seconds: CRD_TIMEOUT.as_secs(),
                            report: pending
                                .iter()
                                .map(|(key, why)| format!("  {key}: {why}"))
                                .collect::<Vec<_>>()
                                .join("\n"),
                        });
                    }
                }
            }
            if !pre_done {
                run_hooks(plan, k, &in_wave, "pre", notes).await?;
            }
            if plan.goal == Goal::Apply {
                run_hooks(plan, k, &in_wave, "post", notes).await?;
            }
        }
    }
    if plan.goal == Goal::Apply {
        kube_deletes(plan, progress, notes, kept).await?;
        record_inventory(plan).await?;
        if let Some(timeout) = plan.options.wait {
            let not_ready = plan.not_ready(timeout).await?;
            if !not_ready.is_empty() {
                return Err(Error::NotReady {
                    seconds: timeout.as_secs(),
                    report: not_ready.join("\n"),
                });
            }
        }
    }
    Ok(())
}

/// A hook due in this run: (weight, kind, name, release, phase, object, delete policies).
type DueHook<'a> = (
    i64,
    String,
    String,
    &'a str,
    String,
    &'a serde_json::Value,
    Vec<String>,
);

/// Runs the Helm hooks of `releases` for phase `when` (`pre` or `post`): `-install` for a
/// release that did not exist, `-upgrade` for one that changes; none for an unchanged release,
/// so a second run does nothing. In Helm's order (weight, then kind and name), one at a time:
/// the old one deleted first (`before-hook-creation`), applied, Jobs and Pods waited for within
/// the release's timeout; `hook-succeeded` / `hook-failed` delete it afterwards.
async fn run_hooks(
    plan: &Plan,
    k: &Kube,
    releases: &[&str],
    when: &str,
    notes: &mut Vec<String>,
) -> Result<()> {
    let mut due: Vec<DueHook<'_>> = Vec::new();
    for release in releases {
        let changes: Vec<&KubeChange> = plan
            .kube
            .iter()
            .filter(|c| release_of(c) == Some(*release))
            .collect();
        let changed = changes
            .iter()
            .any(|c| matches!(c.change.action, Action::Create | Action::Update));
        if !changed {
            continue;
        }
        let new = changes.iter().all(|c| c.change.action == Action::Create);
        let phase = format!("{when}-{}", if new { "install" } else { "upgrade" });
        for (r, object) in plan.hooks.iter().filter(|(r, _)| r == release) {
            let (events, weight, policies) = render::hook_spec(object);
            if events.contains(&phase) {
                let key = ObjectKey::of(object);
                due.push((
                    weight,
                    key.kind,
                    key.name,
                    r.as_str(),
                    phase.clone(),
                    object,
                    policies,
                ));
            }
        }
    }
    due.sort_by(|a, b| (a.0, &a.1, &a.2).cmp(&(b.0, &b.1, &b.2)));
    for (_, _, _, release, phase, object, policies) in due {
        let key = ObjectKey::of(object);
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let timeout = plan
            .releases
            .get(release)
            .and_then(|(_, t)| *t)
            .unwrap_or(RELEASE_TIMEOUT);
        if policies.iter().any(|p| p == "before-hook-creation") {
            k.delete(api_version, &key, &plan.environment).await?;
            k.wait_deleted(api_version, &key, KUBE_DELETE_TIMEOUT)
                .await?;
        }
        k.apply(api_version, &key, object, true).await?;
        let pending = if matches!(key.kind.as_str(), "Job" | "Pod") {
            let target = [(api_version.to_string(), key.clone())];
            k.wait_ready(&plan.environment, &target, timeout).await?
        } else {
            Vec::new()
        };
        if let Some((_, why)) = pending.first() {
            if policies.iter().any(|p| p == "hook-failed") {
                k.delete(api_version, &key, &plan.environment).await?;
            }
            return Err(Error::HookFailed {
                release: release.to_string(),
                phase,
                hook: key.to_string(),
                why: why.clone(),
            });
        }
        if policies.iter().any(|p| p == "hook-succeeded") {
            k.delete(api_version, &key, &plan.environment).await?;
        }
        notes.push(format!("hook {key} ({phase} of release {release}) done"));
    }
    Ok(())
}

/// Waits until every release of an earlier wave that a release of `wave` depends on is ready,
/// each for its own timeout.
async fn wait_for_dependencies(
    plan: &Plan,
    k: &Kube,
    waves: &BTreeMap<&str, usize>,
    wave: usize,
) -> Result<()> {
    let needed: BTreeMap<&str, Vec<&str>> = plan
        .releases
        .iter()
        .filter(|(name, _)| waves.get(name.as_str()) == Some(&wave))
        .flat_map(|(name, (deps, _))| deps.iter().map(move |d| (d.as_str(), name.as_str())))
        .fold(BTreeMap::new(), |mut m, (dep, by)| {
            m.entry(dep).or_insert_with(Vec::new).push(by);
            m
        });
    for (dependency, dependents) in needed {
        if waves.get(dependency).is_none_or(|w| *w >= wave) {
            continue;
        }
        let targets: Vec<(String, ObjectKey)> = plan
            .kube
            .iter()
            .filter(|c| release_of(c) == Some(dependency))
            .map(|c| (c.api_version.clone(), c.key.clone()))
            .collect();
        let timeout = plan
            .releases
            .get(dependency)
            .and_then(|(_, t)| *t)
            .unwrap_or(RELEASE_TIMEOUT);
        let pending = k.wait_ready(&plan.environment, &targets, timeout).await?;
        if !pending.is_empty() {
            return Err(Error::NotReady {
                seconds: timeout.as_secs(),
                report: format!(
                    "release `{dependency}` (which {} depends on) is not ready:\n{}",
                    dependents.join(", "),
                    pending
                        .iter()
                        .map(|(key, why)| format!("  {key}: {why}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            });
        }
    }
    Ok(())
}

/// (apiVersion, kind) of every version of every kind the rendered CRDs define, and whether
/// it is namespaced.
fn crd_kinds(manifests: &[render::Manifest]) -> BTreeMap<(String, String), bool> {
    let mut out = BTreeMap::new();
    for m in manifests
        .iter()
        .filter(|m| m.kind() == "CustomResourceDefinition")
    {
        let spec = &m.object["spec"];
        let (Some(group), Some(kind)) = (spec["group"].as_str(), spec["names"]["kind"].as_str())
        else {
            continue;
        };
        let namespaced = spec["scope"].as_str() != Some("Cluster");
        for v in spec["versions"].as_array().into_iter().flatten() {
            if let Some(version) = v["name"].as_str() {
                out.insert((format!("{group}/{version}"), kind.to_string()), namespaced);
            }
        }
    }
    out
}

/// How long to wait for applied CRDs to be Established before applying their resources.
const CRD_TIMEOUT: Duration = Duration::from_secs(60);

/// After an apply: the inventory lists what the environment now has in its cluster, the
/// commit and the time. Written only when something changed, so a second run writes nothing.
async fn record_inventory(plan: &Plan) -> Result<()> {
    let Some(k) = &plan.kube_client else {
        return Ok(());
    };
    let mut inventory = kube::inventory::Inventory {
        revision: plan.commit.clone(),
        applied_at: kube::inventory::now(),
        groups: BTreeMap::new(),
    };
    for c in &plan.kube {
        if let Some(desired) = &c.desired {
            inventory
                .groups
                .entry(kube::inventory::group_of(desired))
                .or_default()
                .insert(kube::inventory::Entry {
                    api_version: c.api_version.clone(),
                    key: c.key.clone(),
                });
        }
    }
    let unchanged = plan
        .inventory
        .as_ref()
        .is_some_and(|old| old.same_content(&inventory))
        && !plan.summary().has_changes();
    if !unchanged {
        k.write_inventory(&plan.environment, &inventory).await?;
    }
    Ok(())
}

/// AWS deletions (including the old half of replacements) by deletion rank: every resource of
/// a rank waits for all of the lower ranks; resources of one rank are deleted in parallel.
async fn aws_deletes(plan: &Plan, progress: &mut dyn FnMut(Step<'_>)) -> Result<()> {
    let deletions: Vec<&AwsChange> = plan
        .aws
        .iter()
        .filter(|c| matches!(c.change.action, Action::Delete | Action::Replace) && c.id.is_some())
        .collect();
    let deps: Vec<Vec<usize>> = deletions
        .iter()
        .map(|c| {
            let rank = c.rtype.delete_rank();
            (0..deletions.len())
                .filter(|&j| deletions[j].rtype.delete_rank() < rank)
                .collect()
        })
        .collect();
    let ctx = aws::DeleteContext::new(&plan.aws);
    let (ctx, client) = (&ctx, &plan.aws_client);
    envboot_core::executor::run(
        &deps,
        plan.parallelism(),
        |i| {
            let c = deletions[i];
            Ok(Some(Box::pin(async move {
                client.delete(c, ctx).await.map_err(Error::from)
            })))
        },
        |i, ()| {
            let c = deletions[i];
            progress(Step {
                change: &c.change,
                action: Action::Delete,
                id: c.id.clone(),
                note: None,
            });
        },
    )
    .await
}

/// AWS creations and updates along the dependency graph: a resource starts once everything it
/// refers to exists; independent ones run in parallel.
async fn aws_creates(
    plan: &Plan,
    progress: &mut dyn FnMut(Step<'_>),
) -> Result<HashMap<String, String>> {
    let nodes: Vec<&AwsChange> = plan.aws.iter().filter(|c| c.desired.is_some()).collect();
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.change.address.as_str(), i))
        .collect();
    let deps: Vec<Vec<usize>> = nodes
        .iter()
        .map(|c| {
            c.desired
                .iter()
                .flat_map(|d| d.depends_on.iter())
                .filter_map(|a| index.get(a.as_str()).copied())
                .collect()
        })
        .collect();
    // What is kept or updated in place is known from the start.
    let mut initial: HashMap<String, String> = HashMap::new();
    for c in &nodes {
        if matches!(c.change.action, Action::NoOp | Action::Update) {
            for (attr, value) in &c.attributes {
                initial.insert(format!("{}.{attr}", c.change.address), value.clone());
            }
        }
    }
    let known = std::cell::RefCell::new(initial);
    // Security groups made without the rule sources that did not exist yet: (node, what it
    // was made with).
    let partial: std::cell::RefCell<Vec<(usize, ResourceSpec)>> = Default::default();
    let (known_ref, client, partial_ref) = (&known, &plan.aws_client, &partial);
    envboot_core::executor::run(
        &deps,
        plan.parallelism(),
        |i| {
            let c = nodes[i];
            let action = c.change.action;
            if action == Action::NoOp && aws::needs_settling(c) {
                return Ok(Some(Box::pin(async move {
                    client.settle(c).await?;
                    Ok::<BTreeMap<String, String>, Error>(c.attributes.clone())
                })));
            }
            let Some(desired) = c.desired.as_ref().filter(|_| action != Action::NoOp) else {
                return Ok(None);
            };
            let spec = match aws::diff::resolve_spec(&desired.spec, &known_ref.borrow()) {
                Ok(spec) => spec,
                Err(reference) => {
                    let stripped = (!desired.late.is_empty())
                        .then(|| {
                            aws::diff::without_unknown_sources(&desired.spec, &known_ref.borrow())
                        })
                        .flatten()
                        .ok_or_else(|| Error::Unresolved {
                            address: c.change.address.clone(),
                            reference,
                            reason: "the resource it refers to was not created",
                        })?;
                    partial_ref.borrow_mut().push((i, stripped.clone()));
                    stripped
                }
            };
            Ok(Some(Box::pin(async move {
                if action == Action::Update {
                    client
                        .update(&plan.environment, &plan.commit, c, &spec)
                        .await?;
                    Ok(c.attributes.clone())
                } else {
                    Ok(client
                        .create(&plan.environment, &plan.commit, &c.change.address, &spec)
                        .await?)
                }
            })))
        },
        |i, attributes| {
            let c = nodes[i];
            if c.change.action == Action::NoOp {
                return;
            }
            progress(Step {
                change: &c.change,
                action: if c.change.action == Action::Replace {
                    Action::Create
                } else {
                    c.change.action
                },
                id: attributes.get("id").cloned(),
                note: None,
            });
            let mut known = known.borrow_mut();
            for (attr, value) in attributes {
                known.insert(format!("{}.{attr}", c.change.address), value);
            }
        },
    )
    .await?;
    let known = known.into_inner();
    // Now that every group exists, the rule sources left out.
    for (i, made) in partial.into_inner() {
        let c = nodes[i];
        let address = c.change.address.as_str();
        let (Some(desired), Some(group)) = (&c.desired, known.get(&format!("{address}.id"))) else {
            continue;
        };
        let full = aws::diff::resolve_spec(&desired.spec, &known).map_err(|reference| {
            Error::Unresolved {
                address: address.to_string(),
                reference,
                reason: "the resource it refers to was not created",
            }
        })?;
        if let (ResourceSpec::SecurityGroup(made), ResourceSpec::SecurityGroup(full)) =
            (&made, &full)
        {
            plan.aws_client
                .add_missing_rules(address, group, made, full)
                .await?;
        }
    }
    Ok(known)
}

async fn kube_deletes(
    plan: &Plan,
    progress: &mut dyn FnMut(Step<'_>),
    notes: &mut Vec<String>,
    kept: &mut Vec<String>,
) -> Result<()> {
    let Some(k) = &plan.kube_client else {
        return Ok(());
    };
    let mut deleted_keys = Vec::new();
    for c in plan
        .kube
        .iter()
        .filter(|c| c.change.action == Action::Delete)
    {
        let deleted = k.delete(&c.api_version, &c.key, &plan.environment).await?;
        if deleted {
            deleted_keys.push(c);
        }
        if !deleted {
            kept.push(c.key.address());
        }
        let note = (!deleted).then(|| {
            format!(
                "namespace {} kept: it holds objects that envboot does not own",
                c.key.name
            )
        });
        if let Some(n) = &note {
            notes.push(n.clone());
        }
        progress(Step {
            change: &c.change,
            action: Action::Delete,
            id: None,
            note,
        });
    }
    // Foreground deletion returns before the object is gone; wait for all of them at once, so
    // that what follows (AWS deletions, the next run) sees them gone.
    let waits = futures::stream::iter(deleted_keys)
        .map(|c| async move {
            k.wait_deleted(&c.api_version, &c.key, KUBE_DELETE_TIMEOUT)
                .await
                .map(|gone| (c, gone))
        })
        .buffer_unordered(plan.parallelism() * 4)
        .collect::<Vec<_>>()
        .await;
    for result in waits {
        let (c, gone) = result?;
        if !gone {
            notes.push(format!(
                "{} is still being deleted after {}s",
                c.key,
                KUBE_DELETE_TIMEOUT.as_secs()
            ));
        }
    }
    Ok(())
}

/// How long destroy waits for a Kubernetes object to disappear.
const KUBE_DELETE_TIMEOUT: Duration = Duration::from_secs(120);
