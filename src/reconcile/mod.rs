//! What every strategy's reconcile builds on: the shared [`Context`], conditions, retry
//! delays, the reconcile error and the problems reported to the user, and the [`Strategy`]
//! interface the controller dispatches through. Nothing here depends on a strategy.

pub mod backoff;
pub mod conditions;
mod context;
mod error;
pub mod event_queue;
pub mod event_recorder;
mod events;
pub mod memory;
#[cfg(test)]
pub mod mock_api;
mod problem;
mod strategy;

pub use context::Context;
pub use error::{to_json, ObjectName, ReconcileError};
pub use events::RsgEvent;
pub use problem::{problems_condition, BaselineError, Failure, NotFound, Problem, TakenFor};
pub use strategy::{Next, Strategy};

/// `namespace/name` of an RSG (or of its entry in the names cache), for log fields.
pub fn rsg_key(rsg: &impl kube::Resource) -> String {
    let metadata = rsg.meta();
    format!(
        "{}/{}",
        metadata.namespace.as_deref().unwrap_or_default(),
        metadata.name.as_deref().unwrap_or_default()
    )
}
