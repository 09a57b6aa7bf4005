//! API calls per minute rsg makes for 1,000 RSGs whose targets do not exist (each waits with
//! `TargetNotFound`), counted in the API server's audit log of rsg's identity, minute by
//! minute for 6 minutes: rsg looks for a missing target again 30 s after the problem
//! appears, then as long again as it has waited, up to 5 minutes, spread ±20 % per RSG.
//!
//! Run: `cargo bench --bench missing_targets` (RSG_BENCH_MINUTES sets the minutes, default 6).

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use common::invoked_as_benchmark;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::PostParams;
use kube::{Api, Client};
use rsg::api::ResourceScalingGroup;
use serde_json::{json, Value};
use support::control_plane::{ControlPlane, RSG_USER};
use support::kubectl::install_rsg_prerequisites;
use support::processes::scratch_dir;
use support::rsg_process::RsgProcess;

const RSGS: usize = 1000;
const NAMESPACE: &str = "bench-missing";

/// rsg's audited calls so far: (all, reads of Deployments, status writes).
fn audited(log: &std::path::Path) -> (usize, usize, usize) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut counts = (0, 0, 0);
    for event in text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        if event["user"]["username"] != RSG_USER {
            continue;
        }
        counts.0 += 1;
        let object = &event["objectRef"];
        if object["resource"] == "deployments" && event["verb"] == "get" {
            counts.1 += 1;
        }
        if object["subresource"] == "status" {
            counts.2 += 1;
        }
    }
    counts
}

async fn create_rsgs(client: &Client) {
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": NAMESPACE}})).expect("a namespace");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace");
    let api: Api<ResourceScalingGroup> = Api::namespaced(client.clone(), NAMESPACE);
    let creates = futures::stream::iter(0..RSGS).map(|i| {
        let api = api.clone();
        async move {
            let rsg: ResourceScalingGroup = serde_json::from_value(json!({
                "apiVersion": "autoscaling.openfuyao.com/v1alpha1", "kind": "ResourceScalingGroup",
                "metadata": {"name": format!("waiting-{i}"), "namespace": NAMESPACE},
                "spec": {"targetResources": [{"name": "engine", "resourceRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": format!("missing-{i}")}}],
                         "scalingStrategy": {"type": "GroupReplication", "groupConfig": {"replicas": 2}}}
            }))
            .expect("an RSG");
            api.create(&PostParams::default(), &rsg).await.map(|_| ())
        }
    });
    let failed = creates
        .buffer_unordered(32)
        .filter(|r| futures::future::ready(r.is_err()))
        .count()
        .await;
    assert_eq!(failed, 0, "some RSGs could not be created");
}

fn main() {
    if !invoked_as_benchmark() {
        println!("missing targets benchmark: run with `cargo bench --bench missing_targets`");
        return;
    }
    let minutes: u64 = common::env_number("RSG_BENCH_MINUTES", 6);
    let dir = scratch_dir();
    let plane = ControlPlane::start(&dir, false);
    install_rsg_prerequisites(&plane.kubeconfig);
    // As the audited ServiceAccount identity of manifests/install.
    let rsg = RsgProcess::start(&dir, &plane.rsg_kubeconfig, "rsg-bench");
    // RSGs are admitted as in a cluster: rsg acts only on those its webhook recorded.
    support::rsg_process::register_webhooks(&plane.kubeconfig, &rsg);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = runtime.block_on(async {
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&plane.kubeconfig).expect("kubeconfig"),
            &Default::default(),
        )
        .await
        .expect("config");
        Client::try_from(config).expect("client")
    });
    let started = Instant::now();
    runtime.block_on(create_rsgs(&client));
    println!(
        "\n{RSGS} RSGs whose target does not exist, created in {:.1} s; rsg's API calls (audit log of its identity), per minute since:",
        started.elapsed().as_secs_f64()
    );
    println!("| minute | all calls | Deployment reads | status writes |");
    println!("|---|---|---|---|");
    let mut previous = audited(&plane.audit_log);
    for minute in 1..=minutes {
        let until = started + Duration::from_secs(60 * minute);
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
        let now = audited(&plane.audit_log);
        println!(
            "| {minute} | {} | {} | {} |",
            now.0 - previous.0,
            now.1 - previous.1,
            now.2 - previous.2
        );
        previous = now;
    }
    println!("(with a fixed 30 s retry, every RSG would read its target twice a minute: {} reads per minute)", 2 * RSGS);
}
