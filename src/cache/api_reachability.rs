//! Whether the API server answers and is ready: its `/readyz` (which checks etcd too) every
//! probe period, so that readiness reflects an outage of the API server or of etcd behind it,
//! while the caches cannot follow.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::Client;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// When the API server last answered.
pub struct ApiReachability {
    last_answer: Mutex<Option<Instant>>,
    stale_after: Duration,
}

impl ApiReachability {
    /// Reachable while the last answer is younger than `stale_after`.
    pub fn new(stale_after: Duration) -> Arc<Self> {
        Arc::new(Self {
            last_answer: Mutex::new(None),
            stale_after,
        })
    }

    fn last_answer(&self) -> Option<Instant> {
        *self
            .last_answer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether the API server answered recently.
    pub fn is_reachable(&self) -> bool {
        self.last_answer()
            .is_some_and(|at| at.elapsed() < self.stale_after)
    }

    /// Asks the API server's `/readyz` every `period` (each try bounded by `period`) until
    /// `stop` fires, logging when it stops and starts answering.
    pub async fn probe(self: Arc<Self>, client: Client, period: Duration, stop: CancellationToken) {
        let mut reachable = true;
        loop {
            let answered = matches!(
                tokio::time::timeout(period, api_server_ready(&client)).await,
                Ok(true)
            );
            if answered {
                *self
                    .last_answer
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Instant::now());
            }
            match (reachable, self.is_reachable()) {
                (true, false) => warn!("the API server does not answer; not ready"),
                (false, true) => info!("the API server answers again"),
                _ => {}
            }
            reachable = self.is_reachable();
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}

/// Whether the API server's `/readyz` says `ok` (readable by every identity).
async fn api_server_ready(client: &Client) -> bool {
    let Ok(request) = axum::http::Request::get("/readyz").body(Vec::new()) else {
        return false;
    };
    client
        .request_text(request)
        .await
        .is_ok_and(|body| body.trim() == "ok")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reachable_only_while_the_last_answer_is_recent() {
        let probe = ApiReachability::new(Duration::from_secs(3));
        assert!(!probe.is_reachable(), "no answer yet");
        *probe.last_answer.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        assert!(probe.is_reachable());
        *probe.last_answer.lock().unwrap_or_else(|p| p.into_inner()) =
            Instant::now().checked_sub(Duration::from_secs(4));
        assert!(!probe.is_reachable());
    }
}
