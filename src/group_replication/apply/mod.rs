//! Carrying out a [`ReconcilePlan`]: first what the observation found missing (snapshots,
//! the baseline, base labels), then the group changes in the plan's order, each with its
//! Event. What a write could not do (a taken name, RBAC, a bad baseline) is a [`Problem`]
//! in the outcome; the groups that are active and draining afterwards say what it did.

mod artifact_writes;
mod groups;

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::jiff::Timestamp;
use tracing::info;

pub use artifact_writes::prune_old_snapshots;
use artifact_writes::Stored;
pub use groups::GroupCreation;

use super::observe::Observation;
use super::reconcile_plan::{id_list, ReconcilePlan, TakeDown};
use crate::api::ResourceScalingGroup;
use crate::metrics::DecisionLabels;
use crate::reconcile::{Context, Problem, ReconcileError, RsgEvent};
use crate::scale_down::victims::{DecisionSource, VictimDecision};

/// How many groups are created at once.
const CREATE_CONCURRENCY: usize = 8;

/// What carrying out the plan came to.
#[derive(Debug, Default, PartialEq)]
pub struct Applied {
    /// Active groups afterwards.
    pub active: BTreeSet<i32>,
    /// Draining groups afterwards, and since when.
    pub draining: BTreeMap<i32, Timestamp>,
    /// What could not be done.
    pub problems: Vec<Problem>,
    /// Groups created whole in this pass, from the update revision: the cache does not show
    /// their copies yet, but the status can already say what they are.
    pub created: BTreeSet<i32>,
}

/// Stores what the observation found missing before any group is built: snapshots, the
/// baseline ConfigMap, and the group-0 labels of the bases (metadata only). Returns the
/// problems that stop the reconcile here (a snapshot name taken by someone else).
pub async fn prerequisites(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    obs: &Observation,
) -> Result<Vec<Problem>, ReconcileError> {
    let stored = futures::future::try_join_all(
        obs.snapshots_to_store
            .iter()
            .map(|write| artifact_writes::store_snapshot(ctx, rsg, write)),
    )
    .await?;
    let mut problems = Vec::new();
    for (write, outcome) in obs.snapshots_to_store.iter().zip(stored) {
        match outcome {
            Stored::Conflict(problem) => problems.push(problem),
            Stored::Existed => {}
            Stored::Taken => ctx.event(rsg, RsgEvent::SnapshotTaken, format!("stored the base workload of target {:?} as a ControllerRevision; new groups are built from it", write.target)),
        }
    }
    if !problems.is_empty() {
        return Ok(problems);
    }
    // The baseline and the bases' group-0 labels are independent writes: made at once.
    let baseline = async {
        if obs.baseline_write.is_empty() {
            Ok(())
        } else {
            artifact_writes::write_baseline(ctx, rsg, &obs.baseline_write).await
        }
    };
    let ((), adopted) = futures::try_join!(baseline, groups::adopt_bases(ctx, rsg, obs))?;
    for adopted in adopted {
        ctx.event(
            rsg,
            RsgEvent::AdoptedBase,
            format!("labelled {adopted} as group 0 (metadata only; its pods are untouched)"),
        );
    }
    Ok(problems)
}

/// Carries out `plan` for the groups named `group_name`.
pub async fn apply(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    obs: &Observation,
    plan: &ReconcilePlan,
    group_name: &str,
) -> Result<Applied, ReconcileError> {
    let mut applied = Applied {
        active: plan.active_before.clone(),
        draining: plan.draining_before.clone(),
        ..Applied::default()
    };
    reuse_groups(ctx, rsg, obs, plan, group_name, &mut applied).await?;
    complete_groups(
        ctx,
        rsg,
        obs,
        group_name,
        &plan.groups.complete,
        &mut applied,
    )
    .await?;
    if plan.groups.restore_group0 {
        restore_group0(ctx, rsg, obs, &mut applied).await?;
    }
    new_groups(ctx, rsg, obs, group_name, &plan.groups.create, &mut applied).await?;
    take_down_groups(ctx, rsg, obs, plan, &mut applied).await?;
    for removal in &plan.removals {
        if let Some(problem) = remove_group(ctx, rsg, obs, removal.id, removal.why).await? {
            applied.problems.push(problem);
        } else {
            applied.draining.remove(&removal.id);
        }
    }
    Ok(applied)
}

/// Demand rose while groups were draining: they come back first, Services restored.
async fn reuse_groups(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    obs: &Observation,
    plan: &ReconcilePlan,
    group_name: &str,
    applied: &mut Applied,
) -> Result<(), ReconcileError> {
    for id in &plan.groups.reuse {
        groups::mark_draining(ctx, rsg, obs, *id, None).await?;
        if *id > 0 {
            for (_, outcome) in create_groups(ctx, rsg, obs, group_name, &[*id]).await? {
                if let GroupCreation::Blocked(problem) = outcome {
                    applied.problems.push(problem);
                }
            }
        }
        applied.draining.remove(id);
        applied.active.insert(*id);
        ctx.event(
            rsg,
            RsgEvent::ReusedGroup,
            format!("group {id}: stopped draining and serves again"),
        );
    }
    Ok(())
}

/// Restores group 0 (the base workloads) to their baseline replicas.
async fn restore_group0(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    obs: &Observation,
    applied: &mut Applied,
) -> Result<(), ReconcileError> {
    match groups::set_group0(ctx, obs, false).await? {
        None => {
            applied.active.insert(0);
            ctx.event(
                rsg,
                RsgEvent::RestoredGroup0,
                "group 0: restored the base workloads to their baseline replicas".into(),
            );
        }
        Some(problem) => applied.problems.push(problem),
    }
    Ok(())
}

/// Takes the plan's groups out of service: the scale-down victims (with the decision's
/// Event), then a rolling update's replacements.
async fn take_down_groups(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    obs: &Observation,
    plan: &ReconcilePlan,
    applied: &mut Applied,
) -> Result<(), ReconcileError> {
    let (victims, replacements): (Vec<&TakeDown>, Vec<&TakeDown>) = plan
        .take_downs
        .iter()
        .partition(|down| down.replaced_revision.is_none());
    for down in victims {
        applied.active.remove(&down.id);
        take_down(ctx, rsg, obs, plan, down.id, "", applied).await?;
    }
    if let Some(decision) = &plan.decision {
        record_decision(ctx, decision);
        ctx.event(
            rsg,
            RsgEvent::ScaleDownDecision,
            super::status::describe_decision(decision),
        );
    }
    for down in replacements {
        applied.active.remove(&down.id);
        let why = "replaced by a new-revision group";
        take_down(ctx, rsg, obs, plan, down.id, why, applied).await?;
        let old = down.replaced_revision.as_deref().unwrap_or_default();
        let note = format!(
            "group {}: revision {old} replaced by revision {}",
            down.id,
            obs.update_revision()
        );
        ctx.event(rsg, RsgEvent::ReplacedGroup, note);
    }
    Ok(())
}

/// Counts and logs a scale-down decision (the troubleshooting guide greps for the fallbacks).
fn record_decision(ctx: &Context, decision: &VictimDecision) {
    ctx.metrics
        .scale_down_decisions
        .get_or_create(&DecisionLabels {
            source: decision.source.as_str(),
        })
        .inc();
    match decision.source {
        DecisionSource::Annotation => info!(reason = %decision.reason, "fallback to annotation"),
        DecisionSource::GroupId => info!(reason = %decision.reason, "fallback to max group-id"),
        DecisionSource::Metric => {}
    }
    info!(victims = ?decision.victims, source = decision.source.as_str(), reason = %decision.reason, "scale-down decision");
}

/// Creates (or completes) the groups `ids`, up to [`CREATE_CONCURRENCY`] at once.
async fn create_groups(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    obs: &Observation,
    group_name: &str,
    ids: &[i32],
) -> Result<Vec<(i32, GroupCreation)>, ReconcileError> {
    let mut results: Vec<(i32, GroupCreation)> = futures::stream::iter(ids.iter().copied())
        .map(|id| async move {
            groups::create_group(ctx, rsg, obs, group_name, id)
                .await
                .map(|outcome| (id, outcome))
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect()
        .await?;
    results.sort_by_key(|(id, _)| *id);
    Ok(results)
}

/// Completes half-made groups, with one Event for all of them.
async fn complete_groups(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    obs: &Observation,
    group_name: &str,
    ids: &[i32],
    applied: &mut Applied,
) -> Result<(), ReconcileError> {
    let mut completed = Vec::new();
    for (id, outcome) in create_groups(ctx, rsg, obs, group_name, ids).await? {
        match outcome {
            GroupCreation::Created(created) if !created.is_empty() => {
                completed.push(format!("group {id}: {}", created.join(", ")))
            }
            GroupCreation::Created(_) => {}
            GroupCreation::Blocked(problem) => applied.problems.push(problem),
        }
    }
    if !completed.is_empty() {
        ctx.event(
            rsg,
            RsgEvent::CompletedGroups,
            format!("created the missing objects of {}", completed.join("; ")),
        );
    }
    Ok(())
}

/// Creates new groups, with one Event for those created and one per problem.
async fn new_groups(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    obs: &Observation,
    group_name: &str,
    ids: &[i32],
    applied: &mut Applied,
) -> Result<(), ReconcileError> {
    let mut created_ids = Vec::new();
    for (id, outcome) in create_groups(ctx, rsg, obs, group_name, ids).await? {
        match outcome {
            GroupCreation::Created(_) => {
                applied.active.insert(id);
                applied.created.insert(id);
                created_ids.push(id);
            }
            GroupCreation::Blocked(problem) => {
                let message = problem.to_string();
                ctx.event(rsg, RsgEvent::CreateBlocked(problem.reason()), message);
                applied.problems.push(problem);
            }
        }
    }
    if !created_ids.is_empty() {
        let per_group = obs.targets.len() + obs.base_services.len();
        ctx.event(
            rsg,
            RsgEvent::CreatedGroups,
            format!("created groups {} ({per_group} objects each: a copy of every target and of every Service fronting them)", id_list(&created_ids)),
        );
    }
    Ok(())
}

/// Removes group `id` now: a copy group is deleted with its Services; group 0 is scaled to
/// zero (never deleted). `why` is added to the Event. Returns what stopped it, if anything.
async fn remove_group(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    obs: &Observation,
    id: i32,
    why: &str,
) -> Result<Option<Problem>, ReconcileError> {
    let because = if why.is_empty() {
        String::new()
    } else {
        format!(" ({why})")
    };
    if id == 0 {
        if let Some(problem) = groups::set_group0(ctx, obs, true).await? {
            return Ok(Some(problem));
        }
        let note =
            format!("group 0: scaled the base workloads to 0; they are kept, not deleted{because}");
        ctx.event(rsg, RsgEvent::ScaledGroup0ToZero, note);
    } else {
        let deleted = groups::remove_copy_group(ctx, rsg, obs, id).await?;
        ctx.event(
            rsg,
            RsgEvent::DeletedGroup,
            format!("group {id}: deleted {}{because}", deleted.join(", ")),
        );
    }
    Ok(None)
}

/// Takes group `id` down: through the drain path when a drain timeout is set (copied
/// Services removed, then deleted once idle or timed out), else at once.
async fn take_down(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    obs: &Observation,
    plan: &ReconcilePlan,
    id: i32,
    why: &str,
    applied: &mut Applied,
) -> Result<(), ReconcileError> {
    if plan.drain_timeout.is_none() {
        if let Some(problem) = remove_group(ctx, rsg, obs, id, why).await? {
            applied.problems.push(problem);
        }
        return Ok(());
    }
    if id > 0 {
        groups::delete_copy_services(ctx, rsg, obs, id).await?;
    }
    let since = plan.now.to_string();
    groups::mark_draining(ctx, rsg, obs, id, Some(&since)).await?;
    applied.draining.insert(id, plan.now);
    let namespace = rsg.metadata.namespace.as_deref().unwrap_or_default();
    ctx.event(
        rsg,
        RsgEvent::DrainingGroup,
        drain_message(id, &obs.base_services_in(namespace)),
    );
    Ok(())
}

/// The Event of a group that starts draining. `same_namespace_services` are the base's own
/// Services in the namespace the copies live in: their selectors (a subset of the base's pod
/// labels, which copies carry too) match the copies' pods, so they keep routing to a
/// draining copy and the message says so.
fn drain_message(id: i32, same_namespace_services: &[String]) -> String {
    let mut message = if id == 0 {
        "group 0: draining until its metric reads 0 or the drain timeout passes (the base's Services are the user's own and keep routing)".to_string()
    } else {
        format!("group {id}: draining (copied Services removed) until its metric reads 0 or the drain timeout passes")
    };
    if id > 0 && !same_namespace_services.is_empty() {
        message.push_str(&format!(
            "; the base's Services in this namespace ({}) select every group's pods and still route to it: keep base workloads in another namespace than the RSG for routing to stop",
            same_namespace_services.join(", ")
        ));
    }
    message
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod message_tests {
    use super::drain_message;

    #[test]
    fn a_drain_event_names_the_base_services_that_keep_routing() {
        assert!(!drain_message(2, &[]).contains("still route"));
        let shared = drain_message(2, &["llm-prefill".to_string()]);
        assert!(shared.starts_with("group 2: draining (copied Services removed)"));
        assert!(shared.contains("(llm-prefill) select every group's pods and still route to it"));
        assert!(!drain_message(0, &["llm-prefill".to_string()]).contains("still route"));
    }
}
