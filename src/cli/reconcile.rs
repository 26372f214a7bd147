//! `envboot reconcile`: apply whenever Git moves or the environment drifts.

use clap::Args;
use envboot::engine::{self, exit, Goal, PlanOptions};
use envboot::plan::Action;

use super::shared::{parse_duration, Parallelism, Shutdown, Takeover, Target};

/// Keep the live environment matching Git: every interval, read the repository again and apply
/// when the commit changed or the environment drifted (self-healing), until stopped (Ctrl-C, SIGTERM).
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    takeover: Takeover,
    #[command(flatten)]
    parallelism: Parallelism,
    /// Keep going; without it, reconcile once and exit.
    #[arg(long)]
    watch: bool,
    /// Time between two rounds (e.g. 30s, 5m).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    interval: std::time::Duration,
}

/// Reconciles once, or every `interval` until SIGINT or SIGTERM. A failed round is reported and
/// retried at the next one.
pub async fn run(args: ReconcileArgs) -> engine::Result<u8> {
    let options = PlanOptions {
        parallelism: args.parallelism.get(),
        ..args.takeover.plan_options()
    };
    let (target, interval) = (&args.target, args.interval);
    if !args.watch {
        let line = reconcile_once(target, options).await?;
        println!("reconcile: {line}");
        return Ok(exit::OK);
    }
    let mut shutdown = Shutdown::listen();
    loop {
        match reconcile_once(target, options).await {
            Ok(line) => println!("reconcile: {line}"),
            Err(e) => println!(
                "reconcile: failed, will retry in {}s: {e}",
                interval.as_secs()
            ),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            () = shutdown.requested() => break,
        }
    }
    println!("reconcile: stopped");
    Ok(exit::OK)
}

/// One reconcile round: read Git, plan, apply if anything differs. Returns a one-line summary.
async fn reconcile_once(target: &Target, options: PlanOptions) -> engine::Result<String> {
    let loaded = engine::load_for_cluster(&target.source_options(), target.environment())?;
    let commit = loaded.snapshot.short_commit().to_string();
    let lock = engine::lock(&loaded, &engine::holder("reconcile")).await?;
    let result = async {
        let plan = engine::plan(&loaded, Goal::Apply, options).await?;
        if !plan.summary().has_changes() {
            return Ok(format!("commit {commit}: in sync"));
        }
        let changes: Vec<String> = plan
            .changes()
            .filter(|c| c.action != Action::NoOp)
            .map(|c| format!("{} {} {}", c.action.symbol(), c.kind, c.address))
            .collect();
        engine::apply(&plan, &mut |_| {}).await?;
        Ok(format!(
            "commit {commit}: applied {} change(s): {}",
            changes.len(),
            changes.join(", ")
        ))
    }
    .await;
    if let Some(lock) = lock {
        lock.release().await;
    }
    result
}
