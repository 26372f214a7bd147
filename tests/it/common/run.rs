//! Starting the `envboot` binary: [`Envboot`] is the one place that builds its command line and
//! its environment; [`envboot`] and [`spawn_json`] are the usual shapes of it.
//!
//! The child's environment is only `PATH`, `HOME`, `ENVBOOT_OUTPUT=text` and the settings
//! given, never the test process's own: what a developer's shell exports (an age identity, a
//! kubeconfig, `ENVBOOT_OUTPUT`) cannot change a test, and tests running at the same time in
//! this process cannot leak settings into each other's runs.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use super::repo::Repo;

/// What a run of the binary printed and returned.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn assert_ok(&self) -> &Run {
        assert_eq!(
            self.code, 0,
            "envboot failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// A run of the `envboot` binary being set up: arguments, then `--repo` (last, whatever the
/// order of the calls), with the settings as its whole environment.
pub struct Envboot {
    command: Command,
    repo: Option<OsString>,
    /// `apply` and `destroy` get `--auto-approve` (as in CI), unless a test asks otherwise.
    auto_approve: bool,
}

impl Envboot {
    pub fn new(settings: &HashMap<String, String>) -> Envboot {
        let mut command = Command::new(env!("CARGO_BIN_EXE_envboot"));
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::var_os("HOME").unwrap_or_default())
            .env("ENVBOOT_OUTPUT", "text")
            .envs(settings)
            .stdin(Stdio::null());
        Envboot {
            command,
            repo: None,
            auto_approve: true,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Envboot {
        self.command.arg(arg);
        self
    }

    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Envboot {
        self.command.args(args);
        self
    }

    /// `--repo <the repository's folder>`.
    pub fn repo(mut self, repo: &Repo) -> Envboot {
        self.repo = Some(repo.path().as_os_str().to_owned());
        self
    }

    /// `--output json`: plan as one document, apply and destroy as one event per line.
    pub fn json(self) -> Envboot {
        self.args(["--output", "json"])
    }

    /// Runs it in `dir` (for the commands that read `.age-recipients` from there).
    pub fn current_dir(mut self, dir: &Path) -> Envboot {
        self.command.current_dir(dir);
        self
    }

    /// Without the `--auto-approve` that `apply` and `destroy` get otherwise: for the tests of
    /// the approval question itself.
    pub fn asking(mut self) -> Envboot {
        self.auto_approve = false;
        self
    }

    fn command(mut self) -> Command {
        let first = self.command.get_args().next().map(OsStr::to_os_string);
        if self.auto_approve && first.is_some_and(|a| a == "apply" || a == "destroy") {
            self.command.arg("--auto-approve");
        }
        if let Some(repo) = self.repo.take() {
            self.command.arg("--repo").arg(repo);
        }
        self.command
    }

    /// Runs it to the end.
    pub fn run(self) -> Run {
        self.command().output().expect("run envboot").into()
    }

    /// Runs it to the end on a blocking thread, for an async test whose own tasks (a proxy in
    /// front of the sandbox) must keep running meanwhile.
    pub async fn run_off_runtime(self) -> Run {
        let mut command = self.command();
        tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("join")
            .expect("run envboot")
            .into()
    }

    /// Starts it with its standard output on a pipe and its standard error discarded, for
    /// tests that read what it prints while they act.
    pub fn spawn(self) -> Child {
        let mut command = self.command();
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start envboot")
    }

    /// Starts it with both outputs on pipes, for `wait_with_output`.
    pub fn spawn_with_output(self) -> Child {
        let mut command = self.command();
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start envboot")
    }
}

/// Runs `envboot ARGS --repo <repo>` with the given settings as its environment.
pub fn envboot(repo: &Repo, settings: &HashMap<String, String>, args: &[&str]) -> Run {
    Envboot::new(settings).args(args).repo(repo).run()
}

/// Starts `envboot ARGS --output json --repo <repo>` with its JSON events on a pipe (stdout)
/// and its stderr discarded, for tests that act while it runs.
pub fn spawn_json(repo: &Repo, settings: &HashMap<String, String>, args: &[&str]) -> Child {
    Envboot::new(settings).args(args).json().repo(repo).spawn()
}

/// A `Command` running `envboot ARGS --repo REPO` (then `shell_tail`, e.g. a redirection) on a
/// real pseudo-terminal, through util-linux's `script`, with the settings as its environment
/// and `TERM=xterm`; its terminal's input and output are the command's stdin and stdout pipes.
pub fn on_terminal_command(
    repo: &Repo,
    settings: &HashMap<String, String>,
    args: &[&str],
    shell_tail: &str,
) -> Command {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut line: Vec<String> = vec![quote(env!("CARGO_BIN_EXE_envboot"))];
    line.extend(args.iter().map(|a| quote(a)));
    line.push("--repo".into());
    line.push(quote(&repo.path().display().to_string()));
    line.push(shell_tail.to_string());
    let mut command = Command::new("script");
    command
        .args(["-q", "-e", "-c", &line.join(" "), "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .env("ENVBOOT_OUTPUT", "text")
        .env("TERM", "xterm")
        .envs(settings)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}
