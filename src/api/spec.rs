//! The desired state of a ResourceScalingGroup.
//!
//! Fields whose values come from a fixed set (strategy type, metric type, aggregator,
//! order) are plain strings in the schema: the validating webhook checks them together
//! with every other rule so that a user sees all problems in one answer.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::status::ResourceScalingGroupStatus;

/// Strategy type value for cloning whole groups.
pub const STRATEGY_GROUP_REPLICATION: &str = "GroupReplication";
/// Strategy type value for keeping followers at a ratio of a leader.
pub const STRATEGY_INPLACE_SCALING: &str = "InplaceScaling";
/// Every supported strategy type.
pub const STRATEGY_TYPES: [&str; 2] = [STRATEGY_GROUP_REPLICATION, STRATEGY_INPLACE_SCALING];

/// Metric types accepted in `scaleDown.metric.type`.
pub const METRIC_TYPES: [&str; 3] = ["Counter", "Gauge", "Histogram"];
/// Aggregators accepted in `scaleDown.metric.aggregator`.
pub const AGGREGATORS: [&str; 4] = ["sum", "avg", "max", "min"];
/// Update strategy type that leaves existing groups as they are (the default).
pub const UPDATE_ON_DELETE: &str = "OnDelete";
/// Update strategy type that replaces old-revision groups with new ones.
pub const UPDATE_ROLLING: &str = "RollingUpdate";
/// Every supported update strategy type.
pub const UPDATE_TYPES: [&str; 2] = [UPDATE_ON_DELETE, UPDATE_ROLLING];

/// Orders accepted in `scaleDown.order`.
pub const ORDERS: [&str; 2] = ["ascending", "descending"];

/// Placement mode: a group's pods only schedule into the domain its first pod landed in.
pub const PLACEMENT_REQUIRED: &str = "Required";
/// Placement mode: the scheduler prefers the group's domain and spills over when it is full.
pub const PLACEMENT_PREFERRED: &str = "Preferred";
/// Every supported placement mode.
pub const PLACEMENT_MODES: [&str; 2] = [PLACEMENT_REQUIRED, PLACEMENT_PREFERRED];

/// The desired state of a ResourceScalingGroup: which workloads it scales and how.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "autoscaling.openfuyao.com",
    version = "v1alpha1",
    kind = "ResourceScalingGroup",
    plural = "resourcescalinggroups",
    shortname = "rsg",
    namespaced,
    status = "ResourceScalingGroupStatus",
    derive = "PartialEq",
    doc = "ResourceScalingGroup scales a set of workloads as one unit: GroupReplication clones or removes whole groups of them; InplaceScaling keeps followers at a fixed ratio of a leader.",
    scale(
        spec_replicas_path = ".spec.scalingStrategy.groupConfig.replicas",
        status_replicas_path = ".status.currentReplicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn = r#"{"name":"Strategy","type":"string","description":"Scaling strategy type","jsonPath":".spec.scalingStrategy.type"}"#,
    printcolumn = r#"{"name":"Desired","type":"integer","description":"Desired number of groups","jsonPath":".spec.scalingStrategy.groupConfig.replicas"}"#,
    printcolumn = r#"{"name":"Current","type":"integer","description":"Groups that exist and are active","jsonPath":".status.currentReplicas"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","description":"Groups whose every workload is ready","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"Updated","type":"integer","description":"Groups at the update revision","jsonPath":".status.updatedReplicas"}"#,
    printcolumn = r#"{"name":"Status","type":"string","description":"Ready condition","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","priority":1,"description":"Ready condition reason","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Domains","type":"string","priority":1,"description":"Each group's placement domain, in group order","jsonPath":".status.groupDomains"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ResourceScalingGroupSpec {
    /// The workloads this group scales (1 to 32). Target names are unique within the RSG and
    /// are used by the strategy (leader/follower names) and as keys of the replica ConfigMap.
    #[schemars(length(max = 32))] // MAX_TARGETS
    pub target_resources: Vec<TargetResource>,
    /// How the targets are scaled.
    pub scaling_strategy: ScalingStrategy,
}

/// One workload managed by the RSG.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetResource {
    /// Logical name of this target, unique within the RSG (a DNS-1123 label, e.g. `prefill`).
    #[schemars(length(max = 253))]
    pub name: String,
    /// The workload this target refers to.
    pub resource_ref: ResourceRef,
    /// GroupReplication, base in another namespace than the RSG: the identities of the RSG's
    /// namespace that copies of this base may use, approved by the RSG's author, who must be
    /// allowed to use each (admission and the controller check it). A base whose pod template
    /// asks for any other ServiceAccount, Secret, ConfigMap or PersistentVolumeClaim is not
    /// copied (`CopyIdentityRefused`, naming what to approve) until it is approved here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_identity: Option<CopyIdentity>,
}

/// Identities of the RSG's namespace that copies of a base in another namespace may use.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CopyIdentity {
    /// The ServiceAccount copies may run as (the author needs `create serviceaccounts/token`
    /// on it). The namespace's `default` ServiceAccount needs no approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub service_account_name: Option<String>,
    /// Secrets copies may mount or read (the author needs `get` on each), at most 16.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 253)))]
    pub secrets: Vec<String>,
    /// ConfigMaps copies may mount or read (the author needs `get` on each), at most 16.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 253)))]
    pub config_maps: Vec<String>,
    /// PersistentVolumeClaims copies may mount (the author needs `get` on each), at most 16.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 253)))]
    pub persistent_volume_claims: Vec<String>,
}

/// A reference to a workload.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRef {
    /// API version of the workload: `apps/v1` for Deployment and StatefulSet,
    /// `leaderworkerset.x-k8s.io/v1` for LeaderWorkerSet, `workloads.x-k8s.io/v1alpha1` for
    /// RoleBasedGroup, or the group/version of another custom kind that has `spec.replicas`.
    #[schemars(length(max = 253))]
    pub api_version: String,
    /// Kind of the workload: Deployment, StatefulSet, LeaderWorkerSet, RoleBasedGroup, or
    /// another custom kind with a `spec.replicas` field.
    #[schemars(length(max = 253))]
    pub kind: String,
    /// Name of the workload.
    #[schemars(length(max = 253))]
    pub name: String,
    /// Namespace of the workload. Defaults to the RSG's namespace. A namespace other than the
    /// RSG's must grant it with a ResourceScalingGroupGrant before rsg acts on the workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub namespace: Option<String>,
}

/// The scaling strategy and its configuration.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalingStrategy {
    /// `GroupReplication` (clone or remove whole groups of the targets) or `InplaceScaling`
    /// (keep followers at a ratio of a leader).
    #[serde(rename = "type")]
    #[schemars(length(max = 253))]
    pub type_: String,
    /// Configuration of GroupReplication. Required for GroupReplication, forbidden otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_config: Option<GroupConfig>,
    /// Configuration of InplaceScaling. Required for InplaceScaling, forbidden otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_follower_config: Option<LeaderFollowerConfig>,
}

/// GroupReplication settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupConfig {
    /// Prefix of copied workload names (`<groupName>-<workload>-<i>`) and suffix of copied
    /// Service names (`<service>-<groupName>-<i>`). A DNS-1123 label; defaults to the RSG name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub group_name: Option<String>,
    /// Desired number of groups (>= 0, at most 1000). Group 0 is the base workloads; groups
    /// 1.. are copies. Defaults to 1. This is the field the scale subresource sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// How groups to remove are chosen on scale down. Without it the highest group ids go first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<ScaleDown>,
    /// How a change of a base workload's pod template (or of the target list) reaches the
    /// existing groups. Absent: `OnDelete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<UpdateStrategy>,
    /// Where each copy group's pods run: all pods of one group (every target) in one
    /// topology domain, and optionally groups spread across domains. Written into the
    /// copies' pod templates only; group 0 (the base workloads) is never changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<GroupPlacement>,
}

/// Topology placement of copy groups.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupPlacement {
    /// The node label key that names a domain, e.g. `topology.kubernetes.io/zone`, a rack
    /// label, or `kubernetes.io/hostname`. Every pod of a copy group, across all its
    /// targets, is placed on nodes with one value of this label.
    #[schemars(length(max = 317))]
    pub pack_domain: String,
    /// `Required` (default): a group's pods schedule only into the domain its first pod
    /// landed in, and stay pending (with the scheduler's reason in status) when it is full.
    /// `Preferred`: the scheduler prefers that domain and places pods elsewhere when full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub mode: Option<String>,
    /// Prefer a different domain for each group (including the base workloads' pods).
    /// Defaults to false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread_groups: Option<bool>,
}

impl GroupPlacement {
    /// Whether the pack constraint is a hard one (`Required`, the default).
    pub fn is_required(&self) -> bool {
        self.mode.as_deref() != Some(PLACEMENT_PREFERRED)
    }

    /// Whether groups are spread across domains.
    pub fn spreads_groups(&self) -> bool {
        self.spread_groups.unwrap_or(false)
    }
}

/// How base changes reach existing groups.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateStrategy {
    /// `OnDelete` (default: existing groups keep the revision they were made from; only new
    /// groups get the new one) or `RollingUpdate` (old-revision copy groups are replaced by
    /// new ones, a new group made ready before an old one leaves through the drain path).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub type_: Option<String>,
    /// RollingUpdate: groups created above the desired count while replacing (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<i32>,
    /// RollingUpdate: how many groups may be unready (below the desired count) while
    /// replacing (default 0). Ready groups never drop below `replicas - maxUnavailable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<i32>,
    /// RollingUpdate: stops replacing groups until set back to false; scaling still works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}

impl UpdateStrategy {
    /// Whether old-revision groups are replaced.
    pub fn is_rolling(&self) -> bool {
        self.type_.as_deref() == Some(UPDATE_ROLLING)
    }

    /// `maxSurge`, defaulting to 1.
    pub fn surge(&self) -> i32 {
        self.max_surge.unwrap_or(1)
    }

    /// `maxUnavailable`, defaulting to 0.
    pub fn unavailable(&self) -> i32 {
        self.max_unavailable.unwrap_or(0)
    }

    /// Whether the rollout is paused.
    pub fn is_paused(&self) -> bool {
        self.paused.unwrap_or(false)
    }
}

/// Scale-down victim selection.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleDown {
    /// The Prometheus metric whose per-group value (label `group_id`) orders the victims.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<ScaleDownMetric>,
    /// `ascending` removes the groups with the smallest value first, `descending` the
    /// largest. Defaults to `ascending`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub order: Option<String>,
    /// How long a victim group may drain (its Services removed first) before its workloads
    /// are deleted; it is deleted earlier once its metric reads 0. A Prometheus duration such
    /// as `90s` or `2m`. Absent or `0s` removes victims at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub drain_timeout: Option<String>,
}

/// A per-group metric queried from Prometheus.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleDownMetric {
    /// A metric name or PromQL expression, e.g. `vllm:num_requests_running`. Its series must
    /// carry a `group_id` label equal to the group number. At most 4096 bytes.
    #[schemars(length(max = 4096))]
    pub expr: String,
    /// `Counter`, `Gauge` or `Histogram`. Counter and Histogram are queried through `rate()`.
    #[serde(rename = "type")]
    #[schemars(length(max = 253))]
    pub type_: String,
    /// Range of the `rate()` window, a Prometheus duration such as `2m`. Required for
    /// Counter and Histogram.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub window: Option<String>,
    /// `sum`, `avg`, `max` or `min`, applied `by (group_id)`. Defaults to `avg` for Gauge and
    /// `sum` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub aggregator: Option<String>,
}

/// InplaceScaling settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeaderFollowerConfig {
    /// The target whose replica count the followers follow.
    pub leader: Leader,
    /// Targets kept at `leader replicas * followRatio` (at most 31).
    #[serde(default)]
    #[schemars(length(max = 31))] // MAX_FOLLOWERS
    pub follower: Vec<Follower>,
}

/// The leader of an InplaceScaling RSG.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Leader {
    /// Name of the target (in `targetResources`) that leads.
    #[schemars(length(max = 253))]
    pub resource_name: String,
    /// When set, applied to the leader workload whenever this value changes (so an HPA on
    /// the leader is not fought on every reconcile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
}

/// A follower of an InplaceScaling RSG.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Follower {
    /// Name of the target (in `targetResources`) that follows.
    #[schemars(length(max = 253))]
    pub resource_name: String,
    /// Follower replicas per leader replica, an integer from 1 to 1000. Leader replicas ×
    /// ratio may not exceed 10000; above that the follower is reported and left alone.
    #[schemars(range(max = 1000))] // MAX_FOLLOW_RATIO
    pub follow_ratio: i32,
}

impl ResourceRef {
    /// The namespace of the workload, falling back to the RSG's namespace.
    pub fn namespace_or<'a>(&'a self, rsg_namespace: &'a str) -> &'a str {
        match self.namespace.as_deref() {
            Some(ns) if !ns.is_empty() => ns,
            _ => rsg_namespace,
        }
    }

    /// The API group part of `apiVersion` (empty for the core group).
    pub fn group(&self) -> &str {
        match self.api_version.split_once('/') {
            Some((group, _)) => group,
            None => "",
        }
    }
}

impl GroupConfig {
    /// The desired group count, with the documented default of 1.
    pub fn desired_replicas(&self) -> i32 {
        self.replicas.unwrap_or(1)
    }

    /// The rolling update settings, when `updateStrategy.type` is `RollingUpdate`.
    pub fn rolling_update(&self) -> Option<&UpdateStrategy> {
        self.update_strategy.as_ref().filter(|u| u.is_rolling())
    }
}
