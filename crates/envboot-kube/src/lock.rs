//! The per-environment lock: a `coordination.k8s.io/v1` Lease named `envboot-lock-<environment>`
//! in the `default` namespace of the environment's cluster.
//!
//! # Guarantees
//! - At most one holder: creation and takeover use the API server's optimistic concurrency.
//! - A lock left by a crashed run expires `duration` after its last renewal; a live holder renews
//!   it every third of that.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

use super::{Error, Kube, Result};

/// Namespace holding the lock Leases.
pub const LOCK_NAMESPACE: &str = "default";

/// A held lock; released on [`LockGuard::release`], or when it expires if the process dies.
pub struct LockGuard {
    api: Api<Lease>,
    name: String,
    renewer: tokio::task::JoinHandle<()>,
}

/// Whether a request's path is that of an environment's lock Lease (its creation is a POST to
/// the namespace's Leases: envboot applies objects by name, so no other request of envboot's
/// goes there).
pub(crate) fn is_lock_request(path: &str) -> bool {
    path.strip_prefix("/apis/coordination.k8s.io/v1/namespaces/")
        .and_then(|p| p.strip_prefix(LOCK_NAMESPACE))
        .and_then(|p| p.strip_prefix("/leases"))
        .is_some_and(|p| p.is_empty() || p.starts_with("/envboot-lock-"))
}

fn lease_name(environment: &str) -> String {
    format!("envboot-lock-{environment}")
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

fn lease(name: &str, environment: &str, holder: &str, duration: Duration) -> Result<Lease> {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"envboot.dev/lock-for": environment}},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": duration.as_secs(),
            "acquireTime": now(),
            "renewTime": now(),
        },
    }))
    .map_err(|e| Error::CallFailed {
        object: format!("Lease {LOCK_NAMESPACE}/{name}"),
        call: "build",
        source: kube::Error::SerdeError(e),
    })
}

/// Whether a lease's holder stopped renewing it longer than its duration ago.
fn expired(lease: &Lease) -> bool {
    let Some(spec) = &lease.spec else { return true };
    let (Some(renewed), Some(seconds)) = (&spec.renew_time, spec.lease_duration_seconds) else {
        return true;
    };
    let deadline = renewed.0 + std::time::Duration::from_secs(seconds.max(0) as u64);
    deadline < k8s_openapi::jiff::Timestamp::now()
}

impl Kube {
    /// Takes the environment's lock for `holder`, or fails at once naming the current holder.
    pub async fn lock(
        &self,
        environment: &str,
        holder: &str,
        duration: Duration,
        health: std::sync::Arc<envboot_core::lock::LockHealth>,
    ) -> Result<LockGuard> {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), LOCK_NAMESPACE);
        let name = lease_name(environment);
        let failed = |call: &'static str| {
            let object = format!("Lease {LOCK_NAMESPACE}/{name}");
            move |source| Error::CallFailed {
                object,
                call,
                source,
            }
        };
        let wanted = lease(&name, environment, holder, duration)?;
        match api.create(&PostParams::default(), &wanted).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let current = api.get(&name).await.map_err(failed("get"))?;
                if !expired(&current) && !holder_died_here(&current) {
                    return Err(locked(environment, &current));
                }
                // Take over the expired lease; a concurrent taker makes this fail with 409.
                let mut takeover = wanted.clone();
                takeover.metadata.resource_version = current.metadata.resource_version.clone();
                match api.replace(&name, &PostParams::default(), &takeover).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(status)) if status.code == 409 => {
                        let current = api.get(&name).await.map_err(failed("get"))?;
                        return Err(locked(environment, &current));
                    }
                    Err(e) => return Err(failed("replace")(e)),
                }
            }
            Err(e) => return Err(failed("create")(e)),
        }
        let renewer = {
            let api = api.clone();
            let name = name.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(duration / 3).await;
                    let patch = json!({"spec": {"renewTime": now()}});
                    let renewed = api
                        .patch(
                            &name,
                            &kube::api::PatchParams::default(),
                            &kube::api::Patch::Merge(&patch),
                        )
                        .await;
                    if let Err(e) = renewed {
                        health.lose(format!(
                            "renewing the lock (Lease {LOCK_NAMESPACE}/{name}) failed: {e}"
                        ));
                        return;
                    }
                }
            })
        };
        Ok(LockGuard { api, name, renewer })
    }
}

/// This machine's host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Who holds a lock: `envboot <command> (user@host, pid N)`, shown to a second run that finds
/// it, and used to tell that a holder on this same machine has died.
pub fn holder_identity(command: &str) -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    format!(
        "envboot {command} ({user}@{}, pid {})",
        hostname(),
        std::process::id()
    )
}

/// Whether the lease's holder ran on this machine and its process is gone (killed, crashed):
/// then the lock is stale at once, without waiting for it to expire.
fn holder_died_here(lease: &Lease) -> bool {
    let Some(holder) = lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_deref())
    else {
        return false;
    };
    match envboot_core::lock::host_and_pid(holder) {
        Some((host, pid)) => {
            host == hostname()
                && pid != std::process::id()
                && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        }
        None => false,
    }
}

fn locked(environment: &str, lease: &Lease) -> Error {
    let spec = lease.spec.as_ref();
    Error::Locked {
        environment: environment.to_string(),
        holder: spec
            .and_then(|s| s.holder_identity.clone())
            .unwrap_or_else(|| "unknown".into()),
        renewed: spec
            .and_then(|s| s.renew_time.as_ref())
            .map(|t| t.0.to_string())
            .unwrap_or_else(|| "never".into()),
    }
}

impl LockGuard {
    /// Releases the lock.
    pub async fn release(self) {
        self.renewer.abort();
        let _ = self.api.delete(&self.name, &DeleteParams::default()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_lock_leases_requests_are_the_locks() {
        let base = "/apis/coordination.k8s.io/v1/namespaces/default/leases";
        assert!(is_lock_request(base));
        assert!(is_lock_request(&format!("{base}/envboot-lock-staging")));
        assert!(!is_lock_request(&format!("{base}/other")));
        assert!(!is_lock_request(
            "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/envboot-lock-x"
        ));
        assert!(!is_lock_request(
            "/api/v1/namespaces/default/configmaps/envboot-lock-x"
        ));
    }

    #[test]
    fn the_host_and_pid_are_read_back_from_a_holder_identity() {
        let me = holder_identity("apply");
        assert_eq!(
            envboot_core::lock::host_and_pid(&me),
            Some((hostname().as_str(), std::process::id()))
        );
        assert_eq!(envboot_core::lock::host_and_pid("run A"), None);
        assert_eq!(
            envboot_core::lock::host_and_pid("envboot apply (a@b@host-1, pid 42)"),
            Some(("host-1", 42))
        );
    }
}
