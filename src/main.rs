//! The `envboot` command line: parses arguments and calls the library.

use std::process::ExitCode;

// Everything this program prints goes through `secrets::redact`: a decrypted value that reached
// a message (a server's error quoting it, a chart putting it into a ConfigMap) is shown as
// `(sensitive)`. These shadow the standard macros for the whole file.
macro_rules! println {
    () => { std::println!() };
    ($($t:tt)*) => { std::println!("{}", envboot::secrets::redact(&format!($($t)*))) };
}
macro_rules! print {
    ($($t:tt)*) => { std::print!("{}", envboot::secrets::redact(&format!($($t)*))) };
}
macro_rules! eprintln {
    () => { std::eprintln!() };
    ($($t:tt)*) => { std::eprintln!("{}", envboot::secrets::redact(&format!($($t)*))) };
}

use std::io::IsTerminal;

use clap::{Args, Parser, Subcommand};
use envboot::engine::{self, exit, Goal, Loaded, SourceOptions};
use envboot::plan::Action;

const AFTER_HELP: &str = "\
Exit codes:
  0   success (plan --detailed-exitcode: no changes)
  1   AWS or Kubernetes failed, or destroy left something behind (the leak report lists it)
  2   plan --detailed-exitcode: there are changes; drift: the live environment drifted;
      verify: something declared is missing, differs from Git or is not ready;
      recreate: a phase failed (the reports say which)
  3   the environment is invalid (file:line:column is printed)
  4   the repository or revision cannot be read
  5   another run holds the environment's lock (it names the holder)
  64  wrong command line

Environment:
  AWS_REGION, AWS_ENDPOINT_URL, AWS_PROFILE, ...   the standard AWS configuration chain
  KUBECONFIG                                       where the cluster contexts are
  ENVBOOT_K3S_ENDPOINT                             a k3s cluster's API server address
                                                   (default: https://<server public IP>:6443)
  ENVBOOT_AGE_IDENTITY_FILE, ENVBOOT_AGE_IDENTITY  the age identity that decrypts secrets
  ENVBOOT_OUTPUT=text|json                         output format (default: text on a terminal)
  ENVBOOT_KUBE_QPS, ENVBOOT_KUBE_BURST             client-side rate limit on Kubernetes API
                                                   requests (default 300 a second, bursts of 1000)

Examples:
  envboot validate local
  envboot plan staging --revision main
  envboot apply local
  envboot apply local --revision v1.4.0          # roll back to an older revision
  envboot drift local                            # exit 2 if the live environment drifted
  envboot plan local --output json
  envboot recreate local --as local-nightly --report-dir reports
  envboot reconcile local --watch --interval 5m  # self-healing, until stopped
  envboot destroy local
  envboot cluster init edge                      # k3s credentials, then commit cluster.age
  envboot kubeconfig edge > ~/.kube/edge.yaml
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
    Render {
        #[command(flatten)]
        target: Target,
        /// Write one file per object into this folder instead (NNN-kind-namespace-name.yaml).
        #[arg(long, value_name = "DIR")]
        output_dir: Option<std::path::PathBuf>,
        /// Leave out the releases' Helm hooks (printed after the other objects, as
        /// `helm template` does; apply runs them at their phases).
        #[arg(long)]
        no_hooks: bool,
    },
    /// Show what apply would change, without changing anything.
    Plan {
        #[command(flatten)]
        target: Target,
        /// Exit 0 when there are no changes, 2 when there are, 1 on error.
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Check that everything declared exists, matches Git and is ready: exit 0, or 2 with a report.
    Verify {
        #[command(flatten)]
        target: Target,
        /// How long to wait for objects to become ready.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        timeout: std::time::Duration,
    },
    /// The nightly test: create a throwaway copy under another name, verify it, destroy it, and
    /// check that nothing leaked; writes a JUnit XML and a JSON report. Exit 0 if every phase passed.
    Recreate {
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
    },
    /// Keep the live environment matching Git: every interval, read the repository again and apply
    /// when the commit changed or the environment drifted (self-healing), until stopped (Ctrl-C, SIGTERM).
    Reconcile {
        #[command(flatten)]
        target: Target,
        /// Keep going; without it, reconcile once and exit.
        #[arg(long)]
        watch: bool,
        /// Time between two rounds (e.g. 30s, 5m).
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        interval: std::time::Duration,
    },
    /// Which commit is live, when it was applied, and whether the environment drifted from Git.
    Status(Target),
    /// Compare the live environment with Git: exit 0 in sync, 2 drifted (the diff is printed), 1 error.
    /// `apply` heals drift.
    Drift(Target),
    /// Make the live environment match Git: create, update, replace and delete what differs.
    Apply {
        #[command(flatten)]
        target: Target,
        /// Then wait at most this long (e.g. 90s, 5m) for every Kubernetes object to be ready
        /// (Deployments rolled out, Jobs complete, CRDs established, ...); fail with a report if not.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        wait: Option<std::time::Duration>,
    },
    /// Render one Helm chart exactly as `helm template` does (same flags, same output).
    Template(TemplateArgs),
    /// Encrypt, decrypt and edit secret files (age; the identity comes from ENVBOOT_AGE_IDENTITY_FILE
    /// or ENVBOOT_AGE_IDENTITY, never from Git).
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Delete everything the environment owns (found by its tags and labels), and nothing else.
    Destroy(Target),
    /// A k3s cluster's credentials (`cluster: {type: k3s}`).
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Print the kubeconfig of the environment's k3s cluster, from Git and the age identity
    /// alone (no SSH). It holds the admin key: keep it out of Git.
    Kubeconfig(Source),
}

/// Where an environment is read from, for commands that only read it.
#[derive(Debug, Args)]
struct Source {
    /// Name of the environment: its folder under environments/.
    environment: String,
    /// Git repository: a local path or a URL (cloned into a temporary directory).
    #[arg(long, default_value = ".", value_name = "PATH|URL")]
    repo: String,
    /// Branch, tag or commit SHA to read the environment from.
    #[arg(long, default_value = "HEAD", value_name = "REV")]
    revision: String,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Generate a k3s cluster's CAs, admin certificate (system:masters) and join token, and
    /// write them age-encrypted to environments/<ENVIRONMENT>/cluster.age; commit that file.
    Init {
        /// Name of the environment: its folder under environments/.
        environment: String,
        /// Where the repository's working tree is.
        #[arg(long, default_value = ".", value_name = "PATH")]
        repo: std::path::PathBuf,
        /// The file, relative to the environment's folder (what `cluster.credentials` names).
        #[arg(long, default_value = envboot::k3s::DEFAULT_CREDENTIALS)]
        file: String,
        /// An age public key (`age1...`); default: the keys in the nearest .age-recipients.
        #[arg(long = "recipient", value_name = "AGE_PUBLIC_KEY")]
        recipients: Vec<String>,
        /// Replace existing credentials (a new cluster: every node is replaced on the next apply).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
struct TemplateArgs {
    /// `[RELEASE] CHART`: the release name (default `release-name`) and the chart folder.
    #[arg(num_args = 1..=2, required = true, value_name = "[RELEASE] CHART")]
    args: Vec<String>,
    /// A values file (repeatable; later ones win).
    #[arg(short = 'f', long = "values")]
    values: Vec<std::path::PathBuf>,
    /// Set values on the command line (`a.b=c,d=e`; repeatable).
    #[arg(long)]
    set: Vec<String>,
    /// Set string values on the command line (repeatable).
    #[arg(long)]
    set_string: Vec<String>,
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// The Kubernetes version `.Capabilities.KubeVersion` reports.
    #[arg(long, default_value = "1.30.0")]
    kube_version: String,
    /// An API version `.Capabilities.APIVersions` has (repeatable).
    #[arg(short = 'a', long)]
    api_versions: Vec<String>,
    /// Print only the manifests rendered from this template (e.g. templates/service.yaml; repeatable).
    #[arg(short = 's', long)]
    show_only: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum SecretCommand {
    /// Encrypt a YAML map of names to values (a plain file outside Git) to the recipients.
    Encrypt {
        /// The plain file.
        file: std::path::PathBuf,
        /// Where to write the encrypted file (default: FILE.age).
        #[arg(short, long)]
        output: Option<std::path::PathBuf>,
        /// An age public key (`age1...`); default: the keys in the nearest .age-recipients.
        #[arg(long = "recipient", value_name = "AGE_PUBLIC_KEY")]
        recipients: Vec<String>,
    },
    /// Print a secret file decrypted (to the terminal only; never redirect it into the repository).
    Decrypt { file: std::path::PathBuf },
    /// Edit a secret file in $EDITOR, decrypted in memory, and encrypt it again.
    Edit {
        file: std::path::PathBuf,
        #[arg(long = "recipient", value_name = "AGE_PUBLIC_KEY")]
        recipients: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    Text,
    Json,
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
    /// Take over Kubernetes fields that another field manager owns (server-side apply --force).
    #[arg(long)]
    force_conflicts: bool,
    /// Take over AWS resources named like the environment's (`Name` = <environment>-<address>)
    /// that carry no envboot tags, by tagging them; without it they are a conflict.
    #[arg(long)]
    adopt: bool,
    /// `text` or `json`. plan: the plan as one JSON document (docs/plan-json.md); apply and
    /// destroy: one JSON event per line. Default: text, except apply and destroy write JSON
    /// events when standard output is not a terminal.
    #[arg(long, value_enum, env = "ENVBOOT_OUTPUT")]
    output: Option<Output>,
    /// At most N changes at once: AWS calls along the dependency graph, and Kubernetes
    /// objects of one kind.
    #[arg(long, value_name = "N", default_value_t = engine::DEFAULT_PARALLELISM as u64,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    parallelism: u64,
}

impl Target {
    /// Where and how to read the environment.
    fn source_options(&self) -> SourceOptions {
        SourceOptions {
            repo: self.repo.clone(),
            revision: self.revision.clone(),
            deny_warnings: self.deny_warnings,
        }
    }

    fn plan_options(&self) -> engine::PlanOptions {
        engine::PlanOptions {
            force_conflicts: self.force_conflicts,
            wait: None,
            adopt: self.adopt,
            parallelism: self.parallelism as usize,
        }
    }
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
    let options = target.source_options();
    let loaded = engine::load(&options, &target.environment)?;
    report_loaded(&target.environment, &loaded);
    Ok(loaded)
}

/// Says which commit was read, its warnings, and which uncommitted files were ignored.
fn report_loaded(environment: &str, loaded: &Loaded) {
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

async fn run(command: Command) -> engine::Result<u8> {
    match command {
        Command::Validate(target) => {
            let options = target.source_options();
            let validated = engine::validate(&options, &target.environment)?;
            let loaded = &validated.loaded;
            report_loaded(&target.environment, loaded);
            println!(
                "Environment {} is valid: {} AWS resources, {} Kubernetes objects.",
                target.environment,
                loaded.env.resources.len(),
                loaded.manifests.len()
            );
            if !validated.decrypted {
                println!("Encrypted files were not decrypted (no age identity: set ENVBOOT_AGE_IDENTITY_FILE or ENVBOOT_AGE_IDENTITY): their content was not checked.");
            }
            Ok(exit::OK)
        }
        Command::Render {
            target,
            output_dir,
            no_hooks,
        } => {
            let loaded = load(&target)?;
            let mut objects = loaded.manifests;
            if !no_hooks {
                objects.extend(loaded.hooks);
            }
            match output_dir {
                None => print!("{}", envboot::render::to_yaml_stream(&objects)),
                Some(dir) => {
                    let written = envboot::output::write_files(&objects, &dir).map_err(|e| {
                        engine::Error::Output {
                            path: dir.display().to_string(),
                            source: e,
                        }
                    })?;
                    eprintln!("wrote {} files to {}", written.len(), dir.display());
                }
            }
            Ok(exit::OK)
        }
        Command::Plan {
            target,
            detailed_exitcode,
        } => {
            let loaded = load(&target)?;
            let plan = engine::plan(&loaded, Goal::Apply, target.plan_options()).await?;
            if target.output == Some(Output::Json) {
                println!("{}", plan.to_json());
            } else {
                print!("{}", plan.to_text());
                print_calls(&plan);
            }
            Ok(if detailed_exitcode && plan.summary().has_changes() {
                exit::CHANGES
            } else {
                exit::OK
            })
        }
        Command::Recreate {
            target,
            copy,
            report_dir,
            ready_timeout,
        } => {
            let loaded = load(&target)?;
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
                println!("Recreate passed: {} was rebuilt from Git as {copy}, verified, destroyed, and nothing leaked.", target.environment);
                Ok(exit::OK)
            } else {
                for p in report.phases.iter().filter(|p| !p.ok) {
                    println!("{} failed:\n{}", p.name, p.message);
                }
                Ok(exit::CHANGES)
            }
        }
        Command::Reconcile {
            target,
            watch,
            interval,
        } => reconcile(&target, watch, interval).await,
        Command::Status(target) => {
            let loaded = load(&target)?;
            let plan = engine::plan(&loaded, Goal::Apply, target.plan_options()).await?;
            let live = plan.live();
            let short = |c: &str| c.chars().take(12).collect::<String>();
            println!("Environment {}", target.environment);
            println!(
                "  Git:    {} ({}) {}",
                loaded.snapshot.short_commit(),
                target.revision,
                loaded.snapshot.summary
            );
            match &live.commit {
                None => println!("  Live:   nothing exists yet"),
                Some(commit) => {
                    let when = live
                        .applied_at
                        .as_deref()
                        .map(|t| format!(", applied {t}"))
                        .unwrap_or_default();
                    let by: Vec<String> = live
                        .revisions
                        .iter()
                        .map(|(r, n)| format!("{} x{n}", short(r)))
                        .collect();
                    println!(
                        "  Live:   {}{when}; resources by the commit that last changed them: {}",
                        short(commit),
                        by.join(", ")
                    );
                }
            }
            let summary = plan.summary();
            if summary.has_changes() {
                let changes = summary.create + summary.update + summary.replace + summary.delete;
                println!("  Drift:  {changes} change(s) between Git and the live environment: `envboot plan {}` shows them", target.environment);
            } else {
                println!("  Drift:  none ({} resources match Git)", summary.unchanged);
            }
            Ok(exit::OK)
        }
        Command::Drift(target) => {
            let loaded = load(&target)?;
            let plan = engine::plan(&loaded, Goal::Apply, target.plan_options()).await?;
            if plan.summary().has_changes() {
                println!(
                    "Drift: the live environment differs from Git (commit {}):",
                    loaded.snapshot.short_commit()
                );
                print!("{}", plan.to_text());
                Ok(exit::CHANGES)
            } else {
                println!(
                    "In sync: the live environment matches Git (commit {}).",
                    loaded.snapshot.short_commit()
                );
                Ok(exit::OK)
            }
        }
        Command::Apply { target, wait } => execute(&target, Goal::Apply, wait).await,
        Command::Destroy(target) => execute(&target, Goal::Destroy, None).await,
        Command::Template(args) => template(args).map_err(engine::Error::Chart),
        Command::Cluster(ClusterCommand::Init {
            environment,
            repo,
            file,
            recipients,
            force,
        }) => {
            let dir = repo.join("environments").join(&environment);
            if !dir.join("environment.yaml").is_file() {
                return Err(engine::Error::Secret {
                    origin: dir.display().to_string(),
                    message: "no environment.yaml here: create the environment first".into(),
                });
            }
            let path = dir.join(&file);
            let recipients = envboot::secrets::recipients(&recipients, &dir).map_err(|e| {
                engine::Error::Secret {
                    origin: "envboot cluster init".into(),
                    message: e.to_string(),
                }
            })?;
            engine::cluster_init(&path, &recipients, force)?;
            println!(
                "Wrote the k3s cluster's credentials, encrypted to {} recipient(s): {}\nCommit it; `envboot apply {environment}` installs k3s with them.",
                recipients.len(),
                path.display()
            );
            Ok(exit::OK)
        }
        Command::Kubeconfig(source) => {
            let options = SourceOptions {
                repo: source.repo,
                revision: source.revision,
                deny_warnings: false,
            };
            let loaded = engine::load(&options, &source.environment)?;
            let text = engine::kubeconfig(&loaded).await?;
            // Not through the redacting macros: the key is the point of this output.
            use std::io::Write;
            std::io::stdout()
                .write_all(text.as_bytes())
                .map_err(|source| engine::Error::Output {
                    path: "standard output".into(),
                    source,
                })?;
            Ok(exit::OK)
        }
        Command::Secret(command) => secret(command).map_err(|e| engine::Error::Secret {
            origin: "envboot secret".into(),
            message: e.to_string(),
        }),
        Command::Verify { target, timeout } => {
            let loaded = load(&target)?;
            let plan = engine::plan(&loaded, Goal::Apply, target.plan_options()).await?;
            let mut ok = true;
            if plan.summary().has_changes() {
                ok = false;
                println!("Not as declared: the live environment differs from Git:");
                print!("{}", plan.to_text());
            }
            let not_ready = plan.not_ready(timeout).await?;
            if !not_ready.is_empty() {
                ok = false;
                println!(
                    "Not ready after {}s:\n{}",
                    timeout.as_secs(),
                    not_ready.join("\n")
                );
            }
            if ok {
                println!("Verified: everything declared exists, matches Git and is ready ({} resources).", plan.summary().unchanged);
                Ok(exit::OK)
            } else {
                Ok(exit::CHANGES)
            }
        }
    }
}

/// `envboot template`: the chart renderer on its own, with `helm template`'s flags and output.
fn template(args: TemplateArgs) -> Result<u8, String> {
    use envboot::helm;
    let (release, chart) = match args.args.as_slice() {
        [chart] => ("release-name".to_string(), chart.clone()),
        [release, chart] => (release.clone(), chart.clone()),
        _ => return Err("expected [RELEASE] CHART".into()),
    };
    let chart = helm::Chart::from_dir(std::path::Path::new(&chart)).map_err(|e| e.to_string())?;
    let values_files = args
        .values
        .iter()
        .map(|p| {
            std::fs::read_to_string(p)
                .map(|text| (p.display().to_string(), text))
                .map_err(|e| format!("cannot read values file {}: {e}", p.display()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options = helm::Options {
        release_name: release,
        namespace: args.namespace,
        kube_version: args.kube_version,
        api_versions: args.api_versions,
        values_files,
        set: args.set,
        set_string: args.set_string,
        is_upgrade: false,
    };
    let mut rendered = helm::template(&chart, &options).map_err(|e| e.to_string())?;
    if !args.show_only.is_empty() {
        rendered.retain(|r| {
            args.show_only
                .iter()
                .any(|s| r.source.ends_with(s.as_str()))
        });
        if rendered.is_empty() {
            return Err(format!(
                "could not find template {} in chart",
                args.show_only.join(", ")
            ));
        }
    }
    print!("{}", helm::to_helm_output(&rendered));
    Ok(exit::OK)
}

fn secret(command: SecretCommand) -> Result<u8, envboot::secrets::Error> {
    use envboot::secrets;
    let io = |e: std::io::Error| secrets::Error::Encrypt(e.to_string());
    let here = std::env::current_dir().map_err(io)?;
    match command {
        SecretCommand::Encrypt {
            file,
            output,
            recipients,
        } => {
            let recipients = secrets::recipients(&recipients, &here)?;
            let plaintext = std::fs::read(&file).map_err(io)?;
            let out = output.unwrap_or_else(|| {
                let mut name = file.clone().into_os_string();
                name.push(".age");
                name.into()
            });
            std::fs::write(&out, secrets::encrypt(&plaintext, &recipients)?).map_err(io)?;
            eprintln!(
                "envboot: encrypted to {} recipient(s): {}",
                recipients.len(),
                out.display()
            );
        }
        SecretCommand::Decrypt { file } => {
            let ciphertext = std::fs::read(&file).map_err(io)?;
            let plaintext = secrets::decrypt(&ciphertext, &secrets::identities_from_env()?)?;
            use std::io::Write;
            std::io::stdout().write_all(&plaintext).map_err(io)?;
        }
        SecretCommand::Edit { file, recipients } => {
            let recipients = secrets::recipients(&recipients, &here)?;
            let editor = std::env::var("VISUAL")
                .or_else(|_| std::env::var("EDITOR"))
                .unwrap_or_else(|_| "vi".into());
            secrets::edit(&file, &editor, &recipients)?;
        }
    }
    Ok(exit::OK)
}

/// Parses `90s`, `5m`, `1h` or a number of seconds.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    envboot::model::parse_duration(text)
}

async fn execute(
    target: &Target,
    goal: Goal,
    wait: Option<std::time::Duration>,
) -> engine::Result<u8> {
    let loaded = load(target)?;
    let command = if goal == Goal::Destroy {
        "destroy"
    } else {
        "apply"
    };
    let lock = engine::lock(&loaded, &engine::holder(command)).await?;
    let result = execute_locked(target, goal, &loaded, wait).await;
    if let Some(lock) = lock {
        lock.release().await;
    }
    result
}

async fn execute_locked(
    target: &Target,
    goal: Goal,
    loaded: &Loaded,
    wait: Option<std::time::Duration>,
) -> engine::Result<u8> {
    let options = engine::PlanOptions {
        wait,
        ..target.plan_options()
    };
    let plan = engine::plan(loaded, goal, options).await?;
    let json = match target.output {
        Some(o) => o == Output::Json,
        None => !std::io::stdout().is_terminal(),
    };
    let printer = Printer::new(json, &plan);
    printer.plan(&plan);
    if !plan.summary().has_changes() {
        if let Some(timeout) = wait {
            let not_ready = plan.not_ready(timeout).await?;
            if !not_ready.is_empty() {
                return Err(engine::Error::NotReady {
                    seconds: timeout.as_secs(),
                    report: not_ready.join("\n"),
                });
            }
        }
        printer.summary(goal, &plan, None);
        return Ok(exit::OK);
    }
    let report = engine::apply(&plan, &mut |step| printer.step(&step)).await?;
    printer.summary(goal, &plan, Some(&report));
    if goal == Goal::Destroy {
        // The leak report: a new look, by tags and labels, for anything still there.
        let leaks = engine::leaks(loaded, target.plan_options(), &report.kept).await?;
        if !leaks.is_empty() {
            return Err(engine::Error::Leaked {
                list: leaks
                    .iter()
                    .map(|l| format!("  {l}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            });
        }
        printer.note("Leak check: nothing carries the environment's tags or labels any more.");
    }
    Ok(exit::OK)
}

/// One reconcile round: read Git, plan, apply if anything differs. Returns a one-line summary.
async fn reconcile_once(target: &Target) -> engine::Result<String> {
    let options = target.source_options();
    let loaded = engine::load(&options, &target.environment)?;
    let commit = loaded.snapshot.short_commit().to_string();
    let lock = engine::lock(&loaded, &engine::holder("reconcile")).await?;
    let result = async {
        let plan = engine::plan(&loaded, Goal::Apply, target.plan_options()).await?;
        if !plan.summary().has_changes() {
            return Ok(format!("commit {commit}: in sync"));
        }
        let changes: Vec<String> = plan
            .changes()
            .filter(|c| c.action != Action::NoOp)
            .map(|c| format!("{} {} {}", c.action.symbol(), c.kind, c.address))
            .collect();
        engine::apply(&plan, &mut |_| {}).await?;
        Ok(format!(
            "commit {commit}: applied {} change(s): {}",
            changes.len(),
            changes.join(", ")
        ))
    }
    .await;
    if let Some(lock) = lock {
        lock.release().await;
    }
    result
}

/// Reconciles once, or every `interval` until SIGINT or SIGTERM. A failed round is reported and
/// retried at the next one.
async fn reconcile(
    target: &Target,
    watch: bool,
    interval: std::time::Duration,
) -> engine::Result<u8> {
    if !watch {
        let line = reconcile_once(target).await?;
        println!("reconcile: {line}");
        return Ok(exit::OK);
    }
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    loop {
        match reconcile_once(target).await {
            Ok(line) => println!("reconcile: {line}"),
            Err(e) => println!(
                "reconcile: failed, will retry in {}s: {e}",
                interval.as_secs()
            ),
        }
        let stop = async {
            match terminate.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = tokio::signal::ctrl_c() => break,
            _ = stop => break,
        }
    }
    println!("reconcile: stopped");
    Ok(exit::OK)
}

/// How apply and destroy report: text with a progress bar on a terminal, or JSON events.
struct Printer {
    json: bool,
    bar: Option<indicatif::ProgressBar>,
}

impl Printer {
    fn new(json: bool, plan: &engine::Plan) -> Printer {
        let s = plan.summary();
        let total = (s.create + s.update + s.replace * 2 + s.delete) as u64;
        let bar = (!json && total > 0 && std::io::stdout().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(total);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} [{bar:30}] {pos}/{len} {elapsed} {msg}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        Printer { json, bar }
    }

    fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(envboot::secrets::redact(text)),
            None => println!("{text}"),
        }
    }

    fn plan(&self, plan: &engine::Plan) {
        if self.json {
            let s = plan.summary();
            self.line(&serde_json::json!({
                "event": "plan", "formatVersion": "envboot.dev/events/v1",
                "environment": plan.environment, "commit": plan.commit,
                "summary": {"create": s.create, "update": s.update, "replace": s.replace, "delete": s.delete, "unchanged": s.unchanged},
            }).to_string());
        } else {
            self.line(plan.to_text().trim_end());
            if plan.summary().has_changes() {
                self.line("");
            }
        }
    }

    fn step(&self, step: &engine::Step<'_>) {
        // A wait, not a change (a k3s API server coming up).
        if step.action == Action::NoOp {
            let note = step.note.as_deref().unwrap_or_default();
            if self.json {
                self.line(&serde_json::json!({
                    "event": "wait", "kind": step.change.kind, "address": step.change.address, "message": note,
                }).to_string());
            } else {
                self.line(&format!(
                    "  {} {}: {note}",
                    step.change.kind, step.change.address
                ));
            }
            return;
        }
        let verb = match step.action {
            Action::Create => "created",
            Action::Update => "updated",
            Action::Replace => "replaced",
            Action::Delete if step.note.is_some() => "kept",
            Action::Delete => "deleted",
            Action::NoOp => "unchanged",
        };
        if self.json {
            let layer = if step.change.kind.starts_with("aws_") {
                "aws"
            } else {
                "kubernetes"
            };
            self.line(&serde_json::json!({
                "event": "change", "layer": layer, "kind": step.change.kind, "address": step.change.address,
                "action": step.action.name(), "result": verb, "id": step.id, "note": step.note,
            }).to_string());
        } else {
            let id = step
                .id
                .as_ref()
                .map(|i| format!(" ({i})"))
                .unwrap_or_default();
            let note = step
                .note
                .as_ref()
                .map(|n| format!(": {n}"))
                .unwrap_or_default();
            self.line(&format!(
                "  {} {} {}: {verb}{id}{note}",
                step.action.symbol(),
                step.change.kind,
                step.change.address
            ));
        }
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(step.change.address.clone());
        }
    }

    /// A note: a JSON `note` event, or a line of text.
    fn note(&self, message: &str) {
        if self.json {
            self.line(&serde_json::json!({"event": "note", "message": message}).to_string());
        } else {
            self.line(message);
        }
    }

    fn summary(&self, goal: Goal, plan: &engine::Plan, report: Option<&engine::Report>) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let (aws, kube) = plan.calls();
        let total = |m: &std::collections::BTreeMap<String, u64>| m.values().sum::<u64>();
        let s = plan.summary();
        let seconds = report.map_or(0.0, |r| r.elapsed.as_secs_f64());
        let notes: Vec<String> = report.map(|r| r.notes.clone()).unwrap_or_default();
        if self.json {
            for n in &notes {
                self.line(&serde_json::json!({"event": "note", "message": n}).to_string());
            }
            self.line(&serde_json::json!({
                "event": "summary", "goal": if goal == Goal::Destroy { "destroy" } else { "apply" },
                "created": if report.is_some() { s.create } else { 0 },
                "updated": if report.is_some() { s.update } else { 0 },
                "replaced": if report.is_some() { s.replace } else { 0 },
                "deleted": if report.is_some() { s.delete } else { 0 },
                "unchanged": s.unchanged, "seconds": seconds,
                "apiCalls": {"aws": total(&aws), "awsWrites": plan.aws_writes(), "kubernetes": total(&kube), "kubernetesWrites": plan.kube_writes()},
            }).to_string());
            return;
        }
        if report.is_some() {
            let what = if goal == Goal::Destroy {
                "Destroy"
            } else {
                "Apply"
            };
            self.line(&format!(
                "\n{what} complete in {seconds:.1}s: {} created, {} updated, {} replaced, {} deleted, {} unchanged.",
                s.create, s.update, s.replace, s.delete, s.unchanged
            ));
        }
        for n in notes {
            self.line(&format!("note: {n}"));
        }
        print_calls(plan);
    }
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
