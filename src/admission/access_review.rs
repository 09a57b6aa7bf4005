//! Whether the requester may do themselves what an RSG asks rsg to do (see
//! [`crate::authorization`]): one SubjectAccessReview per (verb, resource, namespace, name),
//! for the user in the AdmissionReview, run a few at a time and bounded in count and time.
//!
//! A review that cannot be made (API error, timeout) denies: the boundary fails closed.
//! Answers are kept a few seconds in the shared lookup cache, keyed by the whole identity
//! (user, uid, groups, extra) and permission: retries of one `apply` ask once.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::authentication::v1::UserInfo;
use kube::core::ApiResource;
use kube::Client;

use super::lookup_cache::{LookupCache, LookupKey, LookupValue};
use super::lookups::{api_resource, LiveFindings};
use crate::api::ResourceScalingGroupSpec;
use crate::authorization::{identity_key, needed_permissions, subject_may, Permission};
use crate::validation::FieldError;
use crate::workload::WorkloadKind;

/// Reviews sent at once.
const CONCURRENCY: usize = 8;
/// Reviews one request may need at most (32 targets × 3 verbs, with room).
const MAX_REVIEWS: usize = 128;

/// Who is asking, for messages: the user name.
fn requester(user: &UserInfo) -> String {
    user.username.clone().unwrap_or_default()
}

/// The cache key of `user` asking for `permission`.
fn access_key(user: &UserInfo, permission: &Permission) -> LookupKey {
    LookupKey::Access(identity_key(user, permission))
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
            subject_may(client, user, permission)
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

    #[test]
    fn cached_answers_are_keyed_by_the_whole_identity() {
        let permission = Permission {
            verb: "get",
            group: "apps".into(),
            resource: "deployments".into(),
            subresource: "",
            namespace: "a".into(),
            name: "prefill".into(),
        };
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
}
