//! The pure decision of which groups to create, complete, restore and remove.

use std::collections::BTreeSet;

/// The group-level state the plan is made from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupState {
    /// Desired number of groups.
    pub desired: i32,
    /// Whether group 0 is held at zero by this RSG.
    pub group0_held: bool,
    /// Ids of copy groups of which at least one object exists.
    pub existing_copies: BTreeSet<i32>,
    /// Existing copy groups that miss some of their objects.
    pub incomplete_copies: BTreeSet<i32>,
    /// Groups draining before removal (not active, reusable).
    pub draining: BTreeSet<i32>,
    /// Draining groups that must not come back on scale up (old-revision groups a rolling
    /// update is replacing).
    pub not_reusable: BTreeSet<i32>,
}

impl GroupState {
    /// Active groups: group 0 unless held at zero, and every existing copy, except those
    /// draining.
    pub fn active(&self) -> BTreeSet<i32> {
        let mut active = self.existing_copies.clone();
        if !self.group0_held {
            active.insert(0);
        }
        active.retain(|id| !self.draining.contains(id));
        active
    }
}

/// What to do to reach the desired count.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupPlan {
    /// Draining groups to bring back (their Services restored), lowest ids first.
    pub reuse: Vec<i32>,
    /// Copy groups to create, lowest ids first.
    pub create: Vec<i32>,
    /// Whether group 0 is restored to its baseline.
    pub restore_group0: bool,
    /// Existing copy groups to complete (objects missing after an interruption).
    pub complete: Vec<i32>,
    /// How many active groups must go; the victims are chosen separately.
    pub remove_count: usize,
}

impl GroupPlan {
    /// The groups active once `active_before` gained the reused, created and restored ones
    /// (before any goes).
    pub fn active_after(&self, active_before: &BTreeSet<i32>) -> BTreeSet<i32> {
        let mut active = active_before.clone();
        active.extend(self.reuse.iter().copied());
        active.extend(self.create.iter().copied());
        if self.restore_group0 {
            active.insert(0);
        }
        active
    }

    /// True when nothing needs doing.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty()
            && !self.restore_group0
            && self.complete.is_empty()
            && self.remove_count == 0
    }
}

/// Plans the group changes. Scale up reuses draining groups first, then activates the
/// lowest inactive ids (0 is restored from zero); scale down removes `remove_count` active
/// groups.
pub fn plan_groups(state: &GroupState) -> GroupPlan {
    let desired = usize::try_from(state.desired.max(0)).unwrap_or(0);
    let active = state.active();
    let mut plan = GroupPlan::default();
    if active.len() < desired {
        let mut missing = desired - active.len();
        for id in state
            .draining
            .iter()
            .filter(|id| !state.not_reusable.contains(id))
            .take(missing)
        {
            plan.reuse.push(*id);
        }
        missing -= plan.reuse.len();
        let mut id = 0;
        while missing > 0 {
            if !active.contains(&id) && !state.draining.contains(&id) {
                if id == 0 {
                    plan.restore_group0 = true;
                } else {
                    plan.create.push(id);
                }
                missing -= 1;
            }
            id += 1;
        }
    } else {
        plan.remove_count = active.len() - desired;
    }
    // A half-made group is completed only when no group is to go: while scaling down it may
    // be a victim, and completing it first would recreate what the removal then deletes
    // again (a half-removed group after an interrupted scale down would flip for ever).
    if plan.remove_count == 0 {
        plan.complete = state
            .incomplete_copies
            .iter()
            .copied()
            .filter(|id| !state.draining.contains(id))
            .collect();
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(desired: i32, held: bool, copies: &[i32]) -> GroupState {
        GroupState {
            desired,
            group0_held: held,
            existing_copies: copies.iter().copied().collect(),
            incomplete_copies: BTreeSet::new(),
            draining: BTreeSet::new(),
            not_reusable: BTreeSet::new(),
        }
    }

    #[test]
    fn old_revision_groups_draining_are_not_brought_back() {
        let mut rolling = state(5, false, &[2, 3, 5]);
        rolling.draining = [1].into_iter().collect();
        rolling.not_reusable = [1].into_iter().collect();
        let plan = plan_groups(&rolling);
        assert!(plan.reuse.is_empty(), "{plan:?}");
        assert_eq!(
            plan.create,
            vec![4],
            "a new group, next to the draining one"
        );
    }

    #[test]
    fn a_half_removed_group_is_not_completed_while_groups_are_to_go() {
        let mut interrupted = state(10, false, &(1..=23).collect::<Vec<_>>());
        interrupted.incomplete_copies = [23].into_iter().collect();
        let plan = plan_groups(&interrupted);
        assert_eq!(plan.remove_count, 14);
        assert!(plan.complete.is_empty(), "{plan:?}");
        // Once the count is right, a half-made group is completed.
        let mut settled = state(3, false, &[1, 2]);
        settled.incomplete_copies = [2].into_iter().collect();
        assert_eq!(plan_groups(&settled).complete, vec![2]);
    }

    #[test]
    fn scale_up_fills_the_lowest_ids() {
        let cases: &[(GroupState, &[i32], bool)] = &[
            (state(1, false, &[]), &[], false),
            (state(3, false, &[]), &[1, 2], false),
            (state(3, false, &[2]), &[1], false),
            (state(4, false, &[1, 3]), &[2], false),
            (state(2, true, &[]), &[1], true),
            (state(2, true, &[5]), &[], true),
            (state(3, true, &[1]), &[2], true),
        ];
        for (state, create, restore) in cases {
            let plan = plan_groups(state);
            assert_eq!(
                (
                    plan.create.as_slice(),
                    plan.restore_group0,
                    plan.remove_count
                ),
                (*create, *restore, 0),
                "{state:?}"
            );
        }
    }

    #[test]
    fn scale_down_counts_the_surplus() {
        assert_eq!(plan_groups(&state(1, false, &[1, 2])).remove_count, 2);
        assert_eq!(plan_groups(&state(0, false, &[1])).remove_count, 2);
        assert_eq!(plan_groups(&state(0, true, &[])).remove_count, 0);
        assert!(plan_groups(&state(3, false, &[1, 2])).is_empty());
    }

    #[test]
    fn incomplete_groups_are_completed() {
        let mut s = state(3, false, &[1, 2]);
        s.incomplete_copies.insert(2);
        let plan = plan_groups(&s);
        assert_eq!(plan.complete, vec![2]);
        assert!(plan.create.is_empty());
    }

    #[test]
    fn draining_groups_are_inactive_and_reused_first() {
        let mut s = state(2, false, &[1, 2, 3]);
        s.draining = [2, 3].into_iter().collect();
        s.incomplete_copies = [2].into_iter().collect();
        assert_eq!(s.active(), [0, 1].into_iter().collect());
        let plan = plan_groups(&s);
        assert!(plan.is_empty(), "{plan:?}");
        s.desired = 3;
        assert_eq!(plan_groups(&s).reuse, vec![2]);
        s.desired = 5;
        let plan = plan_groups(&s);
        assert_eq!((plan.reuse, plan.create), (vec![2, 3], vec![4]));
        let mut zero = state(1, false, &[1]);
        zero.draining = [0].into_iter().collect();
        assert_eq!(zero.active(), [1].into_iter().collect());
        assert_eq!(plan_groups(&zero).remove_count, 0);
    }

    #[test]
    fn negative_desired_is_zero() {
        assert_eq!(plan_groups(&state(-1, false, &[])).remove_count, 1);
    }
}
