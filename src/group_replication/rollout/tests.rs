use super::*;

fn set(ids: &[i32]) -> BTreeSet<i32> {
    ids.iter().copied().collect()
}

fn state(desired: usize, outdated: &[i32], ready: &[i32], max_unavailable: usize) -> RolloutState {
    RolloutState {
        desired,
        outdated: set(outdated),
        ready: set(ready),
        max_unavailable,
    }
}

#[test]
fn the_surge_allowance_is_bounded_by_the_old_groups_and_pauses() {
    assert_eq!(surge_allowance(3, 1, false), 1);
    assert_eq!(surge_allowance(1, 2, false), 1);
    assert_eq!(surge_allowance(0, 2, false), 0);
    assert_eq!(surge_allowance(3, 1, true), 0);
}

#[test]
fn with_no_unavailable_budget_an_old_group_goes_only_once_a_new_one_is_ready() {
    // 4 groups: 0 (base, current) and 1-3 old; the surge group 4 is not ready yet.
    assert!(groups_to_replace(&state(4, &[1, 2, 3], &[0, 1, 2, 3], 0)).is_empty());
    // Group 4 ready: exactly one old group goes.
    assert_eq!(
        groups_to_replace(&state(4, &[1, 2, 3], &[0, 1, 2, 3, 4], 0)),
        vec![1]
    );
}

#[test]
fn unready_old_groups_go_first_and_cost_no_budget() {
    assert_eq!(
        groups_to_replace(&state(4, &[1, 2, 3], &[0, 1, 3, 4], 0)),
        vec![2],
        "group 2 serves nothing; the ready ones wait"
    );
}

#[test]
fn the_unavailable_budget_lets_old_groups_go_before_new_ones_are_ready() {
    assert_eq!(
        groups_to_replace(&state(4, &[1, 2, 3], &[0, 1, 2, 3], 1)),
        vec![1]
    );
    assert_eq!(
        groups_to_replace(&state(4, &[1, 2, 3], &[0, 1, 2, 3], 2)),
        vec![1, 2]
    );
}

#[test]
fn ready_groups_never_drop_below_desired_less_the_budget() {
    for desired in 1..6usize {
        for unavailable in 0..3usize {
            for ready_old in 0..4i32 {
                let outdated: Vec<i32> = (1..=3).collect();
                let mut ready: Vec<i32> = vec![0];
                ready.extend(1..=ready_old);
                ready.extend(10..(10 + desired as i32));
                let s = state(desired, &outdated, &ready, unavailable);
                let replaced = groups_to_replace(&s);
                let ready_left =
                    ready.len() - replaced.iter().filter(|id| s.ready.contains(id)).count();
                assert!(
                    ready_left >= desired.saturating_sub(unavailable).min(ready.len()),
                    "{s:?} -> {replaced:?}"
                );
            }
        }
    }
}

#[test]
fn scale_down_takes_old_groups_first() {
    let pool = |taken: Vec<i32>, choose, among_old| VictimPool {
        taken,
        choose,
        among_old,
    };
    assert_eq!(old_groups_first(&set(&[1, 2]), 1), pool(vec![], 1, true));
    assert_eq!(old_groups_first(&set(&[1, 2]), 2), pool(vec![], 2, true));
    assert_eq!(
        old_groups_first(&set(&[1, 2]), 3),
        pool(vec![1, 2], 1, false)
    );
    assert_eq!(old_groups_first(&set(&[]), 2), pool(vec![], 2, false));
}
