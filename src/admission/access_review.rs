//! Whether the requester may do themselves what an RSG asks rsg to do: one
//! SubjectAccessReview per (verb, resource, namespace, name), for the user in the
//! AdmissionReview, run a few at a time and bounded in count and time.
//!
//! * GroupReplication: `get` and `patch` every target in its namespace, and `create` its kind
//!   in the RSG's namespace (copies run there).
//! * InplaceScaling: `get` every workload and `update` its `scale` subresource.
//!
//! A review that cannot be made (API error, timeout) denies: the boundary fails closed.
//! Answers are kept a few seconds in the shared lookup cache, keyed by the whole identity
//! (user, uid, groups, extra) and permission: retries of one `apply` ask once.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::authentication::v1::UserInfo;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::core::ApiResource;
use kube::{Api, Client};

use super::lookup_cache::{LookupCache, LookupKey, LookupValue};
use super::lookups::{api_resource, LiveFindings};
use crate::api::{ResourceScalingGroupSpec, STRATEGY_GROUP_REPLICATION, STRATEGY_INPLACE_SCALING};
use crate::validation::FieldError;
use crate::workload::WorkloadKind;

/// Reviews sent at once.
const CONCURRENCY: usize = 8;
/// Reviews one request may need at most (32 targets × 3 verbs, with room).
const MAX_REVIEWS: usize = 128;

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
    }
    needed
}

/// Who is asking, for messages: the user name.
fn requester(user: &UserInfo) -> String {
    user.username.clone().unwrap_or_default()
}

/// The cache key of `user` asking for `permission`: every field of the identity counts, each
/// quoted (Debug) so that no two identities share a key (`extra` is a sorted map).
fn access_key(user: &UserInfo, permission: &Permission) -> LookupKey {
    LookupKey::Access(format!(
        "{:?}\u{0}{:?}\u{0}{:?}\u{0}{:?}\u{0}{permission:?}",
        user.username, user.uid, user.groups, user.extra
    ))
}

/// Asks the API server (or the cache, for a few seconds) whether `user` holds `permission`;
/// returns the answer and whether the API server was asked.
async fn cached_review(
    client: &Client,
    cache: &LookupCache,
    user: &UserInfo,
    permission: &Permission,
) -> (Result<bool, String>, bool) {
    let (answer, asked) = cache
        .get_or_read(access_key(user, permission), async {
            review(client, user, permission)
                .await
                .map(LookupValue::Allowed)
        })
        .await;
    let answer = match answer {
        Ok(LookupValue::Allowed(allowed)) => Ok(allowed),
        Ok(_) => Err("unexpected cache entry".to_string()),
        Err(err) => Err(err.to_string()),
    };
    (answer, asked)
}

async fn review(
    client: &Client,
    user: &UserInfo,
    permission: &Permission,
) -> Result<bool, kube::Error> {
    let review = SubjectAccessReview {
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
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    let answer = api.create(&PostParams::default(), &review).await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// What the access reviews of one request found.
#[derive(Default)]
pub struct AccessFindings {
    /// One error per missing permission, naming the user, verb, resource and namespace.
    pub errors: Vec<FieldError>,
    /// SubjectAccessReviews sent (and discovery reads the lookup cache did not answer).
    pub api_calls: usize,
}

/// Checks that `user` holds every permission the RSG needs of its author. Targets whose kind
/// is unknown are skipped (static validation refuses them); a kind that discovery cannot
/// resolve is checked under its guessed plural, so the check still fails closed.
pub async fn review_access(
    client: &Client,
    cache: &LookupCache,
    user: &UserInfo,
    rsg_namespace: &str,
    spec: &ResourceScalingGroupSpec,
    timeout: Duration,
) -> AccessFindings {
    let mut lookups = LiveFindings::default();
    let mut resources = Vec::with_capacity(spec.target_resources.len());
    for target in &spec.target_resources {
        let reference = &target.resource_ref;
        let resource = match WorkloadKind::parse(&reference.api_version, &reference.kind) {
            Err(_) => None,
            Ok(kind) => match api_resource(client, cache, &mut lookups, &kind).await {
                Ok(Some(ar)) => Some(ar),
                _ => Some(ApiResource::from_gvk(&kind.gvk())),
            },
        };
        resources.push(resource);
    }
    let needed = needed_permissions(rsg_namespace, spec, |i| resources[i].clone());
    if needed.len() > MAX_REVIEWS {
        // Static validation caps the targets well below this; refuse rather than check part.
        return AccessFindings {
            errors: vec![FieldError::forbidden(
                "spec.targetResources",
                format!(
                    "{} permissions would have to be verified, more than {MAX_REVIEWS}",
                    needed.len()
                ),
            )],
            api_calls: lookups.api_calls,
        };
    }
    let mut findings = AccessFindings {
        api_calls: lookups.api_calls,
        ..Default::default()
    };
    let who = requester(user);
    let answers: Vec<(String, Permission, Result<bool, String>, bool)> =
        futures::stream::iter(needed)
            .map(|(path, permission)| async move {
                let review = cached_review(client, cache, user, &permission);
                let (answer, asked) = match tokio::time::timeout(timeout, review).await {
                    Ok(answered) => answered,
                    Err(_) => (Err(format!("no answer within {timeout:?}")), true),
                };
                (path, permission, answer, asked)
            })
            .buffered(CONCURRENCY)
            .collect()
            .await;
    for (path, permission, answer, asked) in answers {
        findings.api_calls += usize::from(asked);
        match answer {
            Ok(true) => {}
            Ok(false) => findings.errors.push(FieldError::forbidden(
                path,
                format!("user {who:?} cannot {permission}; an RSG may only ask rsg for what its author may do"),
            )),
            Err(err) => findings.errors.push(FieldError::forbidden(
                path,
                format!("could not verify that user {who:?} may {permission} ({err}); try again"),
            )),
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn cached_answers_are_keyed_by_the_whole_identity() {
        let permission = needed_permissions("a", &spec(STRATEGY_GROUP_REPLICATION), deployments)
            .remove(0)
            .1;
        let user = |name: &str, groups: &[&str]| UserInfo {
            username: Some(name.into()),
            groups: Some(groups.iter().map(|g| g.to_string()).collect()),
            ..Default::default()
        };
        let alice = access_key(&user("alice", &["team"]), &permission);
        assert_eq!(alice, access_key(&user("alice", &["team"]), &permission));
        assert_ne!(
            alice,
            access_key(&user("alice", &["system:masters"]), &permission)
        );
        assert_ne!(alice, access_key(&user("bob", &["team"]), &permission));
        let mut with_extra = user("alice", &["team"]);
        with_extra.extra = Some([("scopes".to_string(), vec!["x".to_string()])].into());
        assert_ne!(alice, access_key(&with_extra, &permission));
        // Values that would read alike once joined are different identities.
        let with = |extra: &[(&str, &[&str])]| {
            let mut u = user("alice", &["team"]);
            u.extra = Some(
                extra
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                    .collect(),
            );
            access_key(&u, &permission)
        };
        assert_ne!(with(&[("a", &["x,y"])]), with(&[("a", &["x", "y"])]));
        assert_ne!(with(&[("a=b", &["c"])]), with(&[("a", &["b=c"])]));
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
