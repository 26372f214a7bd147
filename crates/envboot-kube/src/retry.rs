//! Retries of Kubernetes API requests, as a tower retry policy under the kube client.
//!
//! Retried, with exponential backoff and full jitter, for a bounded number of attempts:
//! - answers 429 (throttled), 503 and 504, for every method (the server did not act on them),
//!   waiting at least the server's `Retry-After`;
//! - failures to connect, for every method (nothing was sent);
//! - other transport failures (a connection dropped or reset) for idempotent requests only:
//!   reads, server-side apply (`PATCH`), `PUT` and `DELETE`. A `POST` that may have reached the
//!   server is not repeated; the caller sees the error and a rerun finishes the job.

use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use tower::BoxError;

/// The retry policy envboot's kube client uses (it replaces kube's default, which waits up to
/// 1000 s between attempts and does not retry dropped connections).
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    attempt: u32,
    max_attempts: u32,
    base: Duration,
    cap: Duration,
}

impl Default for RetryPolicy {
    /// Up to 8 retries, from 100 ms doubling to at most 5 s: about 15 s of faults tolerated.
    fn default() -> Self {
        RetryPolicy {
            attempt: 0,
            max_attempts: 8,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(5),
        }
    }
}

/// What to do with one outcome.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Done: hand the outcome to the caller.
    Give,
    /// Try again after at least this long.
    RetryAfter(Duration),
}

impl RetryPolicy {
    /// The pure decision: the request's method, the status (or `None` for a transport error,
    /// `connect` telling whether the connection was never made) and the server's `Retry-After`.
    pub fn decide(
        &mut self,
        method: &Method,
        status: Option<StatusCode>,
        connect: bool,
        retry_after: Option<Duration>,
    ) -> Verdict {
        let retryable = match status {
            Some(s) => matches!(
                s,
                StatusCode::TOO_MANY_REQUESTS
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT
            ),
            None => connect || idempotent(method),
        };
        if !retryable || self.attempt >= self.max_attempts {
            return Verdict::Give;
        }
        let ceiling = self
            .base
            .saturating_mul(1 << self.attempt.min(16))
            .min(self.cap);
        self.attempt += 1;
        let delay = jitter(ceiling).max(retry_after.unwrap_or_default().min(self.cap));
        Verdict::RetryAfter(delay)
    }
}

fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::PATCH
    )
}

/// A random duration in `[ceiling/2, ceiling]`.
fn jitter(ceiling: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    let fraction = (h.finish() % 1000) as u32;
    ceiling / 2 + ceiling / 2 * fraction / 1000
}

/// Whether a transport error happened before anything was sent (the connection was refused).
fn is_connect(error: &BoxError) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error.as_ref());
    while let Some(e) = source {
        if let Some(e) = e.downcast_ref::<hyper_util::client::legacy::Error>() {
            return e.is_connect();
        }
        if let Some(e) = e.downcast_ref::<std::io::Error>() {
            return e.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        source = e.source();
    }
    false
}

impl<Res> tower::retry::Policy<Request<Body>, Response<Res>, BoxError> for RetryPolicy {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        req: &mut Request<Body>,
        result: &mut Result<Response<Res>, BoxError>,
    ) -> Option<Self::Future> {
        let verdict = match result {
            Ok(response) => {
                let retry_after = response
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(Duration::from_secs);
                self.decide(req.method(), Some(response.status()), false, retry_after)
            }
            Err(error) => {
                let connect = is_connect(error);
                self.decide(req.method(), None, connect, None)
            }
        };
        match verdict {
            Verdict::Give => None,
            Verdict::RetryAfter(delay) => Some(tokio::time::sleep(delay)),
        }
    }

    fn clone_request(&mut self, req: &Request<Body>) -> Option<Request<Body>> {
        let body = req.body().try_clone()?;
        let mut clone = Request::builder()
            .method(req.method().clone())
            .uri(req.uri().clone())
            .version(req.version())
            .body(body)
            .ok()?;
        *clone.headers_mut() = req.headers().clone();
        *clone.extensions_mut() = req.extensions().clone();
        Some(clone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_unavailability_are_retried_for_every_method() {
        for status in [429, 503, 504] {
            let status = StatusCode::from_u16(status).unwrap_or_default();
            let mut p = RetryPolicy::default();
            assert!(matches!(
                p.decide(&Method::POST, Some(status), false, None),
                Verdict::RetryAfter(_)
            ));
        }
    }

    #[test]
    fn answers_that_are_final_are_given_to_the_caller() {
        for status in [200, 201, 400, 404, 409, 422, 500] {
            let status = StatusCode::from_u16(status).unwrap_or_default();
            let mut p = RetryPolicy::default();
            assert_eq!(
                p.decide(&Method::GET, Some(status), false, None),
                Verdict::Give
            );
        }
    }

    #[test]
    fn a_dropped_connection_repeats_only_idempotent_requests() {
        let mut p = RetryPolicy::default();
        assert!(matches!(
            p.decide(&Method::PATCH, None, false, None),
            Verdict::RetryAfter(_)
        ));
        assert_eq!(p.decide(&Method::POST, None, false, None), Verdict::Give);
        assert!(matches!(
            p.decide(&Method::POST, None, true, None),
            Verdict::RetryAfter(_)
        ));
    }

    #[test]
    fn retries_are_bounded_and_back_off_within_the_cap() {
        let mut p = RetryPolicy::default();
        let mut delays = Vec::new();
        while let Verdict::RetryAfter(d) = p.decide(&Method::GET, None, true, None) {
            delays.push(d);
        }
        assert_eq!(delays.len(), 8);
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(5)));
        assert!(delays[0] <= Duration::from_millis(100));
        assert!(delays[7] >= Duration::from_millis(2500));
    }

    #[test]
    fn the_servers_retry_after_is_honoured_up_to_the_cap() {
        let mut p = RetryPolicy::default();
        let v = p.decide(
            &Method::GET,
            Some(StatusCode::TOO_MANY_REQUESTS),
            false,
            Some(Duration::from_secs(2)),
        );
        assert!(matches!(v, Verdict::RetryAfter(d) if d >= Duration::from_secs(2)));
        let v = p.decide(
            &Method::GET,
            Some(StatusCode::TOO_MANY_REQUESTS),
            false,
            Some(Duration::from_secs(3600)),
        );
        assert!(matches!(v, Verdict::RetryAfter(d) if d <= Duration::from_secs(5)));
    }
}
