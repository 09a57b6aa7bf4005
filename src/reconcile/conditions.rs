//! Building `status.conditions` the way Kubernetes tools expect them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::api::ResourceScalingGroup;

/// The condition type that summarizes an RSG.
pub const READY: &str = "Ready";

/// Reasons written to conditions.
pub mod reason {
    /// Converged: the groups (or followers) match the spec.
    pub const RECONCILED: &str = "Reconciled";
    /// Work is under way.
    pub const PROGRESSING: &str = "Progressing";
    /// Old-revision groups are being replaced (or wait, paused).
    pub const ROLLING_UPDATE: &str = "RollingUpdate";
    /// The spec breaks a rule.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// Another RSG of the same strategy targets the same workload.
    pub const DUPLICATE_TARGET: &str = "DuplicateTarget";
    /// A target workload (or its kind) does not exist.
    pub const TARGET_NOT_FOUND: &str = "TargetNotFound";
    /// An object with a copy's name exists and was not made by this RSG.
    pub const NAME_CONFLICT: &str = "NameConflict";
    /// The API server refused an operation (RBAC).
    pub const FORBIDDEN: &str = "Forbidden";
    /// The replica ConfigMap holds a value that is not a non-negative integer.
    pub const INVALID_REPLICA_CONFIG: &str = "InvalidReplicaConfig";
    /// An API call failed; it is retried.
    pub const API_ERROR: &str = "ApiError";
    /// A target lies outside what rsg may act on for this RSG (a system namespace, a
    /// namespace the operator excluded, or another namespace that has not granted it).
    pub const TARGET_NOT_ALLOWED: &str = "TargetNotAllowed";
    /// A follower would need more replicas than rsg ever sets.
    pub const REPLICAS_OVER_CAP: &str = "ReplicasOverCap";
    /// A base would give copies an identity or node access no copy may have.
    pub const COPY_IDENTITY_REFUSED: &str = "CopyIdentityRefused";
    /// The RSG has no admission record that verifies for its current spec: it was stored or
    /// changed without rsg's mutating webhook.
    pub const ADMISSION_NOT_VERIFIED: &str = "AdmissionNotVerified";
    /// The author its admission record names may no longer do what the RSG asks (or that
    /// could not be verified).
    pub const AUTHOR_NOT_ALLOWED: &str = "AuthorNotAllowed";
}

/// Returns `conditions` with the condition of `type_` set; the transition time changes only
/// when the status does.
pub fn with_condition(
    mut conditions: Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
) -> Vec<Condition> {
    let status = if status { "True" } else { "False" }.to_string();
    let previous = conditions.iter().position(|c| c.type_ == type_);
    let last_transition_time = match previous.map(|i| &conditions[i]) {
        Some(old) if old.status == status => old.last_transition_time.clone(),
        _ => Time(Timestamp::now()),
    };
    let condition = Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message,
        observed_generation: generation,
        last_transition_time,
    };
    match previous {
        Some(i) => conditions[i] = condition,
        None => conditions.push(condition),
    }
    conditions
}

/// The condition of `type_` in `conditions`, as `(reason, message)`.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<(&'a str, &'a str)> {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.reason.as_str(), c.message.as_str()))
}

/// The condition of `type_` in the RSG's stored status, as `(reason, message)`.
pub fn stored_condition<'a>(
    rsg: &'a ResourceScalingGroup,
    type_: &str,
) -> Option<(&'a str, &'a str)> {
    find_condition(&rsg.status.as_ref()?.conditions, type_)
}

/// Whether the RSG's stored Ready condition already reports the problem `message` for the
/// spec generation being reconciled. Problems are logged only when they are not: once per
/// change, not on every retry.
pub fn already_reported(rsg: &ResourceScalingGroup, message: &str) -> bool {
    let same_generation =
        rsg.status.as_ref().and_then(|s| s.observed_generation) == rsg.metadata.generation;
    same_generation
        && stored_condition(rsg, READY).is_some_and(|(_, stored)| stored.contains(message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ResourceScalingGroupStatus;

    #[test]
    fn a_problem_is_already_reported_while_the_stored_condition_names_it() {
        let strategy = serde_json::json!({"type": "GroupReplication"});
        let mut rsg = crate::fixtures::rsg("n", "g", Vec::new(), strategy);
        rsg.metadata.generation = Some(2);
        assert!(!already_reported(
            &rsg,
            "target \"a\": Deployment n/a not found"
        ));
        rsg.status = Some(ResourceScalingGroupStatus {
            observed_generation: Some(2),
            conditions: with_condition(
                Vec::new(),
                READY,
                false,
                reason::TARGET_NOT_FOUND,
                "target \"a\": Deployment n/a not found; target \"b\": Deployment n/b not found"
                    .into(),
                Some(2),
            ),
            ..ResourceScalingGroupStatus::default()
        });
        assert!(already_reported(
            &rsg,
            "target \"b\": Deployment n/b not found"
        ));
        assert!(!already_reported(
            &rsg,
            "target \"c\": Deployment n/c not found"
        ));
        rsg.metadata.generation = Some(3);
        assert!(
            !already_reported(&rsg, "target \"b\": Deployment n/b not found"),
            "a new spec generation reports again"
        );
        assert_eq!(
            stored_condition(&rsg, READY).map(|(r, _)| r),
            Some(reason::TARGET_NOT_FOUND)
        );
    }

    #[test]
    fn transition_time_changes_only_with_status() {
        let first = with_condition(
            Vec::new(),
            READY,
            false,
            reason::PROGRESSING,
            "a".into(),
            Some(1),
        );
        let time = first[0].last_transition_time.clone();
        let same = with_condition(
            first.clone(),
            READY,
            false,
            reason::TARGET_NOT_FOUND,
            "b".into(),
            Some(2),
        );
        assert_eq!(same.len(), 1);
        assert_eq!(same[0].last_transition_time, time);
        assert_eq!(
            (same[0].reason.as_str(), same[0].message.as_str()),
            (reason::TARGET_NOT_FOUND, "b")
        );
        let flipped = with_condition(same, READY, true, reason::RECONCILED, "c".into(), Some(2));
        assert_eq!(flipped[0].status, "True");
    }
}
