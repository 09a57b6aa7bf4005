//! Plans made from built observations: no API involved.

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::json;

use super::{plan, GroupAction, Removal, TakeDown};
use crate::group_replication::test_observation::{config, observation};
use crate::scale_down::victims::DecisionSource;
use crate::scale_down::MetricReading;

#[test]
fn a_settled_rsg_plans_nothing_and_asks_no_metric() {
    let obs = observation(&[1, 2], &[]);
    let plan = plan(
        &obs,
        &config(json!({"replicas": 3})),
        &MetricReading::NotRead,
        Timestamp::now(),
    );
    assert!(plan.groups.is_empty(), "{:?}", plan.groups);
    assert!(plan.take_downs.is_empty() && plan.removals.is_empty());
    assert!(!plan.needs_metric);
}

#[test]
fn scale_down_without_values_takes_the_highest_ids_and_needs_the_metric() {
    let obs = observation(&[1, 2, 3], &[]);
    let plan = plan(
        &obs,
        &config(json!({"replicas": 2})),
        &MetricReading::NoMetric,
        Timestamp::now(),
    );
    let decision = plan.decision.as_ref().expect("a decision");
    assert_eq!(decision.victims, vec![3, 2]);
    assert_eq!(decision.source, DecisionSource::GroupId);
    assert!(decision
        .reason
        .starts_with("no scale-down metric is configured"));
    assert_eq!(
        plan.take_downs,
        vec![
            TakeDown {
                id: 3,
                replaced_revision: None
            },
            TakeDown {
                id: 2,
                replaced_revision: None
            }
        ]
    );
    assert!(plan.needs_metric);
    // Without a drain timeout the victims go at once: nothing drains.
    assert!(plan.removals.is_empty() && plan.next_drain_check.is_none());
}

#[test]
fn with_a_drain_timeout_victims_drain_and_an_idle_metric_removes_them_at_once() {
    let obs = observation(&[1, 2], &[]);
    let group = config(json!({"replicas": 2, "scaleDown": {"drainTimeout": "2m"}}));
    let now = Timestamp::now();
    let waiting = plan(&obs, &group, &MetricReading::NoPrometheus, now);
    assert_eq!(waiting.victims(), &[2]);
    assert!(waiting.removals.is_empty());
    assert_eq!(
        waiting.next_drain_check,
        Some(std::time::Duration::from_secs(120))
    );
    let response = serde_json::from_value(
        json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"group_id": "0"}, "value": [0, "4"]},
            {"metric": {"group_id": "1"}, "value": [0, "3"]},
            {"metric": {"group_id": "2"}, "value": [0, "0"]}
        ]}}),
    )
    .expect("a response");
    let idle = MetricReading::Answered {
        query: "q".into(),
        answer: Ok(response),
    };
    let removed = plan(&obs, &group, &idle, now);
    assert_eq!(
        removed.decision.as_ref().map(|d| d.source),
        Some(DecisionSource::Metric)
    );
    assert_eq!(
        removed.removals,
        vec![Removal {
            id: 2,
            why: "its metric reads 0"
        }]
    );
}

#[test]
fn demand_back_while_a_group_drains_reuses_it_instead_of_creating_one() {
    let since = Timestamp::now() - SignedDuration::from_secs(30);
    let obs = observation(&[1, 2], &[(2, since)]);
    let group = config(json!({"replicas": 3, "scaleDown": {"drainTimeout": "5m"}}));
    let plan = plan(&obs, &group, &MetricReading::NotRead, Timestamp::now());
    assert_eq!(plan.groups.reuse, vec![2]);
    assert!(plan.groups.create.is_empty());
    assert!(!plan.needs_metric, "nothing drains any more");
}

/// A rolling update of copies 1-3 (at `r1`, ready) to the base's new template (`r2`); the
/// groups in `new_copies` exist at `r2`, not ready yet.
fn rolling_observation(new_copies: &[i32]) -> crate::group_replication::observe::Observation {
    let mut obs = observation(&[1, 2, 3], &[]);
    let target = &mut obs.targets[0];
    for id in [1, 2, 3] {
        if let Some(copy) = target.copies.get_mut(&id) {
            copy["metadata"]["generation"] = json!(1);
            copy["status"] =
                json!({"observedGeneration": 1, "readyReplicas": 1, "updatedReplicas": 1});
        }
    }
    // The base's Deployment rolls its own pods: not ready at the new template yet.
    target.base["metadata"]["generation"] = json!(2);
    target.base["status"] =
        json!({"observedGeneration": 2, "readyReplicas": 1, "updatedReplicas": 0});
    target.update_revision = "r2".into();
    target.live_revision = "r2".into();
    for id in new_copies {
        target.copies.insert(
            *id,
            crate::group_replication::test_observation::copy(*id, "r2"),
        );
        target.copy_revisions.insert(*id, "r2".into());
        obs.copy_services.insert(
            *id,
            vec![crate::group_replication::test_observation::service_copy(
                *id,
            )],
        );
    }
    obs
}

#[test]
fn a_rolling_update_takes_no_ready_group_down_before_its_replacement_is_ready() {
    let rolling = config(json!({
        "replicas": 4,
        "updateStrategy": {"type": "RollingUpdate", "maxSurge": 1, "maxUnavailable": 0},
        "scaleDown": {"drainTimeout": "2s"},
    }));
    // The first pass after the base changed: the surge group is made, nothing goes.
    let first = plan(
        &rolling_observation(&[]),
        &rolling,
        &MetricReading::NotRead,
        Timestamp::now(),
    );
    assert_eq!(first.groups.create, vec![4], "{:?}", first.groups);
    assert!(first.take_downs.is_empty(), "{:?}", first.take_downs);
    // The surge group exists but is not ready: still nothing goes.
    let second = plan(
        &rolling_observation(&[4]),
        &rolling,
        &MetricReading::NotRead,
        Timestamp::now(),
    );
    assert!(second.groups.create.is_empty(), "{:?}", second.groups);
    assert!(second.take_downs.is_empty(), "{:?}", second.take_downs);
}

#[test]
fn turning_placement_on_replaces_groups_under_rolling_update_only() {
    let placement = crate::group_replication::placement::CopyPlacement::of(
        &serde_json::from_value(json!({"packDomain": "topology.kubernetes.io/zone"}))
            .expect("a placement"),
    );
    let mut obs = observation(&[1, 2], &[]);
    let unplaced_revision = obs.update_revision();
    obs.placement = Some(placement.clone());
    assert_ne!(obs.update_revision(), unplaced_revision);
    assert_eq!(
        obs.group_revision(0),
        obs.update_revision(),
        "group 0 is never placed, so never behind"
    );
    assert!(obs.group_outdated(1) && obs.group_outdated(2));
    assert_eq!(obs.groups_placed_otherwise(), [1, 2].into_iter().collect());
    let rolling = config(json!({
        "replicas": 3,
        "updateStrategy": {"type": "RollingUpdate", "maxSurge": 1, "maxUnavailable": 0},
    }));
    let rolled = plan(&obs, &rolling, &MetricReading::NotRead, Timestamp::now());
    assert_eq!(rolled.groups.create, vec![3], "the surge group comes first");
    let on_delete = plan(
        &obs,
        &config(json!({"replicas": 3})),
        &MetricReading::NotRead,
        Timestamp::now(),
    );
    assert!(
        on_delete.groups.is_empty() && on_delete.take_downs.is_empty(),
        "OnDelete leaves placed-before groups alone"
    );
    // A copy made with the current placement is up to date.
    obs.targets[0]
        .copy_placements
        .insert(1, placement.fingerprint.clone());
    assert!(!obs.group_outdated(1));
    assert_eq!(obs.group_revision(1), obs.update_revision());
}

#[test]
fn the_actions_take_victims_down_then_announce_the_decision_then_remove_expired_drains() {
    let long_ago = Timestamp::now() - SignedDuration::from_secs(600);
    let obs = observation(&[1, 2, 3, 4], &[(4, long_ago)]);
    let group = config(json!({"replicas": 2, "scaleDown": {"drainTimeout": "1m"}}));
    let now = Timestamp::now();
    let plan = plan(&obs, &group, &MetricReading::NoPrometheus, now);
    let decision = plan.decision.clone().expect("a decision");
    let drained = |id| GroupAction::TakeDown {
        id,
        drain_since: Some(now),
        replaced_revision: None,
    };
    assert_eq!(
        plan.actions(),
        vec![
            drained(3),
            drained(2),
            GroupAction::AnnounceDecision(decision),
            GroupAction::Remove(Removal {
                id: 4,
                why: "the drain timeout passed"
            }),
        ]
    );
}

#[test]
fn without_a_drain_timeout_a_victim_is_removed_at_once_and_new_groups_come_before_any_goes() {
    let obs = observation(&[1, 2], &[]);
    let down = plan(
        &obs,
        &config(json!({"replicas": 2})),
        &MetricReading::NoMetric,
        Timestamp::now(),
    );
    assert!(matches!(
        down.actions().first(),
        Some(GroupAction::TakeDown {
            id: 2,
            drain_since: None,
            replaced_revision: None
        })
    ));
    let since = Timestamp::now() - SignedDuration::from_secs(30);
    let obs = observation(&[1, 2], &[(2, since)]);
    let up = plan(
        &obs,
        &config(json!({"replicas": 5, "scaleDown": {"drainTimeout": "5m"}})),
        &MetricReading::NotRead,
        Timestamp::now(),
    );
    assert_eq!(
        up.actions(),
        vec![GroupAction::Reuse(2), GroupAction::Create(vec![3, 4])]
    );
}
