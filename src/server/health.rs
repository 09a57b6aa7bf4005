//! `/healthz`, `/readyz` and `/metrics`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;

use crate::cache::{ApiReachability, Stores};
use crate::certs::CertStore;
use crate::metrics::Metrics;

/// What must hold before the process takes traffic.
#[derive(Clone)]
pub struct Readiness {
    stores: Stores,
    certs: Arc<CertStore>,
    api: Option<Arc<ApiReachability>>,
    shutting_down: Arc<AtomicBool>,
}

impl Readiness {
    /// Ready once the caches synced and a certificate is loaded, until shutdown begins.
    pub fn new(stores: Stores, certs: Arc<CertStore>) -> Self {
        Self {
            stores,
            certs,
            api: None,
            shutting_down: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Also requires the API server to answer (`api` probes it).
    pub fn with_api(mut self, api: Arc<ApiReachability>) -> Self {
        self.api = Some(api);
        self
    }

    /// Reports not ready from now on (shutdown has begun).
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    /// Each component and whether it is ready.
    pub fn components(&self) -> Vec<(&'static str, bool)> {
        let mut components = vec![
            ("informer caches synced", self.stores.is_synced()),
            ("serving certificate loaded", self.certs.is_loaded()),
        ];
        if let Some(api) = &self.api {
            components.push(("API server answering", api.is_reachable()));
        }
        components.push((
            "not shutting down",
            !self.shutting_down.load(Ordering::Acquire),
        ));
        components
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
