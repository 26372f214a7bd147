//! How apply and destroy report their progress: text with a progress bar on a terminal, or one
//! JSON event per line (docs/plan-json.md).

use std::io::IsTerminal;

use envboot::engine::{self, Goal};
use envboot::plan::Action;

use super::shared::print_calls;

/// How apply and destroy report: text with a progress bar on a terminal, or JSON events.
pub struct Printer {
    json: bool,
    bar: Option<indicatif::ProgressBar>,
}

impl Printer {
    /// A printer without a progress bar (for the plan and the question before applying).
    pub fn new(json: bool) -> Printer {
        Printer { json, bar: None }
    }

    /// Starts the progress bar for carrying out `plan`, on a terminal in text mode. The bar
    /// and the step lines printed above it go to standard output, so that redirecting
    /// standard error loses neither.
    pub fn start_progress(&mut self, plan: &engine::Plan) {
        let s = plan.summary();
        let total = (s.create + s.update + s.replace * 2 + s.delete) as u64;
        self.bar = (!self.json && total > 0 && std::io::stdout().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::with_draw_target(
                Some(total),
                indicatif::ProgressDrawTarget::stdout(),
            );
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} [{bar:30}] {pos}/{len} {elapsed} {msg}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
    }

    fn line(&self, text: &str) {
        // A bar that does not draw (a terminal indicatif cannot use, `TERM` unset) or that is
        // done would drop the line: then it is printed as it is.
        match &self.bar {
            Some(bar) if !bar.is_hidden() && !bar.is_finished() => {
                bar.println(envboot::secrets::redact(text))
            }
            _ => println!("{text}"),
        }
    }

    pub fn plan(&self, plan: &engine::Plan) {
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

    pub fn step(&self, step: &engine::Step<'_>) {
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
    pub fn note(&self, message: &str) {
        if self.json {
            self.line(&serde_json::json!({"event": "note", "message": message}).to_string());
        } else {
            self.line(message);
        }
    }

    pub fn summary(&self, goal: Goal, plan: &engine::Plan, report: Option<&engine::Report>) {
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
