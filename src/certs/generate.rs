//! `rsg certs`: a CA and a serving certificate made with rcgen.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use super::reload::{CA_FILE, CERT_FILE, KEY_FILE};

/// File name of the CA's private key.
const CA_KEY_FILE: &str = "ca.key";

/// Why certificates could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen failed.
    #[error("generating certificates: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// No DNS name or IP was given.
    #[error("at least one DNS name or IP address is needed")]
    NoNames,
}

/// What `rsg certs` produced.
pub struct GeneratedCertificates {
    /// The CA certificate, base64-encoded PEM: the webhook configurations' `caBundle`.
    pub ca_bundle: String,
    /// Whether an existing CA in the directory was reused.
    pub reused_ca: bool,
}

fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "rsg webhook CA");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(3650);
    Ok(params)
}

fn write_file(path: &Path, contents: &str, mode: u32) -> Result<(), CertError> {
    let io = |source| CertError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    file.write_all(contents.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}

/// Writes `ca.crt`, `ca.key`, `tls.crt` and `tls.key` into `dir`. An existing CA key in
/// `dir` is reused (so a registered `caBundle` stays valid) unless `new_ca` is set.
pub fn generate_certificates(
    dir: &Path,
    names: &[String],
    validity_days: i64,
    new_ca: bool,
) -> Result<GeneratedCertificates, CertError> {
    if names.is_empty() {
        return Err(CertError::NoNames);
    }
    fs::create_dir_all(dir).map_err(|source| CertError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let ca_key_path = dir.join(CA_KEY_FILE);
    let existing_key = if new_ca {
        None
    } else {
        fs::read_to_string(&ca_key_path).ok()
    };
    let reused_ca = existing_key.is_some();
    let ca_key = match existing_key {
        Some(pem) => KeyPair::from_pem(&pem)?,
        None => KeyPair::generate()?,
    };
    let ca_params = ca_params()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut params = CertificateParams::new(names.to_vec())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, names[0].as_str());
    params.distinguished_name = dn;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(validity_days);
    let serving_key = KeyPair::generate()?;
    let serving_cert = params.signed_by(&serving_key, &issuer)?;

    let ca_pem = ca_cert.pem();
    if !reused_ca {
        write_file(&ca_key_path, &issuer_key_pem(&issuer), 0o600)?;
    }
    write_file(&dir.join(CA_FILE), &ca_pem, 0o644)?;
    // The key first: a reader that sees the new certificate then also finds its key.
    write_file(&dir.join(KEY_FILE), &serving_key.serialize_pem(), 0o600)?;
    write_file(&dir.join(CERT_FILE), &serving_cert.pem(), 0o644)?;
    Ok(GeneratedCertificates {
        ca_bundle: base64::engine::general_purpose::STANDARD.encode(ca_pem),
        reused_ca,
    })
}

fn issuer_key_pem(issuer: &Issuer<'_, KeyPair>) -> String {
    issuer.key().serialize_pem()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_ca_and_a_serving_pair_and_reuses_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec![
            "rsg.scaling-system.svc".to_string(),
            "127.0.0.1".to_string(),
        ];
        let first = generate_certificates(dir.path(), &names, 30, false).unwrap();
        assert!(!first.reused_ca);
        for file in [CA_FILE, CA_KEY_FILE, CERT_FILE, KEY_FILE] {
            assert!(dir.path().join(file).exists(), "{file} missing");
        }
        let cert_before = fs::read(dir.path().join(CERT_FILE)).unwrap();
        let second = generate_certificates(dir.path(), &names, 30, false).unwrap();
        assert!(second.reused_ca);
        assert_ne!(cert_before, fs::read(dir.path().join(CERT_FILE)).unwrap());
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        assert!(matches!(
            generate_certificates(dir.path(), &[], 30, false),
            Err(CertError::NoNames)
        ));
    }
}
