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
    let (rsg, name) = match rsg_to_validate(request) {
        Ok(Some(found)) => found,
        Ok(None) => return AdmissionResponse::from(request),
        Err(denied) => return *denied,
    };
    let namespace = request.namespace.clone().unwrap_or_default();
    let mut findings = Findings::default();
    (findings.errors, findings.warnings) = validate_rsg(&name, &namespace, &rsg.spec);
    findings
        .errors
        .extend(ctx.boundary.rsg_namespace_error(&namespace));
    if findings
        .errors
        .iter()
        .any(|e| matches!(e.kind, FieldErrorKind::TooMany(..)))
    {
        // Over its caps, nothing else is looked at: the answer stays small and quick.
        let message = invalid_object_message("ResourceScalingGroup", &name, &findings.errors);
        tracing::info!(problems = findings.errors.len(), "denied an oversized spec");
        return deny(request, 422, message);
    }
    // The requester's permissions are verified first: what the other checks would tell
    // (other RSGs claiming a target, whether another namespace grants it) is told only to a
    // requester who may act on every target.
    let access_errors = requester_access_errors(ctx, request, &namespace, &rsg.spec).await;
    let may_learn_about_targets = access_errors.is_empty();
    boundary_findings(
        ctx,
        (&namespace, &name),
        &rsg.spec,
        may_learn_about_targets,
        &mut findings,
    )
    .await;
    findings.errors.extend(access_errors);
    // Live checks only for a spec that passed every other rule, the requester's permissions
    // included: nothing is read on behalf of someone who may not read it, and a spec refused
    // anyway costs the API server nothing more.
    if findings.errors.is_empty() {
        live_findings(ctx, (&namespace, &name), &rsg.spec, &mut findings).await;
    }
    answer(request, &name, findings)
}

/// What validation found: errors deny the request, warnings are shown to the requester.
#[derive(Default)]
struct Findings {
    errors: Vec<FieldError>,
    warnings: Vec<String>,
}

/// The RSG to validate and the name to speak of it by; `None` when the request is allowed
/// as it stands (not a CREATE or UPDATE, or an UPDATE that leaves the spec alone), or the
/// denial of an object that is not a readable RSG.
fn rsg_to_validate(
    request: &AdmissionRequest<DynamicObject>,
) -> Result<Option<(ResourceScalingGroup, String)>, Box<AdmissionResponse>> {
    if !matches!(request.operation, Operation::Create | Operation::Update) {
        return Ok(None);
    }
    let Some(object) = &request.object else {
        return Err(Box::new(deny(
            request,
            400,
            "the admission request carries no object",
        )));
    };
    let rsg = decode_rsg(object).map_err(|err| {
        Box::new(deny(
            request,
            400,
            format!("the object is not a valid ResourceScalingGroup: {err}"),
        ))
    })?;
    if request.operation == Operation::Update {
        let unchanged = request
            .old_object
            .as_ref()
            .and_then(|old| decode_rsg(old).ok())
            .is_some_and(|old| old.spec == rsg.spec);
        if unchanged {
            // Metadata-only updates (labels, finalizers) are never blocked.
            return Ok(None);
        }
    }
    let name = match (&rsg.metadata.name, &rsg.metadata.generate_name) {
        (Some(name), _) if !name.is_empty() => name.clone(),
        (_, Some(prefix)) => format!("{prefix}xxxxx"),
        _ => request.name.clone(),
    };
    Ok(Some((rsg, name)))
}

/// The targets the requester may not act on (by SubjectAccessReview, when enabled); a
/// review that does not answer in time refuses the request (fails closed).
async fn requester_access_errors(
    ctx: &AdmissionContext,
    request: &AdmissionRequest<DynamicObject>,
    namespace: &str,
    spec: &ResourceScalingGroupSpec,
) -> Vec<FieldError> {
    let Some(client) = ctx.client.as_ref().filter(|_| ctx.access_reviews) else {
        return Vec::new();
    };
    let access = review_access(
        client,
        &ctx.lookup_cache,
        &request.user_info,
        namespace,
        spec,
        ctx.lookup_timeout,
    );
    match tokio::time::timeout(ctx.lookup_timeout, access).await {
        Ok(access) => {
            ctx.metrics.admission_api_calls.inc_by(access.api_calls as u64);
            access.errors
        }
        Err(_) => vec![FieldError::forbidden(
            "spec.targetResources",
            format!(
                "could not verify the requester's permissions on the targets within {:?}; try again",
                ctx.lookup_timeout
            ),
        )],
    }
}

/// Claims by other RSGs and the target boundary. What other RSGs claim and whether another
/// namespace grants a target is told only to a requester who may act on every target.
async fn boundary_findings(
    ctx: &AdmissionContext,
    (namespace, name): (&str, &str),
    spec: &ResourceScalingGroupSpec,
    may_learn_about_targets: bool,
    findings: &mut Findings,
) {
    let grants = ctx.stores.grants_by_namespace();
    let grants_in = |ns: &str| grants.specs_in(ns);
    if may_learn_about_targets {
        findings
            .errors
            .extend(exclusive_target_errors(namespace, name, spec, |key| {
                ctx.stores.counted_claims(key, &ctx.boundary, grants_in)
            }));
    }
    let violations = current_violations(
        ctx.client.as_ref(),
        &ctx.boundary,
        &grants,
        (namespace, name),
        spec,
    )
    .await;
    for violation in violations {
        match violation.kind {
            ViolationKind::ClosedNamespace => findings.errors.push(violation.error),
            // Allowed: the target namespace's owners may grant it later.
            ViolationKind::NotGranted if may_learn_about_targets => findings.warnings.push(
                format!("{}: {}", violation.error.path, violation.error.detail),
            ),
            ViolationKind::NotGranted => {}
        }
    }
}

/// Checks of the targets against the cluster (when enabled); a check that does not answer
/// in time only warns, as the controller reports problems in the RSG's status.
async fn live_findings(
    ctx: &AdmissionContext,
    (namespace, name): (&str, &str),
    spec: &ResourceScalingGroupSpec,
    findings: &mut Findings,
) {
    let Some(client) = ctx.client.as_ref().filter(|_| ctx.live_checks) else {
        return;
    };
    let live = lookups::live_checks(
        (client, &ctx.lookup_cache, &ctx.stores),
        namespace,
        name,
        spec,
        ctx.boundary.allow_external_service_copies,
    );
    match tokio::time::timeout(ctx.lookup_timeout, live).await {
        Ok(found) => {
            ctx.metrics.admission_api_calls.inc_by(found.api_calls as u64);
            findings.errors.extend(found.errors);
            findings.warnings.extend(found.warnings);
        }
        Err(_) => findings.warnings.push(format!(
            "the targets could not be checked against the cluster within {:?}; the controller reports problems in the RSG's status",
            ctx.lookup_timeout
        )),
    }
}

/// Allows or denies (422, every error in one message), with the warnings.
fn answer(
    request: &AdmissionRequest<DynamicObject>,
    name: &str,
    findings: Findings,
) -> AdmissionResponse {
    let mut response = if findings.errors.is_empty() {
        tracing::debug!("allowed");
        AdmissionResponse::from(request)
    } else {
        let message = invalid_object_message("ResourceScalingGroup", name, &findings.errors);
        tracing::info!(problems = findings.errors.len(), %message, "denied");
        deny(request, 422, message)
    };
    if !findings.warnings.is_empty() {
        response.warnings = Some(findings.warnings);
    }
    response
}
