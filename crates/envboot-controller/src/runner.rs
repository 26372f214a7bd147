//! Runs envboot itself for one Environment: `envboot plan --out`, then `envboot apply` of that
//! saved plan, each in its own process.
//!
//! A process per run is the isolation boundary: each Environment's credentials are that
//! process's environment variables (the AWS SDK's chain, the age identity) and never shared
//! with another Environment's run; a run that crashes or exhausts memory ends alone; and what
//! runs is exactly the CLI, with its locks, ownership rules and exit codes.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;

use crate::crd::PlanSummary;

/// How one run is started.
#[derive(Clone)]
pub struct RunSpec {
    /// The envboot binary.
    pub program: PathBuf,
    /// The repository to read (the controller's mirror, as a `file://` URL).
    pub repo: String,
    /// Variables given to the process on top of the controller's (credentials: never logged).
    pub vars: Vec<(String, String)>,
    /// Variables removed from the controller's before (the controller's own AWS credentials
    /// when the Environment names its own).
    pub removed: Vec<String>,
    pub timeout: Duration,
}

impl std::fmt::Debug for RunSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunSpec")
            .field("program", &self.program)
            .field("repo", &self.repo)
            .field(
                "vars",
                &self
                    .vars
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A run that failed: its exit code and what it printed as the error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RunError {
    /// envboot's exit code (`None`: killed, or did not start).
    pub code: Option<i32>,
    pub message: String,
}

impl RunError {
    /// The condition reason and whether retrying cannot help until Git or the spec changes,
    /// from envboot's documented exit codes.
    pub fn reason(&self, stage: &str) -> (String, bool) {
        match self.code {
            Some(3) => ("InvalidEnvironment".into(), true),
            Some(4) => ("RevisionUnreadable".into(), false),
            Some(5) => ("Locked".into(), false),
            Some(6) => ("Conflict".into(), true),
            Some(7) => ("ChartUnavailable".into(), false),
            None => (format!("{stage}Interrupted"), false),
            _ => (format!("{stage}Failed"), false),
        }
    }
}

/// A plan as `envboot plan --output json` gives it: counts and the changes' one-line forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub summary: PlanSummary,
    /// `+ ConfigMap apps/settings`, one per change other than no-op.
    pub changes: Vec<String>,
    /// The saved plan, for [`apply`].
    pub file: PathBuf,
}

/// What an apply reported in its last event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiCalls {
    #[serde(default)]
    pub aws: u64,
    #[serde(default)]
    pub aws_writes: u64,
    #[serde(default)]
    pub kubernetes: u64,
    #[serde(default)]
    pub kubernetes_writes: u64,
}

#[derive(Debug, Deserialize)]
struct PlanDocument {
    summary: PlanSummary,
    #[serde(default)]
    changes: Vec<PlanChange>,
}

#[derive(Debug, Deserialize)]
struct PlanChange {
    kind: String,
    address: String,
    action: String,
}

fn symbol(action: &str) -> &'static str {
    match action {
        "create" => "+",
        "update" => "~",
        "replace" => "-/+",
        "delete" => "-",
        _ => "?",
    }
}

/// Reads `envboot plan --output json`.
///
/// # Errors
/// The output is not a plan document.
pub fn parse_plan(json: &[u8], file: PathBuf) -> Result<Planned, String> {
    let doc: PlanDocument = serde_json::from_slice(json)
        .map_err(|e| format!("envboot plan printed no plan document: {e}"))?;
    Ok(Planned {
        summary: doc.summary,
        changes: doc
            .changes
            .iter()
            .filter(|c| c.action != "no-op")
            .map(|c| format!("{} {} {}", symbol(&c.action), c.kind, c.address))
            .collect(),
        file,
    })
}

/// Reads the API calls from apply's JSON events (the `summary` event).
pub fn parse_apply(events: &[u8]) -> ApiCalls {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Event {
        event: String,
        #[serde(default)]
        api_calls: Option<ApiCalls>,
    }
    String::from_utf8_lossy(events)
        .lines()
        .filter_map(|l| serde_json::from_str::<Event>(l).ok())
        .filter(|e| e.event == "summary")
        .find_map(|e| e.api_calls)
        .unwrap_or_default()
}

/// The error envboot printed: from its first `error:` line on (its messages carry their
/// context on the following lines), else its last lines; at most 2,000 characters.
pub fn error_text(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with("error: "))
        .unwrap_or(lines.len().saturating_sub(5));
    let message = lines[start..].join("\n");
    let message = message.strip_prefix("error: ").unwrap_or(&message).trim();
    match message.char_indices().nth(2000) {
        Some((cut, _)) => format!("{}...", &message[..cut]),
        None if message.is_empty() => "envboot printed no error".to_string(),
        None => message.to_string(),
    }
}

/// How long a run that overstayed its timeout has to end after SIGTERM.
const TERM_GRACE: Duration = Duration::from_secs(10);

async fn run(spec: &RunSpec, args: &[&std::ffi::OsStr]) -> Result<Vec<u8>, RunError> {
    let mut command = tokio::process::Command::new(&spec.program);
    command
        .args(args)
        .env_remove("ENVBOOT_OUTPUT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // a Ctrl-C to the controller does not reach a run: it is let finish on shutdown
        .process_group(0)
        .kill_on_drop(true);
    for name in &spec.removed {
        command.env_remove(name);
    }
    command.envs(spec.vars.iter().map(|(k, v)| (k, v)));
    let child = command.spawn().map_err(|e| RunError {
        code: None,
        message: format!("cannot start {}: {e}", spec.program.display()),
    })?;
    let pid = child.id();
    let finished = child.wait_with_output();
    tokio::pin!(finished);
    let outcome = match tokio::time::timeout(spec.timeout, &mut finished).await {
        Ok(outcome) => Ok(outcome),
        Err(elapsed) => {
            // SIGTERM to the run's process group first, so that envboot may give its lock
            // back; SIGKILL (on drop) only if it has not ended after a grace period
            if let Some(pid) = pid {
                let _ = tokio::process::Command::new("kill")
                    .args(["-TERM", "--", &format!("-{pid}")])
                    .status()
                    .await;
            }
            let _ = tokio::time::timeout(TERM_GRACE, &mut finished).await;
            Err(elapsed)
        }
    };
    match outcome {
        Err(_) => Err(RunError {
            code: None,
            message: format!(
                "stopped after {} (spec.timeout); the next reconcile finishes what it began",
                humantime::format_duration(spec.timeout)
            ),
        }),
        Ok(Err(e)) => Err(RunError {
            code: None,
            message: format!("waiting for envboot failed: {e}"),
        }),
        Ok(Ok(output)) if output.status.success() => Ok(output.stdout),
        Ok(Ok(output)) => Err(RunError {
            code: output.status.code(),
            message: error_text(&output.stderr),
        }),
    }
}

/// `envboot plan ENVIRONMENT --revision COMMIT --output json --out DIR/plan.json`.
///
/// # Errors
/// envboot failed: its exit code and error.
pub async fn plan(
    spec: &RunSpec,
    environment: &str,
    commit: &str,
    dir: &Path,
) -> Result<Planned, RunError> {
    let file = dir.join("plan.json");
    let stdout = run(
        spec,
        &[
            "plan".as_ref(),
            environment.as_ref(),
            "--repo".as_ref(),
            spec.repo.as_ref(),
            "--revision".as_ref(),
            commit.as_ref(),
            "--output".as_ref(),
            "json".as_ref(),
            "--out".as_ref(),
            file.as_os_str(),
        ],
    )
    .await?;
    parse_plan(&stdout, file).map_err(|message| RunError {
        code: None,
        message,
    })
}

/// `envboot apply DIR/plan.json`: applies exactly the plan decided on, or refuses it if the
/// live environment moved since.
///
/// # Errors
/// envboot failed: its exit code and error.
pub async fn apply(spec: &RunSpec, planned: &Planned) -> Result<ApiCalls, RunError> {
    let stdout = run(
        spec,
        &[
            "apply".as_ref(),
            planned.file.as_os_str(),
            "--repo".as_ref(),
            spec.repo.as_ref(),
            "--output".as_ref(),
            "json".as_ref(),
        ],
    )
    .await?;
    Ok(parse_apply(&stdout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_plan_document_and_the_apply_events() {
        let json = br#"{"formatVersion":"envboot.dev/plan/v1","environment":"local","commit":"ab","goal":"apply",
            "summary":{"create":1,"update":0,"replace":0,"delete":1,"unchanged":4},
            "changes":[{"layer":"kubernetes","kind":"ConfigMap","address":"apps/a","action":"create","fields":[]},
                       {"layer":"kubernetes","kind":"ConfigMap","address":"apps/b","action":"no-op","fields":[]},
                       {"layer":"aws","kind":"aws_vpc","address":"network.vpc","action":"delete","fields":[]}]}"#;
        let planned = parse_plan(json, PathBuf::from("p")).expect("plan");
        assert_eq!(planned.summary.create, 1);
        assert_eq!(
            planned.changes,
            ["+ ConfigMap apps/a", "- aws_vpc network.vpc"]
        );
        assert!(parse_plan(b"not json", PathBuf::from("p")).is_err());
        let events = b"{\"event\":\"plan\"}\n{\"event\":\"summary\",\"apiCalls\":{\"aws\":3,\"awsWrites\":1,\"kubernetes\":9,\"kubernetesWrites\":2}}\n";
        let calls = parse_apply(events);
        assert_eq!((calls.aws, calls.kubernetes_writes), (3, 2));
    }

    #[test]
    fn the_error_is_what_envboot_printed_after_error() {
        let stderr = b"Read commit 1a2b of environment local\nerror: environments/local/environment.yaml:3:5: unknown field\n  hint\n";
        assert_eq!(
            error_text(stderr),
            "environments/local/environment.yaml:3:5: unknown field\n  hint"
        );
        assert_eq!(error_text(b""), "envboot printed no error");
        assert_eq!(
            error_text("é".repeat(3000).as_bytes()).chars().count(),
            2003
        );
        let e = RunError {
            code: Some(3),
            message: String::new(),
        };
        assert_eq!(e.reason("Plan"), ("InvalidEnvironment".into(), true));
        let e = RunError {
            code: Some(1),
            message: String::new(),
        };
        assert_eq!(e.reason("Apply"), ("ApplyFailed".into(), false));
    }
}
