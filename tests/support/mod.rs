//! Test support: a real etcd + kube-apiserver (+ controller manager, scheduler and kwok nodes)
//! per test binary,
//! the rsg binary running against it with both webhooks registered, and kubectl helpers.
//! Tests isolate themselves by namespace.
#![allow(dead_code, unused_imports)]

pub mod aggregated_api;
pub mod chart_rsg;
pub mod control_plane;
pub mod crds;
pub mod fixtures;
pub mod helm;
pub mod keda;
pub mod kubectl;
pub mod leader_worker_set;
pub mod metrics_server;
pub mod pki;
pub mod processes;
pub mod prometheus;
pub mod proxy;
pub mod rsg_process;
pub mod serving_floor;
pub mod test_host;
pub mod token_front;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use kubectl::{kubectl, kubectl_apply};

/// Everything a test binary shares.
pub struct TestEnv {
    /// Scratch directory of this test binary.
    pub dir: PathBuf,
    /// Admin kubeconfig for the test apiserver.
    pub kubeconfig: PathBuf,
    /// Kubeconfig rsg runs with: the ServiceAccount identity bound to the manifests' RBAC.
    pub rsg_kubeconfig: PathBuf,
    /// The control plane.
    pub control_plane: control_plane::ControlPlane,
    /// The rsg process under test.
    pub rsg: rsg_process::RsgProcess,
    /// Prometheus and its pushgateway, when asked for.
    pub prometheus: Option<prometheus::Prometheus>,
}

static ENV: OnceLock<TestEnv> = OnceLock::new();

/// Options for the shared environment; the first caller's options win.
#[derive(Clone, Copy, Default)]
pub struct EnvOptions {
    /// Also run the cluster around the API server: kube-controller-manager (workload
    /// controllers, HPA, garbage collection), kube-scheduler and kwok's simulated nodes, so
    /// pods are placed and become Running and Ready as on a real cluster.
    pub cluster: bool,
    /// Also run Prometheus and a pushgateway, and point rsg at Prometheus.
    pub prometheus: bool,
    /// Extra arguments for the shared rsg process.
    pub rsg_args: &'static [&'static str],
}

/// The environment of this test binary, started on first use.
pub fn env() -> &'static TestEnv {
    env_with(EnvOptions::default())
}

/// The environment, started with `options` on first use.
pub fn env_with(options: EnvOptions) -> &'static TestEnv {
    ENV.get_or_init(|| {
        let dir = processes::scratch_dir();
        let control_plane = control_plane::ControlPlane::start(&dir, options.cluster);
        let kubeconfig = control_plane.kubeconfig.clone();
        kubectl::install_rsg_prerequisites(&kubeconfig);
        let rsg_kubeconfig = control_plane.rsg_kubeconfig.clone();
        let prometheus = options
            .prometheus
            .then(|| prometheus::Prometheus::start(&dir));
        let cert_dir = dir.join("rsg-certs");
        let ca_bundle = rsg_process::generate_certs(&cert_dir);
        let prometheus_args: Vec<String> = prometheus
            .iter()
            .flat_map(|p| {
                [
                    "--prometheus-url".to_string(),
                    p.url.clone(),
                    "--prometheus-timeout".into(),
                    "2s".into(),
                ]
            })
            .collect();
        let args: Vec<&str> = prometheus_args
            .iter()
            .map(String::as_str)
            .chain(options.rsg_args.iter().copied())
            .collect();
        let rsg = rsg_process::RsgProcess::start_with_certs(
            &dir,
            &rsg_kubeconfig,
            "rsg",
            cert_dir,
            ca_bundle,
            &args,
        );
        rsg_process::register_webhooks(&kubeconfig, &rsg);
        TestEnv {
            dir,
            kubeconfig,
            rsg_kubeconfig,
            control_plane,
            rsg,
            prometheus,
        }
    })
}

/// An async client for the test apiserver.
pub async fn client() -> kube::Client {
    client_for(&env().kubeconfig).await
}

/// A client of the cluster `kubeconfig` names.
pub async fn client_for(kubeconfig: &std::path::Path) -> kube::Client {
    let kubeconfig =
        kube::config::Kubeconfig::read_from(kubeconfig).expect("reading the test kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .expect("building a client config");
    kube::Client::try_from(config).expect("building a client")
}

/// Creates a fresh namespace named after `prefix` and returns its name.
pub fn namespace(prefix: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("{prefix}-{n}");
    let out = kubectl(&env().kubeconfig, &["create", "namespace", &name]);
    assert!(out.success, "creating namespace {name}: {}", out.stderr);
    name
}

/// Who holds rsg's leader Lease (`rsg-system/rsg-leader`), as its `holderIdentity` says.
pub fn lease_holder() -> Option<String> {
    let lease = get_json("lease", "rsg-system", "rsg-leader")?;
    lease["spec"]["holderIdentity"].as_str().map(str::to_string)
}

/// Polls `check` until it returns `Some` or `timeout` passes; panics with `what` on timeout.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `done(n)` holds for the number `n` of Deployments in `ns` matching `selector`,
/// listing them every 5 ms with an in-process client (kubectl would be too slow to catch a
/// scale half-way); panics with `what` after 60 s.
pub fn wait_deployment_count(
    ns: &str,
    selector: &str,
    what: &str,
    done: impl Fn(usize) -> bool + Send + 'static,
) -> usize {
    use k8s_openapi::api::apps::v1::Deployment;
    let (ns, selector, what) = (ns.to_string(), selector.to_string(), what.to_string());
    block_on_helper(async move {
        let deployments: kube::Api<Deployment> = kube::Api::namespaced(client().await, &ns);
        let params = kube::api::ListParams::default().labels(&selector);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(list) = deployments.list_metadata(&params).await {
                if done(list.items.len()) {
                    return Ok(list.items.len());
                }
            }
            if Instant::now() > deadline {
                return Err(format!("timed out after 60s waiting for {what}"));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// `kubectl get <kind> <name> -n <ns> -o json`, or `None` when it does not exist.
pub fn get_json(kind: &str, namespace: &str, name: &str) -> Option<serde_json::Value> {
    let out = kubectl(
        &env().kubeconfig,
        &["get", kind, name, "-n", namespace, "-o", "json"],
    );
    if !out.success {
        assert!(
            out.stderr.contains("NotFound"),
            "kubectl get {kind} {name}: {}",
            out.stderr
        );
        return None;
    }
    Some(serde_json::from_str(&out.stdout).expect("kubectl printed JSON"))
}

/// Names of the objects of `kind` in `namespace` matching `selector`.
pub fn names(kind: &str, namespace: &str, selector: &str) -> Vec<String> {
    let out = kubectl(
        &env().kubeconfig,
        &["get", kind, "-n", namespace, "-l", selector, "-o", "json"],
    );
    assert!(out.success, "kubectl get {kind}: {}", out.stderr);
    let list: serde_json::Value = serde_json::from_str(&out.stdout).expect("kubectl printed JSON");
    let mut names: Vec<String> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

/// Applies `yaml`, asserting success.
pub fn apply(yaml: &str) {
    let out = kubectl_apply(&env().kubeconfig, yaml, &[]);
    assert!(out.success, "kubectl apply failed: {}\n{yaml}", out.stderr);
}

/// Runs kubectl, asserting success, and returns stdout.
pub fn run_kubectl(args: &[&str]) -> String {
    let out = kubectl(&env().kubeconfig, args);
    assert!(out.success, "kubectl {args:?} failed: {}", out.stderr);
    out.stdout
}

/// The identity of an object's state: its resourceVersion and generation.
pub fn object_version(
    kind: &str,
    namespace: &str,
    name: &str,
) -> (serde_json::Value, serde_json::Value) {
    let object =
        get_json(kind, namespace, name).unwrap_or_else(|| panic!("{kind} {namespace}/{name}"));
    (
        object["metadata"]["resourceVersion"].clone(),
        object["metadata"]["generation"].clone(),
    )
}

/// Waits until the RSG reports `current` groups with Ready=True and returns it.
pub fn wait_rsg_converged(namespace: &str, name: &str, current: i64) -> serde_json::Value {
    wait_for(
        &format!("RSG {namespace}/{name} to report {current} groups and Ready"),
        Duration::from_secs(60),
        || {
            let rsg = get_json("rsg", namespace, name)?;
            let status = &rsg["status"];
            let ready = status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| {
                    c["type"] == "Ready"
                        && c["status"] == "True"
                        && c["observedGeneration"] == rsg["metadata"]["generation"]
                });
            (ready
                && status["currentReplicas"] == current
                && status["lastDesiredReplicas"] == current)
                .then_some(rsg)
        },
    )
}

/// An RSG `engine` in `ns` over the Deployment `engine` (applied already), at one group;
/// returns it once converged.
pub fn engine_rsg_at_one_group(ns: &str) -> serde_json::Value {
    apply(&fixtures::group_rsg(
        ns,
        "engine",
        "engine",
        ("apps/v1", "Deployment", "engine"),
        "{replicas: 1}",
    ));
    wait_rsg_converged(ns, "engine", 1)
}

/// A base Deployment `web` and an RSG `web` over it in `ns` with `groups` groups and
/// `scale_down` (YAML lines under `scaleDown:`, indented 8 spaces), converged.
pub fn scale_down_rsg(ns: &str, groups: i32, scale_down: &str) {
    apply(&fixtures::deployment(ns, "web", 1));
    apply(&fixtures::group_rsg(
        ns,
        "web",
        "web",
        ("apps/v1", "Deployment", "web"),
        &format!("groupName: g\nreplicas: {groups}\nscaleDown:\n{scale_down}\n"),
    ));
    wait_rsg_converged(ns, "web", i64::from(groups));
}

/// Waits until the RSG's Ready condition has `reason` and returns the condition.
pub fn wait_rsg_reason(namespace: &str, name: &str, reason: &str) -> serde_json::Value {
    wait_for(
        &format!("RSG {namespace}/{name} to report {reason}"),
        Duration::from_secs(60),
        || {
            let rsg = get_json("rsg", namespace, name)?;
            rsg["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "Ready" && c["reason"] == reason)
                .cloned()
        },
    )
}

/// `kubectl scale rsg`.
pub fn scale_rsg(namespace: &str, name: &str, replicas: i32) {
    run_kubectl(&[
        "scale",
        "rsg",
        name,
        "-n",
        namespace,
        &format!("--replicas={replicas}"),
    ]);
}

/// Runs `work` to completion on a helper thread with its own runtime, so blocking test code
/// can make async requests whether or not it already runs inside a runtime.
pub fn block_on_helper<T, F>(work: F) -> Result<T, String>
where
    T: Send + 'static,
    F: std::future::Future<Output = Result<T, String>> + Send + 'static,
{
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(work)
    })
    .join()
    .map_err(|_| "helper thread panicked".to_string())?
}
