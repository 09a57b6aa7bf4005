//! The pure decisions of a rolling update. Scaling plans with the desired count raised by
//! the surge allowance, so new-revision groups are created through the ordinary scale-up
//! path; this module then picks the old-revision groups to take down now, so that ready
//! groups never drop below `desired - maxUnavailable`.

use std::collections::BTreeSet;

/// Extra groups the scaling plan may keep while old-revision groups remain: `maxSurge`, but
/// never more than there are old groups to replace (nothing while paused).
pub fn surge_allowance(outdated: usize, max_surge: usize, paused: bool) -> usize {
    if paused {
        0
    } else {
        max_surge.min(outdated)
    }
}

/// What taking old groups down is decided from (after this reconcile's scaling).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RolloutState {
    /// Desired number of groups.
    pub desired: usize,
    /// Active copy groups not at the update revision (group 0 never is one).
    pub outdated: BTreeSet<i32>,
    /// Active groups whose every workload is ready.
    pub ready: BTreeSet<i32>,
    /// Groups that may be unready below `desired`.
    pub max_unavailable: usize,
}

/// The old-revision groups to take down now: unready ones first (they serve nothing), then
/// ready ones while the ready groups left stay at `desired - max_unavailable` or more.
pub fn groups_to_replace(state: &RolloutState) -> Vec<i32> {
    let floor = state.desired.saturating_sub(state.max_unavailable);
    let mut ready = state.ready.len();
    let mut order: Vec<i32> = state.outdated.iter().copied().collect();
    order.sort_by_key(|id| (state.ready.contains(id), *id));
    let mut replace = Vec::new();
    for id in order {
        if state.ready.contains(&id) {
            if ready <= floor {
                continue;
            }
            ready -= 1;
        }
        replace.push(id);
    }
    replace
}

/// How scale-down victims are drawn while old-revision groups exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VictimPool {
    /// Old groups that go whatever the metric says (all of them, when fewer than needed).
    pub taken: Vec<i32>,
    /// How many more the scale-down decision chooses.
    pub choose: usize,
    /// Whether it chooses among the old groups only (else among the other active groups).
    pub among_old: bool,
}

/// Scale-down removes old-revision groups first: when at least `count` are old, the
/// decision chooses among them; else every old group goes and it chooses the rest.
pub fn old_groups_first(outdated: &BTreeSet<i32>, count: usize) -> VictimPool {
    if outdated.len() >= count {
        VictimPool {
            taken: Vec::new(),
            choose: count,
            among_old: !outdated.is_empty(),
        }
    } else {
        VictimPool {
            taken: outdated.iter().copied().collect(),
            choose: count - outdated.len(),
            among_old: false,
        }
    }
}

#[cfg(test)]
mod tests;
