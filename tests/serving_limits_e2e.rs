//! The HTTPS port's bounds, against the rsg binary over TLS: a client that trickles its
//! request head or body, sits idle, or opens more connections than allowed is cut off, while
//! a normal client keeps being served.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use support::env;
use support::rsg_process::RsgProcess;

/// Starts an rsg of its own for one test, with `args` (it stays a standby: only its
/// serving is looked at).
fn start_rsg(name: &str, args: &[&str]) -> RsgProcess {
    let env = env();
    RsgProcess::start_with_certs(
        &env.dir,
        &env.rsg_kubeconfig,
        name,
        env.rsg.cert_dir.clone(),
        env.rsg.ca_bundle.clone(),
        args,
    )
}

fn tls_config(rsg: &RsgProcess) -> Arc<rustls::ClientConfig> {
    let pem = std::fs::read(rsg.cert_dir.join("ca.crt")).expect("reading the CA");
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.expect("a PEM certificate")).expect("a CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// A TCP connection to `rsg`'s port that has not started TLS.
fn tcp(rsg: &RsgProcess) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", rsg.port)).expect("connecting");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("read timeout");
    stream
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS connection to `rsg` (HTTP/1.1), handshake completed.
fn tls(rsg: &RsgProcess) -> Tls {
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("server name");
    let connection = rustls::ClientConnection::new(tls_config(rsg), name).expect("a TLS client");
    let mut stream = rustls::StreamOwned::new(connection, tcp(rsg));
    while stream.conn.is_handshaking() {
        stream
            .conn
            .complete_io(&mut stream.sock)
            .expect("TLS handshake");
    }
    stream
}

/// Reads until the peer closes the connection; returns when it did (None: still open
/// after the socket's read timeout).
fn closed_after<S: Read>(stream: &mut S, since: Instant) -> Option<Duration> {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Some(since.elapsed()),
            Ok(_) => continue,
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None
            }
            // A reset or a TLS stream cut without close_notify: closed all the same.
            Err(_) => return Some(since.elapsed()),
        }
    }
}

/// Reads one HTTP/1.1 response (head and a Content-Length body) and returns its status
/// line and body.
fn read_response<S: Read>(stream: &mut S) -> (String, String) {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).expect("reading a response");
        assert!(
            n > 0,
            "closed before a response: {}",
            String::from_utf8_lossy(&bytes)
        );
        bytes.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_string)
                })
                .and_then(|l| l.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if bytes.len() >= end + 4 + length {
                let status = text.lines().next().unwrap_or_default().to_string();
                return (status, text[end + 4..end + 4 + length].to_string());
            }
        }
    }
}

#[test]
fn a_client_trickling_its_head_or_body_is_cut_off_and_an_idle_one_closed() {
    let rsg = start_rsg(
        "rsg-slow",
        &[
            "--header-read-timeout",
            "1s",
            "--idle-timeout",
            "60s",
            "--request-timeout",
            "1s",
        ],
    );
    // No TLS handshake at all: closed at the header-read timeout.
    let started = Instant::now();
    let closed = closed_after(&mut tcp(&rsg), started).expect("a silent client is cut off");
    assert!(
        closed >= Duration::from_millis(900) && closed < Duration::from_secs(5),
        "closed after {closed:?}"
    );
    // Handshake done, half a request head, then nothing.
    let mut slow_head = tls(&rsg);
    slow_head
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: rsg\r\n")
        .expect("writing");
    let started = Instant::now();
    let closed = closed_after(&mut slow_head, started).expect("a slow head is cut off");
    assert!(closed < Duration::from_secs(5), "closed after {closed:?}");
    // A full head and part of the body, then nothing: answered 503 at the request timeout.
    let mut slow_body = tls(&rsg);
    slow_body
        .write_all(b"POST /validate HTTP/1.1\r\nHost: rsg\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"apiVersion\":")
        .expect("writing");
    let started = Instant::now();
    let (status, body) = read_response(&mut slow_body);
    assert!(status.contains(" 503 "), "{status}");
    assert!(body.contains("did not complete within 1s"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        rsg.metric("rsg_http_requests_timed_out_total")
            .unwrap_or(0.0)
            >= 1.0
    );

    // A connection with no request in flight is closed at the idle timeout (the header-read
    // timeout being far longer, so it is the idle timer that acts).
    let idle = start_rsg(
        "rsg-idle",
        &["--header-read-timeout", "60s", "--idle-timeout", "1s"],
    );
    let mut kept_alive = tls(&idle);
    kept_alive
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: rsg\r\n\r\n")
        .expect("writing");
    let (status, _) = read_response(&mut kept_alive);
    assert!(status.contains(" 200 "), "{status}");
    let started = Instant::now();
    let closed = closed_after(&mut kept_alive, started).expect("an idle connection is closed");
    assert!(
        closed >= Duration::from_millis(700) && closed < Duration::from_secs(5),
        "closed after {closed:?}"
    );
    idle.stop(libc::SIGTERM);
    rsg.stop(libc::SIGTERM);
}

#[test]
fn past_the_connection_limit_new_connections_are_refused_while_a_client_is_served() {
    let rsg = start_rsg(
        "rsg-flood",
        &[
            "--max-connections",
            "4",
            "--header-read-timeout",
            "60s",
            "--max-body-bytes",
            "8192",
        ],
    );
    // A normal client, connected first (as the API server keeps its connections).
    let mut client = tls(&rsg);
    let review = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/admission/create-invalid.json"
    ))
    .expect("a review fixture");
    let post = |stream: &mut Tls, body: &[u8]| {
        let head = format!(
            "POST /validate HTTP/1.1\r\nHost: rsg\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).expect("writing");
        stream.write_all(body).expect("writing");
        read_response(stream)
    };
    let (status, _) = post(&mut client, &review);
    assert!(status.contains(" 200 "), "{status}");
    // A flood: three more connections take the remaining slots; the next is closed at once.
    let _flood: Vec<TcpStream> = (0..3).map(|_| tcp(&rsg)).collect();
    let started = Instant::now();
    let refused = closed_after(&mut tcp(&rsg), started).expect("refused");
    assert!(refused < Duration::from_secs(2), "closed after {refused:?}");
    // The connected client is still served.
    let (status, body) = post(&mut client, &review);
    assert!(status.contains(" 200 "), "{status}");
    assert!(body.contains("\"allowed\":false"), "{body}");
    // An oversized body is refused with 413 (the connection may close after it).
    let (status, _) = post(&mut client, &[b' '; 16384]);
    assert!(status.contains(" 413 "), "{status}");
    drop(_flood);
    drop(client);
    // Counted (read once the flood is gone and a slot is free).
    let refused_count = support::wait_for(
        "a free slot to read the metric",
        Duration::from_secs(10),
        || rsg.metric("rsg_http_connections_refused_total"),
    );
    assert!(refused_count >= 1.0, "{refused_count}");
    rsg.stop(libc::SIGTERM);
}
