//! The pure plan of an InplaceScaling reconcile, from what was read: whether the leader's
//! `spec.replicas` is set, and which followers are patched to `leader × followRatio`.
//! The followers follow the leader's replicas as they are after its own patch, so the
//! leader is planned (and applied) first.

use serde_json::Value;

use crate::api::{FollowerStatus, MAX_FOLLOWER_REPLICAS};
use crate::reconcile::{Failure, NotFound, Problem};
use crate::workload::{spec_replicas, AccessError};

/// A read of a leader or follower: the object, `None` when it does not exist.
pub type Read = Result<Option<Value>, AccessError>;

/// Replicas a follower must have: leader × ratio, or `Err` with that product when it is over
/// [`MAX_FOLLOWER_REPLICAS`] (never saturated: the follower is reported and left alone).
pub fn follower_replicas(leader: i32, ratio: i32) -> Result<i32, i64> {
    let wanted = i64::from(leader.max(0)) * i64::from(ratio.max(1));
    match i32::try_from(wanted) {
        Ok(replicas) if replicas <= MAX_FOLLOWER_REPLICAS => Ok(replicas),
        _ => Err(wanted),
    }
}

/// The problem a failed read (or patch) of a workload is: kind not served, RBAC, or another
/// API failure, each retried.
pub fn problem_of(err: &AccessError, doing: String) -> Problem {
    let failure = Failure::new(doing, err);
    match err {
        AccessError::NotServed { .. } => Problem::TargetNotFound(NotFound::KindNotServed(failure)),
        e if e.is_forbidden() => Problem::Forbidden(failure),
        _ => Problem::ApiError(failure),
    }
}

/// What happens to the leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderPlan {
    /// Its `spec.replicas` as read (`None`: it could not be read).
    pub observed: Option<i32>,
    /// `leader.replicas` to set now: the value changed in the RSG since it was last applied.
    pub set_replicas: Option<i32>,
    /// Why it could not be read.
    pub problem: Option<Problem>,
}

/// Plans the leader from its read, `wanted` (the spec's `leader.replicas`) and `applied` (the
/// value last applied, from status). `describe` names the leader in messages.
pub fn plan_leader(
    read: &Read,
    wanted: Option<i32>,
    applied: Option<i32>,
    describe: &str,
) -> LeaderPlan {
    match read {
        Ok(Some(object)) => LeaderPlan {
            observed: Some(spec_replicas(object)),
            set_replicas: wanted.filter(|w| applied != Some(*w)),
            problem: None,
        },
        Ok(None) => LeaderPlan {
            observed: None,
            set_replicas: None,
            problem: Some(Problem::TargetNotFound(NotFound::Leader(
                describe.to_string(),
            ))),
        },
        Err(err) => LeaderPlan {
            observed: None,
            set_replicas: None,
            problem: Some(problem_of(err, format!("reading leader {describe}"))),
        },
    }
}

/// What happens to one follower.
#[derive(Clone, Debug, PartialEq)]
pub struct FollowerPlan {
    /// Its status entry, as it is once the patch (if any) is made.
    pub status: FollowerStatus,
    /// The replicas to patch it to, from `current`.
    pub patch: Option<(i32, i32)>,
    /// What is wrong with it.
    pub problem: Option<Problem>,
}

/// Plans one follower (`resource_name`, followRatio `ratio`, named `describe`) from its read
/// and the leader's replicas (`None` when the leader could not be read).
pub fn plan_follower(
    resource_name: &str,
    ratio: i32,
    describe: &str,
    read: &Read,
    leader_replicas: Option<i32>,
) -> FollowerPlan {
    let mut status = FollowerStatus {
        resource_name: resource_name.to_string(),
        desired_replicas: None,
        current_replicas: None,
    };
    let desired = match leader_replicas.map(|l| follower_replicas(l, ratio)) {
        Some(Err(wanted)) => {
            return FollowerPlan {
                status,
                patch: None,
                problem: Some(Problem::ReplicasOverCap {
                    follower: describe.to_string(),
                    leader_replicas: leader_replicas.unwrap_or_default(),
                    ratio,
                    wanted,
                }),
            };
        }
        Some(Ok(replicas)) => Some(replicas),
        None => None,
    };
    status.desired_replicas = desired;
    let object = match read {
        Ok(Some(object)) => object,
        Ok(None) => {
            let problem = Some(Problem::TargetNotFound(NotFound::Follower(
                describe.to_string(),
            )));
            return FollowerPlan {
                status,
                patch: None,
                problem,
            };
        }
        Err(err) => {
            let problem = Some(problem_of(err, format!("reading follower {describe}")));
            return FollowerPlan {
                status,
                patch: None,
                problem,
            };
        }
    };
    let current = spec_replicas(object);
    status.current_replicas = Some(current);
    let patch = desired.filter(|d| *d != current).map(|d| (current, d));
    if let Some((_, to)) = patch {
        status.current_replicas = Some(to);
    }
    FollowerPlan {
        status,
        patch,
        problem: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn followers_are_leader_times_ratio() {
        assert_eq!(follower_replicas(3, 2), Ok(6));
        assert_eq!(follower_replicas(3, 1), Ok(3));
        assert_eq!(follower_replicas(0, 4), Ok(0));
        assert_eq!(follower_replicas(-1, 2), Ok(0));
        assert_eq!(follower_replicas(10, 1000), Ok(10_000));
    }

    #[test]
    fn followers_over_the_cap_are_an_error_not_a_saturated_value() {
        assert_eq!(follower_replicas(11, 1000), Err(11_000));
        assert_eq!(follower_replicas(i32::MAX, 2), Err(i64::from(i32::MAX) * 2));
    }

    #[test]
    fn the_leader_is_set_only_when_the_wanted_value_changed() {
        let leader = Ok(Some(json!({"spec": {"replicas": 4}})));
        let unchanged = plan_leader(&leader, Some(3), Some(3), "Deployment n/l");
        assert_eq!(
            (unchanged.observed, unchanged.set_replicas),
            (Some(4), None)
        );
        let changed = plan_leader(&leader, Some(5), Some(3), "Deployment n/l");
        assert_eq!(changed.set_replicas, Some(5));
        let missing = plan_leader(&Ok(None), Some(5), None, "Deployment n/l");
        assert_eq!(
            missing.problem,
            Some(Problem::TargetNotFound(NotFound::Leader(
                "Deployment n/l".into()
            )))
        );
    }

    #[test]
    fn a_follower_is_patched_to_its_ratio_and_left_alone_over_the_cap() {
        let follower = Ok(Some(json!({"spec": {"replicas": 1}})));
        let plan = plan_follower("decode", 2, "Deployment n/d", &follower, Some(3));
        assert_eq!(plan.patch, Some((1, 6)));
        assert_eq!(plan.status.current_replicas, Some(6));
        let over = plan_follower("decode", 1000, "Deployment n/d", &follower, Some(11));
        assert_eq!(over.patch, None);
        assert!(matches!(
            over.problem,
            Some(Problem::ReplicasOverCap { .. })
        ));
        let settled = plan_follower(
            "decode",
            2,
            "Deployment n/d",
            &Ok(Some(json!({"spec": {"replicas": 6}}))),
            Some(3),
        );
        assert_eq!((settled.patch, settled.problem), (None, None));
    }
}
