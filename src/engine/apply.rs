//! Apply: carries out a plan through the providers, in the order the plan's dependencies,
//! install order, release waves and hooks demand.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::cluster::k3s_plan;
use super::provider::{Cloud, Cluster, Guarded};
use super::timings;
use super::{
    cloud_addresses, cloud_reference, release_of, release_waves, resolve_object, Error, Goal, Plan,
    Report, Result, Step, Targets, RELEASE_TIMEOUT,
};
use crate::aws::{self, AwsChange};
use crate::kube::{self, KubeChange, ObjectKey};
use crate::model::ResourceSpec;
use crate::plan::{Action, Summary};
use crate::render;

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
    let result = apply_guarded(plan, progress).await;
    // A write refused because the lock was lost is reported as that, whatever layer it was in.
    match (result, super::lock_lost(&plan.environment)) {
        (Err(_), Some(why)) => Err(Error::LockLost {
            environment: plan.environment.clone(),
            why,
        }),
        (result, _) => result,
    }
}

async fn apply_guarded(plan: &Plan, progress: &mut dyn FnMut(Step<'_>)) -> Result<Report> {
    let env = plan.environment.as_str();
    let aws = Guarded::new(&plan.aws_client, env);
    let Some(loaded) = plan
        .deferred
        .as_deref()
        .filter(|_| plan.goal == Goal::Apply)
    else {
        let kube = plan.kube_client.as_ref().map(|k| Guarded::new(k, env));
        return execute(plan, &aws, kube.as_ref(), progress).await;
    };
    // A k3s cluster this run creates: the AWS layer first, then its Kubernetes layer, planned
    // against the API server once it answers.
    let started = Instant::now();
    let (mut notes, mut kept) = (Vec::new(), Vec::new());
    check_conflicts(plan)?;
    aws_deletes(plan, &aws, progress).await?;
    let known = aws_creates(plan, &aws, progress).await?;
    let cluster = k3s_plan(plan, loaded, &known, progress).await?;
    if let Some(k) = &cluster.kube_client {
        let _ = plan.cluster_client.set(k.clone());
    }
    let kube = cluster.kube_client.as_ref().map(|k| Guarded::new(k, env));
    kube_phase(
        &cluster,
        kube.as_ref(),
        &known,
        progress,
        &mut notes,
        &mut kept,
    )
    .await?;
    let summary = Summary::of(
        plan.aws
            .iter()
            .map(|c| &c.change)
            .chain(cluster.kube.iter().map(|c| &c.change)),
    );
    Ok(Report {
        summary,
        elapsed: started.elapsed(),
        notes,
        kept,
    })
}

/// Stops apply before any write if the plan holds a conflict, in either layer.
fn check_conflicts(plan: &Plan) -> Result<()> {
    aws::check_conflicts(&plan.aws)?;
    let conflicts: Vec<&str> = plan
        .kube
        .iter()
        .filter_map(|c| c.conflict.as_deref())
        .collect();
    if conflicts.is_empty() {
        return Ok(());
    }
    Err(Error::Kube(kube::Error::Unowned(
        conflicts.iter().map(|c| c.to_string()).collect(),
    )))
}

/// Carries out `plan` through the providers `cloud` and `cluster` (apply's order, above).
pub(crate) async fn execute(
    plan: &Plan,
    cloud: &impl Cloud,
    cluster: Option<&impl Cluster>,
    progress: &mut dyn FnMut(Step<'_>),
) -> Result<Report> {
    let started = Instant::now();
    let (mut notes, mut kept) = (Vec::new(), Vec::new());
    check_conflicts(plan)?;
    if plan.goal == Goal::Destroy {
        kube_deletes(plan, cluster, progress, &mut notes, &mut kept).await?;
        if let Some(k) = cluster {
            k.delete_inventory(&plan.environment).await?;
        }
    }
    timings::measure_async("AWS deletions", aws_deletes(plan, cloud, progress)).await?;
    let creates = aws_creates(plan, cloud, progress);
    let known = timings::measure_async("AWS creations and updates", creates).await?;
    let kube = kube_phase(plan, cluster, &known, progress, &mut notes, &mut kept);
    timings::measure_async("Kubernetes", kube).await?;
    Ok(Report {
        summary: plan.summary(),
        elapsed: started.elapsed(),
        notes,
        kept,
    })
}

/// The Kubernetes part of apply: objects in install order and waves, hooks, deletions of what
/// is no longer declared, the inventory, and the readiness wait.
async fn kube_phase(
    plan: &Plan,
    cluster: Option<&impl Cluster>,
    known: &HashMap<String, String>,
    progress: &mut dyn FnMut(Step<'_>),
    notes: &mut Vec<String>,
    kept: &mut Vec<String>,
) -> Result<()> {
    // Kubernetes objects, in install order: kinds one after the other (namespaces before what
    // lives in them), objects of one kind concurrently, at most `--parallelism` at once.
    // Releases with `dependsOn` go in waves: a wave starts once the releases it depends on
    // are applied and ready.
    if let Some(k) = cluster {
        if plan.goal == Goal::Apply {
            timings::measure_async("announce the kinds", announce_kinds(plan, k)).await?;
        }
        let cloud = cloud_addresses(plan.aws.iter().map(|c| c.change.address.as_str()));
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
                let cloud = &cloud;

                let mut done = futures::stream::iter(group.iter().copied())
                    .map(|c| async move {
                        let desired = c.desired.as_ref().unwrap_or(&serde_json::Value::Null);
                        let object = resolve_object(desired, known);
                        if let Some(reference) = cloud_reference(&object, cloud) {
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
        let deletes = kube_deletes(plan, cluster, progress, notes, kept);
        timings::measure_async("Kubernetes deletions", deletes).await?;
        timings::measure_async("write the inventory", record_inventory(plan, cluster)).await?;
        if let (Some(timeout), Some(k)) = (plan.options.wait, cluster) {
            let wait = not_ready(plan, k, timeout);
            let not_ready = timings::measure_async("wait until ready", wait).await?;
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
    k: &impl Cluster,
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
    k: &impl Cluster,
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

/// How long to wait for applied CRDs to be Established before applying their resources.
const CRD_TIMEOUT: Duration = Duration::from_secs(60);

/// Before an apply's first write: the inventory names every kind the apply may write (as
/// `pending` where it did not name it yet), so that a crash half-way leaves nothing that a
/// later plan would not list. Nothing is written when it names them all already.
async fn announce_kinds(plan: &Plan, k: &impl Cluster) -> Result<()> {
    let mut inventory = plan.inventory.clone().unwrap_or_default();
    let named = inventory.kinds();
    let new: BTreeSet<(String, String)> = plan
        .kube
        .iter()
        .filter(|c| matches!(c.change.action, Action::Create | Action::Update))
        .filter(|c| c.desired.is_some())
        .map(|c| (c.api_version.clone(), c.key.kind.clone()))
        .filter(|kind| !named.contains(kind))
        .collect();
    if new.is_empty() {
        return Ok(());
    }
    inventory.pending.extend(new);
    k.write_inventory(&plan.environment, &inventory).await?;
    Ok(())
}

/// After an apply: the inventory lists what the environment now has in its cluster, the
/// commit and the time. Written only when something changed, so a second run writes nothing.
async fn record_inventory(plan: &Plan, cluster: Option<&impl Cluster>) -> Result<()> {
    let Some(k) = cluster else {
        return Ok(());
    };
    let mut inventory = kube::inventory::Inventory {
        revision: plan.commit.clone(),
        applied_at: kube::inventory::now(),
        groups: BTreeMap::new(),
        pending: BTreeSet::new(),
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
async fn aws_deletes(
    plan: &Plan,
    cloud: &impl Cloud,
    progress: &mut dyn FnMut(Step<'_>),
) -> Result<()> {
    let deletions: Vec<&AwsChange> = plan
        .aws
        .iter()
        .filter(|c| matches!(c.change.action, Action::Delete | Action::Replace) && c.id.is_some())
        .collect();
    let deps: Vec<Vec<usize>> = deletions
        .iter()
        .map(|c| {
            let rank = aws::delete_rank(c.rtype);
            (0..deletions.len())
                .filter(|&j| aws::delete_rank(deletions[j].rtype) < rank)
                .collect()
        })
        .collect();
    let ctx = aws::DeleteContext::new(&plan.aws);
    let (ctx, client) = (&ctx, cloud);
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
    cloud: &impl Cloud,
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
    let (known_ref, client, partial_ref) = (&known, cloud, &partial);
    envboot_core::executor::run(
        &deps,
        plan.parallelism(),
        |i| {
            let c = nodes[i];
            let action = c.change.action;
            if action == Action::NoOp && client.needs_settling(c) {
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
            cloud.add_missing_rules(address, group, made, full).await?;
        }
    }
    Ok(known)
}

async fn kube_deletes(
    plan: &Plan,
    cluster: Option<&impl Cluster>,
    progress: &mut dyn FnMut(Step<'_>),
    notes: &mut Vec<String>,
    kept: &mut Vec<String>,
) -> Result<()> {
    let Some(k) = cluster else {
        return Ok(());
    };
    let mut deleted_keys = Vec::new();
    for c in plan
        .kube
        .iter()
        .filter(|c| c.change.action == Action::Delete)
    {
        let note = match k.delete(&c.api_version, &c.key, &plan.environment).await? {
            kube::Deletion::Deleted => {
                deleted_keys.push(c);
                None
            }
            kube::Deletion::Kept { foreign } => {
                kept.push(c.key.address());
                Some(format!(
                    "namespace {} kept: it holds objects that envboot does not own ({foreign})",
                    c.key.name
                ))
            }
        };
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

/// How long destroy waits for a Kubernetes object to disappear: Helm's default `--timeout`
/// (a namespace goes once its pods have stopped, which on a node with hundreds of them takes
/// minutes).
const KUBE_DELETE_TIMEOUT: Duration = Duration::from_secs(300);

/// Declared Kubernetes objects that are not ready within `timeout`, as `Kind ns/name: why`.
pub(crate) async fn not_ready(
    plan: &Plan,
    k: &impl Cluster,
    timeout: Duration,
) -> Result<Vec<String>> {
    // Objects grouped by how long they may take: their release's `timeout`, or `timeout`.
    let mut groups: BTreeMap<(Duration, Option<&str>), Targets> = BTreeMap::new();
    for c in plan.kube.iter().filter(|c| c.desired.is_some()) {
        let release = release_of(c);
        let limit = release
            .and_then(|r| plan.releases.get(r))
            .and_then(|(_, t)| *t)
            .unwrap_or(timeout);
        groups
            .entry((limit, release))
            .or_default()
            .push((c.api_version.clone(), c.key.clone()));
    }
    let waits = groups.iter().map(|((limit, release), targets)| async move {
        let pending = k.wait_ready(&plan.environment, targets, *limit).await?;
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
