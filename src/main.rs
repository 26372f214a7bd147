//! The `envboot` command line: parses arguments and calls the library.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use envboot::engine::{self, exit, Goal, Loaded, SourceOptions};
use envboot::plan::Action;

const AFTER_HELP: &str = "\
Exit codes:
  0   success (plan --detailed-exitcode: no changes)
  1   AWS or Kubernetes failed
  2   plan --detailed-exitcode: there are changes
  3   the environment is invalid (file:line:column is printed)
  4   the repository or revision cannot be read
  64  wrong command line

Examples:
  envboot validate local
  envboot plan staging --revision main
  envboot apply local
  envboot apply local --revision v1.4.0          # roll back to an older revision
  envboot destroy local
  envboot render staging --repo https://example.com/infra.git";

/// Recreate a whole environment (AWS EC2, Kubernetes, charts, ConfigMaps) from one Git commit.
///
/// envboot reads environments/<ENVIRONMENT>/environment.yaml and modules/ from a commit (never
/// from uncommitted files), finds what exists by its own tags and labels (no state file), and
/// makes the live environment match Git.
#[derive(Debug, Parser)]
#[command(name = "envboot", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check the environment's files, references and templates; makes no API call.
    Validate(Target),
    /// Print the Kubernetes objects the environment renders to, as YAML; makes no API call.
    Render(Target),
    /// Show what apply would change, without changing anything.
    Plan {
        #[command(flatten)]
        target: Target,
        /// Exit 0 when there are no changes, 2 when there are, 1 on error.
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Make the live environment match Git: create, update, replace and delete what differs.
    Apply(Target),
    /// Delete everything the environment owns (found by its tags and labels), and nothing else.
    Destroy(Target),
}

#[derive(Debug, Args)]
struct Target {
    /// Name of the environment: its folder under environments/.
    environment: String,
    /// Git repository: a local path or a URL (cloned into a temporary directory).
    #[arg(long, default_value = ".", value_name = "PATH|URL")]
    repo: String,
    /// Branch, tag or commit SHA to read the environment from.
    #[arg(long, default_value = "HEAD", value_name = "REV")]
    revision: String,
    /// Fail (exit 3) on warnings, such as a security group open to the internet on SSH.
    #[arg(long)]
    deny_warnings: bool,
    /// Take over AWS resources that have a desired name but not the environment's tags.
    #[arg(long)]
    adopt: bool,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn load(target: &Target) -> engine::Result<Loaded> {
    let options = SourceOptions {
        repo: target.repo.clone(),
        revision: target.revision.clone(),
        deny_warnings: target.deny_warnings,
    };
    let loaded = engine::load(&options, &target.environment)?;
    let s = &loaded.snapshot;
    eprintln!(
        "envboot: environment {} at commit {} ({})",
        target.environment,
        s.short_commit(),
        s.summary
    );
    for w in &loaded.env.warnings.0 {
        eprintln!("warning: {w}");
    }
    if !s.ignored_changes.is_empty() {
        eprintln!(
            "note: uncommitted changes are ignored (envboot reads only the commit): {}",
            s.ignored_changes.join(", ")
        );
    }
    Ok(loaded)
}

async fn run(command: Command) -> engine::Result<u8> {
    match command {
        Command::Validate(target) => {
            let loaded = load(&target)?;
            println!(
                "Environment {} is valid: {} AWS resources, {} Kubernetes objects.",
                target.environment,
                loaded.env.resources.len(),
                loaded.manifests.len()
            );
            Ok(exit::OK)
        }
        Command::Render(target) => {
            let loaded = load(&target)?;
            print!("{}", envboot::render::to_yaml_stream(&loaded.manifests));
            Ok(exit::OK)
        }
        Command::Plan {
            target,
            detailed_exitcode,
        } => {
            let loaded = load(&target)?;
            let plan = engine::plan(&loaded, Goal::Apply, target.adopt).await?;
            print!("{}", plan.to_text());
            print_calls(&plan);
            Ok(if detailed_exitcode && plan.summary().has_changes() {
                exit::CHANGES
            } else {
                exit::OK
            })
        }
        Command::Apply(target) => execute(&target, Goal::Apply).await,
        Command::Destroy(target) => execute(&target, Goal::Destroy).await,
    }
}

async fn execute(target: &Target, goal: Goal) -> engine::Result<u8> {
    let loaded = load(target)?;
    let plan = engine::plan(&loaded, goal, target.adopt).await?;
    print!("{}", plan.to_text());
    if !plan.summary().has_changes() {
        print_calls(&plan);
        return Ok(exit::OK);
    }
    println!();
    let report = engine::apply(&plan, &mut |step| {
        let verb = match step.action {
            Action::Create => "created",
            Action::Update => "updated",
            Action::Replace => "replaced",
            Action::Delete if step.note.is_some() => "kept",
            Action::Delete => "deleted",
            Action::NoOp => "unchanged",
        };
        let id = step.id.map(|i| format!(" ({i})")).unwrap_or_default();
        let note = step.note.map(|n| format!(": {n}")).unwrap_or_default();
        println!(
            "  {} {} {}: {verb}{id}{note}",
            step.action.symbol(),
            step.change.kind,
            step.change.address
        );
    })
    .await?;
    let s = report.summary;
    let what = if goal == Goal::Destroy {
        "Destroy"
    } else {
        "Apply"
    };
    println!(
        "\n{what} complete in {:.1}s: {} created, {} updated, {} replaced, {} deleted, {} unchanged.",
        report.elapsed.as_secs_f64(),
        s.create,
        s.update,
        s.replace,
        s.delete,
        s.unchanged
    );
    for n in report.notes {
        println!("note: {n}");
    }
    print_calls(&plan);
    Ok(exit::OK)
}

/// One line with the API calls made, so that a no-op run visibly wrote nothing.
fn print_calls(plan: &engine::Plan) {
    let (aws, kube) = plan.calls();
    let total = |m: &std::collections::BTreeMap<String, u64>| m.values().sum::<u64>();
    println!(
        "API calls: AWS {} ({} writes), Kubernetes {} ({} writes).",
        total(&aws),
        plan.aws_writes(),
        total(&kube),
        plan.kube_writes()
    );
}
