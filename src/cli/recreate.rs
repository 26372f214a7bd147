//! `envboot recreate`: the nightly test, and its JUnit XML and JSON reports.

use clap::Args;
use envboot::engine::{self, exit};

use super::shared::{parse_duration, Parallelism, Target};

/// The nightly test: create a throwaway copy under another name, verify it, destroy it, and
/// check that nothing leaked; writes a JUnit XML and a JSON report. Exit 0 if every phase passed.
#[derive(Debug, Args)]
pub struct RecreateArgs {
    #[command(flatten)]
    target: Target,
    /// Name of the copy (its tags, labels and namespace prefix).
    #[arg(long = "as", value_name = "NAME")]
    copy: String,
    /// Folder for recreate-<NAME>.xml (JUnit) and recreate-<NAME>.json.
    #[arg(long, default_value = ".", value_name = "DIR")]
    report_dir: std::path::PathBuf,
    /// How long verify waits for objects to become ready.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    ready_timeout: std::time::Duration,
    #[command(flatten)]
    parallelism: Parallelism,
}

pub async fn run(args: RecreateArgs) -> engine::Result<u8> {
    let RecreateArgs {
        target,
        copy,
        report_dir,
        ready_timeout,
        parallelism,
    } = args;
    let loaded = target.load_for_cluster()?;
    let options = engine::PlanOptions {
        parallelism: parallelism.get(),
        ..engine::PlanOptions::default()
    };
    let report = envboot::recreate::recreate(&loaded, &copy, ready_timeout, options).await?;
    for p in &report.phases {
        let mark = if p.ok { "ok" } else { "FAILED" };
        println!(
            "  {:<11} {mark:<6} {:>7.1}s  {}",
            p.name,
            p.seconds,
            p.message.lines().next().unwrap_or_default()
        );
    }
    match report.write(&report_dir) {
        Ok((xml, json)) => println!("Reports: {} {}", xml.display(), json.display()),
        Err(e) => {
            // The reports are the nightly job's product: without them the run failed.
            eprintln!(
                "error: cannot write the reports in {}: {e}",
                report_dir.display()
            );
            return Ok(exit::FAILED);
        }
    }
    if report.ok {
        println!(
            "Recreate passed: {} was rebuilt from Git as {copy}, verified, destroyed, and nothing leaked.",
            target.environment()
        );
        Ok(exit::OK)
    } else {
        for p in report.phases.iter().filter(|p| !p.ok) {
            println!("{} failed:\n{}", p.name, p.message);
        }
        Ok(exit::CHANGES)
    }
}
