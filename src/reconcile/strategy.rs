//! The interface between the controller and a scaling strategy.

use std::time::Duration;

use futures::future::BoxFuture;

use super::{Context, ReconcileError};
use crate::api::ResourceScalingGroup;

/// When the controller looks at an RSG again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// After this delay (changes of what rsg watches wake it earlier).
    After(Duration),
    /// Only when something it watches changes.
    OnChange,
}

/// A scaling strategy: reconciles the RSGs whose `scalingStrategy.type` is its
/// [`name`](Strategy::name). The controller has already checked the spec, the tenant
/// boundary and exclusive targets when it calls [`reconcile`](Strategy::reconcile).
pub trait Strategy: Send + Sync {
    /// The `scalingStrategy.type` it serves.
    fn name(&self) -> &'static str;

    /// Brings the RSG's workloads to its spec and writes its status.
    fn reconcile<'a>(
        &'a self,
        ctx: &'a Context,
        rsg: &'a ResourceScalingGroup,
    ) -> BoxFuture<'a, Result<Next, ReconcileError>>;
}
