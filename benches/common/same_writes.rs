//! The fleet benchmark's second reference: a plain client making, for each RSG, the writes
//! the manual asks of rsg when it converges an RSG to 3 groups (the snapshot, the replica
//! baseline, 2 copies and 2 Service copies, the base's group-0 labels, the status, and an
//! Event for each create and decision), 8 at a time with no order between them.
//!
//! Beside the plain client writing only the copies, it separates what the manual's writes
//! cost the API server from what rsg adds to them. Its labels are rsg's with `ref.io/` for
//! `rsg.io/` (the same size), so rsg's label-selected caches do not hold its objects.

use futures::StreamExt;
use kube::api::{Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Api, Client};
use serde_json::{json, Value};

/// One request of the reference.
pub enum Write {
    /// A create of `object` (its kind, namespace and name are in it).
    Create(ApiResource, Value),
    /// A merge patch of `name` in `namespace`; on its status when `status`.
    Patch {
        resource: ApiResource,
        namespace: String,
        name: String,
        patch: Value,
        status: bool,
    },
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// The create of `object`, a Deployment or a Service.
pub fn create(object: Value) -> Write {
    let resource = match object["kind"].as_str() {
        Some("Service") => resource("", "v1", "Service", "services"),
        _ => resource("apps", "v1", "Deployment", "deployments"),
    };
    Write::Create(resource, object)
}

/// The writes for RSG `rsg` over `base` (a Deployment stored in `ns` already) with `copies`
/// (its copies and Service copies); its status and Events go to the RSG `status_of`
/// (`namespace`, `name`), stored with no webhook and no controller.
pub fn writes_of(
    ns: &str,
    rsg: &str,
    base: &Value,
    copies: Vec<Value>,
    status_of: (&str, &str),
) -> Vec<Write> {
    let base_name = base["metadata"]["name"].as_str().unwrap_or_default();
    let snapshot = json!({
        "apiVersion": "apps/v1", "kind": "ControllerRevision",
        "metadata": {"name": format!("{rsg}-engine-snapshot"), "namespace": ns,
                     "labels": {"ref.io/name": rsg, "ref.io/target": "engine"}},
        "revision": 1, "data": base,
    });
    let baseline = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("{rsg}-replica-config"), "namespace": ns,
                     "labels": {"ref.io/name": rsg}},
        "data": {"engine": "1"},
    });
    let mut writes = vec![
        Write::Create(
            resource("apps", "v1", "ControllerRevision", "controllerrevisions"),
            snapshot,
        ),
        Write::Create(resource("", "v1", "ConfigMap", "configmaps"), baseline),
        Write::Patch {
            resource: resource("apps", "v1", "Deployment", "deployments"),
            namespace: ns.to_string(),
            name: base_name.to_string(),
            patch: json!({"metadata": {"labels": {"ref.io/name": rsg, "ref.io/group-id": "0", "ref.io/managed": "true"}}}),
            status: false,
        },
    ];
    writes.extend(copies.into_iter().map(create));
    let (rsg_ns, rsg_name) = status_of;
    writes.push(Write::Patch {
        resource: resource(
            "autoscaling.openfuyao.com",
            "v1alpha1",
            "ResourceScalingGroup",
            "resourcescalinggroups",
        ),
        namespace: rsg_ns.to_string(),
        name: rsg_name.to_string(),
        patch: status(ns, rsg, base_name),
        status: true,
    });
    for (i, (reason, note)) in [
        (
            "AdoptedBase",
            format!("labelled Deployment {ns}/{base_name} as group 0"),
        ),
        (
            "SnapshotStored",
            format!("stored ControllerRevision {ns}/{rsg}-engine-snapshot"),
        ),
        (
            "CreatedGroups",
            "created groups 1, 2 (2 workloads and 2 Services)".to_string(),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        writes.push(Write::Create(
            resource("events.k8s.io", "v1", "Event", "events"),
            json!({
                "apiVersion": "events.k8s.io/v1", "kind": "Event",
                "metadata": {"name": format!("{rsg_name}.{i}"), "namespace": rsg_ns},
                "eventTime": "2026-01-01T00:00:00.000000Z",
                "action": "Reconcile", "reason": reason, "note": note, "type": "Normal",
                "regarding": {"apiVersion": "autoscaling.openfuyao.com/v1alpha1", "kind": "ResourceScalingGroup", "namespace": rsg_ns, "name": rsg_name},
                "reportingController": "rsg", "reportingInstance": "rsg",
            }),
        ));
    }
    writes
}

/// A status of the size rsg writes for 3 groups of one target with one Service.
fn status(ns: &str, rsg: &str, base: &str) -> Value {
    let group = |id: i32| {
        let (workload, service) = match id {
            0 => (format!("Deployment/{ns}/{base}"), format!("{ns}/{base}")),
            _ => (
                format!("Deployment/{ns}/g-{base}-{id}"),
                format!("{ns}/{base}-g-{id}"),
            ),
        };
        json!({"id": id, "state": "Active", "active": true, "ready": false,
               "workloads": [workload], "services": [service], "revision": "r1"})
    };
    let condition = |type_: &str, reason: &str, message: &str| {
        json!({"type": type_, "status": "False", "reason": reason, "message": message,
               "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1})
    };
    json!({"status": {
        "observedGeneration": 1, "currentReplicas": 3, "readyReplicas": 0,
        "updatedReplicas": 3, "updateRevision": "r1", "currentRevision": "r1",
        "selector": format!("ref.io/name={rsg}"),
        "groups": [group(0), group(1), group(2)],
        "conditions": [
            condition("Ready", "GroupsNotReady", "0 of 3 groups ready"),
            condition("GroupsReady", "Waiting", "groups 0, 1, 2 are not ready"),
        ],
    }})
}

/// Makes `writes`, `concurrency` at a time; panics if any fails.
pub async fn make(client: &Client, writes: Vec<Write>, concurrency: usize) {
    let failed = futures::stream::iter(writes)
        .map(|write| {
            let client = client.clone();
            async move {
                match write {
                    Write::Create(resource, object) => {
                        let ns = object["metadata"]["namespace"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string();
                        let object: DynamicObject =
                            serde_json::from_value(object).map_err(|e| e.to_string())?;
                        Api::<DynamicObject>::namespaced_with(client, &ns, &resource)
                            .create(&PostParams::default(), &object)
                            .await
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    }
                    Write::Patch {
                        resource,
                        namespace,
                        name,
                        patch,
                        status,
                    } => {
                        let api =
                            Api::<DynamicObject>::namespaced_with(client, &namespace, &resource);
                        let params = PatchParams::default();
                        let patched = match status {
                            true => {
                                api.patch_status(&name, &params, &Patch::Merge(&patch))
                                    .await
                            }
                            false => api.patch(&name, &params, &Patch::Merge(&patch)).await,
                        };
                        patched.map(|_| ()).map_err(|e| e.to_string())
                    }
                }
            }
        })
        .buffer_unordered(concurrency)
        .filter_map(|r| futures::future::ready(r.err()))
        .collect::<Vec<String>>()
        .await;
    assert!(
        failed.is_empty(),
        "{} writes failed, the first: {}",
        failed.len(),
        failed[0]
    );
}
