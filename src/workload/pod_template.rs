//! Reading pod templates out of workload objects of any supported kind, as JSON.

use std::collections::BTreeMap;

use serde_json::Value;

use super::role_based_group::{self, RBG_NAME_LABEL};

/// JSON pointers of the single pod templates a workload may carry, in order of preference.
const FIXED_TEMPLATE_PATHS: [&str; 3] = [
    "/spec/template",
    "/spec/leaderWorkerTemplate/workerTemplate",
    "/spec/leaderWorkerTemplate/leaderTemplate",
];

/// The label the LeaderWorkerSet controller puts on every pod of a LeaderWorkerSet.
const LWS_NAME_LABEL: &str = "leaderworkerset.sigs.k8s.io/name";

/// JSON pointers of every pod template the workload carries, in order of preference: a
/// Deployment's or StatefulSet's template, a LeaderWorkerSet's worker and leader templates,
/// a RoleBasedGroup's role templates.
pub fn template_pointers(workload: &Value) -> Vec<String> {
    let mut pointers: Vec<String> = FIXED_TEMPLATE_PATHS
        .iter()
        .filter(|path| workload.pointer(path).is_some_and(Value::is_object))
        .map(|path| path.to_string())
        .collect();
    if role_based_group::is_role_based_group(workload) {
        pointers.extend(role_based_group::template_pointers(workload));
    }
    pointers
}

fn labels_at(workload: &Value, template: &str) -> Option<BTreeMap<String, String>> {
    let labels = workload
        .pointer(&format!("{template}/metadata/labels"))?
        .as_object()?;
    Some(
        labels
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
            .collect(),
    )
}

/// The labels of the workload's first pod template.
pub fn pod_template_labels(workload: &Value) -> BTreeMap<String, String> {
    template_pointers(workload)
        .iter()
        .find_map(|path| labels_at(workload, path))
        .unwrap_or_default()
}

/// The labels of each of the workload's pod templates (a RoleBasedGroup has one per role).
pub fn all_pod_template_labels(workload: &Value) -> Vec<BTreeMap<String, String>> {
    template_pointers(workload)
        .iter()
        .filter_map(|path| labels_at(workload, path))
        .collect()
}

/// Labels that select the workload's pods: its `spec.selector.matchLabels`, or for kinds
/// without one the name label their controller puts on every pod (LeaderWorkerSet,
/// RoleBasedGroup). Empty when none is known.
pub fn pod_selector(workload: &Value) -> BTreeMap<String, String> {
    if let Some(labels) = workload
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
    {
        return labels
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
            .collect();
    }
    let Some(name) = workload.pointer("/metadata/name").and_then(Value::as_str) else {
        return BTreeMap::new();
    };
    let label = if role_based_group::is_role_based_group(workload) {
        RBG_NAME_LABEL
    } else if workload.pointer("/spec/leaderWorkerTemplate").is_some() {
        LWS_NAME_LABEL
    } else {
        return BTreeMap::new();
    };
    BTreeMap::from([(label.to_string(), name.to_string())])
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
    /// The kind and the name.
    pub fn kind_and_name(&self) -> (&'static str, &str) {
        match self {
            Self::ConfigMap(n) => ("ConfigMap", n),
            Self::Secret(n) => ("Secret", n),
            Self::PersistentVolumeClaim(n) => ("PersistentVolumeClaim", n),
            Self::ServiceAccount(n) => ("ServiceAccount", n),
        }
    }

    /// The kind and name, for messages.
    pub fn describe(&self) -> String {
        let (kind, name) = self.kind_and_name();
        format!("{kind} {name}")
    }
}

/// Every ConfigMap, Secret, PVC and ServiceAccount the workload's pod templates refer to
/// (volumes, env, envFrom, imagePullSecrets, serviceAccountName), sorted and deduplicated.
/// Optional references are left out.
pub fn referenced_objects(workload: &Value) -> Vec<ReferencedObject> {
    let mut found = Vec::new();
    for path in template_pointers(workload) {
        if let Some(spec) = workload.pointer(&format!("{path}/spec")) {
            collect_from_pod_spec(spec, Optional::Skip, &mut found);
        }
    }
    found.sort();
    found.dedup();
    found
}

/// Whether references marked `optional` count.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Optional {
    Skip,
    Include,
}

/// Every ConfigMap, Secret, PVC and ServiceAccount (but the namespace's `default`) one pod
/// spec uses, optional references included (an optional Secret is still mounted when it
/// exists): what the pods get of their namespace. Sorted and deduplicated.
pub fn pod_spec_identities(spec: &Value) -> Vec<ReferencedObject> {
    let mut found = Vec::new();
    collect_from_pod_spec(spec, Optional::Include, &mut found);
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

impl Optional {
    /// Whether the reference `value` counts.
    fn counts(self, value: &Value) -> bool {
        self == Self::Include || !is_optional(value)
    }
}

fn items<'a>(value: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    value
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn collect_from_pod_spec(spec: &Value, optional: Optional, found: &mut Vec<ReferencedObject>) {
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
        collect_from_volume(volume, optional, found);
    }
    for container_list in ["initContainers", "containers", "ephemeralContainers"] {
        for container in items(spec, container_list) {
            collect_from_container(container, optional, found);
        }
    }
}

fn collect_from_volume(volume: &Value, optional: Optional, found: &mut Vec<ReferencedObject>) {
    if let Some(cm) = volume.get("configMap").filter(|v| optional.counts(v)) {
        if let Some(name) = str_at(cm, "/name") {
            found.push(ReferencedObject::ConfigMap(name.to_string()));
        }
    }
    if let Some(secret) = volume.get("secret").filter(|v| optional.counts(v)) {
        if let Some(name) = str_at(secret, "/secretName") {
            found.push(ReferencedObject::Secret(name.to_string()));
        }
    }
    if let Some(claim) = str_at(volume, "/persistentVolumeClaim/claimName") {
        found.push(ReferencedObject::PersistentVolumeClaim(claim.to_string()));
    }
    if let Some(projected) = volume.get("projected") {
        for source in items(projected, "sources") {
            if let Some(cm) = source.get("configMap").filter(|v| optional.counts(v)) {
                if let Some(name) = str_at(cm, "/name") {
                    found.push(ReferencedObject::ConfigMap(name.to_string()));
                }
            }
            if let Some(secret) = source.get("secret").filter(|v| optional.counts(v)) {
                if let Some(name) = str_at(secret, "/name") {
                    found.push(ReferencedObject::Secret(name.to_string()));
                }
            }
        }
    }
}

fn collect_from_container(
    container: &Value,
    optional: Optional,
    found: &mut Vec<ReferencedObject>,
) {
    for env in items(container, "env") {
        if let Some(r) = env
            .pointer("/valueFrom/configMapKeyRef")
            .filter(|v| optional.counts(v))
        {
            if let Some(name) = str_at(r, "/name") {
                found.push(ReferencedObject::ConfigMap(name.to_string()));
            }
        }
        if let Some(r) = env
            .pointer("/valueFrom/secretKeyRef")
            .filter(|v| optional.counts(v))
        {
            if let Some(name) = str_at(r, "/name") {
                found.push(ReferencedObject::Secret(name.to_string()));
            }
        }
    }
    for source in items(container, "envFrom") {
        if let Some(r) = source.get("configMapRef").filter(|v| optional.counts(v)) {
            if let Some(name) = str_at(r, "/name") {
                found.push(ReferencedObject::ConfigMap(name.to_string()));
            }
        }
        if let Some(r) = source.get("secretRef").filter(|v| optional.counts(v)) {
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
    fn identities_include_optional_references_and_leave_out_the_default_account() {
        let pod = json!({"serviceAccountName": "default",
            "volumes": [{"name": "t", "secret": {"secretName": "tls", "optional": true}}],
            "containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "cfg", "optional": true}}]}]});
        assert_eq!(
            pod_spec_identities(&pod),
            [
                ReferencedObject::ConfigMap("cfg".into()),
                ReferencedObject::Secret("tls".into())
            ]
        );
    }

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
    fn role_based_groups_have_a_template_per_role_and_pods_selected_by_name() {
        let rbg = json!({"kind": "RoleBasedGroup", "metadata": {"name": "pd"}, "spec": {
            "roles": [
                {"name": "prefill", "template": {"metadata": {"labels": {"role": "prefill"}},
                    "spec": {"volumes": [{"name": "m", "persistentVolumeClaim": {"claimName": "models"}}]}}},
                {"name": "decode", "templateRef": {"name": "engine"}}
            ],
            "roleTemplates": [{"name": "engine", "template": {"metadata": {"labels": {"role": "decode"}}}}]
        }});
        assert_eq!(
            all_pod_template_labels(&rbg),
            vec![
                BTreeMap::from([("role".to_string(), "prefill".to_string())]),
                BTreeMap::from([("role".to_string(), "decode".to_string())]),
            ]
        );
        assert_eq!(
            referenced_objects(&rbg),
            vec![ReferencedObject::PersistentVolumeClaim("models".into())]
        );
        assert_eq!(
            pod_selector(&rbg),
            BTreeMap::from([(RBG_NAME_LABEL.to_string(), "pd".to_string())])
        );
        let lws = json!({"metadata": {"name": "vllm"}, "spec": {"leaderWorkerTemplate": {}}});
        assert_eq!(
            pod_selector(&lws),
            BTreeMap::from([(LWS_NAME_LABEL.to_string(), "vllm".to_string())])
        );
        let deploy =
            json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"app": "x"}}}});
        assert_eq!(
            pod_selector(&deploy),
            BTreeMap::from([("app".to_string(), "x".to_string())])
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
