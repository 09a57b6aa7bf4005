//! `rsg run`: wires the cache, the webhooks, the server and the controllers together.

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use kube::runtime::events::Reporter;

use crate::admission::{AdmissionContext, LookupCache};
use crate::authorship::{load_or_create, AdmissionKey, Authorship, KeyError};
use crate::boundary::TargetBoundary;
use crate::cache::{ApiReachability, Stores};
use crate::certs::CertStore;
use crate::cli::RunArgs;
use crate::controller;
use crate::leader::{Elector, LeaseSettings};
use crate::metrics::Metrics;
use crate::reconcile::event_recorder::EventRecorder;
use crate::reconcile::Context;
use crate::scale_down::{PrometheusClient, PrometheusConfig, PrometheusError};
use crate::server::{self, Readiness, TlsConfigError};

/// Why the service stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No usable Kubernetes client configuration.
    #[error("connecting to Kubernetes: {0}")]
    Kube(#[from] kube::Error),
    /// The TLS configuration could not be built.
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
    /// The Prometheus client could not be built.
    #[error(transparent)]
    Prometheus(#[from] PrometheusError),
    /// The admission key could not be read or made.
    #[error(transparent)]
    AdmissionKey(#[from] KeyError),
    /// Options that contradict each other.
    #[error("invalid options: {0}")]
    Options(String),
    /// The port could not be bound or a signal handler installed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// Runs until SIGTERM or SIGINT.
pub async fn run(args: RunArgs) -> Result<(), RunError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = Client::try_default().await?;
    let lease = lease_settings(&args, &client)?;
    let scope = args.watch_scope();
    if let Some(listed) = scope.namespaces() {
        info!(namespaces = ?listed, "acting only in the listed namespaces");
    }
    let stores = Stores::start(client.clone(), scope);
    let shutdown = CancellationToken::new();
    let certs = load_certs(&args, &provider, &shutdown);
    let (boundary, admission_key) = boundary_and_key(&args, &client).await?;
    let authorship = authorship_of(&args, &admission_key);
    let metrics = Arc::new(Metrics::default());
    let admission = admission_context(&args, &client, &stores, &metrics, &boundary, admission_key);
    // Readiness follows the API server: probed every second, stale after three.
    let api = ApiReachability::new(Duration::from_secs(3));
    tokio::spawn(
        api.clone()
            .probe(client.clone(), Duration::from_secs(1), shutdown.clone()),
    );
    let readiness = Readiness::new(stores.clone(), certs.clone()).with_api(api);
    let limits = args.serving_limits();
    let app = server::router(
        admission,
        readiness.clone(),
        metrics.clone(),
        args.max_body_bytes,
        server::RequestLimits::new(&limits, metrics.clone()),
    );
    let tls = server::server_config(provider, certs)?;
    let listener = server::bind(args.listen)
        .await
        .map_err(|source| RunError::Io {
            what: format!("binding {}", args.listen),
            source,
        })?;
    shut_down_on_signal(readiness, args.shutdown_delay, shutdown.clone())?;

    let reporter = Reporter {
        controller: "rsg".into(),
        instance: lease
            .as_ref()
            .map(|l| l.identity.clone())
            .or_else(|| args.leader_election_identity.clone()),
    };
    let context = Arc::new(
        Context::new(
            client.clone(),
            stores.clone(),
            EventRecorder::new(client.clone(), reporter),
            metrics.clone(),
            prometheus_client(&args)?,
            boundary,
        )
        .with_authorship(authorship),
    );
    let stop_leading = start_controllers(&args, client, lease, context, shutdown.clone());
    server::serve(
        listener,
        tls,
        app,
        limits,
        metrics.clone(),
        shutdown,
        args.drain_timeout,
    )
    .await;
    join_logged(Some(stop_leading), "shutdown of the controllers").await;
    info!("stopped");
    Ok(())
}

/// The serving certificate, loaded now if it is there and reloaded as it changes.
fn load_certs(
    args: &RunArgs,
    provider: &Arc<rustls::crypto::CryptoProvider>,
    shutdown: &CancellationToken,
) -> Arc<CertStore> {
    let certs = Arc::new(CertStore::new(&args.cert_dir, provider.clone()));
    if let Err(err) = certs.reload() {
        warn!(error = %err, dir = %args.cert_dir.display(), "no serving certificate yet; not ready until one loads");
    }
    tokio::spawn(
        certs
            .clone()
            .watch(args.cert_reload_interval, shutdown.clone()),
    );
    certs
}

/// The target boundary (rsg's own namespace and Secrets closed) and the admission key,
/// read or made in rsg's own namespace.
async fn boundary_and_key(
    args: &RunArgs,
    client: &Client,
) -> Result<(TargetBoundary, Arc<AdmissionKey>), RunError> {
    let mut boundary = args.target_boundary(client.default_namespace());
    tracing::info!(
        own_namespace = boundary.own_namespace.as_deref().unwrap_or_default(),
        "rsg's own namespace is never a target namespace"
    );
    let own_namespace = boundary.own_namespace.clone().unwrap_or_default();
    let admission_key =
        Arc::new(load_admission_key(client, &own_namespace, &args.admission_key_secret).await?);
    boundary
        .own_secrets
        .insert(args.admission_key_secret.clone());
    Ok((boundary, admission_key))
}

/// What the webhooks read: the shared cache, the live checks' client and cache, the
/// boundary, and the key admission records are signed with.
fn admission_context(
    args: &RunArgs,
    client: &Client,
    stores: &Stores,
    metrics: &Arc<Metrics>,
    boundary: &TargetBoundary,
    admission_key: Arc<AdmissionKey>,
) -> Arc<AdmissionContext> {
    let context = Arc::new(AdmissionContext {
        stores: stores.clone(),
        client: Some(client.clone()),
        live_checks: args.admission_live_checks,
        metrics: metrics.clone(),
        lookup_timeout: args.lookup_timeout,
        // Live-check reads are kept 5 s: a burst of reviews of one RSG reads each once.
        lookup_cache: LookupCache::new(Duration::from_secs(5), 4096),
        access_reviews: args.admission_access_reviews,
        boundary: boundary.clone(),
        admission_key: Some(admission_key),
    });
    // What a burst of reviews read is dropped once stale, not kept until the next burst.
    let swept = Arc::downgrade(&context);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(30));
        loop {
            every.tick().await;
            let Some(context) = swept.upgrade() else {
                return;
            };
            context.lookup_cache.forget_expired();
        }
    });
    context
}

/// The authorship checks the controllers make, unless admission records are not required
/// (which is said at start, with what remains).
fn authorship_of(args: &RunArgs, admission_key: &Arc<AdmissionKey>) -> Option<Authorship> {
    if args.require_admission_record {
        info!(
            recheck_interval = ?args.author_recheck_interval,
            "acting only on RSGs whose admission record verifies and whose author still holds the rights they use"
        );
        Some(Authorship::new(
            admission_key.clone(),
            args.author_recheck_interval,
        ))
    } else {
        warn!("admission records are not required (--require-admission-record=false): RSGs stored without the webhooks are acted on; what remains is the target boundary (system namespaces and rsg's own closed, grants for other namespaces, the namespace selector)");
        None
    }
}

/// On SIGTERM or SIGINT: reports not ready at once, then cancels `shutdown` after `delay`
/// (so endpoints drop this replica before the port closes).
fn shut_down_on_signal(
    readiness: Readiness,
    delay: Duration,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let mut terminate = signal(SignalKind::terminate()).map_err(|source| RunError::Io {
        what: "installing the SIGTERM handler".into(),
        source,
    })?;
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => info!("SIGTERM received; shutting down"),
            _ = tokio::signal::ctrl_c() => info!("interrupt received; shutting down"),
        }
        readiness.begin_shutdown();
        tokio::time::sleep(delay).await;
        shutdown.cancel();
    });
    Ok(())
}

/// The Prometheus client scale-down decisions query, when a URL is set.
fn prometheus_client(args: &RunArgs) -> Result<Option<PrometheusClient>, RunError> {
    let Some(url) = args.prometheus_url.clone().filter(|url| !url.is_empty()) else {
        return Ok(None);
    };
    let client = PrometheusClient::new(PrometheusConfig {
        url,
        bearer_token_file: args.prometheus_bearer_token_file.clone(),
        ca_file: args.prometheus_ca_file.clone(),
        timeout: args.prometheus_timeout,
        min_query_interval: args.prometheus_min_query_interval,
    })?;
    info!(url = client.url(), "scale-down decisions query Prometheus");
    Ok(Some(client))
}

/// Starts leader election (when configured) and the controllers, which run while this
/// replica leads. The task returned ends when the controllers have made their last write
/// and the Lease is released, while the HTTP port is still draining, so a standby takes
/// over without waiting for it.
fn start_controllers(
    args: &RunArgs,
    client: Client,
    lease: Option<LeaseSettings>,
    context: Arc<Context>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    // Without leader election this replica always leads; the sender then lives to the end.
    let (leading_tx, leading) = tokio::sync::watch::channel(lease.is_none());
    let elector_stop = CancellationToken::new();
    let elector = match (lease, args.run_controllers) {
        (Some(settings), true) => Some(tokio::spawn(
            Elector::new(client, settings).run(leading_tx, elector_stop.clone()),
        )),
        _ => None,
    };
    let controllers = if args.run_controllers {
        Some(tokio::spawn(controller::run_while_leading(
            context, leading, shutdown,
        )))
    } else {
        info!("controllers disabled: serving the webhooks, health and metrics only");
        None
    };
    tokio::spawn(async move {
        join_logged(controllers, "controller").await;
        elector_stop.cancel();
        join_logged(elector, "leader election").await;
    })
}

/// Attempts at reading or making the admission key before giving up.
const KEY_ATTEMPTS: u32 = 10;

/// The admission key, retried a few times while the API server comes up.
async fn load_admission_key(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<AdmissionKey, RunError> {
    let mut attempt = 1;
    loop {
        match load_or_create(client, namespace, name).await {
            Ok(key) => return Ok(key),
            Err(err) if attempt < KEY_ATTEMPTS => {
                warn!(error = %err, attempt, "admission key not loaded yet; retrying");
                attempt += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// Waits for a background task, if it was started, and logs how it ended abnormally.
async fn join_logged(task: Option<tokio::task::JoinHandle<()>>, what: &str) {
    if let Some(Err(err)) = match task {
        Some(task) => Some(task.await),
        None => None,
    } {
        warn!(error = %err, "{what} task ended abnormally");
    }
}

/// The Lease settings, or `None` when leader election is off.
fn lease_settings(args: &RunArgs, client: &Client) -> Result<Option<LeaseSettings>, RunError> {
    if !args.leader_election {
        return Ok(None);
    }
    if args.renew_deadline >= args.lease_duration || args.retry_period >= args.renew_deadline {
        return Err(RunError::Options(format!(
            "leader election needs retry period ({:?}) < renew deadline ({:?}) < lease duration ({:?})",
            args.retry_period, args.renew_deadline, args.lease_duration
        )));
    }
    let namespace = args
        .leader_election_namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| client.default_namespace().to_string());
    let identity = args
        .leader_election_identity
        .clone()
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "rsg".into());
            format!("{host}_{}", std::process::id())
        });
    Ok(Some(LeaseSettings {
        namespace,
        name: args.leader_election_lease_name.clone(),
        identity,
        lease_duration: args.lease_duration,
        renew_deadline: args.renew_deadline,
        retry_period: args.retry_period,
    }))
}
