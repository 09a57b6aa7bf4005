//! Webhook serving certificates: generation for local use and hot reload from a directory.

mod generate;
mod reload;

pub use generate::{generate_certificates, CertError, GeneratedCertificates};
pub use reload::{CertReloadError, CertStore, CA_FILE, CERT_FILE, KEY_FILE};
