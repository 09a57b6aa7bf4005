//! An authenticating HTTPS front for Prometheus, as clusters put one before it (Prometheus' own
//! `web.config.file` knows TLS and basic auth, not bearer tokens): it serves TLS with a
//! certificate of the test CA, lets through only requests carrying `Authorization: Bearer
//! <token>` and forwards them to Prometheus over TLS, trusting the same CA. It counts what it
//! let through and what it refused, so a test sees the token was checked.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A running front on a loopback port.
pub struct TokenFront {
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    allowed: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
}

/// Requests' heads larger than this are refused (the front reads no body).
const MAX_HEAD: usize = 64 * 1024;

fn server_config(cert_dir: &Path) -> Arc<rustls::ServerConfig> {
    let chain = CertificateDer::pem_file_iter(cert_dir.join("tls.crt"))
        .expect("the front's certificate")
        .collect::<Result<Vec<_>, _>>()
        .expect("PEM certificates");
    let key = PrivateKeyDer::from_pem_file(cert_dir.join("tls.key")).expect("the front's key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("a server config");
    Arc::new(config)
}

/// The request line's target and whether the head carries `Authorization: Bearer <token>`.
fn parse_head(head: &str, token: &str) -> Option<(String, bool)> {
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let (method, target) = (request_line.next()?, request_line.next()?);
    if method != "GET" && method != "POST" {
        return None;
    }
    let expected = format!("bearer {token}");
    let authorized = lines.any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.eq_ignore_ascii_case("authorization")
                && value.trim().eq_ignore_ascii_case(&expected)
        })
    });
    Some((target.to_string(), authorized))
}

async fn answer<S: AsyncReadExt + AsyncWriteExt + Unpin>(
    mut stream: S,
    upstream: &str,
    client: &reqwest::Client,
    token: &str,
    allowed: &AtomicUsize,
    refused: &AtomicUsize,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() > MAX_HEAD {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let (status, body) = match parse_head(&String::from_utf8_lossy(&head), token) {
        Some((target, true)) => {
            allowed.fetch_add(1, Ordering::Relaxed);
            match client.get(format!("{upstream}{target}")).send().await {
                Ok(response) => (
                    response.status().as_u16(),
                    response.text().await.unwrap_or_default(),
                ),
                Err(error) => (502, error.to_string()),
            }
        }
        Some((_, false)) => {
            refused.fetch_add(1, Ordering::Relaxed);
            (401, "missing or wrong bearer token".to_string())
        }
        None => (400, "bad request".to_string()),
    };
    let response = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

impl TokenFront {
    /// Starts the front for `upstream` (Prometheus' https URL), serving the certificate in
    /// `cert_dir` (`tls.crt`, `tls.key`, signed by `ca.crt`, which it trusts upstream).
    pub fn start(cert_dir: &Path, upstream: &str, token: &str) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding the front");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let url = format!(
            "https://127.0.0.1:{}",
            listener.local_addr().expect("the front's address").port()
        );
        let (allowed, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let acceptor = tokio_rustls::TlsAcceptor::from(server_config(cert_dir));
        let ca = std::fs::read(cert_dir.join("ca.crt")).expect("the CA");
        let (upstream, token) = (upstream.to_string(), token.to_string());
        let (allowed_count, refused_count) = (allowed.clone(), refused.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the front");
            runtime.block_on(async move {
                let client = reqwest::Client::builder()
                    .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA"))
                    .timeout(Duration::from_secs(5))
                    .build()
                    .expect("an upstream client");
                let listener = tokio::net::TcpListener::from_std(listener).expect("a listener");
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        continue;
                    };
                    let (acceptor, client) = (acceptor.clone(), client.clone());
                    let (upstream, token) = (upstream.clone(), token.clone());
                    let (allowed, refused) = (allowed_count.clone(), refused_count.clone());
                    tokio::spawn(async move {
                        if let Ok(tls) = acceptor.accept(tcp).await {
                            let _ =
                                answer(tls, &upstream, &client, &token, &allowed, &refused).await;
                        }
                    });
                }
            });
        });
        Self {
            url,
            allowed,
            refused,
        }
    }

    /// Requests let through so far.
    pub fn allowed(&self) -> usize {
        self.allowed.load(Ordering::Relaxed)
    }

    /// Requests refused so far (no or a wrong token).
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::Relaxed)
    }
}
