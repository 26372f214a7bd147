//! A client-side rate limit on requests to the API server: a token bucket (`qps` tokens a
//! second, at most `burst` saved up), as a tower layer under the kube client, so that a large
//! apply never floods a cluster's API server. Retries pass through it too.
//!
//! Set with `ENVBOOT_KUBE_QPS` and `ENVBOOT_KUBE_BURST` (defaults [`DEFAULT_QPS`],
//! [`DEFAULT_BURST`]).

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

/// Requests a second, sustained.
pub const DEFAULT_QPS: f64 = 300.0;
/// Requests that may go at once after a quiet time.
pub const DEFAULT_BURST: f64 = 1000.0;

/// The limit from `ENVBOOT_KUBE_QPS` / `ENVBOOT_KUBE_BURST`, or the defaults; a value that is
/// not a positive number is ignored.
pub fn from_env() -> (f64, f64) {
    let read = |var: &str, default: f64| {
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v > 0.0)
            .unwrap_or(default)
    };
    (
        read("ENVBOOT_KUBE_QPS", DEFAULT_QPS),
        read("ENVBOOT_KUBE_BURST", DEFAULT_BURST),
    )
}

/// The token bucket. Tokens may go negative: a request takes its token at once and waits
/// until the bucket would have held it, so waiting requests keep their order.
#[derive(Debug)]
pub struct Bucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub fn new(qps: f64, burst: f64, now: Instant) -> Bucket {
        let burst = burst.max(1.0);
        Bucket {
            qps,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token at `now`; returns how long the request must wait for it.
    pub fn take(&mut self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now.max(self.last);
        self.tokens = (self.tokens + elapsed * self.qps).min(self.burst);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.qps)
        }
    }
}

/// The tower layer.
#[derive(Clone)]
pub struct RateLimitLayer {
    bucket: Arc<Mutex<Bucket>>,
}

impl RateLimitLayer {
    pub fn new(qps: f64, burst: f64) -> RateLimitLayer {
        RateLimitLayer {
            bucket: Arc::new(Mutex::new(Bucket::new(qps, burst, Instant::now()))),
        }
    }
}

impl<S> tower::Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;
    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            bucket: self.bucket.clone(),
        }
    }
}

/// The tower service: waits for a token, then sends.
#[derive(Clone)]
pub struct RateLimit<S> {
    inner: S,
    bucket: Arc<Mutex<Bucket>>,
}

impl<S, R> tower::Service<R> for RateLimit<S>
where
    S: tower::Service<R> + Clone + Send + 'static,
    S::Future: Send,
    R: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let wait = match self.bucket.lock() {
            Ok(mut bucket) => bucket.take(Instant::now()),
            Err(_) => Duration::ZERO,
        };
        // The service made ready by `poll_ready` goes with the request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            inner.call(req).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_goes_at_once_and_the_rest_at_the_sustained_rate() {
        let start = Instant::now();
        let mut bucket = Bucket::new(10.0, 5.0, start);
        let waits: Vec<Duration> = (0..15).map(|_| bucket.take(start)).collect();
        assert!(waits[..5].iter().all(|w| w.is_zero()), "{waits:?}");
        // The 15th request waits for 10 more tokens at 10 a second.
        let last = waits[14].as_secs_f64();
        assert!((last - 1.0).abs() < 1e-6, "{waits:?}");
        assert!(
            waits.windows(2).all(|w| w[0] <= w[1]),
            "in order: {waits:?}"
        );
    }

    #[test]
    fn tokens_come_back_with_time_up_to_the_burst() {
        let start = Instant::now();
        let mut bucket = Bucket::new(10.0, 5.0, start);
        for _ in 0..5 {
            bucket.take(start);
        }
        // An hour later only `burst` requests go without waiting.
        let later = start + Duration::from_secs(3600);
        let waits: Vec<Duration> = (0..6).map(|_| bucket.take(later)).collect();
        assert!(waits[..5].iter().all(|w| w.is_zero()), "{waits:?}");
        assert!(!waits[5].is_zero());
    }
}
