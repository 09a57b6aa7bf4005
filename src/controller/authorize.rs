//! The controller's use of authorship (see [`crate::authorship`]): before anything is read
//! or written for an RSG, its admission record must verify and its recorded author must
//! still hold the rights the RSG uses; otherwise the RSG says why and nothing else happens.

use std::time::Duration;

use kube::core::ApiResource;
use kube::runtime::controller::Action;
use tracing::warn;

use crate::api::ResourceScalingGroup;
use crate::authorship::{Authorization, Authorship};
use crate::reconcile::conditions::reason;
use crate::reconcile::{rsg_key, Context, ReconcileError, RsgEvent};
use crate::workload::WorkloadKind;

/// After a review could not be made, how soon it is tried again.
const UNVERIFIED_RETRY: Duration = Duration::from_secs(30);
/// The shortest wait before a re-check (an answer just expiring would otherwise requeue at once).
const MIN_RECHECK: Duration = Duration::from_secs(1);

/// The API resource of each target (discovery, else the kind's guessed plural, which fails
/// closed); `None` for a kind rsg does not know (validation refuses those).
async fn target_resources(ctx: &Context, rsg: &ResourceScalingGroup) -> Vec<Option<ApiResource>> {
    let mut resources = Vec::with_capacity(rsg.spec.target_resources.len());
    for target in &rsg.spec.target_resources {
        let reference = &target.resource_ref;
        let resource = match WorkloadKind::parse(&reference.api_version, &reference.kind) {
            Err(_) => None,
            Ok(kind) => Some(
                ctx.workloads
                    .api_resource(&kind)
                    .await
                    .unwrap_or_else(|_| ApiResource::from_gvk(&kind.gvk())),
            ),
        };
        resources.push(resource);
    }
    resources
}

/// `Ok(Ok(recheck_in))` when rsg may act for `rsg` (the author is due for a re-check within
/// `recheck_in`), `Ok(Err(action))` when it may not (the RSG's status says why).
pub async fn authorize(
    ctx: &Context,
    authorship: &Authorship,
    rsg: &ResourceScalingGroup,
) -> Result<Result<Duration, Action>, ReconcileError> {
    let resources = target_resources(ctx, rsg).await;
    let verdict = authorship
        .authorize(&ctx.client, rsg, |i| resources.get(i).cloned().flatten())
        .await;
    let interval = authorship.recheck_interval();
    let (reason, message, next) = match verdict {
        Authorization::Granted { recheck_in } => return Ok(Ok(recheck_in.max(MIN_RECHECK))),
        Authorization::NotAdmitted(err) => (
            reason::ADMISSION_NOT_VERIFIED,
            format!("rsg does not act on this RSG: {err}"),
            // Any change through the webhook writes a new record, and that is a change.
            Action::await_change(),
        ),
        Authorization::AuthorDenied { author, missing } => (
            reason::AUTHOR_NOT_ALLOWED,
            format!(
                "rsg does not act for {:?}, the author of this RSG's spec, who may no longer do what it asks: {}; rights are re-checked every {}s, or apply the RSG again as a user who has them",
                author.username.unwrap_or_default(),
                missing.join("; "),
                interval.as_secs()
            ),
            Action::requeue(interval.max(MIN_RECHECK)),
        ),
        Authorization::Unverified(why) => (
            reason::AUTHOR_NOT_ALLOWED,
            format!("rsg does not act on this RSG until its author's rights are verified: {why}; retrying"),
            Action::requeue(UNVERIFIED_RETRY),
        ),
    };
    for note in ctx.new_reports(rsg, std::slice::from_ref(&message)) {
        warn!(rsg = %rsg_key(rsg), reason, "not acting: {note}");
        ctx.event(rsg, RsgEvent::NotAuthorized(reason), note.to_string());
    }
    ctx.write_ready(rsg, false, reason, message).await?;
    Ok(Err(next))
}
