//! The reconcile loop over RSGs, driven by the shared cache.
//!
//! Every reconcile first re-checks the spec with the webhook's own rules and the target
//! boundary (the webhook may be bypassed), then that admission vouches for the spec and its
//! author still holds the rights it uses, then hands the RSG to its strategy.

mod authorize;
mod fair_share;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::controller::{Action, Config, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::ResourceExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

use crate::api::ResourceScalingGroup;
use crate::boundary::current_violations;
use crate::cache::{retyped, RsgName};
use crate::group_replication::GroupReplication;
use crate::inplace_scaling::InplaceScaling;
use crate::reconcile::conditions::reason;
use crate::reconcile::{rsg_key, Context, Next, ReconcileError, Strategy};
use crate::validation::{exclusive_target_errors, invalid_object_message, validate_rsg};
use fair_share::{retry_after_deferral, NamespaceShares};

/// The strategies, each serving the RSGs whose `scalingStrategy.type` is its name.
const STRATEGIES: [&dyn Strategy; 2] = [&GroupReplication, &InplaceScaling];

/// How many RSGs are reconciled at once.
const CONCURRENCY: u16 = 16;

/// How many of them one namespace may always hold (see [`fair_share`]).
const PER_NAMESPACE: usize = 8;

/// How many workers a namespace past its share leaves idle for the others.
const RESERVE: usize = 4;

/// Runs the controller until `shutdown` fires, fed by the shared cache's reconcile feed.
/// It starts once every cache has synced (see [`crate::cache::Stores::wait_synced`]), so that
/// the first reconciles see complete caches and nothing waits on a store's readiness twice.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) {
    tokio::select! {
        _ = ctx.stores.wait_synced() => {}
        _ = shutdown.cancelled() => return,
    }
    // Another replica may have led and written statuses since this one last did.
    ctx.memory.forget_written();
    let mut requests = ctx.stores.feed.open(&ctx.stores.rsg_names);
    let request_stream = futures::stream::poll_fn(move |cx| requests.poll_recv(cx))
        .map(|rsg: ObjectRef<ResourceScalingGroup>| retyped::<_, RsgName>(&rsg));
    let reader = ctx.stores.rsg_names.clone();
    tokio::spawn(forget_deleted_rsgs(ctx.clone(), shutdown.clone()));
    let feed_ctx = ctx.clone();
    let shares = Arc::new(NamespaceShares::new(
        usize::from(CONCURRENCY),
        PER_NAMESPACE,
        RESERVE,
        Box::new(move |namespace, name| {
            feed_ctx
                .stores
                .feed
                .offer(ObjectRef::new(name).within(namespace))
        }),
    ));
    // Every request, the RSGs' own changes included, arrives through the feed.
    Controller::for_shared_stream(futures::stream::pending(), reader)
        .reconcile_on(request_stream)
        .with_config(Config::default().concurrency(CONCURRENCY))
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(
            move |rsg, ctx| reconcile_in_turn(rsg, ctx, shares.clone()),
            error_policy,
            ctx.clone(),
        )
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(error = %err, "reconcile did not complete");
            }
        })
        .await;
    ctx.stores.feed.close();
    info!("controller stopped");
}

/// How often what is remembered about deleted RSGs is swept even without a delete event
/// (a watch that restarted after a gap reports no deletes for it).
const FORGET_INTERVAL: Duration = Duration::from_secs(60);

/// After a sweep woken by a delete, how long the next waits: deleting many RSGs at once
/// costs one sweep per second, not one per RSG.
const FORGET_DEBOUNCE: Duration = Duration::from_secs(1);

/// Drops what the context remembers about RSGs that no longer exist, when their delete
/// events arrive and every minute, so per-RSG state does not grow with every RSG ever made.
async fn forget_deleted_rsgs(ctx: Arc<Context>, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(FORGET_INTERVAL);
    loop {
        let woken_by_delete = tokio::select! {
            _ = ticker.tick() => false,
            _ = ctx.stores.rsg_deleted.notified() => true,
            _ = shutdown.cancelled() => return,
        };
        let forgotten = ctx
            .memory
            .forget_gone(|key| ctx.stores.rsg_names.get(&retyped(key)).is_some());
        if forgotten > 0 {
            debug!(forgotten, "dropped the state of deleted RSGs");
        }
        if woken_by_delete {
            tokio::select! {
                _ = tokio::time::sleep(FORGET_DEBOUNCE) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

/// How long a stopping controller waits for its queued Events to be written.
const EVENT_FLUSH_LIMIT: Duration = Duration::from_secs(5);

/// Runs the controller whenever `leading` is true, until `shutdown` fires; returns once the
/// controller has stopped, so the Lease can be released after the last write.
///
/// On shutdown the reconciles in flight finish and their queued Events are written (for at
/// most [`EVENT_FLUSH_LIMIT`]) while this replica still holds the Lease. When the
/// Lease is lost they are aborted at once: another replica may lead soon, and no write of this
/// one may follow.
pub async fn run_while_leading(
    ctx: Arc<Context>,
    mut leading: watch::Receiver<bool>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            changed = leading.wait_for(|leads| *leads) => if changed.is_err() { return },
            _ = shutdown.cancelled() => return,
        }
        ctx.metrics.leader.set(1);
        let term = shutdown.child_token();
        let controller = tokio::spawn(run(ctx.clone(), term.clone()));
        let lost = tokio::select! {
            _ = leading.wait_for(|leads| !*leads) => true,
            _ = shutdown.cancelled() => false,
        };
        if lost {
            controller.abort();
            // Queued Events are writes too: none may follow the loss.
            ctx.events.fence();
            ctx.stores.feed.close();
            warn!("Lease lost: reconciles in flight aborted");
        } else {
            term.cancel();
        }
        match controller.await {
            Err(err) if !err.is_cancelled() => {
                warn!(error = %err, "controller task ended abnormally")
            }
            _ => {}
        }
        if !lost {
            // The last reconciles' Events are written while this replica still holds the Lease.
            if tokio::time::timeout(EVENT_FLUSH_LIMIT, ctx.events.flush())
                .await
                .is_err()
            {
                warn!(limit = ?EVENT_FLUSH_LIMIT, "Events still queued at shutdown were not all written");
            }
        }
        ctx.metrics.leader.set(0);
        if shutdown.is_cancelled() {
            return;
        }
    }
}

fn error_policy(rsg: Arc<RsgName>, err: &ReconcileError, ctx: Arc<Context>) -> Action {
    let reference = ObjectRef::from_obj(rsg.as_ref());
    let delay = ctx.next_backoff(&retyped(&reference));
    warn!(rsg = %rsg_key(rsg.as_ref()), action = err.action(), error = %err, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Reconciles the RSG `rsg` names when its namespace has a free share of the workers; else
/// it waits in its namespace's line, woken when one of that namespace's reconciles ends, and
/// the worker is left to other namespaces. The RSG is read whole from the cache here; one
/// gone since it was queued needs nothing.
async fn reconcile_in_turn(
    rsg: Arc<RsgName>,
    ctx: Arc<Context>,
    shares: Arc<NamespaceShares>,
) -> Result<Action, ReconcileError> {
    let (namespace, name) = (rsg.namespace().unwrap_or_default(), rsg.name_any());
    let Some(_turn) = shares.try_enter(&namespace, &name) else {
        ctx.metrics.reconciles_deferred.inc();
        return Ok(Action::requeue(retry_after_deferral(&namespace, &name)));
    };
    let Some(rsg) = ctx.stores.rsg(&namespace, &name) else {
        return Ok(Action::await_change());
    };
    reconcile(rsg, ctx).await
}

async fn reconcile(
    rsg: Arc<ResourceScalingGroup>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let span = tracing::info_span!("reconcile", namespace = %rsg.namespace().unwrap_or_default(), name = %rsg.name_any());
    async move {
        if rsg.metadata.deletion_timestamp.is_some() {
            return Ok(Action::await_change());
        }
        let started = std::time::Instant::now();
        let rsg = ctx.with_newest_status(&rsg);
        let result = reconcile_strategy(&rsg, &ctx).await;
        ctx.metrics.observe_reconcile(
            &rsg.spec.scaling_strategy.type_,
            started.elapsed(),
            result.is_ok(),
        );
        match &result {
            Ok(action) => {
                debug!(next = ?action, "reconcile done");
                ctx.reset_backoff(&ObjectRef::from_obj(&rsg))
            }
            Err(err) => {
                let message = format!("retrying after an API error: {err}");
                if let Err(status_err) = ctx
                    .write_ready(&rsg, false, reason::API_ERROR, message)
                    .await
                {
                    warn!(error = %status_err, "could not record the error in status");
                }
            }
        }
        result
    }
    .instrument(span)
    .await
}

async fn reconcile_strategy(
    rsg: &ResourceScalingGroup,
    ctx: &Context,
) -> Result<Action, ReconcileError> {
    let namespace = rsg.namespace().unwrap_or_default();
    let name = rsg.name_any();
    let (errors, _) = validate_rsg(&name, &namespace, &rsg.spec);
    if !errors.is_empty() {
        let message = invalid_object_message("ResourceScalingGroup", &name, &errors);
        ctx.write_ready(rsg, false, reason::INVALID_SPEC, message)
            .await?;
        return Ok(Action::await_change());
    }
    let grants = ctx.stores.grants_by_namespace();
    let grants_in = |ns: &str| grants.specs_in(ns);
    let violations = current_violations(
        Some(&ctx.client),
        &ctx.boundary,
        &grants,
        (&namespace, &name),
        &rsg.spec,
    )
    .await;
    if !violations.is_empty() {
        // Nothing outside the boundary is read, copied, labelled or scaled; the message
        // comes from the spec alone, so it tells nothing about the target namespaces.
        let message = violations
            .iter()
            .map(|v| v.error.to_string())
            .collect::<Vec<_>>()
            .join("; ");
        for message in ctx.new_reports(rsg, std::slice::from_ref(&message)) {
            warn!(rsg = %rsg_key(rsg), "target not allowed: {message}");
        }
        ctx.write_ready(rsg, false, reason::TARGET_NOT_ALLOWED, message)
            .await?;
        // Grants are watched; namespace labels (the operator's selector) are re-read.
        return Ok(match ctx.boundary.namespace_selector {
            Some(_) => Action::requeue(Duration::from_secs(60)),
            None => Action::await_change(),
        });
    }
    let recheck = match &ctx.authorship {
        None => None,
        Some(authorship) => match authorize::authorize(ctx, authorship, rsg).await? {
            Ok(recheck_in) => Some(recheck_in),
            Err(action) => return Ok(action),
        },
    };
    let duplicates = exclusive_target_errors(&namespace, &name, &rsg.spec, |key| {
        ctx.stores
            .counted_claims(key, &ctx.boundary, grants_in)
            .into_iter()
            .filter(|claim| claim_blocks(ctx, rsg, &claim.rsg_namespace, &claim.rsg_name))
            .collect()
    });
    if !duplicates.is_empty() {
        let message = duplicates
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        ctx.write_ready(rsg, false, reason::DUPLICATE_TARGET, message)
            .await?;
        return Ok(Action::requeue(Duration::from_secs(60)));
    }
    let type_ = rsg.spec.scaling_strategy.type_.as_str();
    let Some(strategy) = STRATEGIES.iter().find(|s| s.name() == type_) else {
        return Ok(Action::await_change());
    };
    // The author's rights are re-checked when their answers expire, even if nothing changes.
    Ok(match (strategy.reconcile(ctx, rsg).await?, recheck) {
        (Next::After(delay), Some(recheck)) => Action::requeue(delay.min(recheck)),
        (Next::After(delay), None) => Action::requeue(delay),
        (Next::OnChange, Some(recheck)) => Action::requeue(recheck),
        (Next::OnChange, None) => Action::await_change(),
    })
}

/// Whether another RSG's claim keeps the workload from `rsg`: it came first (older, or same
/// age and smaller name) and, when records are required, admission vouched for it.
fn claim_blocks(ctx: &Context, rsg: &ResourceScalingGroup, namespace: &str, name: &str) -> bool {
    let Some(other) = ctx.stores.rsg(namespace, name) else {
        return false;
    };
    let key = |r: &ResourceScalingGroup| {
        (
            r.metadata.creation_timestamp.clone().map(|t| t.0),
            r.namespace(),
            r.name_any(),
        )
    };
    key(other.as_ref()) < key(rsg)
        && ctx
            .authorship
            .as_ref()
            .is_none_or(|authorship| authorship.is_admitted(&other))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::mock_api::{self, status};
    use k8s_openapi::api::core::v1::ObjectReference;
    use kube::runtime::events::{Event, EventType};

    #[tokio::test]
    async fn events_queued_at_shutdown_are_written_before_the_controller_returns() {
        let (ctx, recorded) = mock_api::context(|_| status(404, "NotFound"));
        recorded.delay_events(Duration::from_millis(100));
        let ctx = Arc::new(ctx);
        let (_leading, leading_changes) = watch::channel(true);
        let shutdown = CancellationToken::new();
        let controller = tokio::spawn(run_while_leading(
            ctx.clone(),
            leading_changes,
            shutdown.clone(),
        ));
        // Events are queued by reconciles, which run only while the controller leads.
        while ctx.metrics.leader.get() != 1 {
            tokio::task::yield_now().await;
        }
        let about = ObjectReference {
            namespace: Some("team".into()),
            name: Some("g".into()),
            ..ObjectReference::default()
        };
        for reason in ["First", "Second", "Third"] {
            let event = Event {
                type_: EventType::Normal,
                reason: reason.into(),
                note: None,
                action: "Test".into(),
                secondary: None,
            };
            ctx.events.publish(event, about.clone());
        }
        shutdown.cancel();
        controller.await.unwrap();
        assert_eq!(recorded.event_reasons(), ["First", "Second", "Third"]);
    }
}
