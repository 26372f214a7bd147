//! `envboot recreate`: the nightly test, and its JUnit XML and JSON reports.

use clap::Args;
use envboot::engine::{self, exit};

use super::shared::{parse_duration, Target};

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
}

pub async fn run(args: RecreateArgs) -> engine::Result<u8> {
    let RecreateArgs {
        target,
        copy,
        report_dir,
        ready_timeout,
    } = args;
    let loaded = target.load()?;
    let report = envboot::recreate::recreate(&loaded, &copy, ready_timeout).await?;
    for p in &report.phases {
        let mark = if p.ok { "ok" } else { "FAILED" };
        println!(
            "  {:<11} {mark:<6} {:>7.1}s  {}",
            p.name,
            p.seconds,
            p.message.lines().next().unwrap_or_default()
        );
    }
    let base = report_dir.join(format!("recreate-{copy}"));
    let write = |ext: &str, text: String| {
        let path = base.with_extension(ext);
        std::fs::write(&path, text).map(|()| path)
    };
    match (
        write("xml", report.to_junit()),
        write("json", report.to_json()),
    ) {
        (Ok(xml), Ok(json)) => println!("Reports: {} {}", xml.display(), json.display()),
        (Err(e), _) | (_, Err(e)) => eprintln!(
            "warning: cannot write the reports in {}: {e}",
            report_dir.display()
        ),
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
