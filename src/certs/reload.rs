//! The serving certificate, read from a directory and swapped in place when the files change.
//!
//! Kubernetes Secret volumes change by symlink swap and cert-manager rewrites files, so the
//! directory is polled and the contents compared; a pair that fails to load (for example a
//! certificate written before its key) leaves the previous pair serving.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Serving certificate chain file name (as in a `kubernetes.io/tls` Secret).
pub const CERT_FILE: &str = "tls.crt";
/// Serving key file name.
pub const KEY_FILE: &str = "tls.key";
/// CA certificate file name.
pub const CA_FILE: &str = "ca.crt";

/// Why a certificate pair could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CertReloadError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The certificate file held no certificate.
    #[error("{0} contains no PEM certificate")]
    NoCertificate(PathBuf),
    /// The key file held no key.
    #[error("{0} contains no PEM private key")]
    NoKey(PathBuf),
    /// PEM parsing failed.
    #[error("parsing {path}: {source}")]
    Pem { path: PathBuf, source: pem::Error },
    /// The key is unsupported or does not match the certificate.
    #[error("certificate and key do not form a usable pair: {0}")]
    Pair(#[from] rustls::Error),
}

/// The current serving certificate; a rustls certificate resolver.
pub struct CertStore {
    dir: PathBuf,
    current: ArcSwapOption<CertifiedKey>,
    last_contents: std::sync::Mutex<Option<(Vec<u8>, Vec<u8>)>>,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore")
            .field("dir", &self.dir)
            .field("loaded", &self.is_loaded())
            .finish()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.load_full()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, CertReloadError> {
    std::fs::read(path).map_err(|source| CertReloadError::Read {
        path: path.to_path_buf(),
        source,
    })
}

impl CertStore {
    /// A store for the pair in `dir`; nothing is loaded until [`CertStore::reload`].
    pub fn new(dir: impl Into<PathBuf>, provider: Arc<CryptoProvider>) -> Self {
        Self {
            dir: dir.into(),
            current: ArcSwapOption::empty(),
            last_contents: std::sync::Mutex::new(None),
            provider,
        }
    }

    /// True once a certificate is loaded.
    pub fn is_loaded(&self) -> bool {
        self.current.load().is_some()
    }

    /// Reads the files; swaps in the new pair if they changed and form a valid pair.
    /// Returns whether a new pair was installed.
    pub fn reload(&self) -> Result<bool, CertReloadError> {
        let cert_path = self.dir.join(CERT_FILE);
        let key_path = self.dir.join(KEY_FILE);
        let cert_pem = read(&cert_path)?;
        let key_pem = read(&key_path)?;
        let mut last = self.last_contents.lock().unwrap_or_else(|p| p.into_inner());
        if last
            .as_ref()
            .is_some_and(|(c, k)| *c == cert_pem && *k == key_pem)
        {
            return Ok(false);
        }
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| CertReloadError::Pem {
                path: cert_path.clone(),
                source,
            })?;
        if chain.is_empty() {
            return Err(CertReloadError::NoCertificate(cert_path));
        }
        let key = match PrivateKeyDer::from_pem_slice(&key_pem) {
            Ok(key) => key,
            Err(pem::Error::NoItemsFound) => return Err(CertReloadError::NoKey(key_path)),
            Err(source) => {
                return Err(CertReloadError::Pem {
                    path: key_path,
                    source,
                })
            }
        };
        let certified = CertifiedKey::from_der(chain, key, &self.provider)?;
        self.current.store(Some(Arc::new(certified)));
        *last = Some((cert_pem, key_pem));
        Ok(true)
    }

    /// Polls the directory every `interval` until shutdown, reloading on change.
    pub async fn watch(self: Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            let store = self.clone();
            match tokio::task::spawn_blocking(move || store.reload()).await {
                Ok(Ok(true)) => info!(dir = %self.dir.display(), "serving certificate reloaded"),
                Ok(Ok(false)) => {}
                Ok(Err(err)) => {
                    warn!(error = %err, "serving certificate not reloaded; the previous one stays in use")
                }
                Err(err) => warn!(error = %err, "certificate reload task failed"),
            }
        }
    }
}
