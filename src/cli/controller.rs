//! `envboot controller`: run envboot as a Kubernetes controller of `Environment` resources;
//! `envboot sync`: ask it to reconcile one now.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use envboot::controller::{self, notify};
use envboot::engine::{self, exit};

use super::shared::{parse_duration, Shutdown};

#[derive(Debug, Subcommand)]
pub enum ControllerCommand {
    Run(Box<RunArgs>),
    /// Print the Environment CustomResourceDefinition (`| kubectl apply -f -`).
    Crd,
}

/// Reconcile every Environment resource (envboot.dev/v1alpha1) it watches: fetch the Git
/// revision each follows, plan, and apply when the commit moved or the environment drifted.
/// Serves /metrics, /healthz, /readyz and the Git push webhook /hook; stops on SIGTERM or
/// Ctrl-C after the runs in flight finish.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Watch only this namespace (default: every namespace).
    #[arg(long, short = 'n', value_name = "NAMESPACE")]
    namespace: Option<String>,
    /// Reconcile only the Environments labelled envboot.dev/shard=KEY (without it: only those
    /// without that label).
    #[arg(long, value_name = "KEY")]
    shard: Option<String>,
    /// At most N Environments reconciled at once.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// Address for /metrics, /healthz, /readyz and /hook.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Run without leader election (only when a single replica runs).
    #[arg(long)]
    no_leader_election: bool,
    /// Namespace of the leader Lease (default: $POD_NAMESPACE, else `default`).
    #[arg(long, value_name = "NAMESPACE")]
    leader_election_namespace: Option<String>,
    /// Name of the leader Lease (default: envboot-controller, or envboot-controller-<shard>).
    #[arg(long, value_name = "NAME")]
    leader_election_id: Option<String>,
    /// How long a leader's Lease lasts unrenewed (it renews every 2s).
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
    leader_lease: std::time::Duration,
    /// File holding the Git push webhook's shared secret; without it /hook is off.
    #[arg(long, value_name = "FILE")]
    webhook_secret_file: Option<PathBuf>,
    /// Notify this webhook on apply, drift and failure: `slack=URL`, `webhook=URL` (generic
    /// JSON) or a URL. Repeatable; also ENVBOOT_NOTIFY, comma-separated.
    #[arg(
        long,
        value_name = "TARGET",
        env = "ENVBOOT_NOTIFY",
        value_delimiter = ',',
        hide_env_values = true
    )]
    notify: Vec<notify::Target>,
    /// Where Git mirrors are kept (default: ~/.cache/envboot/controller).
    #[arg(long, value_name = "DIR", env = "ENVBOOT_CONTROLLER_CACHE")]
    cache_dir: Option<PathBuf>,
    /// Accept file:// repository URLs in Environments (single-tenant clusters only: one
    /// Environment could read another's Git mirror).
    #[arg(long)]
    allow_local_repositories: bool,
    /// This replica's name in the Lease, Events and notifications (default: $POD_NAME, else
    /// host and process id).
    #[arg(long, value_name = "NAME")]
    identity: Option<String>,
}

/// Ask the controller to reconcile an Environment resource now, and wait for the result. Under
/// `drift: Report` this also applies the drift it reported.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The Environment resource's name.
    name: String,
    /// Its namespace (default: the kubeconfig context's).
    #[arg(long, short = 'n', value_name = "NAMESPACE")]
    namespace: Option<String>,
    /// How long to wait for the controller.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    timeout: std::time::Duration,
}

pub async fn run(command: ControllerCommand) -> engine::Result<u8> {
    match command {
        ControllerCommand::Crd => {
            let yaml = controller::crd::definition_yaml()
                .map_err(|e| engine::Error::File(format!("cannot write the definition: {e}")))?;
            print!("{yaml}");
            Ok(exit::OK)
        }
        ControllerCommand::Run(args) => run_controller(*args).await,
    }
}

fn home_cache() -> PathBuf {
    std::env::var_os("HOME")
        .map_or_else(std::env::temp_dir, PathBuf::from)
        .join(".cache/envboot/controller")
}

async fn run_controller(args: RunArgs) -> engine::Result<u8> {
    let webhook_secret = match &args.webhook_secret_file {
        None => None,
        Some(path) => {
            let secret = std::fs::read(path)
                .map_err(|e| engine::Error::File(format!("cannot read {}: {e}", path.display())))?;
            let secret = secret.trim_ascii().to_vec();
            if secret.is_empty() {
                return Err(engine::Error::File(format!("{} is empty", path.display())));
            }
            Some(secret)
        }
    };
    let program = std::env::current_exe()
        .map_err(|e| engine::Error::File(format!("cannot tell where envboot is: {e}")))?;
    let identity = args
        .identity
        .or_else(|| std::env::var("POD_NAME").ok())
        .unwrap_or_else(|| format!("{}-{}", envboot::kube::lock::hostname(), std::process::id()));
    let leader = (!args.no_leader_election).then(|| {
        (
            args.leader_election_namespace
                .or_else(|| std::env::var("POD_NAMESPACE").ok())
                .unwrap_or_else(|| "default".into()),
            args.leader_election_id
                .unwrap_or_else(|| match &args.shard {
                    Some(shard) => format!("envboot-controller-{shard}"),
                    None => "envboot-controller".into(),
                }),
        )
    });
    let lease = args.leader_lease.max(std::time::Duration::from_secs(3));
    let options = controller::Options {
        namespace: args.namespace,
        shard: args.shard,
        concurrency: args.concurrency,
        listen: args.listen,
        leader,
        leader_timing: controller::leader::Timing {
            lease,
            renew_deadline: lease * 2 / 3,
            retry: std::time::Duration::from_secs(2).min(lease / 4),
        },
        webhook_secret,
        notify: args.notify,
        cache_dir: args.cache_dir.unwrap_or_else(home_cache),
        allow_local_repositories: args.allow_local_repositories,
        program,
        identity,
    };
    let mut stop = Shutdown::listen();
    let shutdown = async move {
        stop.requested().await;
        controller::log("info", "stopping: letting the runs in flight finish", &[]);
    };
    controller::run(options, shutdown).await?;
    Ok(exit::OK)
}

pub async fn sync(args: SyncArgs) -> engine::Result<u8> {
    let synced = controller::sync(args.namespace.as_deref(), &args.name, args.timeout).await?;
    let ready = synced.ready.as_ref();
    println!(
        "Environment {}: {} ({}): {}",
        args.name,
        ready.map_or("Unknown", |c| c.status.as_str()),
        ready.map_or("no Ready condition", |c| c.reason.as_str()),
        ready.map_or("", |c| c.message.as_str()),
    );
    Ok(if synced.drifted {
        exit::CHANGES
    } else if ready.is_some_and(|c| c.status == "True") {
        exit::OK
    } else {
        exit::FAILED
    })
}
