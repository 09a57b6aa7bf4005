//! The mutating and validating admission webhooks.

mod access_review;
mod lookup_cache;
mod lookups;
mod mutate;
mod record;
mod review;
mod scale;
mod validate;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use kube::core::admission::{AdmissionRequest, AdmissionResponse};
use kube::core::DynamicObject;
use kube::Client;
use tracing::Instrument;

pub use lookup_cache::{LookupCache, LookupKey, LookupValue};
pub use lookups::{live_checks, LiveFindings};
pub use mutate::defaults_patch;
pub use review::{decode, ReviewError};

use crate::api::{ResourceScalingGroup, MAX_TARGETS};
use crate::authorship::AdmissionKey;
use crate::boundary::TargetBoundary;
use crate::cache::Stores;
use crate::metrics::{AdmissionLabels, Metrics, WebhookLabels};

/// What the webhooks need: the shared cache, a client for live checks, metrics.
pub struct AdmissionContext {
    /// The shared informer cache.
    pub stores: Stores,
    /// Client for reading the cluster; `None` in tests without an API server.
    pub client: Option<Client>,
    /// Whether validation also reads targets, Services and pod references from the API.
    pub live_checks: bool,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Upper bound on the live checks of one request.
    pub lookup_timeout: Duration,
    /// What live checks read lately, shared by all requests.
    pub lookup_cache: LookupCache,
    /// Whether the requester's own RBAC is checked with SubjectAccessReviews (needs `client`).
    pub access_reviews: bool,
    /// Where targets may live.
    pub boundary: TargetBoundary,
    /// Signs the admission record of every RSG the mutating webhook admits (none: no record).
    pub admission_key: Option<Arc<AdmissionKey>>,
}

/// The two webhooks.
#[derive(Clone, Copy, Debug)]
enum Webhook {
    Mutate,
    Validate,
}

impl Webhook {
    fn name(self) -> &'static str {
        match self {
            Self::Mutate => "mutate",
            Self::Validate => "validate",
        }
    }
}

/// What a request is about.
enum Subject {
    Rsg,
    RsgScale,
    Other(String),
}

fn subject_of(request: &AdmissionRequest<DynamicObject>) -> Subject {
    let group = <ResourceScalingGroup as kube::Resource>::group(&());
    let plural = <ResourceScalingGroup as kube::Resource>::plural(&());
    let resource = &request.resource;
    if resource.group != group || resource.resource != plural {
        return Subject::Other(format!("{}/{}", resource.group, resource.resource));
    }
    match request.sub_resource.as_deref() {
        None | Some("") => Subject::Rsg,
        Some("scale") => Subject::RsgScale,
        Some(other) => Subject::Other(format!("{}/{}/{other}", resource.group, resource.resource)),
    }
}

/// `POST /mutate`.
pub async fn mutate_handler(State(ctx): State<Arc<AdmissionContext>>, body: Bytes) -> Response {
    handle(ctx, Webhook::Mutate, body).await
}

/// `POST /validate`.
pub async fn validate_handler(State(ctx): State<Arc<AdmissionContext>>, body: Bytes) -> Response {
    handle(ctx, Webhook::Validate, body).await
}

async fn handle(ctx: Arc<AdmissionContext>, webhook: Webhook, body: Bytes) -> Response {
    let started = Instant::now();
    let (operation, result, response) = match decode(&body) {
        Err(err) => {
            tracing::warn!(webhook = webhook.name(), error = %err, "rejected an unreadable admission request");
            ("unknown".to_string(), "error", err.into_response())
        }
        Ok(request) => {
            let operation = format!("{:?}", request.operation).to_uppercase();
            let span = tracing::info_span!(
                "admission",
                webhook = webhook.name(),
                operation = %operation,
                namespace = request.namespace.as_deref().unwrap_or_default(),
                name = %request.name,
                uid = %request.uid,
            );
            let response = answer(&ctx, webhook, &request).instrument(span).await;
            let result = if response.allowed {
                "allowed"
            } else {
                "denied"
            };
            (operation, result, review::respond(response))
        }
    };
    ctx.metrics
        .admission_requests
        .get_or_create(&AdmissionLabels {
            webhook: webhook.name(),
            operation,
            result,
        })
        .inc();
    ctx.metrics
        .admission_duration
        .get_or_create(&WebhookLabels {
            webhook: webhook.name(),
        })
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn answer(
    ctx: &AdmissionContext,
    webhook: Webhook,
    request: &AdmissionRequest<DynamicObject>,
) -> AdmissionResponse {
    match (subject_of(request), webhook) {
        (Subject::Other(what), _) => {
            tracing::warn!(resource = %what, "admission request for a resource rsg does not handle");
            review::deny(
                request,
                400,
                format!("rsg admission webhooks handle resourcescalinggroups only, not {what}; check the webhook configuration's rules"),
            )
        }
        (Subject::RsgScale, Webhook::Validate) => scale::validate_scale(ctx, request).await,
        (Subject::RsgScale, Webhook::Mutate) => AdmissionResponse::from(request),
        (Subject::Rsg, Webhook::Validate) => validate::validate_rsg_request(ctx, request).await,
        (Subject::Rsg, Webhook::Mutate) => mutate_response(ctx, request),
    }
}

fn mutate_response(
    ctx: &AdmissionContext,
    request: &AdmissionRequest<DynamicObject>,
) -> AdmissionResponse {
    let response = AdmissionResponse::from(request);
    let Some(object) = &request.object else {
        return response;
    };
    let Ok(value) = serde_json::to_value(object) else {
        return response;
    };
    let targets = value
        .pointer("/spec/targetResources")
        .and_then(serde_json::Value::as_array)
        .map_or(0, Vec::len);
    if targets > MAX_TARGETS {
        // The schema and the validating webhook refuse it; no patch is built for it.
        return response;
    }
    let name = object.metadata.name.clone().unwrap_or_default();
    let namespace = request.namespace.clone().unwrap_or_default();
    let mut ops = defaults_patch(&value, &namespace, &name);
    let defaults = ops.len();
    if let Some(key) = &ctx.admission_key {
        ops.extend(record::record_patch(key, request, &value, &ops));
    }
    if ops.is_empty() {
        return response;
    }
    tracing::debug!(defaults, record = ops.len() > defaults, "applying defaults");
    match response.with_patch(json_patch::Patch(ops)) {
        Ok(patched) => patched,
        Err(err) => {
            tracing::warn!(error = %err, "could not serialize the defaults patch; allowing without defaults");
            AdmissionResponse::from(request)
        }
    }
}
