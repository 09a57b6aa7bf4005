//! GroupReplication: the listed workloads are group 0; the RSG keeps `replicas` groups by
//! creating and removing whole copies of them with their Services.
//!
//! A reconcile observes (targets, snapshots, baselines, copies), plans without I/O
//! ([`plan::plan_groups`], [`victims`]), applies, labels representatives and writes status.

mod apply;
mod artifacts;
pub mod baseline;
pub mod build;
mod observe;
pub mod plan;
mod representatives;
pub mod revision;
pub mod rollout;
mod status;
pub mod victims;

use std::collections::BTreeSet;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::ObjectRef;
use std::time::Duration;

use tracing::{info, warn};

pub use representatives::pick_representative;

use crate::api::{GroupConfig, ResourceScalingGroup, ANNOTATION_METRIC_VALUES};
use crate::controller::conditions::{find_condition, reason, stored_condition, READY};
use crate::controller::{rsg_key, Context};
use crate::metrics::DecisionLabels;
use crate::scale_down::{self, DecisionInputs};
use crate::validation::{effective_group_name, parse_prometheus_duration};
use crate::workload::AccessError;
use observe::observe;
use plan::{plan_groups, GroupState};
use rollout::{groups_to_replace, old_groups_first, surge_allowance, RolloutState};
use victims::VictimDecision;

/// A problem the user has to fix; reported as a condition, retried later.
#[derive(Clone, Debug, PartialEq)]
pub enum Problem {
    /// A target workload or its kind does not exist.
    TargetNotFound(String),
    /// An object with a copy's name was not made by this RSG.
    NameConflict(String),
    /// The API server refused an operation.
    Forbidden(String),
    /// A baseline value is not a non-negative integer.
    InvalidReplicaConfig(String),
}

impl Problem {
    /// The condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TargetNotFound(_) => reason::TARGET_NOT_FOUND,
            Self::NameConflict(_) => reason::NAME_CONFLICT,
            Self::Forbidden(_) => reason::FORBIDDEN,
            Self::InvalidReplicaConfig(_) => reason::INVALID_REPLICA_CONFIG,
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        match self {
            Self::TargetNotFound(m)
            | Self::NameConflict(m)
            | Self::Forbidden(m)
            | Self::InvalidReplicaConfig(m) => m,
        }
    }

    /// The words a log line starts with, as the troubleshooting guide searches for them.
    pub fn log_phrase(&self) -> &'static str {
        match self {
            Self::TargetNotFound(_) => "target resource not found",
            Self::NameConflict(_) => "already exists",
            Self::Forbidden(_) => "forbidden",
            Self::InvalidReplicaConfig(_) => "invalid replica config",
        }
    }
}

/// Logs every problem not reported yet (see [`Context::new_reports`]), naming the RSG and
/// (in the message) the object: once per change, not on every retry. Called once per
/// reconcile with all its problems, none included.
fn log_new_problems(ctx: &Context, rsg: &ResourceScalingGroup, problems: &[Problem]) {
    let messages: Vec<String> = problems.iter().map(|p| p.message().to_string()).collect();
    let news = ctx.new_reports(rsg, &messages);
    for problem in problems.iter().filter(|p| news.contains(&p.message())) {
        warn!(
            rsg = %rsg_key(rsg),
            reason = problem.reason(),
            "{}: {}",
            problem.log_phrase(),
            problem.message()
        );
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

/// Why a reconcile failed (retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// An API call failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// A workload operation failed.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// An object could not be converted.
    #[error("converting an object: {0}")]
    Convert(serde_json::Error),
    /// A create failed for a reason other than a conflict or RBAC (what the group made before
    /// it is rolled back).
    #[error("creating {kind} {namespace}/{name}: {message}")]
    Create {
        /// Kind of the object.
        kind: String,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// What the API server (or the client) said.
        message: String,
    },
}

/// How soon to look again.
pub struct Outcome {
    /// Requeue delay.
    pub requeue_after: Duration,
}

/// How many groups are created at once.
const CREATE_CONCURRENCY: usize = 8;

/// Creates (or completes) the groups `ids`, up to [`CREATE_CONCURRENCY`] at once.
async fn create_groups(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    obs: &observe::Observation,
    group_name: &str,
    ids: &[i32],
) -> Result<Vec<(i32, Result<Vec<String>, Problem>)>, ReconcileError> {
    let mut results: Vec<(i32, Result<Vec<String>, Problem>)> =
        futures::stream::iter(ids.iter().copied())
            .map(|id| async move {
                apply::create_group(ctx, rsg, obs, group_name, id)
                    .await
                    .map(|outcome| (id, outcome))
            })
            .buffer_unordered(CREATE_CONCURRENCY)
            .try_collect()
            .await?;
    results.sort_by_key(|(id, _)| *id);
    Ok(results)
}

/// Removes group `id` now: a copy group is deleted with its Services; group 0 is scaled to
/// zero (never deleted). `why` is added to the Event.
async fn remove_group(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    obs: &observe::Observation,
    id: i32,
    why: &str,
) -> Result<Result<(), Problem>, ReconcileError> {
    let because = if why.is_empty() {
        String::new()
    } else {
        format!(" ({why})")
    };
    if id == 0 {
        if let Err(problem) = apply::set_group0(ctx, obs, true).await? {
            return Ok(Err(problem));
        }
        let note =
            format!("group 0: scaled the base workloads to 0; they are kept, not deleted{because}");
        ctx.event(rsg, false, "ScaledGroup0ToZero", "Scale", note)
            .await;
    } else {
        let deleted = apply::remove_copy_group(ctx, rsg, obs, id).await?;
        ctx.event(
            rsg,
            false,
            "DeletedGroup",
            "Delete",
            format!("group {id}: deleted {}{because}", deleted.join(", ")),
        )
        .await;
    }
    Ok(Ok(()))
}

/// Takes group `id` down: through the drain path when a drain timeout is set (copied
/// Services removed, then deleted once idle or timed out), else at once.
#[allow(clippy::too_many_arguments)]
async fn take_down(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    obs: &observe::Observation,
    id: i32,
    drain_timeout: Option<Duration>,
    draining: &mut std::collections::BTreeMap<i32, Timestamp>,
    problems: &mut Vec<Problem>,
    why: &str,
) -> Result<(), ReconcileError> {
    if drain_timeout.is_some() {
        if id > 0 {
            apply::delete_copy_services(ctx, rsg, obs, id).await?;
        }
        let now = Timestamp::now();
        apply::mark_draining(ctx, rsg, obs, id, Some(&now.to_string())).await?;
        draining.insert(id, now);
        ctx.event(
            rsg,
            false,
            "DrainingGroup",
            "Scale",
            drain_message(
                id,
                &obs.base_services_in(rsg.metadata.namespace.as_deref().unwrap_or_default()),
            ),
        )
        .await;
    } else if let Err(problem) = remove_group(ctx, rsg, obs, id, why).await? {
        problems.push(problem);
    }
    Ok(())
}

/// Deletes the snapshots of each target that no group uses any more, beyond a short history.
async fn prune_old_snapshots(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    obs: &observe::Observation,
) -> Result<(), ReconcileError> {
    for target in &obs.targets {
        let in_use: BTreeSet<String> = target
            .copy_revisions
            .values()
            .cloned()
            .chain([target.update_revision.clone()])
            .collect();
        let pruned = artifacts::prune_snapshots(ctx, rsg, &target.name, &in_use).await?;
        if !pruned.is_empty() {
            tracing::debug!(target = %target.name, ?pruned, "deleted snapshots no group uses");
        }
    }
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

/// `1, 2, 5-9` style list of group ids.
fn id_list(ids: &[i32]) -> String {
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

/// Reconciles one GroupReplication RSG whose spec passed validation.
pub async fn reconcile(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    config: &GroupConfig,
) -> Result<Outcome, ReconcileError> {
    let desired = config.desired_replicas();
    let group_name =
        effective_group_name(&rsg.metadata.name.clone().unwrap_or_default(), config).to_string();
    let rsg_ref = ObjectRef::from_obj(rsg);
    let obs = match observe(ctx, rsg).await? {
        Ok(obs) => {
            ctx.reset_problem_backoff(&rsg_ref);
            obs
        }
        Err(problems) => {
            log_new_problems(ctx, rsg, &problems);
            status::write_problems(ctx, rsg, &problems).await?;
            // Changes of the RSG and of what rsg watches wake it at once; a missing base
            // (not watched) is looked for again after 30 s, doubling to 5 minutes.
            return Ok(Outcome {
                requeue_after: ctx.problem_backoff(&rsg_ref),
            });
        }
    };
    for target in &obs.new_snapshots {
        ctx.event(rsg, false, "SnapshotTaken", "Snapshot", format!("stored the base workload of target {target:?} as a ControllerRevision; new groups are built from it")).await;
    }
    for adopted in apply::adopt_bases(ctx, rsg, &obs).await? {
        ctx.event(
            rsg,
            false,
            "Adopted",
            "Label",
            format!("labelled {adopted} as group 0 (metadata only; its pods are untouched)"),
        )
        .await;
    }

    let existing_copies: BTreeSet<i32> = obs
        .targets
        .iter()
        .flat_map(|t| t.copies.keys().copied())
        .chain(obs.copy_services.keys().copied())
        .collect();
    let incomplete_copies = existing_copies
        .iter()
        .copied()
        .filter(|id| {
            obs.targets.iter().any(|t| !t.copies.contains_key(id))
                || obs.copy_services.get(id).map_or(0, Vec::len) < obs.base_services.len()
        })
        .collect();
    let state = GroupState {
        desired,
        group0_held: obs.group0_held,
        existing_copies,
        incomplete_copies,
        draining: obs.draining.keys().copied().collect(),
        not_reusable: BTreeSet::new(),
    };
    let rolling = config.rolling_update();
    let update_revision = obs.update_revision();
    // Active copy groups a rolling update has still to replace (none under OnDelete).
    let outdated: BTreeSet<i32> = match rolling {
        Some(_) => state
            .active()
            .into_iter()
            .filter(|id| obs.group_outdated(*id))
            .collect(),
        None => BTreeSet::new(),
    };
    // While old groups remain, scaling keeps up to maxSurge more groups: the new-revision
    // groups a rollout adds come through the ordinary scale-up path.
    let allowance = rolling.map_or(0, |update| {
        surge_allowance(
            outdated.len(),
            usize::try_from(update.surge()).unwrap_or(0),
            update.is_paused(),
        )
    });
    let plan = plan_groups(&GroupState {
        desired: desired.saturating_add(i32::try_from(allowance).unwrap_or(0)),
        // A replaced group drains out; scaling up brings new-revision groups, not it.
        not_reusable: match rolling {
            Some(_) => state
                .draining
                .iter()
                .copied()
                .filter(|id| obs.group_outdated(*id))
                .collect(),
            None => BTreeSet::new(),
        },
        ..state.clone()
    });
    let mut active = state.active();
    let mut problems = Vec::new();
    let drain_timeout = config
        .scale_down
        .as_ref()
        .and_then(|s| s.drain_timeout.as_deref())
        .and_then(|d| parse_prometheus_duration(d).ok())
        .filter(|d| !d.is_zero());
    let mut draining = obs.draining.clone();
    // Demand rose while groups were draining: they come back first, Services restored.
    for id in &plan.reuse {
        apply::mark_draining(ctx, rsg, &obs, *id, None).await?;
        if *id > 0 {
            for (_, outcome) in create_groups(ctx, rsg, &obs, &group_name, &[*id]).await? {
                if let Err(problem) = outcome {
                    problems.push(problem);
                }
            }
        }
        draining.remove(id);
        active.insert(*id);
        ctx.event(
            rsg,
            false,
            "ReusedGroup",
            "Scale",
            format!("group {id}: stopped draining and serves again"),
        )
        .await;
    }

    let mut completed = Vec::new();
    for (id, outcome) in create_groups(ctx, rsg, &obs, &group_name, &plan.complete).await? {
        match outcome {
            Ok(created) if !created.is_empty() => {
                completed.push(format!("group {id}: {}", created.join(", ")))
            }
            Ok(_) => {}
            Err(problem) => problems.push(problem),
        }
    }
    if !completed.is_empty() {
        ctx.event(
            rsg,
            false,
            "CompletedGroups",
            "Create",
            format!("created the missing objects of {}", completed.join("; ")),
        )
        .await;
    }
    if plan.restore_group0 {
        match apply::set_group0(ctx, &obs, false).await? {
            Ok(()) => {
                active.insert(0);
                ctx.event(
                    rsg,
                    false,
                    "ScaledUp",
                    "Scale",
                    "group 0: restored the base workloads to their baseline replicas".into(),
                )
                .await;
            }
            Err(problem) => problems.push(problem),
        }
    }
    let mut created_ids = Vec::new();
    for (id, outcome) in create_groups(ctx, rsg, &obs, &group_name, &plan.create).await? {
        match outcome {
            Ok(_) => {
                active.insert(id);
                created_ids.push(id);
            }
            Err(problem) => {
                ctx.event(
                    rsg,
                    true,
                    problem.reason(),
                    "Create",
                    problem.message().to_string(),
                )
                .await;
                problems.push(problem);
            }
        }
    }
    if !created_ids.is_empty() {
        let per_group = obs.targets.len() + obs.base_services.len();
        ctx.event(
            rsg,
            false,
            "CreatedGroups",
            "Create",
            format!("created groups {} ({per_group} objects each: a copy of every target and of every Service fronting them)", id_list(&created_ids)),
        )
        .await;
    }
    let mut decision: Option<VictimDecision> = None;
    if plan.remove_count > 0 {
        // Old-revision groups go first; the decision chooses among them, or the rest.
        let pool = old_groups_first(&outdated, plan.remove_count);
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
        let mut chosen = scale_down::decide(ctx.prometheus.as_ref(), &ctx.metrics, inputs).await;
        if !pool.taken.is_empty() {
            chosen.reason = format!(
                "old-revision groups {} go first; {}",
                id_list(&pool.taken),
                chosen.reason
            );
            chosen.victims.splice(0..0, pool.taken.iter().copied());
        }
        ctx.metrics
            .scale_down_decisions
            .get_or_create(&DecisionLabels {
                source: chosen.source.as_str(),
            })
            .inc();
        info!(victims = ?chosen.victims, source = chosen.source.as_str(), reason = %chosen.reason, "scale-down decision");
        for victim in &chosen.victims {
            active.remove(victim);
            take_down(
                ctx,
                rsg,
                &obs,
                *victim,
                drain_timeout,
                &mut draining,
                &mut problems,
                "",
            )
            .await?;
        }
        ctx.event(
            rsg,
            false,
            "ScaleDownDecision",
            "Decide",
            status::describe_decision(&chosen),
        )
        .await;
        decision = Some(chosen);
    }

    // A rolling update takes old-revision groups down while enough groups stay ready.
    let mut still_outdated: BTreeSet<i32> = outdated.intersection(&active).copied().collect();
    if let Some(update) = rolling.filter(|u| !u.is_paused()) {
        let replace = groups_to_replace(&RolloutState {
            desired: usize::try_from(desired).unwrap_or(0),
            outdated: still_outdated.clone(),
            ready: active
                .iter()
                .copied()
                .filter(|id| obs.group_ready(*id))
                .collect(),
            max_unavailable: usize::try_from(update.unavailable()).unwrap_or(0),
        });
        for id in replace {
            active.remove(&id);
            still_outdated.remove(&id);
            let old = obs.group_revision(id);
            take_down(
                ctx,
                rsg,
                &obs,
                id,
                drain_timeout,
                &mut draining,
                &mut problems,
                "replaced by a new-revision group",
            )
            .await?;
            ctx.event(
                rsg,
                false,
                "ReplacedGroup",
                "Update",
                format!("group {id}: revision {old} replaced by revision {update_revision}"),
            )
            .await;
        }
    }
    let mut next_drain_check = None;
    if !draining.is_empty() {
        let values = scale_down::current_values(
            ctx.prometheus.as_ref(),
            &ctx.metrics,
            config.scale_down.as_ref(),
        )
        .await;
        let now = Timestamp::now();
        for (id, since) in draining.clone() {
            let elapsed = Duration::try_from(now.duration_since(since)).unwrap_or_default();
            let idle = values
                .as_ref()
                .and_then(|v| v.get(&id))
                .is_some_and(|v| *v == 0.0);
            let why = match drain_timeout {
                _ if idle => "its metric reads 0",
                Some(timeout) if elapsed < timeout => {
                    let remaining = timeout - elapsed;
                    next_drain_check =
                        Some(next_drain_check.map_or(remaining, |n: Duration| n.min(remaining)));
                    continue;
                }
                Some(_) => "the drain timeout passed",
                None => "draining is no longer configured",
            };
            match remove_group(ctx, rsg, &obs, id, why).await? {
                Ok(()) => {
                    draining.remove(&id);
                }
                Err(problem) => problems.push(problem),
            }
        }
    }

    let represented = representatives::ensure_representatives(ctx, rsg, &obs, &active).await?;
    let last_scale_down = decision
        .as_ref()
        .map(status::record_of)
        .or_else(|| rsg.status.as_ref().and_then(|s| s.last_scale_down.clone()));
    let summary = status::GroupSummary {
        desired,
        active: &active,
        draining: &draining,
        represented: &represented,
        last_scale_down,
        rollout: rolling.map(|update| (still_outdated.clone(), update.is_paused())),
    };
    if rolling.is_some() {
        prune_old_snapshots(ctx, rsg, &obs).await?;
    }
    let all_represented = active.iter().all(|id| represented.contains(id));
    log_new_problems(ctx, rsg, &problems);
    let written = status::write_groups(ctx, rsg, &obs, &group_name, &summary, &problems).await?;
    // Kinds read through the dynamic API (LeaderWorkerSet, RoleBasedGroup, ...) are watched
    // from their first use; one that cannot be watched is looked at again soon while one of
    // its groups is not ready yet.
    let kinds: Vec<_> = obs.targets.iter().map(|t| t.kind.clone()).collect();
    let watched = ctx.watch_kinds(&kinds).await;
    let unwatched_not_ready = written.ready_replicas < written.current_replicas && !watched;
    let requeue_after = match next_drain_check {
        // Poll the metric of draining groups every few seconds, and wake at the timeout.
        Some(remaining) => remaining.min(Duration::from_secs(3)),
        None if all_represented
            && problems.is_empty()
            && !unwatched_not_ready
            && still_outdated.is_empty() =>
        {
            Duration::from_secs(300)
        }
        None => Duration::from_secs(10),
    };
    let converged = next_drain_check.is_none()
        && problems.is_empty()
        && written.ready_replicas == summary.desired
        && written.current_replicas == summary.desired;
    if !converged {
        log_progress_once(rsg, &written, requeue_after);
    }
    Ok(Outcome { requeue_after })
}

#[cfg(test)]
mod tests {
    use super::{drain_message, id_list};

    #[test]
    fn a_drain_event_names_the_base_services_that_keep_routing() {
        assert!(!drain_message(2, &[]).contains("still route"));
        let shared = drain_message(2, &["llm-prefill".to_string()]);
        assert!(shared.starts_with("group 2: draining (copied Services removed)"));
        assert!(shared.contains("(llm-prefill) select every group's pods and still route to it"));
        assert!(!drain_message(0, &["llm-prefill".to_string()]).contains("still route"));
    }

    #[test]
    fn id_lists_are_compact() {
        assert_eq!(id_list(&[3, 1, 2, 5, 7, 8]), "1-3, 5, 7-8");
        assert_eq!(id_list(&[4]), "4");
        assert_eq!(id_list(&[]), "");
    }
}
