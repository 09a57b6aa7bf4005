//! Whether the requester may do themselves what an RSG asks rsg to do (see
//! [`crate::authorization`]), for the user in the AdmissionReview: one SubjectAccessReview
//! per (verb, resource, namespace) first, then, where that is not granted, one per named
//! object; run a few at a time and bounded in count and time.
//!
//! A review that cannot be made (API error, timeout) denies: the boundary fails closed.
//! Answers are kept a few seconds in the shared lookup cache, keyed by the whole identity
//! (user, uid, groups, extra) and permission: retries of one `apply` ask once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::authentication::v1::UserInfo;
use kube::core::ApiResource;
use kube::Client;

use super::lookup_cache::{LookupCache, LookupKey, LookupValue};
use super::lookups::{api_resource, LiveFindings};
use crate::api::ResourceScalingGroupSpec;
use crate::authorization::{
    deciding_answer, identity_key, named_to_ask, namespace_wide, needed_permissions, subject_may,
    Permission,
};
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

/// Asks (a few at a time, each within `timeout`) whether `user` holds each of `permissions`;
/// counts the reviews sent in `findings`.
async fn reviews(
    client: &Client,
    cache: &LookupCache,
    user: &UserInfo,
    permissions: BTreeSet<Permission>,
    timeout: Duration,
    findings: &mut AccessFindings,
) -> BTreeMap<Permission, Result<bool, String>> {
    let answers: Vec<(Permission, Result<bool, String>, bool)> = futures::stream::iter(permissions)
        .map(|permission| async move {
            let review = cached_review(client, cache, user, &permission);
            let (answer, asked) = match tokio::time::timeout(timeout, review).await {
                Ok(answered) => answered,
                Err(_) => (Err(format!("no answer within {timeout:?}")), true),
            };
            (permission, answer, asked)
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    answers
        .into_iter()
        .map(|(permission, answer, asked)| {
            findings.api_calls += usize::from(asked);
            (permission, answer)
        })
        .collect()
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
    // A right over every object of a kind in a namespace covers each named one: it is asked
    // first (once per verb, kind and namespace, and cached), so an author who may patch
    // Deployments in a namespace costs one review for all of its targets there. Only where
    // it is not granted are the named objects asked.
    let granted = |answer: &Result<bool, String>| matches!(answer, Ok(true));
    let wide = namespace_wide(&needed);
    let mut answers = reviews(client, cache, user, wide, timeout, &mut findings).await;
    let named = named_to_ask(&needed, &answers, granted);
    answers.extend(reviews(client, cache, user, named, timeout, &mut findings).await);
    for (path, permission) in needed {
        match deciding_answer(&answers, &permission, granted) {
            Some(Ok(true)) => {}
            Some(Ok(false)) => findings.errors.push(FieldError::forbidden(
                path,
                format!("user {who:?} cannot {permission}; an RSG may only ask rsg for what its author may do"),
            )),
            Some(Err(err)) => findings.errors.push(FieldError::forbidden(
                path,
                format!("could not verify that user {who:?} may {permission} ({err}); try again"),
            )),
            None => findings.errors.push(FieldError::forbidden(
                path,
                format!("could not verify that user {who:?} may {permission}; try again"),
            )),
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::mock_api::{access_reviews, context};
    use serde_json::json;

    /// An RSG in "team" over three Deployments of "team".
    fn three_targets() -> ResourceScalingGroupSpec {
        let targets = ["a", "b", "c"]
            .iter()
            .map(|name| json!({"name": name, "resourceRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}}))
            .collect();
        let strategy =
            json!({"type": "GroupReplication", "groupConfig": {"groupName": "g", "replicas": 2}});
        crate::fixtures::rsg("team", "pd", targets, strategy).spec
    }

    fn alice() -> UserInfo {
        UserInfo {
            username: Some("alice".into()),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_namespace_wide_right_is_asked_once_for_every_target() {
        let (ctx, recorded) = context(access_reviews(|_, _| true));
        let cache = LookupCache::new(Duration::from_secs(5), 100);
        let spec = three_targets();
        let findings = review_access(
            &ctx.client,
            &cache,
            &alice(),
            "team",
            &spec,
            Duration::from_secs(5),
        )
        .await;
        assert!(findings.errors.is_empty(), "{:?}", findings.errors);
        let reviewed = recorded.lines().len();
        assert_eq!(findings.api_calls, reviewed);
        let named = needed_permissions("team", &spec, |_| {
            Some(ApiResource::from_gvk(&WorkloadKind::Deployment.gvk()))
        });
        let wide: BTreeSet<Permission> = named.iter().map(|(_, p)| p.over_every_name()).collect();
        assert_eq!(reviewed, wide.len(), "{:?}", recorded.lines());
        assert!(
            reviewed < named.len(),
            "{reviewed} reviews for {} permissions",
            named.len()
        );
    }

    #[tokio::test]
    async fn rights_by_name_are_asked_by_name_and_each_missing_one_is_reported() {
        // May do everything to "a" and "b" by name, nothing namespace-wide, nothing to "c".
        let (ctx, _) = context(access_reviews(|_, name| name == "a" || name == "b"));
        let cache = LookupCache::new(Duration::from_secs(5), 100);
        let findings = review_access(
            &ctx.client,
            &cache,
            &alice(),
            "team",
            &three_targets(),
            Duration::from_secs(5),
        )
        .await;
        let messages: Vec<String> = findings.errors.iter().map(|e| e.to_string()).collect();
        assert!(
            !messages.is_empty()
                && messages
                    .iter()
                    .all(|m| !m.contains("\"a\"") && !m.contains("\"b\"")),
            "{messages:?}"
        );
        assert!(
            messages
                .iter()
                .any(|m| m.contains("deployments.apps \"c\"")),
            "{messages:?}"
        );
    }

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
