//! The validating webhook for ResourceScalingGroups.

use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use kube::core::DynamicObject;

use super::review::deny;
use super::{lookups, AdmissionContext};
use serde::Deserialize;

use crate::api::{ResourceScalingGroup, ResourceScalingGroupSpec};
use crate::validation::{exclusive_target_errors, invalid_object_message, validate_rsg};

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
    errors.extend(exclusive_target_errors(
        &namespace,
        &name,
        &rsg.spec,
        |key| ctx.stores.target_index.claims_on(key),
    ));
    // Live checks only for a spec that passed every static rule: a spec refused anyway
    // costs the API server nothing.
    let live_client = ctx
        .client
        .as_ref()
        .filter(|_| ctx.live_checks && errors.is_empty());
    if let Some(client) = live_client {
        let live = lookups::live_checks(client, &ctx.lookup_cache, &namespace, &name, &rsg.spec);
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
