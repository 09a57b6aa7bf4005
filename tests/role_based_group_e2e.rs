//! RoleBasedGroup targets as the RoleBasedGroup API defines them, against a stand-in CRD with
//! its schema: copies labelled in every role's pod template, replicas per role (in the
//! baseline ConfigMap too), Service copies, representative pods, readiness from
//! `status.roleStatuses`, and group 0 scaled to zero and restored role by role.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{apply, get_json, namespace, run_kubectl, scale_rsg, wait_for, wait_rsg_converged};

const RBG_NAME_LABEL: &str = "rolebasedgroup.workloads.x-k8s.io/name";

fn setup(ns_prefix: &str) -> String {
    // Once for the binary: two tests applying it at once race to create it.
    static CRD: std::sync::Once = std::sync::Once::new();
    CRD.call_once(|| {
        support::crds::install(support::crds::ROLE_BASED_GROUP, &["rolebasedgroups"]);
    });
    let ns = namespace(ns_prefix);
    apply(&format!(
        r#"apiVersion: workloads.x-k8s.io/v1alpha1
kind: RoleBasedGroup
metadata: {{name: pd, namespace: {ns}}}
spec:
  roles:
  - name: prefill
    replicas: 2
    workload: {{apiVersion: apps/v1, kind: StatefulSet}}
    template:
      metadata: {{labels: {{app: pd, role: prefill}}}}
      spec: {{containers: [{{name: engine, image: registry.local/engine:1}}]}}
  - name: decode
    replicas: 4
    templateRef: {{name: engine}}
  roleTemplates:
  - name: engine
    template:
      metadata: {{labels: {{app: pd, role: decode}}}}
      spec: {{containers: [{{name: engine, image: registry.local/engine:1}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: pd-decode, namespace: {ns}}}
spec:
  selector: {{app: pd, role: decode}}
  ports: [{{port: 8000}}]
---
apiVersion: autoscaling.openfuyao.com/v1alpha1
kind: ResourceScalingGroup
metadata: {{name: rbg-group, namespace: {ns}}}
spec:
  targetResources:
  - name: engine
    resourceRef: {{apiVersion: workloads.x-k8s.io/v1alpha1, kind: RoleBasedGroup, name: pd}}
  scalingStrategy:
    type: GroupReplication
    groupConfig: {{groupName: g, replicas: 2}}
"#
    ));
    ns
}

fn role_replicas(rbg: &Value) -> Vec<(String, i64)> {
    rbg["spec"]["roles"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_string(),
                r["replicas"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

fn roles(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
    pairs.iter().map(|(n, r)| (n.to_string(), *r)).collect()
}

/// A pod as the RoleBasedGroup controller would make it for `rbg` (no kubelet runs here).
fn pod(ns: &str, name: &str, rbg: &str, extra_labels: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {ns}
  labels: {{app: pd, role: prefill, {RBG_NAME_LABEL}: {rbg}{extra_labels}}}
spec:
  automountServiceAccountToken: false
  containers: [{{name: engine, image: registry.local/engine:1}}]
"#
    )
}

/// Writes every role of RoleBasedGroup `name` as fully ready, as its controller would.
fn report_ready(ns: &str, name: &str) {
    let rbg = get_json("rolebasedgroup", ns, name).expect("the RoleBasedGroup");
    let statuses: Vec<Value> = role_replicas(&rbg)
        .into_iter()
        .map(|(role, replicas)| {
            json!({"name": role, "replicas": replicas, "readyReplicas": replicas, "updatedReplicas": replicas})
        })
        .collect();
    let patch = json!({"status": {"observedGeneration": rbg["metadata"]["generation"], "roleStatuses": statuses}});
    run_kubectl(&[
        "patch",
        "rolebasedgroup",
        name,
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch.to_string(),
    ]);
}

#[test]
fn copies_label_every_role_template_and_take_their_replicas_per_role() {
    let ns = setup("rbg-copy");
    wait_rsg_converged(&ns, "rbg-group", 2);
    let copy = get_json("rolebasedgroup", &ns, "g-pd-1").expect("the copy of group 1");
    assert_eq!(
        copy["spec"]["roles"][0]["template"]["metadata"]["labels"],
        json!({"app": "pd", "role": "prefill", "rsg.io/name": "rbg-group", "rsg.io/group-id": "1"})
    );
    assert_eq!(
        copy["spec"]["roleTemplates"][0]["template"]["metadata"]["labels"],
        json!({"app": "pd", "role": "decode", "rsg.io/name": "rbg-group", "rsg.io/group-id": "1"}),
        "the decode role's pods come from the shared template"
    );
    assert_eq!(copy["spec"]["roles"][1]["templateRef"]["name"], "engine");
    assert_eq!(
        role_replicas(&copy),
        roles(&[("prefill", 2), ("decode", 4)])
    );
    assert_eq!(
        get_json("configmap", &ns, "rbg-group-replica-config").expect("baseline")["data"],
        json!({"engine.prefill": "2", "engine.decode": "4"}),
        "one baseline key per role"
    );
    let service = get_json("service", &ns, "pd-decode-g-1").expect("the Service copy");
    assert_eq!(
        service["spec"]["selector"],
        json!({"app": "pd", "role": "decode", "rsg.io/name": "rbg-group", "rsg.io/group-id": "1"})
    );

    // One representative pod per group, found by the RoleBasedGroup controller's name label.
    apply(&pod(&ns, "pd-prefill-0", "pd", ""));
    apply(&pod(
        &ns,
        "g-pd-1-prefill-0",
        "g-pd-1",
        ", rsg.io/name: rbg-group, rsg.io/group-id: \"1\"",
    ));
    wait_for(
        "one representative pod per group",
        Duration::from_secs(30),
        || {
            let listed = run_kubectl(&[
                "get",
                "pods",
                "-n",
                &ns,
                "-l",
                "rsg.io/representative=rbg-group",
                "-o",
                "name",
            ]);
            let mut names: Vec<&str> = listed.lines().collect();
            names.sort_unstable();
            (names == ["pod/g-pd-1-prefill-0", "pod/pd-prefill-0"]).then_some(())
        },
    );

    // A group is ready when every role reports its replicas ready.
    report_ready(&ns, "pd");
    report_ready(&ns, "g-pd-1");
    wait_for("both groups to be ready", Duration::from_secs(30), || {
        let rsg = get_json("rsg", &ns, "rbg-group")?;
        (rsg["status"]["readyReplicas"] == 2).then_some(())
    });
}

#[test]
fn group_zero_is_scaled_to_zero_and_restored_role_by_role() {
    let ns = setup("rbg-zero");
    wait_rsg_converged(&ns, "rbg-group", 2);
    scale_rsg(&ns, "rbg-group", 0);
    let rsg = wait_rsg_converged(&ns, "rbg-group", 0);
    let base = get_json("rolebasedgroup", &ns, "pd").expect("the base is kept");
    assert_eq!(
        role_replicas(&base),
        roles(&[("prefill", 0), ("decode", 0)]),
        "every role of group 0 is at zero, so its pods go"
    );
    assert_eq!(
        base["metadata"]["annotations"]["rsg.io/held-at-zero"],
        "true"
    );
    assert_eq!(
        base["spec"]["roleTemplates"][0]["template"]["metadata"]["labels"],
        json!({"app": "pd", "role": "decode"}),
        "the base's pod templates are never changed"
    );
    assert!(get_json("rolebasedgroup", &ns, "g-pd-1").is_none());
    assert_eq!(rsg["status"]["groups"][0]["state"], "ScaledToZero");

    // Restored from the baseline ConfigMap, where the user may change a role's count.
    run_kubectl(&[
        "patch",
        "configmap",
        "rbg-group-replica-config",
        "-n",
        &ns,
        "--type=merge",
        "-p",
        r#"{"data":{"engine.decode":"3"}}"#,
    ]);
    scale_rsg(&ns, "rbg-group", 1);
    wait_rsg_converged(&ns, "rbg-group", 1);
    let base = get_json("rolebasedgroup", &ns, "pd").expect("the base");
    assert_eq!(
        role_replicas(&base),
        roles(&[("prefill", 2), ("decode", 3)])
    );
    assert!(base["metadata"]["annotations"]
        .get("rsg.io/held-at-zero")
        .is_none());
    assert_eq!(base["spec"]["roles"][1]["templateRef"]["name"], "engine");
}
