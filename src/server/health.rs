//! `/healthz`, `/readyz` and `/metrics`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;

use crate::cache::Stores;
use crate::certs::CertStore;
use crate::metrics::Metrics;

/// What must hold before the process takes traffic.
#[derive(Clone)]
pub struct Readiness {
    stores: Stores,
    certs: Arc<CertStore>,
    shutting_down: Arc<AtomicBool>,
}

impl Readiness {
    /// Ready once the caches synced and a certificate is loaded, until shutdown begins.
    pub fn new(stores: Stores, certs: Arc<CertStore>) -> Self {
        Self {
            stores,
            certs,
            shutting_down: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Reports not ready from now on (shutdown has begun).
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    /// Each component and whether it is ready.
    pub fn components(&self) -> [(&'static str, bool); 3] {
        [
            ("informer caches synced", self.stores.is_synced()),
            ("serving certificate loaded", self.certs.is_loaded()),
            (
                "not shutting down",
                !self.shutting_down.load(Ordering::Acquire),
            ),
        ]
    }
}

pub async fn healthz() -> &'static str {
    "ok\n"
}

pub async fn readyz(State(readiness): State<Readiness>) -> impl IntoResponse {
    let components = readiness.components();
    let ready = components.iter().all(|(_, ok)| *ok);
    let body: String = components
        .iter()
        .map(|(name, ok)| format!("[{}] {name}\n", if *ok { "+" } else { "-" }))
        .collect();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body)
}

pub async fn metrics(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.render(),
    )
}
