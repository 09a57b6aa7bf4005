//! A small client for Prometheus' instant-query API.

use std::path::PathBuf;
use std::time::Duration;

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
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PrometheusError {
    /// The CA file could not be read or parsed.
    #[error("reading the Prometheus CA {path}: {reason}")]
    Ca { path: PathBuf, reason: String },
    /// The HTTP client could not be built.
    #[error("building the Prometheus client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Runs instant queries.
pub struct PrometheusClient {
    http: reqwest::Client,
    config: PrometheusConfig,
}

impl PrometheusClient {
    /// A client for `config`.
    pub fn new(config: PrometheusConfig) -> Result<Self, PrometheusError> {
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
            config,
        })
    }

    /// The configured URL.
    pub fn url(&self) -> &str {
        &self.config.url
    }

    /// Runs one instant query; every failure is described in the error string.
    pub async fn query(&self, query: &str) -> Result<QueryResponse, String> {
        let url = format!("{}/api/v1/query", self.config.url.trim_end_matches('/'));
        let mut request = self.http.get(&url).query(&[("query", query)]);
        if let Some(path) = &self.config.bearer_token_file {
            let token = tokio::fs::read_to_string(path)
                .await
                .map_err(|e| format!("reading the bearer token file {}: {e}", path.display()))?;
            request = request.bearer_auth(token.trim());
        }
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                format!("no answer from {url} within {:?}", self.config.timeout)
            } else {
                format!("querying {url}: {e}")
            }
        })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("reading the answer of {url}: {e}"))?;
        serde_json::from_slice::<QueryResponse>(&body).map_err(|e| {
            format!("{url} answered HTTP {status} with something that is not a Prometheus response ({e})")
        })
    }
}
