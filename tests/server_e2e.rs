//! The HTTPS server as a process: certificate rotation, TLS versions, graceful shutdown.

mod support;

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::rsg_process::{generate_certs, RsgProcess};
use support::{env, wait_for};

/// Lays out `dir` the way the kubelet projects a Secret: `tls.crt -> ..data/tls.crt`,
/// `..data -> ..<version>`.
fn project_secret(dir: &Path, version: &str, source: &Path) {
    let versioned = dir.join(format!("..{version}"));
    std::fs::create_dir_all(&versioned).unwrap();
    for file in ["ca.crt", "tls.crt", "tls.key"] {
        std::fs::copy(source.join(file), versioned.join(file)).unwrap();
    }
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    symlink(format!("..{version}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for file in ["ca.crt", "tls.crt", "tls.key"] {
        let link = dir.join(file);
        if !link.exists() {
            symlink(format!("..data/{file}"), &link).unwrap();
        }
    }
}

fn served_certificate(port: u16, ca: &[u8]) -> Result<Vec<u8>, String> {
    let ca = ca.to_vec();
    support::block_on_helper(async move {
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).map_err(|e| e.to_string())?)
            .tls_info(true)
            .build()
            .map_err(|e| e.to_string())?;
        let response = client
            .get(format!("https://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let info = response
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .ok_or("no TLS info")?;
        info.peer_certificate()
            .map(<[u8]>::to_vec)
            .ok_or_else(|| "no peer certificate".to_string())
    })
}

#[test]
fn rotated_certificates_are_served_without_restart_or_failed_requests() {
    let env = env();
    let generated = env.dir.join("rotation-source");
    let ca_bundle = generate_certs(&generated);
    let secret_dir = env.dir.join("rotation-secret");
    std::fs::create_dir_all(&secret_dir).unwrap();
    project_secret(&secret_dir, "2026_01", &generated);
    let ca = std::fs::read(generated.join("ca.crt")).unwrap();
    let rsg = RsgProcess::start_with_certs(
        &env.dir,
        &env.rsg_kubeconfig,
        "rotation",
        secret_dir.clone(),
        ca_bundle,
        &[],
    );
    let first = served_certificate(rsg.port, &ca).expect("first certificate");

    // A client that keeps calling through the swap, each call on a new connection.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let caller = {
        let (stop, ok, failed, ca, port) = (
            stop.clone(),
            ok.clone(),
            failed.clone(),
            ca.clone(),
            rsg.port,
        );
        std::thread::spawn(move || {
            let mut errors = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match served_certificate(port, &ca) {
                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        errors.push(e);
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
            errors
        })
    };
    wait_for("calls before the swap", Duration::from_secs(10), || {
        (ok.load(Ordering::Relaxed) >= 20).then_some(())
    });

    // Rotate: a new serving pair signed by the same CA, swapped in by symlink.
    generate_certs(&generated);
    project_secret(&secret_dir, "2026_02", &generated);
    let rotated = wait_for(
        "the new certificate to be served",
        Duration::from_secs(15),
        || {
            served_certificate(rsg.port, &ca)
                .ok()
                .filter(|c| *c != first)
        },
    );
    let after_swap = ok.load(Ordering::Relaxed);
    wait_for("calls after the swap", Duration::from_secs(10), || {
        (ok.load(Ordering::Relaxed) >= after_swap + 20).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    let errors = caller.join().unwrap();
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "failed calls during rotation: {errors:?}"
    );
    assert_ne!(rotated, first);
    assert!(rsg.log_tail(200).contains("serving certificate reloaded"));

    // A broken pair (certificate without matching key) leaves the current one serving.
    std::fs::write(secret_dir.join("..2026_02/tls.key"), "not a key").unwrap();
    generate_certs(&generated);
    std::fs::copy(
        generated.join("tls.crt"),
        secret_dir.join("..2026_02/tls.crt"),
    )
    .unwrap();
    wait_for(
        "the broken pair to be reported",
        Duration::from_secs(10),
        || {
            rsg.log_tail(50)
                .contains("serving certificate not reloaded")
                .then_some(())
        },
    );
    assert_eq!(
        served_certificate(rsg.port, &ca).expect("still serving"),
        rotated
    );
    rsg.stop(libc::SIGKILL);
}

/// What `openssl s_client` saw: whether a handshake completed, and its output.
fn openssl_handshake(port: u16, version_flags: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(version_flags)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running openssl s_client: apt-get install openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success() && text.contains("BEGIN CERTIFICATE"),
        text,
    )
}

/// OpenSSL 3 refuses TLS 1.1 at its default security level before the server has a say;
/// level 0 makes the client really offer it.
const OFFER_TLS_1_1: &[&str] = &["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"];

#[test]
fn only_tls_1_2_and_later_are_accepted() {
    let port = env().rsg.port;
    assert!(openssl_handshake(port, &["-tls1_2"]).0);
    assert!(openssl_handshake(port, &["-tls1_3"]).0);

    // The client used below does complete TLS 1.1 with a server that allows it ...
    let cert_dir = env().dir.join("tls11-certs");
    generate_certs(&cert_dir);
    let legacy_port = support::processes::free_port();
    let mut legacy = Command::new("openssl");
    legacy
        .args(["s_server", "-accept", &format!("127.0.0.1:{legacy_port}")])
        .arg("-cert")
        .arg(cert_dir.join("tls.crt"))
        .arg("-key")
        .arg(cert_dir.join("tls.key"))
        .args(["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0", "-www"]);
    let mut legacy = support::processes::spawn_logged(legacy, &env().dir.join("s_server.log"));
    let (legacy_ok, legacy_out) = wait_for(
        "openssl s_server to accept TLS 1.1",
        Duration::from_secs(10),
        || {
            let (ok, out) = openssl_handshake(legacy_port, OFFER_TLS_1_1);
            ok.then_some((ok, out))
        },
    );
    let _ = legacy.kill();
    let _ = legacy.wait();
    assert!(
        legacy_ok && legacy_out.contains("Protocol  : TLSv1.1"),
        "{legacy_out}"
    );

    // ... and rsg refuses it: the refusal is the server's, an alert answering the hello.
    let (ok, out) = openssl_handshake(port, OFFER_TLS_1_1);
    assert!(!ok, "rsg completed a TLS 1.1 handshake:\n{out}");
    assert!(out.contains("SSL alert number"), "{out}");
}

#[test]
fn sigterm_reports_not_ready_then_exits_cleanly() {
    let env = env();
    let cert_dir = env.dir.join("shutdown-certs");
    let ca_bundle = generate_certs(&cert_dir);
    let rsg = RsgProcess::start_with_certs(
        &env.dir,
        &env.rsg_kubeconfig,
        "shutdown",
        cert_dir,
        ca_bundle,
        &["--shutdown-delay", "3s"],
    );
    rsg.signal(libc::SIGTERM);
    let (status, body) = wait_for("readiness to drop", Duration::from_secs(3), || {
        rsg.get("/readyz").ok().filter(|(status, _)| *status == 503)
    });
    assert_eq!(status, 503);
    assert!(body.contains("[-] not shutting down"), "{body}");
    assert_eq!(
        rsg.get("/healthz").map(|(s, _)| s),
        Ok(200),
        "keeps serving during the delay"
    );
    let exit = rsg.wait_exit().expect("exit status");
    assert!(exit.success(), "exit status {exit:?}");
    assert!(rsg.log_tail(20).contains("stopped"));
}
