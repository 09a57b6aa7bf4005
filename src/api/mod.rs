//! The ResourceScalingGroup API (`autoscaling.openfuyao.com/v1alpha1`).

mod grant;
mod labels;
mod spec;
mod status;

pub use grant::*;
pub use labels::*;
pub use spec::*;
pub use status::*;
