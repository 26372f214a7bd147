//! `envboot status`: which commit is live, when it was applied, whether it drifted.

use clap::Args;
use envboot::engine::{self, exit, Goal};

use super::shared::{Takeover, Target};

/// Which commit is live, when it was applied, and whether the environment drifted from Git.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    takeover: Takeover,
}

pub async fn run(args: StatusArgs) -> engine::Result<u8> {
    let target = &args.target;
    let loaded = target.load_for_cluster()?;
    let plan = engine::plan(&loaded, Goal::Apply, args.takeover.plan_options()).await?;
    let live = plan.live();
    let short = |c: &str| c.chars().take(12).collect::<String>();
    println!("Environment {}", target.environment());
    println!(
        "  Git:    {} ({}) {}",
        loaded.snapshot.short_commit(),
        target.source.revision,
        loaded.snapshot.summary
    );
    match &live.commit {
        None => println!("  Live:   nothing exists yet"),
        Some(commit) => {
            let when = live
                .applied_at
                .as_deref()
                .map(|t| format!(", applied {t}"))
                .unwrap_or_default();
            let by: Vec<String> = live
                .revisions
                .iter()
                .map(|(r, n)| format!("{} x{n}", short(r)))
                .collect();
            println!(
                "  Live:   {}{when}; resources by the commit that last changed them: {}",
                short(commit),
                by.join(", ")
            );
        }
    }
    let summary = plan.summary();
    if summary.has_changes() {
        let changes = summary.create + summary.update + summary.replace + summary.delete;
        println!(
            "  Drift:  {changes} change(s) between Git and the live environment: `envboot plan {}` shows them",
            target.environment()
        );
    } else {
        println!("  Drift:  none ({} resources match Git)", summary.unchanged);
    }
    Ok(exit::OK)
}
