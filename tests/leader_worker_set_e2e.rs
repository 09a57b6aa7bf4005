//! GroupReplication of a LeaderWorkerSet against the LeaderWorkerSet project itself: its CRD
//! (the real schema), its defaulting and validating webhooks, and its controller, which makes
//! each copy's leader StatefulSet and per-leader worker StatefulSets; the controller manager,
//! the scheduler and kwok's nodes run their pods. The copies must be accepted, their pods must
//! carry rsg's group labels, readiness comes from the LeaderWorkerSet's own status, one pod per
//! group represents it, and scaling to zero and back restores the base at its baseline.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::leader_worker_set::NAME_LABEL;
use support::{
    apply, env_with, get_json, names, namespace, scale_rsg, wait_for, wait_rsg_converged,
    EnvOptions,
};

fn setup() {
    env_with(EnvOptions {
        cluster: true,
        ..EnvOptions::default()
    });
    support::leader_worker_set::start();
}

/// Groups of one leader and one worker each.
const GROUP_SIZE: usize = 2;
/// LeaderWorkerSet replicas (groups of leader + workers) of the base.
const BASE_REPLICAS: usize = 2;

fn base_and_rsg(ns: &str) -> String {
    format!(
        r#"apiVersion: leaderworkerset.x-k8s.io/v1
kind: LeaderWorkerSet
metadata: {{name: vllm, namespace: {ns}}}
spec:
  replicas: {BASE_REPLICAS}
  leaderWorkerTemplate:
    size: {GROUP_SIZE}
    workerTemplate:
      metadata: {{labels: {{app: vllm}}}}
      spec:
        containers:
        - name: vllm
          image: registry.local/vllm:1
          resources: {{requests: {{cpu: 100m}}}}
---
apiVersion: autoscaling.openfuyao.com/v1alpha1
kind: ResourceScalingGroup
metadata: {{name: lws-group, namespace: {ns}}}
spec:
  targetResources:
  - name: engine
    resourceRef: {{apiVersion: leaderworkerset.x-k8s.io/v1, kind: LeaderWorkerSet, name: vllm}}
  scalingStrategy:
    type: GroupReplication
    groupConfig: {{groupName: g, replicas: 2}}
"#
    )
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Waits until exactly `count` pods match `selector` in `ns`, all Ready; returns them.
fn wait_ready_pods(ns: &str, selector: &str, count: usize) -> Vec<Value> {
    wait_for(
        &format!("{count} Ready pods matching {selector} in {ns}"),
        Duration::from_secs(120),
        || {
            let out =
                support::run_kubectl(&["get", "pods", "-n", ns, "-l", selector, "-o", "json"]);
            let list: Value = serde_json::from_str(&out).ok()?;
            let pods = list["items"].as_array()?.clone();
            (pods.len() == count && pods.iter().all(is_ready)).then_some(pods)
        },
    )
}

fn group_status(ns: &str, id: i64) -> Option<Value> {
    let rsg = get_json("rsg", ns, "lws-group")?;
    rsg["status"]["groups"]
        .as_array()?
        .iter()
        .find(|g| g["id"] == id)
        .cloned()
}

#[test]
fn copies_of_a_leader_worker_set_are_accepted_and_run_by_its_controller() {
    setup();
    let ns = namespace("lws");
    apply(&base_and_rsg(&ns));
    wait_rsg_converged(&ns, "lws-group", 2);

    // The copy passed the project's schema and its defaulting webhook.
    let copy = get_json("leaderworkerset", &ns, "g-vllm-1").expect("the LeaderWorkerSet copy");
    assert_eq!(copy["spec"]["replicas"], BASE_REPLICAS);
    assert_eq!(
        copy["spec"]["networkConfig"]["subdomainPolicy"], "Shared",
        "the LeaderWorkerSet webhook defaulted the copy"
    );
    assert_eq!(
        copy["spec"]["leaderWorkerTemplate"]["workerTemplate"]["metadata"]["labels"],
        serde_json::json!({"app": "vllm", "rsg.io/name": "lws-group", "rsg.io/group-id": "1"})
    );

    // Its controller made the group's pods (leaders and workers), with rsg's group labels.
    let copy_pods = wait_ready_pods(
        &ns,
        "rsg.io/name=lws-group,rsg.io/group-id=1",
        BASE_REPLICAS * GROUP_SIZE,
    );
    for pod in &copy_pods {
        assert_eq!(pod["metadata"]["labels"][NAME_LABEL], "g-vllm-1", "{pod}");
    }
    let leaders = copy_pods
        .iter()
        .filter(|pod| pod["metadata"]["labels"]["leaderworkerset.sigs.k8s.io/worker-index"] == "0")
        .count();
    assert_eq!(
        leaders, BASE_REPLICAS,
        "one leader per LeaderWorkerSet replica"
    );
    wait_ready_pods(
        &ns,
        &format!("{NAME_LABEL}=vllm,!rsg.io/group-id"),
        BASE_REPLICAS * GROUP_SIZE,
    );

    // Readiness comes from the LeaderWorkerSet's own status.
    let copy_ready = wait_for(
        "the LeaderWorkerSet controller to report the copy's replicas ready",
        Duration::from_secs(60),
        || {
            let copy = get_json("leaderworkerset", &ns, "g-vllm-1")?;
            (copy["status"]["readyReplicas"] == BASE_REPLICAS).then_some(copy)
        },
    );
    assert_eq!(copy_ready["status"]["replicas"], BASE_REPLICAS);
    for id in [0, 1] {
        wait_for(
            &format!("group {id} reported ready"),
            Duration::from_secs(60),
            || (group_status(&ns, id)?["ready"] == true).then_some(()),
        );
    }

    // One pod represents each group.
    wait_for(
        "one representative per group",
        Duration::from_secs(60),
        || {
            let group_1 = names(
                "pods",
                &ns,
                "rsg.io/representative=lws-group,rsg.io/group-id=1",
            );
            let group_0 = names(
                "pods",
                &ns,
                "rsg.io/representative=lws-group,!rsg.io/group-id",
            );
            (group_1.len() == 1 && group_0.len() == 1).then_some(())
        },
    );

    // Zero groups: the base is held at zero replicas (never deleted), the copy and every pod go.
    scale_rsg(&ns, "lws-group", 0);
    let rsg = wait_rsg_converged(&ns, "lws-group", 0);
    assert_eq!(rsg["status"]["groups"][0]["state"], "ScaledToZero");
    let base = get_json("leaderworkerset", &ns, "vllm").expect("the base is kept");
    assert_eq!(base["spec"]["replicas"], 0);
    assert!(get_json("leaderworkerset", &ns, "g-vllm-1").is_none());
    wait_for("every pod to go", Duration::from_secs(120), || {
        names("pods", &ns, "app=vllm").is_empty().then_some(())
    });

    // One group: the base comes back at its baseline and its controller runs it again.
    scale_rsg(&ns, "lws-group", 1);
    wait_rsg_converged(&ns, "lws-group", 1);
    let base = get_json("leaderworkerset", &ns, "vllm").expect("the base");
    assert_eq!(
        base["spec"]["replicas"], BASE_REPLICAS,
        "restored to the baseline"
    );
    assert_eq!(
        base["spec"]["leaderWorkerTemplate"]["workerTemplate"]["metadata"]["labels"],
        serde_json::json!({"app": "vllm"}),
        "the base's pod template is never changed"
    );
    wait_ready_pods(
        &ns,
        &format!("{NAME_LABEL}=vllm"),
        BASE_REPLICAS * GROUP_SIZE,
    );
    wait_for(
        "group 0 reported ready again",
        Duration::from_secs(60),
        || (group_status(&ns, 0)?["ready"] == true).then_some(()),
    );
}
