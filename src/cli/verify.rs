//! `envboot verify`: everything declared exists, matches Git and is ready.

use clap::Args;
use envboot::engine::{self, exit, Goal};

use super::shared::{parse_duration, Takeover, Target};

/// Check that everything declared exists, matches Git and is ready: exit 0, or 2 with a report.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    takeover: Takeover,
    /// How long to wait for objects to become ready.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    timeout: std::time::Duration,
}

pub async fn run(args: VerifyArgs) -> engine::Result<u8> {
    let loaded = args.target.load_for_cluster()?;
    let plan = engine::plan(&loaded, Goal::Apply, args.takeover.plan_options()).await?;
    let mut ok = true;
    if plan.summary().has_changes() {
        ok = false;
        println!("Not as declared: the live environment differs from Git:");
        print!("{}", plan.to_text());
    }
    let not_ready = plan.not_ready(args.timeout).await?;
    if !not_ready.is_empty() {
        ok = false;
        println!(
            "Not ready after {}s:\n{}",
            args.timeout.as_secs(),
            not_ready.join("\n")
        );
    }
    if ok {
        println!(
            "Verified: everything declared exists, matches Git and is ready ({} resources).",
            plan.summary().unchanged
        );
        Ok(exit::OK)
    } else {
        Ok(exit::CHANGES)
    }
}
