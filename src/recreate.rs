//! The nightly recreate-and-verify job: create a throwaway copy of an environment under another
//! name, verify it, destroy it, and prove nothing leaked. Reports as JUnit XML and JSON.
//!
//! The copy's resources carry the copy's name in their tags and labels, and its Kubernetes
//! namespaces are prefixed with it (`<copy>-<namespace>`), so it never touches the original.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::engine::{self, Goal, Loaded, PlanOptions, Result};
use crate::{model, render};

/// One phase of the job and how it went.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub name: &'static str,
    pub seconds: f64,
    pub ok: bool,
    /// Why it failed (or what it found).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// The whole job's outcome.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub format_version: &'static str,
    pub environment: String,
    #[serde(rename = "as")]
    pub copy: String,
    pub commit: String,
    pub ok: bool,
    pub phases: Vec<Phase>,
    /// Anything still carrying the copy's tags or labels after destroy.
    pub leaks: Vec<String>,
}

/// The environment as a copy named `copy`: same resources, the copy's ownership, and namespaces
/// prefixed with the copy's name. Rendered again, so the labels say the copy.
pub fn renamed(loaded: &Loaded, copy: &str) -> Result<Loaded> {
    let mut env: model::Environment = loaded.env.clone();
    env.name = copy.to_string();
    let prefix = |ns: &mut String| *ns = format!("{copy}-{ns}");
    env.releases
        .iter_mut()
        .for_each(|r| prefix(&mut r.namespace));
    env.config_maps
        .iter_mut()
        .for_each(|c| prefix(&mut c.namespace));
    env.secrets
        .iter_mut()
        .for_each(|s| prefix(&mut s.namespace));
    // A k3s copy is a cluster of its own, on the copy's instances.
    if let Some(cluster) = env.cluster.as_mut().filter(|c| c.k3s.is_some()) {
        cluster.name = copy.to_string();
    }
    let credentials = engine::k3s_user_data(&mut env)?;
    let secrets = engine::decrypt_secrets(&env)?;
    let (manifests, hooks, needs) =
        render::render_for(&env, &secrets, &engine::offline_facts(&env))?;
    Ok(Loaded {
        snapshot: loaded.snapshot.clone(),
        env,
        manifests,
        hooks,
        credentials,
        secrets,
        needs,
        offline_error: None,
    })
}

fn phase(
    name: &'static str,
    started: Instant,
    outcome: std::result::Result<String, String>,
) -> Phase {
    let seconds = started.elapsed().as_secs_f64();
    match outcome {
        Ok(message) => Phase {
            name,
            seconds,
            ok: true,
            message,
        },
        Err(message) => Phase {
            name,
            seconds,
            ok: false,
            message,
        },
    }
}

/// Runs create, verify, destroy and the leak check for a copy of `loaded` named `copy`.
/// Destroy and the leak check run even when create or verify failed.
pub async fn recreate(
    loaded: &Loaded,
    copy: &str,
    ready_timeout: Duration,
    options: PlanOptions,
) -> Result<Report> {
    let copy_env = renamed(loaded, copy)?;
    let lock = engine::lock(&copy_env, &engine::holder("recreate")).await?;
    let mut phases = Vec::new();

    let started = Instant::now();
    let created = async {
        let plan = engine::plan(&copy_env, Goal::Apply, options).await?;
        let report = engine::apply(&plan, &mut |_| {}).await?;
        Ok::<_, engine::Error>(format!("{} created", report.summary.create))
    }
    .await
    .map_err(|e| e.to_string());
    let create_ok = created.is_ok();
    phases.push(phase("create", started, created));

    if create_ok {
        let started = Instant::now();
        let verified = async {
            let plan = engine::plan(&copy_env, Goal::Apply, options).await?;
            let mut problems = Vec::new();
            if plan.summary().has_changes() {
                problems.push(format!("differs from Git after apply:\n{}", plan.to_text()));
            }
            let waited = Instant::now();
            let not_ready = plan.not_ready(ready_timeout).await?;
            let waited = waited.elapsed().as_secs_f64();
            if !not_ready.is_empty() {
                problems.push(format!(
                    "not ready after {}s:\n{}",
                    ready_timeout.as_secs(),
                    not_ready.join("\n")
                ));
            }
            Ok::<_, engine::Error>((problems, waited))
        }
        .await;
        let outcome = match verified {
            Ok((problems, waited)) if problems.is_empty() => Ok(format!(
                "{} resources match Git and are ready (after waiting {waited:.1} s for readiness)",
                copy_env.env.resources.len() + copy_env.manifests.len()
            )),
            Ok((problems, _)) => Err(problems.join("\n")),
            Err(e) => Err(e.to_string()),
        };
        phases.push(phase("verify", started, outcome));
    }

    let started = Instant::now();
    let destroyed = async {
        let plan = engine::plan(&copy_env, Goal::Destroy, options).await?;
        let report = engine::apply(&plan, &mut |_| {}).await?;
        Ok::<_, engine::Error>(format!("{} deleted", report.summary.delete))
    }
    .await
    .map_err(|e| e.to_string());
    phases.push(phase("destroy", started, destroyed));

    let started = Instant::now();
    let leaks = engine::leaks(&copy_env, options, &[]).await;
    let (leaks, outcome) = match leaks {
        Ok(l) if l.is_empty() => (
            l,
            Ok("nothing carries the copy's tags or labels".to_string()),
        ),
        Ok(l) => {
            let message = format!("left behind: {}", l.join(", "));
            (l, Err(message))
        }
        Err(e) => (Vec::new(), Err(e.to_string())),
    };
    phases.push(phase("leak-check", started, outcome));
    if let Some(lock) = lock {
        lock.release().await;
    }
    Ok(Report {
        format_version: "envboot.dev/recreate/v1",
        environment: loaded.env.name.clone(),
        copy: copy.to_string(),
        commit: loaded.env.commit.clone(),
        ok: phases.iter().all(|p| p.ok),
        phases,
        leaks,
    })
}

impl Report {
    /// The report as JUnit XML (quick-junit): one test suite, one test case per phase.
    pub fn to_junit(&self) -> String {
        use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};
        let mut suite = TestSuite::new(format!(
            "envboot recreate {} as {}",
            self.environment, self.copy
        ));
        for p in &self.phases {
            let status = if p.ok {
                TestCaseStatus::success()
            } else {
                let mut failure = TestCaseStatus::non_success(NonSuccessKind::Failure);
                failure.set_message(format!("{} failed", p.name));
                failure.set_description(p.message.as_str());
                failure
            };
            let mut case = TestCase::new(p.name, status);
            case.set_classname(format!("envboot.recreate.{}", self.environment));
            case.set_time(std::time::Duration::from_secs_f64(p.seconds.max(0.0)));
            suite.add_test_case(case);
        }
        let mut report = quick_junit::Report::new("envboot recreate");
        report.add_test_suite(suite);
        report.to_string().unwrap_or_default()
    }

    /// Writes `recreate-<copy>.xml` (JUnit) and `recreate-<copy>.json` into `dir`, creating
    /// the folder if it is missing; returns the two paths.
    ///
    /// # Errors
    /// The folder cannot be created or a file cannot be written.
    pub fn write(&self, dir: &std::path::Path) -> std::io::Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir)?;
        let base = dir.join(format!("recreate-{}", self.copy));
        let (xml, json) = (base.with_extension("xml"), base.with_extension("json"));
        std::fs::write(&xml, self.to_junit())?;
        std::fs::write(&json, self.to_json())?;
        Ok((xml, json))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}
