//! A mocked API server for reconcile tests (kube's `tower-test` pattern): every request the
//! reconcile makes is recorded and answered by the test's responder, so scenarios that need
//! an API (a create rolled back, a taken name, a drain timing out) run in milliseconds.
//! Events are answered by the mock itself and kept apart from the calls.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::{Method, Request, Response};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};

use super::event_recorder::EventRecorder;
use super::Context;
use crate::boundary::TargetBoundary;
use crate::cache::Stores;

/// One API call: method, path (without the query) and JSON body.
#[derive(Clone, Debug)]
pub struct Call {
    /// The HTTP method.
    pub method: Method,
    /// The path.
    pub path: String,
    /// The JSON body (null when there is none).
    pub body: Value,
}

impl Call {
    /// `POST /apis/apps/v1/...` form, for assertions.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// The calls made so far, and the Events published.
#[derive(Clone, Default)]
pub struct Recorded {
    calls: Arc<Mutex<Vec<Call>>>,
    events: Arc<Mutex<Vec<Value>>>,
    /// How long the mock takes to answer each Event's write.
    event_delay: Arc<Mutex<Duration>>,
}

impl Recorded {
    /// Every call but Events, as `METHOD path` lines in order.
    pub fn lines(&self) -> Vec<String> {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(Call::line)
            .collect()
    }

    /// Makes the mock take `delay` to answer each Event's write.
    pub fn delay_events(&self, delay: Duration) {
        *self.event_delay.lock().unwrap_or_else(|p| p.into_inner()) = delay;
    }

    /// Records an Event's write as the API server would then serve the Event: a create as
    /// sent, a patch (a repeat) as the Event it names with the patch's series.
    fn write_event(&self, call: &Call) -> (u16, Value) {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let (code, written) = if call.method == Method::PATCH {
            let name = call.path.rsplit('/').next().unwrap_or_default();
            let Some(first) = events.iter().rev().find(|e| e["metadata"]["name"] == name) else {
                return status(404, "NotFound");
            };
            let mut repeat = first.clone();
            repeat["series"] = call.body["series"].clone();
            (200, repeat)
        } else {
            (201, call.body.clone())
        };
        events.push(written.clone());
        (code, written)
    }

    /// The series count of each Event written, in order (`None` for a first Event).
    pub fn event_series_counts(&self) -> Vec<Option<i64>> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|e| e["series"]["count"].as_i64())
            .collect()
    }

    /// The reasons of the Events published, in order.
    pub fn event_reasons(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|e| e["reason"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

/// An API error answer (a `Status` object) with `code` and `reason`.
pub fn status(code: u16, reason: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "message": format!("{reason} (mocked)"), "reason": reason, "code": code}),
    )
}

/// Answers (Local)SubjectAccessReviews with `allowed(verb, name)` of their resource attributes.
pub fn access_reviews(allowed: fn(&str, &str) -> bool) -> impl Fn(&Call) -> (u16, Value) {
    move |call: &Call| {
        let attributes = &call.body["spec"]["resourceAttributes"];
        let verb = attributes["verb"].as_str().unwrap_or_default();
        let name = attributes["name"].as_str().unwrap_or_default();
        let mut review = call.body.clone();
        review["status"] = json!({"allowed": allowed(verb, name)});
        (201, review)
    }
}

/// The created object echoed back, as the API server answers a create.
pub fn created(call: &Call) -> (u16, Value) {
    (201, call.body.clone())
}

/// A context whose API server is the mock: `respond` answers each call (in a spawned task).
pub fn context(
    respond: impl Fn(&Call) -> (u16, Value) + Send + Sync + 'static,
) -> (Context, Recorded) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let recorded = Recorded::default();
    let record = recorded.clone();
    tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.unwrap_or_default();
            let call = Call {
                method: parts.method,
                path: parts.uri.path().to_string(),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            };
            let (code, answer) = if call.path.contains("/events") {
                let delay = *record.event_delay.lock().unwrap_or_else(|p| p.into_inner());
                tokio::time::sleep(delay).await;
                record.write_event(&call)
            } else {
                record
                    .calls
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(call.clone());
                respond(&call)
            };
            let response = Response::builder()
                .status(code)
                .header("content-type", "application/json")
                .body(Body::from(answer.to_string().into_bytes()));
            if let Ok(response) = response {
                send.send_response(response);
            }
        }
    });
    let (stores, _) = Stores::detached();
    let recorder = EventRecorder::new(client.clone(), "rsg".into());
    let ctx = Context::new(
        client,
        stores,
        recorder,
        Arc::default(),
        None,
        TargetBoundary::default(),
    );
    (ctx, recorded)
}
