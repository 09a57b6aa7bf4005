//! The observed state of a ResourceScalingGroup.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the controller observed and did.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceScalingGroupStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Groups that currently exist and are active (draining groups do not count).
    #[serde(default)]
    pub current_replicas: i32,
    /// Groups whose every workload is fully ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Active groups at `updateRevision` (GroupReplication).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_replicas: Option<i32>,
    /// The revision new groups are made from: a hash of the targets' pod templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_revision: Option<String>,
    /// The revision of the oldest active copy groups; equal to `updateRevision` once every
    /// group is updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<String>,
    /// The last group count the controller acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_desired_replicas: Option<i32>,
    /// Label selector in group units: it matches one representative pod per active group,
    /// so HPA's pod-based calculations yield a group count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Per-group state (GroupReplication).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupStatus>,
    /// With `placement`: each group's domain in group order, comma-separated (what
    /// `kubectl get -o wide` shows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_domains: Option<String>,
    /// The most recent scale-down decision (GroupReplication).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_down: Option<ScaleDownRecord>,
    /// Leader state (InplaceScaling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<LeaderStatus>,
    /// Follower state (InplaceScaling).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub followers: Vec<FollowerStatus>,
    /// Standard conditions; `Ready` is True with reason `Reconciled` once converged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Where a group of a GroupReplication RSG is in its life.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum GroupState {
    /// Counts towards `currentReplicas` and serves.
    #[default]
    Active,
    /// Its copied Services are removed; its workloads go once idle or at the drain timeout.
    Draining,
    /// Group 0 held at zero replicas: the base workloads are kept, not deleted.
    ScaledToZero,
}

/// One group of a GroupReplication RSG.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupStatus {
    /// Group number; 0 is the base workloads.
    pub id: i32,
    /// `Active`, `Draining` (Services removed, workloads about to go) or `ScaledToZero`
    /// (group 0 held at zero replicas).
    pub state: GroupState,
    /// True while the group counts towards `currentReplicas`.
    pub active: bool,
    /// True when every workload of the group is fully ready.
    pub ready: bool,
    /// The workloads of the group, as `Kind/namespace/name`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workloads: Vec<String>,
    /// The Services of the group, as `namespace/name`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    /// When the group started draining.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draining_since: Option<Time>,
    /// The revision the group's workloads were made from (group 0: the live bases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// With `placement`: the value of the `packDomain` node label on the nodes the group's
    /// scheduled pods run on; several values joined by `+` when its pods are split (under
    /// `Preferred` placement, or group 0, which rsg does not place).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Why a pod of the group cannot be scheduled, as the scheduler reported it in the pod's
    /// `PodScheduled` condition (`<pod>: <message>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unschedulable: Option<String>,
}

/// A scale-down decision.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleDownRecord {
    /// When the decision was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
    /// The group ids chosen for removal.
    #[serde(default)]
    pub victims: Vec<i32>,
    /// What decided: `Metric`, `Annotation` or `GroupId`.
    pub source: String,
    /// Why this source decided (for fallbacks: why the previous source could not).
    pub reason: String,
    /// Every candidate group and the value it was ranked by.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<CandidateValue>,
}

/// A candidate group's value in a scale-down decision.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CandidateValue {
    /// Group number.
    pub group_id: i32,
    /// The value the group was ranked by; absent when none was found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

/// The leader of an InplaceScaling RSG as observed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeaderStatus {
    /// Target name of the leader.
    pub resource_name: String,
    /// The leader's current `spec.replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_replicas: Option<i32>,
    /// The `leader.replicas` value last applied to the leader workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_replicas: Option<i32>,
}

/// A follower of an InplaceScaling RSG as observed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FollowerStatus {
    /// Target name of the follower.
    pub resource_name: String,
    /// `leader replicas * followRatio`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<i32>,
    /// The follower's current `spec.replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_replicas: Option<i32>,
}
