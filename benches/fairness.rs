//! Fairness between tenants: how long one namespace's new RSG waits for its group while
//! another namespace's N RSGs (default 200) all scale down at once against a Prometheus that
//! never answers (every decision waits out the query timeout, 3 s, then falls back to the
//! highest group ids). Side by side in one run: the same new RSG with the controller idle.
//!
//! With `RSG_BENCH_BASELINE_BIN=<another rsg build>` the same is measured on that build too,
//! in the same run, for a before/after figure.
//!
//! Run: `cargo bench --bench fairness` (RSG_FAIRNESS_RSGS sets N).

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::invoked_as_benchmark;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use rsg::api::ResourceScalingGroup;
use serde_json::{json, Value};
use support::control_plane::ControlPlane;
use support::kubectl::install_rsg_prerequisites;
use support::processes::scratch_dir;
use support::rsg_process::{generate_certs, register_webhooks, rsg_binary, RsgProcess};

const BUSY: &str = "tenant-busy";
const QUIET: &str = "tenant-quiet";

/// A Prometheus that accepts connections and never answers.
fn silent_prometheus() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = listener.local_addr().expect("an address").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    port
}

fn rsg_value(ns: &str, name: &str, groups: i32) -> Value {
    let mut rsg = rsg::fixtures::group_rsg_value(
        ns,
        name,
        "engine",
        ("apps/v1", "Deployment", name),
        json!({"groupName": "g", "replicas": groups,
               "scaleDown": {"metric": {"expr": "vllm:num_requests_running", "type": "Gauge"}}}),
    );
    rsg["metadata"].as_object_mut().map(|m| m.remove("uid"));
    rsg
}

async fn create(client: &Client, ns: &str, name: &str, groups: i32) {
    let deployment: Deployment =
        serde_json::from_value(rsg::fixtures::deployment(ns, name, 1)).expect("a Deployment");
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &deployment)
        .await
        .expect("the base");
    let rsg: ResourceScalingGroup =
        serde_json::from_value(rsg_value(ns, name, groups)).expect("an RSG");
    Api::<ResourceScalingGroup>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &rsg)
        .await
        .expect("the RSG");
}

/// Copies (group id 1) in `ns`, of the RSG `name` when given.
async fn copies(client: &Client, ns: &str, name: Option<&str>) -> usize {
    let labels = match name {
        Some(name) => format!("rsg.io/group-id=1,rsg.io/name={name}"),
        None => "rsg.io/group-id=1".to_string(),
    };
    Api::<Deployment>::namespaced(client.clone(), ns)
        .list_metadata(&ListParams::default().labels(&labels))
        .await
        .map_or(0, |l| l.items.len())
}

async fn wait_copies(client: &Client, ns: &str, name: Option<&str>, want: usize) -> Duration {
    let started = Instant::now();
    loop {
        if copies(client, ns, name).await == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "{ns}: not {want} copies after 30 minutes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A new RSG in the quiet namespace, timed until its group 1 exists.
async fn probe(client: &Client, name: &str) -> Duration {
    let started = Instant::now();
    create(client, QUIET, name, 2).await;
    wait_copies(client, QUIET, Some(name), 1).await;
    started.elapsed()
}

struct Figures {
    idle: Duration,
    busy: Duration,
    busy_drained: Duration,
    deferred: f64,
}

fn deferred(rsg: &RsgProcess) -> f64 {
    let body = rsg.get("/metrics").map(|(_, b)| b).unwrap_or_default();
    common::metric_sum(&body, "rsg_reconciles_deferred_total")
}

fn measure(binary: &Path, label: &str, n: usize) -> Figures {
    let dir = scratch_dir().join(label);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let plane = ControlPlane::start(&dir, false);
    install_rsg_prerequisites(&plane.kubeconfig);
    let prometheus = format!("http://127.0.0.1:{}", silent_prometheus());
    let cert_dir = dir.join(format!("{label}-certs"));
    let ca_bundle = generate_certs(&cert_dir);
    let rsg = RsgProcess::start_binary_with_certs(
        binary,
        &dir,
        &plane.rsg_kubeconfig,
        label,
        cert_dir,
        ca_bundle,
        &[
            "--prometheus-url",
            &prometheus,
            "--prometheus-timeout",
            "3s",
        ],
    );
    register_webhooks(&plane.kubeconfig, &rsg);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let figures = runtime.block_on(async {
        let client = support::client_for(&plane.kubeconfig).await;
        common::create_namespaces(&client, &[BUSY, QUIET]).await;
        futures::stream::iter(0..n)
            .for_each_concurrent(16, |i| {
                let client = client.clone();
                async move { create(&client, BUSY, &format!("busy-{i}"), 2).await }
            })
            .await;
        wait_copies(&client, BUSY, None, n).await;
        let idle = probe(&client, "probe-idle").await;

        // Every busy RSG scales down at once: each decision waits for the silent Prometheus.
        let started = Instant::now();
        let api = Api::<ResourceScalingGroup>::namespaced(client.clone(), BUSY);
        futures::stream::iter(0..n)
            .for_each_concurrent(16, |i| {
                let api = api.clone();
                async move {
                    api.patch_scale(
                        &format!("busy-{i}"),
                        &PatchParams::default(),
                        &Patch::Merge(json!({"spec": {"replicas": 1}})),
                    )
                    .await
                    .expect("scaled");
                }
            })
            .await;
        let busy = probe(&client, "probe-busy").await;
        wait_copies(&client, BUSY, None, 0).await;
        let busy_drained = started.elapsed();
        Figures {
            idle,
            busy,
            busy_drained,
            deferred: deferred(&rsg),
        }
    });
    rsg.stop(libc::SIGTERM);
    // The next build is measured on a control plane of its own, with nothing else running.
    plane.kill_apiserver();
    plane.kill_etcd();
    figures
}

fn main() {
    if !invoked_as_benchmark() {
        println!("fairness benchmark: run with `cargo bench --bench fairness`");
        return;
    }
    let n: usize = common::env_number("RSG_FAIRNESS_RSGS", 200);
    let mut builds = vec![("this build".to_string(), PathBuf::from(rsg_binary()))];
    if let Ok(baseline) = std::env::var("RSG_BENCH_BASELINE_BIN") {
        builds.push((format!("baseline {baseline}"), PathBuf::from(baseline)));
    }
    let measured: Vec<(String, Figures)> = builds
        .iter()
        .enumerate()
        .map(|(i, (label, binary))| (label.clone(), measure(binary, &format!("rsg-fair-{i}"), n)))
        .collect();
    println!("\nfairness: {n} RSGs of {BUSY} scale down at once against a Prometheus that never answers (3 s query timeout); one new RSG in {QUIET}");
    println!("| build | new RSG's group 1, controller idle | the same while {BUSY} scales down | {BUSY} done scaling down | reconciles deferred |");
    println!("|---|---|---|---|---|");
    for (label, f) in measured {
        println!(
            "| {label} | {:.2} s | {:.2} s | {:.1} s | {:.0} |",
            f.idle.as_secs_f64(),
            f.busy.as_secs_f64(),
            f.busy_drained.as_secs_f64(),
            f.deferred.abs()
        );
    }
}
