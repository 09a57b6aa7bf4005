//! The one PromQL query a scale-down decision runs.

use crate::api::ScaleDownMetric;

/// The aggregator in effect: the spec's, else `avg` for Gauge and `sum` otherwise.
pub fn effective_aggregator(metric: &ScaleDownMetric) -> &str {
    match metric.aggregator.as_deref() {
        Some(aggregator) if !aggregator.is_empty() => aggregator,
        _ if metric.type_ == "Gauge" => "avg",
        _ => "sum",
    }
}

/// Gauge: `<aggregator> by (group_id) (<expr>)`; Counter and Histogram:
/// `<aggregator> by (group_id) (rate(<expr>[<window>]))`.
pub fn scale_down_query(metric: &ScaleDownMetric) -> String {
    let aggregator = effective_aggregator(metric);
    let expr = metric.expr.trim();
    if metric.type_ == "Gauge" {
        format!("{aggregator} by (group_id) ({expr})")
    } else {
        let window = metric.window.as_deref().unwrap_or("1m");
        format!("{aggregator} by (group_id) (rate({expr}[{window}]))")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(
        expr: &str,
        type_: &str,
        window: Option<&str>,
        aggregator: Option<&str>,
    ) -> ScaleDownMetric {
        ScaleDownMetric {
            expr: expr.into(),
            type_: type_.into(),
            window: window.map(Into::into),
            aggregator: aggregator.map(Into::into),
        }
    }

    #[test]
    fn every_type_and_aggregator() {
        for aggregator in ["sum", "avg", "max", "min"] {
            assert_eq!(
                scale_down_query(&metric(
                    "vllm:num_requests_running",
                    "Gauge",
                    None,
                    Some(aggregator)
                )),
                format!("{aggregator} by (group_id) (vllm:num_requests_running)")
            );
            for type_ in ["Counter", "Histogram"] {
                assert_eq!(
                    scale_down_query(&metric(
                        "vllm:request_success_total",
                        type_,
                        Some("2m"),
                        Some(aggregator)
                    )),
                    format!("{aggregator} by (group_id) (rate(vllm:request_success_total[2m]))")
                );
            }
        }
    }

    #[test]
    fn defaults_and_expressions() {
        assert_eq!(
            scale_down_query(&metric("vllm:num_requests_running", "Gauge", None, None)),
            "avg by (group_id) (vllm:num_requests_running)"
        );
        assert_eq!(
            scale_down_query(&metric("requests_total", "Counter", Some("30s"), None)),
            "sum by (group_id) (rate(requests_total[30s]))"
        );
        assert_eq!(
            scale_down_query(&metric(
                r#"vllm:gpu_cache_usage_perc{model="qwen"}"#,
                "Gauge",
                None,
                Some("max")
            )),
            r#"max by (group_id) (vllm:gpu_cache_usage_perc{model="qwen"})"#
        );
        assert_eq!(
            scale_down_query(&metric(
                "  latency_seconds_bucket ",
                "Histogram",
                Some("5m"),
                None
            )),
            "sum by (group_id) (rate(latency_seconds_bucket[5m]))"
        );
    }
}
