//! A small client for Prometheus' instant-query API.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::query_budget::QueryBudget;
use super::values::QueryResponse;

/// How to reach Prometheus.
#[derive(Clone, Debug)]
pub struct PrometheusConfig {
    /// Base URL, e.g. `http://prometheus.monitoring:9090`.
    pub url: String,
    /// File holding a bearer token, read on every query (so rotation works); never logged.
    pub bearer_token_file: Option<PathBuf>,
    /// PEM file with the CA that signs Prometheus' certificate.
    pub ca_file: Option<PathBuf>,
    /// Bound on one query.
    pub timeout: Duration,
    /// Each RSG queries at most once per this interval (draining polls included); a
    /// reconcile within it reuses the RSG's last answer to the same query.
    pub min_query_interval: Duration,
}

/// How many RSGs' last answers are kept (those older than the interval are dropped first).
const REMEMBERED_RSGS: usize = 20_000;

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PrometheusError {
    /// The CA file could not be read or parsed.
    #[error("reading the Prometheus CA {path}: {reason}")]
    Ca { path: PathBuf, reason: String },
    /// The HTTP client could not be built.
    #[error("building the Prometheus client: {0}")]
    Client(#[from] reqwest::Error),
    /// A bearer token would travel in clear text.
    #[error("refusing to send the Prometheus bearer token over plain http; use an https URL")]
    TokenOverPlainHttp,
}

/// Why a query has no answer. The messages name Prometheus but never its URL (they reach
/// RSG status and Events); answers are kept for reuse, so the error is cloneable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The bearer token file could not be read.
    #[error("reading the Prometheus bearer token file: {0}")]
    TokenFile(std::io::ErrorKind),
    /// No answer within the client's timeout.
    #[error("no answer from Prometheus within {0:?}")]
    Timeout(Duration),
    /// The request failed (connection refused, TLS, ...).
    #[error("querying Prometheus: {0}")]
    Request(String),
    /// The answer could not be read to its end.
    #[error("reading the answer of Prometheus: {0}")]
    Read(String),
    /// The answer is over [`MAX_RESPONSE_BYTES`].
    #[error("Prometheus answered more than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
    /// The body is not a Prometheus API response.
    #[error("Prometheus answered HTTP {status} with something that is not a Prometheus response ({reason})")]
    NotAResponse {
        /// The HTTP status.
        status: reqwest::StatusCode,
        /// What the JSON decoder said.
        reason: String,
    },
}

/// The largest answer read from Prometheus; a larger one is an error (the decision falls
/// back). One value per group of at most 1000 groups is a few hundred KiB.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// Runs instant queries.
pub struct PrometheusClient {
    http: reqwest::Client,
    config: PrometheusConfig,
    budget: Mutex<QueryBudget>,
}

impl PrometheusClient {
    /// A client for `config`.
    pub fn new(config: PrometheusConfig) -> Result<Self, PrometheusError> {
        let plain_http = config
            .url
            .get(..7)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"));
        if config.bearer_token_file.is_some() && plain_http {
            return Err(PrometheusError::TokenOverPlainHttp);
        }
        let mut builder = reqwest::Client::builder().timeout(config.timeout);
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path).map_err(|e| PrometheusError::Ca {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let ca = reqwest::Certificate::from_pem(&pem).map_err(|e| PrometheusError::Ca {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            builder = builder.add_root_certificate(ca);
        }
        Ok(Self {
            http: builder.build()?,
            budget: Mutex::new(QueryBudget::new(config.min_query_interval, REMEMBERED_RSGS)),
            config,
        })
    }

    /// The configured URL.
    pub fn url(&self) -> &str {
        &self.config.url
    }

    /// Runs `query` for the RSG `rsg` (`namespace/name`) unless that RSG was answered the same
    /// query less than the minimum interval ago, in which case that answer is reused (and
    /// `true` returned beside it).
    pub async fn query_for(
        &self,
        rsg: &str,
        query: &str,
    ) -> (Result<QueryResponse, QueryError>, bool) {
        if let Some(answer) = self.budget().reusable(rsg, query, Instant::now()) {
            return (answer, true);
        }
        let answer = self.query(query).await;
        self.budget()
            .record(rsg, query, answer.clone(), Instant::now());
        (answer, false)
    }

    fn budget(&self) -> std::sync::MutexGuard<'_, QueryBudget> {
        self.budget
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs one instant query.
    pub async fn query(&self, query: &str) -> Result<QueryResponse, QueryError> {
        let url = format!("{}/api/v1/query", self.config.url.trim_end_matches('/'));
        let mut request = self.http.get(&url).query(&[("query", query)]);
        if let Some(path) = &self.config.bearer_token_file {
            let token = tokio::fs::read_to_string(path)
                .await
                .map_err(|e| QueryError::TokenFile(e.kind()))?;
            request = request.bearer_auth(token.trim());
        }
        let timeout = self.config.timeout;
        let mut response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                QueryError::Timeout(timeout)
            } else {
                QueryError::Request(e.without_url().to_string())
            }
        })?;
        let status = response.status();
        if response
            .content_length()
            .is_some_and(|length| length > MAX_RESPONSE_BYTES as u64)
        {
            return Err(QueryError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| {
            if e.is_timeout() {
                QueryError::Timeout(timeout)
            } else {
                QueryError::Read(e.without_url().to_string())
            }
        })? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(QueryError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice::<QueryResponse>(&body).map_err(|e| QueryError::NotAResponse {
            status,
            reason: e.to_string(),
        })
    }
}
