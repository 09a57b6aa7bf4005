//! Scenarios that need an API, against the mocked API server: what apply asks, in order,
//! and what it comes to.

use hyper::Method;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::runtime::reflector::ObjectRef;
use serde_json::json;

use super::{apply as apply_with, BaseServiceObjects};
use crate::group_replication::reconcile_plan::plan;
use crate::group_replication::test_observation::{config, observation, rsg, RSG};
use crate::reconcile::mock_api::{context, created, status, Call};
use crate::reconcile::{Problem, ReconcileError};
use crate::scale_down::MetricReading;

/// Carries out `plan` as a reconcile does, the base Services read when a group needs them.
async fn apply(
    ctx: &crate::reconcile::Context,
    rsg: &crate::api::ResourceScalingGroup,
    obs: &crate::group_replication::observe::Observation,
    plan: &crate::group_replication::reconcile_plan::ReconcilePlan,
    group_name: &str,
) -> Result<super::Applied, ReconcileError> {
    let base_services = BaseServiceObjects::new(&obs.base_services);
    apply_with(ctx, rsg, obs, plan, (group_name, &base_services)).await
}

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/team/deployments";
const SERVICES: &str = "/api/v1/namespaces/team/services";
/// The base Service of the test observation, read whole when a group needs its copy.
const BASE_SERVICE: &str = "/api/v1/namespaces/base/services/llm-prefill";

fn base_service() -> (u16, serde_json::Value) {
    (200, crate::fixtures::service("base", "llm-prefill"))
}

fn scale_to(replicas: i32) -> serde_json::Value {
    json!({"replicas": replicas})
}

#[tokio::test]
async fn a_group_whose_service_copy_fails_is_rolled_back_and_the_failure_names_it() {
    let (ctx, recorded) = context(|call: &Call| match (&call.method, call.path.as_str()) {
        (&Method::GET, BASE_SERVICE) => base_service(),
        (&Method::POST, DEPLOYMENTS) => created(call),
        (&Method::POST, SERVICES) => status(500, "InternalError"),
        (&Method::DELETE, _) => (200, json!({"kind": "Status", "status": "Success"})),
        _ => status(404, "NotFound"),
    });
    let obs = observation(&[], &[]);
    let plan = plan(
        &obs,
        &config(scale_to(2)),
        &MetricReading::NotRead,
        Timestamp::now(),
    );
    assert_eq!(plan.groups.create, vec![1]);
    let err = apply(&ctx, &rsg(scale_to(2)), &obs, &plan, RSG)
        .await
        .expect_err("the Service copy failed");
    assert!(
        matches!(&err, ReconcileError::Create { object, .. } if object.to_string() == "Service team/llm-prefill-pd-1"),
        "{err}"
    );
    assert_eq!(
        recorded.lines(),
        vec![
            format!("GET {BASE_SERVICE}"),
            format!("POST {DEPLOYMENTS}"),
            format!("POST {SERVICES}"),
            format!("DELETE {DEPLOYMENTS}/pd-llm-prefill-1"),
        ],
        "the copy made before the failure is deleted again"
    );
}

#[tokio::test]
async fn base_services_are_read_once_for_every_group_and_a_vanished_one_creates_nothing() {
    let (ctx, recorded) = context(|call: &Call| match (&call.method, call.path.as_str()) {
        (&Method::GET, BASE_SERVICE) => base_service(),
        (&Method::POST, DEPLOYMENTS | SERVICES) => created(call),
        _ => status(404, "NotFound"),
    });
    let obs = observation(&[], &[]);
    let plan = plan(
        &obs,
        &config(scale_to(4)),
        &MetricReading::NotRead,
        Timestamp::now(),
    );
    let applied = apply(&ctx, &rsg(scale_to(4)), &obs, &plan, RSG)
        .await
        .expect("three groups");
    assert_eq!(applied.created, [1, 2, 3].into_iter().collect());
    let reads = recorded.lines();
    let base_reads = reads.iter().filter(|l| l.starts_with("GET ")).count();
    assert_eq!(base_reads, 1, "{reads:?}");
    assert_eq!(
        reads.len(),
        7,
        "one read, then 3 Deployments and 3 Services: {reads:?}"
    );

    let (ctx, recorded) = context(|call: &Call| match (&call.method, call.path.as_str()) {
        (&Method::POST, DEPLOYMENTS | SERVICES) => created(call),
        _ => status(404, "NotFound"),
    });
    let err = apply(&ctx, &rsg(scale_to(2)), &obs, &plan, RSG)
        .await
        .expect_err("the base Service is gone");
    assert!(matches!(&err, ReconcileError::CacheBehind { .. }), "{err}");
    assert!(
        recorded.lines().iter().all(|l| l.starts_with("GET ")),
        "nothing created: {:?}",
        recorded.lines()
    );
}

#[tokio::test]
async fn a_name_taken_by_someone_else_is_a_problem_and_is_checked_first_next_time() {
    let (ctx, recorded) = context(|call: &Call| match (&call.method, call.path.as_str()) {
        (&Method::GET, BASE_SERVICE) => base_service(),
        (&Method::POST, DEPLOYMENTS) => status(409, "AlreadyExists"),
        (&Method::POST, SERVICES) => created(call),
        (&Method::DELETE, _) => (200, json!({"kind": "Status", "status": "Success"})),
        // The object in the way carries no rsg.io/name label.
        (&Method::GET, path) if path.starts_with(DEPLOYMENTS) => (
            200,
            crate::fixtures::deployment("team", "pd-llm-prefill-1", 1),
        ),
        _ => status(404, "NotFound"),
    });
    let the_rsg = rsg(scale_to(2));
    let obs = observation(&[], &[]);
    let plan = plan(
        &obs,
        &config(scale_to(2)),
        &MetricReading::NotRead,
        Timestamp::now(),
    );
    let applied = apply(&ctx, &the_rsg, &obs, &plan, RSG)
        .await
        .expect("a problem, not a failure");
    assert!(
        matches!(applied.problems.as_slice(), [p @ Problem::NameConflict { .. }] if p.to_string().starts_with("Deployment team/pd-llm-prefill-1 exists and was not made by this RSG")),
        "{:?}",
        applied.problems
    );
    assert!(!applied.active.contains(&1));
    assert!(ctx
        .memory
        .is_known_conflict(&ObjectRef::from_obj(&the_rsg), "pd-llm-prefill-1"));
    assert_eq!(
        recorded.lines(),
        vec![
            format!("GET {BASE_SERVICE}"),
            format!("POST {DEPLOYMENTS}"),
            format!("POST {SERVICES}"),
            format!("GET {DEPLOYMENTS}/pd-llm-prefill-1"),
            format!("DELETE {SERVICES}/llm-prefill-pd-1"),
        ],
        "the group's parts are created at once; the Service copy made beside the taken name is deleted again"
    );
    // Next time the known conflict is read before anything is created: no create at all.
    apply(&ctx, &the_rsg, &obs, &plan, RSG)
        .await
        .expect("a problem again");
    assert_eq!(
        recorded.lines()[5..],
        [format!("GET {DEPLOYMENTS}/pd-llm-prefill-1")]
    );
    ctx.events.flush().await;
    assert_eq!(
        recorded.event_reasons(),
        vec!["NameConflict", "NameConflict"]
    );
    assert_eq!(
        recorded.event_series_counts(),
        [None, Some(2)],
        "the second is counted into the first's series"
    );
}

#[tokio::test]
async fn a_draining_group_past_its_timeout_is_deleted_services_first() {
    let (ctx, recorded) = context(|call: &Call| match &call.method {
        &Method::DELETE => (200, json!({"kind": "Status", "status": "Success"})),
        _ => status(404, "NotFound"),
    });
    let now = Timestamp::now();
    let drained_for = |minutes: i64| now - SignedDuration::from_mins(minutes);
    let group = json!({"replicas": 2, "scaleDown": {"drainTimeout": "5m"}});
    // Group 2 has drained for 10 minutes, group 3 for 1: only 2 goes, 3 is looked at again
    // when its timeout passes.
    let obs = observation(&[1, 2, 3], &[(2, drained_for(10)), (3, drained_for(1))]);
    let plan = plan(
        &obs,
        &config(group.clone()),
        &MetricReading::NoPrometheus,
        now,
    );
    assert_eq!(
        plan.removals
            .iter()
            .map(|r| (r.id, r.why))
            .collect::<Vec<_>>(),
        vec![(2, "the drain timeout passed")]
    );
    assert_eq!(
        plan.next_drain_check,
        Some(std::time::Duration::from_secs(240))
    );
    let applied = apply(&ctx, &rsg(group), &obs, &plan, RSG)
        .await
        .expect("applied");
    assert_eq!(
        recorded.lines(),
        vec![
            format!("DELETE {SERVICES}/llm-prefill-pd-2"),
            format!("DELETE {DEPLOYMENTS}/pd-llm-prefill-2"),
        ]
    );
    assert_eq!(
        applied.draining.keys().copied().collect::<Vec<_>>(),
        vec![3]
    );
    ctx.events.flush().await;
    assert_eq!(recorded.event_reasons(), vec!["DeletedGroup"]);
}

const REVISIONS: &str = "/apis/apps/v1/namespaces/team/controllerrevisions";

/// The test observation with the snapshot of its base to store (none stored yet).
fn observation_storing_a_snapshot(
    the_rsg: &crate::api::ResourceScalingGroup,
) -> (
    crate::group_replication::observe::Observation,
    crate::group_replication::artifact_decisions::SnapshotWrite,
) {
    use crate::group_replication::artifact_decisions::resolve_snapshot;
    let base = crate::fixtures::deployment("base", "llm-prefill", 1);
    let (_, write) = resolve_snapshot(the_rsg, "prefill", &base, "r1", false, None, &[])
        .expect("no conflict seen in the cache");
    let write = write.expect("a snapshot to store");
    let mut obs = observation(&[], &[]);
    obs.snapshots_to_store = vec![write.clone()];
    (obs, write)
}

#[tokio::test]
async fn a_snapshot_name_taken_by_someone_else_stops_the_reconcile_and_ours_is_used_quietly() {
    let the_rsg = rsg(scale_to(1));
    let (obs, write) = observation_storing_a_snapshot(&the_rsg);

    // Stored meanwhile by this RSG (its label and owner), with what was planned on.
    let ours = serde_json::to_value(&write.object).expect("JSON");
    let (ctx, recorded) = context(
        move |call: &Call| match (&call.method, call.path.as_str()) {
            (&Method::POST, REVISIONS) => status(409, "AlreadyExists"),
            (&Method::GET, _) => (200, ours.clone()),
            _ => (200, json!({})),
        },
    );
    let problems = super::prerequisites(&ctx, &the_rsg, &obs, None)
        .await
        .expect("stored");
    assert!(problems.is_empty(), "{problems:?}");
    ctx.events.flush().await;
    assert!(
        !recorded
            .event_reasons()
            .contains(&"SnapshotTaken".to_string()),
        "nothing was taken now"
    );

    // Someone else's ControllerRevision under that name.
    let (ctx, recorded) = context(|call: &Call| match (&call.method, call.path.as_str()) {
        (&Method::POST, REVISIONS) => status(409, "AlreadyExists"),
        (&Method::GET, _) => (
            200,
            json!({"apiVersion": "apps/v1", "kind": "ControllerRevision",
                   "metadata": {"name": "pd-prefill-snapshot", "namespace": "team"}, "revision": 1}),
        ),
        _ => (200, json!({})),
    });
    let problems = super::prerequisites(&ctx, &the_rsg, &obs, None)
        .await
        .expect("a problem");
    assert!(
        matches!(problems.as_slice(), [p @ Problem::NameConflict { .. }] if p.to_string().contains("exists and was not made by this RSG")),
        "{problems:?}"
    );
    assert_eq!(
        recorded.lines(),
        vec![
            format!("POST {REVISIONS}"),
            format!("GET {REVISIONS}/{}", write.name())
        ],
        "nothing after the conflict: no baseline, no base labels"
    );
}

#[tokio::test]
async fn a_plan_that_creates_groups_reads_the_base_services_beside_the_snapshot_and_once() {
    let the_rsg = rsg(scale_to(2));
    let (obs, _) = observation_storing_a_snapshot(&the_rsg);
    let (ctx, recorded) = context(|call: &Call| match (&call.method, call.path.as_str()) {
        (&Method::GET, BASE_SERVICE) => base_service(),
        (&Method::POST, REVISIONS | DEPLOYMENTS | SERVICES) => created(call),
        _ => (200, json!({})),
    });
    let plan = plan(
        &obs,
        &config(scale_to(2)),
        &MetricReading::NotRead,
        Timestamp::now(),
    );
    assert!(plan.creates_groups());
    let base_services = BaseServiceObjects::new(&obs.base_services);
    let problems = super::prerequisites(&ctx, &the_rsg, &obs, Some(&base_services))
        .await
        .expect("stored");
    assert!(problems.is_empty(), "{problems:?}");
    let before_groups = recorded.lines();
    assert!(
        before_groups.starts_with(&[format!("POST {REVISIONS}"), format!("GET {BASE_SERVICE}")]),
        "the base Service is read beside the snapshot: {before_groups:?}"
    );
    let applied = apply_with(&ctx, &the_rsg, &obs, &plan, (RSG, &base_services))
        .await
        .expect("group 1");
    assert_eq!(applied.created, [1].into_iter().collect());
    let reads: Vec<String> = recorded.lines()[before_groups.len()..]
        .iter()
        .filter(|l| l.starts_with("GET "))
        .cloned()
        .collect();
    assert!(reads.is_empty(), "read once, before the groups: {reads:?}");
}
