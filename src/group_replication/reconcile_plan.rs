//! The pure plan of one GroupReplication reconcile: the group counts, which groups are
//! reused, created, completed or restored, the scale-down victims, the rolling-update
//! replacements, and which draining groups go now. Made from the observation, the metric
//! reading and the time alone, it ends in a list of typed [`GroupAction`]s
//! ([`ReconcilePlan::actions`]) that [`super::apply`] carries out one after the other.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::group_changes::{plan_groups, GroupPlan, GroupState};
use super::observe::Observation;
use super::rollout::{groups_to_replace, old_groups_first, surge_allowance, RolloutState};
use crate::api::{GroupConfig, UpdateStrategy, ANNOTATION_METRIC_VALUES};
use crate::scale_down::victims::VictimDecision;
use crate::scale_down::{current_values, decide, DecisionInputs, MetricReading};
use crate::validation::parse_prometheus_duration;

/// A group taken out of service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TakeDown {
    /// The group.
    pub id: i32,
    /// For a group a rolling update replaces, its revision.
    pub replaced_revision: Option<String>,
}

/// A draining group removed now, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Removal {
    /// The group.
    pub id: i32,
    /// Why it goes now.
    pub why: &'static str,
}

/// Everything one reconcile does to the groups, in the order it is done.
#[derive(Clone, Debug, PartialEq)]
pub struct ReconcilePlan {
    /// Desired groups (the spec's count, without a rolling update's surge).
    pub desired: i32,
    /// The groups active before the reconcile.
    pub active_before: BTreeSet<i32>,
    /// The groups draining before the reconcile, and since when.
    pub draining_before: BTreeMap<i32, Timestamp>,
    /// Reuse, create, complete and restore; how many go.
    pub groups: GroupPlan,
    /// The scale-down decision, when groups go.
    pub decision: Option<VictimDecision>,
    /// Groups taken down: the victims first, then the rolling update's replacements.
    pub take_downs: Vec<TakeDown>,
    /// The drain timeout: taken-down groups drain first when it is set.
    pub drain_timeout: Option<Duration>,
    /// When groups start draining in this reconcile.
    pub now: Timestamp,
    /// Draining groups (old and new) removed now.
    pub removals: Vec<Removal>,
    /// When the next draining group's timeout passes.
    pub next_drain_check: Option<Duration>,
    /// Whether the plan depends on the scale-down metric (a decision or a drain).
    pub needs_metric: bool,
    /// A rolling update: the old-revision groups left after this reconcile, and whether
    /// it is paused.
    pub rollout: Option<(BTreeSet<i32>, bool)>,
}

/// One step of a reconcile's group work. [`ReconcilePlan::actions`] lists them in the order
/// they are carried out.
#[derive(Clone, Debug, PartialEq)]
pub enum GroupAction {
    /// A draining group serves again: its draining mark goes, its missing objects (the
    /// Service copies a drain removed) are made again.
    Reuse(i32),
    /// Half-made groups get their missing objects.
    Complete(Vec<i32>),
    /// Group 0's bases go back to their baseline replicas.
    RestoreGroup0,
    /// New groups are made from the update revision.
    Create(Vec<i32>),
    /// A group leaves service: it starts draining at `drain_since` (Service copies removed
    /// first), or without a drain timeout (`None`) it is removed at once. `replaced_revision`
    /// is set for an old-revision group a rolling update replaces.
    TakeDown {
        /// The group.
        id: i32,
        /// When it starts draining; `None`: removed now.
        drain_since: Option<Timestamp>,
        /// The revision a rolling update replaces.
        replaced_revision: Option<String>,
    },
    /// The scale-down decision is counted, logged and announced (after its victims went).
    AnnounceDecision(VictimDecision),
    /// A draining group is removed now.
    Remove(Removal),
}

impl ReconcilePlan {
    /// The groups taken down by a scale-down decision.
    pub fn victims(&self) -> &[i32] {
        self.decision.as_ref().map_or(&[], |d| d.victims.as_slice())
    }

    /// Whether carrying the plan out creates new groups.
    pub fn creates_groups(&self) -> bool {
        !self.groups.create.is_empty()
    }

    /// The plan as the actions that carry it out, in order: draining groups reused, half-made
    /// groups completed, group 0 restored, new groups created (so capacity comes before it
    /// goes), then the scale-down victims taken down and the decision announced, then a
    /// rolling update's replacements, then the draining groups whose time is up removed.
    pub fn actions(&self) -> Vec<GroupAction> {
        let mut actions: Vec<GroupAction> = self
            .groups
            .reuse
            .iter()
            .copied()
            .map(GroupAction::Reuse)
            .collect();
        if !self.groups.complete.is_empty() {
            actions.push(GroupAction::Complete(self.groups.complete.clone()));
        }
        if self.groups.restore_group0 {
            actions.push(GroupAction::RestoreGroup0);
        }
        if !self.groups.create.is_empty() {
            actions.push(GroupAction::Create(self.groups.create.clone()));
        }
        let drain_since = self.drain_timeout.map(|_| self.now);
        let take_down = |down: &TakeDown| GroupAction::TakeDown {
            id: down.id,
            drain_since,
            replaced_revision: down.replaced_revision.clone(),
        };
        let (victims, replacements): (Vec<&TakeDown>, Vec<&TakeDown>) = self
            .take_downs
            .iter()
            .partition(|down| down.replaced_revision.is_none());
        actions.extend(victims.into_iter().map(take_down));
        actions.extend(self.decision.clone().map(GroupAction::AnnounceDecision));
        actions.extend(replacements.into_iter().map(take_down));
        actions.extend(self.removals.iter().cloned().map(GroupAction::Remove));
        actions
    }
}

/// The drain timeout of the config; `None` when unset or zero (groups then go at once).
fn drain_timeout(config: &GroupConfig) -> Option<Duration> {
    config
        .scale_down
        .as_ref()
        .and_then(|s| s.drain_timeout.as_deref())
        .and_then(|d| parse_prometheus_duration(d).ok())
        .filter(|d| !d.is_zero())
}

/// Plans one reconcile. `reading` is the scale-down metric as read for this reconcile
/// ([`MetricReading::NotRead`] on a first pass: the plan says whether it needs it).
pub fn plan(
    obs: &Observation,
    config: &GroupConfig,
    reading: &MetricReading,
    now: Timestamp,
) -> ReconcilePlan {
    let desired = config.desired_replicas();
    let state = observed_state(obs, desired);
    let rolling = config.rolling_update();
    let active_before = state.active();
    // Active copy groups a rolling update has still to replace (none under OnDelete).
    let outdated: BTreeSet<i32> = active_before
        .iter()
        .copied()
        .filter(|id| rolling.is_some() && obs.group_outdated(*id))
        .collect();
    let groups = planned_groups(obs, rolling, &state, outdated.len());
    let mut active = groups.active_after(&active_before);
    let mut draining = obs.draining.clone();
    for id in &groups.reuse {
        draining.remove(id);
    }
    let decision = (groups.remove_count > 0).then(|| {
        scale_down_decision(
            obs,
            config,
            reading,
            &active,
            &outdated,
            groups.remove_count,
        )
    });
    let mut take_downs: Vec<TakeDown> = decision
        .iter()
        .flat_map(|d| &d.victims)
        .map(|id| TakeDown {
            id: *id,
            replaced_revision: None,
        })
        .collect();
    for down in &take_downs {
        active.remove(&down.id);
    }
    // A rolling update takes old-revision groups down while enough groups stay ready.
    let mut still_outdated: BTreeSet<i32> = outdated.intersection(&active).copied().collect();
    if let Some(update) = rolling.filter(|u| !u.is_paused()) {
        take_downs.extend(replacements(
            obs,
            update,
            desired,
            &mut active,
            &mut still_outdated,
        ));
    }
    let drain_timeout = drain_timeout(config);
    if drain_timeout.is_some() {
        for down in &take_downs {
            draining.insert(down.id, now);
        }
    }
    let (removals, next_drain_check) = expired_drains(&draining, drain_timeout, reading, now);
    ReconcilePlan {
        desired,
        active_before,
        draining_before: obs.draining.clone(),
        needs_metric: decision.is_some() || !draining.is_empty(),
        groups,
        decision,
        take_downs,
        drain_timeout,
        now,
        removals,
        next_drain_check,
        rollout: rolling.map(|update| (still_outdated, update.is_paused())),
    }
}

/// The groups as observed, with `desired` groups wanted.
fn observed_state(obs: &Observation, desired: i32) -> GroupState {
    GroupState {
        desired,
        group0_held: obs.group0_held,
        existing_copies: obs.existing_copies(),
        incomplete_copies: obs.incomplete_copies(),
        draining: obs.draining.keys().copied().collect(),
        not_reusable: BTreeSet::new(),
    }
}

/// The old-revision groups a rolling update replaces now (while enough groups stay ready),
/// taken out of `active` and `outdated`.
fn replacements(
    obs: &Observation,
    update: &UpdateStrategy,
    desired: i32,
    active: &mut BTreeSet<i32>,
    outdated: &mut BTreeSet<i32>,
) -> Vec<TakeDown> {
    let replace = groups_to_replace(&RolloutState {
        desired: usize::try_from(desired).unwrap_or(0),
        outdated: outdated.clone(),
        ready: active
            .iter()
            .copied()
            .filter(|id| obs.group_ready(*id))
            .collect(),
        max_unavailable: usize::try_from(update.unavailable()).unwrap_or(0),
    });
    replace
        .into_iter()
        .map(|id| {
            active.remove(&id);
            outdated.remove(&id);
            TakeDown {
                id,
                replaced_revision: Some(obs.group_revision(id)),
            }
        })
        .collect()
}

/// Which groups are reused, created, completed or restored, and how many go. While
/// `outdated` old-revision groups remain, scaling keeps up to maxSurge more groups: the
/// new-revision groups a rollout adds come through the ordinary scale-up path, and a
/// replaced group that drains out is not reused.
fn planned_groups(
    obs: &Observation,
    rolling: Option<&UpdateStrategy>,
    state: &GroupState,
    outdated: usize,
) -> GroupPlan {
    let Some(update) = rolling else {
        return plan_groups(state);
    };
    let allowance = surge_allowance(
        outdated,
        usize::try_from(update.surge()).unwrap_or(0),
        update.is_paused(),
    );
    plan_groups(&GroupState {
        desired: state
            .desired
            .saturating_add(i32::try_from(allowance).unwrap_or(0)),
        not_reusable: state
            .draining
            .iter()
            .copied()
            .filter(|id| obs.group_outdated(*id))
            .collect(),
        ..state.clone()
    })
}

/// Chooses the `count` groups that go among the `active` ones: old-revision groups first,
/// then the scale-down policy's choice among them or the rest.
fn scale_down_decision(
    obs: &Observation,
    config: &GroupConfig,
    reading: &MetricReading,
    active: &BTreeSet<i32>,
    outdated: &BTreeSet<i32>,
    count: usize,
) -> VictimDecision {
    let pool = old_groups_first(outdated, count);
    let candidates: Vec<i32> = active
        .iter()
        .copied()
        .filter(|id| outdated.contains(id) == pool.among_old)
        .collect();
    let inputs = DecisionInputs {
        scale_down: config.scale_down.as_ref(),
        candidates: &candidates,
        count: pool.choose,
        annotations: obs.first_target_annotations(ANNOTATION_METRIC_VALUES),
    };
    let mut chosen = decide(inputs, reading);
    if !pool.taken.is_empty() {
        chosen.reason = format!(
            "old-revision groups {} go first; {}",
            id_list(&pool.taken),
            chosen.reason
        );
        chosen.victims.splice(0..0, pool.taken.iter().copied());
    }
    chosen
}

/// Of the `draining` groups, those that go now (idle by their metric, timed out, or
/// draining no longer configured), and when the next one's timeout passes.
fn expired_drains(
    draining: &BTreeMap<i32, Timestamp>,
    drain_timeout: Option<Duration>,
    reading: &MetricReading,
    now: Timestamp,
) -> (Vec<Removal>, Option<Duration>) {
    let values = current_values(reading);
    let mut removals = Vec::new();
    let mut next_check: Option<Duration> = None;
    for (id, since) in draining {
        let elapsed = Duration::try_from(now.duration_since(*since)).unwrap_or_default();
        let idle = values
            .as_ref()
            .and_then(|v| v.get(id))
            .is_some_and(|v| *v == 0.0);
        let why = match drain_timeout {
            _ if idle => "its metric reads 0",
            Some(timeout) if elapsed < timeout => {
                let remaining = timeout - elapsed;
                next_check = Some(next_check.map_or(remaining, |n| n.min(remaining)));
                continue;
            }
            Some(_) => "the drain timeout passed",
            None => "draining is no longer configured",
        };
        removals.push(Removal { id: *id, why });
    }
    (removals, next_check)
}

/// `1, 2, 5-9` style list of group ids.
pub fn id_list(ids: &[i32]) -> String {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    let mut ranges: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        while i + 1 < sorted.len() && sorted[i + 1] == sorted[i] + 1 {
            i += 1;
        }
        ranges.push(if sorted[i] == start {
            start.to_string()
        } else {
            format!("{start}-{}", sorted[i])
        });
        i += 1;
    }
    ranges.join(", ")
}

#[cfg(test)]
mod tests;
