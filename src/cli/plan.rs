//! `envboot plan`: what apply would change, as text or one JSON document.

use clap::Args;
use envboot::engine::{self, exit, Goal};

use super::shared::{print_calls, OutputFormat, Takeover, Target};

/// Show what apply would change, without changing anything.
#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    takeover: Takeover,
    #[command(flatten)]
    output: OutputFormat,
    /// Exit 0 when there are no changes, 2 when there are, 1 on error.
    #[arg(long)]
    detailed_exitcode: bool,
}

pub async fn run(args: PlanArgs) -> engine::Result<u8> {
    let loaded = args.target.load()?;
    let plan = engine::plan(&loaded, Goal::Apply, args.takeover.plan_options()).await?;
    if args.output.json() {
        println!("{}", plan.to_json());
    } else {
        print!("{}", plan.to_text());
        print_calls(&plan);
    }
    Ok(if args.detailed_exitcode && plan.summary().has_changes() {
        exit::CHANGES
    } else {
        exit::OK
    })
}
