//! The ResourceScalingGroup API (`autoscaling.openfuyao.com/v1alpha1`).

mod labels;
mod spec;
mod status;

pub use labels::*;
pub use spec::*;
pub use status::*;
