//! The validating webhook for the `scale` subresource of RSGs.

use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use kube::core::DynamicObject;
use kube::runtime::reflector::ObjectRef;
use kube::Api;

use super::review::deny;
use super::AdmissionContext;
use crate::api::{ResourceScalingGroup, MAX_GROUP_REPLICAS, STRATEGY_GROUP_REPLICATION};

/// Rejects scaling an InplaceScaling RSG and group counts out of range.
pub async fn validate_scale(
    ctx: &AdmissionContext,
    request: &AdmissionRequest<DynamicObject>,
) -> AdmissionResponse {
    if request.operation != Operation::Update {
        return AdmissionResponse::from(request);
    }
    let namespace = request.namespace.clone().unwrap_or_default();
    let name = request.name.clone();
    let replicas = request
        .object
        .as_ref()
        .and_then(|scale| scale.data.pointer("/spec/replicas"))
        .and_then(serde_json::Value::as_i64);
    if let Some(replicas) = replicas.filter(|r| *r < 0 || *r > i64::from(MAX_GROUP_REPLICAS)) {
        return deny(
            request,
            422,
            format!(
                "Scale {name:?} is invalid: spec.replicas: Invalid value: \"{replicas}\": must be between 0 and {MAX_GROUP_REPLICAS}"
            ),
        );
    }
    let reference = ObjectRef::<ResourceScalingGroup>::new(&name).within(&namespace);
    let strategy = match ctx.stores.rsgs.get(&reference) {
        Some(rsg) => Some(rsg.spec.scaling_strategy.type_.clone()),
        None => match &ctx.client {
            Some(client) => {
                let api = Api::<ResourceScalingGroup>::namespaced(client.clone(), &namespace);
                let read = api.get_opt(&name);
                // Bounded like every live check: past it, the scale is allowed (the
                // controller still refuses a groupConfig on an InplaceScaling RSG).
                tokio::time::timeout(ctx.lookup_timeout, read)
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .flatten()
                    .map(|rsg| rsg.spec.scaling_strategy.type_)
            }
            None => None,
        },
    };
    match strategy {
        Some(strategy) if strategy != STRATEGY_GROUP_REPLICATION => {
            tracing::info!(%strategy, "denied scaling through the scale subresource");
            deny(
                request,
                422,
                format!(
                    "ResourceScalingGroup {namespace}/{name} uses the {strategy} strategy: the scale subresource applies to GroupReplication only (it sets the group count); scale the leader workload instead"
                ),
            )
        }
        _ => AdmissionResponse::from(request),
    }
}
