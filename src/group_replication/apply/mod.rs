//! Carrying out a [`ReconcilePlan`]: first what the observation found missing (snapshots,
//! the baseline, base labels), then the plan's [`GroupAction`]s one after the other, each
//! with its Event. What a write could not do (a taken name, RBAC, a bad baseline) is a [`Problem`]
//! in the outcome; the groups that are active and draining afterwards say what it did.

mod artifact_writes;
mod groups;

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::jiff::Timestamp;
use tracing::info;

pub use artifact_writes::prune_old_snapshots;
use artifact_writes::Stored;
pub use groups::BaseServiceObjects;
pub use groups::GroupCreation;

use super::observe::Observation;
use super::reconcile_plan::{id_list, GroupAction, ReconcilePlan};
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
///
/// With `base_services` (the plan creates groups), the base Services are read meanwhile, so
/// the groups do not wait for that read after the snapshots.
pub async fn prerequisites(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    obs: &Observation,
    base_services: Option<&BaseServiceObjects<'_>>,
) -> Result<Vec<Problem>, ReconcileError> {
    let snapshots = futures::future::try_join_all(
        obs.snapshots_to_store
            .iter()
            .map(|write| artifact_writes::store_snapshot(ctx, rsg, write)),
    );
    let base_services_read = async {
        match base_services {
            Some(base_services) => base_services.prefetch(ctx).await,
            None => Ok(()),
        }
    };
    let (stored, ()) = futures::try_join!(snapshots, base_services_read)?;
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

/// Carries out `plan` for the groups named `group_name`: its actions one after the other.
/// `base_services` are the observation's, read whole when a group first needs them (or
/// already by [`prerequisites`]).
pub async fn apply(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    obs: &Observation,
    plan: &ReconcilePlan,
    (group_name, base_services): (&str, &BaseServiceObjects<'_>),
) -> Result<Applied, ReconcileError> {
    let mut applied = Applied {
        active: plan.active_before.clone(),
        draining: plan.draining_before.clone(),
        ..Applied::default()
    };
    let build = Build {
        ctx,
        rsg,
        obs,
        group_name,
        base_services,
    };
    for action in plan.actions() {
        build.carry_out(action, &mut applied).await?;
    }
    Ok(applied)
}

/// What every action is carried out with: the RSG, the observation its objects are built
/// from, and the base Services, read whole once a group needs copies of them.
struct Build<'a> {
    ctx: &'a Context,
    rsg: &'a ResourceScalingGroup,
    obs: &'a Observation,
    group_name: &'a str,
    base_services: &'a BaseServiceObjects<'a>,
}

impl Build<'_> {
    /// Carries out one action, recording in `applied` which groups are active and draining
    /// afterwards and what could not be done.
    async fn carry_out(
        &self,
        action: GroupAction,
        applied: &mut Applied,
    ) -> Result<(), ReconcileError> {
        let (ctx, rsg, obs) = (self.ctx, self.rsg, self.obs);
        match action {
            GroupAction::Reuse(id) => self.reuse_group(id, applied).await,
            GroupAction::Complete(ids) => self.complete_groups(&ids, applied).await,
            GroupAction::RestoreGroup0 => restore_group0(ctx, rsg, obs, applied).await,
            GroupAction::Create(ids) => self.new_groups(&ids, applied).await,
            GroupAction::TakeDown {
                id,
                drain_since,
                replaced_revision,
            } => {
                applied.active.remove(&id);
                let why = match replaced_revision {
                    Some(_) => "replaced by a new-revision group",
                    None => "",
                };
                take_down(ctx, rsg, obs, id, drain_since, why, applied).await?;
                if let Some(old) = replaced_revision {
                    let new = obs.update_revision();
                    let note = format!("group {id}: revision {old} replaced by revision {new}");
                    ctx.event(rsg, RsgEvent::ReplacedGroup, note);
                }
                Ok(())
            }
            GroupAction::AnnounceDecision(decision) => {
                record_decision(ctx, &decision);
                let message = super::status::describe_decision(&decision);
                ctx.event(rsg, RsgEvent::ScaleDownDecision, message);
                Ok(())
            }
            GroupAction::Remove(removal) => {
                match remove_group(ctx, rsg, obs, removal.id, removal.why).await? {
                    Some(problem) => applied.problems.push(problem),
                    None => {
                        applied.draining.remove(&removal.id);
                    }
                }
                Ok(())
            }
        }
    }

    /// Demand rose while group `id` was draining: it comes back, its Services restored.
    async fn reuse_group(&self, id: i32, applied: &mut Applied) -> Result<(), ReconcileError> {
        let (ctx, rsg) = (self.ctx, self.rsg);
        groups::mark_draining(ctx, rsg, self.obs, id, None).await?;
        if id > 0 {
            for (_, outcome) in self.create_groups(&[id]).await? {
                if let GroupCreation::Blocked(problem) = outcome {
                    applied.problems.push(problem);
                }
            }
        }
        applied.draining.remove(&id);
        applied.active.insert(id);
        ctx.event(
            rsg,
            RsgEvent::ReusedGroup,
            format!("group {id}: stopped draining and serves again"),
        );
        Ok(())
    }

    /// Creates (or completes) the groups `ids`, up to [`CREATE_CONCURRENCY`] at once.
    async fn create_groups(
        &self,
        ids: &[i32],
    ) -> Result<Vec<(i32, GroupCreation)>, ReconcileError> {
        let (ctx, rsg, obs, group_name) = (self.ctx, self.rsg, self.obs, self.group_name);
        let base_services = self.base_services;
        let mut results: Vec<(i32, GroupCreation)> = futures::stream::iter(ids.iter().copied())
            .map(|id| async move {
                groups::create_group(ctx, rsg, obs, base_services, group_name, id)
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
        &self,
        ids: &[i32],
        applied: &mut Applied,
    ) -> Result<(), ReconcileError> {
        let mut completed = Vec::new();
        for (id, outcome) in self.create_groups(ids).await? {
            match outcome {
                GroupCreation::Created(created) if !created.is_empty() => {
                    completed.push(format!("group {id}: {}", created.join(", ")))
                }
                GroupCreation::Created(_) => {}
                GroupCreation::Blocked(problem) => applied.problems.push(problem),
            }
        }
        if !completed.is_empty() {
            self.ctx.event(
                self.rsg,
                RsgEvent::CompletedGroups,
                format!("created the missing objects of {}", completed.join("; ")),
            );
        }
        Ok(())
    }

    /// Creates new groups, with one Event for those created and one per problem.
    async fn new_groups(&self, ids: &[i32], applied: &mut Applied) -> Result<(), ReconcileError> {
        let (ctx, rsg, obs) = (self.ctx, self.rsg, self.obs);
        let mut created_ids = Vec::new();
        for (id, outcome) in self.create_groups(ids).await? {
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

/// Takes group `id` down: through the drain path when it drains (`drain_since` set: copied
/// Services removed, then deleted once idle or timed out), else at once.
async fn take_down(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    obs: &Observation,
    id: i32,
    drain_since: Option<Timestamp>,
    why: &str,
    applied: &mut Applied,
) -> Result<(), ReconcileError> {
    let Some(since) = drain_since else {
        if let Some(problem) = remove_group(ctx, rsg, obs, id, why).await? {
            applied.problems.push(problem);
        }
        return Ok(());
    };
    if id > 0 {
        groups::delete_copy_services(ctx, rsg, obs, id).await?;
    }
    groups::mark_draining(ctx, rsg, obs, id, Some(&since.to_string())).await?;
    applied.draining.insert(id, since);
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
