//! InplaceScaling: followers are kept at `leader's spec.replicas × followRatio`.
//!
//! `leader.replicas`, when set, is applied to the leader only when that value in the RSG
//! changes (recorded in `status.leader.appliedReplicas`), so an HPA or `kubectl scale` on
//! the leader is not fought; followers follow whatever the leader's replicas are. Only
//! `spec.replicas` is ever written, with a merge patch.

use std::time::Duration;

use serde_json::json;
use tracing::{info, warn};

use crate::api::{
    FollowerStatus, LeaderFollowerConfig, LeaderStatus, ResourceScalingGroup, TargetResource,
    LABEL_MANAGED, MAX_FOLLOWER_REPLICAS,
};
use crate::controller::conditions::{find_condition, reason, with_condition, READY};
use crate::controller::{rsg_key, Context};
use crate::group_replication::ReconcileError;
use crate::workload::{label, spec_replicas, AccessError, WorkloadKind};

/// A workload named by a leader or follower entry.
struct Member<'a> {
    target: &'a TargetResource,
    kind: WorkloadKind,
    namespace: String,
}

fn member<'a>(rsg: &'a ResourceScalingGroup, resource_name: &str) -> Option<Member<'a>> {
    let rsg_namespace = rsg.metadata.namespace.as_deref().unwrap_or_default();
    let target = rsg
        .spec
        .target_resources
        .iter()
        .find(|t| t.name == resource_name)?;
    let kind =
        WorkloadKind::parse(&target.resource_ref.api_version, &target.resource_ref.kind).ok()?;
    Some(Member {
        namespace: target.resource_ref.namespace_or(rsg_namespace).to_string(),
        target,
        kind,
    })
}

impl Member<'_> {
    fn describe(&self) -> String {
        format!(
            "{} {}/{}",
            self.target.resource_ref.kind, self.namespace, self.target.resource_ref.name
        )
    }
}

/// Replicas a follower must have: leader × ratio, or `Err` with that product when it is over
/// [`MAX_FOLLOWER_REPLICAS`] (never saturated: the follower is reported and left alone).
pub fn follower_replicas(leader: i32, ratio: i32) -> Result<i32, i64> {
    let wanted = i64::from(leader.max(0)) * i64::from(ratio.max(1));
    match i32::try_from(wanted) {
        Ok(replicas) if replicas <= MAX_FOLLOWER_REPLICAS => Ok(replicas),
        _ => Err(wanted),
    }
}

fn problem_of(err: &AccessError) -> &'static str {
    match err {
        AccessError::NotServed { .. } => reason::TARGET_NOT_FOUND,
        e if e.is_forbidden() => reason::FORBIDDEN,
        _ => reason::API_ERROR,
    }
}

/// Reconciles one InplaceScaling RSG whose spec passed validation.
pub async fn reconcile(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    config: &LeaderFollowerConfig,
) -> Result<Duration, ReconcileError> {
    let mut problems: Vec<(&'static str, String)> = Vec::new();
    let previous = rsg.status.clone().unwrap_or_default();
    let Some(leader) = member(rsg, &config.leader.resource_name) else {
        return Ok(Duration::from_secs(300));
    };
    let mut applied = previous.leader.as_ref().and_then(|l| l.applied_replicas);
    let leader_object = match ctx
        .workloads
        .get(
            &leader.kind,
            &leader.namespace,
            &leader.target.resource_ref.name,
        )
        .await
    {
        Ok(Some(object)) => Some(object),
        Ok(None) => {
            problems.push((
                reason::TARGET_NOT_FOUND,
                format!("leader resource not found: {}", leader.describe()),
            ));
            None
        }
        Err(err) => {
            problems.push((
                problem_of(&err),
                format!("reading leader {}: {err}", leader.describe()),
            ));
            None
        }
    };
    let mut leader_replicas = leader_object.as_ref().map(spec_replicas);
    if let (Some(object), Some(wanted)) = (&leader_object, config.leader.replicas) {
        adopt(ctx, &leader, object).await;
        if applied != Some(wanted) {
            let patch = json!({"spec": {"replicas": wanted}});
            match ctx
                .workloads
                .merge_patch(
                    &leader.kind,
                    &leader.namespace,
                    &leader.target.resource_ref.name,
                    &patch,
                )
                .await
            {
                Ok(()) => {
                    ctx.event(
                        rsg,
                        false,
                        "ScaledLeader",
                        "Scale",
                        format!("set {} to leader.replicas {wanted}", leader.describe()),
                    )
                    .await;
                    applied = Some(wanted);
                    leader_replicas = Some(wanted);
                }
                Err(err) => problems.push((
                    problem_of(&err),
                    format!("patch leader replicas failed: {}: {err}", leader.describe()),
                )),
            }
        }
    } else if let Some(object) = &leader_object {
        adopt(ctx, &leader, object).await;
    }

    let mut followers = Vec::new();
    let mut changed = Vec::new();
    for entry in &config.follower {
        let Some(follower) = member(rsg, &entry.resource_name) else {
            continue;
        };
        let desired = match leader_replicas.map(|l| follower_replicas(l, entry.follow_ratio)) {
            Some(Err(wanted)) => {
                problems.push((
                    reason::REPLICAS_OVER_CAP,
                    format!(
                        "follower replicas over the cap: {} would need {} × {} = {wanted} replicas, more than {MAX_FOLLOWER_REPLICAS}; left as it is",
                        follower.describe(),
                        leader_replicas.unwrap_or_default(),
                        entry.follow_ratio
                    ),
                ));
                followers.push(FollowerStatus {
                    resource_name: entry.resource_name.clone(),
                    desired_replicas: None,
                    current_replicas: None,
                });
                continue;
            }
            Some(Ok(replicas)) => Some(replicas),
            None => None,
        };
        let mut status = FollowerStatus {
            resource_name: entry.resource_name.clone(),
            desired_replicas: desired,
            current_replicas: None,
        };
        let object = match ctx
            .workloads
            .get(
                &follower.kind,
                &follower.namespace,
                &follower.target.resource_ref.name,
            )
            .await
        {
            Ok(Some(object)) => object,
            Ok(None) => {
                let message = format!("follower resource not found: {}", follower.describe());
                problems.push((reason::TARGET_NOT_FOUND, message));
                followers.push(status);
                continue;
            }
            Err(err) => {
                problems.push((
                    problem_of(&err),
                    format!("reading follower {}: {err}", follower.describe()),
                ));
                followers.push(status);
                continue;
            }
        };
        adopt(ctx, &follower, &object).await;
        let current = spec_replicas(&object);
        status.current_replicas = Some(current);
        if let Some(desired) = desired.filter(|d| *d != current) {
            let patch = json!({"spec": {"replicas": desired}});
            match ctx
                .workloads
                .merge_patch(
                    &follower.kind,
                    &follower.namespace,
                    &follower.target.resource_ref.name,
                    &patch,
                )
                .await
            {
                Ok(()) => {
                    status.current_replicas = Some(desired);
                    changed.push(format!("{} {current} -> {desired}", follower.describe()));
                }
                Err(err) => {
                    let message = format!(
                        "patch follower replicas failed: {}: {err}",
                        follower.describe()
                    );
                    problems.push((problem_of(&err), message));
                }
            }
        }
        followers.push(status);
    }
    if !changed.is_empty() {
        info!(leader_replicas = ?leader_replicas, changes = ?changed, "followers scaled");
        ctx.event(
            rsg,
            false,
            "ScaledFollowers",
            "Scale",
            format!(
                "leader {} has {} replicas: {}",
                leader.describe(),
                leader_replicas.unwrap_or_default(),
                changed.join(", ")
            ),
        )
        .await;
    }

    let mut status = previous;
    status.observed_generation = rsg.metadata.generation;
    status.leader = Some(LeaderStatus {
        resource_name: config.leader.resource_name.clone(),
        observed_replicas: leader_replicas,
        applied_replicas: applied,
    });
    status.followers = followers;
    status.current_replicas = leader_replicas.unwrap_or_default();
    status.ready_replicas = 0;
    // Each problem is logged once when it appears ("follower resource not found: ...",
    // "patch follower replicas failed: ..."), naming the RSG and the follower.
    let messages: Vec<String> = problems.iter().map(|(_, m)| m.clone()).collect();
    for message in ctx.new_reports(rsg, &messages) {
        warn!(rsg = %rsg_key(rsg), "{message}");
    }
    let (ready, why, message) = match problems.first() {
        Some((why, _)) => (
            false,
            *why,
            problems
                .iter()
                .map(|(_, m)| m.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        None => (
            true,
            reason::RECONCILED,
            format!(
                "{} followers at their ratio of the leader's {} replicas",
                config.follower.len(),
                leader_replicas.unwrap_or_default()
            ),
        ),
    };
    let previous_message = find_condition(&status.conditions, READY).map(|(_, m)| m);
    if !ready && previous_message != Some(message.as_str()) {
        ctx.event(rsg, true, why, "Reconcile", message.clone())
            .await;
    }
    status.conditions = with_condition(
        status.conditions,
        READY,
        ready,
        why,
        message,
        rsg.metadata.generation,
    );
    ctx.write_status(rsg, &status).await?;
    let kinds: Vec<WorkloadKind> = std::iter::once(leader.kind.clone())
        .chain(
            config
                .follower
                .iter()
                .filter_map(|f| member(rsg, &f.resource_name))
                .map(|m| m.kind),
        )
        .collect();
    let unwatched = !ctx.watch_kinds(&kinds).await;
    // Every kind is watched (typed caches, or watches started on first use); kinds that
    // could not be watched and problems are re-checked periodically, a missing workload
    // (not watched) after 30 s, then as long again as it has been missing, up to 5 minutes.
    let rsg_ref = kube::runtime::reflector::ObjectRef::from_obj(rsg);
    let only_missing = !problems.is_empty()
        && problems
            .iter()
            .all(|(why, _)| *why == reason::TARGET_NOT_FOUND);
    if only_missing {
        return Ok(ctx.problem_backoff(&rsg_ref));
    }
    ctx.reset_problem_backoff(&rsg_ref);
    Ok(if unwatched || !problems.is_empty() {
        Duration::from_secs(10)
    } else {
        Duration::from_secs(300)
    })
}

/// Labels a leader or follower `rsg.io/managed` (metadata only) so its changes are watched.
async fn adopt(ctx: &Context, member: &Member<'_>, object: &serde_json::Value) {
    if label(object, LABEL_MANAGED).is_some() {
        return;
    }
    let patch = json!({"metadata": {"labels": {LABEL_MANAGED: "true"}}});
    if let Err(err) = ctx
        .workloads
        .merge_patch(
            &member.kind,
            &member.namespace,
            &member.target.resource_ref.name,
            &patch,
        )
        .await
    {
        warn!(workload = %member.describe(), error = %err, "could not label the workload; its changes are noticed on the periodic check only");
    }
}

#[cfg(test)]
mod tests {
    use super::follower_replicas;

    #[test]
    fn followers_are_leader_times_ratio() {
        assert_eq!(follower_replicas(3, 2), Ok(6));
        assert_eq!(follower_replicas(3, 1), Ok(3));
        assert_eq!(follower_replicas(0, 4), Ok(0));
        assert_eq!(follower_replicas(-1, 2), Ok(0));
        assert_eq!(follower_replicas(10, 1000), Ok(10_000));
    }

    #[test]
    fn followers_over_the_cap_are_an_error_not_a_saturated_value() {
        assert_eq!(follower_replicas(11, 1000), Err(11_000));
        assert_eq!(follower_replicas(i32::MAX, 2), Err(i64::from(i32::MAX) * 2));
    }
}
