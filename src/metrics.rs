//! Prometheus metrics served on `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Metric, Registry};

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

/// Labels of a reconcile.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// `GroupReplication`, `InplaceScaling` or `Invalid`.
    pub strategy: String,
    /// `success` or `error`.
    pub result: &'static str,
}

/// Labels naming a strategy.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StrategyLabels {
    /// The strategy type.
    pub strategy: String,
}

/// Labels of a scale-down decision.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `Metric`, `Annotation` or `GroupId`.
    pub source: &'static str,
}

/// Labels of a Prometheus query.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueryLabels {
    /// `success` or `error`.
    pub result: &'static str,
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
    /// Reconciles by strategy and result.
    pub reconciles: Family<ReconcileLabels, Counter>,
    /// Reconcile latency in seconds.
    pub reconcile_duration: HistogramFamily<StrategyLabels>,
    /// Reconciles put off because their namespace held its share of the workers.
    pub reconciles_deferred: Counter,
    /// Events dropped because too many waited to be published.
    pub events_dropped: Counter,
    /// Scale-down decisions by source.
    pub scale_down_decisions: Family<DecisionLabels, Counter>,
    /// Prometheus queries by result.
    pub prometheus_queries: Family<QueryLabels, Counter>,
    /// Prometheus query latency in seconds.
    pub prometheus_query_duration: Histogram,
    /// 1 while this replica holds the Lease and reconciles.
    pub leader: Gauge,
    /// Requests admission's live checks made to the API server.
    pub admission_api_calls: Counter,
    /// Connections closed on arrival because every connection slot was taken.
    pub http_connections_refused: Counter,
    /// Requests answered 503 because too many were in flight.
    pub http_requests_shed: Counter,
    /// Requests answered 503 because they took longer than the request timeout.
    pub http_requests_timed_out: Counter,
}

/// Builds the metrics struct, registering each field under its name and help text.
macro_rules! registered_metrics {
    ($registry:ident; $($field:ident: $name:literal, $help:literal, $metric:expr;)*) => {
        Self {
            $($field: registered(&mut $registry, $name, $help, $metric),)*
            registry: $registry,
        }
    };
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("rsg");
        registered_metrics! { registry;
            admission_requests: "admission_requests",
                "Admission requests handled, by webhook, operation and result",
                Family::default();
            admission_duration: "admission_duration_seconds",
                "Time to answer an admission request",
                Family::new_with_constructor(latency_histogram);
            reconciles: "reconciles",
                "Reconciles by strategy and result",
                Family::default();
            reconcile_duration: "reconcile_duration_seconds",
                "Time one reconcile takes",
                Family::new_with_constructor(latency_histogram);
            reconciles_deferred: "reconciles_deferred",
                "Reconciles put off until one of their namespace's reconciles ends, because their namespace already had its share of the workers in flight",
                Counter::default();
            events_dropped: "events_dropped",
                "Events dropped because too many were waiting to be published (the API server is far behind)",
                Counter::default();
            scale_down_decisions: "scale_down_decisions",
                "Scale-down decisions by what decided them: Metric, Annotation or GroupId",
                Family::default();
            prometheus_queries: "prometheus_queries",
                "Prometheus queries by result",
                Family::default();
            prometheus_query_duration: "prometheus_query_duration_seconds",
                "Time a Prometheus query takes",
                latency_histogram();
            leader: "leader",
                "1 while this replica holds the leader Lease and runs the controllers",
                Gauge::default();
            admission_api_calls: "admission_api_calls",
                "Requests admission's live checks made to the API server (reads its cache did not answer)",
                Counter::default();
            http_connections_refused: "http_connections_refused",
                "Connections closed on arrival because the connection limit was reached",
                Counter::default();
            http_requests_shed: "http_requests_shed",
                "Requests answered 503 because the limit of requests in flight was reached",
                Counter::default();
            http_requests_timed_out: "http_requests_timed_out",
                "Requests answered 503 because they took longer than the request timeout",
                Counter::default();
        }
    }
}

/// Registers `metric` under `name` with `help`, and returns it.
fn registered<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

impl Metrics {
    /// Records one Prometheus query.
    pub fn observe_prometheus_query(&self, took: std::time::Duration, ok: bool) {
        self.prometheus_queries
            .get_or_create(&QueryLabels {
                result: if ok { "success" } else { "error" },
            })
            .inc();
        self.prometheus_query_duration.observe(took.as_secs_f64());
    }

    /// Records one reconcile.
    pub fn observe_reconcile(&self, strategy: &str, took: std::time::Duration, ok: bool) {
        let strategy = strategy.to_string();
        self.reconciles
            .get_or_create(&ReconcileLabels {
                strategy: strategy.clone(),
                result: if ok { "success" } else { "error" },
            })
            .inc();
        self.reconcile_duration
            .get_or_create(&StrategyLabels { strategy })
            .observe(took.as_secs_f64());
    }

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
