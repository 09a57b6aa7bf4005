//! Reading pod templates out of workload objects of any supported kind, as JSON.

use std::collections::BTreeMap;

use serde_json::Value;

/// JSON pointers of the pod templates a workload may carry, in order of preference.
pub fn pod_spec_paths() -> [&'static str; 3] {
    [
        "/spec/template",
        "/spec/leaderWorkerTemplate/workerTemplate",
        "/spec/leaderWorkerTemplate/leaderTemplate",
    ]
}

/// The labels of the workload's first pod template.
pub fn pod_template_labels(workload: &Value) -> BTreeMap<String, String> {
    pod_spec_paths()
        .iter()
        .find_map(|path| workload.pointer(&format!("{path}/metadata/labels")))
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// An object a pod template needs to exist in its namespace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ReferencedObject {
    /// A ConfigMap.
    ConfigMap(String),
    /// A Secret.
    Secret(String),
    /// A PersistentVolumeClaim.
    PersistentVolumeClaim(String),
    /// A ServiceAccount.
    ServiceAccount(String),
}

impl ReferencedObject {
    /// The kind and name, for messages.
    pub fn describe(&self) -> String {
        match self {
            Self::ConfigMap(n) => format!("ConfigMap {n}"),
            Self::Secret(n) => format!("Secret {n}"),
            Self::PersistentVolumeClaim(n) => format!("PersistentVolumeClaim {n}"),
            Self::ServiceAccount(n) => format!("ServiceAccount {n}"),
        }
    }
}

/// Every ConfigMap, Secret, PVC and ServiceAccount the workload's pod templates refer to
/// (volumes, env, envFrom, imagePullSecrets, serviceAccountName), sorted and deduplicated.
/// Optional references are left out.
pub fn referenced_objects(workload: &Value) -> Vec<ReferencedObject> {
    let mut found = Vec::new();
    for path in pod_spec_paths() {
        if let Some(spec) = workload.pointer(&format!("{path}/spec")) {
            collect_from_pod_spec(spec, &mut found);
        }
    }
    found.sort();
    found.dedup();
    found
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn is_optional(value: &Value) -> bool {
    value
        .get("optional")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn items<'a>(value: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    value
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn collect_from_pod_spec(spec: &Value, found: &mut Vec<ReferencedObject>) {
    if let Some(sa) = str_at(spec, "/serviceAccountName") {
        if sa != "default" {
            found.push(ReferencedObject::ServiceAccount(sa.to_string()));
        }
    }
    for secret in items(spec, "imagePullSecrets") {
        if let Some(name) = str_at(secret, "/name") {
            found.push(ReferencedObject::Secret(name.to_string()));
        }
    }
    for volume in items(spec, "volumes") {
        collect_from_volume(volume, found);
    }
    for container_list in ["initContainers", "containers"] {
        for container in items(spec, container_list) {
            collect_from_container(container, found);
        }
    }
}

fn collect_from_volume(volume: &Value, found: &mut Vec<ReferencedObject>) {
    if let Some(cm) = volume.get("configMap").filter(|v| !is_optional(v)) {
        if let Some(name) = str_at(cm, "/name") {
            found.push(ReferencedObject::ConfigMap(name.to_string()));
        }
    }
    if let Some(secret) = volume.get("secret").filter(|v| !is_optional(v)) {
        if let Some(name) = str_at(secret, "/secretName") {
            found.push(ReferencedObject::Secret(name.to_string()));
        }
    }
    if let Some(claim) = str_at(volume, "/persistentVolumeClaim/claimName") {
        found.push(ReferencedObject::PersistentVolumeClaim(claim.to_string()));
    }
    if let Some(projected) = volume.get("projected") {
        for source in items(projected, "sources") {
            if let Some(cm) = source.get("configMap").filter(|v| !is_optional(v)) {
                if let Some(name) = str_at(cm, "/name") {
                    found.push(ReferencedObject::ConfigMap(name.to_string()));
                }
            }
            if let Some(secret) = source.get("secret").filter(|v| !is_optional(v)) {
                if let Some(name) = str_at(secret, "/name") {
                    found.push(ReferencedObject::Secret(name.to_string()));
                }
            }
        }
    }
}

fn collect_from_container(container: &Value, found: &mut Vec<ReferencedObject>) {
    for env in items(container, "env") {
        if let Some(r) = env
            .pointer("/valueFrom/configMapKeyRef")
            .filter(|v| !is_optional(v))
        {
            if let Some(name) = str_at(r, "/name") {
                found.push(ReferencedObject::ConfigMap(name.to_string()));
            }
        }
        if let Some(r) = env
            .pointer("/valueFrom/secretKeyRef")
            .filter(|v| !is_optional(v))
        {
            if let Some(name) = str_at(r, "/name") {
                found.push(ReferencedObject::Secret(name.to_string()));
            }
        }
    }
    for source in items(container, "envFrom") {
        if let Some(r) = source.get("configMapRef").filter(|v| !is_optional(v)) {
            if let Some(name) = str_at(r, "/name") {
                found.push(ReferencedObject::ConfigMap(name.to_string()));
            }
        }
        if let Some(r) = source.get("secretRef").filter(|v| !is_optional(v)) {
            if let Some(name) = str_at(r, "/name") {
                found.push(ReferencedObject::Secret(name.to_string()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_every_kind_of_reference_and_skips_optional_ones() {
        let deploy = json!({"spec": {"template": {"metadata": {"labels": {"app": "x"}}, "spec": {
            "serviceAccountName": "runner",
            "imagePullSecrets": [{"name": "pull"}],
            "volumes": [
                {"name": "a", "configMap": {"name": "cfg"}},
                {"name": "b", "secret": {"secretName": "tls"}},
                {"name": "c", "persistentVolumeClaim": {"claimName": "models"}},
                {"name": "d", "configMap": {"name": "maybe", "optional": true}},
                {"name": "e", "projected": {"sources": [{"secret": {"name": "proj"}}]}}
            ],
            "containers": [{"name": "c", "env": [
                {"name": "K", "valueFrom": {"secretKeyRef": {"name": "api-key", "key": "k"}}}
            ], "envFrom": [{"configMapRef": {"name": "env-cfg"}}]}]
        }}}});
        let found = referenced_objects(&deploy);
        assert_eq!(
            found,
            vec![
                ReferencedObject::ConfigMap("cfg".into()),
                ReferencedObject::ConfigMap("env-cfg".into()),
                ReferencedObject::Secret("api-key".into()),
                ReferencedObject::Secret("proj".into()),
                ReferencedObject::Secret("pull".into()),
                ReferencedObject::Secret("tls".into()),
                ReferencedObject::PersistentVolumeClaim("models".into()),
                ReferencedObject::ServiceAccount("runner".into()),
            ]
        );
        assert_eq!(
            pod_template_labels(&deploy).get("app").map(String::as_str),
            Some("x")
        );
    }

    #[test]
    fn reads_leader_worker_set_templates() {
        let lws = json!({"spec": {"leaderWorkerTemplate": {"workerTemplate": {
            "metadata": {"labels": {"role": "worker"}},
            "spec": {"volumes": [{"name": "a", "configMap": {"name": "worker-cfg"}}]}
        }}}});
        assert_eq!(
            referenced_objects(&lws),
            vec![ReferencedObject::ConfigMap("worker-cfg".into())]
        );
        assert_eq!(
            pod_template_labels(&lws).get("role").map(String::as_str),
            Some("worker")
        );
    }
}
