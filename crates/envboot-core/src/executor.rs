//! Runs the nodes of a dependency graph with bounded concurrency: a node starts once everything
//! it depends on has finished; independent nodes run at the same time, at most `concurrency`
//! at once. The first failure stops new starts; what is already running is finished (and
//! reported) before the failure is returned, so a run never abandons a call half way.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;

use futures::stream::{FuturesUnordered, StreamExt};

/// A node's work.
pub type Work<'a, T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + 'a>>;

/// Runs every node of the graph. `deps[i]` lists the nodes `i` waits for. `start(i)` returns the
/// node's work, `None` if there is nothing to do, or an error that stops the run; `finish(i, t)`
/// receives each result in the order they complete.
///
/// # Errors
/// The first error of `start` or of a node's work.
pub async fn run<'a, T, E>(
    deps: &[Vec<usize>],
    concurrency: usize,
    mut start: impl FnMut(usize) -> Result<Option<Work<'a, T, E>>, E>,
    mut finish: impl FnMut(usize, T),
) -> Result<(), E> {
    let n = deps.len();
    let mut waiting: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            if d < n {
                dependents[d].push(i);
            } else {
                waiting[i] -= 1;
            }
        }
    }
    let mut ready: BTreeSet<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
    let mut running = FuturesUnordered::new();
    let mut failure: Option<E> = None;
    loop {
        while failure.is_none() && running.len() < concurrency.max(1) {
            let Some(i) = ready.pop_first() else { break };
            match start(i) {
                Ok(Some(work)) => running.push(async move { (i, work.await) }),
                Ok(None) => {
                    for &d in &dependents[i] {
                        waiting[d] -= 1;
                        if waiting[d] == 0 {
                            ready.insert(d);
                        }
                    }
                }
                Err(e) => failure = Some(e),
            }
        }
        let Some((i, result)) = running.next().await else {
            if failure.is_some() || ready.is_empty() {
                break;
            }
            continue;
        };
        match result {
            Ok(t) => {
                finish(i, t);
                for &d in &dependents[i] {
                    waiting[d] -= 1;
                    if waiting[d] == 0 {
                        ready.insert(d);
                    }
                }
            }
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::task::Poll;

    /// Yields to the executor `n` times: a node that takes `n` turns, with no clock involved.
    async fn turns(n: u64) {
        for _ in 0..n {
            let mut yielded = false;
            futures::future::poll_fn(|cx| {
                if yielded {
                    Poll::Ready(())
                } else {
                    yielded = true;
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            })
            .await;
        }
    }

    fn work<'a>(
        log: &'a RefCell<Vec<String>>,
        i: usize,
        turns_taken: u64,
        fail: bool,
    ) -> Work<'a, usize, String> {
        Box::pin(async move {
            log.borrow_mut().push(format!("start {i}"));
            turns(turns_taken).await;
            log.borrow_mut().push(format!("end {i}"));
            if fail {
                Err(format!("node {i} failed"))
            } else {
                Ok(i)
            }
        })
    }

    #[test]
    fn independent_nodes_overlap_and_dependents_wait() {
        futures::executor::block_on(async {
            // 0 and 1 are independent; 2 needs both; 3 needs 2.
            let deps = vec![vec![], vec![], vec![0, 1], vec![2]];
            let log = RefCell::new(Vec::new());
            let mut done = Vec::new();
            run(
                &deps,
                8,
                |i| Ok(Some(work(&log, i, 20, false))),
                |i, _| done.push(i),
            )
            .await
            .unwrap();
            let log = log.into_inner();
            assert_eq!(&log[..2], ["start 0", "start 1"], "{log:?}");
            let pos = |s: &str| log.iter().position(|l| l == s).unwrap();
            assert!(pos("start 2") > pos("end 0") && pos("start 2") > pos("end 1"));
            assert!(pos("start 3") > pos("end 2"));
            assert_eq!(done.len(), 4);
        })
    }

    #[test]
    fn concurrency_is_bounded() {
        futures::executor::block_on(async {
            let deps = vec![vec![]; 5];
            let log = RefCell::new(Vec::new());
            run(&deps, 2, |i| Ok(Some(work(&log, i, 10, false))), |_, _| {})
                .await
                .unwrap();
            let mut running = 0;
            let mut most = 0;
            for l in log.into_inner() {
                running += if l.starts_with("start") { 1 } else { -1 };
                most = most.max(running);
            }
            assert_eq!(most, 2);
        })
    }

    #[test]
    fn a_failure_stops_new_starts_but_finishes_what_runs() {
        futures::executor::block_on(async {
            // 0 fails fast, 1 is slow and independent, 2 depends on 0, 3 on 1.
            let deps = vec![vec![], vec![], vec![0], vec![1]];
            let log = RefCell::new(Vec::new());
            let mut done = Vec::new();
            let err = run(
                &deps,
                8,
                |i| Ok(Some(work(&log, i, if i == 1 { 30 } else { 1 }, i == 0))),
                |i, _| done.push(i),
            )
            .await
            .unwrap_err();
            assert_eq!(err, "node 0 failed");
            assert_eq!(done, vec![1], "the running node finished and was reported");
            let log = log.into_inner();
            assert!(!log.contains(&"start 2".to_string()));
            assert!(!log.contains(&"start 3".to_string()), "{log:?}");
        })
    }

    #[test]
    fn nodes_with_nothing_to_do_release_their_dependents() {
        futures::executor::block_on(async {
            let deps = vec![vec![], vec![0]];
            let log = RefCell::new(Vec::new());
            run(
                &deps,
                1,
                |i| Ok((i == 1).then(|| work(&log, i, 1, false))),
                |_, _| {},
            )
            .await
            .unwrap();
            assert_eq!(log.into_inner(), vec!["start 1", "end 1"]);
        })
    }
}
