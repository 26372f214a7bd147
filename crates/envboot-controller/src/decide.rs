//! What a reconcile does with a plan, and the status it leaves: pure functions, no IO.

use crate::crd::{Condition, DriftPolicy, EnvironmentStatus, PlanSummary};

/// Why an apply runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The commit differs from the one last applied (or nothing was applied yet).
    NewCommit,
    /// The Environment's spec changed since the last reconcile.
    SpecChanged,
    /// `envboot sync` (the `envboot.dev/requested-at` annotation) asked for it.
    SyncRequested,
    /// The live environment drifted from the applied commit and the policy is `Heal`.
    DriftHealed,
}

impl Why {
    pub fn reason(self) -> &'static str {
        match self {
            Why::NewCommit => "Applied",
            Why::SpecChanged => "Applied",
            Why::SyncRequested => "SyncApplied",
            Why::DriftHealed => "DriftHealed",
        }
    }
}

/// What to do after the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing differs.
    InSync,
    Apply(Why),
    /// The live environment drifted, the policy is `Report`: mark it and wait.
    ReportDrift,
}

/// What the reconcile knows of the Environment besides the plan.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    pub generation: Option<i64>,
    pub status: &'a EnvironmentStatus,
    pub requested_at: Option<&'a str>,
    /// The `envboot.dev/pushed-at` annotation.
    pub pushed_at: Option<&'a str>,
    pub drift: DriftPolicy,
}

impl Observed<'_> {
    /// Whether `envboot sync` asked for a reconcile that has not been handled yet.
    pub fn sync_requested(&self) -> bool {
        self.requested_at.is_some()
            && self.requested_at != self.status.last_handled_requested_at.as_deref()
    }

    /// Whether something asks for a reconcile before it is due: a changed spec, a sync
    /// request, or a push the webhook received.
    pub fn changed(&self) -> bool {
        self.generation != self.status.observed_generation
            || self.sync_requested()
            || (self.pushed_at.is_some()
                && self.pushed_at != self.status.last_handled_pushed_at.as_deref())
    }
}

/// Decides from the plan of `commit`: differences are applied when Git moved, the spec
/// changed, a sync was asked for, or the policy heals drift; otherwise they are drift to report.
pub fn decide(observed: &Observed<'_>, commit: &str, plan: &PlanSummary) -> Decision {
    if !plan.has_changes() {
        Decision::InSync
    } else if observed.status.last_applied_commit.as_deref() != Some(commit) {
        Decision::Apply(Why::NewCommit)
    } else if observed.generation != observed.status.last_applied_generation {
        Decision::Apply(Why::SpecChanged)
    } else if observed.sync_requested() {
        Decision::Apply(Why::SyncRequested)
    } else if observed.drift == DriftPolicy::Heal {
        Decision::Apply(Why::DriftHealed)
    } else {
        Decision::ReportDrift
    }
}

/// How a reconcile ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    InSync {
        commit: String,
        plan: PlanSummary,
    },
    Applied {
        commit: String,
        why: Why,
        plan: PlanSummary,
    },
    Drifted {
        commit: String,
        plan: PlanSummary,
    },
    Failed {
        /// PascalCase, e.g. `GitFetchFailed`, `InvalidEnvironment`, `ApplyFailed`.
        reason: String,
        message: String,
        /// Retrying cannot help until Git or the spec changes.
        stalled: bool,
        commit: Option<String>,
        plan: Option<PlanSummary>,
    },
    Suspended,
}

impl Outcome {
    /// The `result` label of the reconcile metric.
    pub fn result(&self) -> &'static str {
        match self {
            Outcome::InSync { .. } => "in_sync",
            Outcome::Applied {
                why: Why::DriftHealed,
                ..
            } => "drift_healed",
            Outcome::Applied { .. } => "applied",
            Outcome::Drifted { .. } => "drifted",
            Outcome::Failed { .. } => "failed",
            Outcome::Suspended => "suspended",
        }
    }
}

/// The first 12 characters of a commit, as the status messages show it.
pub fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// Sets condition `type_` in `conditions`, keeping its transition time when its status is
/// unchanged.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    now: &str,
    generation: Option<i64>,
) {
    let status = if status { "True" } else { "False" }.to_string();
    // an empty message is sent as null by some API servers (1.20), which the schema refuses
    let message = if message.is_empty() { reason } else { message };
    let transition = conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or_else(|| now.to_string(), |c| c.last_transition_time.clone());
    conditions.retain(|c| c.type_ != type_);
    conditions.push(Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message: message.to_string(),
        last_transition_time: transition,
        observed_generation: generation,
    });
    conditions.sort_by_key(|c| condition_rank(&c.type_));
}

fn condition_rank(type_: &str) -> usize {
    ["Ready", "Reconciling", "Drifted", "Stalled"]
        .iter()
        .position(|t| *t == type_)
        .unwrap_or(usize::MAX)
}

/// `Stalled` is `False`: the reconcile got through.
fn not_stalled(conditions: &mut Vec<Condition>, now: &str, generation: Option<i64>) {
    let message = "the last reconcile succeeded";
    set_condition(
        conditions,
        "Stalled",
        false,
        "Succeeded",
        message,
        now,
        generation,
    );
}

/// The status after `outcome`, from the previous one, at time `now` (RFC 3339).
pub fn next_status(
    previous: &EnvironmentStatus,
    outcome: &Outcome,
    observed: &Observed<'_>,
    now: &str,
) -> EnvironmentStatus {
    let mut status = previous.clone();
    let generation = observed.generation;
    let conditions = &mut status.conditions;
    match outcome {
        Outcome::Suspended => {
            set_condition(
                conditions,
                "Reconciling",
                false,
                "Suspended",
                "reconciliation is suspended (spec.suspend)",
                now,
                generation,
            );
            status.observed_generation = generation;
            status.last_handled_requested_at = observed.requested_at.map(str::to_string);
            status.last_handled_pushed_at = observed.pushed_at.map(str::to_string);
            return status;
        }
        Outcome::InSync { commit, plan } | Outcome::Applied { commit, plan, .. } => {
            let (reason, message) = match outcome {
                Outcome::Applied { why, .. } => (
                    why.reason(),
                    format!("applied commit {}: {plan}", short(commit)),
                ),
                _ => ("InSync", format!("commit {} is applied", short(commit))),
            };
            set_condition(conditions, "Ready", true, reason, &message, now, generation);
            set_condition(
                conditions,
                "Drifted",
                false,
                "InSync",
                "the live environment matches Git",
                now,
                generation,
            );
            not_stalled(conditions, now, generation);
            if matches!(outcome, Outcome::Applied { .. })
                || previous.last_applied_commit.as_deref() != Some(commit.as_str())
            {
                status.last_applied_at = Some(now.to_string());
            }
            status.last_applied_commit = Some(commit.clone());
            status.last_applied_generation = generation;
            status.last_attempted_commit = Some(commit.clone());
            status.last_plan = Some(*plan);
            status.last_error = None;
        }
        Outcome::Drifted { commit, plan } => {
            let message = format!(
                "the live environment differs from commit {} ({plan}); drift policy Report: \
                 waiting for a new commit or `envboot sync`",
                short(commit)
            );
            set_condition(
                conditions,
                "Ready",
                false,
                "DriftDetected",
                &message,
                now,
                generation,
            );
            set_condition(
                conditions,
                "Drifted",
                true,
                "DriftDetected",
                &message,
                now,
                generation,
            );
            not_stalled(conditions, now, generation);
            status.last_attempted_commit = Some(commit.clone());
            status.last_plan = Some(*plan);
            status.last_error = None;
        }
        Outcome::Failed {
            reason,
            message,
            stalled,
            commit,
            plan,
        } => {
            set_condition(conditions, "Ready", false, reason, message, now, generation);
            set_condition(
                conditions,
                "Stalled",
                *stalled,
                if *stalled { reason } else { "Retrying" },
                if *stalled {
                    message
                } else {
                    "retrying with backoff"
                },
                now,
                generation,
            );
            if let Some(commit) = commit {
                status.last_attempted_commit = Some(commit.clone());
            }
            if let Some(plan) = plan {
                status.last_plan = Some(*plan);
            }
            status.last_error = Some(message.clone());
        }
    }
    set_condition(
        &mut status.conditions,
        "Reconciling",
        false,
        "Finished",
        "no reconcile is running",
        now,
        generation,
    );
    status.observed_generation = generation;
    status.last_reconciled_at = Some(now.to_string());
    if observed.requested_at.is_some() {
        status.last_handled_requested_at = observed.requested_at.map(str::to_string);
    }
    if observed.pushed_at.is_some() {
        status.last_handled_pushed_at = observed.pushed_at.map(str::to_string);
    }
    status
}

/// The wait before the next attempt after `failures` failures in a row: 5 s doubling, at most
/// `interval`.
pub fn backoff(failures: u32, interval: std::time::Duration) -> std::time::Duration {
    let seconds = 5u64.saturating_mul(1u64 << failures.saturating_sub(1).min(20));
    std::time::Duration::from_secs(seconds).min(interval)
}

/// Parses a Go duration as the spec's fields hold it (`90s`, `5m`, `1h30m`, `1.5h`).
///
/// # Errors
/// A message naming what is wrong.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let invalid = || format!("`{text}` is not a duration (e.g. 30s, 5m, 1h30m)");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let (number, tail) = rest.split_at(digits);
        let number: f64 = number.parse().map_err(|_| invalid())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        total += number * scale;
        rest = tail;
    }
    if !total.is_finite() || total > 366.0 * 86400.0 {
        return Err(format!("`{text}` is longer than a year"));
    }
    if total < 1.0 {
        return Err(format!("`{text}` is shorter than a second"));
    }
    Ok(std::time::Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(changes: u64) -> PlanSummary {
        PlanSummary {
            update: changes,
            unchanged: 3,
            ..PlanSummary::default()
        }
    }

    fn observed<'a>(status: &'a EnvironmentStatus, drift: DriftPolicy) -> Observed<'a> {
        Observed {
            generation: Some(1),
            status,
            requested_at: None,
            pushed_at: None,
            drift,
        }
    }

    fn applied(commit: &str) -> EnvironmentStatus {
        EnvironmentStatus {
            observed_generation: Some(1),
            last_applied_generation: Some(1),
            last_applied_commit: Some(commit.into()),
            ..EnvironmentStatus::default()
        }
    }

    #[test]
    fn a_new_commit_is_applied_whatever_the_drift_policy() {
        let status = applied("a");
        for drift in [DriftPolicy::Heal, DriftPolicy::Report] {
            let o = observed(&status, drift);
            assert_eq!(decide(&o, "b", &plan(1)), Decision::Apply(Why::NewCommit));
            assert_eq!(decide(&o, "b", &plan(0)), Decision::InSync);
        }
        let never = EnvironmentStatus::default();
        let o = observed(&never, DriftPolicy::Report);
        assert_eq!(decide(&o, "a", &plan(2)), Decision::Apply(Why::NewCommit));
    }

    #[test]
    fn drift_at_the_same_commit_is_healed_or_reported_as_the_policy_says() {
        let status = applied("a");
        let heal = observed(&status, DriftPolicy::Heal);
        assert_eq!(
            decide(&heal, "a", &plan(1)),
            Decision::Apply(Why::DriftHealed)
        );
        let report = observed(&status, DriftPolicy::Report);
        assert_eq!(decide(&report, "a", &plan(1)), Decision::ReportDrift);
        // a sync asked for once applies; once handled, drift is reported again
        let asked = Observed {
            requested_at: Some("2026-12-03T10:00:00Z"),
            ..report
        };
        assert_eq!(
            decide(&asked, "a", &plan(1)),
            Decision::Apply(Why::SyncRequested)
        );
        let handled = EnvironmentStatus {
            last_handled_requested_at: Some("2026-12-03T10:00:00Z".into()),
            ..applied("a")
        };
        let again = Observed {
            status: &handled,
            ..asked
        };
        assert_eq!(decide(&again, "a", &plan(1)), Decision::ReportDrift);
        // a changed spec (e.g. the policy itself) is applied once
        let edited = Observed {
            generation: Some(2),
            ..report
        };
        assert_eq!(
            decide(&edited, "a", &plan(1)),
            Decision::Apply(Why::SpecChanged)
        );
    }

    #[test]
    fn conditions_keep_their_transition_time_while_their_status_holds() {
        let status = EnvironmentStatus::default();
        let o = observed(&status, DriftPolicy::Report);
        let first = next_status(
            &status,
            &Outcome::InSync {
                commit: "c1".into(),
                plan: plan(0),
            },
            &o,
            "T1",
        );
        let ready = |s: &EnvironmentStatus| {
            s.conditions
                .iter()
                .find(|c| c.type_ == "Ready")
                .cloned()
                .map(|c| (c.status, c.reason, c.last_transition_time))
        };
        assert_eq!(
            ready(&first),
            Some(("True".into(), "InSync".into(), "T1".into()))
        );
        assert_eq!(first.last_applied_at.as_deref(), Some("T1"));
        let o = observed(&first, DriftPolicy::Report);
        let second = next_status(
            &first,
            &Outcome::InSync {
                commit: "c1".into(),
                plan: plan(0),
            },
            &o,
            "T2",
        );
        assert_eq!(ready(&second).map(|r| r.2), Some("T1".into()));
        assert_eq!(second.last_applied_at.as_deref(), Some("T1"));
        assert_eq!(second.last_reconciled_at.as_deref(), Some("T2"));
        let drifted = next_status(
            &second,
            &Outcome::Drifted {
                commit: "c1".into(),
                plan: plan(1),
            },
            &o,
            "T3",
        );
        assert_eq!(
            ready(&drifted),
            Some(("False".into(), "DriftDetected".into(), "T3".into()))
        );
        let types: Vec<_> = drifted
            .conditions
            .iter()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(types, ["Ready", "Reconciling", "Drifted", "Stalled"]);
        assert_eq!(drifted.last_applied_commit.as_deref(), Some("c1"));
        let failed = next_status(
            &drifted,
            &Outcome::Failed {
                reason: "InvalidEnvironment".into(),
                message: "environment.yaml:3:1: bad".into(),
                stalled: true,
                commit: Some("c2".into()),
                plan: None,
            },
            &o,
            "T4",
        );
        assert_eq!(
            failed.last_error.as_deref(),
            Some("environment.yaml:3:1: bad")
        );
        assert_eq!(failed.last_attempted_commit.as_deref(), Some("c2"));
        assert_eq!(failed.last_applied_commit.as_deref(), Some("c1"));
        let stalled = failed.conditions.iter().find(|c| c.type_ == "Stalled");
        assert_eq!(stalled.map(|c| c.status.as_str()), Some("True"));
    }

    #[test]
    fn backoff_doubles_from_five_seconds_up_to_the_interval() {
        let minute = std::time::Duration::from_secs(60);
        let waits: Vec<u64> = (1..=6).map(|n| backoff(n, minute).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 60, 60]);
        assert_eq!(backoff(u32::MAX, minute).as_secs(), 60);
    }

    #[test]
    fn durations_read_as_go_writes_them() {
        let s = |t: &str| parse_duration(t).map(|d| d.as_millis());
        assert_eq!(s("90s"), Ok(90_000));
        assert_eq!(s("5m"), Ok(300_000));
        assert_eq!(s("1h30m"), Ok(5_400_000));
        assert_eq!(s("1.5h"), Ok(5_400_000));
        assert_eq!(s("1500ms"), Ok(1500));
        for bad in [
            "",
            "5",
            "m",
            "5 minutes",
            "1d",
            "-1s",
            "99999999h",
            "0s",
            "1ns",
        ] {
            assert!(s(bad).is_err(), "{bad}");
        }
    }
}
