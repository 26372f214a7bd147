//! `envboot apply`: make the live environment match Git, or apply a saved plan.

use clap::Args;
use envboot::engine::{self, Goal, PlanOptions};

use super::execute::{execute, Run};
use super::shared::{parse_duration, OutputFormat, Parallelism, Takeover, Target};

/// Make the live environment match Git: create, update, replace and delete what differs.
/// `envboot apply FILE` applies the plan saved by `plan --out FILE`, without asking again, and
/// refuses it if the live environment changed since.
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
    /// Apply without asking `Do you want to perform these actions?` (CI, scripts).
    #[arg(long)]
    auto_approve: bool,
}

/// Whether the argument names a saved plan rather than an environment (whose names have no
/// `.` or `/`).
fn is_plan_file(argument: &str) -> bool {
    argument.contains(['.', '/']) || std::path::Path::new(argument).is_file()
}

pub async fn run(mut args: ApplyArgs) -> engine::Result<u8> {
    let mut options = PlanOptions {
        wait: args.wait,
        parallelism: args.parallelism.get(),
        ..args.takeover.plan_options()
    };
    let json = args.output.json_unless_terminal();
    let argument = args.target.environment().to_string();
    let saved = if is_plan_file(&argument) {
        let saved = engine::read_plan(std::path::Path::new(&argument))?;
        args.target.source.environment = saved.environment.clone();
        args.target.source.revision = saved.commit.clone();
        options = saved.options(options);
        Some((argument.as_str(), saved))
    } else {
        None
    };
    let goal = saved.as_ref().map_or(Goal::Apply, |(_, s)| s.goal());
    let run = Run {
        goal,
        options,
        json,
        auto_approve: args.auto_approve,
        saved,
    };
    execute(&args.target, run).await
}
