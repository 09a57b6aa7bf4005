//! InplaceScaling against the real kube-apiserver and kube-controller-manager.

mod support;

use std::time::Duration;

use support::{
    apply, env, env_with, get_json, kubectl, namespace, run_kubectl, wait_for, wait_rsg_reason,
    EnvOptions,
};

fn setup() -> String {
    env_with(EnvOptions {
        cluster: true,
        ..EnvOptions::default()
    });
    let ns = namespace("inplace");
    for name in ["scheduler", "worker", "sidecar"] {
        apply(&format!(
            r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}, labels: {{team: inference}}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: {name}, image: registry.local/{name}:1}}]
"#
        ));
    }
    ns
}

fn leader_follower(ns: &str, leader_replicas: Option<i32>, worker_ratio: i32) -> String {
    let replicas = leader_replicas
        .map(|r| format!(", replicas: {r}"))
        .unwrap_or_default();
    format!(
        r#"apiVersion: autoscaling.openfuyao.com/v1alpha1
kind: ResourceScalingGroup
metadata: {{name: leader-follower, namespace: {ns}}}
spec:
  targetResources:
  - name: scheduler
    resourceRef: {{apiVersion: apps/v1, kind: Deployment, name: scheduler}}
  - name: worker
    resourceRef: {{apiVersion: apps/v1, kind: Deployment, name: worker}}
  - name: sidecar
    resourceRef: {{apiVersion: apps/v1, kind: Deployment, name: sidecar}}
  scalingStrategy:
    type: InplaceScaling
    leaderFollowerConfig:
      leader: {{resourceName: scheduler{replicas}}}
      follower:
      - {{resourceName: worker, followRatio: {worker_ratio}}}
      - {{resourceName: sidecar, followRatio: 1}}
"#
    )
}

fn replicas(ns: &str, name: &str) -> Option<i64> {
    get_json("deployment", ns, name)?["spec"]["replicas"].as_i64()
}

fn wait_replicas(ns: &str, expected: &[(&str, i64)]) {
    wait_replicas_within(ns, expected, Duration::from_secs(30));
}

fn wait_replicas_within(ns: &str, expected: &[(&str, i64)], timeout: Duration) {
    wait_for(&format!("replicas {expected:?}"), timeout, || {
        expected
            .iter()
            .all(|(name, want)| replicas(ns, name) == Some(*want))
            .then_some(())
    });
}

#[test]
fn the_spec_example_and_leader_changes_propagate() {
    let ns = setup();
    let before = get_json("deployment", &ns, "worker").unwrap();
    apply(&leader_follower(&ns, Some(3), 2));
    wait_replicas(&ns, &[("scheduler", 3), ("worker", 6), ("sidecar", 3)]);
    let condition = wait_rsg_reason(&ns, "leader-follower", "Reconciled");
    assert_eq!(condition["status"], "True");
    let status = get_json("rsg", &ns, "leader-follower").unwrap()["status"].clone();
    assert_eq!(
        status["leader"],
        serde_json::json!({"resourceName": "scheduler", "observedReplicas": 3, "appliedReplicas": 3})
    );
    assert_eq!(
        status["followers"][0],
        serde_json::json!({"resourceName": "worker", "desiredReplicas": 6, "currentReplicas": 6})
    );

    // Only spec.replicas is written: the template and the user's labels are untouched.
    let after = get_json("deployment", &ns, "worker").unwrap();
    assert_eq!(after["spec"]["template"], before["spec"]["template"]);
    assert_eq!(after["metadata"]["labels"]["team"], "inference");

    // Something else scales the leader: followers follow, and leader.replicas is not re-applied.
    run_kubectl(&[
        "scale",
        "deployment",
        "scheduler",
        "-n",
        &ns,
        "--replicas=5",
    ]);
    wait_replicas(&ns, &[("scheduler", 5), ("worker", 10), ("sidecar", 5)]);

    // A new followRatio is applied.
    apply(&leader_follower(&ns, Some(3), 3));
    wait_replicas(&ns, &[("scheduler", 5), ("worker", 15), ("sidecar", 5)]);

    // A new leader.replicas is applied once.
    apply(&leader_follower(&ns, Some(2), 3));
    wait_replicas(&ns, &[("scheduler", 2), ("worker", 6), ("sidecar", 2)]);
    let events = run_kubectl(&[
        "get",
        "events",
        "-n",
        &ns,
        "--field-selector",
        "involvedObject.name=leader-follower",
        "-o",
        "json",
    ]);
    assert!(
        events.contains("ScaledFollowers") && events.contains("ScaledLeader"),
        "{events}"
    );
}

#[test]
fn a_real_hpa_on_the_leader_propagates_to_followers() {
    let ns = setup();
    apply(&leader_follower(&ns, None, 2));
    wait_replicas(&ns, &[("scheduler", 1), ("worker", 2), ("sidecar", 1)]);
    apply(&format!(
        r#"apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: scheduler, namespace: {ns}}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: scheduler}}
  minReplicas: 4
  maxReplicas: 6
  metrics:
  - type: Resource
    resource: {{name: cpu, target: {{type: Utilization, averageUtilization: 80}}}}
"#
    ));
    wait_for("the HPA and the followers", Duration::from_secs(60), || {
        (replicas(&ns, "scheduler") == Some(4)
            && replicas(&ns, "worker") == Some(8)
            && replicas(&ns, "sidecar") == Some(4))
        .then_some(())
    });
}

#[test]
fn a_missing_follower_is_reported_and_recovers_and_deletion_leaves_workloads() {
    let ns = setup();
    apply(&leader_follower(&ns, Some(2), 2));
    wait_replicas(&ns, &[("scheduler", 2), ("worker", 4), ("sidecar", 2)]);
    run_kubectl(&["delete", "deployment", "worker", "-n", &ns]);
    let condition = wait_rsg_reason(&ns, "leader-follower", "TargetNotFound");
    assert_eq!(
        condition["message"],
        format!("follower resource not found: Deployment {ns}/worker")
    );
    // The other follower is still kept at its ratio.
    run_kubectl(&[
        "scale",
        "deployment",
        "scheduler",
        "-n",
        &ns,
        "--replicas=3",
    ]);
    wait_replicas(&ns, &[("sidecar", 3)]);
    apply(&support::fixtures::deployment(&ns, "worker", 1));
    // A missing follower is not watched: rsg looks for it again 30 s (±20 %) after the
    // problem appeared.
    wait_replicas_within(&ns, &[("worker", 6)], Duration::from_secs(60));
    wait_rsg_reason(&ns, "leader-follower", "Reconciled");
    assert!(
        kubectl(
            &env().kubeconfig,
            &["delete", "rsg", "leader-follower", "-n", &ns]
        )
        .success
    );
    wait_for("the RSG to go", Duration::from_secs(30), || {
        get_json("rsg", &ns, "leader-follower")
            .is_none()
            .then_some(())
    });
    assert_eq!(
        [
            replicas(&ns, "scheduler"),
            replicas(&ns, "worker"),
            replicas(&ns, "sidecar")
        ],
        [Some(3), Some(6), Some(3)]
    );
}
