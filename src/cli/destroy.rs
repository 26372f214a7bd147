//! `envboot destroy`: delete everything the environment owns, then the leak report.

use clap::Args;
use envboot::engine::{self, Goal, PlanOptions};

use super::execute::{execute, Run};
use super::shared::{OutputFormat, Parallelism, Target};

/// Delete everything the environment owns (found by its tags and labels), and nothing else.
#[derive(Debug, Args)]
pub struct DestroyArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    output: OutputFormat,
    #[command(flatten)]
    parallelism: Parallelism,
    /// Destroy without asking `Do you want to perform these actions?` (CI, scripts).
    #[arg(long)]
    auto_approve: bool,
}

pub async fn run(args: DestroyArgs) -> engine::Result<u8> {
    let options = PlanOptions {
        parallelism: args.parallelism.get(),
        ..PlanOptions::default()
    };
    let json = args.output.json_unless_terminal();
    let run = Run {
        goal: Goal::Destroy,
        options,
        json,
        auto_approve: args.auto_approve,
        saved: None,
    };
    execute(&args.target, run).await
}
