//! InplaceScaling latency: from a change of the leader's replicas (through its scale
//! subresource, as `kubectl scale` or an HPA does) until every follower has its new
//! `spec.replicas`, over 50 changes (p50/p99).
//!
//! Run: `cargo bench --bench inplace_scaling`.

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use common::invoked_as_benchmark;
use futures::TryStreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use rsg::api::ResourceScalingGroup;
use serde_json::json;
use support::control_plane::ControlPlane;
use support::kubectl::install_rsg_prerequisites;
use support::processes::scratch_dir;
use support::rsg_process::RsgProcess;

const CHANGES: usize = 50;
const NS: &str = "bench-inplace";

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({"metadata": {"name": name, "namespace": NS},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}))
    .unwrap()
}

async fn setup(client: &Client) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    for name in ["scheduler", "worker", "sidecar"] {
        deployments
            .create(&PostParams::default(), &deployment(name))
            .await
            .expect("deployment");
    }
    let rsg: ResourceScalingGroup = serde_json::from_value(json!({
        "apiVersion": "autoscaling.openfuyao.com/v1alpha1", "kind": "ResourceScalingGroup",
        "metadata": {"name": "lf", "namespace": NS},
        "spec": {"targetResources": [
            {"name": "scheduler", "resourceRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "scheduler"}},
            {"name": "worker", "resourceRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker"}},
            {"name": "sidecar", "resourceRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "sidecar"}}],
          "scalingStrategy": {"type": "InplaceScaling", "leaderFollowerConfig": {
            "leader": {"resourceName": "scheduler", "replicas": 3},
            "follower": [{"resourceName": "worker", "followRatio": 2}, {"resourceName": "sidecar", "followRatio": 1}]}}}
    }))
    .unwrap();
    Api::<ResourceScalingGroup>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &rsg)
        .await
        .expect("rsg");
}

/// Waits until worker and sidecar have `leader * 2` and `leader` replicas.
async fn followers_at(deployments: &Api<Deployment>, leader: i32) {
    let stream = watcher(deployments.clone(), watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    let mut worker = None;
    let mut sidecar = None;
    while let Some(event) = stream.try_next().await.expect("watch") {
        let objects: Vec<Deployment> = match event {
            watcher::Event::Apply(d) | watcher::Event::InitApply(d) => vec![d],
            _ => Vec::new(),
        };
        for d in objects {
            let replicas = d.spec.as_ref().and_then(|s| s.replicas);
            match d.name_any().as_str() {
                "worker" => worker = replicas,
                "sidecar" => sidecar = replicas,
                _ => {}
            }
        }
        if worker == Some(leader * 2) && sidecar == Some(leader) {
            return;
        }
    }
}

fn main() {
    if !invoked_as_benchmark() {
        println!("inplace scaling benchmark: run with `cargo bench --bench inplace_scaling`");
        return;
    }
    let dir = scratch_dir();
    let plane = ControlPlane::start(&dir, false);
    install_rsg_prerequisites(&plane.kubeconfig);
    let rsg = RsgProcess::start(&dir, &plane.kubeconfig, "rsg-bench");
    // RSGs are admitted as in a cluster: rsg acts only on those its webhook recorded.
    support::rsg_process::register_webhooks(&plane.kubeconfig, &rsg);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let kubeconfig =
            kube::config::Kubeconfig::read_from(&plane.kubeconfig).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("config");
        let client = Client::try_from(config).expect("client");
        setup(&client).await;
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
        followers_at(&deployments, 3).await;
        let mut latencies = Vec::new();
        for i in 0..CHANGES {
            let leader = 4 + (i % 2) as i32;
            let started = Instant::now();
            deployments
                .patch_scale(
                    "scheduler",
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"spec": {"replicas": leader}})),
                )
                .await
                .expect("scale leader");
            followers_at(&deployments, leader).await;
            latencies.push(started.elapsed());
        }
        latencies.sort();
        let pick =
            |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "\nInplaceScaling benchmark (local kube-apiserver 1.20 + etcd on the same 2 cores)\n"
        );
        println!("| measurement | value |");
        println!("|---|---|");
        println!(
            "| leader scaled -> both followers updated, p50 over {CHANGES} | {:.1} ms |",
            ms(pick(0.5))
        );
        println!(
            "| leader scaled -> both followers updated, p99 over {CHANGES} | {:.1} ms |",
            ms(pick(0.99))
        );
    });
}
