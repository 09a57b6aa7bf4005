//! RoleBasedGroup (`workloads.x-k8s.io/v1alpha1`) as its API defines it: a set of roles, each
//! with its own `replicas` and a pod template (inline in `spec.roles[].template`, or shared in
//! `spec.roleTemplates[].template` and named by `templateRef`), and readiness per role in
//! `status.roleStatuses`. Pure functions on JSON.

use std::collections::BTreeMap;

use serde_json::Value;

/// The label the RoleBasedGroup controller puts on every pod of a RoleBasedGroup.
pub const RBG_NAME_LABEL: &str = "rolebasedgroup.workloads.x-k8s.io/name";

/// Whether `workload` is a RoleBasedGroup.
pub fn is_role_based_group(workload: &Value) -> bool {
    workload.get("kind").and_then(Value::as_str) == Some("RoleBasedGroup")
}

fn roles(rbg: &Value) -> impl Iterator<Item = &Value> {
    rbg.pointer("/spec/roles")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// JSON pointers of every pod template of the RoleBasedGroup: each role's inline template,
/// then each shared role template.
pub fn template_pointers(rbg: &Value) -> Vec<String> {
    let mut pointers = Vec::new();
    for (field, key) in [("roles", "template"), ("roleTemplates", "template")] {
        let items = rbg
            .pointer(&format!("/spec/{field}"))
            .and_then(Value::as_array);
        for (i, item) in items.into_iter().flatten().enumerate() {
            if item.get(key).is_some_and(Value::is_object) {
                pointers.push(format!("/spec/{field}/{i}/{key}"));
            }
        }
    }
    pointers
}

/// Each role's `replicas` (1 where unset, as the CRD defaults it), by role name.
pub fn role_replicas(rbg: &Value) -> BTreeMap<String, i32> {
    roles(rbg)
        .filter_map(|role| {
            let name = role.get("name")?.as_str()?;
            let replicas = role
                .get("replicas")
                .and_then(Value::as_i64)
                .and_then(|r| i32::try_from(r).ok())
                .unwrap_or(1);
            Some((name.to_string(), replicas))
        })
        .collect()
}

/// `spec.roles` with each role's replicas replaced by `replicas[role]` (roles not named keep
/// theirs). Every other field of every role is kept: a merge patch replaces the list whole.
pub fn roles_with_replicas(rbg: &Value, replicas: &BTreeMap<String, i32>) -> Value {
    let updated: Vec<Value> = roles(rbg)
        .map(|role| {
            let mut role = role.clone();
            let count = role
                .get("name")
                .and_then(Value::as_str)
                .and_then(|name| replicas.get(name));
            if let (Some(count), Some(map)) = (count, role.as_object_mut()) {
                map.insert("replicas".into(), Value::from(*count));
            }
            role
        })
        .collect();
    Value::Array(updated)
}

/// A merge patch setting every role's replicas as `replicas` says, valid only against the
/// version read (`metadata.resourceVersion`), since it replaces `spec.roles` whole.
pub fn scale_patch(rbg: &Value, replicas: &BTreeMap<String, i32>) -> Value {
    serde_json::json!({
        "metadata": {"resourceVersion": rbg.pointer("/metadata/resourceVersion")},
        "spec": {"roles": roles_with_replicas(rbg, replicas)},
    })
}

/// True when the RoleBasedGroup controller has observed the latest spec and every role
/// reports as many ready replicas as it wants.
pub fn is_ready(rbg: &Value) -> bool {
    let generation = rbg.pointer("/metadata/generation").and_then(Value::as_i64);
    let observed = rbg
        .pointer("/status/observedGeneration")
        .and_then(Value::as_i64);
    if let (Some(generation), Some(observed)) = (generation, observed) {
        if observed < generation {
            return false;
        }
    }
    let statuses: BTreeMap<&str, i64> = rbg
        .pointer("/status/roleStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| {
            Some((
                s.get("name")?.as_str()?,
                s.get("readyReplicas").and_then(Value::as_i64).unwrap_or(0),
            ))
        })
        .collect();
    role_replicas(rbg).iter().all(|(role, wanted)| {
        *wanted == 0 || statuses.get(role.as_str()).copied().unwrap_or(0) >= i64::from(*wanted)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rbg() -> Value {
        json!({
            "apiVersion": "workloads.x-k8s.io/v1alpha1", "kind": "RoleBasedGroup",
            "metadata": {"name": "pd", "generation": 3, "resourceVersion": "41"},
            "spec": {
                "roles": [
                    {"name": "prefill", "replicas": 2, "workload": {"apiVersion": "apps/v1", "kind": "StatefulSet"},
                     "template": {"metadata": {"labels": {"role": "prefill"}}, "spec": {"containers": []}}},
                    {"name": "decode", "replicas": 4, "templateRef": {"name": "engine"}},
                    {"name": "router"}
                ],
                "roleTemplates": [{"name": "engine", "template": {"spec": {"containers": []}}}]
            }
        })
    }

    #[test]
    fn every_pod_template_is_found_inline_and_shared() {
        assert!(is_role_based_group(&rbg()));
        assert_eq!(
            template_pointers(&rbg()),
            ["/spec/roles/0/template", "/spec/roleTemplates/0/template"]
        );
        assert!(template_pointers(&json!({"spec": {}})).is_empty());
    }

    #[test]
    fn replicas_are_per_role_and_a_scale_patch_keeps_every_other_field() {
        assert_eq!(
            role_replicas(&rbg()),
            BTreeMap::from([
                ("prefill".into(), 2),
                ("decode".into(), 4),
                ("router".into(), 1)
            ])
        );
        let zero = BTreeMap::from([("prefill".into(), 0), ("decode".into(), 0)]);
        let patch = scale_patch(&rbg(), &zero);
        assert_eq!(patch["metadata"]["resourceVersion"], "41");
        let roles = &patch["spec"]["roles"];
        assert_eq!(roles[0]["replicas"], 0);
        assert_eq!(roles[0]["workload"]["kind"], "StatefulSet");
        assert_eq!(
            roles[0]["template"]["metadata"]["labels"]["role"],
            "prefill"
        );
        assert_eq!(roles[1]["replicas"], 0);
        assert_eq!(roles[1]["templateRef"]["name"], "engine");
        assert!(
            roles[2].get("replicas").is_none(),
            "a role not named is left as it is"
        );
    }

    #[test]
    fn ready_when_every_role_reports_its_replicas_ready_for_the_latest_spec() {
        let mut object = rbg();
        assert!(!is_ready(&object), "no status yet");
        object["status"] = json!({"observedGeneration": 3, "roleStatuses": [
            {"name": "prefill", "readyReplicas": 2, "replicas": 2, "updatedReplicas": 2},
            {"name": "decode", "readyReplicas": 4, "replicas": 4, "updatedReplicas": 4},
            {"name": "router", "readyReplicas": 1, "replicas": 1, "updatedReplicas": 1}
        ]});
        assert!(is_ready(&object));
        object["status"]["observedGeneration"] = json!(2);
        assert!(
            !is_ready(&object),
            "the controller has not seen the latest spec"
        );
        object["status"]["observedGeneration"] = json!(3);
        object["status"]["roleStatuses"][1]["readyReplicas"] = json!(3);
        assert!(!is_ready(&object));
        let scaled_to_zero = roles_with_replicas(&object, &BTreeMap::from([("decode".into(), 0)]));
        object["spec"]["roles"] = scaled_to_zero;
        assert!(is_ready(&object), "a role at zero needs no ready replica");
    }
}
