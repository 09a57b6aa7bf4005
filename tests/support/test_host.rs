//! A test host: a network namespace of this test binary's own, joined to the machine by a veth
//! pair, with an address the API server can reach through a Service's endpoints. The API
//! server refuses loopback endpoints, so an aggregated API server (KEDA's metrics API server,
//! metrics-server) that listens on loopback is published at the test host instead: a relay
//! listens on the host's address inside the namespace and forwards each connection to the
//! loopback port. Nothing leaves the machine: the namespace's only link is the veth pair.
//!
//! Needs root (as CI and these machines run) and `ip` from iproute2.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::OnceLock;

/// Where `ip netns add` puts a namespace's handle.
const NETNS_DIR: &str = "/var/run/netns";
/// Prefix of the namespaces (and the root side of their veth pairs) the test binaries make.
const PREFIX: &str = "rsgt";

/// A network namespace with one address, reached from the machine over a veth pair.
pub struct TestHost {
    /// The namespace's name (`ip netns list`).
    pub netns: String,
    /// The host's address, inside the namespace.
    pub address: Ipv4Addr,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| {
        format!("running ip ({e}): apt-get install iproute2 (the test host needs it, and root)")
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Deletes the namespaces of test binaries that are gone (their veth pairs go with them).
fn remove_stale_namespaces() {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(pid) = name.strip_prefix(PREFIX) else {
            continue;
        };
        if pid
            .parse::<u32>()
            .is_ok_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
        {
            let _ = ip(&["netns", "delete", &name]);
        }
    }
}

impl TestHost {
    /// The test host of this test binary, made on first use.
    pub fn get() -> &'static TestHost {
        static HOST: OnceLock<TestHost> = OnceLock::new();
        HOST.get_or_init(|| Self::create().unwrap_or_else(|e| panic!("making the test host: {e}")))
    }

    fn create() -> Result<Self, String> {
        remove_stale_namespaces();
        let pid = std::process::id();
        let netns = format!("{PREFIX}{pid}");
        // A /30 of 10.231.0.0/16 picked by the process id: one per test binary running at once.
        let subnet = (pid % 16_000) * 4;
        let octets = |last: u32| {
            let value = subnet + last;
            Ipv4Addr::new(10, 231, (value >> 8) as u8, (value & 0xff) as u8)
        };
        let (outside, inside) = (octets(1), octets(2));
        let _ = ip(&["netns", "delete", &netns]);
        ip(&["netns", "add", &netns])?;
        let host = Self {
            netns: netns.clone(),
            address: inside,
        };
        ip(&[
            "link", "add", &netns, "type", "veth", "peer", "name", "eth0", "netns", &netns,
        ])?;
        ip(&["addr", "add", &format!("{outside}/30"), "dev", &netns])?;
        ip(&["link", "set", &netns, "up"])?;
        ip(&[
            "-n",
            &netns,
            "addr",
            "add",
            &format!("{inside}/30"),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &netns, "link", "set", "eth0", "up"])?;
        ip(&["-n", &netns, "link", "set", "lo", "up"])?;
        // SAFETY: registers a plain function, run once when the test binary exits.
        unsafe { libc::atexit(delete_own_namespace) };
        Ok(host)
    }

    /// Listens on a free port of the test host and forwards every connection to
    /// `127.0.0.1:<loopback_port>` of the machine, for as long as the test binary runs;
    /// returns the port.
    pub fn relay(&self, loopback_port: u16) -> u16 {
        let listener = self.listen();
        let port = listener
            .local_addr()
            .map(|address| address.port())
            .unwrap_or_else(|e| panic!("the relay's address: {e}"));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect((Ipv4Addr::LOCALHOST, loopback_port)) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                for (from, to) in [(&client, &server), (&server, &client)] {
                    let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else {
                        continue;
                    };
                    std::thread::spawn(move || pump(from, to));
                }
            }
        });
        port
    }

    /// A socket listening on a free port of the test host: bound by a thread that enters the
    /// namespace for just that (a socket stays in the namespace it was made in).
    fn listen(&self) -> TcpListener {
        let handle = format!("{NETNS_DIR}/{}", self.netns);
        let address = SocketAddrV4::new(self.address, 0);
        std::thread::spawn(move || -> Result<TcpListener, String> {
            let namespace = File::open(&handle).map_err(|e| format!("opening {handle}: {e}"))?;
            // SAFETY: setns on a namespace handle this thread opened; it changes only this
            // thread's network namespace, and the thread ends right after binding.
            if unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(format!(
                    "entering {handle}: {} (the test host needs root)",
                    std::io::Error::last_os_error()
                ));
            }
            TcpListener::bind(address).map_err(|e| format!("listening on {address}: {e}"))
        })
        .join()
        .expect("the thread binding in the test host")
        .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Deletes this test binary's namespace (and so its veth pair) as the binary exits.
extern "C" fn delete_own_namespace() {
    let _ = ip(&[
        "netns",
        "delete",
        &format!("{PREFIX}{}", std::process::id()),
    ]);
}

/// Copies `from` → `to` until either side closes.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
