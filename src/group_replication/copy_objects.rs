//! Pure construction of snapshots, workload copies and Service copies, on JSON so that
//! every kind (typed or dynamic) is handled alike and unknown fields are kept.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::baseline::Replicas;
use super::placement::{place_copy, BasePods, CopyPlacement};
use crate::api::{
    LABEL_GROUP_ID, LABEL_MANAGED, LABEL_NAME, LABEL_PLACEMENT, LABEL_REVISION, LABEL_TARGET,
};
use crate::workload::role_based_group::roles_with_replicas;
use crate::workload::template_pointers;

/// Metadata fields that describe one stored object rather than its desired state.
const RUNTIME_METADATA: [&str; 9] = [
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "ownerReferences",
    "selfLink",
];
/// Annotations written by controllers and clients, not by the workload's author.
const RUNTIME_ANNOTATIONS: [&str; 3] = [
    "deployment.kubernetes.io/revision",
    "kubectl.kubernetes.io/last-applied-configuration",
    "rsg.io/held-at-zero",
];

/// The workload as its author described it: status, runtime metadata, controller
/// annotations and rsg's own labels removed.
pub fn strip_runtime_fields(object: &Value) -> Value {
    let mut clean = object.clone();
    if let Some(map) = clean.as_object_mut() {
        map.remove("status");
    }
    if let Some(meta) = clean.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in RUNTIME_METADATA {
            meta.remove(field);
        }
        meta.remove("finalizers");
        if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            for key in RUNTIME_ANNOTATIONS {
                annotations.remove(key);
            }
        }
        if let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut) {
            labels.retain(|key, _| !key.starts_with("rsg.io/"));
        }
    }
    clean
}

fn object_at<'a>(value: &'a mut Value, pointer: &str) -> Option<&'a mut Map<String, Value>> {
    value.pointer_mut(pointer).and_then(Value::as_object_mut)
}

/// Sets `key: value` in the object map at `pointer`, creating the map (but not its parent).
fn set_label(value: &mut Value, parent: &str, key: &str, label: &str, label_value: &str) {
    let Some(parent) = object_at(value, parent) else {
        return;
    };
    let map = parent.entry(key.to_string()).or_insert_with(|| json!({}));
    if !map.is_object() {
        *map = json!({});
    }
    if let Some(map) = map.as_object_mut() {
        map.insert(label.to_string(), Value::from(label_value));
    }
}

/// What a workload copy is made of.
pub struct CopySpec<'a> {
    /// Name of the RSG.
    pub rsg_name: &'a str,
    /// Namespace of the RSG, where copies live.
    pub rsg_namespace: &'a str,
    /// Target name.
    pub target_name: &'a str,
    /// Name of the copy.
    pub copy_name: &'a str,
    /// Group number.
    pub group_id: i32,
    /// Replicas from the baseline: one count, or one per role of a RoleBasedGroup.
    pub replicas: &'a Replicas,
    /// Base Service name → copied Service name, for a StatefulSet's `serviceName`.
    pub service_renames: &'a BTreeMap<String, String>,
    /// The revision of the snapshot it is built from.
    pub revision: &'a str,
    /// The placement of the group's pods, and the base pods spreading keeps away from.
    pub placement: Option<(&'a CopyPlacement, &'a [BasePods])>,
}

/// Builds the copy of a workload for group `spec.group_id` from its snapshot.
pub fn build_workload_copy(snapshot: &Value, spec: &CopySpec<'_>) -> Value {
    let mut copy = strip_runtime_fields(snapshot);
    let id = spec.group_id.to_string();
    if let Some(meta) = object_at(&mut copy, "/metadata") {
        meta.insert("name".into(), Value::from(spec.copy_name));
        meta.insert("namespace".into(), Value::from(spec.rsg_namespace));
        meta.remove("generateName");
    }
    for (label, value) in [
        (LABEL_NAME, spec.rsg_name),
        (LABEL_GROUP_ID, id.as_str()),
        (LABEL_TARGET, spec.target_name),
        (LABEL_MANAGED, "true"),
        (LABEL_REVISION, spec.revision),
    ] {
        set_label(&mut copy, "/metadata", "labels", label, value);
    }
    match spec.replicas {
        Replicas::Count(replicas) => {
            if let Some(workload_spec) = object_at(&mut copy, "/spec") {
                if workload_spec.contains_key("replicas") || *replicas != 1 {
                    workload_spec.insert("replicas".into(), Value::from(*replicas));
                }
            }
        }
        Replicas::PerRole(replicas) => {
            let roles = roles_with_replicas(&copy, replicas);
            if let Some(workload_spec) = object_at(&mut copy, "/spec") {
                workload_spec.insert("roles".into(), roles);
            }
        }
    }
    if copy.pointer("/spec/selector/matchLabels").is_some() {
        set_label(
            &mut copy,
            "/spec/selector",
            "matchLabels",
            LABEL_GROUP_ID,
            &id,
        );
    }
    for path in template_pointers(&copy) {
        let path = path.as_str();
        if copy.pointer(path).is_some_and(Value::is_object) {
            if copy.pointer(&format!("{path}/metadata")).is_none() {
                if let Some(template) = object_at(&mut copy, path) {
                    template.insert("metadata".into(), json!({}));
                }
            }
            let meta = format!("{path}/metadata");
            set_label(&mut copy, &meta, "labels", LABEL_NAME, spec.rsg_name);
            set_label(&mut copy, &meta, "labels", LABEL_GROUP_ID, &id);
        }
    }
    if let Some((placement, base_pods)) = spec.placement {
        place_copy(
            &mut copy,
            spec.rsg_name,
            spec.group_id,
            placement,
            base_pods,
        );
        set_label(
            &mut copy,
            "/metadata",
            "labels",
            LABEL_PLACEMENT,
            &placement.fingerprint,
        );
    }
    let renamed = copy
        .pointer("/spec/serviceName")
        .and_then(Value::as_str)
        .and_then(|name| spec.service_renames.get(name))
        .cloned();
    if let (Some(renamed), Some(workload_spec)) = (renamed, object_at(&mut copy, "/spec")) {
        workload_spec.insert("serviceName".into(), Value::from(renamed));
    }
    copy
}

/// What a Service copy is made of.
pub struct ServiceCopySpec<'a> {
    /// Name of the RSG.
    pub rsg_name: &'a str,
    /// Namespace of the RSG, where copies live.
    pub rsg_namespace: &'a str,
    /// Name of the copy.
    pub copy_name: &'a str,
    /// Group number.
    pub group_id: i32,
    /// Whether a LoadBalancer or NodePort base keeps its type (the operator's opt-in);
    /// otherwise the copy is a ClusterIP Service.
    pub keep_external_type: bool,
}

/// Fields only LoadBalancer and NodePort Services have.
const EXTERNAL_SERVICE_FIELDS: [&str; 5] = [
    "externalTrafficPolicy",
    "loadBalancerSourceRanges",
    "loadBalancerClass",
    "allocateLoadBalancerNodePorts",
    "healthCheckNodePort",
];

/// Builds the copy of a base Service for one group: its selector narrowed to the group's
/// pods, and every field the API server allocates (cluster IPs, node ports) left for it to
/// allocate again. A headless Service stays headless; a LoadBalancer or NodePort Service
/// becomes ClusterIP unless the operator opted in.
pub fn build_service_copy(base: &Value, spec: &ServiceCopySpec<'_>) -> Value {
    let mut copy = strip_runtime_fields(base);
    let id = spec.group_id.to_string();
    if let Some(meta) = object_at(&mut copy, "/metadata") {
        meta.insert("name".into(), Value::from(spec.copy_name));
        meta.insert("namespace".into(), Value::from(spec.rsg_namespace));
        meta.remove("generateName");
    }
    set_label(&mut copy, "/metadata", "labels", LABEL_NAME, spec.rsg_name);
    set_label(&mut copy, "/metadata", "labels", LABEL_GROUP_ID, &id);
    if let Some(service_spec) = object_at(&mut copy, "/spec") {
        let headless = service_spec.get("clusterIP").and_then(Value::as_str) == Some("None");
        for field in [
            "clusterIP",
            "clusterIPs",
            "healthCheckNodePort",
            "loadBalancerIP",
            "externalIPs",
        ] {
            service_spec.remove(field);
        }
        if headless {
            service_spec.insert("clusterIP".into(), Value::from("None"));
        }
        let external = matches!(
            service_spec.get("type").and_then(Value::as_str),
            Some("LoadBalancer" | "NodePort")
        );
        if external && !spec.keep_external_type {
            service_spec.insert("type".into(), Value::from("ClusterIP"));
            for field in EXTERNAL_SERVICE_FIELDS {
                service_spec.remove(field);
            }
        }
        if let Some(ports) = service_spec.get_mut("ports").and_then(Value::as_array_mut) {
            for port in ports.iter_mut().filter_map(Value::as_object_mut) {
                port.remove("nodePort");
            }
        }
        // The RSG's name as well as the group id: a base Service with no selector of its own
        // (a StatefulSet's governing Service, say) must not select group i of every RSG here.
        let selector = service_spec.entry("selector").or_insert_with(|| json!({}));
        if let Some(selector) = selector.as_object_mut() {
            selector.insert(LABEL_NAME.into(), Value::from(spec.rsg_name));
            selector.insert(LABEL_GROUP_ID.into(), Value::from(id));
        }
    }
    copy
}

#[cfg(test)]
mod tests;
