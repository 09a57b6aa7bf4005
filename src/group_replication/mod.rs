//! GroupReplication: the listed workloads are group 0; the RSG keeps `replicas` groups by
//! creating and removing whole copies of them with their Services.
//!
//! A reconcile observes (targets, snapshots, baselines, copies), plans without I/O
//! ([`plan::plan_groups`], [`victims`]), applies, labels representatives and writes status.

mod apply;
mod artifacts;
pub mod build;
mod observe;
pub mod plan;
mod representatives;
mod status;
pub mod victims;

use std::collections::BTreeSet;
use std::time::Duration;

use tracing::info;

pub use representatives::pick_representative;

use crate::api::{GroupConfig, ResourceScalingGroup};
use crate::controller::{conditions::reason, Context};
use crate::validation::effective_group_name;
use crate::workload::AccessError;
use observe::observe;
use plan::{plan_groups, GroupState};
use victims::{highest_ids_first, VictimDecision};

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
}

/// How soon to look again.
pub struct Outcome {
    /// Requeue delay.
    pub requeue_after: Duration,
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
    let obs = match observe(ctx, rsg).await? {
        Ok(obs) => obs,
        Err(problems) => {
            status::write_problems(ctx, rsg, &problems).await?;
            return Ok(Outcome {
                requeue_after: Duration::from_secs(30),
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
    };
    let plan = plan_groups(&state);
    let mut active = state.active();
    let mut problems = Vec::new();

    for id in &plan.complete {
        match apply::create_group(ctx, rsg, &obs, &group_name, *id).await? {
            Ok(created) if !created.is_empty() => {
                ctx.event(
                    rsg,
                    false,
                    "CompletedGroup",
                    "Create",
                    format!("group {id}: created the missing {}", created.join(", ")),
                )
                .await;
            }
            Ok(_) => {}
            Err(problem) => problems.push(problem),
        }
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
    for id in &plan.create {
        match apply::create_group(ctx, rsg, &obs, &group_name, *id).await? {
            Ok(created) => {
                active.insert(*id);
                ctx.event(
                    rsg,
                    false,
                    "CreatedGroup",
                    "Create",
                    format!("group {id}: created {}", created.join(", ")),
                )
                .await;
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
                break;
            }
        }
    }
    let mut decision: Option<VictimDecision> = None;
    if plan.remove_count > 0 {
        let candidates: Vec<i32> = active.iter().copied().collect();
        let chosen = highest_ids_first(
            &candidates,
            plan.remove_count,
            "no scale-down metric is configured".into(),
        );
        info!(victims = ?chosen.victims, source = chosen.source.as_str(), "fallback to max group-id: {}", chosen.reason);
        for victim in &chosen.victims {
            if *victim == 0 {
                if let Err(problem) = apply::set_group0(ctx, &obs, true).await? {
                    problems.push(problem);
                    continue;
                }
                ctx.event(
                    rsg,
                    false,
                    "ScaledGroup0ToZero",
                    "Scale",
                    "group 0: scaled the base workloads to 0 (they are kept, not deleted)".into(),
                )
                .await;
            } else {
                let deleted = apply::remove_copy_group(ctx, rsg, &obs, *victim).await?;
                ctx.event(
                    rsg,
                    false,
                    "DeletedGroup",
                    "Delete",
                    format!("group {victim}: deleted {}", deleted.join(", ")),
                )
                .await;
            }
            active.remove(victim);
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

    let represented = representatives::ensure_representatives(ctx, rsg, &obs, &active).await?;
    let last_scale_down = decision
        .as_ref()
        .map(status::record_of)
        .or_else(|| rsg.status.as_ref().and_then(|s| s.last_scale_down.clone()));
    let summary = status::GroupSummary {
        desired,
        active: &active,
        represented: &represented,
        last_scale_down,
    };
    let all_represented = active.iter().all(|id| represented.contains(id));
    status::write_groups(ctx, rsg, &obs, &group_name, &summary, &problems).await?;
    let requeue_after = if all_represented && problems.is_empty() {
        Duration::from_secs(300)
    } else {
        Duration::from_secs(10)
    };
    Ok(Outcome { requeue_after })
}
