//! GroupReplication throughput and latency against the local API server.
//!
//! (a) rsg scales one RSG of 2 Deployments + 2 Services from 1 to 51 groups; measured until
//!     its status reports 51 current groups;
//! (b) a plain client creates the same 200 objects, 8 groups at a time like rsg;
//! (c) from a scale-subresource update to the first object of the new group, over 50
//!     scalings (p50/p99);
//! (d) rsg's memory with 1,000 RSGs and their workloads in its cache.
//!
//! Run: `cargo bench --bench group_replication`.

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{invoked_as_benchmark, memory_mib};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use rsg::api::ResourceScalingGroup;
use serde_json::{json, Value};
use support::control_plane::ControlPlane;
use support::kubectl::install_rsg_prerequisites;
use support::processes::scratch_dir;
use support::rsg_process::RsgProcess;

const GROUPS: i32 = 51;
const CONCURRENCY: usize = 8;
const SCALINGS: usize = 50;
const MANY_RSGS: usize = 1000;
/// (a) and (b) alternate this many times; single runs on a shared machine vary by 2x.
const ROUNDS: usize = 5;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn spread(samples: &[Duration]) -> String {
    let list: Vec<String> = samples.iter().map(|d| format!("{:.0}", ms(*d))).collect();
    list.join(", ")
}

async fn create_namespace(client: &Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace");
}

async fn create_value(client: &Client, ns: &str, object: &Value) {
    let params = PostParams::default();
    match object["kind"].as_str() {
        Some("Deployment") => {
            let d: Deployment = serde_json::from_value(object.clone()).unwrap();
            Api::<Deployment>::namespaced(client.clone(), ns)
                .create(&params, &d)
                .await
                .expect("create deployment");
        }
        Some("Service") => {
            let s: Service = serde_json::from_value(object.clone()).unwrap();
            Api::<Service>::namespaced(client.clone(), ns)
                .create(&params, &s)
                .await
                .expect("create service");
        }
        other => panic!("unexpected kind {other:?}"),
    }
}

fn rsg_object(ns: &str, name: &str, deployments: &[&str], replicas: i32) -> ResourceScalingGroup {
    let targets: Vec<Value> = deployments
        .iter()
        .map(|d| rsg::fixtures::deployment_target(d.trim_start_matches("llm-"), d, Some(ns)))
        .collect();
    let strategy = json!({"type": "GroupReplication", "groupConfig": {"groupName": "pd", "replicas": replicas}});
    rsg::fixtures::rsg(ns, name, targets, strategy)
}

async fn wait_current(client: &Client, ns: &str, name: &str, current: i32) {
    let api: Api<ResourceScalingGroup> = Api::namespaced(client.clone(), ns);
    let stream = watcher(
        api,
        watcher::Config::default().fields(&format!("metadata.name={name}")),
    )
    .applied_objects();
    futures::pin_mut!(stream);
    while let Some(rsg) = stream.try_next().await.expect("watch") {
        let status = rsg.status.unwrap_or_default();
        if status.current_replicas == current && status.last_desired_replicas == Some(current) {
            return;
        }
    }
}

async fn scale(client: &Client, ns: &str, name: &str, replicas: i32) {
    Api::<ResourceScalingGroup>::namespaced(client.clone(), ns)
        .patch_scale(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": replicas}})),
        )
        .await
        .expect("scale");
}

/// (a): rsg from 1 to 51 groups.
async fn rsg_scale_out(client: &Client, round: usize) -> Duration {
    let ns = &format!("bench-rsg-{round}");
    create_namespace(client, ns).await;
    for object in common::base_objects(ns, "registry.local/vllm:1") {
        create_value(client, ns, &object).await;
    }
    let rsg = rsg_object(ns, "llm", &["llm-prefill", "llm-decode"], 1);
    Api::<ResourceScalingGroup>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &rsg)
        .await
        .expect("rsg");
    wait_current(client, ns, "llm", 1).await;
    let started = Instant::now();
    scale(client, ns, "llm", GROUPS).await;
    wait_current(client, ns, "llm", GROUPS).await;
    started.elapsed()
}

/// (b): the same 200 objects from a plain client.
async fn plain_client_creates(client: &Client, round: usize) -> Duration {
    let ns = &format!("bench-plain-{round}");
    create_namespace(client, ns).await;
    let bases = common::base_objects(ns, "registry.local/vllm:1");
    let renames = BTreeMap::new();
    let groups: Vec<Vec<Value>> = (1..GROUPS)
        .map(|id| common::copy_group(&bases, ns, "llm", id, &renames))
        .collect();
    let started = Instant::now();
    futures::stream::iter(groups)
        .map(|group| async move {
            for object in &group {
                create_value(client, ns, object).await;
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
    started.elapsed()
}

/// (c): scale-subresource update → first object of the new group, `SCALINGS` times.
async fn scale_latency(client: &Client) -> Vec<Duration> {
    let ns = "bench-latency";
    create_namespace(client, ns).await;
    for object in common::base_objects(ns, "registry.local/vllm:1") {
        create_value(client, ns, &object).await;
    }
    let rsg = rsg_object(ns, "lat", &["llm-prefill", "llm-decode"], 1);
    Api::<ResourceScalingGroup>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &rsg)
        .await
        .expect("rsg");
    wait_current(client, ns, "lat", 1).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let mut latencies = Vec::new();
    for _ in 0..SCALINGS {
        let stream = watcher(
            deployments.clone(),
            watcher::Config::default().labels("rsg.io/group-id=1"),
        )
        .default_backoff();
        futures::pin_mut!(stream);
        // Wait for the watch's initial (empty) list before scaling.
        while let Some(event) = stream.try_next().await.expect("watch") {
            if matches!(event, watcher::Event::InitDone) {
                break;
            }
        }
        let started = Instant::now();
        scale(client, ns, "lat", 2).await;
        while let Some(event) = stream.try_next().await.expect("watch") {
            if matches!(event, watcher::Event::Apply(_)) {
                latencies.push(started.elapsed());
                break;
            }
        }
        wait_current(client, ns, "lat", 2).await;
        scale(client, ns, "lat", 1).await;
        wait_current(client, ns, "lat", 1).await;
    }
    latencies.sort();
    latencies
}

/// (d): 1,000 RSGs, each with one base Deployment and one copy group.
async fn many_rsgs(client: &Client) -> Duration {
    let ns = "bench-many";
    create_namespace(client, ns).await;
    let started = Instant::now();
    futures::stream::iter(0..MANY_RSGS)
        .map(|i| async move {
            let name = format!("w{i}");
            let base = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
            create_value(client, ns, &base).await;
            let mut rsg = rsg_object(ns, &name, &[&name], 2);
            rsg.spec.scaling_strategy.group_config.as_mut().unwrap().group_name = Some(format!("g{i}"));
            Api::<ResourceScalingGroup>::namespaced(client.clone(), ns).create(&PostParams::default(), &rsg).await.expect("rsg");
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    let api: Api<ResourceScalingGroup> = Api::namespaced(client.clone(), ns);
    loop {
        let list = api.list(&Default::default()).await.expect("list");
        let done = list
            .items
            .iter()
            .filter(|r| r.status.as_ref().is_some_and(|s| s.current_replicas == 2))
            .count();
        if done == MANY_RSGS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    started.elapsed()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    if !invoked_as_benchmark() {
        println!("group replication benchmark: run with `cargo bench --bench group_replication`");
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
        let kubeconfig = kube::config::Kubeconfig::read_from(&plane.kubeconfig).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.expect("config");
        let client = Client::try_from(config).expect("client");

        let (mut plain, mut by_rsg) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            plain.push(plain_client_creates(&client, round).await);
            by_rsg.push(rsg_scale_out(&client, round).await);
        }
        println!("\nGroupReplication benchmark (local kube-apiserver 1.20 + etcd on the same 2 cores)\n");
        println!("| measurement | median of {ROUNDS} | all rounds (ms) |");
        println!("|---|---|---|");
        println!("| (a) rsg: scale 1 -> {GROUPS} groups (200 objects) until status reports {GROUPS} | {:.0} ms | {} |", ms(median(by_rsg.clone())), spread(&by_rsg));
        println!("| (b) plain client: the same 200 objects, {CONCURRENCY} groups at a time | {:.0} ms | {} |", ms(median(plain.clone())), spread(&plain));
        println!("| ratio of medians (a)/(b) (target <= 1.3) | {:.2} | |", median(by_rsg).as_secs_f64() / median(plain).as_secs_f64());

        let latencies = scale_latency(&client).await;
        let pick = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        println!("| (c) scale -> first object of the new group, p50 over {SCALINGS} | {:.1} ms | |", ms(pick(0.5)));
        println!("| (c) scale -> first object of the new group, p99 over {SCALINGS} | {:.1} ms | |", ms(pick(0.99)));

        let (rss_before, _) = memory_mib(rsg.pid().expect("pid"));
        let took = many_rsgs(&client).await;
        let (rss, peak) = memory_mib(rsg.pid().expect("pid"));
        println!("| (d) {MANY_RSGS} RSGs created and each scaled to 2 groups | {:.1} s | |", took.as_secs_f64());
        println!("| (d) rsg RSS before / with {MANY_RSGS} RSGs, 2,000 Deployments, snapshots and ConfigMaps cached | {rss_before:.1} / {rss:.1} MiB (peak {peak:.1}) | |");
    });
}
