//! What an RSG's author must be allowed to do themselves, and the SubjectAccessReview that
//! asks the API server whether a user may. Admission checks the requester with it; the
//! controller re-checks the author its admission record names.
//!
//! * GroupReplication: `get` and `patch` every target in its namespace, and `create` its kind
//!   in the RSG's namespace (copies run there).
//! * InplaceScaling: `get` every workload and `update` its `scale` subresource.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::api::authentication::v1::UserInfo;
use k8s_openapi::api::authorization::v1::{
    LocalSubjectAccessReview, ResourceAttributes, SubjectAccessReviewSpec,
};
use kube::api::ObjectMeta;
use kube::api::PostParams;
use kube::core::ApiResource;
use kube::{Api, Client};

use crate::api::{
    CopyIdentity, ResourceScalingGroupSpec, STRATEGY_GROUP_REPLICATION, STRATEGY_INPLACE_SCALING,
};

/// One permission the requester must have.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Permission {
    /// `get`, `patch`, `create` or `update`.
    pub verb: &'static str,
    /// API group of the resource.
    pub group: String,
    /// Plural resource name.
    pub resource: String,
    /// `scale`, or empty.
    pub subresource: &'static str,
    /// Namespace it applies in.
    pub namespace: String,
    /// Object name (empty for `create`).
    pub name: String,
}

impl Permission {
    /// This permission over every object of its kind in its namespace: a right that covers
    /// each named one, so it is asked first (one review for all of an author's targets there).
    pub fn over_every_name(&self) -> Permission {
        Permission {
            name: String::new(),
            ..self.clone()
        }
    }
}

/// The rights to ask first for `needed`: each over every name in its namespace. One answer
/// covers all of an author's named objects of a kind there.
pub fn namespace_wide(needed: &[(String, Permission)]) -> BTreeSet<Permission> {
    needed.iter().map(|(_, p)| p.over_every_name()).collect()
}

/// The named permissions of `needed` whose namespace-wide right `answers` did not grant
/// (`granted` tells a granting answer): these are asked by name.
pub fn named_to_ask<A>(
    needed: &[(String, Permission)],
    answers: &BTreeMap<Permission, A>,
    granted: impl Fn(&A) -> bool,
) -> BTreeSet<Permission> {
    needed
        .iter()
        .map(|(_, p)| p)
        .filter(|p| !p.name.is_empty() && !answers.get(&p.over_every_name()).is_some_and(&granted))
        .cloned()
        .collect()
}

/// The answer that decides `permission`: its namespace-wide right when that was granted,
/// else its own.
pub fn deciding_answer<'a, A>(
    answers: &'a BTreeMap<Permission, A>,
    permission: &Permission,
    granted: impl Fn(&A) -> bool,
) -> Option<&'a A> {
    answers
        .get(&permission.over_every_name())
        .filter(|answer| granted(answer))
        .or_else(|| answers.get(permission))
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let resource = match (self.group.as_str(), self.subresource) {
            ("", "") => self.resource.clone(),
            ("", sub) => format!("{}/{sub}", self.resource),
            (group, "") => format!("{}.{group}", self.resource),
            (group, sub) => format!("{}.{group}/{sub}", self.resource),
        };
        write!(f, "{} {resource}", self.verb)?;
        if !self.name.is_empty() {
            write!(f, " {:?}", self.name)?;
        }
        write!(f, " in namespace {:?}", self.namespace)
    }
}

/// The permissions an RSG needs of its author, each with the field path that asks for it.
/// `resource_of` gives a target's API resource.
pub fn needed_permissions(
    rsg_namespace: &str,
    spec: &ResourceScalingGroupSpec,
    resource_of: impl Fn(usize) -> Option<ApiResource>,
) -> Vec<(String, Permission)> {
    let mut needed: Vec<(String, Permission)> = Vec::new();
    let mut seen = BTreeSet::new();
    let replicating = spec.scaling_strategy.type_ == STRATEGY_GROUP_REPLICATION;
    let inplace = spec.scaling_strategy.type_ == STRATEGY_INPLACE_SCALING;
    for (i, target) in spec.target_resources.iter().enumerate() {
        let Some(ar) = resource_of(i) else { continue };
        let reference = &target.resource_ref;
        let namespace = reference.namespace_or(rsg_namespace);
        let permission = |verb, subresource, namespace: &str, name: &str| Permission {
            verb,
            group: ar.group.clone(),
            resource: ar.plural.clone(),
            subresource,
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        let mut wanted = Vec::new();
        if replicating {
            wanted.push(permission("get", "", namespace, &reference.name));
            wanted.push(permission("patch", "", namespace, &reference.name));
            wanted.push(permission("create", "", rsg_namespace, ""));
        } else if inplace {
            wanted.push(permission("get", "", namespace, &reference.name));
            wanted.push(permission("update", "scale", namespace, &reference.name));
        }
        for p in wanted {
            if seen.insert(p.clone()) {
                needed.push((format!("spec.targetResources[{i}].resourceRef"), p));
            }
        }
        if replicating {
            for p in identity_permissions(rsg_namespace, target.copy_identity.as_ref()) {
                if seen.insert(p.clone()) {
                    needed.push((format!("spec.targetResources[{i}].copyIdentity"), p));
                }
            }
        }
    }
    needed
}

/// What using the approved identities of a copy needs in the RSG's namespace: minting a
/// token of the ServiceAccount (which running as it amounts to), and reading each Secret,
/// ConfigMap and PersistentVolumeClaim.
fn identity_permissions(rsg_namespace: &str, approved: Option<&CopyIdentity>) -> Vec<Permission> {
    let Some(approved) = approved else {
        return Vec::new();
    };
    let core = |verb, resource: &str, subresource, name: &str| Permission {
        verb,
        group: String::new(),
        resource: resource.to_string(),
        subresource,
        namespace: rsg_namespace.to_string(),
        name: name.to_string(),
    };
    let mut wanted = Vec::new();
    if let Some(account) = &approved.service_account_name {
        wanted.push(core("create", "serviceaccounts", "token", account));
    }
    for (resource, names) in [
        ("secrets", &approved.secrets),
        ("configmaps", &approved.config_maps),
        ("persistentvolumeclaims", &approved.persistent_volume_claims),
    ] {
        wanted.extend(names.iter().map(|name| core("get", resource, "", name)));
    }
    wanted
}

/// A key naming `user` asking for `permission`: every field of the identity counts, each
/// quoted (Debug) so that no two identities share a key (`extra` is a sorted map).
pub fn identity_key(user: &UserInfo, permission: &Permission) -> String {
    format!(
        "{:?}\u{0}{:?}\u{0}{:?}\u{0}{:?}\u{0}{permission:?}",
        user.username, user.uid, user.groups, user.extra
    )
}

/// Asks the API server whether `user` holds `permission`: one LocalSubjectAccessReview in
/// the permission's namespace (every permission rsg checks is namespaced), so an installation
/// confined to some namespaces needs the right only there.
pub async fn subject_may(
    client: &Client,
    user: &UserInfo,
    permission: &Permission,
) -> Result<bool, kube::Error> {
    let review = LocalSubjectAccessReview {
        metadata: ObjectMeta {
            namespace: Some(permission.namespace.clone()),
            ..Default::default()
        },
        spec: SubjectAccessReviewSpec {
            user: user.username.clone(),
            uid: user.uid.clone(),
            groups: user.groups.clone(),
            extra: user.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(permission.verb.to_string()),
                group: Some(permission.group.clone()),
                resource: Some(permission.resource.clone()),
                subresource: Some(permission.subresource.to_string()).filter(|s| !s.is_empty()),
                namespace: Some(permission.namespace.clone()),
                name: Some(permission.name.clone()).filter(|n| !n.is_empty()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<LocalSubjectAccessReview> = Api::namespaced(client.clone(), &permission.namespace);
    let answer = api.create(&PostParams::default(), &review).await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::WorkloadKind;

    fn spec(strategy: &str) -> ResourceScalingGroupSpec {
        let config = if strategy == STRATEGY_GROUP_REPLICATION {
            serde_json::json!({"type": strategy, "groupConfig": {"replicas": 2}})
        } else {
            serde_json::json!({"type": strategy, "leaderFollowerConfig": {
                "leader": {"resourceName": "a"}, "follower": [{"resourceName": "b", "followRatio": 2}]}})
        };
        serde_json::from_value(serde_json::json!({
            "targetResources": [
                {"name": "a", "resourceRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "prefill", "namespace": "production"}},
                {"name": "b", "resourceRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "decode"}},
            ],
            "scalingStrategy": config,
        }))
        .expect("a valid spec")
    }

    fn rendered(needed: &[(String, Permission)]) -> Vec<String> {
        needed
            .iter()
            .map(|(path, p)| format!("{path}: {p}"))
            .collect()
    }

    fn deployments(_: usize) -> Option<ApiResource> {
        WorkloadKind::Deployment.known_api_resource()
    }

    #[test]
    fn group_replication_needs_get_patch_of_targets_and_create_where_copies_run() {
        let needed = needed_permissions("tenant-a", &spec(STRATEGY_GROUP_REPLICATION), deployments);
        assert_eq!(
            rendered(&needed),
            [
                "spec.targetResources[0].resourceRef: get deployments.apps \"prefill\" in namespace \"production\"",
                "spec.targetResources[0].resourceRef: patch deployments.apps \"prefill\" in namespace \"production\"",
                "spec.targetResources[0].resourceRef: create deployments.apps in namespace \"tenant-a\"",
                "spec.targetResources[1].resourceRef: get deployments.apps \"decode\" in namespace \"tenant-a\"",
                "spec.targetResources[1].resourceRef: patch deployments.apps \"decode\" in namespace \"tenant-a\"",
            ]
        );
    }

    #[test]
    fn approved_copy_identities_need_the_rights_to_use_them_where_copies_run() {
        let mut with_identity = spec(STRATEGY_GROUP_REPLICATION);
        with_identity.target_resources[0].copy_identity = Some(CopyIdentity {
            service_account_name: Some("engine".into()),
            secrets: vec!["hf-token".into()],
            config_maps: vec!["engine-config".into()],
            persistent_volume_claims: vec!["models".into()],
        });
        let needed = needed_permissions("tenant-a", &with_identity, deployments);
        let identity: Vec<String> = rendered(&needed)
            .into_iter()
            .filter(|line| line.starts_with("spec.targetResources[0].copyIdentity"))
            .collect();
        assert_eq!(
            identity,
            [
                "spec.targetResources[0].copyIdentity: create serviceaccounts/token \"engine\" in namespace \"tenant-a\"",
                "spec.targetResources[0].copyIdentity: get secrets \"hf-token\" in namespace \"tenant-a\"",
                "spec.targetResources[0].copyIdentity: get configmaps \"engine-config\" in namespace \"tenant-a\"",
                "spec.targetResources[0].copyIdentity: get persistentvolumeclaims \"models\" in namespace \"tenant-a\"",
            ]
        );
    }

    #[test]
    fn inplace_scaling_needs_get_and_update_of_the_scale_subresource() {
        let needed = needed_permissions("tenant-a", &spec(STRATEGY_INPLACE_SCALING), deployments);
        assert_eq!(
            rendered(&needed),
            [
                "spec.targetResources[0].resourceRef: get deployments.apps \"prefill\" in namespace \"production\"",
                "spec.targetResources[0].resourceRef: update deployments.apps/scale \"prefill\" in namespace \"production\"",
                "spec.targetResources[1].resourceRef: get deployments.apps \"decode\" in namespace \"tenant-a\"",
                "spec.targetResources[1].resourceRef: update deployments.apps/scale \"decode\" in namespace \"tenant-a\"",
            ]
        );
    }

    #[test]
    fn unknown_kinds_are_skipped_and_every_target_is_listed() {
        assert!(
            needed_permissions("tenant-a", &spec(STRATEGY_GROUP_REPLICATION), |_| None).is_empty()
        );
        let mut big = spec(STRATEGY_GROUP_REPLICATION);
        big.target_resources = (0..100)
            .map(|i| {
                let mut t = big.target_resources[0].clone();
                t.resource_ref.name = format!("w{i}");
                t
            })
            .collect();
        // get + patch of each, and one create.
        assert_eq!(needed_permissions("tenant-a", &big, deployments).len(), 201);
    }
}
