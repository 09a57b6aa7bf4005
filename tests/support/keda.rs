//! The KEDA operator itself (github.com/kedacore/keda/v2 at the version of `hack/versions.sh`,
//! built by `hack/install-k8s.sh`) and its CRDs, run against the test control plane. The
//! operator polls a ScaledObject's triggers and moves its target between zero and
//! `minReplicaCount`/one through the target's scale subresource; above that it hands over to
//! the HPA it creates (which needs KEDA's metrics API server, not run here).

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use super::processes::{free_port, spawn_logged};
use super::{env, kubectl, prometheus, rsg_process, wait_for};

/// The namespace the operator keeps its own objects in.
pub const KEDA_NAMESPACE: &str = "keda";

fn installed_file(relative: &str) -> PathBuf {
    super::control_plane::component_file("RSG_KEDA_DIR", "keda", "KEDA_VERSION", relative)
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

        // The operator's gRPC metrics service serves TLS from this directory (tls.crt,
        // tls.key, ca.crt), as KEDA's own certificate Secret would provide.
        let cert_dir = env.dir.join("keda-certs");
        rsg_process::generate_certs(&cert_dir);
        // Scalers trust the CAs of this directory (certificates only).
        let ca_dir = env.dir.join("keda-ca");
        std::fs::create_dir_all(&ca_dir).expect("creating KEDA's CA directory");
        std::fs::copy(cert_dir.join("ca.crt"), ca_dir.join("ca.crt")).expect("copying the CA");
        let probe_port = free_port();
        let log = env.dir.join("keda-operator.log");
        let mut operator = std::process::Command::new(installed_file("bin/keda-operator"));
        operator
            .env("KUBECONFIG", &env.kubeconfig)
            .env("POD_NAMESPACE", KEDA_NAMESPACE)
            .env("KEDA_CLUSTER_OBJECT_NAMESPACE", KEDA_NAMESPACE)
            .env("WATCH_NAMESPACE", "")
            .args([
                "--leader-elect=false".to_string(),
                "--metrics-bind-address=0".into(),
                format!("--health-probe-bind-address=127.0.0.1:{probe_port}"),
                format!("--metrics-service-bind-address=127.0.0.1:{}", free_port()),
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
    });
}
