//! The decision chain: metric, then annotation, then group id. The metric is read once per
//! reconcile ([`read_metric`]); deciding from what was read is pure.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use super::scope::scoped_query;
use super::values::{
    present_values, values_from_annotations, values_from_response, QueryResponse, RankingError,
};
use super::victims::{choose_victims, highest_ids_first, DecisionSource, Order, VictimDecision};
use super::{PrometheusClient, QueryError};
use crate::api::ScaleDown;
use crate::metrics::Metrics;

/// What reading the scale-down metric gave.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricReading {
    /// Nothing was read (nothing needed it).
    NotRead,
    /// The RSG configures no scale-down metric.
    NoMetric,
    /// A metric is configured, but no Prometheus URL.
    NoPrometheus,
    /// No query confined to the RSG's namespaces can be made of the metric: nothing is sent.
    Unscoped(String),
    /// The query sent and what Prometheus answered.
    Answered {
        /// The PromQL query.
        query: String,
        /// The answer, or why there is none.
        answer: Result<QueryResponse, QueryError>,
    },
}

/// Reads the scale-down metric of the RSG `rsg` (`namespace/name`) from Prometheus (no
/// request when either is missing), with a query that reads only series of `namespaces` (see
/// [`scoped_query`]), at most once per the client's minimum interval for that RSG.
pub async fn read_metric(
    prometheus: Option<&PrometheusClient>,
    metrics: &Metrics,
    rsg: &str,
    scale_down: Option<&ScaleDown>,
    namespaces: &BTreeSet<String>,
) -> MetricReading {
    let Some(metric) = scale_down.and_then(|s| s.metric.as_ref()) else {
        return MetricReading::NoMetric;
    };
    let Some(client) = prometheus else {
        return MetricReading::NoPrometheus;
    };
    let query = match scoped_query(metric, namespaces) {
        Ok(query) => query,
        Err(err) => return MetricReading::Unscoped(err.to_string()),
    };
    let started = Instant::now();
    let (answer, reused) = client.query_for(rsg, &query).await;
    if !reused {
        metrics.observe_prometheus_query(started.elapsed(), answer.is_ok());
    }
    MetricReading::Answered { query, answer }
}

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

/// Decides which groups to remove from `reading`. Never fails: each source that cannot
/// decide hands over to the next, and the reason is kept in the decision.
pub fn decide(inputs: DecisionInputs<'_>, reading: &MetricReading) -> VictimDecision {
    let order = Order::parse(inputs.scale_down.and_then(|s| s.order.as_deref()));
    let why = match reading {
        MetricReading::Answered { query, answer } => {
            match answer
                .clone()
                .map_err(RankingError::from)
                .and_then(|response| values_from_response(&response, inputs.candidates))
            {
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
        MetricReading::NoPrometheus => "no Prometheus URL is configured".to_string(),
        MetricReading::Unscoped(why) => format!("the scale-down metric was not queried: {why}"),
        MetricReading::NoMetric | MetricReading::NotRead => {
            "no scale-down metric is configured".to_string()
        }
    };
    match values_from_annotations(&inputs.annotations, inputs.candidates) {
        Ok(values) => choose_victims(
            inputs.candidates,
            inputs.count,
            Some(&values),
            order,
            DecisionSource::Annotation,
            format!("{why}; ranked by the annotation autoscaling.rsg.metric.values"),
        ),
        Err(annotation_gap) => highest_ids_first(
            inputs.candidates,
            inputs.count,
            format!("{why}; {annotation_gap}; removing the highest group ids"),
        ),
    }
}

/// The current value of the scale-down metric per group, for draining groups; `None` when
/// nothing usable was read (a drain then waits for its timeout).
pub fn current_values(reading: &MetricReading) -> Option<BTreeMap<i32, f64>> {
    match reading {
        MetricReading::Answered {
            answer: Ok(response),
            ..
        } => present_values(response),
        _ => None,
    }
}
