//! One reconcile of one Environment: fetch, plan, decide, apply, then status, Event, metrics
//! and notification.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};

use crate::crd::{Environment, EnvironmentStatus, PlanSummary, PUSHED_AT, REQUESTED_AT};
use crate::decide::{self, Decision, Observed, Outcome, Why};
use crate::metrics::{EnvironmentLabels, Metrics, ResultLabels};
use crate::runner::{self, RunSpec};
use crate::{git, log, notify, Options};

/// The default `spec.timeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// The longest a Git fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(300);
/// The keys of `spec.aws`'s Secret given to a run.
const AWS_KEYS: [&str; 6] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
];
/// An Event's note is at most 1 kB.
const NOTE_LIMIT: usize = 1000;

pub struct Context {
    client: Client,
    options: Options,
    metrics: Arc<Metrics>,
    recorder: Recorder,
    /// Failures in a row, by `namespace/name`.
    failures: Mutex<HashMap<String, u32>>,
    /// When each Environment is due again, by `namespace/name`: a watch event that is not a
    /// change of spec or a sync request (the controller's own status updates) waits for it.
    due: Mutex<HashMap<String, Instant>>,
}

impl Context {
    pub fn new(client: Client, options: Options, metrics: Arc<Metrics>) -> Self {
        let reporter = Reporter {
            controller: "envboot-controller".into(),
            instance: Some(options.identity.clone()),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            options,
            metrics,
            failures: Mutex::new(HashMap::new()),
            due: Mutex::new(HashMap::new()),
        }
    }
}

/// A status update failed (the reconcile is retried).
#[derive(Debug, thiserror::Error)]
#[error("updating the status of Environment {resource}: {source}")]
pub struct Error {
    resource: String,
    #[source]
    source: kube::Error,
}

pub fn error_policy(env: Arc<Environment>, error: &Error, _: Arc<Context>) -> Action {
    log(
        "error",
        "reconcile failed",
        &[
            ("environment", &resource_name(&env)),
            ("error", &error.to_string()),
        ],
    );
    Action::requeue(Duration::from_secs(10))
}

fn resource_name(env: &Environment) -> String {
    format!("{}/{}", env.namespace().unwrap_or_default(), env.name_any())
}

/// What a run found besides its outcome, for Events and notifications.
#[derive(Default)]
struct Found {
    fetched: Option<git::Fetched>,
    changes: Vec<String>,
    calls: Option<runner::ApiCalls>,
}

fn failed(reason: &str, message: String, stalled: bool) -> Outcome {
    Outcome::Failed {
        reason: reason.into(),
        message,
        stalled,
        commit: None,
        plan: None,
    }
}

/// What the reconcile knows of `env` besides the plan.
fn observe<'a>(env: &'a Environment, status: &'a EnvironmentStatus) -> Observed<'a> {
    Observed {
        generation: env.metadata.generation,
        status,
        requested_at: env.annotations().get(REQUESTED_AT).map(String::as_str),
        pushed_at: env.annotations().get(PUSHED_AT).map(String::as_str),
        drift: env.spec.drift,
    }
}

/// How long until `env` is due, if it is not yet and nothing asks for it sooner.
fn not_due(ctx: &Context, resource: &str, env: &Environment) -> Option<Duration> {
    let due = lock(&ctx.due).get(resource).copied()?;
    let none = EnvironmentStatus::default();
    let status = env.status.as_ref().unwrap_or(&none);
    let now = Instant::now();
    (!observe(env, status).changed() && now < due).then(|| due - now)
}

pub async fn reconcile(env: Arc<Environment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let resource = resource_name(&env);
    let namespace = env.namespace().unwrap_or_default();
    let api: Api<Environment> = Api::namespaced(ctx.client.clone(), &namespace);
    // the watch's echo of this controller's own status update is most of what arrives: told
    // apart from the cached copy, before any request (a stale cached status can only make it
    // look changed, and the fresh read below decides again)
    if let Some(wait) = not_due(&ctx, &resource, &env) {
        return Ok(Action::requeue(wait));
    }
    // the cache may not hold this controller's last status update yet: read it fresh
    let env = match api.get_status(&env.name_any()).await {
        Ok(fresh) => Arc::new(fresh),
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Action::await_change()),
        Err(source) => return Err(Error { resource, source }),
    };
    if let Some(wait) = not_due(&ctx, &resource, &env) {
        return Ok(Action::requeue(wait));
    }
    let status = env.status.clone().unwrap_or_default();
    let observed = observe(&env, &status);
    let interval = decide::parse_duration(&env.spec.interval);
    let mut found = Found::default();
    let outcome = match &interval {
        _ if env.spec.suspend => Outcome::Suspended,
        Err(e) => failed("InvalidSpec", format!("spec.interval: {e}"), true),
        Ok(_) => run_once(&env, &ctx, &api, &observed, &mut found).await,
    };
    let next = decide::next_status(&status, &outcome, &observed, &crate::timestamp());
    let patched = if next == status {
        Ok(())
    } else {
        patch_status(&api, &env, &next).await
    };
    // what happened is recorded (Event, notification) even if the status could not be
    record(&env, &ctx, &outcome, &status, &found, started.elapsed()).await;
    patched?;
    let interval = interval.unwrap_or(Duration::from_secs(300));
    let failures = {
        let mut all = lock(&ctx.failures);
        if matches!(outcome, Outcome::Failed { .. }) {
            let n = all.entry(resource.clone()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        } else {
            all.remove(&resource);
            0
        }
    };
    let wait = match outcome {
        Outcome::Suspended => None,
        Outcome::Failed { .. } => Some(decide::backoff(failures, interval)),
        _ => Some(interval),
    };
    let mut due = lock(&ctx.due);
    Ok(match wait {
        None => {
            due.remove(&resource);
            Action::await_change()
        }
        Some(wait) => {
            due.insert(resource, Instant::now() + wait);
            Action::requeue(wait)
        }
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn patch_status(
    api: &Api<Environment>,
    env: &Environment,
    status: &EnvironmentStatus,
) -> Result<(), Error> {
    api.patch_status(
        &env.name_any(),
        &PatchParams::default(),
        &Patch::Merge(status.merge_patch()),
    )
    .await
    .map(|_| ())
    .map_err(|source| Error {
        resource: resource_name(env),
        source,
    })
}

/// Reads a Secret of the Environment's namespace.
async fn secret(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<BTreeMap<String, String>, String> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let secret = api
        .get(name)
        .await
        .map_err(|e| format!("cannot read Secret {namespace}/{name}: {e}"))?;
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in secret.data.unwrap_or_default() {
        values.insert(k, String::from_utf8_lossy(&v.0).into_owned());
    }
    for (k, v) in secret.string_data.unwrap_or_default() {
        values.insert(k, v);
    }
    Ok(values)
}

/// The process environment of the Environment's runs, from its Secrets.
async fn run_spec(
    env: &Environment,
    ctx: &Context,
    repo: String,
    dir: &std::path::Path,
) -> Result<RunSpec, Outcome> {
    let namespace = env.namespace().unwrap_or_default();
    let missing = |message: String| failed("SecretUnreadable", message, false);
    let mut vars = Vec::new();
    let mut removed = Vec::new();
    if let Some(reference) = &env.spec.decryption {
        let name = &reference.secret_ref.name;
        let values = secret(ctx, &namespace, name).await.map_err(missing)?;
        let identity = values
            .get("identity")
            .or_else(|| {
                values
                    .iter()
                    .find(|(k, _)| k.ends_with(".agekey"))
                    .map(|(_, v)| v)
            })
            .ok_or_else(|| {
                missing(format!(
                    "Secret {namespace}/{name} has no key `identity` (nor one ending in .agekey)"
                ))
            })?;
        vars.push(("ENVBOOT_AGE_IDENTITY".to_string(), identity.clone()));
        removed.push("ENVBOOT_AGE_IDENTITY_FILE".to_string());
    }
    if let Some(reference) = &env.spec.aws {
        let values = secret(ctx, &namespace, &reference.secret_ref.name)
            .await
            .map_err(missing)?;
        // the Environment's credentials replace the controller's, never mix with them: every
        // AWS variable the controller has (a role, a profile, a web identity) is removed, and
        // so is the instance's own role
        removed.extend(
            std::env::vars_os()
                .filter_map(|(k, _)| k.into_string().ok())
                .filter(|k| k.starts_with("AWS_")),
        );
        vars.push(("AWS_EC2_METADATA_DISABLED".to_string(), "true".to_string()));
        vars.extend(
            values
                .into_iter()
                .filter(|(k, _)| AWS_KEYS.contains(&k.as_str())),
        );
    }
    if let Some(reference) = &env.spec.kube_config {
        let name = &reference.secret_ref.name;
        let values = secret(ctx, &namespace, name).await.map_err(missing)?;
        let config = values
            .get("kubeconfig")
            .ok_or_else(|| missing(format!("Secret {namespace}/{name} has no key `kubeconfig`")))?;
        // a kubeconfig that runs a program (an exec credential plugin) would run it in the
        // controller's pod, with its rights
        let runs_a_program = serde_yaml_ng::from_str::<serde_json::Value>(config)
            .ok()
            .and_then(|c| c["users"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .any(|u| !u["user"]["exec"].is_null() || !u["user"]["auth-provider"].is_null());
        if runs_a_program {
            return Err(failed(
                "InvalidSpec",
                format!("the kubeconfig in Secret {namespace}/{name} runs a program (exec or auth-provider): give a token or a client certificate"),
                true,
            ));
        }
        let path = dir.join("kubeconfig");
        std::fs::write(&path, config).map_err(|e| {
            failed(
                "PlanFailed",
                format!("cannot write the kubeconfig: {e}"),
                false,
            )
        })?;
        vars.push(("KUBECONFIG".to_string(), path.display().to_string()));
    }
    let timeout = match env.spec.timeout.as_deref().map(decide::parse_duration) {
        None => DEFAULT_TIMEOUT,
        Some(Ok(t)) => t,
        Some(Err(e)) => return Err(failed("InvalidSpec", format!("spec.timeout: {e}"), true)),
    };
    Ok(RunSpec {
        program: ctx.options.program.clone(),
        repo,
        vars,
        removed,
        timeout,
    })
}

async fn run_once(
    env: &Environment,
    ctx: &Context,
    api: &Api<Environment>,
    observed: &Observed<'_>,
    found: &mut Found,
) -> Outcome {
    let spec = &env.spec;
    let reference = spec.source.reference.clone().unwrap_or_default();
    if let Err(e) = git::check_reference(&reference) {
        return failed("InvalidSpec", e, true);
    }
    let namespace = env.namespace().unwrap_or_default();
    let credentials = match &spec.source.secret_ref {
        None => git::Credentials::default(),
        Some(r) => match secret(ctx, &namespace, &r.name).await {
            Ok(values) => git::Credentials {
                username: values.get("username").cloned(),
                password: values.get("password").cloned(),
            },
            Err(e) => return failed("SecretUnreadable", e, false),
        },
    };
    let mirror = ctx
        .options
        .cache_dir
        .join("git")
        .join(&namespace)
        .join(format!("{}.git", env.name_any()));
    let url = spec.source.url.clone();
    if url.starts_with("file://") && !ctx.options.allow_local_repositories {
        return failed(
            "InvalidSpec",
            "spec.source.url: file:// repositories are refused (another Environment's mirror \
             would be readable); start the controller with --allow-local-repositories to allow them"
                .into(),
            true,
        );
    }
    let fetched = {
        let (mirror, reference) = (mirror.clone(), reference.clone());
        let fetch = tokio::task::spawn_blocking(move || {
            if let Some(parent) = mirror.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            git::fetch(&mirror, &url, &reference, &credentials)
        });
        // libgit2 has no timeout of its own: a server that stops answering must not hold
        // this Environment (and a concurrency slot) forever
        tokio::time::timeout(FETCH_TIMEOUT, fetch).await
    };
    let fetched = match fetched {
        Ok(Ok(Ok(f))) => f,
        Ok(Ok(Err(e))) => return failed("GitFetchFailed", e.to_string(), false),
        Ok(Err(e)) => return failed("GitFetchFailed", e.to_string(), false),
        Err(_) => {
            return failed(
                "GitFetchFailed",
                format!(
                    "fetching {} took longer than {}s",
                    git::redact_url(&spec.source.url),
                    FETCH_TIMEOUT.as_secs()
                ),
                false,
            )
        }
    };
    found.fetched = Some(fetched.clone());
    let commit = fetched.commit.clone();
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            return failed(
                "PlanFailed",
                format!("cannot make a temporary folder: {e}"),
                false,
            )
        }
    };
    let run = match run_spec(env, ctx, format!("file://{}", mirror.display()), dir.path()).await {
        Ok(r) => r,
        Err(outcome) => return outcome,
    };
    let planned = match runner::plan(&run, &spec.environment, &commit, dir.path()).await {
        Ok(p) => p,
        Err(e) => return failed_run(e, "Plan", &commit, None),
    };
    found.changes = planned.changes.clone();
    let plan = planned.summary;
    let why = match decide::decide(observed, &commit, &plan) {
        Decision::InSync => return Outcome::InSync { commit, plan },
        Decision::ReportDrift => return Outcome::Drifted { commit, plan },
        Decision::Apply(why) => why,
    };
    // the apply may take minutes: say so first
    let mut applying = observed.status.clone();
    decide::set_condition(
        &mut applying.conditions,
        "Reconciling",
        true,
        "Progressing",
        &format!("applying commit {}: {plan}", decide::short(&commit)),
        &crate::timestamp(),
        observed.generation,
    );
    if let Err(e) = patch_status(api, env, &applying).await {
        log(
            "warn",
            "cannot mark the Environment Reconciling",
            &[("error", &e.to_string())],
        );
    }
    match runner::apply(&run, &planned).await {
        Ok(calls) => {
            found.calls = Some(calls);
            Outcome::Applied { commit, why, plan }
        }
        Err(e) => failed_run(e, "Apply", &commit, Some(plan)),
    }
}

fn failed_run(
    e: runner::RunError,
    stage: &str,
    commit: &str,
    plan: Option<PlanSummary>,
) -> Outcome {
    let (reason, stalled) = e.reason(stage);
    Outcome::Failed {
        reason,
        message: e.message,
        stalled,
        commit: Some(commit.to_string()),
        plan,
    }
}

fn truncate(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let mut end = limit.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// Events, metrics, logs and notifications for `outcome`.
async fn record(
    env: &Environment,
    ctx: &Context,
    outcome: &Outcome,
    before: &EnvironmentStatus,
    found: &Found,
    took: Duration,
) {
    let resource = resource_name(env);
    let labels = EnvironmentLabels {
        namespace: env.namespace().unwrap_or_default(),
        name: env.name_any(),
    };
    let m = &ctx.metrics;
    m.reconciles
        .get_or_create(&ResultLabels {
            namespace: labels.namespace.clone(),
            name: labels.name.clone(),
            result: outcome.result().into(),
        })
        .inc();
    m.duration
        .get_or_create(&labels)
        .observe(took.as_secs_f64());
    if let Some(calls) = &found.calls {
        m.count_calls(calls);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let ready = matches!(outcome, Outcome::InSync { .. } | Outcome::Applied { .. });
    if ready {
        m.last_applied.get_or_create(&labels).set(now);
    }
    if !matches!(outcome, Outcome::Suspended) {
        m.ready.get_or_create(&labels).set(i64::from(ready));
    }
    if matches!(
        outcome,
        Outcome::Drifted { .. }
            | Outcome::Applied {
                why: Why::DriftHealed,
                ..
            }
    ) {
        m.drift.get_or_create(&labels).inc();
    }

    let audit = found.fetched.as_ref().map_or_else(String::new, |f| {
        format!(
            "commit {} (\"{}\") by {}, run by {}",
            decide::short(&f.commit),
            f.subject,
            f.author,
            ctx.options.identity
        )
    });
    let changes = found.changes.join(", ");
    let (event, notify_as): (Option<Event>, Option<&str>) = match outcome {
        Outcome::Applied { why, plan, .. } => (
            Some(Event {
                type_: EventType::Normal,
                reason: why.reason().into(),
                note: Some(truncate(&format!("{audit}: {plan}: {changes}"), NOTE_LIMIT)),
                action: "Apply".into(),
                secondary: None,
            }),
            Some(if *why == Why::DriftHealed {
                "drift_healed"
            } else {
                "applied"
            }),
        ),
        Outcome::Drifted { plan, .. } => (
            Some(Event {
                type_: EventType::Warning,
                reason: "DriftDetected".into(),
                note: Some(truncate(&format!("{audit}: {plan}: {changes}"), NOTE_LIMIT)),
                action: "Plan".into(),
                secondary: None,
            }),
            // once, when it starts
            (before
                .conditions
                .iter()
                .find(|c| c.type_ == "Drifted")
                .map(|c| c.status.as_str())
                != Some("True"))
            .then_some("drifted"),
        ),
        Outcome::Failed {
            reason, message, ..
        } => (
            Some(Event {
                type_: EventType::Warning,
                reason: reason.clone(),
                note: Some(truncate(message, NOTE_LIMIT)),
                action: "Reconcile".into(),
                secondary: None,
            }),
            // once per distinct error, not at every retry
            (before.last_error.as_deref() != Some(message.as_str())).then_some("failed"),
        ),
        Outcome::InSync { .. } | Outcome::Suspended => (None, None),
    };
    let result = outcome.result();
    let commit = found
        .fetched
        .as_ref()
        .map(|f| f.commit.as_str())
        .unwrap_or("");
    match outcome {
        Outcome::Failed { message, .. } => log(
            "error",
            "reconcile failed",
            &[
                ("environment", &resource),
                ("commit", commit),
                ("error", message),
            ],
        ),
        _ => log(
            "info",
            "reconciled",
            &[
                ("environment", &resource),
                ("result", result),
                ("commit", commit),
                ("seconds", &format!("{:.3}", took.as_secs_f64())),
                ("changes", &changes),
            ],
        ),
    }
    if let Some(event) = event {
        if let Err(e) = ctx.recorder.publish(&event, &env.object_ref(&())).await {
            log(
                "warn",
                "cannot publish an Event",
                &[("environment", &resource), ("error", &e.to_string())],
            );
        }
    }
    if let (Some(kind), false) = (notify_as, ctx.options.notify.is_empty()) {
        let summary = match outcome {
            Outcome::Applied { plan, .. } | Outcome::Drifted { plan, .. } => {
                truncate(&format!("{plan}: {changes}"), NOTE_LIMIT)
            }
            Outcome::Failed { message, .. } => truncate(message, NOTE_LIMIT),
            _ => String::new(),
        };
        let notification = notify::Notification {
            event: kind.into(),
            resource: resource.clone(),
            environment: env.spec.environment.clone(),
            commit: found.fetched.as_ref().map(|f| f.commit.clone()),
            author: found.fetched.as_ref().map(|f| f.author.clone()),
            summary,
            reporter: ctx.options.identity.clone(),
        };
        let failures = notify::send(&ctx.options.notify, &notification).await;
        let sent = ctx.options.notify.len() - failures.len();
        m.notifications
            .get_or_create(&crate::metrics::NotificationLabels {
                result: "sent".into(),
            })
            .inc_by(sent as u64);
        for failure in failures {
            m.notifications
                .get_or_create(&crate::metrics::NotificationLabels {
                    result: "failed".into(),
                })
                .inc();
            log(
                "warn",
                "notification failed",
                &[("environment", &resource), ("error", &failure)],
            );
        }
    }
}
