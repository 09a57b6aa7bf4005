//! The one HTTPS port: admission webhooks, health, readiness and metrics.

mod health;
mod limits;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{debug, info, warn};

pub use health::Readiness;
pub use limits::{RequestLimits, ServingLimits};
pub use tls::{server_config, TlsConfigError};

use crate::admission::{mutate_handler, validate_handler, AdmissionContext};
use crate::metrics::Metrics;

/// Default bound on request bodies: an AdmissionReview carries the object and its old
/// version, each at most about 1.5 MiB in etcd.
pub const DEFAULT_MAX_BODY_BYTES: usize = 6 * 1024 * 1024;
/// How often a connection checks whether it has been idle too long.
const IDLE_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// The HTTP routes, without TLS (handler tests drive this directly). Every route but the
/// health probes is under `request_limits`.
pub fn router(
    admission: Arc<AdmissionContext>,
    readiness: Readiness,
    metrics: Arc<Metrics>,
    max_body_bytes: usize,
    request_limits: RequestLimits,
) -> Router {
    let webhooks = Router::new()
        .route("/mutate", post(mutate_handler))
        .route("/validate", post(validate_handler))
        .with_state(admission)
        .layer(DefaultBodyLimit::max(max_body_bytes));
    let metrics = Router::new()
        .route("/metrics", get(health::metrics))
        .with_state(metrics);
    let limited = webhooks
        .merge(metrics)
        .layer(axum::middleware::from_fn_with_state(
            request_limits,
            limits::limit_request,
        ));
    let health = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .with_state(readiness);
    limited.merge(health)
}

/// Serves `app` over TLS on `listener` until `shutdown` fires, within `limits`, then lets
/// open requests finish for up to `drain`.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    limits: ServingLimits,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    drain: Duration,
) {
    let acceptor = TlsAcceptor::from(tls);
    let slots = limits::ConnectionSlots::new(limits.max_connections);
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "serving HTTPS");
    }
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let Some(slot) = slots.try_take() else {
            metrics.http_connections_refused.inc();
            debug!(%peer, "connection limit reached; closing the new connection");
            continue;
        };
        tokio::spawn(serve_connection(
            tcp,
            peer,
            acceptor.clone(),
            app.clone(),
            limits.clone(),
            shutdown.clone(),
            slot,
        ));
    }
    drop(listener);
    info!("draining open connections");
    tokio::select! {
        _ = slots.all_free(limits.max_connections) => info!("all connections closed"),
        _ = tokio::time::sleep(drain) => warn!("connections still open after {drain:?}; closing"),
    }
}

/// Serves one connection: the TLS handshake and each request head within the header-read
/// timeout, closed once idle for the idle timeout or when `shutdown` fires (after the
/// requests in flight). Holds its connection `slot` until it ends.
async fn serve_connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    app: Router,
    limits: ServingLimits,
    shutdown: CancellationToken,
    _slot: tokio::sync::OwnedSemaphorePermit,
) {
    let stream = match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(tcp)).await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => return debug!(%peer, error = %err, "TLS handshake failed"),
        Err(_) => return debug!(%peer, "TLS handshake timed out"),
    };
    let activity = limits::Activity::new();
    let tracked = activity.clone();
    let service = tower::service_fn(
        move |request: axum::extract::Request<hyper::body::Incoming>| {
            let busy = tracked.start();
            let app = app.clone();
            async move {
                let response = app.oneshot(request.map(axum::body::Body::new)).await;
                drop(busy);
                response
            }
        },
    );
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.http2_keep_alive)
        .keep_alive_timeout(limits.http2_keep_alive);
    let connection =
        builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    tokio::pin!(connection);
    let mut idle_check = tokio::time::interval(IDLE_CHECK_INTERVAL);
    let mut closing = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(err) = result {
                    debug!(%peer, error = %err, "connection ended with an error");
                }
                return;
            }
            _ = shutdown.cancelled(), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = idle_check.tick(), if !closing => {
                if activity.idle_for(std::time::Instant::now()) >= limits.idle_timeout {
                    debug!(%peer, "closing an idle connection");
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}

/// Binds the listening socket.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
