//! A TCP proxy on loopback that can cut one client off from the apiserver, the way a network
//! partition does: while cut, nothing passes in either direction on any connection, old or
//! new (a TLS handshake started meanwhile cannot finish, so no request can be sent on it).
//! When the cut heals, the connections that were open during it are closed unread, as a
//! partition's would be once their peers gave up; new ones pass again.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

struct State {
    cut: AtomicBool,
    /// Connections opened before this generation are closed once a cut heals.
    generation: AtomicU64,
}

/// A running proxy to `127.0.0.1:<target>`.
pub struct PausableProxy {
    /// The port clients connect to.
    pub port: u16,
    state: Arc<State>,
}

impl PausableProxy {
    /// Starts forwarding from a free loopback port to `target`.
    pub fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let state = Arc::new(State {
            cut: AtomicBool::new(false),
            generation: AtomicU64::new(0),
        });
        let accepting = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let born = accepting.generation.load(Ordering::Acquire);
                for (from, to) in [(&client, &server), (&server, &client)] {
                    let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else {
                        continue;
                    };
                    let state = accepting.clone();
                    std::thread::spawn(move || pump(from, to, &state, born));
                }
            }
        });
        Self { port, state }
    }

    /// Cuts every connection, open or new, off from the apiserver.
    pub fn cut(&self) {
        self.state.generation.fetch_add(1, Ordering::AcqRel);
        self.state.cut.store(true, Ordering::Release);
    }

    /// Heals the cut: the connections that were open across it are closed, new ones pass.
    pub fn heal(&self) {
        self.state.cut.store(false, Ordering::Release);
    }
}

/// Copies `from` → `to` until either side closes; holds everything while cut, and closes a
/// connection that was open across a cut instead of delivering what waited.
fn pump(mut from: TcpStream, mut to: TcpStream, state: &State, born: u64) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(20)));
    let mut buf = [0u8; 16 * 1024];
    loop {
        if state.cut.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        if born < state.generation.load(Ordering::Acquire) {
            break;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                // Read just as a cut began: drop it with the connection, like a partition.
                if state.cut.load(Ordering::Acquire) {
                    break;
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
