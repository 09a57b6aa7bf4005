//! Choosing scale-down victims: a Prometheus metric per group, else the annotation
//! `autoscaling.rsg.metric.values` on each group's copy of the first target, else the
//! highest group ids. A Prometheus failure never blocks or fails a scale-down.

mod decide;
mod prometheus;
mod query_budget;
pub mod scope;
pub mod values;
pub mod victims;

pub use decide::{current_values, decide, read_metric, DecisionInputs, MetricReading};
pub use prometheus::{PrometheusClient, PrometheusConfig, PrometheusError, QueryError};
