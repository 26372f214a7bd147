//! Apply and destroy: plan, print the plan, apply it under the environment's lock, report.

use envboot::engine::{self, exit, Goal, Loaded, PlanOptions};

use super::printer::Printer;
use super::shared::Target;

/// Reads the environment, takes its lock, and makes it match `goal`; events as JSON if `json`.
pub async fn execute(
    target: &Target,
    goal: Goal,
    options: PlanOptions,
    json: bool,
) -> engine::Result<u8> {
    let loaded = target.load()?;
    let command = if goal == Goal::Destroy {
        "destroy"
    } else {
        "apply"
    };
    let lock = engine::lock(&loaded, &engine::holder(command)).await?;
    let result = execute_locked(&loaded, goal, options, json).await;
    if let Some(lock) = lock {
        lock.release().await;
    }
    result
}

async fn execute_locked(
    loaded: &Loaded,
    goal: Goal,
    options: PlanOptions,
    json: bool,
) -> engine::Result<u8> {
    let plan = engine::plan(loaded, goal, options).await?;
    let printer = Printer::new(json, &plan);
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
        return Ok(exit::OK);
    }
    let report = engine::apply(&plan, &mut |step| printer.step(&step)).await?;
    printer.summary(goal, &plan, Some(&report));
    if goal == Goal::Destroy {
        // The leak report: a new look, by tags and labels, for anything still there.
        let options = PlanOptions {
            wait: None,
            ..options
        };
        let leaks = engine::leaks(loaded, options, &report.kept).await?;
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
