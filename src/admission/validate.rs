//! The validating webhook for ResourceScalingGroups.

use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use kube::core::DynamicObject;

use super::access_review::review_access;
use super::review::deny;
use super::{lookups, AdmissionContext};
use serde::Deserialize;

use crate::api::{ResourceScalingGroup, ResourceScalingGroupSpec};
use crate::boundary::{current_violations, ViolationKind};
use crate::validation::{
    exclusive_target_errors, invalid_object_message, validate_rsg, FieldError, FieldErrorKind,
};

/// The RSG in an admission request, read straight from its fields (no round trip through a
/// serialized copy of the whole object).
fn decode_rsg(object: &DynamicObject) -> Result<ResourceScalingGroup, serde_json::Error> {
    let spec = object.data.get("spec").unwrap_or(&serde_json::Value::Null);
    Ok(ResourceScalingGroup {
        metadata: object.metadata.clone(),
        spec: ResourceScalingGroupSpec::deserialize(spec)?,
        status: None,
    })
}

/// Validates a CREATE or UPDATE of an RSG: every rule, all problems in one answer.
pub async fn validate_rsg_request(
    ctx: &AdmissionContext,
    request: &AdmissionRequest<DynamicObject>,
) -> AdmissionResponse {
    if !matches!(request.operation, Operation::Create | Operation::Update) {
        return AdmissionResponse::from(request);
    }
    let Some(object) = &request.object else {
        return deny(request, 400, "the admission request carries no object");
    };
    let rsg = match decode_rsg(object) {
        Ok(rsg) => rsg,
        Err(err) => {
            return deny(
                request,
                400,
                format!("the object is not a valid ResourceScalingGroup: {err}"),
            )
        }
    };
    if request.operation == Operation::Update {
        let unchanged = request
            .old_object
            .as_ref()
            .and_then(|old| decode_rsg(old).ok())
            .is_some_and(|old| old.spec == rsg.spec);
        if unchanged {
            // Metadata-only updates (labels, finalizers) are never blocked.
            return AdmissionResponse::from(request);
        }
    }
    let namespace = request.namespace.clone().unwrap_or_default();
    let name = match (&rsg.metadata.name, &rsg.metadata.generate_name) {
        (Some(name), _) if !name.is_empty() => name.clone(),
        (_, Some(prefix)) => format!("{prefix}xxxxx"),
        _ => request.name.clone(),
    };
    let (mut errors, mut warnings) = validate_rsg(&name, &namespace, &rsg.spec);
    errors.extend(ctx.boundary.rsg_namespace_error(&namespace));
    if errors
        .iter()
        .any(|e| matches!(e.kind, FieldErrorKind::TooMany(..)))
    {
        // Over its caps, nothing else is looked at: the answer stays small and quick.
        let message = invalid_object_message("ResourceScalingGroup", &name, &errors);
        tracing::info!(problems = errors.len(), "denied an oversized spec");
        return deny(request, 422, message);
    }
    // The requester's permissions are verified first: what the other checks would tell
    // (other RSGs claiming a target, whether another namespace grants it) is told only to a
    // requester who may act on every target.
    let reviewing_client = ctx.client.as_ref().filter(|_| ctx.access_reviews);
    let mut access_errors = Vec::new();
    if let Some(client) = reviewing_client {
        let access = review_access(
            client,
            &ctx.lookup_cache,
            &request.user_info,
            &namespace,
            &rsg.spec,
            ctx.lookup_timeout,
        );
        match tokio::time::timeout(ctx.lookup_timeout, access).await {
            Ok(access) => {
                ctx.metrics.admission_api_calls.inc_by(access.api_calls as u64);
                access_errors = access.errors;
            }
            // Fails closed: a request whose permissions cannot be verified is refused.
            Err(_) => access_errors.push(FieldError::forbidden(
                "spec.targetResources",
                format!(
                    "could not verify the requester's permissions on the targets within {:?}; try again",
                    ctx.lookup_timeout
                ),
            )),
        }
    }
    let may_learn_about_targets = access_errors.is_empty();
    let grants = ctx.stores.grants_by_namespace();
    let grants_in = |ns: &str| grants.specs_in(ns);
    if may_learn_about_targets {
        errors.extend(exclusive_target_errors(
            &namespace,
            &name,
            &rsg.spec,
            |key| ctx.stores.counted_claims(key, &ctx.boundary, grants_in),
        ));
    }
    for violation in current_violations(
        ctx.client.as_ref(),
        &ctx.boundary,
        &grants,
        (&namespace, &name),
        &rsg.spec,
    )
    .await
    {
        match violation.kind {
            ViolationKind::ClosedNamespace => errors.push(violation.error),
            // Allowed: the target namespace's owners may grant it later.
            ViolationKind::NotGranted if may_learn_about_targets => warnings.push(format!(
                "{}: {}",
                violation.error.path, violation.error.detail
            )),
            ViolationKind::NotGranted => {}
        }
    }
    errors.extend(access_errors);
    // Live checks only for a spec that passed every other rule, the requester's permissions
    // included: nothing is read on behalf of someone who may not read it, and a spec refused
    // anyway costs the API server nothing more.
    let live_client = ctx
        .client
        .as_ref()
        .filter(|_| ctx.live_checks && errors.is_empty());
    if let Some(client) = live_client {
        let live = lookups::live_checks(
            client,
            &ctx.lookup_cache,
            &namespace,
            &name,
            &rsg.spec,
            ctx.boundary.allow_external_service_copies,
        );
        match tokio::time::timeout(ctx.lookup_timeout, live).await {
            Ok(found) => {
                ctx.metrics.admission_api_calls.inc_by(found.api_calls as u64);
                errors.extend(found.errors);
                warnings.extend(found.warnings);
            }
            Err(_) => warnings.push(format!(
                "the targets could not be checked against the cluster within {:?}; the controller reports problems in the RSG's status",
                ctx.lookup_timeout
            )),
        }
    }
    let mut response = if errors.is_empty() {
        tracing::debug!("allowed");
        AdmissionResponse::from(request)
    } else {
        let message = invalid_object_message("ResourceScalingGroup", &name, &errors);
        tracing::info!(problems = errors.len(), %message, "denied");
        deny(request, 422, message)
    };
    if !warnings.is_empty() {
        response.warnings = Some(warnings);
    }
    response
}
