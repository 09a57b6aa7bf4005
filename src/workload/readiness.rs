//! Whether a workload is fully ready, from its own status.

use serde_json::Value;

fn int_at(value: &Value, pointer: &str) -> Option<i64> {
    value.pointer(pointer).and_then(Value::as_i64)
}

/// True when the workload's controller has observed its latest spec and every desired
/// replica is ready (and, for Deployments, updated; for RoleBasedGroups, in every role).
pub fn is_fully_ready(workload: &Value) -> bool {
    if super::role_based_group::is_role_based_group(workload) {
        return super::role_based_group::is_ready(workload);
    }
    let desired = int_at(workload, "/spec/replicas").unwrap_or(1);
    let generation = int_at(workload, "/metadata/generation").unwrap_or(0);
    let observed = int_at(workload, "/status/observedGeneration").unwrap_or(generation);
    let ready = int_at(workload, "/status/readyReplicas").unwrap_or(0);
    let updated = int_at(workload, "/status/updatedReplicas");
    let is_deployment = workload.get("kind").and_then(Value::as_str) == Some("Deployment");
    observed >= generation
        && ready >= desired
        && (!is_deployment || updated.unwrap_or(0) >= desired)
}

/// The workload's `spec.replicas` (1 when unset, as the API server defaults it).
pub fn spec_replicas(workload: &Value) -> i32 {
    int_at(workload, "/spec/replicas")
        .and_then(|r| i32::try_from(r).ok())
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn readiness_follows_status() {
        let ready = json!({"kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 2, "readyReplicas": 2, "updatedReplicas": 2}});
        assert!(is_fully_ready(&ready));
        let mut stale = ready.clone();
        stale["status"]["observedGeneration"] = json!(1);
        assert!(!is_fully_ready(&stale));
        let mut short = ready.clone();
        short["status"]["readyReplicas"] = json!(1);
        assert!(!is_fully_ready(&short));
        let zero = json!({"kind": "StatefulSet", "spec": {"replicas": 0}, "status": {}});
        assert!(is_fully_ready(&zero));
        assert_eq!(spec_replicas(&json!({"spec": {}})), 1);
    }
}
