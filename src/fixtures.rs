//! Builders of the objects rsg's tests and benchmarks are made of: base workloads, Services
//! and RSGs, as JSON values (end-to-end tests turn them into YAML for kubectl). One place, so
//! unit tests, the mocked-API scenarios, the end-to-end tests and the benchmarks build the
//! same objects. Nothing in the controller uses them.

use serde_json::{json, Value};

use crate::api::ResourceScalingGroup;

/// A Deployment `name` in `ns` whose pods carry `labels` (its selector too), with one
/// container `container` running `image`.
pub fn deployment_with(
    ns: &str,
    name: &str,
    replicas: i32,
    labels: Value,
    container: &str,
    image: &str,
) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": container, "image": image}]}
            }
        }
    })
}

/// A Deployment `name` in `ns` whose pods carry `app: <name>`, with one container.
pub fn deployment(ns: &str, name: &str, replicas: i32) -> Value {
    deployment_with(
        ns,
        name,
        replicas,
        json!({"app": name}),
        name,
        &format!("registry.local/{name}:1"),
    )
}

/// A Service `name` in `ns` selecting `selector` on `port`.
pub fn service_with(ns: &str, name: &str, selector: Value, port: u16) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": selector, "ports": [{"port": port}]}
    })
}

/// A Service `name` in `ns` selecting `app: <name>` on port 80.
pub fn service(ns: &str, name: &str) -> Value {
    service_with(ns, name, json!({"app": name}), 80)
}

/// A target entry `name` naming the Deployment `workload` (in `namespace`, else the RSG's).
pub fn deployment_target(name: &str, workload: &str, namespace: Option<&str>) -> Value {
    let mut target = json!({
        "name": name,
        "resourceRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": workload}
    });
    if let Some(namespace) = namespace {
        target["resourceRef"]["namespace"] = json!(namespace);
    }
    target
}

/// An RSG `name` in `ns` over `targets`, with `strategy` as its `scalingStrategy`.
pub fn rsg_value(ns: &str, name: &str, targets: Vec<Value>, strategy: Value) -> Value {
    json!({
        "apiVersion": "autoscaling.openfuyao.com/v1alpha1",
        "kind": "ResourceScalingGroup",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"targetResources": targets, "scalingStrategy": strategy}
    })
}

/// [`rsg_value`] as the typed RSG.
pub fn rsg(ns: &str, name: &str, targets: Vec<Value>, strategy: Value) -> ResourceScalingGroup {
    typed(rsg_value(ns, name, targets, strategy))
}

fn typed(value: Value) -> ResourceScalingGroup {
    serde_json::from_value(value).unwrap_or_else(|err| panic!("a fixture RSG: {err}"))
}

/// A GroupReplication RSG `name` in `ns` over one target `target` (apiVersion, kind and
/// workload name), with `group_config` as its `groupConfig`.
pub fn group_rsg_value(
    ns: &str,
    name: &str,
    target: &str,
    (api_version, kind, workload): (&str, &str, &str),
    group_config: Value,
) -> Value {
    let target = json!({
        "name": target,
        "resourceRef": {"apiVersion": api_version, "kind": kind, "name": workload}
    });
    let strategy = json!({"type": "GroupReplication", "groupConfig": group_config});
    rsg_value(ns, name, vec![target], strategy)
}

/// [`group_rsg_value`] as the typed RSG, with a uid (as the API server gives it).
pub fn group_rsg(
    ns: &str,
    name: &str,
    target: &str,
    workload: (&str, &str, &str),
    group_config: Value,
) -> ResourceScalingGroup {
    let mut value = group_rsg_value(ns, name, target, workload, group_config);
    value["metadata"]["uid"] = json!(format!("uid-{ns}-{name}"));
    value["metadata"]["generation"] = json!(1);
    typed(value)
}

/// A ResourceScalingGroupGrant in `ns` letting the RSGs of `from` act on every Deployment
/// and StatefulSet there.
pub fn grant(ns: &str, from: &str) -> Value {
    json!({
        "apiVersion": "autoscaling.openfuyao.com/v1alpha1",
        "kind": "ResourceScalingGroupGrant",
        "metadata": {"name": format!("from-{from}"), "namespace": ns},
        "spec": {
            "from": [{"namespace": from}],
            "to": [{"group": "apps", "kind": "Deployment"}, {"group": "apps", "kind": "StatefulSet"}]
        }
    })
}

/// The prefill and decode base Deployments (one replica, `image`) of the GroupReplication
/// benchmarks, each with a headless Service.
pub fn prefill_decode_bases(ns: &str, image: &str) -> Vec<Value> {
    let mut objects = Vec::new();
    for role in ["prefill", "decode"] {
        let labels = json!({"app": "llm", "role": role});
        let name = format!("llm-{role}");
        objects.push(deployment_with(ns, &name, 1, labels.clone(), "vllm", image));
        let mut headless = service_with(ns, &name, labels, 8000);
        headless["spec"]["clusterIP"] = json!("None");
        objects.push(headless);
    }
    objects
}
