//! Rolling update of 10 copy groups (prefill + decode Deployments and a headless Service
//! each), against the same steps done by a plain client in the same run: a new image on the
//! bases, then, one group at a time, a new group created and made ready before an old one is
//! deleted (maxSurge 1, maxUnavailable 0). kube-controller-manager runs the Deployments, the
//! real kube-scheduler places their pods on kwok's simulated nodes, and kwok makes them Ready.
//!
//! Run: `cargo bench --bench rolling_update`.

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::invoked_as_benchmark;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use rsg::api::ResourceScalingGroup;
use serde_json::{json, Value};
use support::control_plane::ControlPlane;
use support::kubectl::install_rsg_prerequisites;
use support::processes::scratch_dir;
use support::rsg_process::RsgProcess;

/// Copy groups replaced (group 0, the base, is never replaced).
const COPIES: i32 = 10;
const ROLES: [&str; 2] = ["prefill", "decode"];

async fn create(client: &Client, ns: &str, object: &Value) {
    let params = PostParams::default();
    if object["kind"] == "Deployment" {
        let d: Deployment = serde_json::from_value(object.clone()).expect("a Deployment");
        Api::<Deployment>::namespaced(client.clone(), ns)
            .create(&params, &d)
            .await
            .expect("create deployment");
    } else {
        let s: Service = serde_json::from_value(object.clone()).expect("a Service");
        Api::<Service>::namespaced(client.clone(), ns)
            .create(&params, &s)
            .await
            .expect("create service");
    }
}

async fn namespace(client: &Client, name: &str) {
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("a namespace");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace");
}

async fn set_image(client: &Client, ns: &str, image: &str) {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    for role in ROLES {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "vllm", "image": image}]}}}});
        api.patch(
            &format!("llm-{role}"),
            &PatchParams::default(),
            &Patch::Strategic(&patch),
        )
        .await
        .expect("new image");
    }
}

fn fully_ready(d: &Deployment) -> bool {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = d.status.clone().unwrap_or_default();
    status.observed_generation >= d.metadata.generation
        && status.ready_replicas.unwrap_or(0) >= want
        && status.updated_replicas.unwrap_or(0) >= want
}

async fn wait_ready(client: &Client, ns: &str, names: &[String]) {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    loop {
        let mut all = true;
        for name in names {
            all &= api.get(name).await.is_ok_and(|d| fully_ready(&d));
        }
        if all {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The plain client: the same groups, replaced one at a time the same way.
async fn plain_client(client: &Client) -> Duration {
    let ns = "bench-plain";
    namespace(client, ns).await;
    let bases = common::base_objects(ns, "registry.local/vllm:1");
    for object in &bases {
        create(client, ns, object).await;
    }
    // Deployments have no serviceName to rename.
    let no_renames = BTreeMap::new();
    let group = |id: i32, bases: &[Value]| -> Vec<Value> {
        common::copy_group(bases, ns, "plain", id, &no_renames)
    };
    let deployments =
        |id: i32| -> Vec<String> { ROLES.iter().map(|r| format!("pd-llm-{r}-{id}")).collect() };
    for id in 1..=COPIES {
        for object in group(id, &bases) {
            create(client, ns, &object).await;
        }
    }
    let all: Vec<String> = (1..=COPIES).flat_map(deployments).collect();
    wait_ready(client, ns, &all).await;

    let started = Instant::now();
    set_image(client, ns, "registry.local/vllm:2").await;
    let new_bases = common::base_objects(ns, "registry.local/vllm:2");
    let base_names: Vec<String> = ROLES.iter().map(|r| format!("llm-{r}")).collect();
    wait_ready(client, ns, &base_names).await;
    let deployments_api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let services_api: Api<Service> = Api::namespaced(client.clone(), ns);
    for (step, old) in (1..=COPIES).enumerate() {
        let new = COPIES + 1 + step as i32;
        for object in group(new, &new_bases) {
            create(client, ns, &object).await;
        }
        wait_ready(client, ns, &deployments(new)).await;
        for name in deployments(old) {
            deployments_api
                .delete(&name, &DeleteParams::default())
                .await
                .expect("delete");
        }
        for role in ROLES {
            services_api
                .delete(&format!("llm-{role}-pd-{old}"), &DeleteParams::default())
                .await
                .expect("delete");
        }
    }
    started.elapsed()
}

/// rsg: the same 10 groups, replaced by a RollingUpdate RSG.
async fn with_rsg(client: &Client) -> Duration {
    let ns = "bench-rsg";
    namespace(client, ns).await;
    for object in common::base_objects(ns, "registry.local/vllm:1") {
        create(client, ns, &object).await;
    }
    let rsg: ResourceScalingGroup = serde_json::from_value(json!({
        "apiVersion": "autoscaling.openfuyao.com/v1alpha1", "kind": "ResourceScalingGroup",
        "metadata": {"name": "llm", "namespace": ns},
        "spec": {
            "targetResources": ROLES.iter().map(|r| json!({"name": r, "resourceRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": format!("llm-{r}")}})).collect::<Vec<_>>(),
            "scalingStrategy": {"type": "GroupReplication", "groupConfig": {
                "groupName": "pd", "replicas": COPIES + 1,
                "updateStrategy": {"type": "RollingUpdate", "maxSurge": 1, "maxUnavailable": 0}}}
        }
    }))
    .expect("an RSG");
    let api: Api<ResourceScalingGroup> = Api::namespaced(client.clone(), ns);
    api.create(&PostParams::default(), &rsg)
        .await
        .expect("create the RSG");
    let settled = |rsg: &ResourceScalingGroup, revision: Option<&str>| {
        let status = rsg.status.clone().unwrap_or_default();
        let groups = COPIES + 1;
        status.current_replicas == groups
            && status.ready_replicas == groups
            && status.updated_replicas == Some(groups)
            && status
                .groups
                .iter()
                .all(|g| g.state == rsg::api::GroupState::Active)
            && revision.is_none_or(|r| status.update_revision.as_deref() != Some(r))
    };
    let before = loop {
        let rsg = api.get("llm").await.expect("the RSG");
        if settled(&rsg, None) {
            break rsg;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let old = before.status.and_then(|s| s.update_revision);
    let started = Instant::now();
    set_image(client, ns, "registry.local/vllm:2").await;
    loop {
        let rsg = api.get("llm").await.expect("the RSG");
        if settled(&rsg, old.as_deref()) {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn main() {
    if !invoked_as_benchmark() {
        println!("rolling update benchmark: run with `cargo bench --bench rolling_update`");
        return;
    }
    let dir = scratch_dir();
    let plane = ControlPlane::start(&dir, true);
    install_rsg_prerequisites(&plane.kubeconfig);
    let rsg = RsgProcess::start(&dir, &plane.kubeconfig, "rsg-bench");
    // RSGs are admitted as in a cluster: rsg acts only on those its webhook recorded.
    support::rsg_process::register_webhooks(&plane.kubeconfig, &rsg);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&plane.kubeconfig).expect("kubeconfig"),
            &Default::default(),
        )
        .await
        .expect("config");
        let client = Client::try_from(config).expect("client");
        let rsg = with_rsg(&client).await;
        let plain = plain_client(&client).await;
        println!("\nRolling update of {COPIES} groups (2 Deployments + 2 headless Services each; maxSurge 1, maxUnavailable 0; pods made ready by the simulator as soon as they exist):");
        println!("| runner | new image → every group at it |");
        println!("|---|---|");
        println!("| rsg (RollingUpdate RSG) | {:.2} s |", rsg.as_secs_f64());
        println!("| plain client, same steps (one group at a time: create, wait ready, delete the old one) | {:.2} s |", plain.as_secs_f64());
        println!("ratio rsg / plain client: {:.2}", rsg.as_secs_f64() / plain.as_secs_f64());
    });
}
