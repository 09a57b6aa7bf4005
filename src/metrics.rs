//! Prometheus metrics served on `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of an admission request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AdmissionLabels {
    /// `mutate` or `validate`.
    pub webhook: &'static str,
    /// CREATE, UPDATE, DELETE, CONNECT or `unknown` for unreadable requests.
    pub operation: String,
    /// `allowed`, `denied` or `error` (unreadable request).
    pub result: &'static str,
}

/// Labels naming a webhook.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    /// `mutate` or `validate`.
    pub webhook: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// Every metric rsg exports.
pub struct Metrics {
    registry: Registry,
    /// Admission requests by webhook, operation and result.
    pub admission_requests: Family<AdmissionLabels, Counter>,
    /// Admission handling latency in seconds.
    pub admission_duration: HistogramFamily<WebhookLabels>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("rsg");
        let admission_requests = Family::<AdmissionLabels, Counter>::default();
        registry.register(
            "admission_requests",
            "Admission requests handled, by webhook, operation and result",
            admission_requests.clone(),
        );
        let admission_duration: HistogramFamily<WebhookLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "admission_duration_seconds",
            "Time to answer an admission request",
            admission_duration.clone(),
        );
        Self {
            registry,
            admission_requests,
            admission_duration,
        }
    }
}

impl Metrics {
    /// The metrics in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(err) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %err, "encoding metrics failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_admission_metrics() {
        let metrics = Metrics::default();
        metrics
            .admission_requests
            .get_or_create(&AdmissionLabels {
                webhook: "validate",
                operation: "CREATE".into(),
                result: "denied",
            })
            .inc();
        metrics
            .admission_duration
            .get_or_create(&WebhookLabels {
                webhook: "validate",
            })
            .observe(0.002);
        let text = metrics.render();
        assert!(text.contains(r#"rsg_admission_requests_total{webhook="validate",operation="CREATE",result="denied"} 1"#), "{text}");
        assert!(
            text.contains("rsg_admission_duration_seconds_count{webhook=\"validate\"} 1"),
            "{text}"
        );
    }
}
