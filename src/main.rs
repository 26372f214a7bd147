//! The `envboot` command line: parses arguments, runs one command, and turns its outcome into
//! the exit code (documented in `envboot --help`), here and nowhere else.

use std::process::ExitCode;

use clap::Parser;
use envboot::engine::{self, exit};

#[macro_use]
mod cli;

use cli::{Cli, Command};

/// mimalloc: rendering allocates many small values, and glibc's allocator took a third of a
/// large chart's render (BENCHMARKS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The stack of the thread that runs a command. Files Helm reads
/// nest up to go-yaml's 10,000 levels, and the model walks them recursively; the memory is
/// reserved, not used, until a deep file needs it.
const STACK_SIZE: usize = 512 * 1024 * 1024;
/// The runtime's workers run the providers' requests and waits, not the model.
const WORKER_STACK_SIZE: usize = 64 * 1024 * 1024;

fn main() -> ExitCode {
    let command = std::thread::Builder::new()
        .name("envboot".into())
        .stack_size(STACK_SIZE)
        .spawn(run_command);
    match command.map(|t| t.join()) {
        Ok(Ok(code)) => code,
        Ok(Err(_)) => ExitCode::from(exit::FAILED),
        Err(e) => {
            eprintln!("error: cannot start the command's thread: {e}");
            ExitCode::from(exit::FAILED)
        }
    }
}

fn run_command() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // `--help` and `--version` are not errors; a wrong command line is exit 64.
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let timings = std::env::var_os("ENVBOOT_TIMINGS").is_some_and(|v| !v.is_empty() && v != "0");
    if timings {
        engine::timings::enable();
    }
    // the commands that call no API run without the async runtime (its threads cost a
    // process's start-up, which `template` pays once per chart): they await nothing
    let outcome = if needs_runtime(&cli.command) {
        match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_stack_size(WORKER_STACK_SIZE)
            .build()
        {
            Ok(runtime) => runtime.block_on(run(cli.command)),
            Err(e) => {
                eprintln!("error: cannot start the async runtime: {e}");
                return ExitCode::from(exit::FAILED);
            }
        }
    } else {
        futures::executor::block_on(run(cli.command))
    };
    if timings {
        eprint!("{}", engine::timings::report(&engine::timings::phases()));
    }
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Whether `command` calls an API (and so needs the async runtime).
fn needs_runtime(command: &Command) -> bool {
    !matches!(
        command,
        Command::Validate(_)
            | Command::Template(_)
            | Command::Secret(_)
            | Command::Cluster(_)
            | Command::Charts(_)
    )
}

/// One function per command.
async fn run(command: Command) -> engine::Result<u8> {
    match command {
        Command::Validate(args) => cli::validate::run(args),
        Command::Render(args) => cli::render::run(args).await,
        Command::Plan(args) => cli::plan::run(args).await,
        Command::Verify(args) => cli::verify::run(args).await,
        Command::Recreate(args) => cli::recreate::run(args).await,
        Command::Reconcile(args) => cli::reconcile::run(args).await,
        Command::Status(args) => cli::status::run(args).await,
        Command::Drift(args) => cli::drift::run(args).await,
        Command::Apply(args) => cli::apply::run(args).await,
        Command::Destroy(args) => cli::destroy::run(args).await,
        Command::Kubeconfig(args) => cli::kubeconfig::run(args).await,
        Command::Template(args) => cli::template::run(args),
        Command::Secret(command) => cli::secret::run(command),
        Command::Cluster(command) => cli::cluster::run(command),
        Command::Charts(command) => cli::charts::run(command),
        Command::Controller(command) => cli::controller::run(command).await,
        Command::Sync(args) => cli::controller::sync(args).await,
    }
}
