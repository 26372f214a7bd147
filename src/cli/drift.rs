//! `envboot drift`: compare the live environment with Git.

use clap::Args;
use envboot::engine::{self, exit, Goal};

use super::shared::{Takeover, Target};

/// Compare the live environment with Git: exit 0 in sync, 2 drifted (the diff is printed), 1 error.
/// `apply` heals drift.
#[derive(Debug, Args)]
pub struct DriftArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    takeover: Takeover,
}

pub async fn run(args: DriftArgs) -> engine::Result<u8> {
    let loaded = args.target.load_for_cluster()?;
    let plan = engine::plan(&loaded, Goal::Apply, args.takeover.plan_options()).await?;
    let commit = loaded.snapshot.short_commit();
    if plan.summary().has_changes() {
        println!("Drift: the live environment differs from Git (commit {commit}):");
        print!("{}", plan.to_text());
        Ok(exit::CHANGES)
    } else {
        println!("In sync: the live environment matches Git (commit {commit}).");
        Ok(exit::OK)
    }
}
