//! GroupReplication: the listed workloads are group 0; the RSG keeps `replicas` groups by
//! creating and removing whole copies of them with their Services.
//!
//! A reconcile reads ([`observe`]), plans without I/O ([`reconcile_plan::plan`]: group counts,
//! victims, drains, reuse, the rolling update), carries the plan out ([`apply`]), labels
//! representatives and writes the status built from what it did ([`status`]).

mod apply;
pub mod artifact_decisions;
pub mod baseline;
pub mod copy_identity;
pub mod copy_objects;
pub mod group_changes;
mod group_pods;
pub mod observe;
pub mod placement;
pub mod placement_report;
pub mod placement_status;
pub mod reconcile_plan;
mod representatives;
pub mod revision;
pub mod rollout;
pub mod status;
#[cfg(test)]
mod test_observation;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::ObjectRef;
use tracing::{info, warn};

pub use representatives::pick_representative;

use crate::api::{GroupConfig, ResourceScalingGroup, STRATEGY_GROUP_REPLICATION};
use crate::reconcile::conditions::{find_condition, stored_condition, READY};
use crate::reconcile::{
    problems_condition, rsg_key, Context, Next, Problem, ReconcileError, RsgEvent, Strategy,
};
use crate::scale_down::{read_metric, MetricReading};
use crate::validation::effective_group_name;
use observe::{observe, Observed};
use reconcile_plan::ReconcilePlan;

/// Logs every problem not reported yet (see [`Context::new_reports`]), naming the RSG and
/// (in the message) the object: once per change, not on every retry. Called once per
/// reconcile with all its problems, none included.
fn log_new_problems(ctx: &Context, rsg: &ResourceScalingGroup, problems: &[Problem]) {
    let messages: Vec<String> = problems.iter().map(Problem::to_string).collect();
    let news = ctx.new_reports(rsg, &messages);
    for (problem, message) in problems.iter().zip(&messages) {
        if news.contains(&message.as_str()) {
            warn!(
                rsg = %rsg_key(rsg),
                reason = problem.reason(),
                "{}: {message}",
                problem.log_phrase(),
            );
        }
    }
}

/// Logs `requeue for convergence` with what is still missing, when that changed since the
/// status the RSG had (its Ready and GroupsReady conditions): once per change.
fn log_progress_once(
    rsg: &ResourceScalingGroup,
    written: &crate::api::ResourceScalingGroupStatus,
    requeue_after: Duration,
) {
    let condition = |type_: &str| find_condition(&written.conditions, type_);
    let changed = [READY, status::GROUPS_READY]
        .iter()
        .any(|type_| condition(type_) != stored_condition(rsg, type_));
    if changed {
        info!(
            rsg = %rsg_key(rsg),
            retry_in = ?requeue_after,
            ready = condition(READY).map(|(_, m)| m).unwrap_or_default(),
            groups_ready = condition(status::GROUPS_READY).map(|(_, m)| m).unwrap_or_default(),
            "requeue for convergence"
        );
    }
}

/// The GroupReplication strategy.
pub struct GroupReplication;

impl Strategy for GroupReplication {
    fn name(&self) -> &'static str {
        STRATEGY_GROUP_REPLICATION
    }

    fn reconcile<'a>(
        &'a self,
        ctx: &'a Context,
        rsg: &'a ResourceScalingGroup,
    ) -> BoxFuture<'a, Result<Next, ReconcileError>> {
        Box::pin(async move {
            let Some(config) = rsg.spec.scaling_strategy.group_config.as_ref() else {
                return Ok(Next::OnChange);
            };
            reconcile(ctx, rsg, config).await.map(Next::After)
        })
    }
}

/// Reports problems that stop the reconcile before any group work, and when to look again:
/// changes of the RSG and of what rsg watches wake it at once; a missing base (not watched)
/// is looked for again after 30 s, doubling to 5 minutes.
async fn blocked(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    problems: &[Problem],
) -> Result<Duration, ReconcileError> {
    log_new_problems(ctx, rsg, problems);
    let (why, message) = problems_condition(problems);
    ctx.write_ready(rsg, false, why, message).await?;
    Ok(ctx.problem_backoff(&ObjectRef::from_obj(rsg)))
}

/// The plan for `obs`, with the scale-down metric read first when the plan depends on it
/// (a decision to make or groups draining); otherwise Prometheus is not asked.
async fn make_plan(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    obs: &observe::Observation,
    config: &GroupConfig,
) -> ReconcilePlan {
    let now = Timestamp::now();
    let plan = reconcile_plan::plan(obs, config, &MetricReading::NotRead, now);
    if !plan.needs_metric {
        return plan;
    }
    let reading = read_metric(
        ctx.prometheus.as_ref(),
        &ctx.metrics,
        &rsg_key(rsg),
        config.scale_down.as_ref(),
        &obs.namespaces(rsg.metadata.namespace.as_deref().unwrap_or_default()),
    )
    .await;
    reconcile_plan::plan(obs, config, &reading, now)
}

/// Reconciles one GroupReplication RSG whose spec passed validation.
async fn reconcile(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    config: &GroupConfig,
) -> Result<Duration, ReconcileError> {
    let group_name =
        effective_group_name(&rsg.metadata.name.clone().unwrap_or_default(), config).to_string();
    let obs = match observe(ctx, rsg).await? {
        Observed::Blocked(problems) => return blocked(ctx, rsg, &problems).await,
        Observed::Ready(obs) => obs,
    };
    // Planned before the prerequisites are written (the plan reads only the observation),
    // so that the base Services a new group copies are read beside the snapshots.
    let plan = make_plan(ctx, rsg, &obs, config).await;
    let base_services = apply::BaseServiceObjects::new(&obs.base_services);
    let read_early = plan.creates_groups().then_some(&base_services);
    let problems = apply::prerequisites(ctx, rsg, &obs, read_early).await?;
    if !problems.is_empty() {
        return blocked(ctx, rsg, &problems).await;
    }
    ctx.reset_problem_backoff(&ObjectRef::from_obj(rsg));
    let applied = apply::apply(ctx, rsg, &obs, &plan, (&group_name, &base_services)).await?;
    let pods = group_pods::read_group_pods(ctx, rsg, &obs, &applied.active).await?;
    let represented =
        representatives::ensure_representatives(ctx, rsg, &obs, &pods, &applied.active).await?;
    let placement = placement_reports(ctx, &obs, &pods);
    if plan.rollout.is_some() {
        apply::prune_old_snapshots(ctx, rsg, &obs).await?;
    }
    let summary = status::GroupSummary {
        desired: plan.desired,
        active: &applied.active,
        created: &applied.created,
        draining: &applied.draining,
        represented: &represented,
        last_scale_down: plan
            .decision
            .as_ref()
            .map(|decision| status::record_of(decision, plan.now))
            .or_else(|| rsg.status.as_ref().and_then(|s| s.last_scale_down.clone())),
        rollout: plan.rollout.clone(),
        placement: &placement,
    };
    log_new_problems(ctx, rsg, &applied.problems);
    let written = status::groups_status(rsg, &obs, &group_name, &summary, &applied.problems);
    ctx.write_status(rsg, &written).await?;
    announce_unschedulable(ctx, rsg, &written).await;
    // Kinds read through the dynamic API (LeaderWorkerSet, RoleBasedGroup, ...) are watched
    // from their first use; one that cannot be watched is looked at again soon while one of
    // its groups is not ready yet.
    let kinds: Vec<_> = obs.targets.iter().map(|t| t.kind.clone()).collect();
    let watched = ctx.watch_kinds(&kinds).await;
    let settled = RequeueInputs {
        next_drain_check: plan.next_drain_check,
        problems: !applied.problems.is_empty(),
        // Copies' pods are watched (their scheduling wakes the RSG); the bases' are not.
        pods_pending: placement.get(&0).is_some_and(|r| r.pending),
        unwatched_not_ready: written.ready_replicas < written.current_replicas && !watched,
        rollout_left: plan
            .rollout
            .as_ref()
            .is_some_and(|(left, _)| !left.is_empty()),
    };
    let requeue_after = settled.requeue_after();
    let converged = plan.next_drain_check.is_none()
        && applied.problems.is_empty()
        && written.ready_replicas == plan.desired
        && written.current_replicas == plan.desired;
    if !converged {
        log_progress_once(rsg, &written, requeue_after);
    }
    Ok(requeue_after)
}

/// Each active group's placement report, from its pods and the cached nodes.
fn placement_reports(
    ctx: &Context,
    obs: &observe::Observation,
    pods: &group_pods::GroupPods,
) -> BTreeMap<i32, placement_report::GroupPlacementReport> {
    let pack_domain = obs.placement.as_ref().map(|p| p.pack_domain.as_str());
    pods.by_group
        .keys()
        .map(|id| {
            let report =
                placement_report::report_group(&pods.of_group(*id), pack_domain, |node, key| {
                    ctx.stores.node_label(node, key)
                });
            (*id, report)
        })
        .collect()
}

/// A Warning Event for each group that became unschedulable since the stored status.
async fn announce_unschedulable(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    written: &crate::api::ResourceScalingGroupStatus,
) {
    let before = |id: i32| {
        rsg.status
            .iter()
            .flat_map(|s| &s.groups)
            .find(|g| g.id == id)
            .and_then(|g| g.unschedulable.clone())
    };
    for group in &written.groups {
        let Some(message) = &group.unschedulable else {
            continue;
        };
        if before(group.id).is_none() {
            ctx.event(
                rsg,
                RsgEvent::Unschedulable,
                format!("group {}: {message}", group.id),
            );
        }
    }
}

/// What decides how soon a reconciled RSG is looked at again.
struct RequeueInputs {
    /// When the next draining group's timeout passes.
    next_drain_check: Option<Duration>,
    /// Whether problems were found.
    problems: bool,
    /// Whether a pod of group 0 waits for the scheduler (bases' pods are not watched).
    pods_pending: bool,
    /// Whether a group of a kind that cannot be watched is not ready.
    unwatched_not_ready: bool,
    /// Whether a rolling update has old groups left.
    rollout_left: bool,
}

impl RequeueInputs {
    /// Draining groups' metric every few seconds (and at the timeout); a base's pending pod
    /// every 15 s; 10 s while a problem, a rollout or an unwatched kind is to be looked at; else
    /// 5 minutes: groups that are not ready yet wait for their workloads' and pods' events.
    fn requeue_after(&self) -> Duration {
        match self.next_drain_check {
            Some(remaining) => remaining.min(Duration::from_secs(3)),
            None if self.pods_pending => Duration::from_secs(15),
            None if !self.problems && !self.unwatched_not_ready && !self.rollout_left => {
                Duration::from_secs(300)
            }
            None => Duration::from_secs(10),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RequeueInputs;
    use std::time::Duration;

    #[test]
    fn drains_are_polled_and_settled_groups_wait_five_minutes() {
        let settled = RequeueInputs {
            next_drain_check: None,
            problems: false,
            pods_pending: false,
            unwatched_not_ready: false,
            rollout_left: false,
        };
        assert_eq!(settled.requeue_after(), Duration::from_secs(300));
        let draining = RequeueInputs {
            next_drain_check: Some(Duration::from_secs(20)),
            ..settled
        };
        assert_eq!(draining.requeue_after(), Duration::from_secs(3));
        let rolling = RequeueInputs {
            next_drain_check: None,
            rollout_left: true,
            ..draining
        };
        assert_eq!(rolling.requeue_after(), Duration::from_secs(10));
        let scheduling = RequeueInputs {
            pods_pending: true,
            ..settled
        };
        assert_eq!(scheduling.requeue_after(), Duration::from_secs(15));
    }
}
