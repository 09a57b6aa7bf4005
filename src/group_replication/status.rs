//! Status of a GroupReplication RSG, built from what a reconcile observed and did (pure).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::observe::Observation;
use super::placement_report::GroupPlacementReport;
use super::placement_status::{with_placement_condition, PlacementInputs};
use crate::api::{
    CandidateValue, GroupState, GroupStatus, ResourceScalingGroup, ResourceScalingGroupStatus,
    ScaleDownRecord, LABEL_REPRESENTATIVE,
};
use crate::naming::copy_service_name;
use crate::reconcile::conditions::{reason, with_condition, READY};
use crate::reconcile::{problems_condition, Problem};
use crate::scale_down::victims::VictimDecision;

/// Condition type telling whether every active group's workloads are ready.
pub const GROUPS_READY: &str = "GroupsReady";

/// The outcome of a reconcile, for status.
pub struct GroupSummary<'a> {
    /// Desired groups.
    pub desired: i32,
    /// Active groups after this reconcile.
    pub active: &'a BTreeSet<i32>,
    /// Groups created whole in this reconcile, from the update revision.
    pub created: &'a BTreeSet<i32>,
    /// Draining groups and since when.
    pub draining: &'a BTreeMap<i32, Timestamp>,
    /// Groups with a representative pod.
    pub represented: &'a BTreeSet<i32>,
    /// The latest scale-down decision.
    pub last_scale_down: Option<ScaleDownRecord>,
    /// A rolling update under way: the active old-revision groups, and whether it is paused.
    pub rollout: Option<(BTreeSet<i32>, bool)>,
    /// Where each active group's pods landed, and why some could not.
    pub placement: &'a BTreeMap<i32, GroupPlacementReport>,
}

/// The status record of a decision made at `time`.
pub fn record_of(decision: &VictimDecision, time: Timestamp) -> ScaleDownRecord {
    ScaleDownRecord {
        time: Some(Time(time)),
        victims: decision.victims.clone(),
        source: decision.source.as_str().to_string(),
        reason: decision.reason.clone(),
        candidates: decision
            .candidates
            .iter()
            .map(|(id, value)| CandidateValue {
                group_id: *id,
                value: *value,
            })
            .collect(),
    }
}

/// A one-line description of a decision for Events.
pub fn describe_decision(decision: &VictimDecision) -> String {
    let values: Vec<String> = decision
        .candidates
        .iter()
        .map(|(id, v)| {
            format!(
                "{id}={}",
                v.map(|v| v.to_string()).unwrap_or_else(|| "none".into())
            )
        })
        .collect();
    format!(
        "removing groups {:?}, decided by {} ({}); candidates: {}",
        decision.victims,
        decision.source.as_str(),
        decision.reason,
        values.join(", ")
    )
}

/// The full status after a GroupReplication reconcile.
pub fn groups_status(
    rsg: &ResourceScalingGroup,
    obs: &Observation,
    group_name: &str,
    summary: &GroupSummary<'_>,
    problems: &[Problem],
) -> ResourceScalingGroupStatus {
    let namespace = rsg.namespace().unwrap_or_default();
    let update_revision = obs.update_revision();
    let tally = group_entries(obs, &namespace, group_name, summary, &update_revision);
    let current = i32::try_from(summary.active.len()).unwrap_or(i32::MAX);
    let mut status = rsg.status.clone().unwrap_or_default();
    status.observed_generation = rsg.metadata.generation;
    status.current_replicas = current;
    status.ready_replicas = tally.ready;
    status.last_desired_replicas = Some(summary.desired);
    status.selector = Some(format!("{LABEL_REPRESENTATIVE}={}", rsg.name_any()));
    status.group_domains = obs.placement.as_ref().map(|_| {
        tally
            .groups
            .iter()
            .map(|g| g.domain.as_deref().unwrap_or("-"))
            .collect::<Vec<_>>()
            .join(",")
    });
    status.groups = tally.groups;
    status.last_scale_down = summary.last_scale_down.clone();
    let outdated = summary.rollout.as_ref().map(|(outdated, _)| outdated);
    status.current_revision = Some(
        outdated
            .and_then(|o| o.first())
            .map_or_else(|| update_revision.clone(), |id| obs.group_revision(*id)),
    );
    status.update_revision = Some(update_revision.clone());
    status.updated_replicas = Some(tally.updated);
    let generation = rsg.metadata.generation;
    let counts = GroupCounts {
        desired: summary.desired,
        current,
        ready: tally.ready,
        updated: tally.updated,
    };
    let (ready, why, message) = ready_condition(problems, summary, &counts, &update_revision);
    status.conditions = with_condition(status.conditions, READY, ready, why, message, generation);
    let (groups_ready, groups_reason, groups_message) = groups_ready_condition(summary, &counts);
    status.conditions = with_condition(
        status.conditions,
        GROUPS_READY,
        groups_ready,
        groups_reason,
        groups_message,
        generation,
    );
    let placed_otherwise: BTreeSet<i32> = obs
        .groups_placed_otherwise()
        .intersection(summary.active)
        .copied()
        .collect();
    status.conditions = with_placement_condition(
        status.conditions,
        &PlacementInputs {
            placement: obs.placement.as_ref(),
            reports: summary.placement,
            placed_otherwise: &placed_otherwise,
            rolling: summary.rollout.is_some(),
        },
        generation,
    );
    status
}

/// The groups' status entries, with how many active groups are ready and at the update
/// revision.
struct GroupTally {
    groups: Vec<GroupStatus>,
    ready: i32,
    updated: i32,
}

/// Group counts the conditions speak of.
struct GroupCounts {
    desired: i32,
    current: i32,
    ready: i32,
    updated: i32,
}

/// One entry per active or draining group, plus group 0 (which is listed even when scaled
/// to zero).
fn group_entries(
    obs: &Observation,
    namespace: &str,
    group_name: &str,
    summary: &GroupSummary<'_>,
    update_revision: &str,
) -> GroupTally {
    let mut tally = GroupTally {
        groups: Vec::new(),
        ready: 0,
        updated: 0,
    };
    let mut ids: BTreeSet<i32> = summary.active.clone();
    ids.extend(summary.draining.keys().copied());
    ids.insert(0);
    for id in ids {
        let active = summary.active.contains(&id);
        let draining_since = summary.draining.get(&id).map(|since| Time(*since));
        let state = match (id, active, draining_since.is_some()) {
            (_, true, _) => GroupState::Active,
            (_, false, true) => GroupState::Draining,
            (0, false, false) => GroupState::ScaledToZero,
            _ => continue,
        };
        // A group created in this pass is not in the observation made before it: it was
        // built from the update revision.
        let revision = if summary.created.contains(&id) {
            update_revision.to_string()
        } else {
            obs.group_revision(id)
        };
        if active && revision == update_revision {
            tally.updated += 1;
        }
        let ready = active && obs.group_ready(id);
        if ready {
            tally.ready += 1;
        }
        // A draining copy's Services are gone already: it takes no new traffic.
        let services = if draining_since.is_some() && id > 0 {
            Vec::new()
        } else {
            group_services(obs, namespace, group_name, id)
        };
        let placement = summary.placement.get(&id);
        tally.groups.push(GroupStatus {
            id,
            state,
            active,
            ready,
            workloads: group_workloads(obs, namespace, group_name, id),
            services,
            draining_since,
            revision: Some(revision),
            domain: placement.and_then(|r| r.domain.clone()),
            unschedulable: placement.and_then(|r| r.unschedulable.clone()),
        });
    }
    tally
}

/// `kind/namespace/name` of group `id`'s workloads: the bases for group 0, the copies else.
fn group_workloads(obs: &Observation, namespace: &str, group_name: &str, id: i32) -> Vec<String> {
    obs.targets
        .iter()
        .map(|t| {
            if id == 0 {
                format!(
                    "{}/{}/{}",
                    t.kind.kind_name(),
                    t.base_namespace,
                    t.base_name
                )
            } else {
                format!(
                    "{}/{namespace}/{}",
                    t.kind.kind_name(),
                    crate::naming::copy_workload_name(group_name, &t.base_name, id)
                )
            }
        })
        .collect()
}

/// `namespace/name` of group `id`'s Services: the bases' for group 0, their copies else.
fn group_services(obs: &Observation, namespace: &str, group_name: &str, id: i32) -> Vec<String> {
    obs.base_services
        .iter()
        .map(|s| {
            if id == 0 {
                format!("{}/{}", s.namespace, s.name)
            } else {
                format!("{namespace}/{}", copy_service_name(&s.name, group_name, id))
            }
        })
        .collect()
}

/// The `Ready` condition: the first problems, else a rollout under way, else whether every
/// desired group exists.
fn ready_condition(
    problems: &[Problem],
    summary: &GroupSummary<'_>,
    counts: &GroupCounts,
    update_revision: &str,
) -> (bool, &'static str, String) {
    let outdated = summary.rollout.as_ref().map(|(outdated, _)| outdated);
    if !problems.is_empty() {
        let (why, message) = problems_condition(problems);
        return (false, why, message);
    }
    if let Some(outdated) = outdated.filter(|o| !o.is_empty()) {
        let mut message = format!(
            "{} of {} groups at revision {update_revision}; {} to replace",
            counts.updated,
            counts.current,
            outdated.len()
        );
        if summary.rollout.as_ref().is_some_and(|(_, paused)| *paused) {
            message.push_str(" (paused: updateStrategy.paused is true)");
        }
        return (false, reason::ROLLING_UPDATE, message);
    }
    let message = format!("{} of {} groups exist", counts.current, counts.desired);
    if counts.current == counts.desired {
        (true, reason::RECONCILED, message)
    } else {
        (false, reason::PROGRESSING, message)
    }
}

/// The `GroupsReady` condition: whether every active group's workloads are ready, naming
/// the groups that have no pod yet.
fn groups_ready_condition(
    summary: &GroupSummary<'_>,
    counts: &GroupCounts,
) -> (bool, &'static str, String) {
    let mut message = format!(
        "{} of {} groups have every workload ready",
        counts.ready, counts.current
    );
    if counts.ready == counts.current {
        return (true, "AllGroupsReady", message);
    }
    let unrepresented: Vec<String> = summary
        .active
        .difference(summary.represented)
        .map(ToString::to_string)
        .collect();
    if !unrepresented.is_empty() {
        message.push_str(&format!(
            "; groups without a pod yet: {}",
            unrepresented.join(", ")
        ));
    }
    (false, "WaitingForWorkloads", message)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use serde_json::json;

    use super::{groups_status, GroupSummary};
    use crate::group_replication::test_observation::{observation, rsg, RSG};

    /// The status of a pass that observed copy groups `observed`, found groups 0 to 3 active
    /// afterwards and created `created`.
    fn status_of(
        observed: &[i32],
        created: &BTreeSet<i32>,
    ) -> crate::api::ResourceScalingGroupStatus {
        let obs = observation(observed, &[]);
        let active: BTreeSet<i32> = [0, 1, 2, 3].into();
        let summary = GroupSummary {
            desired: 4,
            active: &active,
            created,
            draining: &BTreeMap::new(),
            represented: &BTreeSet::new(),
            last_scale_down: None,
            rollout: None,
            placement: &BTreeMap::new(),
        };
        groups_status(&rsg(json!({"replicas": 4})), &obs, RSG, &summary, &[])
    }

    #[test]
    fn groups_created_in_this_pass_show_the_update_revision_the_next_pass_will_see() {
        let status = status_of(&[1], &[2, 3].into());
        let update = status.update_revision.clone().expect("an update revision");
        let revisions: Vec<Option<&str>> = status
            .groups
            .iter()
            .map(|g| g.revision.as_deref())
            .collect();
        assert_eq!(revisions, vec![Some(update.as_str()); 4], "{status:?}");
        assert_eq!(status.updated_replicas, Some(4));
        // The next pass observes the copies it made: the same status, so nothing is written.
        let next = status_of(&[1, 2, 3], &BTreeSet::new());
        assert_eq!(next.groups, status.groups);
        assert_eq!(next.updated_replicas, status.updated_replicas);
    }

    #[test]
    fn a_group_neither_created_in_this_pass_nor_seen_is_not_counted_as_updated() {
        let status = status_of(&[1], &BTreeSet::new());
        assert_eq!(status.updated_replicas, Some(2), "{status:?}");
    }
}
