//! KEDA itself (github.com/kedacore/keda/v2 at the version of `hack/versions.sh`, built by
//! `hack/install-k8s.sh`) and its CRDs, run against the test control plane: the operator polls
//! a ScaledObject's triggers and moves its target between zero and `minReplicaCount`/one
//! through the target's scale subresource; above that the HPA it creates scales the target,
//! reading the trigger's value from KEDA's metrics API server (`external.metrics.k8s.io`,
//! registered as an APIService whose endpoints are the test host).

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use super::processes::{free_port, spawn_logged};
use super::{aggregated_api, env, kubectl, pki, prometheus, wait_for};

/// The namespace the operator keeps its own objects in.
pub const KEDA_NAMESPACE: &str = "keda";
/// The Service the metrics API server is registered behind.
const METRICS_API_SERVICE: &str = "keda-metrics-apiserver";

fn installed_file(relative: &str) -> PathBuf {
    super::control_plane::component_file("RSG_KEDA_DIR", "keda", "KEDA_VERSION", relative)
}

/// KEDA's command `relative` (the operator or the metrics API server), with the environment
/// both take: the admin kubeconfig, KEDA's namespace, every namespace watched.
fn keda_command(relative: &str) -> std::process::Command {
    let mut command = std::process::Command::new(installed_file(relative));
    command
        .env("KUBECONFIG", &env().kubeconfig)
        .env("POD_NAMESPACE", KEDA_NAMESPACE)
        .env("KEDA_CLUSTER_OBJECT_NAMESPACE", KEDA_NAMESPACE)
        .env("WATCH_NAMESPACE", "");
    command
}

/// Installs KEDA's CRDs and starts its operator, once per test binary; returns when the
/// operator reports ready.
pub fn start() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let env = env();
        super::crds::install_file(&installed_file("crds.yaml"), &["scaledobjects"]);
        let out = kubectl(&env.kubeconfig, &["create", "namespace", KEDA_NAMESPACE]);
        assert!(out.success, "creating namespace keda: {}", out.stderr);

        // The operator's gRPC metrics service and the metrics API server, its client, both
        // take their mutual TLS from this directory (tls.crt, tls.key, ca.crt), as KEDA's own
        // certificate Secret would provide; the metrics API server also serves the API server
        // with that certificate, so it names the Service too.
        let cert_dir = env.dir.join("keda-certs");
        let ca = pki::certificate_authority(&cert_dir, "ca");
        let service_name = format!("{METRICS_API_SERVICE}.{KEDA_NAMESPACE}.svc");
        pki::issue(
            &cert_dir,
            &ca,
            "tls",
            "keda",
            &["127.0.0.1", "localhost", &service_name],
            "serverAuth,clientAuth",
        );
        // Scalers trust the CAs of this directory (certificates only).
        let ca_dir = env.dir.join("keda-ca");
        std::fs::create_dir_all(&ca_dir).expect("creating KEDA's CA directory");
        std::fs::copy(cert_dir.join("ca.crt"), ca_dir.join("ca.crt")).expect("copying the CA");
        let probe_port = free_port();
        let grpc_port = free_port();
        let log = env.dir.join("keda-operator.log");
        let mut operator = keda_command("bin/keda-operator");
        operator.args([
            "--leader-elect=false".to_string(),
            "--metrics-bind-address=0".into(),
            format!("--health-probe-bind-address=127.0.0.1:{probe_port}"),
            format!("--metrics-service-bind-address=127.0.0.1:{grpc_port}"),
            format!("--cert-dir={}", cert_dir.display()),
            format!("--ca-dir={}", ca_dir.display()),
            "--enable-webhook-patching=false".into(),
            "--enable-apiservice-patching=false".into(),
        ]);
        // The child lives as long as the test binary (it is killed when the binary exits).
        std::mem::forget(spawn_logged(operator, &log));
        wait_for(
            &format!("the KEDA operator to be ready (log {})", log.display()),
            Duration::from_secs(60),
            || {
                let url = format!("http://127.0.0.1:{probe_port}/readyz");
                matches!(prometheus::http("GET", &url, None), Ok((200, _))).then_some(())
            },
        );
        start_metrics_api_server(&cert_dir, grpc_port, &ca.cert);
    });
}

/// Starts KEDA's metrics API server (it asks the operator's gRPC service on `grpc_port` for
/// each value) and registers `external.metrics.k8s.io/v1beta1` behind it.
fn start_metrics_api_server(cert_dir: &std::path::Path, grpc_port: u16, ca: &std::path::Path) {
    let env = env();
    let port = free_port();
    let kubeconfig = format!("{}", env.kubeconfig.display());
    let mut adapter = keda_command("bin/keda-adapter");
    adapter.args([
        format!("--secure-port={port}"),
        "--bind-address=127.0.0.1".into(),
        format!("--cert-dir={}", cert_dir.display()),
        format!("--tls-cert-file={}", cert_dir.join("tls.crt").display()),
        format!(
            "--tls-private-key-file={}",
            cert_dir.join("tls.key").display()
        ),
        format!("--lister-kubeconfig={kubeconfig}"),
        format!("--authentication-kubeconfig={kubeconfig}"),
        format!("--authorization-kubeconfig={kubeconfig}"),
        format!("--metrics-service-address=127.0.0.1:{grpc_port}"),
        // Its own Prometheus endpoint, unused here.
        format!("--port={}", free_port()),
    ]);
    std::mem::forget(spawn_logged(
        adapter,
        &env.dir.join("keda-metrics-apiserver.log"),
    ));
    aggregated_api::register(
        "external.metrics.k8s.io",
        "v1beta1",
        (KEDA_NAMESPACE, METRICS_API_SERVICE),
        port,
        &pki::ca_bundle(ca),
    );
}
