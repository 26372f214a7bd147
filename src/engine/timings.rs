//! Where a run's time goes (`ENVBOOT_TIMINGS=1`): the engine measures its phases (reading the
//! commit, rendering, discovery, lists, diff, dry runs, writes, ...) and the CLI prints them
//! at the end, to standard error. Off unless [`enable`]d; then each phase costs two clock
//! reads. Phases of one run overlap where they run concurrently (the AWS plan and the render
//! for the cluster): each is reported with its start and its length.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

static ENABLED: AtomicBool = AtomicBool::new(false);
static START: OnceLock<Instant> = OnceLock::new();
static PHASES: Mutex<Vec<Phase>> = Mutex::new(Vec::new());

/// One measured phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase {
    pub name: &'static str,
    /// From [`enable`] to the phase's start.
    pub start: Duration,
    pub took: Duration,
}

/// Starts measuring (the clock starts now).
pub fn enable() {
    START.get_or_init(Instant::now);
    ENABLED.store(true, Ordering::Relaxed);
}

fn record(name: &'static str, began: Instant) {
    let Some(start) = START.get() else {
        return;
    };
    let phase = Phase {
        name,
        start: began.saturating_duration_since(*start),
        took: began.elapsed(),
    };
    PHASES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push(phase);
}

/// Runs `f` as phase `name`.
pub fn measure<T>(name: &'static str, f: impl FnOnce() -> T) -> T {
    if !ENABLED.load(Ordering::Relaxed) {
        return f();
    }
    let began = Instant::now();
    let out = f();
    record(name, began);
    out
}

/// Awaits `f` as phase `name`.
pub async fn measure_async<T>(name: &'static str, f: impl Future<Output = T>) -> T {
    if !ENABLED.load(Ordering::Relaxed) {
        return f.await;
    }
    let began = Instant::now();
    let out = f.await;
    record(name, began);
    out
}

/// A phase measured from [`Span::start`] to [`Span::end`] (for a phase that is not one call).
pub struct Span {
    name: &'static str,
    began: Option<Instant>,
}

impl Span {
    pub fn start(name: &'static str) -> Span {
        Span {
            name,
            began: ENABLED.load(Ordering::Relaxed).then(Instant::now),
        }
    }

    pub fn end(self) {
        if let Some(began) = self.began {
            record(self.name, began);
        }
    }
}

/// The phases measured so far, by start.
pub fn phases() -> Vec<Phase> {
    let mut phases = PHASES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    phases.sort_by_key(|p| p.start);
    phases
}

/// The phases as a table: start and length in milliseconds, then the phase.
pub fn report(phases: &[Phase]) -> String {
    let mut out = String::from("timings (ms):   start    took  phase\n");
    for p in phases {
        out.push_str(&format!(
            "             {:>8.1} {:>7.1}  {}\n",
            p.start.as_secs_f64() * 1e3,
            p.took.as_secs_f64() * 1e3,
            p.name
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_lists_each_phase_with_its_start_and_length() {
        let phases = [
            Phase {
                name: "read the commit",
                start: Duration::from_micros(1500),
                took: Duration::from_millis(12),
            },
            Phase {
                name: "lists",
                start: Duration::from_millis(20),
                took: Duration::from_micros(250),
            },
        ];
        let report = report(&phases);
        let rows: Vec<Vec<&str>> = report
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            rows,
            [
                vec!["1.5", "12.0", "read", "the", "commit"],
                vec!["20.0", "0.2", "lists"]
            ]
        );
    }

    #[test]
    fn once_enabled_a_phase_is_recorded_and_its_value_returned() {
        enable();
        assert_eq!(measure("a phase of the test", || 7), 7);
        let found =
            futures::executor::block_on(measure_async("an async phase of the test", async { 8 }));
        assert_eq!(found, 8);
        let names: Vec<&str> = phases().iter().map(|p| p.name).collect();
        assert!(names.contains(&"a phase of the test"), "{names:?}");
        assert!(names.contains(&"an async phase of the test"), "{names:?}");
    }
}
