//! Engine: runs the pipeline (source -> model -> render -> plan -> apply) for one environment.
//!
//! # Assumptions
//! Every step of apply is idempotent and safe after a partly finished earlier run: the plan is
//! always computed from what exists now, found by tags and labels, so a rerun after a crash
//! creates only what is missing.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use std::time::{Duration, Instant};

mod apply;
mod cluster;
mod provider;
mod saved;
#[cfg(test)]
mod tests;
pub mod timings;

pub use apply::apply;
pub use saved::{read_plan, save_plan, SavedPlan};

pub(crate) use cluster::k3s_user_data;
pub use cluster::{cluster_init, kubeconfig};
use cluster::{k3s_access, k3s_live_endpoint, k3s_ready_client, pending_creates};
use provider::{CloudDiscovery, ClusterDiscovery};

use crate::aws::{self, Aws, AwsChange};
use crate::k3s;
use crate::kube::{self, Kube, KubeChange, ObjectKey};
use crate::model::{self, Environment};
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
    #[error(transparent)]
    Controller(#[from] crate::controller::Error),
    #[error("warnings are errors (--deny-warnings):\n{0}")]
    Warnings(crate::diag::Diagnostics),
    #[error("{origin}: {message}")]
    Secret { origin: String, message: String },
    #[error("{0}")]
    Chart(String),
    #[error(transparent)]
    Charts(#[from] crate::charts::Error),
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
    #[error("environment `{environment}` declares no cluster to render for: `render` without --cluster renders it as `helm template` does")]
    NoLiveCluster { environment: String },
    #[error("destroy left behind what still carries the environment's tags or labels:\n{list}")]
    Leaked { list: String },
    #[error("stopped before the next change: {why}; another run may hold environment `{environment}` now")]
    LockLost { environment: String, why: String },
    #[error("{0}")]
    File(String),
    #[error("{why}")]
    Refused { why: String },
    #[error("{path}: {why}")]
    SavedPlan { path: String, why: String },
    #[error("{path} is stale: {why}; nothing was changed. Make a new plan and review it.")]
    StalePlan { path: String, why: String },
    #[error("{command} needs approval: run it on a terminal to answer the question, or add --auto-approve (CI, scripts); nothing was changed")]
    NotApproved { command: &'static str },
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
    #[error("release{} {} draw{} random values (randAlphaNum, uuidv4, genCA, ...): plan and apply derive them from the environment's age identity, so that every plan and a rebuild render the same values; set {} or {}", if releases.len() == 1 { "" } else { "s" }, releases.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>().join(", "), if releases.len() == 1 { "s" } else { "" }, crate::secrets::IDENTITY_FILE_VAR, crate::secrets::IDENTITY_VAR)]
    NoRandomnessKey { releases: Vec<String> },
    #[error(
        "the charts' lookups still depended on what earlier lookups found after {rounds} renders"
    )]
    LookupRounds { rounds: usize },
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
    /// Something Git declares exists without the environment's tag or label (nothing was
    /// changed; `--adopt` takes it over).
    pub const CONFLICT: u8 = 6;
    /// A chart cannot be fetched, or what was fetched differs from its digest in the lock.
    pub const CHART: u8 = 7;
    /// The command line is wrong.
    pub const USAGE: u8 = 64;
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Source(_) => exit::SOURCE,
            Error::Charts(_) => exit::CHART,
            Error::Model(_)
            | Error::Render(_)
            | Error::Warnings(_)
            | Error::Secret { .. }
            | Error::NoRandomnessKey { .. }
            | Error::LookupRounds { .. }
            | Error::NoLiveCluster { .. }
            | Error::Chart(_) => exit::INVALID,
            Error::Kube(kube::Error::Undeclared { .. }) => exit::INVALID,
            Error::Kube(kube::Error::Locked { .. })
            | Error::Aws(aws::Error::Locked { .. })
            | Error::LockLost { .. } => exit::LOCKED,
            Error::Kube(kube::Error::Unowned(_)) | Error::Aws(aws::Error::Conflicts(_)) => {
                exit::CONFLICT
            }
            Error::Aws(_)
            | Error::Kube(_)
            | Error::Controller(_)
            | Error::Unresolved { .. }
            | Error::Output { .. }
            | Error::Leaked { .. }
            | Error::SavedPlan { .. }
            | Error::File(_)
            | Error::Refused { .. }
            | Error::StalePlan { .. }
            | Error::NotApproved { .. }
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
    /// The environment's secrets, decrypted (in memory only), for renders against the cluster.
    pub secrets: Vec<render::SecretData>,
    /// What the charts asked of the cluster when rendered without it.
    pub needs: render::Needs,
    /// Why a chart could not be rendered without the cluster (one that needs what `lookup`
    /// finds, as `helm template` cannot render it either); plan and apply render it for the
    /// cluster, where `helm install` renders it.
    pub offline_error: Option<std::sync::Arc<render::Error>>,
}

/// What a render without the cluster knows: the environment's pins, lookups noted but empty
/// (as `helm template`), random values derived from the environment's key when there is one.
pub(crate) fn offline_facts(env: &Environment) -> render::ClusterFacts {
    render::ClusterFacts {
        capabilities: None,
        lookups: Some(std::sync::Arc::default()),
        randomness_key: crate::secrets::randomness_key(&env.name),
        installed: None,
    }
}

/// Reads, validates and renders environment `name`. Makes no call to AWS or Kubernetes.
pub fn load(options: &SourceOptions, name: &str) -> Result<Loaded> {
    let (snapshot, env) = read_model(options, name)?;
    decrypt_and_render(snapshot, env, false)
}

/// [`load`] for the commands that render for the cluster (plan, apply, drift, verify, ...): a
/// chart whose templates fail without the cluster after a `lookup` (one that needs what the
/// lookup finds) is kept in [`Loaded::offline_error`], to be rendered for the cluster.
pub fn load_for_cluster(options: &SourceOptions, name: &str) -> Result<Loaded> {
    let (snapshot, env) = read_model(options, name)?;
    decrypt_and_render(snapshot, env, true)
}

/// The commit and the environment's model, checked; warnings are errors if asked.
fn read_model(options: &SourceOptions, name: &str) -> Result<(Snapshot, Environment)> {
    let mut snapshot = timings::measure("read the commit", || {
        source::read(&options.repo, &options.revision)
    })?;
    let env = timings::measure("charts and the model", || {
        load_with_charts(&mut snapshot, name, &crate::charts::Fetcher::from_env())
    })?;
    if options.deny_warnings && !env.warnings.is_empty() {
        return Err(Error::Warnings(env.warnings));
    }
    Ok((snapshot, env))
}

/// Decrypts the environment's secrets and k3s credentials (in memory) and renders it; a
/// template error is kept for the render against the cluster if `for_cluster`.
fn decrypt_and_render(
    snapshot: Snapshot,
    mut env: Environment,
    for_cluster: bool,
) -> Result<Loaded> {
    let secrets = timings::measure("decrypt", || decrypt_secrets(&env))?;
    let credentials = k3s_user_data(&mut env)?;
    let facts = offline_facts(&env);
    // a template error may come from a lookup's empty answer (only then is it left for the
    // render against the cluster; any other error stops here, before any API call)
    let looked_up = || {
        facts
            .lookups
            .as_ref()
            .is_some_and(|l| !l.unread().is_empty())
    };
    let rendered = timings::measure("render", || render::render_for(&env, &secrets, &facts));
    let (manifests, hooks, needs, offline_error) = match rendered {
        Ok((manifests, hooks, needs)) => (manifests, hooks, needs, None),
        Err(e @ render::Error::ChartFailed { .. }) if for_cluster && looked_up() => (
            Vec::new(),
            Vec::new(),
            render::Needs::default(),
            Some(std::sync::Arc::new(e)),
        ),
        Err(e) => return Err(e.into()),
    };
    Ok(Loaded {
        snapshot,
        env,
        manifests,
        hooks,
        credentials,
        secrets,
        needs,
        offline_error,
    })
}

/// `charts lock`: pins every remote chart environment `name` uses at the commit into its lock
/// file in the working tree (kept where already pinned, unless `upgrade`).
///
/// # Errors
/// The commit or environment cannot be read, or a chart cannot be resolved or fetched.
pub fn lock_charts(
    options: &SourceOptions,
    name: &str,
    upgrade: bool,
) -> Result<(Snapshot, crate::charts::LockReport)> {
    let worktree = local_worktree(options, "lock")?;
    let snapshot = source::read(&options.repo, &options.revision)?;
    let requirements = model::chart_requirements(&snapshot, name)?;
    let fetcher = crate::charts::Fetcher::from_env();
    let report = crate::charts::lock(&worktree, &snapshot, &requirements, name, upgrade, &fetcher)?;
    Ok((snapshot, report))
}

/// `charts vendor`: copies every archive the committed lock of environment `name` pins into
/// `vendor/charts/` of the working tree.
///
/// # Errors
/// The commit cannot be read, or an archive cannot be fetched or differs from its digest.
pub fn vendor_charts(
    options: &SourceOptions,
    name: &str,
) -> Result<(Snapshot, crate::charts::VendorReport)> {
    let worktree = local_worktree(options, "vendor")?;
    let snapshot = source::read(&options.repo, &options.revision)?;
    // the environment must read (its lock included) before anything is written
    let mut checked = snapshot.clone();
    let fetcher = crate::charts::Fetcher::from_env();
    load_with_charts(&mut checked, name, &fetcher)?;
    let report = crate::charts::vendor(&worktree, &checked, name, &fetcher)?;
    Ok((snapshot, report))
}

/// The model of environment `name`, with the chart archives its lock pins; an archive it
/// needs that could not be had is reported by why (a fetch or digest error, exit 7).
fn load_with_charts(
    snapshot: &mut Snapshot,
    name: &str,
    fetcher: &crate::charts::Fetcher,
) -> Result<Environment> {
    let unavailable = crate::charts::provide(snapshot, name, fetcher);
    model::load(snapshot, name).map_err(|e| match unavailable.cause_of(&e.to_string()) {
        Some(cause) => cause.into(),
        None => e.into(),
    })
}

fn local_worktree(options: &SourceOptions, command: &'static str) -> Result<std::path::PathBuf> {
    source::worktree(&options.repo).ok_or_else(|| {
        crate::charts::Error::NotLocal {
            command,
            repo: options.repo.clone(),
        }
        .into()
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
            loaded: decrypt_and_render(snapshot, env, false)?,
            decrypted: true,
        });
    }
    // Every key the releases take from a secret, with a placeholder value.
    let mut referenced: Vec<(String, String)> = Vec::new();
    for r in &env.releases {
        let mut found = Vec::new();
        model::refs::collect(&r.inline_values, "", &mut found);
        for (_, expr) in found {
            if let model::refs::Ref::Secret { name, key } = model::refs::Ref::parse(&expr) {
                referenced.push((name.to_string(), key.to_string()));
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
    let (manifests, hooks, needs) = render::render_for(&env, &secrets, &offline_facts(&env))?;
    Ok(Validated {
        loaded: Loaded {
            snapshot,
            env,
            manifests,
            hooks,
            credentials: None,
            secrets,
            needs,
            offline_error: None,
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

/// A held environment lock: a Lease in the cluster, a key pair in AWS, or both.
pub struct LockGuard {
    kube: Option<kube::lock::LockGuard>,
    aws: Option<aws::lock::AwsLock>,
    environment: String,
    /// The connection that holds the Lease, when the cluster is an existing one.
    cluster: Option<Kube>,
}

impl LockGuard {
    /// The existing cluster's connection the lock was taken through, for the plan to use.
    pub fn cluster(&self) -> Option<Kube> {
        self.cluster.clone()
    }

    /// Gives the lock back.
    pub async fn release(self) {
        if let Some(k) = self.kube {
            k.release().await;
        }
        if let Some(a) = self.aws {
            a.release().await;
        }
        if let Ok(mut all) = LOCKS.lock() {
            all.remove(&self.environment);
        }
    }
}

/// The health of the locks this process holds, by environment: apply checks it before every
/// write (see `provider::Guarded`).
static LOCKS: std::sync::Mutex<BTreeMap<String, std::sync::Arc<envboot_core::lock::LockHealth>>> =
    std::sync::Mutex::new(BTreeMap::new());

/// Why the lock on `environment` was lost, if this process held one and lost it.
pub(crate) fn lock_lost(environment: &str) -> Option<String> {
    LOCKS
        .lock()
        .ok()
        .and_then(|all| all.get(environment).and_then(|h| h.lost()))
}

/// Takes the environment's lock, so that two runs never change it at once: a Lease in the
/// cluster for an existing cluster; a key pair in AWS (see `aws::lock`) for an environment
/// without a cluster or with a k3s cluster (plus the Lease once its API server answers). A run
/// whose lock cannot be renewed stops before its next write.
///
/// # Errors
/// [`kube::Error::Locked`] or [`aws::Error::Locked`] naming the holder (exit 5).
pub async fn lock(loaded: &Loaded, holder: &str) -> Result<Option<LockGuard>> {
    let env = &loaded.env;
    let health = std::sync::Arc::new(envboot_core::lock::LockHealth::default());
    let in_aws = env.cluster.as_ref().is_none_or(|c| c.k3s.is_some());
    let aws_lock = if in_aws {
        let client = Aws::connect(&env.region).await;
        Some(
            client
                .lock(
                    &env.name,
                    holder,
                    &kube::lock::hostname(),
                    LOCK_DURATION,
                    health.clone(),
                )
                .await?,
        )
    } else {
        None
    };
    let lease = lease_client(loaded).await;
    let existing = env.cluster.as_ref().is_some_and(|c| c.k3s.is_none());
    let cluster = match &lease {
        Ok(Some(k)) if existing => Some(k.clone()),
        _ => None,
    };
    let kube_lock = match lease {
        Ok(Some(k)) => match k
            .lock(&env.name, holder, LOCK_DURATION, health.clone())
            .await
        {
            Ok(l) => Some(l),
            Err(e) => {
                if let Some(a) = aws_lock {
                    a.release().await;
                }
                return Err(e.into());
            }
        },
        Ok(None) => None,
        Err(e) => {
            if let Some(a) = aws_lock {
                a.release().await;
            }
            return Err(e);
        }
    };
    if let Ok(mut all) = LOCKS.lock() {
        all.insert(env.name.clone(), health);
    }
    Ok(Some(LockGuard {
        kube: kube_lock,
        aws: aws_lock,
        environment: env.name.clone(),
        cluster,
    }))
}

/// The cluster that holds the Lease, if it answers: an existing cluster, or a k3s cluster
/// whose API server runs.
async fn lease_client(loaded: &Loaded) -> Result<Option<Kube>> {
    let Some(cluster) = &loaded.env.cluster else {
        return Ok(None);
    };
    if cluster.k3s.is_none() {
        return Ok(Some(Kube::connect(cluster.context.as_deref()).await?));
    }
    let Some(endpoint) = k3s_live_endpoint(loaded).await? else {
        return Ok(None);
    };
    Ok(k3s_ready_client(loaded, &endpoint).await?.ok())
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
        match &self.kube_client {
            Some(k) => apply::not_ready(self, k, timeout).await,
            None => Ok(Vec::new()),
        }
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
        if let Some(inv) = self.inventory.as_ref().filter(|i| i.applied()) {
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

    /// The plan as Markdown, for a pull-request comment.
    pub fn to_markdown(&self) -> String {
        plan::format_markdown(
            &self.environment,
            &self.commit,
            self.changes(),
            self.pending.as_deref(),
        )
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

/// Plans the AWS layer: what has the environment's tags, diffed against `desired`; resources
/// named like those to create are conflicts, or with `adopt` taken over.
pub(crate) async fn plan_cloud(
    cloud: &impl CloudDiscovery,
    environment: &str,
    desired: &[model::Resource],
    adopt: bool,
) -> Result<Vec<AwsChange>> {
    let actual = cloud.discover(environment).await?;
    let changes = aws::diff::diff(environment, desired, &actual);
    let named = cloud.find_named(environment, &changes).await?;
    Ok(aws::diff::with_named(
        environment,
        desired,
        actual,
        changes,
        named,
        adopt,
    ))
}

/// Plans the AWS layer alone, against AWS itself (what `plan` does first).
pub async fn plan_aws(
    aws: &Aws,
    environment: &str,
    desired: &[model::Resource],
    adopt: bool,
) -> Result<Vec<AwsChange>> {
    plan_cloud(aws, environment, desired, adopt).await
}

/// Plans the Kubernetes layer against the cluster `k`, with the AWS attributes `known` so far.
async fn plan_kube(
    loaded: &Loaded,
    goal: Goal,
    options: PlanOptions,
    k: &impl ClusterDiscovery,
    known: &HashMap<String, String>,
) -> Result<KubePlan> {
    let cloud = cloud_addresses(loaded.env.resources.iter().map(|r| r.address.as_str()));
    let (manifests, hooks) = render_against(loaded, k).await?;
    plan_cluster(
        &loaded.env.name,
        None,
        &manifests,
        &hooks,
        goal,
        options,
        k,
        known,
        &cloud,
    )
    .await
}

/// The environment rendered for its live cluster as plan and apply render it, and as
/// `helm install --dry-run=server` does: `.Capabilities` and `lookup` from the cluster (read
/// only), `.Release.IsUpgrade` from its inventory. Returns the objects and the hooks.
pub async fn render_live(loaded: &Loaded) -> Result<(Vec<Manifest>, Vec<Manifest>)> {
    let env = &loaded.env;
    let k = match &env.cluster {
        None => {
            return Err(Error::NoLiveCluster {
                environment: env.name.clone(),
            })
        }
        Some(c) if c.k3s.is_none() => Kube::connect(c.context.as_deref()).await?,
        Some(c) => {
            let endpoint =
                k3s_live_endpoint(loaded)
                    .await?
                    .ok_or_else(|| Error::ApiUnreachable {
                        endpoint: format!("({} has no API server yet)", c.name),
                        seconds: 0,
                        why: "apply the environment first".into(),
                    })?;
            k3s_ready_client(loaded, &endpoint)
                .await?
                .map_err(|why| Error::ApiUnreachable {
                    endpoint,
                    seconds: 10,
                    why,
                })?
        }
    };
    let (manifests, hooks) = render_against(loaded, &k).await?;
    // what `helm install` refuses before it sends anything, render refuses too
    let schema = k.schema().await?;
    let objects: Vec<&serde_json::Value> =
        manifests.iter().chain(&hooks).map(|m| &m.object).collect();
    undeclared(&schema, &objects, &k).await?;
    Ok((manifests, hooks))
}

/// [`kube::Error::Undeclared`] for the fields of `objects` that the cluster's schema lacks.
async fn undeclared(
    schema: &kube::schema::Schema,
    objects: &[&serde_json::Value],
    k: &impl ClusterDiscovery,
) -> Result<()> {
    let fields: Vec<String> = objects
        .iter()
        .flat_map(|object| {
            let key = ObjectKey::of(object);
            schema
                .undeclared_fields(object)
                .into_iter()
                .map(move |f| format!("{key}: {f}"))
        })
        .collect();
    if fields.is_empty() {
        return Ok(());
    }
    let version = k.capabilities().await?.git_version;
    Err(kube::Error::Undeclared { version, fields }.into())
}

/// How many times a render may come back for lookups that depend on what earlier ones found.
const MAX_LOOKUP_ROUNDS: usize = 16;

/// The environment rendered for cluster `k` as `helm install` renders for it: `.Capabilities`
/// from its discovery, `lookup` answered from it (read before each render, in rounds until every
/// lookup is answered: rendering itself does no IO), random values derived from the
/// environment's key so that plans agree and a rebuild renders the same values.
pub(crate) async fn render_against(
    loaded: &Loaded,
    k: &impl ClusterDiscovery,
) -> Result<(Vec<Manifest>, Vec<Manifest>)> {
    let randomness_key = crate::secrets::randomness_key(&loaded.env.name);
    let no_key = |needs: &render::Needs| {
        if randomness_key.is_none() && !needs.random.is_empty() {
            return Err(Error::NoRandomnessKey {
                releases: needs.random.iter().cloned().collect(),
            });
        }
        Ok(())
    };
    // charts that ask nothing of the cluster render as they did without it (and cost no request)
    if loaded.offline_error.is_none()
        && !loaded.needs.capabilities
        && !loaded.needs.install_state
        && loaded.needs.unread.is_empty()
    {
        no_key(&loaded.needs)?;
        return Ok((loaded.manifests.clone(), loaded.hooks.clone()));
    }
    let caps = k.capabilities().await?;
    let mut lookups = envboot_helm::Lookups::default();
    let mut facts = render::ClusterFacts {
        capabilities: Some(envboot_helm::ClusterCapabilities {
            git_version: caps.git_version,
            major: caps.major,
            minor: caps.minor,
            api_versions: caps.api_versions,
        }),
        lookups: None,
        randomness_key,
        installed: None,
    };
    // a chart that may render differently on upgrade reads which releases the cluster holds
    // (also when the render without the cluster failed: what it needed is not known)
    if loaded.needs.install_state || loaded.offline_error.is_some() {
        // the releases `helm upgrade` would find installed
        let inventory = k.read_inventory(&loaded.env.name).await?;
        facts.installed = Some(inventory.map(|i| i.releases()).unwrap_or_default());
    }
    for _ in 0..MAX_LOOKUP_ROUNDS {
        let asked = std::sync::Arc::new(lookups.clone());
        facts.lookups = Some(asked.clone());
        let rendered = render::render_for(&loaded.env, &loaded.secrets, &facts);
        // a template may fail on what a lookup not yet read returned (an empty map): read it
        // and render again
        let unread = asked.unread();
        match rendered {
            Ok((manifests, hooks, needs)) if unread.is_empty() => {
                no_key(&needs)?;
                return Ok((manifests, hooks));
            }
            Err(e) if unread.is_empty() => return Err(e.into()),
            _ => {}
        }
        for key in unread {
            let found = k
                .lookup(&key.api_version, &key.kind, &key.namespace, &key.name)
                .await;
            if let Ok(object) = &found {
                register_looked_up_secrets(object);
            }
            lookups.found.insert(key, found);
        }
    }
    Err(Error::LookupRounds {
        rounds: MAX_LOOKUP_ROUNDS,
    })
}

/// What is to be created or updated is checked against the cluster's schema, as `helm install`
/// checks it, before anything is sent (the schema is read only when something is to change).
async fn check_schema(changes: &[KubeChange], k: &impl ClusterDiscovery) -> Result<()> {
    let sent: Vec<&serde_json::Value> = changes
        .iter()
        .filter(|c| matches!(c.change.action, Action::Create | Action::Update))
        .filter_map(|c| c.desired.as_ref())
        .collect();
    if sent.is_empty() {
        return Ok(());
    }
    let schema = k.schema().await?;
    undeclared(&schema, &sent, k).await
}

/// Secrets a chart looked up are as sensitive as the environment's own.
fn register_looked_up_secrets(found: &serde_json::Value) {
    let objects: Vec<serde_json::Value> = match found["items"].as_array() {
        Some(items) => items.clone(),
        None => vec![found.clone()],
    };
    register_live_secrets(&objects);
}

/// The kinds a plan lists, besides the declared ones, to find what the environment has in its
/// cluster; `None` for every kind the cluster serves.
/// - Apply with an inventory: the kinds it names (it is written ahead of every apply's writes,
///   so a crashed apply's kinds are there too).
/// - Apply without one and without a namespace of the environment's: envboot never wrote there
///   for it, so only the usual kinds (a first plan costs requests by the kinds declared).
/// - Apply without one where a namespace of the environment's exists (the inventory was
///   deleted), and destroy always: every kind, so that nothing labelled is left behind.
pub(crate) fn kinds_to_search(
    inventory: Option<&kube::inventory::Inventory>,
    goal: Goal,
    namespaces: &kube::Namespaces,
) -> Option<BTreeSet<(String, String)>> {
    match (inventory, goal) {
        (_, Goal::Destroy) => None,
        (Some(inventory), Goal::Apply) => Some(inventory.kinds()),
        (None, Goal::Apply) if namespaces.own.is_empty() => Some(
            kube::USUAL_KINDS
                .iter()
                .map(|(a, k)| (a.to_string(), k.to_string()))
                .collect(),
        ),
        (None, Goal::Apply) => None,
    }
}

/// What a plan reads from the cluster before it compares: the desired objects placed (their
/// namespaces set or cleared by the kinds' scope; `${...}` references not yet resolved), the
/// inventory, the namespaces, and the environment's live objects.
pub(crate) struct ClusterReads {
    desired: Vec<serde_json::Value>,
    inventory: Option<kube::inventory::Inventory>,
    namespaces: kube::Namespaces,
    live: Vec<serde_json::Value>,
}

/// Reads what environment `name`'s plan needs from the cluster `k`: the objects are placed
/// (discovery) while the inventory, the namespaces and the lists are read. Needs nothing of the
/// AWS layer, so it runs while that is planned.
pub(crate) async fn read_cluster(
    name: &str,
    manifests: &[Manifest],
    goal: Goal,
    k: &impl ClusterDiscovery,
) -> Result<ClusterReads> {
    // Kinds that CRDs of this environment define: the cluster may not serve them yet.
    let defined = crd_kinds(manifests);
    let kinds: BTreeSet<(String, String)> = manifests
        .iter()
        .map(|m| (m.api_version().to_string(), m.kind().to_string()))
        .filter(|kind| !defined.contains_key(kind))
        .collect();
    let placing = timings::measure_async("place the objects (discovery)", async {
        // one discovery per group-version, all at once; then every object from the cache
        let mut firsts: BTreeMap<(&str, &str), &Manifest> = BTreeMap::new();
        for m in manifests {
            firsts.entry((m.api_version(), m.kind())).or_insert(m);
        }
        let discovered = firsts.values().map(|m| async {
            let mut object = m.object.clone();
            let _ = k.place(&mut object, m.default_namespace.as_deref()).await;
        });
        futures::future::join_all(discovered).await;
        let mut desired = Vec::with_capacity(manifests.len());
        for m in manifests {
            let kind = (m.api_version().to_string(), m.kind().to_string());
            let mut object = m.object.clone();
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
                (Err(e), _) => return Err(Error::from(e)),
            }
            desired.push(object);
        }
        Ok(desired)
    });
    let reading = async {
        // The inventory names the kinds applied before (see `kinds_to_search`); the namespaces
        // are read meanwhile.
        let (inventory, namespaces) = timings::measure_async("inventory and namespaces", async {
            tokio::join!(k.read_inventory(name), k.namespaces(name))
        })
        .await;
        let (inventory, namespaces) = (inventory?, namespaces?);
        let mut extra = match kinds_to_search(inventory.as_ref(), goal, &namespaces) {
            Some(kinds) => kinds,
            None => timings::measure_async("discover every kind", k.listable_kinds()).await?,
        };
        extra.extend(defined.keys().cloned());
        let lists = k.discover(name, &kinds, &extra);
        let live = timings::measure_async("list the environment's objects", lists).await?;
        Ok::<_, Error>((inventory, namespaces, live))
    };
    let (desired, read) = tokio::join!(placing, reading);
    let (inventory, namespaces, live) = read?;
    Ok(ClusterReads {
        desired: desired?,
        inventory,
        namespaces,
        live,
    })
}

/// Plans environment `name`'s objects (`manifests`, `hooks`) against the cluster `k`, from what
/// [`read_cluster`] read (`reads`; read now if `None`); `cloud` holds the addresses of the
/// environment's cloud resources (see [`cloud_reference`]).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn plan_cluster(
    name: &str,
    reads: Option<ClusterReads>,
    manifests: &[Manifest],
    hooks_declared: &[Manifest],
    goal: Goal,
    options: PlanOptions,
    k: &impl ClusterDiscovery,
    known: &HashMap<String, String>,
    cloud: &BTreeSet<String>,
) -> Result<KubePlan> {
    let reads = match reads {
        Some(reads) => reads,
        None => read_cluster(name, manifests, goal, k).await?,
    };
    let ClusterReads {
        mut desired,
        inventory,
        namespaces,
        mut live,
    } = reads;
    for object in &mut desired {
        resolve_in_place(object, known);
    }
    let foreign = namespaces.foreign;
    register_live_secrets(&live);
    // Hooks left from earlier runs are not part of the release: only destroy removes them.
    if goal == Goal::Apply {
        live.retain(|o| !render::is_hook(o));
    }
    let mut hooks = Vec::new();
    for m in hooks_declared {
        let mut object = resolve_object(&m.object, known);
        // A kind the cluster does not serve yet is reported when the hook is applied.
        let _ = k.place(&mut object, m.default_namespace.as_deref()).await;
        let release = object["metadata"]["labels"][render::LABEL_RELEASE]
            .as_str()
            .unwrap_or_default()
            .to_string();
        hooks.push((release, object));
    }
    let desired = match goal {
        Goal::Apply => desired,
        Goal::Destroy => Vec::new(),
    };
    // fields derived from secrets (desired objects are the manifests', in their order)
    let tainted: BTreeMap<ObjectKey, Vec<String>> = match goal {
        Goal::Apply => desired
            .iter()
            .zip(manifests)
            .filter(|(_, m)| !m.sensitive.is_empty())
            .map(|(o, m)| {
                let paths = m.sensitive.iter().map(|p| render::field_path(p)).collect();
                (ObjectKey::of(o), paths)
            })
            .collect(),
        Goal::Destroy => BTreeMap::new(),
    };
    // namespaces that exist (for the ownership checks below)
    let mut present: BTreeSet<String> = foreign.clone();
    present.extend(
        live.iter()
            .filter(|o| o["kind"] == "Namespace" && o["apiVersion"] == "v1")
            .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_string)),
    );
    let mut changes = timings::measure("diff", || kube::diff::diff(desired, live, &foreign));
    let mask_tainted = |c: &mut KubeChange| {
        if let Some(paths) = tainted.get(&c.key) {
            kube::diff::mask_paths(&mut c.change.fields, paths);
        }
    };
    changes.iter_mut().for_each(mask_tainted);
    timings::measure_async("check the schema", check_schema(&changes, k)).await?;
    // What Git declares and the cluster has without the environment's label is not ours: a
    // conflict, or (with --adopt) taken over.
    let creates: Vec<(String, ObjectKey)> = changes
        .iter()
        .filter(|c| c.change.action == Action::Create)
        .map(|c| (c.api_version.clone(), c.key.clone()))
        .collect();
    let owners = k.unowned_existing(name, &creates, &present);
    let unowned = timings::measure_async("owners of objects to create", owners).await?;
    // A namespace to delete that holds what is not ours will be kept: the plan says so.
    for c in changes.iter_mut().filter(|c| {
        c.change.action == Action::Delete && c.key.kind == "Namespace" && c.key.group.is_empty()
    }) {
        let foreign = k.foreign_objects(&c.key.name, name).await?;
        if !foreign.is_empty() {
            c.change.reason = Some(format!(
                "kept, not deleted: it holds objects that envboot does not own ({})",
                foreign.join(", ")
            ));
        }
    }
    for c in &mut changes {
        let Some(why) = unowned.get(&c.key) else {
            continue;
        };
        if options.adopt && !why.contains("owned by environment") {
            c.change.action = Action::Update;
            c.force = true;
            c.change.reason = Some(format!(
                "adopting {}: envboot labels it as the environment's",
                c.key
            ));
        } else {
            c.change.reason = Some(format!("CONFLICT: {why}"));
            c.conflict = Some(why.clone());
        }
    }
    let dry_runs = timings::Span::start("dry runs of updates");
    for c in changes
        .iter_mut()
        .filter(|c| c.change.action == Action::Update)
    {
        let (Some(object), Some(live)) = (&c.desired, &c.live) else {
            continue;
        };
        if cloud_reference(object, cloud).is_some() {
            // Only apply can tell: an AWS resource it refers to is still to be created (the
            // fields that refer to it are already unknown).
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
        mask_tainted(c);
        if c.change.fields.is_empty() {
            c.change.action = Action::NoOp;
        }
    }
    dry_runs.end();
    Ok((changes, inventory, hooks))
}

pub async fn plan(loaded: &Loaded, goal: Goal, options: PlanOptions) -> Result<Plan> {
    plan_connected(loaded, goal, options, None).await
}

/// [`plan`], asking an existing cluster through `cluster` (the lock's connection) instead of
/// connecting again.
pub async fn plan_connected(
    loaded: &Loaded,
    goal: Goal,
    options: PlanOptions,
    cluster: Option<Kube>,
) -> Result<Plan> {
    let env = &loaded.env;
    let aws_client = Aws::connect(&env.region)
        .await
        .with_cluster(env.cluster.as_ref().map(|c| c.name.clone()));
    let desired_resources = match goal {
        Goal::Apply => env.resources.as_slice(),
        Goal::Destroy => &[],
    };
    // AWS first: Kubernetes values may refer to AWS attributes (`${module.network.vpc_id}`);
    // an existing cluster is connected to meanwhile.
    // An existing cluster is connected to and the environment rendered for it meanwhile
    // (rendering reads the cluster, not the AWS layer).
    let existing = async {
        match &env.cluster {
            Some(c) if c.k3s.is_none() => {
                let k = match cluster {
                    Some(k) => Ok(k),
                    None => {
                        let connect = Kube::connect(c.context.as_deref());
                        timings::measure_async("connect to the cluster", connect).await
                    }
                };
                Some(match k {
                    Ok(k) => {
                        let render = render_against(loaded, &k);
                        let rendered =
                            timings::measure_async("render for the cluster", render).await;
                        // what the cluster has, read while the AWS layer is planned
                        let read = match &rendered {
                            Ok((manifests, _)) => {
                                Some(read_cluster(&env.name, manifests, goal, &k).await)
                            }
                            Err(_) => None,
                        };
                        Ok((k, rendered, read))
                    }
                    Err(e) => Err(e),
                })
            }
            _ => None,
        }
    };
    let cloud = plan_cloud(&aws_client, &env.name, desired_resources, options.adopt);
    let (aws_changes, connected) =
        tokio::join!(timings::measure_async("plan AWS", cloud), existing);
    let aws_changes = aws_changes?;
    let known = known_attributes(&aws_changes);
    let (kube_client, pending, rendered) = match (&env.cluster, connected) {
        (None, _) => (None, None, None),
        (Some(_), Some(connected)) => {
            let (k, rendered, read) = connected?;
            (Some(k), None, Some((rendered?, read)))
        }
        (Some(_), None) => {
            let (k, pending) = k3s_access(loaded, goal, &aws_changes).await?;
            (k, pending, None)
        }
    };
    let (kube_changes, inventory, hooks) = match (&kube_client, &pending) {
        (Some(k), _) => match rendered {
            Some(((manifests, hooks), read)) => {
                let cloud = cloud_addresses(env.resources.iter().map(|r| r.address.as_str()));
                let reads = read.transpose()?;
                plan_cluster(
                    &env.name, reads, &manifests, &hooks, goal, options, k, &known, &cloud,
                )
                .await?
            }
            None => plan_kube(loaded, goal, options, k, &known).await?,
        },
        (None, Some(_)) if goal == Goal::Apply => {
            if let Some(e) = &loaded.offline_error {
                return Err(Error::Chart(e.to_string()));
            }
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
    resolve_in_place(&mut v, known);
    v
}

/// [`resolve_object`] without a copy.
fn resolve_in_place(object: &mut serde_json::Value, known: &HashMap<String, String>) {
    model::refs::substitute(object, &mut |expr| {
        known
            .get(expr)
            .map(|s| serde_json::Value::String(s.clone()))
    });
}

/// The addresses of cloud resources, for [`cloud_reference`].
fn cloud_addresses<'a>(addresses: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    addresses.into_iter().map(str::to_string).collect()
}

/// The first reference to an attribute of one of the cloud resources `cloud` (`network.vpc.id`,
/// with `network.vpc` among them) still in a string of the Kubernetes object `object`. Only
/// those are envboot's: any other `${...}` in a chart's output is the chart's own text (a
/// shell's `${HOME:-/root}`, Spring's `${spring.datasource.url}`) and is applied as it is.
fn cloud_reference(object: &serde_json::Value, cloud: &BTreeSet<String>) -> Option<String> {
    let mut found = Vec::new();
    model::refs::collect(object, "", &mut found);
    found.into_iter().map(|(_, expr)| expr).find(|expr| {
        model::refs::Ref::parse(expr)
            .address()
            .is_some_and(|a| cloud.contains(a))
    })
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

/// (apiVersion, kind) of every version of every kind the rendered CRDs define, and whether
/// it is namespaced.
fn crd_kinds(manifests: &[render::Manifest]) -> BTreeMap<(String, String), bool> {
    let mut out = BTreeMap::new();
    for crd in manifests
        .iter()
        .filter_map(|m| render::crd_kinds(&m.object))
    {
        for (version, _) in &crd.versions {
            out.insert(
                (format!("{}/{version}", crd.group), crd.kind.to_string()),
                crd.namespaced,
            );
        }
    }
    out
}

/// What still carries the environment's tags (AWS, one Describe per type) or labels
/// (Kubernetes) after a destroy, as `kind address`; namespaces in `kept` (kept on purpose
/// because they hold objects envboot does not own) are left out.
pub async fn leaks(loaded: &Loaded, options: PlanOptions, kept: &[String]) -> Result<Vec<String>> {
    let plan = plan(loaded, Goal::Destroy, options).await?;
    // Labelled objects envboot never applied are not deleted, but they carry the label.
    let foreign = plan
        .kube
        .iter()
        .filter(|c| c.change.action == Action::NoOp && c.desired.is_none())
        .map(|c| &c.change);
    Ok(plan
        .changes()
        .filter(|c| c.action == Action::Delete)
        .chain(foreign)
        .filter(|c| !(c.kind == "Namespace" && kept.contains(&c.address)))
        .map(|c| match c.action {
            Action::Delete => format!("{} {}", c.kind, c.address),
            _ => format!(
                "{} {} (labelled, but not applied by envboot)",
                c.kind, c.address
            ),
        })
        .collect())
}
