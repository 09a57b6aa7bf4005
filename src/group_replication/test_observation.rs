//! Observations built for the plan and apply tests, from the shared fixtures: one target
//! `prefill` (Deployment `base/llm-prefill`) fronted by one Service, copied into the RSG's
//! namespace `team`.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};

use super::artifact_decisions::BaselineWrite;
use super::baseline::Replicas;
use super::observe::{BaseService, Observation, TargetState};
use crate::api::{GroupConfig, ResourceScalingGroup};
use crate::fixtures;
use crate::naming::{copy_service_name, copy_workload_name};
use crate::workload::WorkloadKind;

/// The RSG's namespace, where copies live.
pub const NAMESPACE: &str = "team";
/// The RSG's name (and group name).
pub const RSG: &str = "pd";

/// The RSG the observations are of, with `group_config`.
pub fn rsg(group_config: Value) -> ResourceScalingGroup {
    fixtures::group_rsg(
        NAMESPACE,
        RSG,
        "prefill",
        ("apps/v1", "Deployment", "llm-prefill"),
        group_config,
    )
}

/// The group config of `rsg(group_config)`.
pub fn config(group_config: Value) -> GroupConfig {
    serde_json::from_value(group_config).unwrap_or_else(|err| panic!("a group config: {err}"))
}

/// Copy group `id` of the target as rsg made it, at `revision`.
pub fn copy(id: i32, revision: &str) -> Value {
    let mut copy = fixtures::deployment(NAMESPACE, &copy_workload_name(RSG, "llm-prefill", id), 1);
    copy["metadata"]["labels"] = json!({
        "rsg.io/name": RSG, "rsg.io/group-id": id.to_string(),
        "rsg.io/target": "prefill", "rsg.io/revision": revision,
    });
    copy
}

/// The Service copy of group `id`.
pub fn service_copy(id: i32) -> Value {
    let mut copy = fixtures::service(NAMESPACE, &copy_service_name("llm-prefill", RSG, id));
    copy["metadata"]["labels"] = json!({"rsg.io/name": RSG, "rsg.io/group-id": id.to_string()});
    copy
}

/// An observation with complete copy groups `copies` (at revision `r1`, like the base), of
/// which `draining` drain since the given times.
pub fn observation(copies: &[i32], draining: &[(i32, Timestamp)]) -> Observation {
    let base = fixtures::deployment("base", "llm-prefill", 1);
    let mut copy_objects = BTreeMap::new();
    for id in copies {
        let mut object = copy(*id, "r1");
        if let Some((_, since)) = draining.iter().find(|(d, _)| d == id) {
            object["metadata"]["annotations"] = json!({"rsg.io/draining-since": since.to_string()});
        }
        copy_objects.insert(*id, object);
    }
    Observation {
        targets: vec![TargetState {
            name: "prefill".into(),
            kind: WorkloadKind::Deployment,
            base_namespace: "base".into(),
            base_name: "llm-prefill".into(),
            snapshot: base.clone(),
            base,
            update_revision: "r1".into(),
            live_revision: "r1".into(),
            copy_revisions: copies.iter().map(|id| (*id, "r1".to_string())).collect(),
            copy_placements: copies.iter().map(|id| (*id, String::new())).collect(),
            baseline: Ok(Replicas::Count(1)),
            copies: copy_objects,
        }],
        base_services: vec![BaseService {
            namespace: "base".into(),
            name: "llm-prefill".into(),
        }],
        copy_services: copies
            .iter()
            .map(|id| (*id, vec![service_copy(*id)]))
            .collect(),
        group0_held: false,
        draining: draining.iter().copied().collect(),
        snapshots_to_store: Vec::new(),
        baseline_write: BaselineWrite::default(),
        placement: None,
    }
}
