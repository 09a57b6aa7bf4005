//! metrics-server (sigs.k8s.io/metrics-server at the version of `hack/versions.sh`, built by
//! `hack/install-k8s.sh`) against the test control plane: it reads each simulated node's
//! resource metrics from kwok (the path of the node's `metrics.k8s.io/resource-metrics-path`
//! annotation, on kwok's loopback port; kwok-stages.yaml derives each pod's usage from its
//! `rsg-test/cpu-usage` annotation) and serves `metrics.k8s.io`, registered as an APIService
//! whose endpoints are the test host, for the HPA controller's CPU targets.

use std::sync::OnceLock;
use std::time::Duration;

use super::processes::{free_port, spawn_logged};
use super::{aggregated_api, env, pki, wait_for};

/// The pod annotation kwok reads a pod's simulated CPU usage from (a quantity, e.g. `250m`).
pub const CPU_USAGE_ANNOTATION: &str = "rsg-test/cpu-usage";

const NAMESPACE: &str = "kube-system";
const SERVICE: &str = "metrics-server";

fn binary() -> std::path::PathBuf {
    super::control_plane::component_binary(
        "RSG_METRICS_SERVER_BIN",
        "metrics-server",
        "METRICS_SERVER_VERSION",
        "metrics-server",
    )
}

/// Starts metrics-server once per test binary (the cluster must run) and returns when the
/// resource metrics API answers.
pub fn start() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let env = env();
        let cert_dir = env.dir.join("metrics-server-certs");
        let ca = pki::certificate_authority(&cert_dir, "ca");
        let serving = pki::issue(
            &cert_dir,
            &ca,
            "tls",
            "metrics-server",
            &[&format!("{SERVICE}.{NAMESPACE}.svc")],
            "serverAuth",
        );
        let port = free_port();
        let kubeconfig = format!("{}", env.kubeconfig.display());
        let mut server = std::process::Command::new(binary());
        server.args([
            format!("--secure-port={port}"),
            "--bind-address=127.0.0.1".into(),
            format!("--tls-cert-file={}", serving.cert.display()),
            format!("--tls-private-key-file={}", serving.key.display()),
            format!("--kubeconfig={kubeconfig}"),
            format!("--authentication-kubeconfig={kubeconfig}"),
            format!("--authorization-kubeconfig={kubeconfig}"),
            // kwok plays every node's kubelet on one loopback port, over plain HTTP.
            "--kubelet-preferred-address-types=InternalIP".into(),
            format!("--kubelet-port={}", env.control_plane.kwok_port),
            "--deprecated-kubelet-completely-insecure=true".into(),
            // The shortest resolution metrics-server accepts (more than the kubelet timeout).
            "--metric-resolution=10s".into(),
            "--kubelet-request-timeout=5s".into(),
        ]);
        std::mem::forget(spawn_logged(server, &env.dir.join("metrics-server.log")));
        aggregated_api::register(
            "metrics.k8s.io",
            "v1beta1",
            (NAMESPACE, SERVICE),
            port,
            &pki::ca_bundle(&ca.cert),
        );
        // A node reports usage only once pods run on it, so the API answering is the sign.
        wait_for(
            &format!(
                "the resource metrics API to answer (log {})",
                env.dir.join("metrics-server.log").display()
            ),
            Duration::from_secs(60),
            || {
                super::kubectl(
                    &env.kubeconfig,
                    &["get", "--raw", "/apis/metrics.k8s.io/v1beta1/pods"],
                )
                .success
                .then_some(())
            },
        );
    });
}
