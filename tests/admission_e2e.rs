//! The webhooks as a kubectl user meets them, against the real kube-apiserver.

mod support;

use std::time::Duration;

use support::{env, kubectl, kubectl_apply, namespace, wait_for};

const DENIED: &str =
    r#"admission webhook "validate.autoscaling.openfuyao.com" denied the request: "#;

fn deployment(ns: &str, name: &str, labels: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}}}
spec:
  replicas: 1
  selector: {{matchLabels: {labels}}}
  template:
    metadata: {{labels: {labels}}}
    spec:
      containers: [{{name: main, image: registry.local/llm:1}}]
"#
    )
}

fn group_rsg(ns: &str, name: &str, targets: &str, group_config: &str) -> String {
    format!(
        r#"apiVersion: autoscaling.openfuyao.com/v1alpha1
kind: ResourceScalingGroup
metadata: {{name: {name}, namespace: {ns}}}
spec:
  targetResources:
{targets}
  scalingStrategy:
    type: GroupReplication
    groupConfig:
{group_config}
"#
    )
}

fn inplace_rsg(ns: &str, name: &str, targets: &str, leader_follower: &str) -> String {
    format!(
        r#"apiVersion: autoscaling.openfuyao.com/v1alpha1
kind: ResourceScalingGroup
metadata: {{name: {name}, namespace: {ns}}}
spec:
  targetResources:
{targets}
  scalingStrategy:
    type: InplaceScaling
    leaderFollowerConfig:
{leader_follower}
"#
    )
}

fn target(name: &str, workload: &str) -> String {
    format!("  - name: {name}\n    resourceRef: {{apiVersion: apps/v1, kind: Deployment, name: {workload}}}\n")
}

/// A target in another namespace than its RSG.
fn target_in(ns: &str, name: &str, workload: &str) -> String {
    format!("  - name: {name}\n    resourceRef: {{apiVersion: apps/v1, kind: Deployment, name: {workload}, namespace: {ns}}}\n")
}

/// Applies `yaml` and returns kubectl's error output, asserting the apply failed.
fn rejected(yaml: &str) -> String {
    let out = kubectl_apply(&env().kubeconfig, yaml, &[]);
    assert!(
        !out.success,
        "expected a rejection, kubectl said: {} {}",
        out.stdout, out.stderr
    );
    out.stderr
}

fn accepted(yaml: &str) -> String {
    let out = kubectl_apply(&env().kubeconfig, yaml, &[]);
    assert!(
        out.success,
        "expected acceptance, kubectl said: {}",
        out.stderr
    );
    out.stderr
}

#[test]
fn misspelled_metric_type_is_rejected_with_the_supported_values() {
    let ns = namespace("metric");
    let yaml = group_rsg(
        &ns,
        "bad-metric",
        &target("prefill", "llm-prefill"),
        "      scaleDown:\n        metric: {expr: \"vllm:num_requests_running\", type: guage}",
    );
    let stderr = rejected(&yaml);
    assert!(
        stderr.contains(&format!(
            r#"{DENIED}ResourceScalingGroup "bad-metric" is invalid: spec.scalingStrategy.groupConfig.scaleDown.metric.type: Unsupported value: "guage": supported values: "Counter", "Gauge", "Histogram""#
        )),
        "{stderr}"
    );
}

#[test]
fn counter_without_window_is_rejected() {
    let ns = namespace("window");
    let yaml = group_rsg(
        &ns,
        "no-window",
        &target("prefill", "llm-prefill"),
        "      scaleDown:\n        metric: {expr: requests_total, type: Counter}",
    );
    let stderr = rejected(&yaml);
    assert!(
        stderr.contains(r#"spec.scalingStrategy.groupConfig.scaleDown.metric.window: Required value: required for type "Counter" (the range of rate())"#),
        "{stderr}"
    );
}

#[test]
fn duplicate_target_names_and_workloads_are_rejected() {
    let ns = namespace("dups");
    let names = group_rsg(
        &ns,
        "dup-names",
        &(target("prefill", "a") + &target("prefill", "b")),
        "      replicas: 1",
    );
    let stderr = rejected(&names);
    assert!(
        stderr.contains(r#"spec.targetResources[1].name: Duplicate value: "prefill": already used by spec.targetResources[0]"#),
        "{stderr}"
    );
    let workloads = group_rsg(
        &ns,
        "dup-workloads",
        &(target("prefill", "same") + &target("decode", "same")),
        "      replicas: 1",
    );
    let stderr = rejected(&workloads);
    assert!(
        stderr.contains(&format!(
            r#"spec.targetResources[1].resourceRef: Duplicate value: "Deployment {ns}/same": the same workload is already referenced by spec.targetResources[0]"#
        )),
        "{stderr}"
    );
}

#[test]
fn every_problem_is_reported_in_one_answer() {
    let ns = namespace("many");
    let yaml = group_rsg(
        &ns,
        "many-problems",
        &(target("prefill", "a") + &target("prefill", "b")),
        "      replicas: 1001\n      scaleDown:\n        order: upwards\n        metric: {expr: m, type: guage}",
    );
    let stderr = rejected(&yaml);
    for expected in [
        r#"spec.targetResources[1].name: Duplicate value: "prefill""#,
        r#"spec.scalingStrategy.groupConfig.replicas: Invalid value: "1001": must be less than or equal to 1000"#,
        r#"spec.scalingStrategy.groupConfig.scaleDown.order: Unsupported value: "upwards""#,
        r#"spec.scalingStrategy.groupConfig.scaleDown.metric.type: Unsupported value: "guage""#,
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in {stderr}"
        );
    }
    assert!(
        stderr.contains(r#"ResourceScalingGroup "many-problems" is invalid: ["#),
        "{stderr}"
    );
}

#[test]
fn workload_in_another_rsg_of_the_same_type_is_rejected_and_other_types_accepted() {
    let ns = namespace("exclusive");
    let kubeconfig = &env().kubeconfig;
    accepted(&group_rsg(
        &ns,
        "first",
        &target("web", "web"),
        "      replicas: 1",
    ));
    let second = group_rsg(&ns, "second", &target("web", "web"), "      replicas: 1");
    let expected = format!(
        r#"spec.targetResources[0].resourceRef: Forbidden: Deployment {ns}/web is already a target of ResourceScalingGroup {ns}/first with the same strategy type "GroupReplication""#
    );
    // The webhook's cache learns of "first" through its watch.
    let stderr = wait_for(
        "the webhook to see the first RSG",
        Duration::from_secs(20),
        || {
            let out = kubectl_apply(kubeconfig, &second, &[]);
            (!out.success && out.stderr.contains(&expected)).then_some(out.stderr)
        },
    );
    assert!(stderr.contains(DENIED), "{stderr}");
    let inplace = inplace_rsg(
        &ns,
        "inplace",
        &(target("web", "web") + &target("helper", "helper")),
        "      leader: {resourceName: web}\n      follower: [{resourceName: helper, followRatio: 1}]",
    );
    accepted(&inplace);
    // Once "first" is gone the workload is free again.
    assert!(kubectl(kubeconfig, &["delete", "rsg", "first", "-n", &ns]).success);
    wait_for(
        "the webhook to forget the first RSG",
        Duration::from_secs(20),
        || {
            kubectl_apply(kubeconfig, &second, &[])
                .success
                .then_some(())
        },
    );
}

#[test]
fn leader_and_follower_names_must_be_targets_and_distinct() {
    let ns = namespace("leader");
    let targets = target("scheduler", "scheduler") + &target("worker", "worker");
    let stderr = rejected(&inplace_rsg(
        &ns,
        "ghost-leader",
        &targets,
        "      leader: {resourceName: boss}\n      follower: [{resourceName: ghost, followRatio: 2}]",
    ));
    assert!(
        stderr.contains(r#"spec.scalingStrategy.leaderFollowerConfig.leader.resourceName: Not found: "boss": must name one of spec.targetResources: "scheduler", "worker""#),
        "{stderr}"
    );
    assert!(
        stderr.contains(r#"spec.scalingStrategy.leaderFollowerConfig.follower[0].resourceName: Not found: "ghost""#),
        "{stderr}"
    );
    let stderr = rejected(&inplace_rsg(
        &ns,
        "self-follower",
        &targets,
        "      leader: {resourceName: scheduler}\n      follower: [{resourceName: scheduler, followRatio: 2}]",
    ));
    assert!(
        stderr.contains(r#"spec.scalingStrategy.leaderFollowerConfig.follower[0].resourceName: Invalid value: "scheduler": the leader cannot also be a follower"#),
        "{stderr}"
    );
}

#[test]
fn group_config_on_an_inplace_rsg_is_rejected() {
    let ns = namespace("xor");
    let yaml = format!(
        r#"apiVersion: autoscaling.openfuyao.com/v1alpha1
kind: ResourceScalingGroup
metadata: {{name: mixed, namespace: {ns}}}
spec:
  targetResources:
{}{}  scalingStrategy:
    type: InplaceScaling
    groupConfig: {{replicas: 2}}
    leaderFollowerConfig:
      leader: {{resourceName: scheduler}}
      follower: [{{resourceName: worker, followRatio: 2}}]
"#,
        target("scheduler", "scheduler"),
        target("worker", "worker")
    );
    let stderr = rejected(&yaml);
    assert!(
        stderr.contains(r#"spec.scalingStrategy.groupConfig: Forbidden: may only be set when type is "GroupReplication""#),
        "{stderr}"
    );
}

#[test]
fn group_names_that_make_invalid_object_names_are_rejected() {
    let ns = namespace("names");
    let stderr = rejected(&group_rsg(
        &ns,
        "bad-group-name",
        &target("prefill", "llm-prefill"),
        "      groupName: PD_Group",
    ));
    assert!(stderr.contains(r#"spec.scalingStrategy.groupConfig.groupName: Invalid value: "PD_Group": a lowercase RFC 1123 label"#), "{stderr}");

    let statefulset_target = "  - name: prefill\n    resourceRef: {apiVersion: apps/v1, kind: StatefulSet, name: llm-prefill-statefulset}\n";
    let stderr = rejected(&group_rsg(
        &ns,
        "long-copies",
        statefulset_target,
        "      groupName: inference-pool-east-zone",
    ));
    assert!(
        stderr.contains(r#"spec.scalingStrategy.groupConfig.groupName: Invalid value: "inference-pool-east-zone": copies of target "prefill" would be named up to "inference-pool-east-zone-llm-prefill-statefulset-1000" (53 characters), longer than the 52 allowed for a StatefulSet name"#),
        "{stderr}"
    );

    // A Service fronting the target whose copies' names would exceed 63 characters.
    let kubeconfig = &env().kubeconfig;
    assert!(
        kubectl_apply(
            kubeconfig,
            &deployment(&ns, "llm-prefill", "{app: prefill}"),
            &[]
        )
        .success
    );
    let service = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: llm-prefill-service-with-a-really-long-name, namespace: {ns}}}\nspec:\n  selector: {{app: prefill}}\n  ports: [{{port: 80}}]\n"
    );
    assert!(kubectl_apply(kubeconfig, &service, &[]).success);
    let stderr = rejected(&group_rsg(
        &ns,
        "long-services",
        &target("prefill", "llm-prefill"),
        "      groupName: east-pool-group",
    ));
    assert!(
        stderr.contains(&format!(
            r#"copies of Service {ns}/llm-prefill-service-with-a-really-long-name (fronting target "prefill") would be named up to "llm-prefill-service-with-a-really-long-name-east-pool-group-1000" (64 characters), longer than the 63 allowed for a Service name"#
        )),
        "{stderr}"
    );
}

#[test]
fn scale_subresource_is_for_group_replication_only() {
    let ns = namespace("scale");
    let kubeconfig = &env().kubeconfig;
    accepted(&inplace_rsg(
        &ns,
        "leader-follower",
        &(target("scheduler", "scheduler") + &target("worker", "worker")),
        "      leader: {resourceName: scheduler, replicas: 3}\n      follower: [{resourceName: worker, followRatio: 2}]",
    ));
    let out = kubectl(
        kubeconfig,
        &["scale", "rsg", "leader-follower", "-n", &ns, "--replicas=4"],
    );
    assert!(!out.success);
    assert!(
        out.stderr.contains(&format!(
            "{DENIED}ResourceScalingGroup {ns}/leader-follower uses the InplaceScaling strategy: the scale subresource applies to GroupReplication only"
        )),
        "{}",
        out.stderr
    );
    let spec = kubectl(
        kubeconfig,
        &[
            "get",
            "rsg",
            "leader-follower",
            "-n",
            &ns,
            "-o",
            "jsonpath={.spec.scalingStrategy}",
        ],
    );
    assert!(
        !spec.stdout.contains("groupConfig"),
        "scale must not have written groupConfig: {}",
        spec.stdout
    );

    accepted(&group_rsg(
        &ns,
        "groups",
        &target("prefill", "prefill"),
        "      replicas: 1",
    ));
    let out = kubectl(
        kubeconfig,
        &["scale", "rsg", "groups", "-n", &ns, "--replicas=3"],
    );
    assert!(out.success, "{}", out.stderr);
    let replicas = kubectl(
        kubeconfig,
        &[
            "get",
            "rsg",
            "groups",
            "-n",
            &ns,
            "-o",
            "jsonpath={.spec.scalingStrategy.groupConfig.replicas}",
        ],
    );
    assert_eq!(replicas.stdout, "3");
}

#[test]
fn valid_rsg_is_accepted_with_defaults_filled_in() {
    let ns = namespace("defaults");
    let kubeconfig = &env().kubeconfig;
    let yaml = format!(
        r#"apiVersion: autoscaling.openfuyao.com/v1alpha1
kind: ResourceScalingGroup
metadata: {{name: llm-pd-group, namespace: {ns}}}
spec:
  targetResources:
{}{}  scalingStrategy:
    type: GroupReplication
    groupConfig:
      scaleDown:
        metric: {{expr: "vllm:num_requests_running", type: Gauge}}
"#,
        target("prefill", "llm-prefill"),
        target("decode", "llm-decode")
    );
    accepted(&yaml);
    // The controller reports on it first (its status write changes the resourceVersion), so
    // that the re-apply below is the only thing that could change the object.
    let rsg = support::wait_for(
        "the controller's report on the RSG",
        Duration::from_secs(30),
        || {
            let rsg = support::get_json("rsg", &ns, "llm-pd-group")?;
            rsg["status"]["conditions"]
                .as_array()?
                .iter()
                .any(|c| c["type"] == "Ready" && c["observedGeneration"] == 1)
                .then_some(rsg)
        },
    );
    let config = &rsg["spec"]["scalingStrategy"]["groupConfig"];
    assert_eq!(config["groupName"], "llm-pd-group");
    assert_eq!(config["replicas"], 1);
    assert_eq!(config["scaleDown"]["order"], "ascending");
    assert_eq!(config["scaleDown"]["metric"]["aggregator"], "avg");
    assert_eq!(
        rsg["spec"]["targetResources"][0]["resourceRef"]["namespace"],
        ns.as_str()
    );
    assert_eq!(
        rsg["spec"]["targetResources"][1]["resourceRef"]["namespace"],
        ns.as_str()
    );
    // Re-applying the same manifest changes nothing (the defaults are idempotent): kubectl
    // may send a patch (JSON merge patches replace lists), but the stored object is the same.
    assert!(kubectl_apply(kubeconfig, &yaml, &[]).success);
    let after = kubectl(
        kubeconfig,
        &["get", "rsg", "llm-pd-group", "-n", &ns, "-o", "json"],
    );
    let after: serde_json::Value =
        serde_json::from_str(&after.stdout).expect("kubectl printed JSON");
    // The spec, its generation and what the user sees of metadata stay as they were (1.28
    // may still store the no-op patch, with new managedFields times, as a new resourceVersion).
    assert_eq!(after["spec"], rsg["spec"]);
    assert_eq!(after["metadata"]["generation"], 1);
    for field in ["labels", "annotations", "uid", "creationTimestamp"] {
        assert_eq!(
            after["metadata"][field], rsg["metadata"][field],
            "metadata.{field} changed"
        );
    }
}

#[test]
fn server_side_dry_run_shows_warnings() {
    let base = namespace("warn-base");
    let ns = namespace("warn-rsg");
    let kubeconfig = &env().kubeconfig;
    let with_config = format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: llm-prefill, namespace: {base}}}
spec:
  selector: {{matchLabels: {{app: prefill}}}}
  template:
    metadata: {{labels: {{app: prefill}}}}
    spec:
      containers:
      - name: main
        image: registry.local/llm:1
        envFrom: [{{configMapRef: {{name: model-config}}}}]
"#
    );
    assert!(kubectl_apply(kubeconfig, &with_config, &[]).success);
    let yaml = format!(
        r#"apiVersion: autoscaling.openfuyao.com/v1alpha1
kind: ResourceScalingGroup
metadata: {{name: warned, namespace: {ns}}}
spec:
  targetResources:
  - name: prefill
    resourceRef: {{apiVersion: apps/v1, kind: Deployment, name: llm-prefill, namespace: {base}}}
  - name: decode
    resourceRef: {{apiVersion: apps/v1, kind: Deployment, name: llm-decode}}
  scalingStrategy:
    type: GroupReplication
    groupConfig: {{replicas: 2}}
"#
    );
    let out = kubectl_apply(kubeconfig, &yaml, &["--dry-run=server"]);
    assert!(out.success, "{}", out.stderr);
    for expected in [
        format!(
            r#"Warning: spec.targetResources[0]: copies of Deployment {base}/llm-prefill will be created in namespace "{ns}""#
        ),
        format!(
            r#"Warning: spec.targetResources[0]: the pod template of Deployment {base}/llm-prefill uses ConfigMap model-config, which does not exist in namespace "{ns}" where copies run"#
        ),
        format!("Warning: spec.targetResources[1]: Deployment {ns}/llm-decode does not exist yet"),
    ] {
        assert!(
            out.stderr.contains(&expected),
            "missing {expected:?} in {}",
            out.stderr
        );
    }
    let dry = kubectl(kubeconfig, &["get", "rsg", "warned", "-n", &ns]);
    assert!(!dry.success, "a dry run must not create the RSG");
}

#[test]
fn admission_metrics_count_requests() {
    let ns = namespace("metrics");
    rejected(&group_rsg(
        &ns,
        "counted",
        &target("a", "a"),
        "      replicas: -1",
    ));
    let (status, body) = env().rsg.get("/metrics").expect("GET /metrics");
    assert_eq!(status, 200);
    let denied = body
        .lines()
        .find(|l| l.starts_with(r#"rsg_admission_requests_total{webhook="validate",operation="CREATE",result="denied"}"#))
        .unwrap_or_else(|| panic!("no denied counter in {body}"));
    let count: f64 = denied
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a number");
    assert!(count >= 1.0, "{denied}");
    assert!(
        body.contains("rsg_admission_duration_seconds_bucket"),
        "{body}"
    );
    let (status, body) = env().rsg.get("/readyz").expect("GET /readyz");
    assert_eq!(
        (status, body.contains("[+] informer caches synced")),
        (200, true),
        "{body}"
    );
}

/// rsg's own namespace, as `manifests/install/00-namespace.yaml` ships it.
fn install_namespace() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/manifests/install/00-namespace.yaml"
    );
    let text = std::fs::read_to_string(path).expect("reading the shipped namespace");
    let namespace: serde_json::Value = serde_norway::from_str(&text).expect("YAML");
    namespace["metadata"]["name"]
        .as_str()
        .expect("a namespace name")
        .to_string()
}

#[test]
fn in_rsgs_own_namespace_the_shipped_webhooks_check_and_default_like_anywhere() {
    let ns = install_namespace();
    let kubeconfig = &env().kubeconfig;
    // Set by Kubernetes itself from 1.21 on (this API server is 1.20): a namespaceSelector
    // on it would exclude the namespace.
    let label = format!("kubernetes.io/metadata.name={ns}");
    let out = kubectl(
        kubeconfig,
        &["label", "namespace", &ns, "--overwrite", &label],
    );
    assert!(out.success, "{}", out.stderr);
    // The manual's install check finds both configurations by name.
    for kind in [
        "validatingwebhookconfigurations",
        "mutatingwebhookconfigurations",
    ] {
        let out = kubectl(kubeconfig, &["get", kind, "-o", "name"]);
        assert!(
            out.stdout
                .lines()
                .any(|line| line.contains("resourcescalinggroup")),
            "`kubectl get {kind} | grep resourcescalinggroup` finds nothing: {}",
            out.stdout
        );
    }

    // RSGs may live here; their targets may not (rsg never acts in its own namespace).
    let stderr = rejected(&group_rsg(
        &ns,
        "own-ns-targets",
        &target("prefill", "own-ns-prefill"),
        "      groupName: own",
    ));
    assert!(
        stderr.contains(&format!(
            r#"{DENIED}ResourceScalingGroup "own-ns-targets" is invalid: spec.targetResources[0].resourceRef.namespace: Forbidden: rsg never acts on workloads in "{ns}", its own namespace"#
        )),
        "{stderr}"
    );
    let workloads = namespace("own-ns-workloads");

    let stderr = rejected(&group_rsg(
        &ns,
        "own-ns-invalid",
        &target_in(&workloads, "prefill", "own-ns-prefill"),
        "      scaleDown:\n        metric: {expr: up, type: guage}",
    ));
    assert!(
        stderr.contains(&format!(
            r#"{DENIED}ResourceScalingGroup "own-ns-invalid" is invalid: spec.scalingStrategy.groupConfig.scaleDown.metric.type: Unsupported value: "guage""#
        )),
        "{stderr}"
    );

    let warnings = accepted(&group_rsg(
        &ns,
        "own-ns-defaults",
        &target_in(&workloads, "prefill", "own-ns-defaults-prefill"),
        "      groupName: own",
    ));
    assert!(
        warnings.contains(&format!(
            r#"no ResourceScalingGroupGrant in namespace "{workloads}" admits RSG "own-ns-defaults" of namespace "{ns}""#
        )),
        "{warnings}"
    );
    let replicas = kubectl(
        kubeconfig,
        &[
            "get",
            "rsg",
            "own-ns-defaults",
            "-n",
            &ns,
            "-o",
            "jsonpath={.spec.scalingStrategy.groupConfig.replicas}",
        ],
    );
    assert_eq!(
        replicas.stdout, "1",
        "the mutating webhook stores the default group count here too"
    );

    accepted(&inplace_rsg(
        &ns,
        "own-ns-inplace",
        &(target_in(&workloads, "scheduler", "own-ns-scheduler")
            + &target_in(&workloads, "worker", "own-ns-worker")),
        "      leader: {resourceName: scheduler}\n      follower: [{resourceName: worker, followRatio: 2}]",
    ));
    let out = kubectl(
        kubeconfig,
        &["scale", "rsg", "own-ns-inplace", "-n", &ns, "--replicas=4"],
    );
    assert!(
        !out.success
            && out
                .stderr
                .contains("the scale subresource applies to GroupReplication only"),
        "{}",
        out.stderr
    );
}
