//! Apply and destroy: plan, print the plan, ask for approval, apply it under the environment's
//! lock, report. A saved plan (`apply FILE`) is planned again from its commit and applied only
//! if nothing moved since it was reviewed.

use std::io::IsTerminal;

use envboot::engine::{self, exit, Goal, Loaded, PlanOptions, SavedPlan};

use super::printer::Printer;
use super::shared::Target;

/// How apply or destroy goes ahead.
pub struct Run<'a> {
    pub goal: Goal,
    pub options: PlanOptions,
    pub json: bool,
    /// Go ahead without asking.
    pub auto_approve: bool,
    /// The saved plan being applied (`apply FILE`): no question, refused if stale.
    pub saved: Option<(&'a str, SavedPlan)>,
}

impl Run<'_> {
    fn command(&self) -> &'static str {
        if self.goal == Goal::Destroy {
            "destroy"
        } else {
            "apply"
        }
    }
}

/// Reads the environment, takes its lock, and makes it match the goal.
pub async fn execute(target: &Target, run: Run<'_>) -> engine::Result<u8> {
    let loaded = target.load_for_cluster()?;
    let holder = engine::holder(run.command());
    let lock =
        engine::timings::measure_async("take the lock", engine::lock(&loaded, &holder)).await?;
    // the plan asks the cluster through the lock's connection (one TLS session, one discovery)
    let cluster = lock.as_ref().and_then(engine::LockGuard::cluster);
    let result = execute_locked(&loaded, &run, cluster).await;
    if let Some(lock) = lock {
        engine::timings::measure_async("release the lock", lock.release()).await;
    }
    result
}

/// Asks `Do you want to perform these actions?` on the terminal; only `yes` approves.
/// Without a terminal (and without `--auto-approve`) nothing can approve, and nothing is done.
fn approve(command: &'static str) -> engine::Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(engine::Error::NotApproved { command });
    }
    eprintln!(
        "\nDo you want to perform these actions?\n  envboot will {command} as described above.\n  Only 'yes' will be accepted to approve.\n"
    );
    {
        use std::io::Write;
        let mut err = std::io::stderr();
        let _ = write!(err, "  Enter a value: ");
        let _ = err.flush();
    }
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|_| engine::Error::NotApproved { command })?;
    Ok(answer.trim() == "yes")
}

async fn execute_locked(
    loaded: &Loaded,
    run: &Run<'_>,
    cluster: Option<envboot::kube::Kube>,
) -> engine::Result<u8> {
    let (goal, options) = (run.goal, run.options);
    let plan = engine::plan_connected(loaded, goal, options, cluster).await?;
    if let Some((path, saved)) = &run.saved {
        saved.check(path, &plan)?;
    }
    let mut printer = Printer::new(run.json);
    printer.plan(&plan);
    if !plan.summary().has_changes() {
        if let Some(timeout) = options.wait {
            let not_ready = plan.not_ready(timeout).await?;
            if !not_ready.is_empty() {
                return Err(engine::Error::NotReady {
                    seconds: timeout.as_secs(),
                    report: not_ready.join("\n"),
                });
            }
        }
        printer.summary(goal, &plan, None);
        if goal == Goal::Destroy {
            leak_check(loaded, options, &[], &mut printer).await?;
        }
        return Ok(exit::OK);
    }
    if !run.auto_approve && run.saved.is_none() && !approve(run.command())? {
        let what = if goal == Goal::Destroy {
            "Destroy"
        } else {
            "Apply"
        };
        eprintln!("{what} cancelled: nothing was changed.");
        return Ok(exit::FAILED);
    }
    printer.start_progress(&plan);
    let report = engine::apply(&plan, &mut |step| printer.step(&step)).await?;
    printer.summary(goal, &plan, Some(&report));
    if goal == Goal::Destroy {
        leak_check(loaded, options, &report.kept, &mut printer).await?;
    }
    Ok(exit::OK)
}

/// The leak report after a destroy: a new look, by tags and labels, for anything still there
/// (also when there was nothing to destroy: a labelled object envboot never applied is not
/// deleted, and still fails the check).
async fn leak_check(
    loaded: &Loaded,
    options: PlanOptions,
    kept: &[String],
    printer: &mut Printer,
) -> engine::Result<()> {
    let options = PlanOptions {
        wait: None,
        ..options
    };
    let leaks = engine::leaks(loaded, options, kept).await?;
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
    Ok(())
}
