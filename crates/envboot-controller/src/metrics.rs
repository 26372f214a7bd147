//! The controller's Prometheus metrics, served on `/metrics` in the OpenMetrics text format.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EnvironmentLabels {
    pub namespace: String,
    pub name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub namespace: String,
    pub name: String,
    /// in_sync, applied, drift_healed, drifted, failed, suspended
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// aws or kubernetes
    pub layer: String,
    /// read or write
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotificationLabels {
    pub result: String,
}

type Histograms = Family<EnvironmentLabels, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    // 0.25 s to about 34 minutes
    Histogram::new(exponential_buckets(0.25, 2.0, 14))
}

pub struct Metrics {
    registry: Registry,
    pub reconciles: Family<ResultLabels, Counter>,
    pub duration: Histograms,
    pub drift: Family<EnvironmentLabels, Counter>,
    pub api_calls: Family<CallLabels, Counter>,
    pub last_applied: Family<EnvironmentLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub ready: Family<EnvironmentLabels, Gauge>,
    pub notifications: Family<NotificationLabels, Counter>,
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("envboot");
        let reconciles = Family::<ResultLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles of an Environment, by result",
            reconciles.clone(),
        );
        let duration: Histograms = Family::new_with_constructor(duration_histogram);
        registry.register(
            "reconcile_duration_seconds",
            "How long a reconcile took (fetch, plan and apply)",
            duration.clone(),
        );
        let drift = Family::<EnvironmentLabels, Counter>::default();
        registry.register(
            "drift_detected",
            "Reconciles that found the live environment differing from the commit already applied",
            drift.clone(),
        );
        let api_calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "api_calls",
            "AWS and Kubernetes API calls made by applies",
            api_calls.clone(),
        );
        let last_applied = Family::default();
        registry.register(
            "last_applied_timestamp_seconds",
            "When an Environment was last applied or found in sync (Unix time)",
            last_applied.clone(),
        );
        let ready = Family::<EnvironmentLabels, Gauge>::default();
        registry.register(
            "environment_ready",
            "1 when the Environment's Ready condition is True",
            ready.clone(),
        );
        let notifications = Family::<NotificationLabels, Counter>::default();
        registry.register(
            "notifications",
            "Notifications sent to webhooks, by result",
            notifications.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "controller_leader",
            "1 while this replica holds the leader Lease",
            leader.clone(),
        );
        Metrics {
            registry,
            reconciles,
            duration,
            drift,
            api_calls,
            last_applied,
            ready,
            notifications,
            leader,
        }
    }
}

impl Metrics {
    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    pub fn count_calls(&self, calls: &crate::runner::ApiCalls) {
        let add = |layer: &str, kind: &str, n: u64| {
            self.api_calls
                .get_or_create(&CallLabels {
                    layer: layer.into(),
                    kind: kind.into(),
                })
                .inc_by(n);
        };
        add("aws", "read", calls.aws.saturating_sub(calls.aws_writes));
        add("aws", "write", calls.aws_writes);
        add(
            "kubernetes",
            "read",
            calls.kubernetes.saturating_sub(calls.kubernetes_writes),
        );
        add("kubernetes", "write", calls.kubernetes_writes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_names_every_metric_with_its_labels() {
        let m = Metrics::default();
        let env = EnvironmentLabels {
            namespace: "ops".into(),
            name: "local".into(),
        };
        m.reconciles
            .get_or_create(&ResultLabels {
                namespace: "ops".into(),
                name: "local".into(),
                result: "applied".into(),
            })
            .inc();
        m.duration.get_or_create(&env).observe(1.5);
        m.last_applied.get_or_create(&env).set(1.7e9);
        m.count_calls(&crate::runner::ApiCalls {
            aws: 5,
            aws_writes: 2,
            kubernetes: 9,
            kubernetes_writes: 1,
        });
        let text = m.encode();
        for line in [
            r#"envboot_reconciles_total{namespace="ops",name="local",result="applied"} 1"#,
            r#"envboot_reconcile_duration_seconds_count{namespace="ops",name="local"} 1"#,
            r#"envboot_api_calls_total{layer="aws",kind="write"} 2"#,
            r#"envboot_api_calls_total{layer="kubernetes",kind="read"} 8"#,
            "# EOF",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }
}
