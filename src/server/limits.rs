//! Bounds on what clients of the HTTPS port can hold: time to complete the TLS handshake and
//! send a request head, time a kept-alive connection may sit idle, time one request may
//! take (reading its body included), open connections, and requests in flight. Past a
//! bound, the connection is closed or the request is answered 503 at once, and counted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;

/// The serving bounds (flags `--header-read-timeout` etc.).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServingLimits {
    /// Time to complete the TLS handshake, and then to send a request's head.
    pub header_read_timeout: Duration,
    /// Time a connection may stay open with no request in flight.
    pub idle_timeout: Duration,
    /// Time one request may take, reading its body included; below the webhooks'
    /// `timeoutSeconds` (5 s), so the API server gets an answer rather than a timeout.
    pub request_timeout: Duration,
    /// Interval of HTTP/2 keep-alive pings; a peer that does not answer within it is dropped.
    pub http2_keep_alive: Duration,
    /// Open connections; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Requests handled at once (health probes excepted); more get 503.
    pub max_concurrent_requests: usize,
}

impl Default for ServingLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(90),
            request_timeout: Duration::from_secs(4),
            http2_keep_alive: Duration::from_secs(20),
            max_connections: 1024,
            max_concurrent_requests: 256,
        }
    }
}

/// The per-request bounds, as router state.
#[derive(Clone)]
pub struct RequestLimits {
    in_flight: Arc<Semaphore>,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

impl RequestLimits {
    /// The request bounds of `limits`, counted in `metrics`.
    pub fn new(limits: &ServingLimits, metrics: Arc<Metrics>) -> Self {
        Self {
            in_flight: Arc::new(Semaphore::new(limits.max_concurrent_requests)),
            timeout: limits.request_timeout,
            metrics,
        }
    }
}

/// Middleware: sheds a request when too many are in flight, and answers 503 when one takes
/// longer than the request timeout (a body that arrives too slowly included).
pub async fn limit_request(
    State(limits): State<RequestLimits>,
    request: Request,
    next: Next,
) -> Response {
    let Ok(_permit) = limits.in_flight.clone().try_acquire_owned() else {
        limits.metrics.http_requests_shed.inc();
        return unavailable("too many requests in flight; retry");
    };
    match tokio::time::timeout(limits.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            limits.metrics.http_requests_timed_out.inc();
            unavailable(&format!(
                "the request did not complete within {:?}",
                limits.timeout
            ))
        }
    }
}

fn unavailable(message: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "1")],
        message.to_string(),
    )
        .into_response()
}

/// The connection slots: a permit per open connection.
#[derive(Clone)]
pub struct ConnectionSlots(Arc<Semaphore>);

impl ConnectionSlots {
    /// `max` slots.
    pub fn new(max: usize) -> Self {
        Self(Arc::new(Semaphore::new(max)))
    }

    /// A slot for a new connection, or `None` when every slot is taken.
    pub fn try_take(&self) -> Option<OwnedSemaphorePermit> {
        self.0.clone().try_acquire_owned().ok()
    }

    /// Returns once all `max` slots are free again: every connection has ended.
    pub async fn all_free(&self, max: usize) {
        let all = u32::try_from(max).unwrap_or(u32::MAX);
        // The semaphore is never closed, so this only waits.
        let _ = self.0.acquire_many(all).await;
    }
}

/// When a connection last had no request in flight, to close it once idle too long.
#[derive(Default)]
pub struct Activity {
    in_flight: AtomicUsize,
    idle_since: Mutex<Option<Instant>>,
}

impl Activity {
    /// A new connection, idle from now.
    pub fn new() -> Arc<Self> {
        let activity = Self::default();
        activity.set_idle_since(Some(Instant::now()));
        Arc::new(activity)
    }

    fn set_idle_since(&self, since: Option<Instant>) {
        *self
            .idle_since
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = since;
    }

    /// A request started on the connection; it is busy until the guard drops.
    pub fn start(self: &Arc<Self>) -> ActiveRequest {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.set_idle_since(None);
        ActiveRequest(self.clone())
    }

    /// How long the connection has had no request in flight (zero while one is).
    pub fn idle_for(&self, now: Instant) -> Duration {
        self.idle_since
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .map_or(Duration::ZERO, |since| now.saturating_duration_since(since))
    }
}

/// A request in flight on a connection.
pub struct ActiveRequest(Arc<Activity>);

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.set_idle_since(Some(Instant::now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_idle_only_while_no_request_is_in_flight() {
        let activity = Activity::new();
        let later = Instant::now() + Duration::from_secs(5);
        assert!(activity.idle_for(later) >= Duration::from_secs(4));
        let first = activity.start();
        let second = activity.start();
        assert_eq!(activity.idle_for(later), Duration::ZERO);
        drop(first);
        assert_eq!(
            activity.idle_for(later),
            Duration::ZERO,
            "one still in flight"
        );
        drop(second);
        assert!(activity.idle_for(later) > Duration::ZERO);
    }

    #[test]
    fn connection_slots_run_out_and_come_back() {
        let slots = ConnectionSlots::new(2);
        let a = slots.try_take().expect("first");
        let _b = slots.try_take().expect("second");
        assert!(slots.try_take().is_none());
        drop(a);
        assert!(slots.try_take().is_some());
    }
}
