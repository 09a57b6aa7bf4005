//! The chart's Deployment runs rsg: the chart is installed with the real Helm library into a
//! control plane of its own, and the rsg binary is started with exactly the container's
//! rendered `args` and `env`, its mounted Secrets as files at the mounted paths' stand-ins, and
//! a token of the chart's ServiceAccount. It must serve the webhooks with the chart's
//! certificate (trusted through the caBundle the chart put in its webhook configurations) and
//! reconcile a sample. A wrong flag, env var, mount or RBAC rule in the chart fails here.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use support::control_plane::ControlPlane;
use support::processes::{free_port, log_tail, scratch_dir, spawn_logged};
use support::rsg_process::https_request_to;
use support::{kubectl, kubectl_apply, wait_for};

const RELEASE: &str = "rsg";
const NAMESPACE: &str = "scaling-system";

/// `kubectl get` of one object (`ns` empty: cluster-scoped) as JSON.
fn get(kubeconfig: &Path, kind: &str, ns: &str, name: &str) -> Value {
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
struct RenderedContainer {
    args: Vec<String>,
    env: BTreeMap<String, String>,
    service_account: String,
}

fn rendered_container(kubeconfig: &Path, dir: &Path) -> RenderedContainer {
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
fn service_account_kubeconfig(plane: &ControlPlane, account: &str) -> PathBuf {
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

#[test]
fn the_charts_deployment_runs_rsg_with_its_rendered_args_env_mounts_and_rbac() {
    let dir = scratch_dir();
    let plane = ControlPlane::start(&dir, false);
    // As `helm install -n scaling-system --create-namespace` does.
    let out = kubectl(&plane.kubeconfig, &["create", "namespace", NAMESPACE]);
    assert!(out.success, "{}", out.stderr);
    let values = json!({"namespace": {"name": NAMESPACE}});
    support::helm::helm(
        &plane.kubeconfig,
        &[
            "install",
            RELEASE,
            support::helm::CHART,
            NAMESPACE,
            &values.to_string(),
        ],
    );
    let rendered = rendered_container(&plane.kubeconfig, &dir);
    assert!(
        !rendered.args.iter().any(|a| a.starts_with("--listen"))
            && !rendered.env.contains_key("RSG_LISTEN"),
        "the chart sets the listen address; the test maps only the default one"
    );
    let kubeconfig = service_account_kubeconfig(&plane, &rendered.service_account);
    let port = free_port();
    let mut command = Command::new(support::rsg_process::rsg_binary());
    command
        .args(&rendered.args)
        .envs(&rendered.env)
        // The pod's network: its port 9443 here is a free loopback port.
        .env("RSG_LISTEN", format!("127.0.0.1:{port}"))
        .env("KUBECONFIG", &kubeconfig);
    let log = dir.join("rsg-chart.log");
    let mut rsg = spawn_logged(command, &log);

    // The webhooks' caBundle trusts the certificate rsg serves for the chart's Service name.
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
            if let Ok(Some(status)) = rsg.try_wait() {
                panic!("rsg exited ({status}):\n{}", log_tail(&log, 30));
            }
            https_request_to(&host, port, &ca, "/readyz", None)
                .ok()
                .filter(|(status, _)| *status == 200)
        },
    );

    // It validates as the webhook configuration's path says, reporting field paths.
    let path = webhook["webhooks"][0]["clientConfig"]["service"]["path"]
        .as_str()
        .expect("a webhook path")
        .to_string();
    let invalid = rsg::fixtures::group_rsg_value(
        "team",
        "bad",
        "prefill",
        ("apps/v1", "Deployment", "prefill"),
        json!({"replicas": -1}),
    );
    let review = rsg::invariants::review_body_around(&invalid);
    let (status, text) =
        https_request_to(&host, port, &ca, &path, Some(review)).expect("POST to the webhook");
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).expect("an AdmissionReview");
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    assert!(
        answer["response"]["status"]["message"]
            .to_string()
            .contains("spec.scalingStrategy.groupConfig.replicas"),
        "{answer}"
    );

    // It reconciles, as the chart's ServiceAccount with the chart's RBAC.
    let ns = "chart-sample";
    let out = kubectl(&plane.kubeconfig, &["create", "namespace", ns]);
    assert!(out.success, "{}", out.stderr);
    let objects = [
        rsg::fixtures::deployment(ns, "prefill", 1),
        rsg::fixtures::service(ns, "prefill"),
        rsg::fixtures::group_rsg_value(
            ns,
            "sample",
            "prefill",
            ("apps/v1", "Deployment", "prefill"),
            json!({"groupName": "g", "replicas": 3}),
        ),
    ];
    // The API server here cannot reach the chart's Service, so the test calls rsg's mutating
    // webhook for it (as the cluster's admin) and stores what it answers: the defaults and the
    // signed admission record, without which rsg does not act on the sample.
    let mutating = get(
        &plane.kubeconfig,
        "mutatingwebhookconfiguration",
        "",
        &format!("{RELEASE}-resourcescalinggroup-mutating"),
    );
    let mutate_path = mutating["webhooks"][0]["clientConfig"]["service"]["path"]
        .as_str()
        .expect("a webhook path")
        .to_string();
    let admitted = |object: Value| -> Value {
        if object["kind"] != "ResourceScalingGroup" {
            return object;
        }
        let review = rsg::invariants::review_body(
            &object,
            ns,
            json!({"username": "admin", "groups": ["system:masters", "system:authenticated"]}),
        );
        let (status, text) = https_request_to(&host, port, &ca, &mutate_path, Some(review))
            .expect("POST to the mutating webhook");
        assert_eq!(status, 200, "{text}");
        let answer: Value = serde_json::from_str(&text).expect("an AdmissionReview");
        // The patch's bytes, as a JSON array (kube's encoding; the API server reads both).
        let patch: Vec<u8> = serde_json::from_value(answer["response"]["patch"].clone())
            .unwrap_or_else(|err| panic!("no patch ({err}): {answer}"));
        let patch: json_patch::Patch = serde_json::from_slice(&patch).expect("a JSON patch");
        let mut object = object;
        json_patch::patch(&mut object, &patch).expect("the patch applies");
        assert!(
            object["metadata"]["annotations"]["autoscaling.openfuyao.com/admission-record"]
                .is_string(),
            "{object}"
        );
        object
    };
    for object in objects.map(admitted) {
        let out = kubectl_apply(&plane.kubeconfig, &object.to_string(), &[]);
        assert!(out.success, "{}", out.stderr);
    }
    wait_for(
        "the chart-run rsg to make the sample's groups",
        Duration::from_secs(60),
        || {
            let out = kubectl(
                &plane.kubeconfig,
                &[
                    "get",
                    "deployments,services",
                    "-n",
                    ns,
                    "-l",
                    "rsg.io/name=sample,rsg.io/group-id!=0",
                    "-o",
                    "name",
                ],
            );
            (out.success && out.stdout.lines().count() == 4).then_some(())
        },
    );
    let _ = rsg.kill();
    let _ = rsg.wait();
}
