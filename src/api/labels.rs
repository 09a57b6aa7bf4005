//! Label and annotation keys that rsg reads and writes.

/// Names the RSG that owns or adopted an object.
pub const LABEL_NAME: &str = "rsg.io/name";
/// Marks every workload rsg manages (bases, copies, leaders, followers), so that one
/// label-selected watch sees them all. A workload may belong to one RSG of each strategy, so
/// `rsg.io/name` alone cannot serve.
pub const LABEL_MANAGED: &str = "rsg.io/managed";
/// The group number of a workload, Service or pod (absent on group 0 pods).
pub const LABEL_GROUP_ID: &str = "rsg.io/group-id";
/// The target name a snapshot (ControllerRevision) belongs to.
pub const LABEL_TARGET: &str = "rsg.io/target";
/// The revision (hash of the pod templates) a copy or snapshot was made from.
pub const LABEL_REVISION: &str = "rsg.io/revision";
/// A hash of the `placement` a copy's pod templates were given (absent: none), so that a
/// change of placement is a change of the copies a rolling update replaces.
pub const LABEL_PLACEMENT: &str = "rsg.io/placement";
/// Marks exactly one pod per active group; `status.selector` selects these.
pub const LABEL_REPRESENTATIVE: &str = "rsg.io/representative";
/// Per-group metric value used when Prometheus cannot decide a scale-down.
pub const ANNOTATION_METRIC_VALUES: &str = "autoscaling.rsg.metric.values";
/// Who admitted the RSG's current spec, signed by rsg's mutating webhook (see
/// [`crate::authorship`]); the controller acts only on RSGs whose record verifies.
pub const ANNOTATION_ADMISSION_RECORD: &str = "autoscaling.openfuyao.com/admission-record";

/// The largest group count a spec may ask for; copy names are checked against it.
pub const MAX_GROUP_REPLICAS: i32 = 1000;

/// The most targets one RSG may list (`spec.targetResources`, `maxItems` in the schema).
pub const MAX_TARGETS: usize = 32;
/// The most followers one InplaceScaling RSG may list (`maxItems` in the schema).
pub const MAX_FOLLOWERS: usize = 31;
/// The largest `followRatio` a follower may have.
pub const MAX_FOLLOW_RATIO: i32 = 1000;
/// The most replicas rsg ever sets on a follower; a leader × ratio above it is an error.
pub const MAX_FOLLOWER_REPLICAS: i32 = 10_000;
