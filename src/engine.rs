//! Engine: runs the pipeline (source -> model -> render -> plan -> apply) for one environment.
//!
//! # Assumptions
//! Every step of apply is idempotent and safe after a partly finished earlier run: the plan is
//! always computed from what exists now, found by tags and labels, so a rerun after a crash
//! creates only what is missing.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::aws::{self, Aws, AwsChange};
use crate::kube::{self, Kube, KubeChange};
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
    #[error("warnings are errors (--deny-warnings):\n{0}")]
    Warnings(crate::diag::Diagnostics),
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
    /// The command line is wrong.
    pub const USAGE: u8 = 64;
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Source(_) => exit::SOURCE,
            Error::Model(_) | Error::Render(_) | Error::Warnings(_) => exit::INVALID,
            Error::Aws(_) | Error::Kube(_) | Error::Unresolved { .. } => exit::FAILED,
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
}

/// Reads, validates and renders environment `name`. Makes no call to AWS or Kubernetes.
pub fn load(options: &SourceOptions, name: &str) -> Result<Loaded> {
    let snapshot = source::read(&options.repo, &options.revision)?;
    let env = model::load(&snapshot, name)?;
    if options.deny_warnings && !env.warnings.is_empty() {
        return Err(Error::Warnings(env.warnings));
    }
    let manifests = render::render(&env)?;
    Ok(Loaded {
        snapshot,
        env,
        manifests,
    })
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

    /// The plan as text, like `terraform plan`.
    pub fn to_text(&self) -> String {
        plan::format_changes(self.changes())
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
        self.kube_client.as_ref().map_or(0, |k| k.calls.writes())
    }
}

/// Computes the plan: reads what exists (by tags and labels) and compares it with Git.
/// Never writes. With `adopt`, AWS resources that have a desired name but not the
/// environment's tags are planned to be taken over instead of being conflicts.
pub async fn plan(loaded: &Loaded, goal: Goal, adopt: bool) -> Result<Plan> {
    let env = &loaded.env;
    let aws_client = Aws::connect(&env.region)
        .await
        .with_cluster(env.cluster.as_ref().map(|c| c.name.clone()));
    let kube_client = match &env.cluster {
        Some(cluster) => Some(Kube::connect(cluster.context.as_deref()).await?),
        None => None,
    };
    let desired_resources = match goal {
        Goal::Apply => env.resources.as_slice(),
        Goal::Destroy => &[],
    };
    let aws_future =
        async { Ok::<_, Error>(aws_client.plan(&env.name, desired_resources, adopt).await?) };
    let kube_future = async {
        let Some(k) = &kube_client else {
            return Ok::<_, Error>(Vec::new());
        };
        let mut desired = Vec::new();
        let mut kinds = BTreeSet::new();
        for m in &loaded.manifests {
            kinds.insert((m.api_version().to_string(), m.kind().to_string()));
            let mut object = m.object.clone();
            k.place(&mut object, m.default_namespace.as_deref()).await?;
            desired.push(object);
        }
        let live = k.discover(&env.name, &kinds).await?;
        let foreign = k.foreign_namespaces(&env.name).await?;
        let desired = match goal {
            Goal::Apply => desired,
            Goal::Destroy => Vec::new(),
        };
        Ok(kube::diff::diff(&desired, &live, &foreign))
    };
    let (aws_changes, kube_changes) = tokio::try_join!(aws_future, kube_future)?;
    Ok(Plan {
        environment: env.name.clone(),
        commit: env.commit.clone(),
        goal,
        aws: aws_changes,
        kube: kube_changes,
        aws_client,
        kube_client,
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
}

/// Carries out `plan`, calling `progress` after each step.
///
/// Order: for apply, AWS deletions (including the old half of replacements, by deletion rank,
/// parallel within a rank), then AWS creations and updates along the dependency graph (in
/// parallel where independent, at most [`aws::CONCURRENCY`] at once), then Kubernetes objects in
/// install order, then Kubernetes objects no longer declared. For destroy, Kubernetes first,
/// then AWS. A plan with a conflict changes nothing.
///
/// # Errors
/// The first failing call stops the run; rerunning apply continues from what exists.
pub async fn apply(plan: &Plan, progress: &mut dyn FnMut(Step<'_>)) -> Result<Report> {
    let started = Instant::now();
    let mut notes = Vec::new();
    aws::check_conflicts(&plan.aws)?;
    if plan.goal == Goal::Destroy {
        kube_deletes(plan, progress, &mut notes).await?;
    }
    aws_deletes(plan, progress).await?;
    aws_creates(plan, progress).await?;
    // Kubernetes objects, in install order.
    if let Some(k) = &plan.kube_client {
        for c in &plan.kube {
            let (Some(object), Action::Create | Action::Update) = (&c.desired, c.change.action)
            else {
                continue;
            };
            k.apply(&c.api_version, &c.key, object).await?;
            progress(Step {
                change: &c.change,
                action: c.change.action,
                id: None,
                note: None,
            });
        }
    }
    if plan.goal == Goal::Apply {
        kube_deletes(plan, progress, &mut notes).await?;
    }
    Ok(Report {
        summary: plan.summary(),
        elapsed: started.elapsed(),
        notes,
    })
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
    aws::executor::run(
        &deps,
        aws::CONCURRENCY,
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
async fn aws_creates(plan: &Plan, progress: &mut dyn FnMut(Step<'_>)) -> Result<()> {
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
    let (known_ref, client) = (&known, &plan.aws_client);
    aws::executor::run(
        &deps,
        aws::CONCURRENCY,
        |i| {
            let c = nodes[i];
            let action = c.change.action;
            if action == Action::NoOp && aws::needs_settling(c) {
                return Ok(Some(Box::pin(async move {
                    client.settle(c).await?;
                    Ok(c.attributes.clone())
                })));
            }
            let Some(desired) = c.desired.as_ref().filter(|_| action != Action::NoOp) else {
                return Ok(None);
            };
            let spec = aws::diff::resolve_spec(&desired.spec, &known_ref.borrow()).map_err(
                |reference| Error::Unresolved {
                    address: c.change.address.clone(),
                    reference,
                    reason: "the resource it refers to was not created",
                },
            )?;
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
    .await
}

async fn kube_deletes(
    plan: &Plan,
    progress: &mut dyn FnMut(Step<'_>),
    notes: &mut Vec<String>,
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
    // Foreground deletion returns before the object is gone; wait for it, so that what follows
    // (AWS deletions, the next run) sees it gone.
    for c in deleted_keys {
        if !k
            .wait_deleted(&c.api_version, &c.key, KUBE_DELETE_TIMEOUT)
            .await?
        {
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
