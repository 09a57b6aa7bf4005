//! The HTTP handlers driven directly (no TLS, no apiserver) from AdmissionReview fixtures.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use base64::Engine;
use http_body_util::BodyExt;
use kube::runtime::watcher::Event;
use rsg::admission::{AdmissionContext, LookupCache};
use rsg::api::ResourceScalingGroup;
use rsg::cache::{DetachedFeeder, Stores};
use rsg::certs::CertStore;
use rsg::metrics::Metrics;
use rsg::server::{router, Readiness, RequestLimits, ServingLimits};
use serde_json::Value;
use tower::ServiceExt;

const BODY_LIMIT: usize = 64 * 1024;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/admission/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

fn app() -> (Router, DetachedFeeder) {
    app_with(&ServingLimits::default())
}

fn app_with(limits: &ServingLimits) -> (Router, DetachedFeeder) {
    app_with_body_limit(limits, BODY_LIMIT)
}

fn app_with_body_limit(limits: &ServingLimits, body_limit: usize) -> (Router, DetachedFeeder) {
    let (stores, feeder) = Stores::detached();
    let metrics = Arc::new(Metrics::default());
    let admission = Arc::new(AdmissionContext {
        stores: stores.clone(),
        client: None,
        live_checks: false,
        metrics: metrics.clone(),
        lookup_timeout: Duration::from_secs(1),
        lookup_cache: LookupCache::new(Duration::from_secs(5), 64),
        access_reviews: false,
        boundary: rsg::boundary::TargetBoundary {
            own_namespace: Some("rsg-system".into()),
            ..Default::default()
        },
        admission_key: None,
    });
    let certs = Arc::new(CertStore::new(
        "/nonexistent",
        Arc::new(rustls::crypto::ring::default_provider()),
    ));
    (
        router(
            admission,
            Readiness::new(stores, certs),
            metrics.clone(),
            body_limit,
            RequestLimits::new(limits, metrics),
        ),
        feeder,
    )
}

async fn post(app: &Router, path: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

#[tokio::test]
async fn valid_create_is_allowed_with_warnings() {
    let (app, _) = app();
    let (status, review) = post(&app, "/validate", fixture("create-valid.json")).await;
    assert_eq!(status, StatusCode::OK);
    let response = &review["response"];
    assert_eq!(response["uid"], "0b9d2f3c-0000-4000-8000-000000000001");
    assert_eq!(response["allowed"], true);
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
    let warnings = response["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0]
        .as_str()
        .unwrap()
        .contains(r#"will be created in namespace "scaling-system""#));
    // Another namespace's workload is allowed, and the user learns what rsg waits for.
    assert_eq!(
        warnings[1],
        r#"spec.targetResources[0].resourceRef.namespace: no ResourceScalingGroupGrant in namespace "production" admits RSG "llm-pd-group" of namespace "scaling-system" to Deployment llm-prefill; rsg acts on it once one does"#
    );
}

#[tokio::test]
async fn invalid_create_is_denied_with_every_problem() {
    let (app, _) = app();
    let (status, review) = post(&app, "/validate", fixture("create-invalid.json")).await;
    assert_eq!(status, StatusCode::OK);
    let response = &review["response"];
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 422);
    assert_eq!(
        response["status"]["message"],
        r#"ResourceScalingGroup "llm-pd-group" is invalid: [spec.targetResources[1].name: Duplicate value: "prefill": already used by spec.targetResources[0], spec.scalingStrategy.groupConfig.scaleDown.metric.type: Unsupported value: "guage": supported values: "Counter", "Gauge", "Histogram"]"#
    );
}

#[tokio::test]
async fn mutate_returns_an_idempotent_defaults_patch() {
    let (app, _) = app();
    let (status, review) = post(&app, "/mutate", fixture("create-valid.json")).await;
    assert_eq!(status, StatusCode::OK);
    let response = &review["response"];
    assert_eq!(response["allowed"], true);
    assert_eq!(response["patchType"], "JSONPatch");
    // Base64 text, as Go's encoding/json writes and reads a []byte field.
    let patch: Vec<u8> = match &response["patch"] {
        Value::String(text) => base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap(),
        other => panic!("no base64 patch in the response: {other}"),
    };
    let patch: json_patch::Patch = serde_json::from_slice(&patch).unwrap();
    let mut input: Value = serde_json::from_slice(&fixture("create-valid.json")).unwrap();
    let object = input["request"]["object"].take();
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch).unwrap();
    assert_eq!(
        patched["spec"]["targetResources"][1]["resourceRef"]["namespace"],
        "scaling-system"
    );
    assert_eq!(
        patched["spec"]["targetResources"][0]["resourceRef"]["namespace"],
        "production"
    );
    assert_eq!(
        patched["spec"]["scalingStrategy"]["groupConfig"]["groupName"],
        "llm-pd-group"
    );
    assert_eq!(
        patched["spec"]["scalingStrategy"]["groupConfig"]["replicas"],
        1
    );
    assert_eq!(
        patched["spec"]["scalingStrategy"]["groupConfig"]["scaleDown"]["order"],
        "ascending"
    );
    assert_eq!(
        patched["spec"]["scalingStrategy"]["groupConfig"]["scaleDown"]["metric"]["aggregator"],
        "avg"
    );

    // The patched object sent again gets no patch.
    input["request"]["object"] = patched;
    let (_, review) = post(&app, "/mutate", serde_json::to_vec(&input).unwrap()).await;
    assert!(review["response"]["patch"].is_null(), "{review}");
}

fn inplace_rsg() -> ResourceScalingGroup {
    use rsg::fixtures::deployment_target;
    let targets = vec![
        deployment_target("scheduler", "scheduler", None),
        deployment_target("worker", "worker", None),
    ];
    let strategy = serde_json::json!({"type": "InplaceScaling", "leaderFollowerConfig": {
        "leader": {"resourceName": "scheduler"}, "follower": [{"resourceName": "worker", "followRatio": 2}]
    }});
    rsg::fixtures::rsg("scaling-system", "leader-follower", targets, strategy)
}

#[tokio::test]
async fn scale_of_an_inplace_rsg_is_denied() {
    let (app, mut feeder) = app();
    feeder.apply(Event::Apply(inplace_rsg()));
    let (status, review) = post(&app, "/validate", fixture("scale-update.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(review["response"]["allowed"], false);
    assert_eq!(
        review["response"]["status"]["message"],
        "ResourceScalingGroup scaling-system/leader-follower uses the InplaceScaling strategy: the scale subresource applies to GroupReplication only (it sets the group count); scale the leader workload instead"
    );
}

#[tokio::test]
async fn scale_of_an_unknown_rsg_is_left_to_the_apiserver() {
    let (app, _) = app();
    let (_, review) = post(&app, "/validate", fixture("scale-update.json")).await;
    assert_eq!(review["response"]["allowed"], true);
}

#[tokio::test]
async fn wrong_kind_is_denied_with_an_explanation() {
    let (app, _) = app();
    let (status, review) = post(&app, "/validate", fixture("wrong-kind.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(review["response"]["allowed"], false);
    assert_eq!(
        review["response"]["uid"],
        "0b9d2f3c-0000-4000-8000-000000000004"
    );
    assert!(review["response"]["status"]["message"]
        .as_str()
        .unwrap()
        .contains("not apps/deployments"));
}

#[tokio::test]
async fn unreadable_requests_get_a_400_and_the_server_keeps_serving() {
    let (app, _) = app();
    for (name, expected) in [
        ("malformed.json", "the body is not a valid AdmissionReview"),
        ("missing-request.json", "the AdmissionReview has no request"),
    ] {
        for path in ["/validate", "/mutate"] {
            let (status, body) = post(&app, path, fixture(name)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{name} on {path}");
            assert!(
                body["error"].as_str().unwrap().contains(expected),
                "{name}: {body}"
            );
        }
    }
    let (status, _) = post(&app, "/validate", b"\xff\xfe not json at all".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, review) = post(&app, "/validate", fixture("create-valid.json")).await;
    assert_eq!(
        (status, &review["response"]["allowed"]),
        (StatusCode::OK, &Value::Bool(true))
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let (app, _) = app();
    let mut huge = fixture("create-valid.json");
    huge.truncate(huge.len() - 2);
    huge.extend_from_slice(b", \"padding\": \"");
    huge.extend(std::iter::repeat_n(b'x', BODY_LIMIT * 2));
    huge.extend_from_slice(b"\"}");
    let (status, _) = post(&app, "/validate", huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, _) = post(&app, "/validate", fixture("create-valid.json")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn readiness_needs_a_certificate_and_metrics_are_served() {
    let (app, _) = app();
    let response = app
        .clone()
        .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("[-] serving certificate loaded"));
    let response = app
        .clone()
        .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    post(&app, "/validate", fixture("create-invalid.json")).await;
    let response = app
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains(r#"rsg_admission_requests_total{webhook="validate",operation="CREATE",result="denied"} 1"#), "{text}");
}

#[tokio::test]
async fn requests_past_the_in_flight_limit_are_shed_with_503_but_probes_answer() {
    // A body that never ends holds the only slot.
    let (app, _) = app_with(&ServingLimits {
        max_concurrent_requests: 1,
        request_timeout: Duration::from_secs(30),
        ..ServingLimits::default()
    });
    let (_sender, never_ends) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let stalled = Request::post("/validate")
        .header("content-type", "application/json")
        .body(Body::from_stream(tokio_stream_of(never_ends)))
        .unwrap();
    let holder = tokio::spawn(app.clone().oneshot(stalled));
    // Once the stalled request holds the slot, a second one is shed at once.
    let mut shed = None;
    for _ in 0..1000 {
        let (status, body) = post(&app, "/validate", fixture("create-valid.json")).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            shed = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let shed = shed.expect("a request past the limit is shed");
    assert_eq!(
        shed,
        Value::String("too many requests in flight; retry".into())
    );
    let probe = Request::get("/healthz").body(Body::empty()).unwrap();
    let response = app.clone().oneshot(probe).await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "health probes are never shed"
    );
    holder.abort();
}

#[tokio::test]
async fn a_body_that_arrives_too_slowly_is_answered_503_at_the_request_timeout() {
    let (app, _) = app_with(&ServingLimits {
        request_timeout: Duration::from_millis(200),
        ..ServingLimits::default()
    });
    let (sender, trickle) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    sender.send(Ok(b"{\"apiVersion\":".to_vec())).await.unwrap();
    let slow = Request::post("/validate")
        .header("content-type", "application/json")
        .body(Body::from_stream(tokio_stream_of(trickle)))
        .unwrap();
    let started = std::time::Instant::now();
    let response = app.clone().oneshot(slow).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() >= Duration::from_millis(200));
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&bytes).contains("did not complete within 200ms"));
    drop(sender);
}

/// The chunks sent on `receiver`, as a body stream.
fn tokio_stream_of(
    mut receiver: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

/// The valid fixture with `edit` applied to its object.
fn edited_fixture(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut review: Value = serde_json::from_slice(&fixture("create-valid.json")).unwrap();
    edit(&mut review["request"]["object"]);
    serde_json::to_vec(&review).unwrap()
}

#[tokio::test]
async fn targets_in_system_namespaces_or_rsgs_own_are_denied() {
    let (app, _) = app();
    let body = edited_fixture(|rsg| {
        rsg["spec"]["targetResources"][0]["resourceRef"]["namespace"] = "kube-system".into();
        rsg["spec"]["targetResources"][1]["resourceRef"]["namespace"] = "rsg-system".into();
    });
    let (status, review) = post(&app, "/validate", body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(review["response"]["allowed"], false);
    assert_eq!(
        review["response"]["status"]["message"],
        r#"ResourceScalingGroup "llm-pd-group" is invalid: [spec.targetResources[0].resourceRef.namespace: Forbidden: rsg never acts on workloads in "kube-system", a system namespace, spec.targetResources[1].resourceRef.namespace: Forbidden: rsg never acts on workloads in "rsg-system", its own namespace]"#
    );
}

#[tokio::test]
async fn oversized_lists_are_denied_with_a_short_answer() {
    // The body limit rsg ships with.
    let (app, _) = app_with_body_limit(
        &ServingLimits::default(),
        rsg::server::DEFAULT_MAX_BODY_BYTES,
    );
    // As measured before the caps: 5,000 targets and 20,000 unknown followers in one review.
    let body = edited_fixture(|rsg| {
        let target = rsg["spec"]["targetResources"][0].clone();
        let targets: Vec<Value> = (0..5_000)
            .map(|i| {
                let mut t = target.clone();
                t["name"] = format!("t{i}").into();
                t["resourceRef"]["name"] = format!("w{i}").into();
                t
            })
            .collect();
        rsg["spec"]["targetResources"] = targets.into();
        let followers: Vec<Value> = (0..20_000)
            .map(|i| serde_json::json!({"resourceName": format!("unknown-{i}"), "followRatio": 1}))
            .collect();
        rsg["spec"]["scalingStrategy"] = serde_json::json!({
            "type": "InplaceScaling",
            "leaderFollowerConfig": {"leader": {"resourceName": "t0"}, "follower": followers},
        });
    });
    assert!(body.len() > 1_000_000, "{}", body.len());
    let (status, review) = post(&app, "/validate", body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(review["response"]["allowed"], false);
    assert_eq!(
        review["response"]["status"]["message"],
        r#"ResourceScalingGroup "llm-pd-group" is invalid: [spec.targetResources: Too many: 5000: must have at most 32 items, spec.scalingStrategy.leaderFollowerConfig.follower: Too many: 20000: must have at most 31 items]"#
    );
}
