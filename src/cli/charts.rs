//! `envboot charts lock|vendor`: remote charts pinned by digest in Git.

use clap::Subcommand;
use envboot::charts::LockChange;
use envboot::engine::{self, exit};

use super::shared::Source;

// The subcommands of `envboot charts` (its help text is on `Command::Charts`).
#[derive(Debug, Subcommand)]
pub enum ChartsCommand {
    /// Resolve every remote chart the environment uses (its releases' charts, and dependencies
    /// its chart folders declare from a repository without vendoring them, honouring their
    /// Chart.lock) and write environments/<ENVIRONMENT>/charts.lock with each chart's source,
    /// exact version and sha256 digest. Reads the environment from the commit; writes the
    /// lock into the working tree, to be committed. Charts already pinned are kept.
    Lock {
        #[command(flatten)]
        source: Source,
        /// Resolve constraints (`^1.2.0`) again to the newest version they allow.
        #[arg(long)]
        upgrade: bool,
    },
    /// Copy every chart the committed lock pins into vendor/charts/ (checked against its
    /// digest), for rebuilds that fetch nothing: commit the folder.
    Vendor {
        #[command(flatten)]
        source: Source,
    },
}

pub fn run(command: ChartsCommand) -> engine::Result<u8> {
    match command {
        ChartsCommand::Lock { source, upgrade } => {
            let (snapshot, report) =
                engine::lock_charts(&source.options(), &source.environment, upgrade)?;
            note_ignored(&snapshot);
            for (chart, change) in &report.charts {
                let what = match change {
                    LockChange::Added => "added".to_string(),
                    LockChange::Kept => "kept".to_string(),
                    LockChange::Changed { from } => format!("changed from {from}"),
                };
                let of = if chart.dependency_of.is_empty() {
                    String::new()
                } else {
                    format!(" (dependency of {})", chart.dependency_of.join(", "))
                };
                println!(
                    "  {} {}{of}: {what}, {}",
                    chart.name, chart.version, chart.digest
                );
            }
            for chart in &report.dropped {
                println!(
                    "  {} {}: dropped (nothing uses it)",
                    chart.name, chart.version
                );
            }
            let path = report.path.display();
            if report.written {
                println!("Wrote {path}: commit it.");
            } else if report.charts.is_empty() {
                println!(
                    "Environment {} uses no remote chart: no lock is needed.",
                    source.environment
                );
            } else {
                println!("{path} is up to date.");
            }
            Ok(exit::OK)
        }
        ChartsCommand::Vendor { source } => {
            let (snapshot, report) = engine::vendor_charts(&source.options(), &source.environment)?;
            note_ignored(&snapshot);
            for (file, chart) in &report.files {
                println!(
                    "  {file}: {} {}, {}",
                    chart.name, chart.version, chart.digest
                );
            }
            for file in &report.removed {
                println!("  {file}: removed (the lock no longer pins it)");
            }
            if report.files.is_empty() && report.removed.is_empty() {
                println!(
                    "The lock of environment {} pins no chart: nothing to vendor.",
                    source.environment
                );
            } else {
                println!("Vendored {} charts into vendor/charts/: commit the folder; rebuilds then fetch nothing.", report.files.len());
            }
            Ok(exit::OK)
        }
    }
}

fn note_ignored(snapshot: &envboot::source::Snapshot) {
    eprintln!(
        "envboot: read commit {} ({})",
        snapshot.short_commit(),
        snapshot.summary
    );
    if !snapshot.ignored_changes.is_empty() {
        eprintln!(
            "note: uncommitted changes are ignored (envboot reads only the commit): {}",
            snapshot.ignored_changes.join(", ")
        );
    }
}
