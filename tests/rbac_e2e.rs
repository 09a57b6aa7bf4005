//! Least privilege: rsg runs (in every e2e binary) as the ServiceAccount of
//! `manifests/install`, bound to exactly that RBAC. Here one run exercises every path that
//! calls the API server: both strategies, every workload kind, Services, snapshots, baselines,
//! representatives, Events, the webhook's live checks and leader election. The apiserver's
//! audit log of that identity must show no denied call, and every permission the manifests
//! grant must have been used.

mod support;

use std::collections::BTreeSet;

use serde::Deserialize;
use std::time::Duration;

use support::{
    apply, env, env_with, namespace, scale_rsg, wait_for, wait_rsg_converged, EnvOptions,
};

/// One permission: API group, resource (with `/subresource`), verb.
type Permission = (String, String, String);

/// Groups of `everything`, with or without the RoleBasedGroup target.
fn group_rsg(ns: &str, with_roles: bool) -> String {
    let roles = if with_roles {
        "\n  - {name: roles, resourceRef: {apiVersion: workloads.x-k8s.io/v1alpha1, kind: RoleBasedGroup, name: roles}}"
    } else {
        ""
    };
    format!(
        r#"apiVersion: autoscaling.openfuyao.com/v1alpha1
kind: ResourceScalingGroup
metadata: {{name: everything, namespace: {ns}}}
spec:
  targetResources:
  - {{name: prefill, resourceRef: {{apiVersion: apps/v1, kind: Deployment, name: prefill}}}}
  - {{name: decode, resourceRef: {{apiVersion: apps/v1, kind: StatefulSet, name: decode}}}}
  - {{name: workers, resourceRef: {{apiVersion: leaderworkerset.x-k8s.io/v1, kind: LeaderWorkerSet, name: workers}}}}{roles}
  scalingStrategy:
    type: GroupReplication
    groupConfig: {{groupName: g, replicas: 2}}
"#
    )
}

fn workloads(ns: &str) -> String {
    let leader = support::fixtures::deployment(ns, "leader", 1);
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: prefill, namespace: {ns}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: prefill}}}}
  template:
    metadata: {{labels: {{app: prefill}}}}
    spec:
      serviceAccountName: engine
      containers:
      - name: engine
        image: registry.local/engine:1
        envFrom: [{{configMapRef: {{name: engine-config}}}}]
        volumeMounts: [{{name: cache, mountPath: /cache}}]
      volumes: [{{name: cache, persistentVolumeClaim: {{claimName: model-cache}}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: prefill, namespace: {ns}}}
spec:
  selector: {{app: prefill}}
  ports: [{{port: 80}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: decode, namespace: {ns}}}
spec:
  replicas: 1
  serviceName: decode
  selector: {{matchLabels: {{app: decode}}}}
  template:
    metadata: {{labels: {{app: decode}}}}
    spec:
      containers: [{{name: engine, image: registry.local/engine:1}}]
---
apiVersion: v1
kind: Service
metadata: {{name: decode, namespace: {ns}}}
spec:
  clusterIP: None
  selector: {{app: decode}}
  ports: [{{port: 80}}]
---
apiVersion: leaderworkerset.x-k8s.io/v1
kind: LeaderWorkerSet
metadata: {{name: workers, namespace: {ns}}}
spec:
  replicas: 1
  leaderWorkerTemplate:
    size: 2
    workerTemplate:
      metadata: {{labels: {{app: workers}}}}
      spec:
        containers: [{{name: engine, image: registry.local/engine:1}}]
---
apiVersion: workloads.x-k8s.io/v1alpha1
kind: RoleBasedGroup
metadata: {{name: roles, namespace: {ns}}}
spec:
  roles: [{{name: router, replicas: 1}}]
---
apiVersion: v1
kind: Service
metadata: {{name: prefill-g-2, namespace: {ns}}}
spec:
  selector: {{app: someone-else}}
  ports: [{{port: 80}}]
---
{leader}---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: follower, namespace: {ns}}}
spec:
  replicas: 1
  serviceName: follower
  selector: {{matchLabels: {{app: follower}}}}
  template:
    metadata: {{labels: {{app: follower}}}}
    spec:
      containers: [{{name: engine, image: registry.local/engine:1}}]
---
apiVersion: autoscaling.openfuyao.com/v1alpha1
kind: ResourceScalingGroup
metadata: {{name: ratio, namespace: {ns}}}
spec:
  targetResources:
  - {{name: leader, resourceRef: {{apiVersion: apps/v1, kind: Deployment, name: leader}}}}
  - {{name: follower, resourceRef: {{apiVersion: apps/v1, kind: StatefulSet, name: follower}}}}
  scalingStrategy:
    type: InplaceScaling
    leaderFollowerConfig:
      leader: {{resourceName: leader}}
      follower: [{{resourceName: follower, followRatio: 2}}]
"#
    )
}

/// Granted for paths one run cannot reach on purpose: reading an RSG the webhook's cache does
/// not have yet when its scale subresource is updated; deleting snapshots no group uses after
/// more than three rolling updates (`rolling_update_e2e` runs it under this same identity).
const GRANTED_FOR_RARE_PATHS: [(&str, &str, &str); 2] = [
    ("autoscaling.openfuyao.com", "resourcescalinggroups", "get"),
    ("apps", "controllerrevisions", "delete"),
];

/// Every (group, resource, verb) the ClusterRole and Role of `manifests/install` grant.
fn granted() -> BTreeSet<Permission> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/manifests/install/10-rbac.yaml"
    );
    let text = std::fs::read_to_string(path).expect("reading the RBAC manifest");
    let mut granted = BTreeSet::new();
    for document in serde_norway::Deserializer::from_str(&text) {
        let object = serde_json::Value::deserialize(document).expect("RBAC manifest YAML");
        if !matches!(object["kind"].as_str(), Some("ClusterRole" | "Role")) {
            continue;
        }
        for rule in object["rules"].as_array().expect("rules") {
            let strings = |field: &str| -> Vec<String> {
                rule[field]
                    .as_array()
                    .unwrap_or_else(|| panic!("rule without {field}: {rule}"))
                    .iter()
                    .map(|v| v.as_str().expect("string").to_string())
                    .collect()
            };
            for group in strings("apiGroups") {
                for resource in strings("resources") {
                    for verb in strings("verbs") {
                        assert!(
                            ![&group, &resource, &verb].contains(&&"*".to_string()),
                            "wildcards are broader than rsg needs: {rule}"
                        );
                        granted.insert((group.clone(), resource.clone(), verb));
                    }
                }
            }
        }
    }
    granted
}

/// The audited calls of rsg's identity: (permission, response code) for each.
fn audited_calls() -> Vec<(Permission, i64)> {
    let log = std::fs::read_to_string(&env().control_plane.audit_log).expect("reading audit log");
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["user"]["username"] == support::control_plane::RSG_USER)
        .filter_map(|event| {
            let object = event.get("objectRef")?;
            let resource = match object["subresource"].as_str() {
                Some(sub) => format!("{}/{sub}", object["resource"].as_str()?),
                None => object["resource"].as_str()?.to_string(),
            };
            let group = object["apiGroup"].as_str().unwrap_or_default().to_string();
            let verb = event["verb"].as_str()?.to_string();
            Some((
                (group, resource, verb),
                event["responseStatus"]["code"].as_i64().unwrap_or(0),
            ))
        })
        .collect()
}

/// The audited calls of rsg's identity that the API server marked as using a deprecated API
/// (the `k8s.io/deprecated` audit annotation): (URI, removed in release).
fn deprecated_calls() -> Vec<(String, String)> {
    let log = std::fs::read_to_string(&env().control_plane.audit_log).expect("reading audit log");
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["user"]["username"] == support::control_plane::RSG_USER)
        .filter(|event| event["annotations"]["k8s.io/deprecated"] == "true")
        .map(|event| {
            (
                event["requestURI"].as_str().unwrap_or_default().to_string(),
                event["annotations"]["k8s.io/removed-release"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

#[test]
fn every_call_rsg_makes_is_allowed_and_every_permission_granted_is_used() {
    let env = env_with(EnvOptions {
        cluster: true,
        // The operator's namespace selector makes rsg read namespace labels too.
        rsg_args: &["--target-namespace-selector=rsg-e2e/targets=allowed"],
        ..EnvOptions::default()
    });
    support::leader_worker_set::install_crd();
    support::crds::install(support::crds::ROLE_BASED_GROUP, &["rolebasedgroups"]);
    let ns = namespace("rbac");
    support::run_kubectl(&["label", "namespace", &ns, "rsg-e2e/targets=allowed"]);
    apply(&workloads(&ns));
    // A ControllerRevision that is not ours holds the snapshot's name: rsg reads it back after
    // its create conflicts, and refuses to use it.
    apply(&format!(
        "apiVersion: apps/v1\nkind: ControllerRevision\nmetadata: {{name: everything-prefill-snapshot, namespace: {ns}}}\ndata: {{someone: else}}\nrevision: 1\n"
    ));
    apply(&group_rsg(&ns, false));
    let condition = support::wait_rsg_reason(&ns, "everything", "NameConflict");
    assert!(
        condition["message"].as_str().is_some_and(
            |m| m.contains("ControllerRevision") && m.contains("everything-prefill-snapshot")
        ),
        "{condition}"
    );
    support::run_kubectl(&[
        "delete",
        "controllerrevision",
        "everything-prefill-snapshot",
        "-n",
        &ns,
    ]);
    // Problems are re-checked every 30 s; a change to the RSG wakes it at once.
    support::run_kubectl(&["annotate", "rsg", "everything", "-n", &ns, "retry=now"]);
    wait_rsg_converged(&ns, "everything", 2);
    // A new target adds its keys to the baseline ConfigMap (a RoleBasedGroup: one per role).
    let baseline_keys = || -> BTreeSet<String> {
        support::get_json("configmap", &ns, "everything-replica-config")
            .and_then(|c| c["data"].as_object().map(|d| d.keys().cloned().collect()))
            .unwrap_or_default()
    };
    assert!(
        !baseline_keys().contains("roles.router"),
        "{:?}",
        baseline_keys()
    );
    apply(&group_rsg(&ns, true));
    wait_rsg_converged(&ns, "everything", 2);
    wait_for(
        "the new target's key in the baseline",
        Duration::from_secs(30),
        || baseline_keys().contains("roles.router").then_some(()),
    );
    // Representatives are labelled once kube-controller-manager has created the pods.
    wait_for("representative pods", Duration::from_secs(60), || {
        (support::names("pods", &ns, "rsg.io/representative=everything").len() == 2).then_some(())
    });
    // A Service that is not ours holds a copy's name: rsg reads it to say whose it is.
    scale_rsg(&ns, "everything", 3);
    support::wait_rsg_reason(&ns, "everything", "NameConflict");
    support::run_kubectl(&["delete", "service", "prefill-g-2", "-n", &ns]);
    wait_rsg_converged(&ns, "everything", 3);
    scale_rsg(&ns, "everything", 1);
    wait_rsg_converged(&ns, "everything", 1);
    support::run_kubectl(&["scale", "deployment", "leader", "-n", &ns, "--replicas=2"]);
    wait_for(
        "the follower at twice the leader",
        Duration::from_secs(30),
        || {
            let follower = support::get_json("statefulset", &ns, "follower")?;
            (follower["spec"]["replicas"] == 4).then_some(())
        },
    );
    // A clean stop ends the watches (audited when they complete) and releases the Lease.
    let status = env.rsg.stop(libc::SIGTERM).expect("rsg was running");
    assert!(status.success(), "rsg exited with {status}");

    let granted = granted();
    let calls = wait_for(
        "the watches in the audit log",
        Duration::from_secs(30),
        || {
            let calls = audited_calls();
            calls
                .iter()
                .any(|((_, _, verb), _)| verb == "watch")
                .then_some(calls)
        },
    );
    let deprecated = deprecated_calls();
    assert!(
        deprecated.is_empty(),
        "calls to deprecated APIs (URI, removed in): {deprecated:?}"
    );
    let denied: Vec<_> = calls.iter().filter(|(_, code)| *code == 403).collect();
    assert!(
        denied.is_empty(),
        "calls the manifests' RBAC denied: {denied:?}"
    );
    let used: BTreeSet<Permission> = calls.into_iter().map(|(p, _)| p).collect();
    let outside: Vec<_> = used.difference(&granted).collect();
    assert!(outside.is_empty(), "calls outside the grant: {outside:?}");
    let rare: BTreeSet<Permission> = GRANTED_FOR_RARE_PATHS
        .iter()
        .map(|(g, r, v)| (g.to_string(), r.to_string(), v.to_string()))
        .collect();
    let unused: Vec<_> = granted
        .difference(&used)
        .filter(|p| !rare.contains(p))
        .collect();
    assert!(
        unused.is_empty(),
        "granted but never used, so broader than needed: {unused:?}\nused: {used:?}"
    );
    assert!(
        rare.is_subset(&granted) && rare.is_disjoint(&used),
        "the rare-path list is out of date: {rare:?}"
    );
    env.rsg.restart();
}
