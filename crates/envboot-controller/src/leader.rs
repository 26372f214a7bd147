//! Leader election through a `coordination.k8s.io/v1` Lease, as client-go's leaderelection
//! does it: a candidate takes the Lease when it is free or its holder let it expire, the leader
//! renews it every `retry`, and a leader that could not renew it for `renew_deadline` stops
//! leading. Expiry is judged on this process's clock, from when the Lease was last seen to
//! change (never by comparing clocks of two machines).

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};

/// The timings (client-go's defaults).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub lease: Duration,
    pub renew_deadline: Duration,
    pub retry: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            lease: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry: Duration::from_secs(2),
        }
    }
}

/// A Lease's holder and renew time, as last read.
type Record = (Option<String>, Option<String>);

pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
    /// The holder and renew time last seen, and when they were first seen so.
    observed: Option<(Record, Instant)>,
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

impl Elector {
    pub fn new(api: Api<Lease>, name: &str, identity: &str, timing: Timing) -> Self {
        Elector {
            api,
            name: name.to_string(),
            identity: identity.to_string(),
            timing,
            observed: None,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Takes or renews the Lease once. `Ok(true)`: this process leads.
    ///
    /// # Errors
    /// The API server failed (a conflict is `Ok(false)`: another candidate won the race).
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let seconds = i32::try_from(self.timing.lease.as_secs()).unwrap_or(i32::MAX);
        let existing = self.api.get_opt(&self.name).await?;
        let Some(mut lease) = existing else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let record = (
            spec.holder_identity.clone(),
            spec.renew_time.as_ref().map(|t| t.0.to_string()),
        );
        let seen_at = match &self.observed {
            Some((r, at)) if *r == record => *at,
            _ => Instant::now(),
        };
        self.observed = Some((record, seen_at));
        let holder = spec.holder_identity.as_deref().filter(|h| !h.is_empty());
        let mine = holder == Some(self.identity.as_str());
        let duration =
            Duration::from_secs(spec.lease_duration_seconds.unwrap_or(seconds).max(0) as u64);
        if !mine && holder.is_some() && seen_at.elapsed() < duration {
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0);
        lease.spec = Some(LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(seconds),
            acquire_time: if mine { spec.acquire_time } else { Some(now()) },
            renew_time: Some(now()),
            lease_transitions: Some(if mine { transitions } else { transitions + 1 }),
            ..spec
        });
        // the resourceVersion read above makes this a compare-and-swap
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until this process leads.
    pub async fn acquire(&mut self, log: &dyn Fn(&str)) {
        let mut said = false;
        loop {
            let attempt = tokio::time::timeout(self.timing.lease, self.try_acquire_or_renew());
            match attempt.await.unwrap_or(Ok(false)) {
                Ok(true) => return,
                Ok(false) if !said => {
                    log("another replica leads: standing by");
                    said = true;
                }
                Ok(false) => {}
                Err(e) => log(&format!("cannot read or take the leader Lease: {e}")),
            }
            tokio::time::sleep(self.timing.retry).await;
        }
    }

    /// Renews the Lease every `retry` while leading; returns when leadership is lost (a renewal
    /// that did not succeed within `renew_deadline`, or another holder).
    pub async fn keep(&mut self) -> String {
        let mut last_renewed = Instant::now();
        loop {
            tokio::time::sleep(self.timing.retry).await;
            // a renewal that hangs must not outlive the deadline: client-go bounds it too
            let left = self
                .timing
                .renew_deadline
                .saturating_sub(last_renewed.elapsed());
            let renewed = match tokio::time::timeout(left, self.try_acquire_or_renew()).await {
                Ok(r) => r,
                Err(_) => {
                    return format!(
                        "the leader Lease could not be renewed within {}s",
                        self.timing.renew_deadline.as_secs()
                    )
                }
            };
            match renewed {
                Ok(true) => last_renewed = Instant::now(),
                Ok(false) => return "another replica took the leader Lease".to_string(),
                Err(e) if last_renewed.elapsed() >= self.timing.renew_deadline => {
                    return format!(
                        "the leader Lease could not be renewed for {}s: {e}",
                        self.timing.renew_deadline.as_secs()
                    )
                }
                Err(_) => {}
            }
        }
    }

    /// Gives the Lease up (on a clean shutdown), so a standby takes over at once.
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now());
        let _ = self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await;
    }
}
