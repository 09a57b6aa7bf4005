//! rsg run as the chart's Deployment would run it: the chart installed with the real Helm
//! library, then the rsg binary started with exactly the container's rendered `args` and
//! `env`, its mounted Secrets as files at the mounted paths' stand-ins, and a token of the
//! chart's ServiceAccount.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use super::control_plane::ControlPlane;
use super::kubectl;
use super::processes::{free_port, log_tail, spawn_logged};
use super::rsg_process::https_request_to;
use super::wait_for;

/// The release name the tests install the chart as.
pub const RELEASE: &str = "rsg";
/// The namespace they install it into.
pub const NAMESPACE: &str = "scaling-system";

/// `kubectl get` of one object (`ns` empty: cluster-scoped) as JSON.
pub fn get(kubeconfig: &Path, kind: &str, ns: &str, name: &str) -> Value {
    let mut args = vec!["get", kind, name, "-o", "json"];
    if !ns.is_empty() {
        args.extend(["-n", ns]);
    }
    let out = kubectl(kubeconfig, &args);
    assert!(out.success, "kubectl get {kind} {name}: {}", out.stderr);
    serde_json::from_str(&out.stdout).expect("JSON")
}

/// The rendered pod spec's rsg container, started here: (args, env) with every mounted path
/// replaced by a local directory holding the mounted Secret's files.
pub struct RenderedContainer {
    /// The container's args, mounted paths replaced.
    pub args: Vec<String>,
    /// Its environment, field references resolved.
    pub env: BTreeMap<String, String>,
    /// The pod's ServiceAccount.
    pub service_account: String,
}

pub fn rendered_container(kubeconfig: &Path, dir: &Path) -> RenderedContainer {
    let deployment = get(kubeconfig, "deployment", NAMESPACE, RELEASE);
    let pod = &deployment["spec"]["template"]["spec"];
    let container = pod["containers"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "rsg"))
        .unwrap_or_else(|| panic!("no rsg container in {pod}"))
        .clone();
    let volumes: BTreeMap<String, Value> = pod["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            (
                v["name"].as_str().unwrap_or_default().to_string(),
                v.clone(),
            )
        })
        .collect();
    // Each mount becomes a local directory with the files its Secret volume would hold.
    let mut mounts: Vec<(String, PathBuf)> = Vec::new();
    for mount in container["volumeMounts"].as_array().into_iter().flatten() {
        let path = mount["mountPath"]
            .as_str()
            .expect("a mountPath")
            .to_string();
        let volume = &volumes[mount["name"].as_str().expect("a mount name")];
        let secret_name = volume["secret"]["secretName"]
            .as_str()
            .unwrap_or_else(|| panic!("only Secret volumes are mounted into rsg: {volume}"));
        let secret = get(kubeconfig, "secret", NAMESPACE, secret_name);
        let local = dir.join(format!("mount{}", path.replace('/', "_")));
        std::fs::create_dir_all(&local).expect("a mount directory");
        for (key, value) in secret["data"].as_object().expect("Secret data") {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(value.as_str().unwrap_or_default())
                .expect("base64 Secret data");
            std::fs::write(local.join(key), bytes).expect("a mounted file");
        }
        mounts.push((path, local));
    }
    let localize = |value: &str| -> String {
        mounts
            .iter()
            .find(|(path, _)| value.contains(path.as_str()))
            .map(|(path, local)| value.replace(path.as_str(), &local.display().to_string()))
            .unwrap_or_else(|| value.to_string())
    };
    let args: Vec<String> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| localize(a.as_str().expect("a string arg")))
        .collect();
    let mut env = BTreeMap::new();
    for var in container["env"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().expect("an env name").to_string();
        let value = if let Some(value) = var["value"].as_str() {
            localize(value)
        } else if var.get("valueFrom").is_none() {
            // An empty value, which the API server stores as no value.
            String::new()
        } else {
            match var["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                Some("metadata.name") => "rsg-chart-pod".to_string(),
                Some("metadata.namespace") => NAMESPACE.to_string(),
                Some("spec.serviceAccountName") => pod["serviceAccountName"]
                    .as_str()
                    .expect("a ServiceAccount")
                    .to_string(),
                other => panic!("env {name} from {other:?}: the test cannot resolve it"),
            }
        };
        env.insert(name, value);
    }
    RenderedContainer {
        args,
        env,
        service_account: pod["serviceAccountName"]
            .as_str()
            .expect("a ServiceAccount")
            .to_string(),
    }
}

/// A kubeconfig with a token of the chart's ServiceAccount (the TokenRequest API, as the
/// kubelet gets one for the pod).
pub fn service_account_kubeconfig(plane: &ControlPlane, account: &str) -> PathBuf {
    let out = kubectl(
        &plane.kubeconfig,
        &["create", "token", account, "-n", NAMESPACE, "--duration=1h"],
    );
    assert!(out.success, "kubectl create token: {}", out.stderr);
    plane.rsg_kubeconfig_via(
        plane.apiserver_port,
        out.stdout.trim(),
        "chart-serviceaccount-kubeconfig",
    )
}

/// The path the chart's `mutating` or `validating` webhook configuration calls.
pub fn webhook_path(plane: &ControlPlane, which: &str) -> String {
    let configuration = get(
        &plane.kubeconfig,
        &format!("{which}webhookconfiguration"),
        "",
        &format!("{RELEASE}-resourcescalinggroup-{which}"),
    );
    configuration["webhooks"][0]["clientConfig"]["service"]["path"]
        .as_str()
        .expect("a webhook path")
        .to_string()
}

/// The chart-run rsg: its process, where it serves, and the CA its webhooks trust.
pub struct ChartRsg {
    child: Child,
    /// The loopback port standing in for the pod's 9443.
    pub port: u16,
    /// The chart's Service host name its certificate is for.
    pub host: String,
    /// The CA bundle of the webhook configurations, decoded.
    pub ca: Vec<u8>,
    /// Its log file.
    pub log: PathBuf,
}

impl ChartRsg {
    /// Starts rsg as the installed chart's Deployment says and waits until it is ready.
    pub fn start(plane: &ControlPlane, dir: &Path) -> Self {
        let rendered = rendered_container(&plane.kubeconfig, dir);
        assert!(
            !rendered.args.iter().any(|a| a.starts_with("--listen"))
                && !rendered.env.contains_key("RSG_LISTEN"),
            "the chart sets the listen address; the test maps only the default one"
        );
        let kubeconfig = service_account_kubeconfig(plane, &rendered.service_account);
        let port = free_port();
        let mut command = Command::new(super::rsg_process::rsg_binary());
        command
            .args(&rendered.args)
            .envs(&rendered.env)
            // The pod's network: its port 9443 here is a free loopback port.
            .env("RSG_LISTEN", format!("127.0.0.1:{port}"))
            .env("KUBECONFIG", &kubeconfig);
        let log = dir.join("rsg-chart.log");
        let mut child = spawn_logged(command, &log);
        // The webhooks' caBundle trusts the certificate rsg serves for the chart's Service.
        let webhook = get(
            &plane.kubeconfig,
            "validatingwebhookconfiguration",
            "",
            &format!("{RELEASE}-resourcescalinggroup-validating"),
        );
        let service = &webhook["webhooks"][0]["clientConfig"]["service"];
        assert_eq!(service["namespace"], NAMESPACE);
        let host = format!(
            "{}.{NAMESPACE}.svc",
            service["name"].as_str().expect("a Service")
        );
        let ca = base64::engine::general_purpose::STANDARD
            .decode(
                webhook["webhooks"][0]["clientConfig"]["caBundle"]
                    .as_str()
                    .expect("a caBundle"),
            )
            .expect("base64");
        wait_for(
            &format!(
                "rsg started as the chart says to be ready (log {})",
                log.display()
            ),
            Duration::from_secs(60),
            || {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("rsg exited ({status}):\n{}", log_tail(&log, 30));
                }
                https_request_to(&host, port, &ca, "/readyz", None)
                    .ok()
                    .filter(|(status, _)| *status == 200)
            },
        );
        Self {
            child,
            port,
            host,
            ca,
            log,
        }
    }

    /// POSTs an AdmissionReview to the webhook at `path`; returns (status, body).
    pub fn review(&self, path: &str, review: Vec<u8>) -> (u16, String) {
        https_request_to(&self.host, self.port, &self.ca, path, Some(review))
            .expect("POST to the webhook")
    }

    /// `object` as the chart's mutating webhook admits it when the cluster's admin creates
    /// it in `namespace`: the API server here cannot reach the chart's Service, so the test
    /// calls the webhook for it and applies its patch (the defaults and the signed admission
    /// record, without which rsg does not act on an RSG). Other kinds are returned as they are.
    pub fn admitted(&self, plane: &ControlPlane, namespace: &str, object: Value) -> Value {
        if object["kind"] != "ResourceScalingGroup" {
            return object;
        }
        let path = webhook_path(plane, "mutating");
        let review = rsg::invariants::review_body(
            &object,
            namespace,
            json!({"username": "admin", "groups": ["system:masters", "system:authenticated"]}),
        );
        let (status, text) = self.review(&path, review);
        assert_eq!(status, 200, "{text}");
        let answer: Value = serde_json::from_str(&text).expect("an AdmissionReview");
        // The patch's bytes, as base64 text (Go's encoding of a []byte).
        let patch = base64::engine::general_purpose::STANDARD
            .decode(
                answer["response"]["patch"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no patch: {answer}")),
            )
            .expect("base64");
        let patch: json_patch::Patch = serde_json::from_slice(&patch).expect("a JSON patch");
        let mut object = object;
        json_patch::patch(&mut object, &patch).expect("the patch applies");
        assert!(
            object["metadata"]["annotations"]["autoscaling.openfuyao.com/admission-record"]
                .is_string(),
            "{object}"
        );
        object
    }
}

impl Drop for ChartRsg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
