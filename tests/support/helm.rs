//! Helm actions through the real Helm library (helm-sdkpy, by hack/helm.py) against the
//! cluster of a kubeconfig.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// The rsg chart.
pub const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/rsg");

/// Runs hack/helm.py against the cluster of `kubeconfig`: the JSON it printed, or the error
/// it reported.
pub fn try_helm(kubeconfig: &Path, args: &[&str]) -> Result<Value, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/hack/helm.py");
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .unwrap_or_else(|e| panic!("running python3 ({e}): run hack/install-deps.sh"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let printed: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "helm printed {stdout}{} ({e})",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    if out.status.success() {
        Ok(printed)
    } else {
        Err(printed["error"].as_str().unwrap_or_default().to_string())
    }
}

/// Runs hack/helm.py, asserting success, and returns the JSON it printed.
pub fn helm(kubeconfig: &Path, args: &[&str]) -> Value {
    try_helm(kubeconfig, args).unwrap_or_else(|error| panic!("helm {args:?} failed: {error}"))
}
