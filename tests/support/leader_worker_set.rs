//! The LeaderWorkerSet project itself (sigs.k8s.io/lws at the version of `hack/versions.sh`,
//! built by `hack/install-k8s.sh`): its CRD, its controller and its admission webhooks, run
//! against the test control plane. LeaderWorkerSet copies then meet the real schema, the
//! project's defaulting and validation, and the controller that makes their StatefulSets and
//! pods, which the controller manager, the scheduler and kwok run as on a cluster.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Value};

use super::kubectl::yaml_stream;
use super::processes::{free_port, spawn_logged};
use super::{env, kubectl_apply, rsg_process, wait_for};

/// The label the LeaderWorkerSet webhook and controller put on every pod of a LeaderWorkerSet.
pub const NAME_LABEL: &str = "leaderworkerset.sigs.k8s.io/name";

fn installed_file(relative: &str) -> PathBuf {
    super::control_plane::component_file("RSG_LWS_DIR", "lws", "LWS_VERSION", relative)
}

/// The project's webhook configurations (as its release manifests ship them, including the
/// pod webhooks' object selector its kustomize overlay adds), pointed at the controller on
/// loopback `port`.
fn webhook_configurations(port: u16, ca_bundle: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(installed_file("webhooks.yaml"))
        .expect("reading the LeaderWorkerSet webhook configurations");
    serde_norway::Deserializer::from_str(&text)
        .map(|document| {
            let mut configuration: Value = serde::Deserialize::deserialize(document)
                .expect("the LeaderWorkerSet webhook configurations are YAML");
            let name = configuration["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            configuration["metadata"] = json!({"name": format!("lws-{name}")});
            for webhook in configuration["webhooks"]
                .as_array_mut()
                .into_iter()
                .flatten()
            {
                let path = webhook["clientConfig"]["service"]["path"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                webhook["clientConfig"] = json!({
                    "url": format!("https://127.0.0.1:{port}{path}"),
                    "caBundle": ca_bundle,
                });
                let for_pods = webhook["rules"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|rule| rule["resources"] == json!(["pods"]));
                if for_pods {
                    webhook["objectSelector"] =
                        json!({"matchExpressions": [{"key": NAME_LABEL, "operator": "Exists"}]});
                }
            }
            configuration
        })
        .collect()
}

/// Installs the project's CRD (as its release ships it) and waits until it is served.
pub fn install_crd() {
    super::crds::install_file(&installed_file("crd.yaml"), &["leaderworkersets"]);
}

/// Installs the CRD, starts the controller with its webhooks and registers them, once per
/// test binary; returns when the API server calls the webhooks.
pub fn start() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let env = env();
        install_crd();
        let cert_dir = env.dir.join("lws-certs");
        let ca_bundle = rsg_process::generate_certs(&cert_dir);
        let webhook_port = free_port();
        let config = env.dir.join("lws-config.yaml");
        std::fs::write(
            &config,
            format!(
                "apiVersion: config.lws.x-k8s.io/v1alpha1\nkind: Configuration\nleaderElection: {{leaderElect: false}}\ninternalCertManagement: {{enable: false}}\nwebhook: {{host: 127.0.0.1, port: {webhook_port}, certDir: {}}}\nhealth: {{healthProbeBindAddress: '127.0.0.1:{}'}}\n",
                cert_dir.display(),
                free_port()
            ),
        )
        .expect("writing the LeaderWorkerSet controller's configuration");
        let log = env.dir.join("lws-controller.log");
        let mut controller = std::process::Command::new(installed_file("bin/lws-controller"));
        controller.args([
            format!("--kubeconfig={}", env.kubeconfig.display()),
            format!("--config={}", config.display()),
            "--metrics-bind-address=0".into(),
        ]);
        // The child lives as long as the test binary (it is killed when the binary exits).
        std::mem::forget(spawn_logged(controller, &log));

        let yaml = yaml_stream(&webhook_configurations(webhook_port, &ca_bundle));
        let out = kubectl_apply(&env.kubeconfig, &yaml, &[]);
        assert!(
            out.success,
            "registering the LeaderWorkerSet webhooks: {}",
            out.stderr
        );
        // The project's defaulting webhook fills in the subdomain policy; once a server-side
        // dry run shows it, the API server calls the controller's webhooks.
        let probe = r#"apiVersion: leaderworkerset.x-k8s.io/v1
kind: LeaderWorkerSet
metadata: {name: webhook-probe, namespace: default}
spec:
  leaderWorkerTemplate:
    size: 1
    workerTemplate:
      spec:
        containers: [{name: c, image: registry.local/probe:1}]
"#;
        wait_for(
            &format!(
                "the LeaderWorkerSet webhooks to be called (log {})",
                log.display()
            ),
            Duration::from_secs(90),
            || {
                let out = kubectl_apply(&env.kubeconfig, probe, &["--dry-run=server", "-o", "json"]);
                let defaulted: Value = serde_json::from_str(&out.stdout).ok()?;
                (defaulted["spec"]["networkConfig"]["subdomainPolicy"] == "Shared").then_some(())
            },
        );
    });
}
