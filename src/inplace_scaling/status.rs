//! Status of an InplaceScaling RSG, built from what a reconcile read and did (pure).

use crate::api::{
    FollowerStatus, LeaderFollowerConfig, LeaderStatus, ResourceScalingGroup,
    ResourceScalingGroupStatus,
};
use crate::reconcile::conditions::{find_condition, reason, with_condition, READY};
use crate::reconcile::{problems_condition, Problem};

/// What the reconcile came to.
pub struct Outcome<'a> {
    /// The leader's replicas (after its patch); `None` when it could not be read.
    pub leader_replicas: Option<i32>,
    /// The `leader.replicas` value last applied.
    pub applied: Option<i32>,
    /// Every follower's entry.
    pub followers: Vec<FollowerStatus>,
    /// What is wrong.
    pub problems: &'a [Problem],
}

/// The status after an InplaceScaling reconcile.
pub fn inplace_status(
    rsg: &ResourceScalingGroup,
    config: &LeaderFollowerConfig,
    outcome: Outcome<'_>,
) -> ResourceScalingGroupStatus {
    let mut status = rsg.status.clone().unwrap_or_default();
    status.observed_generation = rsg.metadata.generation;
    status.leader = Some(LeaderStatus {
        resource_name: config.leader.resource_name.clone(),
        observed_replicas: outcome.leader_replicas,
        applied_replicas: outcome.applied,
    });
    status.followers = outcome.followers;
    status.current_replicas = outcome.leader_replicas.unwrap_or_default();
    status.ready_replicas = 0;
    let (ready, why, message) = match outcome.problems.first() {
        Some(_) => {
            let (why, message) = problems_condition(outcome.problems);
            (false, why, message)
        }
        None => (
            true,
            reason::RECONCILED,
            format!(
                "{} followers at their ratio of the leader's {} replicas",
                config.follower.len(),
                outcome.leader_replicas.unwrap_or_default()
            ),
        ),
    };
    status.conditions = with_condition(
        status.conditions,
        READY,
        ready,
        why,
        message,
        rsg.metadata.generation,
    );
    status
}

/// The reason (the first problem's) and message of the not-ready condition in `written`,
/// when they are news against `previous`: a Warning Event goes out for them.
pub fn new_problem(
    previous: &ResourceScalingGroupStatus,
    written: &ResourceScalingGroupStatus,
    problems: &[Problem],
) -> Option<(&'static str, String)> {
    let why = problems.first()?.reason();
    let (_, message) = find_condition(&written.conditions, READY)?;
    let before = find_condition(&previous.conditions, READY).map(|(_, m)| m);
    (before != Some(message)).then(|| (why, message.to_string()))
}
