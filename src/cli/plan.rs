//! `envboot plan`: what apply would change, as text, one JSON document or Markdown; saved
//! with `--out` for `envboot apply FILE`.

use clap::Args;
use envboot::engine::{self, exit, Goal};

use super::shared::{print_calls, Takeover, Target};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanOutput {
    Text,
    Json,
    /// For a pull-request comment.
    Markdown,
}

/// Show what apply would change, without changing anything.
#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    takeover: Takeover,
    /// `text`, `json` (one document, docs/plan-json.md) or `markdown` (for a pull request).
    #[arg(long, value_enum, env = "ENVBOOT_OUTPUT", default_value = "text")]
    output: PlanOutput,
    /// Also save the plan to FILE: `envboot apply FILE` applies exactly it, and refuses it if
    /// the live environment changed since (no secret is written in plain text).
    #[arg(long, value_name = "FILE")]
    out: Option<std::path::PathBuf>,
    /// Exit 0 when there are no changes, 2 when there are, 1 on error.
    #[arg(long)]
    detailed_exitcode: bool,
}

pub async fn run(args: PlanArgs) -> engine::Result<u8> {
    let loaded = args.target.load_for_cluster()?;
    let plan = engine::plan(&loaded, Goal::Apply, args.takeover.plan_options()).await?;
    match args.output {
        PlanOutput::Json => println!("{}", plan.to_json()),
        PlanOutput::Markdown => print!("{}", plan.to_markdown()),
        PlanOutput::Text => {
            print!("{}", plan.to_text());
            print_calls(&plan);
        }
    }
    if let Some(path) = &args.out {
        engine::save_plan(&plan, path)?;
        eprintln!(
            "Saved the plan to {}: `envboot apply {}` applies exactly it.",
            path.display(),
            path.display()
        );
    }
    Ok(if args.detailed_exitcode && plan.summary().has_changes() {
        exit::CHANGES
    } else {
        exit::OK
    })
}
