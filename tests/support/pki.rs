//! Certificates the test world's other components need and `rsg certs` does not make: a client
//! certificate (the API server's front proxy, which signs the requests it forwards to
//! aggregated API servers) and certificates valid for both ends of a mutual TLS link (KEDA's
//! operator and its metrics API server). Made with openssl, EC P-256 keys.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A certificate and its key on disk.
pub struct KeyPair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running openssl ({e}): apt-get install openssl"));
    assert!(
        out.status.success(),
        "openssl {} failed: {}",
        args.first().copied().unwrap_or_default(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// A self-signed CA named `name`, written as `<name>.crt` and `<name>.key` in `dir`.
pub fn certificate_authority(dir: &Path, name: &str) -> KeyPair {
    std::fs::create_dir_all(dir).expect("creating a certificate directory");
    let pair = KeyPair {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "3650",
        "-subj",
        &format!("/CN={name}"),
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        "-keyout",
        path_str(&pair.key),
        "-out",
        path_str(&pair.cert),
    ]);
    pair
}

/// A certificate for `common_name`, signed by `ca`, valid for the DNS names and IP addresses
/// in `names` (none for a pure client certificate) and for the extended key usages `usages`
/// (`serverAuth`, `clientAuth`), written as `<file>.crt` and `<file>.key` in `dir`.
pub fn issue(
    dir: &Path,
    ca: &KeyPair,
    file: &str,
    common_name: &str,
    names: &[&str],
    usages: &str,
) -> KeyPair {
    let pair = KeyPair {
        cert: dir.join(format!("{file}.crt")),
        key: dir.join(format!("{file}.key")),
    };
    let request = dir.join(format!("{file}.csr"));
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        &format!("/CN={common_name}"),
        "-keyout",
        path_str(&pair.key),
        "-out",
        path_str(&request),
    ]);
    let mut extensions = format!(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage={usages}\n"
    );
    if !names.is_empty() {
        let alt_names: Vec<String> = names
            .iter()
            .map(|name| match name.parse::<std::net::IpAddr>() {
                Ok(_) => format!("IP:{name}"),
                Err(_) => format!("DNS:{name}"),
            })
            .collect();
        extensions.push_str(&format!("subjectAltName={}\n", alt_names.join(",")));
    }
    let extensions_file = dir.join(format!("{file}.ext"));
    std::fs::write(&extensions_file, extensions).expect("writing certificate extensions");
    openssl(&[
        "x509",
        "-req",
        "-days",
        "3650",
        "-in",
        path_str(&request),
        "-CA",
        path_str(&ca.cert),
        "-CAkey",
        path_str(&ca.key),
        "-CAcreateserial",
        "-extfile",
        path_str(&extensions_file),
        "-out",
        path_str(&pair.cert),
    ]);
    pair
}

/// The base64 of `path`'s contents, as a `caBundle` field takes it.
pub fn ca_bundle(path: &Path) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .encode(std::fs::read(path).expect("reading a certificate"))
}
