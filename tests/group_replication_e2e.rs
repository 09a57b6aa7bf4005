//! GroupReplication against the real kube-apiserver and kube-controller-manager.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{
    apply, env_with, get_json, names, namespace, run_kubectl, scale_rsg, wait_for,
    wait_rsg_converged, wait_rsg_reason, EnvOptions,
};

fn setup() {
    env_with(EnvOptions {
        cluster: true,
        ..EnvOptions::default()
    });
}

fn deployment(ns: &str, name: &str, role: &str, replicas: i32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: llm, role: {role}}}}}
  template:
    metadata: {{labels: {{app: llm, role: {role}}}}}
    spec:
      containers: [{{name: vllm, image: registry.local/vllm:1}}]
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {{app: llm, role: {role}}}
  ports: [{{port: 8000}}]
"#
    )
}

fn pd_rsg(ns: &str, base_ns: &str, replicas: i32) -> String {
    format!(
        r#"apiVersion: autoscaling.openfuyao.com/v1alpha1
kind: ResourceScalingGroup
metadata: {{name: llm-pd-group, namespace: {ns}}}
spec:
  targetResources:
  - name: prefill
    resourceRef: {{apiVersion: apps/v1, kind: Deployment, name: llm-prefill, namespace: {base_ns}}}
  - name: decode
    resourceRef: {{apiVersion: apps/v1, kind: Deployment, name: llm-decode, namespace: {base_ns}}}
  scalingStrategy:
    type: GroupReplication
    groupConfig: {{groupName: pd, replicas: {replicas}}}
"#
    )
}

fn labels(object: &Value, pointer: &str) -> Value {
    object.pointer(pointer).cloned().unwrap_or(Value::Null)
}

fn prod_and_rsg_namespaces() -> (String, String) {
    setup();
    let production = namespace("production");
    let scaling = namespace("scaling");
    apply(&deployment(&production, "llm-prefill", "prefill", 1));
    apply(&deployment(&production, "llm-decode", "decode", 2));
    // The documented path: the base namespace consents to the RSG namespace.
    apply(&support::fixtures::grant(&production, &scaling));
    (production, scaling)
}

#[test]
fn spec_sample_scales_through_2_3_1_0_2_and_deletion_leaves_workloads() {
    let (production, ns) = prod_and_rsg_namespaces();
    let base_before = get_json("deployment", &production, "llm-prefill").expect("base");
    apply(&pd_rsg(&ns, &production, 2));
    wait_rsg_converged(&ns, "llm-pd-group", 2);

    // Group 1: exact names, labels, selectors and replicas.
    let prefill = get_json("deployment", &ns, "pd-llm-prefill-1").expect("prefill copy");
    // The revision label is the hash of the snapshot's pod template it was built from.
    let revision = prefill["metadata"]["labels"]["rsg.io/revision"].clone();
    assert!(
        revision
            .as_str()
            .is_some_and(|r| r.len() == 10 && r.chars().all(|c| c.is_ascii_hexdigit())),
        "{revision}"
    );
    assert_eq!(
        labels(&prefill, "/metadata/labels"),
        serde_json::json!({"rsg.io/name": "llm-pd-group", "rsg.io/group-id": "1", "rsg.io/target": "prefill", "rsg.io/managed": "true", "rsg.io/revision": revision})
    );
    assert_eq!(prefill["spec"]["replicas"], 1);
    assert_eq!(
        prefill["spec"]["selector"]["matchLabels"],
        serde_json::json!({"app": "llm", "role": "prefill", "rsg.io/group-id": "1"})
    );
    assert_eq!(
        prefill["spec"]["template"]["metadata"]["labels"],
        serde_json::json!({"app": "llm", "role": "prefill", "rsg.io/name": "llm-pd-group", "rsg.io/group-id": "1"})
    );
    assert!(
        prefill["metadata"].get("ownerReferences").is_none(),
        "copies are not owned by the RSG"
    );
    let decode = get_json("deployment", &ns, "pd-llm-decode-1").expect("decode copy");
    assert_eq!(decode["spec"]["replicas"], 2);
    let service = get_json("service", &ns, "llm-prefill-pd-1").expect("service copy");
    assert_eq!(
        service["spec"]["selector"],
        serde_json::json!({"app": "llm", "role": "prefill", "rsg.io/name": "llm-pd-group", "rsg.io/group-id": "1"})
    );
    assert_eq!(service["metadata"]["labels"]["rsg.io/group-id"], "1");
    assert!(get_json("service", &ns, "llm-decode-pd-1").is_some());

    // Artifacts: baseline ConfigMap and one snapshot per target, owned by the RSG.
    let config = get_json("configmap", &ns, "llm-pd-group-replica-config").expect("replica config");
    assert_eq!(
        config["data"],
        serde_json::json!({"prefill": "1", "decode": "2"})
    );
    assert_eq!(
        config["metadata"]["ownerReferences"][0]["kind"],
        "ResourceScalingGroup"
    );
    assert_eq!(
        names("controllerrevisions", &ns, "rsg.io/name=llm-pd-group").len(),
        2
    );
    assert_eq!(
        names(
            "controllerrevisions",
            &ns,
            "rsg.io/name=llm-pd-group,rsg.io/target=prefill"
        )
        .len(),
        1
    );

    // The base is adopted by labels on its metadata only: its template (and so its pods) is untouched.
    let base = get_json("deployment", &production, "llm-prefill").expect("base");
    assert_eq!(base["metadata"]["labels"]["rsg.io/name"], "llm-pd-group");
    assert_eq!(base["metadata"]["labels"]["rsg.io/group-id"], "0");
    assert_eq!(base["spec"]["template"], base_before["spec"]["template"]);
    assert_eq!(
        base["metadata"]["generation"],
        base_before["metadata"]["generation"]
    );

    scale_rsg(&ns, "llm-pd-group", 3);
    wait_rsg_converged(&ns, "llm-pd-group", 3);
    assert_eq!(
        names("deployments", &ns, "rsg.io/name=llm-pd-group"),
        [
            "pd-llm-decode-1",
            "pd-llm-decode-2",
            "pd-llm-prefill-1",
            "pd-llm-prefill-2"
        ]
    );
    assert_eq!(
        names("services", &ns, "rsg.io/name=llm-pd-group"),
        [
            "llm-decode-pd-1",
            "llm-decode-pd-2",
            "llm-prefill-pd-1",
            "llm-prefill-pd-2"
        ]
    );

    scale_rsg(&ns, "llm-pd-group", 1);
    let rsg = wait_rsg_converged(&ns, "llm-pd-group", 1);
    assert!(names("deployments", &ns, "rsg.io/name=llm-pd-group").is_empty());
    assert!(names("services", &ns, "rsg.io/name=llm-pd-group").is_empty());
    assert_eq!(
        rsg["status"]["lastScaleDown"]["victims"],
        serde_json::json!([2, 1])
    );
    assert_eq!(rsg["status"]["lastScaleDown"]["source"], "GroupId");

    scale_rsg(&ns, "llm-pd-group", 0);
    wait_rsg_converged(&ns, "llm-pd-group", 0);
    let base = get_json("deployment", &production, "llm-prefill").expect("base kept");
    assert_eq!(base["spec"]["replicas"], 0);
    assert_eq!(
        get_json("deployment", &production, "llm-decode").expect("base kept")["spec"]["replicas"],
        0
    );

    scale_rsg(&ns, "llm-pd-group", 2);
    let rsg = wait_rsg_converged(&ns, "llm-pd-group", 2);
    assert_eq!(
        get_json("deployment", &production, "llm-prefill").unwrap()["spec"]["replicas"],
        1
    );
    assert_eq!(
        get_json("deployment", &production, "llm-decode").unwrap()["spec"]["replicas"],
        2
    );
    assert_eq!(
        names("deployments", &ns, "rsg.io/name=llm-pd-group"),
        ["pd-llm-decode-1", "pd-llm-prefill-1"]
    );
    assert_eq!(
        rsg["status"]["selector"],
        "rsg.io/representative=llm-pd-group"
    );
    let groups: Vec<i64> = rsg["status"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_i64().unwrap())
        .collect();
    assert_eq!(groups, [0, 1]);

    // Deleting the RSG removes its artifacts (garbage collection) and leaves every workload.
    run_kubectl(&["delete", "rsg", "llm-pd-group", "-n", &ns]);
    wait_for(
        "the artifacts to be garbage collected",
        Duration::from_secs(60),
        || {
            (get_json("configmap", &ns, "llm-pd-group-replica-config").is_none()
                && names("controllerrevisions", &ns, "rsg.io/name=llm-pd-group").is_empty())
            .then_some(())
        },
    );
    assert_eq!(
        names("deployments", &ns, "rsg.io/name=llm-pd-group"),
        ["pd-llm-decode-1", "pd-llm-prefill-1"]
    );
    assert_eq!(names("services", &ns, "rsg.io/name=llm-pd-group").len(), 2);
    assert!(get_json("deployment", &production, "llm-prefill").is_some());
    assert!(get_json("deployment", &production, "llm-decode").is_some());
}

/// Sets `key` of the sample RSG's replica baseline ConfigMap in `ns` to `value`.
fn set_baseline(ns: &str, key: &str, value: &str) {
    let patch = serde_json::json!({"data": {key: value}}).to_string();
    run_kubectl(&[
        "patch",
        "configmap",
        "llm-pd-group-replica-config",
        "-n",
        ns,
        "--type=merge",
        "-p",
        &patch,
    ]);
}

#[test]
fn new_groups_use_the_edited_baseline_and_bad_values_are_reported() {
    let (production, ns) = prod_and_rsg_namespaces();
    apply(&pd_rsg(&ns, &production, 1));
    wait_rsg_converged(&ns, "llm-pd-group", 1);
    set_baseline(&ns, "prefill", "3");
    scale_rsg(&ns, "llm-pd-group", 2);
    wait_rsg_converged(&ns, "llm-pd-group", 2);
    assert_eq!(
        get_json("deployment", &ns, "pd-llm-prefill-1").unwrap()["spec"]["replicas"],
        3
    );
    assert_eq!(
        get_json("deployment", &ns, "pd-llm-decode-1").unwrap()["spec"]["replicas"],
        2
    );

    set_baseline(&ns, "decode", "two");
    scale_rsg(&ns, "llm-pd-group", 3);
    let condition = wait_rsg_reason(&ns, "llm-pd-group", "InvalidReplicaConfig");
    assert!(
        condition["message"]
            .as_str()
            .unwrap()
            .contains(r#"ConfigMap key "decode" holds "two", which is not a non-negative integer"#),
        "{condition}"
    );
    assert!(get_json("deployment", &ns, "pd-llm-decode-2").is_none());
    assert_eq!(
        get_json("configmap", &ns, "llm-pd-group-replica-config").unwrap()["data"]["decode"],
        "two",
        "never silently replaced"
    );

    set_baseline(&ns, "decode", "1");
    wait_rsg_converged(&ns, "llm-pd-group", 3);
    assert_eq!(
        get_json("deployment", &ns, "pd-llm-decode-2").unwrap()["spec"]["replicas"],
        1
    );

    // A value above the cap rsg sets on any workload is reported and never applied: not to a
    // new group, not to group 0 restored from zero.
    scale_rsg(&ns, "llm-pd-group", 0);
    wait_rsg_converged(&ns, "llm-pd-group", 0);
    set_baseline(&ns, "prefill", "2000000000");
    scale_rsg(&ns, "llm-pd-group", 2);
    let condition = wait_rsg_reason(&ns, "llm-pd-group", "InvalidReplicaConfig");
    assert!(
        condition["message"]
            .as_str()
            .unwrap_or_default()
            .contains(r#"ConfigMap key "prefill" holds 2000000000, more than the 10000 replicas"#),
        "{condition}"
    );
    assert_eq!(
        get_json("deployment", &production, "llm-prefill").unwrap()["spec"]["replicas"],
        0,
        "group 0 stays at zero"
    );
    assert!(get_json("deployment", &ns, "pd-llm-prefill-1").is_none());
}

#[test]
fn a_replica_config_written_before_the_rsg_is_used_and_owned_by_it() {
    let (production, ns) = prod_and_rsg_namespaces();
    // The manual's flow: the ConfigMap first, then the RSG.
    apply(&format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: llm-pd-group-replica-config, namespace: {ns}}}\ndata: {{prefill: \"4\"}}\n"
    ));
    apply(&pd_rsg(&ns, &production, 2));
    wait_rsg_converged(&ns, "llm-pd-group", 2);
    assert_eq!(
        get_json("deployment", &ns, "pd-llm-prefill-1").unwrap()["spec"]["replicas"],
        4,
        "the user's value is used"
    );
    let uid = get_json("rsg", &ns, "llm-pd-group").unwrap()["metadata"]["uid"].clone();
    let config = wait_for(
        "the ConfigMap to be owned by the RSG",
        Duration::from_secs(30),
        || {
            let config = get_json("configmap", &ns, "llm-pd-group-replica-config")?;
            (config["metadata"]["ownerReferences"][0]["uid"] == uid).then_some(config)
        },
    );
    assert_eq!(config["metadata"]["labels"]["rsg.io/name"], "llm-pd-group");
    assert_eq!(config["data"]["prefill"], "4", "its values are kept");
    assert_eq!(config["data"]["decode"], "2", "missing keys are filled in");
    run_kubectl(&["delete", "rsg", "llm-pd-group", "-n", &ns]);
    wait_for(
        "garbage collection to remove the adopted ConfigMap with the RSG",
        Duration::from_secs(60),
        || {
            get_json("configmap", &ns, "llm-pd-group-replica-config")
                .is_none()
                .then_some(())
        },
    );
    assert!(
        get_json("deployment", &ns, "pd-llm-prefill-1").is_some(),
        "workloads stay"
    );
}

#[test]
fn an_object_with_a_copy_name_that_is_not_ours_is_never_touched() {
    let (production, ns) = prod_and_rsg_namespaces();
    // The group's second object is taken: the first, created before the conflict shows,
    // is rolled back, and the conflict is then reported without creating anything again.
    apply(&deployment(&ns, "pd-llm-decode-1", "someone-else", 1));
    let before = get_json("deployment", &ns, "pd-llm-decode-1").unwrap();
    apply(&pd_rsg(&ns, &production, 2));
    let condition = wait_rsg_reason(&ns, "llm-pd-group", "NameConflict");
    assert!(
        condition["message"].as_str().unwrap().contains(&format!(
            "Deployment {ns}/pd-llm-decode-1 exists and was not made by this RSG"
        )),
        "{condition}"
    );
    wait_for(
        "the partial group to be rolled back",
        Duration::from_secs(30),
        || {
            get_json("deployment", &ns, "pd-llm-prefill-1")
                .is_none()
                .then_some(())
        },
    );
    scale_rsg(&ns, "llm-pd-group", 3);
    wait_for(
        "the RSG to act on the new count",
        Duration::from_secs(30),
        || {
            let rsg = get_json("rsg", &ns, "llm-pd-group")?;
            (rsg["status"]["lastDesiredReplicas"] == 3).then_some(())
        },
    );
    // The deployment controller writes the object's status and its revision annotation as
    // its pods come up, so the resourceVersion moves; any write of rsg's would carry rsg's
    // field manager, and the spec and labels are what rsg would change.
    let after = get_json("deployment", &ns, "pd-llm-decode-1").unwrap();
    for field in ["generation", "labels"] {
        assert_eq!(
            after["metadata"][field], before["metadata"][field],
            "the other object's {field} is never modified"
        );
    }
    assert_eq!(after["spec"], before["spec"], "the other object's spec");
    let managers: Vec<&str> = after["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|entry| entry["manager"].as_str())
        .collect();
    assert!(!managers.contains(&rsg::FIELD_MANAGER), "{managers:?}");
    assert!(
        get_json("deployment", &ns, "pd-llm-prefill-1").is_none(),
        "no half group stays"
    );
    assert!(
        get_json("deployment", &ns, "pd-llm-prefill-2").is_some(),
        "other groups are still created"
    );
    let events = run_kubectl(&[
        "get",
        "events",
        "-n",
        &ns,
        "--field-selector",
        "involvedObject.name=llm-pd-group",
        "-o",
        "json",
    ]);
    assert!(events.contains("NameConflict"), "{events}");
}

#[test]
fn statefulset_copies_get_their_own_headless_service() {
    setup();
    let ns = namespace("sts");
    apply(&format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: vllm, namespace: {ns}}}
spec:
  clusterIP: None
  selector: {{app: vllm}}
  ports: [{{port: 8000}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: vllm, namespace: {ns}}}
spec:
  serviceName: vllm
  replicas: 1
  selector: {{matchLabels: {{app: vllm}}}}
  template:
    metadata: {{labels: {{app: vllm}}}}
    spec:
      containers: [{{name: vllm, image: registry.local/vllm:1}}]
---
apiVersion: autoscaling.openfuyao.com/v1alpha1
kind: ResourceScalingGroup
metadata: {{name: vllm-cluster, namespace: {ns}}}
spec:
  targetResources:
  - name: engine
    resourceRef: {{apiVersion: apps/v1, kind: StatefulSet, name: vllm}}
  scalingStrategy:
    type: GroupReplication
    groupConfig: {{groupName: svc, replicas: 3}}
"#
    ));
    wait_rsg_converged(&ns, "vllm-cluster", 3);
    for id in [1, 2] {
        let sts = get_json("statefulset", &ns, &format!("svc-vllm-{id}")).expect("copy");
        assert_eq!(sts["spec"]["serviceName"], format!("vllm-svc-{id}"));
        let service = get_json("service", &ns, &format!("vllm-svc-{id}")).expect("service copy");
        assert_eq!(service["spec"]["clusterIP"], "None");
        assert_eq!(
            service["spec"]["selector"]["rsg.io/group-id"],
            id.to_string()
        );
    }
}

#[test]
fn a_target_kind_the_api_server_does_not_serve_is_reported() {
    setup();
    let ns = namespace("missing-kind");
    apply(&format!(
        r#"apiVersion: autoscaling.openfuyao.com/v1alpha1
kind: ResourceScalingGroup
metadata: {{name: missing-kind, namespace: {ns}}}
spec:
  targetResources:
  - name: engine
    resourceRef: {{apiVersion: inference.example.com/v1, kind: InferencePool, name: pool}}
  scalingStrategy:
    type: GroupReplication
    groupConfig: {{replicas: 2}}
"#
    ));
    let condition = wait_rsg_reason(&ns, "missing-kind", "TargetNotFound");
    assert!(
        condition["message"].as_str().unwrap().contains("inference.example.com/v1 InferencePool is not served by the API server (is its CRD installed?)"),
        "{condition}"
    );
}

#[test]
fn one_representative_pod_per_group_follows_pods_as_they_come_and_go() {
    let (production, ns) = prod_and_rsg_namespaces();
    apply(&pd_rsg(&ns, &production, 2));
    wait_rsg_converged(&ns, "llm-pd-group", 2);
    let representatives =
        |namespace: &str| names("pods", namespace, "rsg.io/representative=llm-pd-group");
    // kube-controller-manager creates the pods (they never run: there is no kubelet).
    let (base_rep, copy_rep) = wait_for(
        "one representative in each group",
        Duration::from_secs(60),
        || match (
            representatives(&production).as_slice(),
            representatives(&ns).as_slice(),
        ) {
            ([base], [copy]) => Some((base.clone(), copy.clone())),
            _ => None,
        },
    );
    let base_pod = get_json("pod", &production, &base_rep).unwrap();
    assert_eq!(
        base_pod["metadata"]["labels"]["role"], "prefill",
        "the first target's pod represents the group"
    );
    assert!(
        base_pod["metadata"]["labels"]
            .get("rsg.io/group-id")
            .is_none(),
        "group 0 pods carry no group label"
    );
    assert_eq!(
        get_json("pod", &ns, &copy_rep).unwrap()["metadata"]["labels"]["rsg.io/group-id"],
        "1"
    );

    // Deleting the representative moves the label to the replacement pod.
    run_kubectl(&["delete", "pod", &copy_rep, "-n", &ns, "--wait=false"]);
    let replacement = wait_for(
        "a new representative for group 1",
        Duration::from_secs(60),
        || match representatives(&ns).as_slice() {
            [one] if *one != copy_rep => Some(one.clone()),
            _ => None,
        },
    );
    assert_eq!(
        get_json("pod", &ns, &replacement).unwrap()["metadata"]["labels"]["rsg.io/group-id"],
        "1"
    );

    // Scaling to one group leaves exactly one representative.
    scale_rsg(&ns, "llm-pd-group", 1);
    wait_rsg_converged(&ns, "llm-pd-group", 1);
    wait_for(
        "the removed group's representative to go",
        Duration::from_secs(60),
        || {
            (representatives(&ns).is_empty() && representatives(&production).len() == 1)
                .then_some(())
        },
    );
}

#[test]
fn kubectl_scale_and_a_real_hpa_drive_the_group_count() {
    let (production, ns) = prod_and_rsg_namespaces();
    apply(&pd_rsg(&ns, &production, 1));
    wait_rsg_converged(&ns, "llm-pd-group", 1);
    apply(&format!(
        r#"apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: llm-pd-group, namespace: {ns}}}
spec:
  scaleTargetRef: {{apiVersion: autoscaling.openfuyao.com/v1alpha1, kind: ResourceScalingGroup, name: llm-pd-group}}
  minReplicas: 3
  maxReplicas: 5
  metrics:
  - type: Resource
    resource: {{name: cpu, target: {{type: Utilization, averageUtilization: 80}}}}
"#
    ));
    let rsg = wait_rsg_converged(&ns, "llm-pd-group", 3);
    assert_eq!(rsg["spec"]["scalingStrategy"]["groupConfig"]["replicas"], 3);
    let hpa = wait_for(
        "the HPA to read the scale subresource",
        Duration::from_secs(60),
        || {
            let hpa = get_json("hpa", &ns, "llm-pd-group")?;
            (hpa["status"]["currentReplicas"] == 3).then_some(hpa)
        },
    );
    let conditions = hpa["status"]["conditions"].to_string();
    assert!(!conditions.contains("selector is required"), "{conditions}");
    assert!(!conditions.contains("InvalidSelector"), "{conditions}");
}
