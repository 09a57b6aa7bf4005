//! rustls server configuration: TLS 1.2 and 1.3, certificate from the reloading store.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::ServerConfig;

use crate::certs::CertStore;

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[error("building the TLS configuration: {0}")]
pub struct TlsConfigError(#[from] rustls::Error);

/// A server configuration that asks `certs` for the certificate on every handshake.
pub fn server_config(
    provider: Arc<CryptoProvider>,
    certs: Arc<CertStore>,
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
