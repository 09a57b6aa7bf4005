//! KEDA driving an RSG: the real KEDA operator and metrics API server (built from their Go
//! module) poll a Prometheus trigger (a real Prometheus scraping a pushgateway). The operator
//! moves the RSG between zero and one group through its scale subresource: activation
//! restores group 0 from its baseline, deactivation holds group 0 at zero and keeps the base.
//! Above one, the HPA KEDA created reads the trigger's value through the metrics API
//! (`external.metrics.k8s.io`, an APIService) and sets the group count. Prints how long each
//! took, from the metric's change to the RSG reporting the new count.

mod support;

use std::time::{Duration, Instant};

use support::{apply, env_with, get_json, namespace, wait_for, wait_rsg_converged, EnvOptions};

/// Replicas of the base, restored when KEDA activates the RSG.
const BASELINE: i64 = 2;

/// A ScaledObject `name` on `target` (`apiVersion`, kind, name): zero to four, one per 8
/// requests in flight in `ns`, active above 4, polled every second, 5 s cooldown; the HPA it
/// makes scales down without a stabilization window (the default five minutes would only
/// slow the tests).
fn scaled_object(ns: &str, name: &str, target: (&str, &str, &str), prometheus: &str) -> String {
    let (api_version, kind, target) = target;
    format!(
        r#"apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: {name}, namespace: {ns}}}
spec:
  scaleTargetRef:
    apiVersion: {api_version}
    kind: {kind}
    name: {target}
  minReplicaCount: 0
  maxReplicaCount: 4
  pollingInterval: 1
  cooldownPeriod: 5
  advanced:
    horizontalPodAutoscalerConfig:
      behavior:
        scaleDown: {{stabilizationWindowSeconds: 0}}
  triggers:
  - type: prometheus
    metadata:
      serverAddress: {prometheus}
      query: sum(inflight_requests{{namespace="{ns}"}})
      threshold: "8"
      activationThreshold: "4"
"#
    )
}

/// The cluster with Prometheus and the KEDA operator; returns Prometheus.
fn setup() -> &'static support::prometheus::Prometheus {
    let env = env_with(EnvOptions {
        cluster: true,
        prometheus: true,
        ..EnvOptions::default()
    });
    support::keda::start();
    env.prometheus.as_ref().expect("Prometheus")
}

#[test]
fn a_keda_prometheus_trigger_activates_and_deactivates_an_rsg_through_its_scale_subresource() {
    let prometheus = setup();
    let ns = namespace("keda");
    apply(&support::fixtures::deployment(
        &ns,
        "engine",
        BASELINE as i32,
    ));
    support::engine_rsg_at_one_group(&ns);

    // No requests in flight (no series at all): KEDA deactivates the RSG to zero.
    apply(&scaled_object(
        &ns,
        "engine",
        (
            "autoscaling.openfuyao.com/v1alpha1",
            "ResourceScalingGroup",
            "engine",
        ),
        &prometheus.url,
    ));
    let rsg = wait_rsg_converged(&ns, "engine", 0);
    assert_eq!(rsg["spec"]["scalingStrategy"]["groupConfig"]["replicas"], 0);
    assert_eq!(rsg["status"]["groups"][0]["state"], "ScaledToZero");
    let base = get_json("deployment", &ns, "engine").expect("the base is kept");
    assert_eq!(base["spec"]["replicas"], 0);
    assert_eq!(
        base["metadata"]["annotations"]["rsg.io/held-at-zero"],
        "true"
    );
    let scaled_object = get_json("scaledobject", &ns, "engine").expect("the ScaledObject");
    let hpa_name = format!("keda-hpa-{}", "engine");
    assert_eq!(
        scaled_object["status"]["hpaName"], hpa_name,
        "KEDA made its HPA for the RSG"
    );
    let hpa = get_json("hpa", &ns, &hpa_name).expect("KEDA's HPA");
    assert_eq!(
        hpa["spec"]["scaleTargetRef"]["kind"],
        "ResourceScalingGroup"
    );

    // Requests above the activation threshold: KEDA scales the RSG to one group, and group 0
    // comes back at its baseline.
    prometheus.push("inference", "inflight_requests", "gauge", &ns, 0, 6.0);
    let pushed = Instant::now();
    wait_rsg_converged(&ns, "engine", 1);
    let activation = pushed.elapsed();
    let base = get_json("deployment", &ns, "engine").expect("the base");
    assert_eq!(
        base["spec"]["replicas"], BASELINE,
        "restored to the baseline"
    );
    assert!(base["metadata"]["annotations"]
        .get("rsg.io/held-at-zero")
        .is_none());
    wait_for(
        "the base's pods to be Ready again",
        Duration::from_secs(60),
        || {
            let base = get_json("deployment", &ns, "engine")?;
            (base["status"]["readyReplicas"] == BASELINE).then_some(())
        },
    );
    let serving = pushed.elapsed();

    // No requests again: after the cooldown KEDA takes the RSG back to zero.
    prometheus.push("inference", "inflight_requests", "gauge", &ns, 0, 0.0);
    let idle = Instant::now();
    wait_rsg_converged(&ns, "engine", 0);
    let deactivation = idle.elapsed();
    let base = get_json("deployment", &ns, "engine").expect("the base is kept");
    assert_eq!(base["spec"]["replicas"], 0);
    println!(
        "KEDA activation 0 -> 1 group: RSG converged {:.1} s after the metric was pushed, base pods Ready after {:.1} s; deactivation 1 -> 0 (cooldown 5 s): {:.1} s",
        activation.as_secs_f64(),
        serving.as_secs_f64(),
        deactivation.as_secs_f64()
    );
}

#[test]
fn a_keda_value_that_asks_for_n_groups_makes_the_hpa_keda_created_set_n() {
    let prometheus = setup();
    let ns = namespace("keda-groups");
    apply(&support::fixtures::deployment(&ns, "engine", 1));
    support::engine_rsg_at_one_group(&ns);
    let rsg_target = (
        "autoscaling.openfuyao.com/v1alpha1",
        "ResourceScalingGroup",
        "engine",
    );

    // 20 requests in flight at 8 per group: the HPA asks for three groups.
    prometheus.push("inference", "inflight_requests", "gauge", &ns, 0, 20.0);
    let pushed = Instant::now();
    apply(&scaled_object(&ns, "engine", rsg_target, &prometheus.url));
    wait_rsg_converged(&ns, "engine", 3);
    let three = pushed.elapsed();
    let hpa = get_json("hpa", &ns, "keda-hpa-engine").expect("KEDA's HPA");
    assert_eq!(hpa["status"]["desiredReplicas"], 3, "{hpa}");
    let metric = &hpa["status"]["currentMetrics"][0]["external"];
    assert_eq!(
        metric["metric"]["name"], "s0-prometheus",
        "the HPA reads KEDA's external metric: {hpa}"
    );
    let rsg = get_json("rsg", &ns, "engine").expect("the RSG");
    assert_eq!(rsg["spec"]["scalingStrategy"]["groupConfig"]["replicas"], 3);
    assert!(get_json("deployment", &ns, "engine-engine-2").is_some());

    // 30 in flight: four groups, KEDA's maximum.
    prometheus.push("inference", "inflight_requests", "gauge", &ns, 0, 30.0);
    let raised = Instant::now();
    wait_rsg_converged(&ns, "engine", 4);
    let four = raised.elapsed();

    // 6 in flight, still active: one group; the highest ids go.
    prometheus.push("inference", "inflight_requests", "gauge", &ns, 0, 6.0);
    let lowered = Instant::now();
    wait_rsg_converged(&ns, "engine", 1);
    let one = lowered.elapsed();
    assert!(get_json("deployment", &ns, "engine-engine-1").is_none());
    let base = get_json("deployment", &ns, "engine").expect("the base");
    assert_eq!(
        base["spec"]["replicas"], 1,
        "group 0 stays, at its baseline"
    );
    println!(
        "KEDA through its metrics API: 1 -> 3 groups {:.1} s after the value was pushed (ScaledObject made at once), 3 -> 4 {:.1} s, 4 -> 1 {:.1} s",
        three.as_secs_f64(),
        four.as_secs_f64(),
        one.as_secs_f64()
    );
}

fn replicas(ns: &str, name: &str) -> Option<i64> {
    get_json("deployment", ns, name)?["spec"]["replicas"].as_i64()
}

#[test]
fn followers_of_an_inplace_scaling_leader_follow_what_keda_sets() {
    let prometheus = setup();
    let ns = namespace("keda-inplace");
    apply(&support::fixtures::deployment(&ns, "scheduler", 1));
    apply(&support::fixtures::deployment(&ns, "worker", 2));
    // No `leader.replicas`: whoever scales the leader (here KEDA) decides its size.
    apply(&format!(
        r#"apiVersion: autoscaling.openfuyao.com/v1alpha1
kind: ResourceScalingGroup
metadata: {{name: leader-follower, namespace: {ns}}}
spec:
  targetResources:
  - {{name: scheduler, resourceRef: {{apiVersion: apps/v1, kind: Deployment, name: scheduler}}}}
  - {{name: worker, resourceRef: {{apiVersion: apps/v1, kind: Deployment, name: worker}}}}
  scalingStrategy:
    type: InplaceScaling
    leaderFollowerConfig:
      leader: {{resourceName: scheduler}}
      follower: [{{resourceName: worker, followRatio: 2}}]
"#
    ));
    apply(&scaled_object(
        &ns,
        "scheduler",
        ("apps/v1", "Deployment", "scheduler"),
        &prometheus.url,
    ));
    let follows = |leader: i64| {
        wait_for(
            &format!("the leader at {leader} and the follower at {}", 2 * leader),
            Duration::from_secs(60),
            || {
                (replicas(&ns, "scheduler")? == leader && replicas(&ns, "worker")? == 2 * leader)
                    .then_some(())
            },
        )
    };
    // Idle: KEDA scales the leader to zero, and the follower goes with it.
    follows(0);
    // Active: KEDA brings the leader to one, the follower to two.
    prometheus.push("inference", "inflight_requests", "gauge", &ns, 0, 6.0);
    follows(1);
    prometheus.push("inference", "inflight_requests", "gauge", &ns, 0, 0.0);
    follows(0);
}

#[test]
fn the_service_level_sample_is_activated_and_deactivated_by_keda() {
    let prometheus = setup();
    let ns = namespace("keda-service-level");
    let sample = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/manifests/samples/40-service-level-scaling.yaml"
    ))
    .expect("reading the service-level sample")
    .replace("namespace: scaling-system", &format!("namespace: {ns}"));
    apply(&sample);
    wait_rsg_converged(&ns, "vllm-cluster", 3);
    assert!(get_json("statefulset", &ns, "svc-vllm-1").is_some());
    assert!(get_json("service", &ns, "vllm-svc-1").is_some());
    apply(&scaled_object(
        &ns,
        "vllm-cluster",
        (
            "autoscaling.openfuyao.com/v1alpha1",
            "ResourceScalingGroup",
            "vllm-cluster",
        ),
        &prometheus.url,
    ));
    // Idle: every copy and its Service go, the base StatefulSet is held at zero with its
    // headless Service kept.
    wait_rsg_converged(&ns, "vllm-cluster", 0);
    assert!(get_json("statefulset", &ns, "svc-vllm-1").is_none());
    assert!(get_json("service", &ns, "vllm-svc-1").is_none());
    let base = get_json("statefulset", &ns, "vllm").expect("the base is kept");
    assert_eq!(base["spec"]["replicas"], 0);
    assert!(get_json("service", &ns, "vllm").is_some());

    // Active: group 0 comes back at one pod, Ready.
    prometheus.push("inference", "inflight_requests", "gauge", &ns, 0, 6.0);
    wait_rsg_converged(&ns, "vllm-cluster", 1);
    wait_for(
        "the base StatefulSet's pod to be Ready",
        Duration::from_secs(60),
        || {
            let base = get_json("statefulset", &ns, "vllm")?;
            (base["spec"]["replicas"] == 1 && base["status"]["readyReplicas"] == 1).then_some(())
        },
    );
}
