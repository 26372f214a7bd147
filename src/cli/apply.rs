//! `envboot apply`: make the live environment match Git.

use clap::Args;
use envboot::engine::{self, Goal, PlanOptions};

use super::execute::execute;
use super::shared::{parse_duration, OutputFormat, Parallelism, Takeover, Target};

/// Make the live environment match Git: create, update, replace and delete what differs.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    takeover: Takeover,
    #[command(flatten)]
    output: OutputFormat,
    #[command(flatten)]
    parallelism: Parallelism,
    /// Then wait at most this long (e.g. 90s, 5m) for every Kubernetes object to be ready
    /// (Deployments rolled out, Jobs complete, CRDs established, ...); fail with a report if not.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    wait: Option<std::time::Duration>,
}

pub async fn run(args: ApplyArgs) -> engine::Result<u8> {
    let options = PlanOptions {
        wait: args.wait,
        parallelism: args.parallelism.get(),
        ..args.takeover.plan_options()
    };
    let json = args.output.json_unless_terminal();
    execute(&args.target, Goal::Apply, options, json).await
}
