//! Running kubectl against the test apiserver, as a user would.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::wait_for;

/// What kubectl printed and whether it succeeded.
#[derive(Debug)]
pub struct KubectlOutput {
    /// Exit status was 0.
    pub success: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error (where kubectl prints errors and warnings).
    pub stderr: String,
}

/// `$RSG_KUBECTL`, else the kubectl built with the Kubernetes release under test (so client
/// and server are of one version), else the one on PATH.
pub fn kubectl_binary() -> String {
    std::env::var("RSG_KUBECTL").unwrap_or_else(|_| {
        let built = super::control_plane::k8s_bin_dir().join("kubectl");
        if built.is_file() {
            built.display().to_string()
        } else {
            "kubectl".to_string()
        }
    })
}

/// The longest a single kubectl request may take: no test hangs on an API server that stopped
/// answering (a test that wants another bound passes its own `--request-timeout`).
const REQUEST_TIMEOUT: &str = "--request-timeout=30s";

fn run(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> KubectlOutput {
    let mut command = Command::new(kubectl_binary());
    command.arg(format!("--kubeconfig={}", kubeconfig.display()));
    if !args.iter().any(|a| a.starts_with("--request-timeout")) {
        command.arg(REQUEST_TIMEOUT);
    }
    command
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("running kubectl ({e}): install kubectl or set RSG_KUBECTL"));
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())
            .expect("writing kubectl's stdin");
    }
    let output = child.wait_with_output().expect("waiting for kubectl");
    KubectlOutput {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `kubectl <args>`.
pub fn kubectl(kubeconfig: &Path, args: &[&str]) -> KubectlOutput {
    run(kubeconfig, args, None)
}

/// `kubectl apply -f - <extra>` with `yaml` on stdin.
pub fn kubectl_apply(kubeconfig: &Path, yaml: &str, extra: &[&str]) -> KubectlOutput {
    let mut args = vec!["apply", "-f", "-"];
    args.extend_from_slice(extra);
    run(kubeconfig, &args, Some(yaml))
}

/// `objects` as one YAML stream (documents separated by `---`).
pub fn yaml_stream(objects: &[serde_json::Value]) -> String {
    objects
        .iter()
        .map(|object| serde_norway::to_string(object).expect("YAML"))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// `kubectl create -f -` with `manifest` (YAML or JSON) on stdin: no last-applied annotation,
/// so objects larger than an annotation may hold can be sent.
pub fn kubectl_create(kubeconfig: &Path, manifest: &str) -> KubectlOutput {
    run(kubeconfig, &["create", "-f", "-"], Some(manifest))
}

/// Applies rsg's namespace and RBAC from `manifests/install`: the identity rsg runs under in
/// the tests gets exactly what a cluster install grants.
pub fn install_rbac(kubeconfig: &Path) {
    for file in ["00-namespace.yaml", "10-rbac.yaml", "15-user-roles.yaml"] {
        let path = format!("{}/manifests/install/{file}", env!("CARGO_MANIFEST_DIR"));
        let out = kubectl(kubeconfig, &["apply", "-f", &path]);
        assert!(out.success, "applying {file}: {}", out.stderr);
    }
}

/// Installs what a cluster needs before rsg runs: the committed CRDs and rsg's namespace
/// (where its Lease lives) with the RBAC of `manifests/install`.
pub fn install_rsg_prerequisites(kubeconfig: &Path) {
    install_crd(kubeconfig);
    install_rbac(kubeconfig);
}

/// Installs the committed CRD and waits until it is established.
pub fn install_crd(kubeconfig: &Path) {
    let crd = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/manifests/crd/resourcescalinggroups.yaml"
    );
    let out = kubectl(kubeconfig, &["apply", "-f", crd]);
    assert!(out.success, "installing the CRD: {}", out.stderr);
    for crd in [
        "resourcescalinggroups.autoscaling.openfuyao.com",
        "resourcescalinggroupgrants.autoscaling.openfuyao.com",
    ] {
        wait_for("the CRD to be established", Duration::from_secs(30), || {
            let out = kubectl(
                kubeconfig,
                &[
                    "get",
                    "crd",
                    crd,
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Established\")].status}",
                ],
            );
            (out.stdout.trim() == "True").then_some(())
        });
    }
    wait_for(
        "the rsg resources to be served",
        Duration::from_secs(30),
        || {
            (kubectl(kubeconfig, &["get", "rsg", "-A"]).success
                && kubectl(kubeconfig, &["get", "rsggrant", "-A"]).success)
                .then_some(())
        },
    );
}
