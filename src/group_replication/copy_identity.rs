//! What a copy may run as. A copy runs in the RSG's namespace with the pod template of its
//! base, so whoever edits the base chooses the identity and the host access of pods in
//! another namespace. Two things no base may bring into a copy, whoever edits it:
//! * in rsg's own namespace, rsg's own ServiceAccount and rsg's own Secrets (its webhook
//!   certificate, its Prometheus token);
//! * when the base lives in another namespace than the RSG, access to the node: `hostPath`
//!   volumes, the host's network, PID or IPC namespace, privileged containers and added
//!   capabilities.
//!
//!
//! And when the base lives in another namespace, its copies use only the ServiceAccount,
//! Secrets, ConfigMaps and PersistentVolumeClaims of the RSG's namespace that the RSG's
//! author approved in the target's `copyIdentity` (checked, at admission and by the
//! controller, against the author's own rights): an editor of the base cannot move the
//! copies onto other identities.
//!
//! A snapshot that brings any of these is refused before any group is built from it: the RSG
//! reports why and waits until the base is fixed or the identity approved.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::api::CopyIdentity;
use crate::boundary::TargetBoundary;
use crate::workload::{pod_spec_identities, template_pointers, ReferencedObject};

/// What a pod spec uses of its namespace, by kind: its ServiceAccount (but `default`) and the
/// names of its Secrets, ConfigMaps and PersistentVolumeClaims, optional ones included.
#[derive(Default)]
struct Uses {
    service_account: Option<String>,
    secrets: BTreeSet<String>,
    config_maps: BTreeSet<String>,
    claims: BTreeSet<String>,
}

fn uses(pod: &Value) -> Uses {
    let mut found = Uses::default();
    for object in pod_spec_identities(pod) {
        match object {
            ReferencedObject::ServiceAccount(name) => found.service_account = Some(name),
            ReferencedObject::Secret(name) => {
                found.secrets.insert(name);
            }
            ReferencedObject::ConfigMap(name) => {
                found.config_maps.insert(name);
            }
            ReferencedObject::PersistentVolumeClaim(name) => {
                found.claims.insert(name);
            }
        }
    }
    found
}

/// What `used` takes of its namespace that `approved` does not list, in words.
fn unapproved(used: &Uses, approved: Option<&CopyIdentity>) -> Vec<String> {
    let none = CopyIdentity::default();
    let approved = approved.unwrap_or(&none);
    let mut found = Vec::new();
    if let Some(account) = used
        .service_account
        .as_deref()
        .filter(|account| approved.service_account_name.as_deref() != Some(*account))
    {
        found.push(format!("ServiceAccount {account:?}"));
    }
    for (kind, names, listed) in [
        ("Secrets", &used.secrets, &approved.secrets),
        ("ConfigMaps", &used.config_maps, &approved.config_maps),
        (
            "PersistentVolumeClaims",
            &used.claims,
            &approved.persistent_volume_claims,
        ),
    ] {
        let missing: Vec<&String> = names.iter().filter(|name| !listed.contains(name)).collect();
        if !missing.is_empty() {
            found.push(format!("{kind} {missing:?}"));
        }
    }
    found
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
/// `base_namespace` and the copies in `rsg_namespace`, with the identities `approved` for
/// them; empty when they may.
pub fn refusals(
    snapshot: &Value,
    (target, approved): (&str, Option<&CopyIdentity>),
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
            let own: Vec<String> = uses(pod)
                .secrets
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
            let unapproved = unapproved(&uses(pod), approved);
            if !unapproved.is_empty() {
                refused.push(format!(
                    "target {target:?}: its base in namespace {base_namespace:?} would have copies in {rsg_namespace:?} use {}, which this RSG has not approved; list them in the target's copyIdentity (rsg checks that you may use them) or change the base",
                    unapproved.join(", ")
                ));
            }
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
    fn a_base_elsewhere_is_copied_with_the_identities_the_rsg_approved() {
        let base = deployment(json!({"serviceAccountName": "engine",
            "volumes": [{"name": "cache", "secret": {"secretName": "hf-token"}},
                        {"name": "models", "persistentVolumeClaim": {"claimName": "models"}}],
            "containers": [{"name": "vllm", "image": "vllm:1",
                "envFrom": [{"configMapRef": {"name": "engine-config"}}]}]}));
        let approved = CopyIdentity {
            service_account_name: Some("engine".into()),
            secrets: vec!["hf-token".into()],
            config_maps: vec!["engine-config".into()],
            persistent_volume_claims: vec!["models".into()],
        };
        let refusals_with = |approved: Option<&CopyIdentity>| {
            refusals(
                &base,
                ("prefill", approved),
                "production",
                "scaling-system",
                &boundary(),
            )
        };
        assert!(refusals_with(Some(&approved)).is_empty());
        let refused = refusals_with(None);
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(
            refused[0].contains(r#"use ServiceAccount "engine", Secrets ["hf-token"], ConfigMaps ["engine-config"], PersistentVolumeClaims ["models"], which this RSG has not approved"#),
            "{refused:?}"
        );
        // Approving one Secret does not approve another.
        let partly = CopyIdentity {
            secrets: vec!["other".into()],
            ..approved.clone()
        };
        let refused = refusals_with(Some(&partly));
        assert!(
            refused[0].contains(r#"use Secrets ["hf-token"], which"#),
            "{refused:?}"
        );
        // In its own namespace a base's editor could run such pods anyway: nothing to approve.
        assert!(refusals(&base, ("prefill", None), "team-a", "team-a", &boundary()).is_empty());
        // The namespace's default ServiceAccount needs no approval.
        let plain =
            deployment(json!({"serviceAccountName": "default", "containers": [{"name": "c"}]}));
        assert!(refusals(&plain, ("p", None), "production", "team-a", &boundary()).is_empty());
    }

    #[test]
    fn rsgs_own_identity_never_reaches_a_copy_in_its_namespace() {
        let base = deployment(json!({"serviceAccountName": "rsg",
            "volumes": [{"name": "tls", "secret": {"secretName": "rsg-webhook-tls", "optional": true}}],
            "containers": [{"name": "vllm", "image": "vllm:1"}]}));
        let refused = refusals(
            &base,
            ("prefill", None),
            "production",
            "scaling-system",
            &boundary(),
        );
        assert_eq!(refused.len(), 3, "{refused:?}");
        assert!(
            refused[0].contains("rsg's own ServiceAccount \"rsg\""),
            "{refused:?}"
        );
        assert!(refused[1].contains("rsg-webhook-tls"), "{refused:?}");
        // Elsewhere, a ServiceAccount named rsg is another namespace's own identity.
        assert!(refusals(
            &base,
            ("prefill", None),
            "production",
            "team-a",
            &boundary()
        )
        .iter()
        .all(|r| !r.contains("rsg's own ServiceAccount")));
        let env_ref = deployment(json!({"containers": [{"name": "c",
            "env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "rsg-webhook-tls", "key": "tls.key"}}}]}]}));
        assert_eq!(
            refusals(
                &env_ref,
                ("p", None),
                "production",
                "scaling-system",
                &boundary()
            )
            .len(),
            2
        );
    }

    #[test]
    fn node_access_never_crosses_namespaces() {
        let base = deployment(json!({"hostNetwork": true,
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
            "containers": [{"name": "vllm", "securityContext": {"privileged": true}},
                           {"name": "side", "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}]}));
        let refused = refusals(
            &base,
            ("prefill", None),
            "production",
            "team-a",
            &boundary(),
        );
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
        assert!(refusals(&base, ("prefill", None), "team-a", "team-a", &boundary()).is_empty());
    }
}
