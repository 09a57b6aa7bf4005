//! InplaceScaling: followers are kept at `leader's spec.replicas × followRatio`.
//!
//! `leader.replicas`, when set, is applied to the leader only when that value in the RSG
//! changes (recorded in `status.leader.appliedReplicas`), so an HPA or `kubectl scale` on
//! the leader is not fought; followers follow whatever the leader's replicas are. Only
//! `spec.replicas` is ever written, with a merge patch: the workloads are the user's.
//!
//! A reconcile reads the leader and the followers, plans ([`plan`], pure) the leader first
//! and then the followers from the leader's replicas, applies each, and writes the status
//! built from what was done ([`status`]).

pub mod plan;
mod status;

use std::time::Duration;

use futures::future::BoxFuture;
use kube::runtime::reflector::ObjectRef;
use serde_json::json;
use tracing::{info, warn};

pub use plan::follower_replicas;

use crate::api::{
    FollowerStatus, LeaderFollowerConfig, ResourceScalingGroup, TargetResource, LABEL_MANAGED,
    STRATEGY_INPLACE_SCALING,
};
use crate::reconcile::{rsg_key, Context, Next, Problem, ReconcileError, RsgEvent, Strategy};
use crate::workload::{label, WorkloadKind};
use plan::{plan_follower, plan_leader, problem_of, Read};

/// The InplaceScaling strategy.
pub struct InplaceScaling;

impl Strategy for InplaceScaling {
    fn name(&self) -> &'static str {
        STRATEGY_INPLACE_SCALING
    }

    fn reconcile<'a>(
        &'a self,
        ctx: &'a Context,
        rsg: &'a ResourceScalingGroup,
    ) -> BoxFuture<'a, Result<Next, ReconcileError>> {
        Box::pin(async move {
            let Some(config) = rsg.spec.scaling_strategy.leader_follower_config.as_ref() else {
                return Ok(Next::OnChange);
            };
            reconcile(ctx, rsg, config).await.map(Next::After)
        })
    }
}

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

    fn name(&self) -> &str {
        &self.target.resource_ref.name
    }

    async fn read(&self, ctx: &Context) -> Read {
        ctx.workloads
            .get(&self.kind, &self.namespace, self.name())
            .await
    }

    /// Sets `spec.replicas` (the only field rsg writes on a leader or follower).
    async fn set_replicas(
        &self,
        ctx: &Context,
        replicas: i32,
    ) -> Result<(), crate::workload::AccessError> {
        let patch = json!({"spec": {"replicas": replicas}});
        ctx.workloads
            .merge_patch(&self.kind, &self.namespace, self.name(), &patch)
            .await
    }

    /// Labels it `rsg.io/managed` (metadata only) so its changes are watched.
    async fn adopt(&self, ctx: &Context, read: &Read) {
        let Ok(Some(object)) = read else {
            return;
        };
        if label(object, LABEL_MANAGED).is_some() {
            return;
        }
        let patch = json!({"metadata": {"labels": {LABEL_MANAGED: "true"}}});
        if let Err(err) = ctx
            .workloads
            .merge_patch(&self.kind, &self.namespace, self.name(), &patch)
            .await
        {
            warn!(workload = %self.describe(), error = %err, "could not label the workload; its changes are noticed on the periodic check only");
        }
    }
}

/// Reconciles one InplaceScaling RSG whose spec passed validation.
async fn reconcile(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    config: &LeaderFollowerConfig,
) -> Result<Duration, ReconcileError> {
    let Some(leader) = member(rsg, &config.leader.resource_name) else {
        return Ok(Duration::from_secs(300));
    };
    let mut problems: Vec<Problem> = Vec::new();
    let previous = rsg.status.clone().unwrap_or_default();
    let applied = previous.leader.as_ref().and_then(|l| l.applied_replicas);
    let (leader_replicas, applied) =
        scale_leader(ctx, rsg, &leader, config, applied, &mut problems).await;
    let followers =
        scale_followers(ctx, rsg, &leader, config, leader_replicas, &mut problems).await;

    // Each problem is logged once when it appears ("follower resource not found: ...",
    // "patch follower replicas failed: ..."), naming the RSG and the follower.
    let messages: Vec<String> = problems.iter().map(Problem::to_string).collect();
    for message in ctx.new_reports(rsg, &messages) {
        warn!(rsg = %rsg_key(rsg), "{message}");
    }
    let written = status::inplace_status(
        rsg,
        config,
        status::Outcome {
            leader_replicas,
            applied,
            followers,
            problems: &problems,
        },
    );
    if let Some((why, message)) = status::new_problem(&previous, &written, &problems) {
        ctx.event(rsg, RsgEvent::Problem(why), message);
    }
    ctx.write_status(rsg, &written).await?;
    Ok(requeue_after(ctx, rsg, &leader, config, &problems).await)
}

/// Reads, plans and applies the leader: its replicas as they are now and the
/// `leader.replicas` value applied so far.
async fn scale_leader(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    leader: &Member<'_>,
    config: &LeaderFollowerConfig,
    mut applied: Option<i32>,
    problems: &mut Vec<Problem>,
) -> (Option<i32>, Option<i32>) {
    let read = leader.read(ctx).await;
    let plan = plan_leader(&read, config.leader.replicas, applied, &leader.describe());
    problems.extend(plan.problem.clone());
    leader.adopt(ctx, &read).await;
    let mut replicas = plan.observed;
    if let Some(wanted) = plan.set_replicas {
        match leader.set_replicas(ctx, wanted).await {
            Ok(()) => {
                let note = format!("set {} to leader.replicas {wanted}", leader.describe());
                ctx.event(rsg, RsgEvent::ScaledLeader, note);
                applied = Some(wanted);
                replicas = Some(wanted);
            }
            Err(err) => problems.push(problem_of(
                &err,
                format!("patch leader replicas failed: {}", leader.describe()),
            )),
        }
    }
    (replicas, applied)
}

/// Reads, plans and applies each follower from the leader's replicas as they are now, with
/// one Event for the followers changed.
async fn scale_followers(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    leader: &Member<'_>,
    config: &LeaderFollowerConfig,
    leader_replicas: Option<i32>,
    problems: &mut Vec<Problem>,
) -> Vec<FollowerStatus> {
    let mut followers = Vec::new();
    let mut changed = Vec::new();
    for entry in &config.follower {
        let Some(follower) = member(rsg, &entry.resource_name) else {
            continue;
        };
        let describe = follower.describe();
        let over_cap =
            leader_replicas.is_some_and(|l| follower_replicas(l, entry.follow_ratio).is_err());
        // A follower over the cap is left alone: not even read.
        let read = if over_cap {
            Ok(None)
        } else {
            follower.read(ctx).await
        };
        let mut planned = plan_follower(
            &entry.resource_name,
            entry.follow_ratio,
            &describe,
            &read,
            leader_replicas,
        );
        problems.extend(planned.problem.clone());
        follower.adopt(ctx, &read).await;
        if let Some((from, to)) = planned.patch {
            match follower.set_replicas(ctx, to).await {
                Ok(()) => changed.push(format!("{describe} {from} -> {to}")),
                Err(err) => {
                    planned.status.current_replicas = Some(from);
                    let doing = format!("patch follower replicas failed: {describe}");
                    problems.push(problem_of(&err, doing));
                }
            }
        }
        followers.push(planned.status);
    }
    if !changed.is_empty() {
        info!(leader_replicas = ?leader_replicas, changes = ?changed, "followers scaled");
        let note = format!(
            "leader {} has {} replicas: {}",
            leader.describe(),
            leader_replicas.unwrap_or_default(),
            changed.join(", ")
        );
        ctx.event(rsg, RsgEvent::ScaledFollowers, note);
    }
    followers
}

/// When to look again. Every kind is watched (typed caches, or watches started on first
/// use); kinds that could not be watched and problems are re-checked periodically, a
/// missing workload (not watched) after 30 s, then as long again as it has been missing, up
/// to 5 minutes.
async fn requeue_after(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    leader: &Member<'_>,
    config: &LeaderFollowerConfig,
    problems: &[Problem],
) -> Duration {
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
    let rsg_ref = ObjectRef::from_obj(rsg);
    let only_missing = !problems.is_empty()
        && problems
            .iter()
            .all(|p| matches!(p, Problem::TargetNotFound(_)));
    if only_missing {
        return ctx.problem_backoff(&rsg_ref);
    }
    ctx.reset_problem_backoff(&rsg_ref);
    if unwatched || !problems.is_empty() {
        Duration::from_secs(10)
    } else {
        Duration::from_secs(300)
    }
}
