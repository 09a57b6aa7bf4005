//! What rsg knows about the workloads it scales: kinds, identities and pod templates.

mod key;
mod kind;
mod pod_template;

pub use key::{TargetClaim, WorkloadKey};
pub use kind::{KindError, WorkloadKind};
pub use pod_template::{
    all_pod_template_labels, pod_selector, pod_spec_identities, pod_template_labels,
    referenced_objects, template_pointers, ReferencedObject,
};
pub mod role_based_group;
mod service_association;
pub use service_association::selector_matches_template;
mod access;
pub use access::{object_to_value, AccessError, WorkloadAccess};
mod readiness;
pub use readiness::{is_fully_ready, spec_replicas};
mod meta;
pub use meta::{annotation, label};
