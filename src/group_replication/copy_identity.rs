//! What a copy may run as. A copy runs in the RSG's namespace with the pod template of its
//! base, so whoever edits the base chooses the identity and the host access of pods in
//! another namespace. Two things no base may bring into a copy, whoever edits it:
//! * in rsg's own namespace, rsg's own ServiceAccount and rsg's own Secrets (its webhook
//!   certificate, its Prometheus token);
//! * when the base lives in another namespace than the RSG, access to the node: `hostPath`
//!   volumes, the host's network, PID or IPC namespace, privileged containers and added
//!   capabilities.
//!
//! A snapshot that brings either is refused before any group is built from it: the RSG
//! reports why and waits until the base is fixed.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::boundary::TargetBoundary;
use crate::workload::template_pointers;

/// The Secret names a pod spec refers to: volumes (also projected), env, envFrom and
/// image pull Secrets, of every kind of container.
fn secret_references(pod: &Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut add = |value: &Value| {
        if let Some(name) = value.as_str() {
            names.insert(name.to_string());
        }
    };
    for volume in pod["volumes"].as_array().into_iter().flatten() {
        add(&volume["secret"]["secretName"]);
        for source in volume["projected"]["sources"]
            .as_array()
            .into_iter()
            .flatten()
        {
            add(&source["secret"]["name"]);
        }
    }
    for pull in pod["imagePullSecrets"].as_array().into_iter().flatten() {
        add(&pull["name"]);
    }
    for container in containers(pod) {
        for env in container["env"].as_array().into_iter().flatten() {
            add(&env["valueFrom"]["secretKeyRef"]["name"]);
        }
        for from in container["envFrom"].as_array().into_iter().flatten() {
            add(&from["secretRef"]["name"]);
        }
    }
    names
}

fn containers(pod: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .into_iter()
        .flat_map(move |field| pod[field].as_array().into_iter().flatten())
}

/// What of the node a pod spec reaches, in words.
fn host_access(pod: &Value) -> Vec<String> {
    let mut found = Vec::new();
    for volume in pod["volumes"].as_array().into_iter().flatten() {
        if volume.get("hostPath").is_some() {
            found.push(format!(
                "a hostPath volume {:?}",
                volume["name"].as_str().unwrap_or_default()
            ));
        }
    }
    for (field, words) in [
        ("hostNetwork", "the host's network"),
        ("hostPID", "the host's PID namespace"),
        ("hostIPC", "the host's IPC namespace"),
    ] {
        if pod[field] == true {
            found.push(words.to_string());
        }
    }
    for container in containers(pod) {
        let name = container["name"].as_str().unwrap_or_default();
        let security = &container["securityContext"];
        if security["privileged"] == true {
            found.push(format!("the privileged container {name:?}"));
        }
        if security["capabilities"]["add"]
            .as_array()
            .is_some_and(|added| !added.is_empty())
        {
            found.push(format!("capabilities added to container {name:?}"));
        }
    }
    found
}

/// Why copies of target `target` may not be built from `snapshot`, its base living in
/// `base_namespace` and the copies in `rsg_namespace`; empty when they may.
pub fn refusals(
    snapshot: &Value,
    target: &str,
    base_namespace: &str,
    rsg_namespace: &str,
    boundary: &TargetBoundary,
) -> Vec<String> {
    let in_own_namespace = boundary.own_namespace.as_deref() == Some(rsg_namespace);
    let across = base_namespace != rsg_namespace;
    let mut refused = Vec::new();
    for pointer in template_pointers(snapshot) {
        let Some(pod) = snapshot.pointer(&format!("{pointer}/spec")) else {
            continue;
        };
        if in_own_namespace {
            let account = pod["serviceAccountName"]
                .as_str()
                .or_else(|| pod["serviceAccount"].as_str());
            if account.is_some() && account == boundary.own_service_account.as_deref() {
                refused.push(format!(
                    "target {target:?}: its pod template runs as rsg's own ServiceAccount {:?}, which no copy may",
                    account.unwrap_or_default()
                ));
            }
            let own: Vec<String> = secret_references(pod)
                .intersection(&boundary.own_secrets)
                .cloned()
                .collect();
            if !own.is_empty() {
                refused.push(format!(
                    "target {target:?}: its pod template uses rsg's own Secrets {own:?}, which no copy may"
                ));
            }
        }
        if across {
            let host = host_access(pod);
            if !host.is_empty() {
                refused.push(format!(
                    "target {target:?}: its base in namespace {base_namespace:?} would give copies in {rsg_namespace:?} {}; copies of a base in another namespace get no access to the node",
                    host.join(", ")
                ));
            }
        }
    }
    refused
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn boundary() -> TargetBoundary {
        TargetBoundary {
            own_namespace: Some("scaling-system".into()),
            own_service_account: Some("rsg".into()),
            own_secrets: ["rsg-webhook-tls".to_string()].into(),
            ..TargetBoundary::default()
        }
    }

    fn deployment(pod: Value) -> Value {
        json!({"kind": "Deployment", "spec": {"template": {"metadata": {}, "spec": pod}}})
    }

    #[test]
    fn an_ordinary_base_is_copied() {
        let base = deployment(json!({"serviceAccountName": "engine",
            "volumes": [{"name": "cache", "secret": {"secretName": "hf-token"}}],
            "containers": [{"name": "vllm", "image": "vllm:1"}]}));
        assert!(refusals(
            &base,
            "prefill",
            "production",
            "scaling-system",
            &boundary()
        )
        .is_empty());
    }

    #[test]
    fn rsgs_own_identity_never_reaches_a_copy_in_its_namespace() {
        let base = deployment(json!({"serviceAccountName": "rsg",
            "volumes": [{"name": "tls", "secret": {"secretName": "rsg-webhook-tls", "optional": true}}],
            "containers": [{"name": "vllm", "image": "vllm:1"}]}));
        let refused = refusals(
            &base,
            "prefill",
            "production",
            "scaling-system",
            &boundary(),
        );
        assert_eq!(refused.len(), 2, "{refused:?}");
        assert!(
            refused[0].contains("rsg's own ServiceAccount \"rsg\""),
            "{refused:?}"
        );
        assert!(refused[1].contains("rsg-webhook-tls"), "{refused:?}");
        // Elsewhere, a ServiceAccount named rsg is another namespace's own identity.
        assert!(
            refusals(&base, "prefill", "production", "team-a", &boundary())
                .iter()
                .all(|r| !r.contains("ServiceAccount"))
        );
        let env_ref = deployment(json!({"containers": [{"name": "c",
            "env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "rsg-webhook-tls", "key": "tls.key"}}}]}]}));
        assert_eq!(
            refusals(&env_ref, "p", "production", "scaling-system", &boundary()).len(),
            1
        );
    }

    #[test]
    fn node_access_never_crosses_namespaces() {
        let base = deployment(json!({"hostNetwork": true,
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
            "containers": [{"name": "vllm", "securityContext": {"privileged": true}},
                           {"name": "side", "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}]}));
        let refused = refusals(&base, "prefill", "production", "team-a", &boundary());
        assert_eq!(refused.len(), 1, "{refused:?}");
        for part in [
            "hostPath volume \"root\"",
            "host's network",
            "privileged container \"vllm\"",
            "capabilities added to container \"side\"",
        ] {
            assert!(refused[0].contains(part), "{part}: {refused:?}");
        }
        // Same namespace: the base's editor could run such pods there anyway.
        assert!(refusals(&base, "prefill", "team-a", "team-a", &boundary()).is_empty());
    }
}
