//! What several commands share: where the environment is read from, the flags of the commands
//! that plan or apply, the output format, and how a read environment is reported.

use clap::Args;
use envboot::engine::{self, Loaded, PlanOptions, SourceOptions};

/// Where an environment is read from: its name, the repository and the revision.
#[derive(Debug, Args)]
pub struct Source {
    /// Name of the environment: its folder under environments/.
    pub environment: String,
    /// Git repository: a local path or a URL (cloned into a temporary directory).
    #[arg(long, default_value = ".", value_name = "PATH|URL")]
    pub repo: String,
    /// Branch, tag or commit SHA to read the environment from.
    #[arg(long, default_value = "HEAD", value_name = "REV")]
    pub revision: String,
}

impl Source {
    /// Where to read the environment, warnings allowed.
    pub fn options(&self) -> SourceOptions {
        SourceOptions {
            repo: self.repo.clone(),
            revision: self.revision.clone(),
            deny_warnings: false,
        }
    }
}

/// An environment read to be checked, rendered, planned or applied: [`Source`], and whether
/// its warnings are errors.
#[derive(Debug, Args)]
pub struct Target {
    #[command(flatten)]
    pub source: Source,
    /// Fail (exit 3) on warnings, such as a security group open to the internet on SSH.
    #[arg(long)]
    pub deny_warnings: bool,
}

impl Target {
    pub fn environment(&self) -> &str {
        &self.source.environment
    }

    /// Where and how to read the environment.
    pub fn source_options(&self) -> SourceOptions {
        SourceOptions {
            deny_warnings: self.deny_warnings,
            ..self.source.options()
        }
    }

    /// Reads and renders the environment, and says what was read (on standard error).
    pub fn load(&self) -> engine::Result<Loaded> {
        let loaded = engine::load(&self.source_options(), self.environment())?;
        report_loaded(self.environment(), &loaded);
        Ok(loaded)
    }

    /// [`Target::load`] for commands that render for the cluster (see
    /// [`engine::load_for_cluster`]).
    pub fn load_for_cluster(&self) -> engine::Result<Loaded> {
        let loaded = engine::load_for_cluster(&self.source_options(), self.environment())?;
        report_loaded(self.environment(), &loaded);
        Ok(loaded)
    }
}

/// What the commands that plan creations and updates may take over.
#[derive(Debug, Args)]
pub struct Takeover {
    /// Take over Kubernetes fields that another field manager owns (server-side apply --force).
    #[arg(long)]
    pub force_conflicts: bool,
    /// Take over AWS resources named like the environment's (`Name` = <environment>-<address>)
    /// that carry no envboot tags, by tagging them; without it they are a conflict.
    #[arg(long)]
    pub adopt: bool,
}

impl Takeover {
    pub fn plan_options(&self) -> PlanOptions {
        PlanOptions {
            force_conflicts: self.force_conflicts,
            adopt: self.adopt,
            ..PlanOptions::default()
        }
    }
}

/// The bound on concurrent changes, for the commands that change something.
#[derive(Debug, Args)]
pub struct Parallelism {
    /// At most N changes at once: AWS calls along the dependency graph, and Kubernetes
    /// objects of one kind.
    #[arg(long, value_name = "N", default_value_t = engine::DEFAULT_PARALLELISM as u64,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    parallelism: u64,
}

impl Parallelism {
    pub fn get(&self) -> usize {
        self.parallelism as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// `--output`, for plan, apply and destroy.
#[derive(Debug, Args)]
pub struct OutputFormat {
    /// `text` or `json`. plan: the plan as one JSON document (docs/plan-json.md); apply and
    /// destroy: one JSON event per line. Default: text, except apply and destroy write JSON
    /// events when standard output is not a terminal.
    #[arg(long, value_enum, env = "ENVBOOT_OUTPUT")]
    output: Option<Output>,
}

impl OutputFormat {
    /// JSON if asked for, or by default when standard output is not a terminal.
    pub fn json_unless_terminal(&self) -> bool {
        use std::io::IsTerminal;
        match self.output {
            Some(o) => o == Output::Json,
            None => !std::io::stdout().is_terminal(),
        }
    }
}

/// Parses `90s`, `5m`, `1h` or a number of seconds.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    envboot::model::parse_duration(text)
}

/// Says which commit was read, its warnings, and which uncommitted files were ignored.
pub fn report_loaded(environment: &str, loaded: &Loaded) {
    let s = &loaded.snapshot;
    eprintln!(
        "envboot: environment {} at commit {} ({})",
        environment,
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
}

/// One line with the API calls made, so that a no-op run visibly wrote nothing.
pub fn print_calls(plan: &engine::Plan) {
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

/// SIGTERM or Ctrl-C, for the commands that run until stopped. The SIGTERM listener is made
/// once, so a SIGTERM that arrives while the command is busy is kept for the next wait.
pub struct Shutdown {
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Shutdown {
    pub fn listen() -> Shutdown {
        Shutdown {
            terminate: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .ok(),
        }
    }

    /// Waits for SIGTERM or Ctrl-C.
    pub async fn requested(&mut self) {
        let term = async {
            match self.terminate.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = term => {}
        }
    }
}
