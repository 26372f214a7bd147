//! envboot as a Kubernetes controller: `Environment` resources (`envboot.dev/v1alpha1`) name a
//! Git repository, a revision and an environment; the controller keeps each one applied.
//!
//! # Guarantees
//! - Each reconcile is the CLI's: `envboot plan --out` of the fetched commit, then `envboot apply`
//!   of exactly that saved plan, in a process of its own with only that Environment's
//!   credentials (see [`runner`]). The per-environment lock, ownership rules and exit codes are
//!   the CLI's, so two replicas, or a replica and a person, never apply one environment at once.
//! - One Environment's failure never stops another's: each is retried with its own backoff.
//! - Only the leader (a Lease, [`leader`]) reconciles; a shard (`--shard`) watches only the
//!   Environments labelled `envboot.dev/shard=<shard>`, the unsharded controller those without it.
//! - A graceful shutdown lets the runs in flight finish; one killed mid-apply is finished by the
//!   next reconcile (the CLI's lock expires, and apply is idempotent).
//! - No secret reaches a log line, a status, an Event, a metric or a notification.

pub mod crd;
pub mod decide;
pub mod git;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod notify;
mod reconcile;
pub mod runner;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::StreamExt;
use kube::api::{Api, ListParams};
use kube::runtime::{watcher, Controller};
use kube::Client;

pub use crd::{Environment, EnvironmentSpec, EnvironmentStatus};

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Watch only this namespace (default: all).
    pub namespace: Option<String>,
    /// Watch only the Environments labelled `envboot.dev/shard=<shard>`.
    pub shard: Option<String>,
    /// At most this many Environments reconciled at once.
    pub concurrency: u16,
    /// Where `/metrics`, `/healthz`, `/readyz` and `/hook` are served.
    pub listen: SocketAddr,
    /// Leader election: the Lease's namespace and name (none: this replica always leads).
    pub leader: Option<(String, String)>,
    pub leader_timing: leader::Timing,
    /// The Git push webhook's shared secret (none: `/hook` is off).
    pub webhook_secret: Option<Vec<u8>>,
    pub notify: Vec<notify::Target>,
    /// Where the Git mirrors are kept.
    pub cache_dir: PathBuf,
    /// Accept `file://` repositories in specs (one Environment could read another's mirror:
    /// for a single tenant only).
    pub allow_local_repositories: bool,
    /// The envboot binary each run executes.
    pub program: PathBuf,
    /// This replica's name (its pod's name), in the Lease, Events and notifications.
    pub identity: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to the cluster: {0}")]
    Connect(#[source] kube::Error),
    #[error("cannot list Environments (is the resource installed? `envboot controller crd | kubectl apply -f -`): {0}")]
    NoDefinition(#[source] kube::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("stopped leading: {0}")]
    LeadershipLost(String),
    #[error("{call} Environment {resource}: {source}")]
    Call {
        call: &'static str,
        resource: String,
        #[source]
        source: kube::Error,
    },
    #[error("Environment {resource} did not handle the sync within {seconds}s (is the controller running, and is the Environment in its shard?)")]
    SyncTimeout { resource: String, seconds: u64 },
}

/// What `envboot sync` saw once the controller handled the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    /// The Ready condition's status, reason and message.
    pub ready: Option<crd::Condition>,
    pub drifted: bool,
    pub commit: Option<String>,
}

/// Asks the controller to reconcile Environment `namespace/name` now (the
/// `envboot.dev/requested-at` annotation, which also applies drift under `drift: Report`),
/// and waits up to `wait` for it to be handled.
///
/// # Errors
/// The Environment cannot be read or annotated, or the wait ran out.
pub async fn sync(
    namespace: Option<&str>,
    name: &str,
    wait: std::time::Duration,
) -> Result<Synced, Error> {
    let client = Client::try_default().await.map_err(Error::Connect)?;
    let api: Api<Environment> = match namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::default_namespaced(client),
    };
    let resource = format!("{}/{name}", namespace.unwrap_or("(current namespace)"));
    let call = |call: &'static str| {
        let resource = resource.clone();
        move |source| Error::Call {
            call,
            resource,
            source,
        }
    };
    let requested = k8s_openapi::jiff::Timestamp::now().to_string();
    let patch = serde_json::json!({"metadata": {"annotations": {crd::REQUESTED_AT: requested}}});
    api.patch(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .map_err(call("annotating"))?;
    let handled =
        kube::runtime::wait::await_condition(api, name, move |e: Option<&Environment>| {
            e.and_then(|e| e.status.as_ref())
                .and_then(|s| s.last_handled_requested_at.as_deref())
                == Some(requested.as_str())
        });
    let environment = match tokio::time::timeout(wait, handled).await {
        Err(_) => {
            return Err(Error::SyncTimeout {
                resource,
                seconds: wait.as_secs(),
            })
        }
        Ok(Err(e)) => {
            return Err(Error::Call {
                call: "watching",
                resource,
                source: kube::Error::Service(Box::new(e)),
            })
        }
        Ok(Ok(e)) => e,
    };
    let status = environment.and_then(|e| e.status).unwrap_or_default();
    let condition = |t: &str| status.conditions.iter().find(|c| c.type_ == t).cloned();
    Ok(Synced {
        ready: condition("Ready"),
        drifted: condition("Drifted").is_some_and(|c| c.status == "True"),
        commit: status.last_applied_commit.clone(),
    })
}

/// Writes one structured log line (JSON) on standard output.
pub fn log(level: &str, message: &str, fields: &[(&str, &str)]) {
    let mut line = serde_json::Map::new();
    line.insert("ts".into(), timestamp().into());
    line.insert("level".into(), level.into());
    line.insert("msg".into(), message.into());
    for (k, v) in fields {
        line.insert((*k).into(), (*v).into());
    }
    println!("{}", serde_json::Value::Object(line));
}

/// Now, in RFC 3339 to the second.
pub fn timestamp() -> String {
    let now = k8s_openapi::jiff::Timestamp::now();
    k8s_openapi::jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

/// Annotates every Environment (of this shard) following one of `urls` with
/// `envboot.dev/pushed-at`; returns how many.
async fn annotate_pushed(api: &Api<Environment>, selector: &str, urls: &[String]) -> Option<usize> {
    let list = match api.list(&ListParams::default().labels(selector)).await {
        Ok(list) => list,
        Err(e) => {
            log(
                "warn",
                "cannot list Environments for a push",
                &[("error", &e.to_string())],
            );
            return None;
        }
    };
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let mut queued = 0;
    for env in list.items {
        if !urls.contains(&http::normalize(&env.spec.source.url)) {
            continue;
        }
        let (Some(ns), Some(name)) = (
            env.metadata.namespace.as_deref(),
            env.metadata.name.as_deref(),
        ) else {
            continue;
        };
        let patch = serde_json::json!({"metadata": {"annotations": {crd::PUSHED_AT: now}}});
        let api: Api<Environment> = Api::namespaced(api.clone().into_client(), ns);
        match api
            .patch(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => queued += 1,
            Err(e) => log(
                "warn",
                "cannot queue a reconcile for a push",
                &[
                    ("environment", &format!("{ns}/{name}")),
                    ("error", &e.to_string()),
                ],
            ),
        }
    }
    Some(queued)
}

/// Runs the controller until `shutdown` resolves (then lets the runs in flight finish).
///
/// # Errors
/// The cluster cannot be reached, the resource is not installed, the address is taken, or this
/// replica stopped leading (its runs were stopped: exit, and let the Deployment restart it).
pub async fn run(
    options: Options,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let client = Client::try_default().await.map_err(Error::Connect)?;
    let api: Api<Environment> = match &options.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    api.list(&ListParams::default().limit(1))
        .await
        .map_err(Error::NoDefinition)?;
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|source| Error::Listen {
            addr: options.listen,
            source,
        })?;
    let listen = listener
        .local_addr()
        .map_or_else(|_| options.listen.to_string(), |a| a.to_string());

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };

    let selector = match &options.shard {
        Some(shard) => format!("{}={shard}", crd::SHARD_LABEL),
        None => format!("!{}", crd::SHARD_LABEL),
    };
    // any replica receives a push: it annotates the Environments that follow the repository,
    // and the leader's watch reconciles them
    let trigger: http::Trigger = {
        let (api, selector) = (api.clone(), selector.clone());
        Arc::new(move |urls: Vec<String>| {
            let (api, selector) = (api.clone(), selector.clone());
            Box::pin(async move { annotate_pushed(&api, &selector, &urls).await })
        })
    };
    let metrics = Arc::new(metrics::Metrics::default());
    let state = Arc::new(http::State {
        metrics: metrics.clone(),
        ready: false.into(),
        webhook_secret: options.webhook_secret.clone(),
        trigger,
    });
    tokio::spawn(http::serve(listener, state.clone(), stopped()));
    log(
        "info",
        "controller started",
        &[
            ("listen", &listen),
            ("identity", &options.identity),
            ("namespace", options.namespace.as_deref().unwrap_or("(all)")),
            ("shard", options.shard.as_deref().unwrap_or("(none)")),
        ],
    );

    let mut elector = options.leader.as_ref().map(|(ns, name)| {
        leader::Elector::new(
            Api::namespaced(client.clone(), ns),
            name,
            &options.identity,
            options.leader_timing,
        )
    });
    // a standby is ready: it serves, and takes over when the leader goes
    state.ready.store(true, Ordering::Relaxed);
    if let Some(elector) = elector.as_mut() {
        let say = |m: &str| log("info", m, &[]);
        tokio::select! {
            () = elector.acquire(&say) => {}
            () = stopped() => return Ok(()),
        }
        log("info", "leading", &[("lease", elector.identity())]);
    }
    metrics.leader.set(1);

    let context = Arc::new(reconcile::Context::new(
        client,
        options.clone(),
        metrics.clone(),
    ));
    let controller = Controller::new(api, watcher::Config::default().labels(&selector))
        .with_config(kube::runtime::controller::Config::default().concurrency(options.concurrency))
        .graceful_shutdown_on(stopped())
        .run(reconcile::reconcile, reconcile::error_policy, context)
        .for_each(|result| async move {
            if let Err(e) = result {
                log("error", "controller", &[("error", &e.to_string())]);
            }
        });
    let outcome = match elector.as_mut() {
        Some(elector) => {
            tokio::select! {
                () = controller => Ok(()),
                lost = elector.keep() => Err(Error::LeadershipLost(lost)),
            }
        }
        None => {
            controller.await;
            Ok(())
        }
    };
    metrics.leader.set(0);
    if let (Ok(()), Some(elector)) = (&outcome, &elector) {
        elector.release().await;
    }
    log("info", "controller stopped", &[]);
    outcome
}
