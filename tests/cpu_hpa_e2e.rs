//! CPU-driven scaling of an RSG: an autoscaling/v2 HPA with a CPU `averageUtilization`
//! target on an RSG's scale subresource, with the real metrics-server (built from its Go
//! module) reading the pods' usage that kwok simulates on the nodes. Raising the CPU of the
//! groups' pods scales the group count up, lowering it scales it down, and the HPA's pod
//! math stays in group units: it averages over one representative pod per group, so a group
//! of two pods counts once.

mod support;

use std::time::{Duration, Instant};

use support::metrics_server::CPU_USAGE_ANNOTATION;
use support::{apply, env_with, get_json, namespace, run_kubectl, wait_for, EnvOptions};

/// Pods per group: more than one, so pod units and group units differ.
const PODS_PER_GROUP: i64 = 2;

/// The base: `PODS_PER_GROUP` pods of `app: engine`, each requesting 100m of CPU.
fn engine(ns: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: engine, namespace: {ns}}}
spec:
  replicas: {PODS_PER_GROUP}
  selector: {{matchLabels: {{app: engine}}}}
  template:
    metadata: {{labels: {{app: engine}}}}
    spec:
      containers:
      - name: engine
        image: registry.local/engine:1
        resources: {{requests: {{cpu: 100m}}}}
"#
    )
}

/// An HPA on the RSG `engine`: one to four groups, 50% of the requested CPU on average, and
/// no scale-down stabilization (the default five minutes would only slow the test).
fn cpu_hpa(ns: &str) -> String {
    format!(
        r#"apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: engine, namespace: {ns}}}
spec:
  scaleTargetRef:
    apiVersion: autoscaling.openfuyao.com/v1alpha1
    kind: ResourceScalingGroup
    name: engine
  minReplicas: 1
  maxReplicas: 4
  metrics:
  - type: Resource
    resource:
      name: cpu
      target: {{type: Utilization, averageUtilization: 50}}
  behavior:
    scaleDown: {{stabilizationWindowSeconds: 0}}
"#
    )
}

/// Sets the simulated CPU usage of every pod `selector` matches in `ns`.
fn set_cpu_usage(ns: &str, selector: &str, usage: &str) {
    run_kubectl(&[
        "annotate",
        "pods",
        "-n",
        ns,
        "-l",
        selector,
        "--overwrite",
        &format!("{CPU_USAGE_ANNOTATION}={usage}"),
    ]);
}

/// The HPA's view once it has acted on `groups` groups: its current and desired replica
/// counts are both `groups`, and its CPU reading satisfies `reading`.
fn wait_hpa(ns: &str, groups: i64, reading: impl Fn(i64) -> bool) -> serde_json::Value {
    wait_for(
        &format!("the HPA to report {groups} groups and a fitting CPU reading"),
        Duration::from_secs(120),
        || {
            let hpa = get_json("hpa", ns, "engine")?;
            let status = &hpa["status"];
            let utilization = status["currentMetrics"][0]["resource"]["current"]
                ["averageUtilization"]
                .as_i64()?;
            (status["currentReplicas"] == groups
                && status["desiredReplicas"] == groups
                && reading(utilization))
            .then_some(hpa)
        },
    )
}

/// The RSG's group count, once it reports Ready for it.
fn wait_groups(ns: &str, groups: i64) {
    wait_for(
        &format!("RSG {ns}/engine at {groups} groups"),
        Duration::from_secs(180),
        || {
            let rsg = get_json("rsg", ns, "engine")?;
            (rsg["spec"]["scalingStrategy"]["groupConfig"]["replicas"] == groups
                && rsg["status"]["currentReplicas"] == groups)
                .then_some(())
        },
    );
}

#[test]
fn a_cpu_hpa_scales_the_group_count_up_and_down_in_group_units() {
    env_with(EnvOptions {
        cluster: true,
        ..EnvOptions::default()
    });
    support::metrics_server::start();
    let ns = namespace("cpu-hpa");
    apply(&engine(&ns));
    support::engine_rsg_at_one_group(&ns);
    apply(&cpu_hpa(&ns));

    // Idle (1m of the 100m requested): the HPA reads about 1% and keeps the one group.
    let hpa = wait_hpa(&ns, 1, |utilization| utilization < 10);
    assert_eq!(hpa["status"]["currentReplicas"], 1);

    // Group 0's two pods at 80m, 1.6 times the target: the HPA asks for ceil(1.6 × 1) = 2
    // groups. In pod units (a selector matching both pods) it would ask for ceil(1.6 × 2) = 4.
    let hot = Instant::now();
    set_cpu_usage(&ns, "app=engine,!rsg.io/group-id", "80m");
    wait_groups(&ns, 2);
    let scale_up = hot.elapsed();
    // Group 1's idle representative counted once beside group 0's: the average, about 40%,
    // keeps two groups (ceil(0.8 × 2) = 2).
    let hpa = wait_hpa(&ns, 2, |utilization| (30..=60).contains(&utilization));
    assert_eq!(
        hpa["spec"]["scaleTargetRef"]["kind"], "ResourceScalingGroup",
        "the HPA scales the RSG"
    );
    let pods = run_kubectl(&["get", "pods", "-n", &ns, "-l", "app=engine", "-o", "name"]);
    assert_eq!(
        pods.lines().count() as i64,
        2 * PODS_PER_GROUP,
        "two groups of {PODS_PER_GROUP} pods: {pods}"
    );
    let representatives = run_kubectl(&[
        "get",
        "pods",
        "-n",
        &ns,
        "-l",
        "rsg.io/representative=engine",
        "-o",
        "name",
    ]);
    assert_eq!(
        representatives.lines().count(),
        2,
        "one representative per group: {representatives}"
    );

    // Every pod idle again: the HPA takes the RSG back to one group.
    let cool = Instant::now();
    set_cpu_usage(&ns, "app=engine", "1m");
    wait_groups(&ns, 1);
    let scale_down = cool.elapsed();
    wait_hpa(&ns, 1, |utilization| utilization < 10);
    println!(
        "CPU HPA on an RSG (metrics-server resolution 10 s, HPA sync 2 s): 1 -> 2 groups {:.1} s after the pods' CPU rose, 2 -> 1 {:.1} s after it fell",
        scale_up.as_secs_f64(),
        scale_down.as_secs_f64()
    );
}
