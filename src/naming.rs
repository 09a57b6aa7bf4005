//! Names of the objects rsg creates, shared by the webhook (length checks) and the controller.

/// Name of the copy of a workload in group `id` (`<groupName>-<original>-<id>`).
pub fn copy_workload_name(group_name: &str, original: &str, id: i32) -> String {
    format!("{group_name}-{original}-{id}")
}

/// Name of the copy of a Service in group `id` (`<original>-<groupName>-<id>`).
pub fn copy_service_name(original: &str, group_name: &str, id: i32) -> String {
    format!("{original}-{group_name}-{id}")
}

/// Name of the ConfigMap holding the per-target replica baseline.
pub fn replica_config_name(rsg_name: &str) -> String {
    format!("{rsg_name}-replica-config")
}

/// Name of the ControllerRevision holding the snapshot of one target.
pub fn snapshot_name(rsg_name: &str, target_name: &str) -> String {
    format!("{rsg_name}-{target_name}-snapshot")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_documented_patterns() {
        assert_eq!(
            copy_workload_name("pd", "llm-prefill", 2),
            "pd-llm-prefill-2"
        );
        assert_eq!(
            copy_service_name("llm-prefill-svc", "pd", 2),
            "llm-prefill-svc-pd-2"
        );
        assert_eq!(
            replica_config_name("llm-pd-group"),
            "llm-pd-group-replica-config"
        );
        assert_eq!(snapshot_name("g", "prefill"), "g-prefill-snapshot");
    }
}
