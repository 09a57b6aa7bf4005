//! The rsg binary under test, running against the test apiserver.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::Duration;

use super::kubectl::kubectl_apply;
use super::processes::{free_port, log_tail, spawn_logged};
use super::wait_for;

/// Leader election arguments that make the tests about leadership quick: a 4 s lease, a 3 s
/// renew deadline and a 0.5 s retry period.
pub const FAST_LEASE_ARGS: &[&str] = &[
    "--lease-duration",
    "4s",
    "--renew-deadline",
    "3s",
    "--retry-period",
    "500ms",
];

/// A running `rsg run`.
pub struct RsgProcess {
    /// HTTPS port.
    pub port: u16,
    /// Certificate directory it serves from.
    pub cert_dir: PathBuf,
    /// base64 CA bundle for the webhook configurations.
    pub ca_bundle: String,
    /// Log file.
    pub log: PathBuf,
    /// Name, also its identity in the leader Lease (stable across restarts, like a pod name).
    pub name: String,
    child: Mutex<Option<Child>>,
    kubeconfig: PathBuf,
    extra_args: Vec<String>,
    binary: PathBuf,
}

/// Path of the rsg binary built for these tests and benchmarks.
pub fn rsg_binary() -> &'static str {
    env!("CARGO_BIN_EXE_rsg")
}

/// Runs `rsg certs` into `dir` and returns the caBundle it printed.
pub fn generate_certs(dir: &Path) -> String {
    let out = Command::new(rsg_binary())
        .args([
            "certs",
            "--name",
            "127.0.0.1",
            "--name",
            "localhost",
            "--dir",
        ])
        .arg(dir)
        .output()
        .expect("running rsg certs");
    assert!(
        out.status.success(),
        "rsg certs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// GETs `path` over HTTPS from the rsg on `port`, trusting the CA in `cert_dir`.
pub fn https_get(port: u16, cert_dir: &Path, path: &str) -> Result<(u16, String), String> {
    https_request(port, cert_dir, path, None)
}

/// Sends a GET, or a POST of JSON `body`, over HTTPS to the rsg on `port`.
fn https_request(
    port: u16,
    cert_dir: &Path,
    path: &str,
    body: Option<Vec<u8>>,
) -> Result<(u16, String), String> {
    let ca = std::fs::read(cert_dir.join("ca.crt")).map_err(|e| e.to_string())?;
    https_request_to("127.0.0.1", port, &ca, path, body)
}

/// Sends a GET, or a POST of JSON `body`, over HTTPS to `host` (an address, or a name such as
/// a Service's, which then reaches 127.0.0.1) on loopback port `port`, trusting only `ca_pem`.
/// Returns (status, body).
pub fn https_request_to(
    host: &str,
    port: u16,
    ca_pem: &[u8],
    path: &str,
    body: Option<Vec<u8>>,
) -> Result<(u16, String), String> {
    let (host, ca, path) = (host.to_string(), ca_pem.to_vec(), path.to_string());
    super::block_on_helper(async move {
        let mut builder = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).map_err(|e| e.to_string())?)
            .timeout(Duration::from_secs(5));
        let url = if host.parse::<std::net::IpAddr>().is_ok() {
            format!("https://{host}:{port}{path}")
        } else {
            builder = builder.resolve(&host, std::net::SocketAddr::from(([127, 0, 0, 1], port)));
            format!("https://{host}{path}")
        };
        let client = builder.build().map_err(|e| e.to_string())?;
        let request = match body {
            None => client.get(&url),
            Some(body) => client
                .post(&url)
                .header("content-type", "application/json")
                .body(body),
        };
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        Ok((status, response.text().await.map_err(|e| e.to_string())?))
    })
}

impl RsgProcess {
    /// Generates certificates and starts `rsg run`, waiting until `/readyz` answers 200.
    pub fn start(dir: &Path, kubeconfig: &Path, name: &str) -> Self {
        let cert_dir = dir.join(format!("{name}-certs"));
        let ca_bundle = generate_certs(&cert_dir);
        Self::start_with_certs(dir, kubeconfig, name, cert_dir, ca_bundle, &[])
    }

    /// Starts `rsg run` serving from `cert_dir` with extra arguments.
    pub fn start_with_certs(
        dir: &Path,
        kubeconfig: &Path,
        name: &str,
        cert_dir: PathBuf,
        ca_bundle: String,
        extra_args: &[&str],
    ) -> Self {
        Self::start_binary_with_certs(
            Path::new(rsg_binary()),
            dir,
            kubeconfig,
            name,
            cert_dir,
            ca_bundle,
            extra_args,
        )
    }

    /// Starts `binary run` (another build of rsg, e.g. a baseline to compare against) serving
    /// from `cert_dir` with extra arguments.
    pub fn start_binary_with_certs(
        binary: &Path,
        dir: &Path,
        kubeconfig: &Path,
        name: &str,
        cert_dir: PathBuf,
        ca_bundle: String,
        extra_args: &[&str],
    ) -> Self {
        let process = Self {
            port: free_port(),
            cert_dir,
            ca_bundle,
            log: dir.join(format!("{name}.log")),
            name: name.to_string(),
            child: Mutex::new(None),
            kubeconfig: kubeconfig.to_path_buf(),
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
            binary: binary.to_path_buf(),
        };
        process.launch();
        process
    }

    fn launch(&self) {
        let mut command = Command::new(&self.binary);
        command
            .args(["run", "--listen"])
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--cert-dir")
            .arg(&self.cert_dir)
            .args(["--cert-reload-interval", "500ms"])
            .args(&self.extra_args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("RSG_LOG", "info,rsg=debug")
            .env("POD_NAME", &self.name)
            // As the shipped Deployment sets them: rsg's own namespace is never a target, and
            // no copy there runs as its ServiceAccount or uses its Secrets.
            .env("POD_NAMESPACE", "rsg-system")
            .env("RSG_SERVICE_ACCOUNT", "rsg")
            .env("RSG_OWN_SECRETS", "rsg-webhook-tls");
        let child = spawn_logged(command, &self.log);
        *self.child.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
        self.wait_ready();
    }

    /// Waits until `/readyz` answers 200.
    pub fn wait_ready(&self) {
        wait_for(
            &format!("rsg to become ready (log {})", self.log.display()),
            Duration::from_secs(60),
            || {
                matches!(
                    https_get(self.port, &self.cert_dir, "/readyz"),
                    Ok((200, _))
                )
                .then_some(())
            },
        );
    }

    /// GETs a path on the rsg port.
    pub fn get(&self, path: &str) -> Result<(u16, String), String> {
        https_get(self.port, &self.cert_dir, path)
    }

    /// POSTs JSON to a path on the rsg port.
    pub fn post(&self, path: &str, body: &[u8]) -> Result<(u16, String), String> {
        https_request(self.port, &self.cert_dir, path, Some(body.to_vec()))
    }

    /// The value of an unlabelled metric on `/metrics`, if exported.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics").ok()?;
        body.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    /// The last lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }

    /// Process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(Child::id)
    }

    /// Sends `signal` to the process without waiting.
    pub fn signal(&self, signal: i32) {
        if let Some(child) = self
            .child
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            unsafe {
                libc::kill(child.id() as i32, signal);
            }
        }
    }

    /// Waits for the process to exit after a signal; returns its exit status.
    pub fn wait_exit(&self) -> Option<std::process::ExitStatus> {
        let mut child = self
            .child
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()?;
        child.wait().ok()
    }

    /// Sends `signal` to the process and waits for it to exit; returns its exit status.
    pub fn stop(&self, signal: i32) -> Option<std::process::ExitStatus> {
        let mut slot = self.child.lock().unwrap_or_else(|p| p.into_inner());
        let mut child = slot.take()?;
        unsafe {
            libc::kill(child.id() as i32, signal);
        }
        child.wait().ok()
    }

    /// Starts the process again after [`RsgProcess::stop`].
    pub fn restart(&self) {
        self.launch();
    }
}

/// The webhook configurations rsg ships (`manifests/install/30-webhooks.yaml`), exactly as
/// shipped (names, rules, selectors, failure policy, timeouts) except `clientConfig`: the
/// apiserver here has no cluster network, so each webhook calls `https://127.0.0.1:<port>`
/// at the path its Service reference names, trusting `ca_bundle`.
pub fn shipped_webhook_configurations(port: u16, ca_bundle: &str) -> Vec<serde_json::Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/manifests/install/30-webhooks.yaml"
    );
    let text = std::fs::read_to_string(path).expect("reading the shipped webhook configurations");
    let mut configurations = Vec::new();
    for document in serde_norway::Deserializer::from_str(&text) {
        let mut configuration: serde_json::Value =
            serde::Deserialize::deserialize(document).expect("a YAML document");
        for webhook in configuration["webhooks"]
            .as_array_mut()
            .expect("a webhooks list")
        {
            let client = &mut webhook["clientConfig"];
            let service_path = client["service"]["path"]
                .as_str()
                .expect("the shipped webhooks call the rsg Service at a path")
                .to_string();
            *client = serde_json::json!({
                "url": format!("https://127.0.0.1:{port}{service_path}"),
                "caBundle": ca_bundle,
            });
        }
        configurations.push(configuration);
    }
    configurations
}

/// Registers the webhook configurations rsg ships, calling `rsg`, and waits until the
/// apiserver calls them.
pub fn register_webhooks(kubeconfig: &Path, rsg: &RsgProcess) {
    let yaml =
        super::kubectl::yaml_stream(&shipped_webhook_configurations(rsg.port, &rsg.ca_bundle));
    let out = kubectl_apply(kubeconfig, &yaml, &[]);
    assert!(out.success, "registering the webhooks: {}", out.stderr);
    // The apiserver picks webhook configurations up asynchronously: wait until a bad
    // object is rejected by the webhook.
    let probe = r#"apiVersion: autoscaling.openfuyao.com/v1alpha1
kind: ResourceScalingGroup
metadata: {name: webhook-probe, namespace: default}
spec:
  targetResources: []
  scalingStrategy: {type: Probe}
"#;
    wait_for(
        "the webhooks to be called by the apiserver",
        Duration::from_secs(30),
        || {
            let out = kubectl_apply(kubeconfig, probe, &["--dry-run=server"]);
            out.stderr.contains("denied the request").then_some(())
        },
    );
}
