//! Command-line interface.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::boundary::{NamespaceSelector, TargetBoundary};
use crate::validation::parse_prometheus_duration;

/// rsg: the ResourceScalingGroup controller and admission webhook.
#[derive(Parser, Debug)]
#[command(name = "rsg", version, about)]
pub struct Cli {
    /// Log format: `text` or `json`.
    #[arg(long, env = "RSG_LOG_FORMAT", default_value = "text", global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the service: webhooks, health, metrics and the controllers.
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinition generated from the Rust types.
    Crd,
    /// Generate a CA and a serving certificate for local use and print the caBundle.
    Certs(CertsArgs),
}

fn parse_namespace_selector(s: &str) -> Result<NamespaceSelector, String> {
    NamespaceSelector::parse(s).map_err(|e| e.to_string())
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    parse_prometheus_duration(s).map_err(|e| e.to_string())
}

impl RunArgs {
    /// The tenant boundary these options set. rsg's own namespace is `--namespace`
    /// (`POD_NAMESPACE`), else `fallback_namespace` (the client's: in a pod, its
    /// ServiceAccount's namespace), so it is closed to targets even when the variable is unset.
    pub fn target_boundary(&self, fallback_namespace: &str) -> TargetBoundary {
        TargetBoundary {
            own_namespace: self
                .own_namespace
                .clone()
                .filter(|ns| !ns.is_empty())
                .or_else(|| Some(fallback_namespace.to_string()).filter(|ns| !ns.is_empty())),
            own_service_account: self.own_service_account.clone().filter(|sa| !sa.is_empty()),
            own_secrets: self
                .own_secrets
                .iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            namespace_selector: self
                .target_namespace_selector
                .clone()
                .filter(|selector| !selector.selects_all()),
            allow_external_service_copies: self.allow_external_service_copies,
            watch_scope: self.watch_scope(),
        }
    }

    /// Where namespaced kinds are watched (`--watch-namespaces`; empty: everywhere).
    pub fn watch_scope(&self) -> crate::cache::WatchScope {
        crate::cache::WatchScope::of(&self.watch_namespaces)
    }

    /// The serving bounds these options set.
    pub fn serving_limits(&self) -> crate::server::ServingLimits {
        crate::server::ServingLimits {
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            request_timeout: self.request_timeout,
            http2_keep_alive: self.http2_keep_alive,
            max_connections: self.max_connections as usize,
            max_concurrent_requests: self.max_concurrent_requests as usize,
        }
    }
}

/// `rsg run` options.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Address of the HTTPS port.
    #[arg(long, env = "RSG_LISTEN", default_value = "0.0.0.0:9443")]
    pub listen: SocketAddr,
    /// Directory holding tls.crt and tls.key.
    #[arg(long, env = "RSG_CERT_DIR", default_value = "webhook-certs")]
    pub cert_dir: PathBuf,
    /// How often the certificate directory is checked for changes.
    #[arg(long, env = "RSG_CERT_RELOAD_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub cert_reload_interval: Duration,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "RSG_MAX_BODY_BYTES", default_value_t = crate::server::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Time a client has to complete the TLS handshake, and then to send a request's head.
    #[arg(long, env = "RSG_HEADER_READ_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,
    /// Time a connection may stay open with no request in flight.
    #[arg(long, env = "RSG_IDLE_TIMEOUT", default_value = "90s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// Time one request may take, reading its body included; keep it below the webhooks'
    /// timeoutSeconds so the API server gets an answer rather than a timeout.
    #[arg(long, env = "RSG_REQUEST_TIMEOUT", default_value = "4s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Interval of HTTP/2 keep-alive pings; a peer that does not answer within it is dropped.
    #[arg(long, env = "RSG_HTTP2_KEEP_ALIVE", default_value = "20s", value_parser = parse_duration)]
    pub http2_keep_alive: Duration,
    /// Open connections at most; more are closed on arrival (rsg_http_connections_refused_total).
    #[arg(long, env = "RSG_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Requests handled at once (health probes excepted); more get 503
    /// (rsg_http_requests_shed_total).
    #[arg(long, env = "RSG_MAX_CONCURRENT_REQUESTS", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_requests: u32,
    /// Upper bound on the live cluster checks of one admission request.
    #[arg(long, env = "RSG_LOOKUP_TIMEOUT", default_value = "3s", value_parser = parse_duration)]
    pub lookup_timeout: Duration,
    /// Whether admission also reads the targets, their Services and the objects their pod
    /// templates use from the API server (for warnings and Service name checks).
    #[arg(long, env = "RSG_ADMISSION_LIVE_CHECKS", default_value_t = true, action = clap::ArgAction::Set)]
    pub admission_live_checks: bool,
    /// rsg's own namespace: never a target namespace (default: `POD_NAMESPACE`, else the
    /// namespace of rsg's ServiceAccount in a pod, or of its kubeconfig context).
    #[arg(long = "namespace", env = "POD_NAMESPACE")]
    pub own_namespace: Option<String>,
    /// rsg's own ServiceAccount: no copy in rsg's namespace runs as it, whatever its base says.
    #[arg(long = "service-account", env = "RSG_SERVICE_ACCOUNT")]
    pub own_service_account: Option<String>,
    /// rsg's own Secrets (comma-separated; its webhook certificate, its Prometheus token): no
    /// copy in rsg's namespace uses them, whatever its base says.
    #[arg(long = "own-secrets", env = "RSG_OWN_SECRETS", value_delimiter = ',')]
    pub own_secrets: Vec<String>,
    /// Only namespaces whose labels match this selector may hold targets
    /// (`key=value`, `key!=value`, `key`, `!key`, comma-separated). Empty: every namespace but
    /// the system ones and rsg's own.
    #[arg(long, env = "RSG_TARGET_NAMESPACE_SELECTOR", value_parser = parse_namespace_selector)]
    pub target_namespace_selector: Option<NamespaceSelector>,
    /// The namespaces this installation acts in (comma-separated): rsg watches only them,
    /// needs rights only there, and refuses RSGs whose targets lie elsewhere. Empty: the whole
    /// cluster.
    #[arg(long, env = "RSG_WATCH_NAMESPACES", value_delimiter = ',')]
    pub watch_namespaces: Vec<String>,
    /// Whether copies of LoadBalancer and NodePort Services keep their type. Off: admission
    /// refuses RSGs whose targets have such Services, and the controller copies them as
    /// ClusterIP.
    #[arg(long, env = "RSG_ALLOW_EXTERNAL_SERVICE_COPIES", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_external_service_copies: bool,
    /// Whether admission checks, with SubjectAccessReviews, that the requester may do to the
    /// targets what the RSG asks rsg to do. Turn off only to measure its cost: without it an
    /// RSG author can borrow rsg's rights in the RSG's namespace.
    #[arg(long, env = "RSG_ADMISSION_ACCESS_REVIEWS", default_value_t = true, action = clap::ArgAction::Set)]
    pub admission_access_reviews: bool,
    /// Secret in rsg's own namespace holding the key admission records are signed with (made
    /// by rsg when missing). No copy uses it, whatever its base says.
    #[arg(
        long,
        env = "RSG_ADMISSION_KEY_SECRET",
        default_value = "rsg-admission-key"
    )]
    pub admission_key_secret: String,
    /// Whether the controller acts only on RSGs whose admission record (written by rsg's
    /// mutating webhook) verifies for their current spec and whose recorded author still holds
    /// the rights they use. Turn off only when the webhooks are not installed: then rsg acts on
    /// every stored RSG within the target boundary (closed namespaces, grants).
    #[arg(long, env = "RSG_REQUIRE_ADMISSION_RECORD", default_value_t = true, action = clap::ArgAction::Set)]
    pub require_admission_record: bool,
    /// How long a recorded author's rights are trusted before they are asked again; rights
    /// taken away stop rsg within this (plus one reconcile).
    #[arg(long, env = "RSG_AUTHOR_RECHECK_INTERVAL", default_value = "2m", value_parser = parse_duration)]
    pub author_recheck_interval: Duration,
    /// Whether the reconcile loops run; `false` serves only the webhooks, health and metrics.
    #[arg(long, env = "RSG_RUN_CONTROLLERS", default_value_t = true, action = clap::ArgAction::Set)]
    pub run_controllers: bool,
    /// After SIGTERM, how long to keep serving while reporting not ready.
    #[arg(long, env = "RSG_SHUTDOWN_DELAY", default_value = "0s", value_parser = parse_duration)]
    pub shutdown_delay: Duration,
    /// After that, how long open requests may take to finish.
    #[arg(long, env = "RSG_DRAIN_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// Prometheus base URL used for scale-down decisions.
    #[arg(long, env = "RSG_PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,
    /// File holding a bearer token for Prometheus (read on every query; never logged).
    #[arg(long, env = "RSG_PROMETHEUS_BEARER_TOKEN_FILE")]
    pub prometheus_bearer_token_file: Option<std::path::PathBuf>,
    /// PEM file with the CA of Prometheus' certificate.
    #[arg(long, env = "RSG_PROMETHEUS_CA_FILE")]
    pub prometheus_ca_file: Option<std::path::PathBuf>,
    /// Bound on one Prometheus query; past it the decision falls back.
    #[arg(long, env = "RSG_PROMETHEUS_TIMEOUT", default_value = "3s", value_parser = parse_duration)]
    pub prometheus_timeout: Duration,
    /// Each RSG queries Prometheus at most once per this interval (draining polls included);
    /// a reconcile within it decides from the RSG's last answer to the same query.
    #[arg(long, env = "RSG_PROMETHEUS_MIN_QUERY_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub prometheus_min_query_interval: Duration,
    /// Whether replicas elect a leader through a Lease; only the leader reconciles. Turn off
    /// only when exactly one replica runs.
    #[arg(long, env = "RSG_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// Namespace of the leader Lease (default: the pod's namespace, `POD_NAMESPACE`, or the
    /// kubeconfig's namespace).
    #[arg(long, env = "RSG_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// Name of the leader Lease.
    #[arg(
        long,
        env = "RSG_LEADER_ELECTION_LEASE_NAME",
        default_value = "rsg-leader"
    )]
    pub leader_election_lease_name: String,
    /// This replica's identity in the Lease (default: the pod name, else host name and pid).
    #[arg(long, env = "POD_NAME")]
    pub leader_election_identity: Option<String>,
    /// How long a leader's claim holds without renewal; a standby takes over after it.
    #[arg(long, env = "RSG_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// How long the leader keeps reconciling while renewals fail (less than the lease duration).
    #[arg(long, env = "RSG_RENEW_DEADLINE", default_value = "10s", value_parser = parse_duration)]
    pub renew_deadline: Duration,
    /// How often the Lease is tried or renewed.
    #[arg(long, env = "RSG_RETRY_PERIOD", default_value = "2s", value_parser = parse_duration)]
    pub retry_period: Duration,
}

/// `rsg certs` options.
#[derive(Args, Debug)]
pub struct CertsArgs {
    /// Output directory.
    #[arg(long, default_value = "webhook-certs")]
    pub dir: PathBuf,
    /// DNS names and IP addresses the serving certificate is valid for.
    #[arg(long = "name", default_values_t = vec!["localhost".to_string(), "127.0.0.1".to_string()])]
    pub names: Vec<String>,
    /// Validity of the serving certificate in days.
    #[arg(long, default_value_t = 365)]
    pub days: i64,
    /// Make a new CA even if the directory has one.
    #[arg(long)]
    pub new_ca: bool,
}
