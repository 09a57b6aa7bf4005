//! The decision chain: metric, then annotation, then group id.

use std::collections::BTreeMap;
use std::time::Instant;

use tracing::info;

use super::promql::scale_down_query;
use super::values::{present_values, values_from_annotations, values_from_response};
use super::PrometheusClient;
use crate::api::ScaleDown;
use crate::group_replication::victims::{
    choose_victims, highest_ids_first, DecisionSource, Order, VictimDecision,
};
use crate::metrics::Metrics;

/// What a decision is made from.
pub struct DecisionInputs<'a> {
    /// The RSG's scale-down settings.
    pub scale_down: Option<&'a ScaleDown>,
    /// Active groups.
    pub candidates: &'a [i32],
    /// How many must go.
    pub count: usize,
    /// The annotation value on each candidate's copy of the first target (group 0: the base).
    pub annotations: BTreeMap<i32, Option<String>>,
}

/// Decides which groups to remove. Never fails: each source that cannot decide hands over
/// to the next, and the reason is kept in the decision.
pub async fn decide(
    prometheus: Option<&PrometheusClient>,
    metrics: &Metrics,
    inputs: DecisionInputs<'_>,
) -> VictimDecision {
    let order = Order::parse(inputs.scale_down.and_then(|s| s.order.as_deref()));
    let metric = inputs.scale_down.and_then(|s| s.metric.as_ref());
    let why = match (metric, prometheus) {
        (Some(metric), Some(client)) => {
            let query = scale_down_query(metric);
            let started = Instant::now();
            let answer = client.query(&query).await;
            metrics.observe_prometheus_query(started.elapsed(), answer.is_ok());
            match answer.and_then(|response| values_from_response(&response, inputs.candidates)) {
                Ok(values) => {
                    return choose_victims(
                        inputs.candidates,
                        inputs.count,
                        Some(&values),
                        order,
                        DecisionSource::Metric,
                        format!("ranked by Prometheus query {query}"),
                    )
                }
                Err(err) => format!("the Prometheus query {query} gave no usable ranking: {err}"),
            }
        }
        (Some(_), None) => "no Prometheus URL is configured".to_string(),
        (None, _) => "no scale-down metric is configured".to_string(),
    };
    match values_from_annotations(&inputs.annotations, inputs.candidates) {
        Ok(values) => {
            info!(reason = %why, "fallback to annotation");
            choose_victims(
                inputs.candidates,
                inputs.count,
                Some(&values),
                order,
                DecisionSource::Annotation,
                format!("{why}; ranked by the annotation autoscaling.rsg.metric.values"),
            )
        }
        Err(annotation_gap) => {
            info!(reason = %why, annotations = %annotation_gap, "fallback to max group-id");
            highest_ids_first(
                inputs.candidates,
                inputs.count,
                format!("{why}; {annotation_gap}; removing the highest group ids"),
            )
        }
    }
}

/// The current value of the scale-down metric per group, for draining groups; `None` when
/// there is no metric, no Prometheus, or the query fails (a drain then waits for its timeout).
pub async fn current_values(
    prometheus: Option<&PrometheusClient>,
    metrics: &Metrics,
    scale_down: Option<&ScaleDown>,
) -> Option<BTreeMap<i32, f64>> {
    let (metric, client) = (scale_down?.metric.as_ref()?, prometheus?);
    let query = scale_down_query(metric);
    let started = Instant::now();
    let answer = client.query(&query).await;
    metrics.observe_prometheus_query(started.elapsed(), answer.is_ok());
    present_values(&answer.ok()?)
}
