//! The controller's re-check of an RSG's author: the permissions
//! [`needed_permissions`](crate::authorization::needed_permissions) lists, asked with
//! SubjectAccessReviews for the user the admission record names. Each answer is kept for the
//! re-check interval and shared by every RSG of the same author, so a right taken away stops
//! rsg within one interval, and a thousand RSGs of one author cost one review per permission
//! per interval.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::authentication::v1::UserInfo;
use kube::Client;

use crate::admission::{LookupCache, LookupKey, LookupValue};
use crate::authorization::{
    deciding_answer, identity_key, named_to_ask, namespace_wide, subject_may, Permission,
};

/// Reviews sent at once for one RSG.
const CONCURRENCY: usize = 8;
/// Bound on one review.
const REVIEW_TIMEOUT: Duration = Duration::from_secs(10);
/// Answers kept at most; past it the memory starts afresh.
const MAX_ANSWERS: usize = 100_000;

/// What the re-check found.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthorVerdict {
    /// Every permission holds; the oldest answer used is due again within `recheck_in`.
    Allowed {
        /// Time until the oldest answer used expires.
        recheck_in: Duration,
    },
    /// The author lacks these permissions (one message each, with the field that needs it).
    Denied(Vec<String>),
    /// A review could not be made (API error, timeout); nothing is assumed.
    Unverified(String),
}

/// Answers of recent reviews, by identity and permission (the cache admission keeps its
/// answers in, with the re-check interval as its ttl).
pub struct AuthorChecks {
    interval: Duration,
    answers: LookupCache,
}

impl AuthorChecks {
    /// Answers are trusted for `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            answers: LookupCache::new(interval, MAX_ANSWERS),
        }
    }

    /// How long an answer is trusted.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The answers for `permissions` (cached while fresh, else asked, a few at a time), each
    /// with when it was given.
    async fn answers_for(
        &self,
        client: &Client,
        author: &UserInfo,
        permissions: BTreeSet<Permission>,
    ) -> Result<BTreeMap<Permission, (bool, Instant)>, String> {
        let who = author.username.clone().unwrap_or_default();
        let asked: Vec<_> = futures::stream::iter(permissions)
            .map(|permission| async move {
                let key = LookupKey::Access(identity_key(author, &permission));
                let review = self.answers.get_or_read_dated(key, async {
                    subject_may(client, author, &permission)
                        .await
                        .map(LookupValue::Allowed)
                });
                let answer = tokio::time::timeout(REVIEW_TIMEOUT, review).await;
                (permission, answer)
            })
            .buffered(CONCURRENCY)
            .collect()
            .await;
        let mut answers = BTreeMap::new();
        for (permission, answer) in asked {
            match answer {
                Ok((Ok((LookupValue::Allowed(allowed), at)), _)) => {
                    answers.insert(permission, (allowed, at));
                }
                Ok((Ok(_), _)) => {
                    return Err(format!(
                        "could not verify that user {who:?} may {permission}: unexpected cache entry"
                    ))
                }
                Ok((Err(err), _)) => {
                    return Err(format!(
                        "could not verify that user {who:?} may {permission}: {err}"
                    ))
                }
                Err(_) => {
                    return Err(format!(
                        "could not verify that user {who:?} may {permission}: no answer within {REVIEW_TIMEOUT:?}"
                    ))
                }
            }
        }
        Ok(answers)
    }

    /// Whether `author` holds every permission of `needed`. A right over every object of a
    /// kind in a namespace covers each named one, so that is asked first: an author who may
    /// patch Deployments in a namespace costs one review for all of its targets there, not
    /// one per target; only where it is denied are the named objects asked.
    pub async fn check(
        &self,
        client: &Client,
        author: &UserInfo,
        needed: Vec<(String, Permission)>,
    ) -> AuthorVerdict {
        let now = Instant::now();
        let granted = |(allowed, _): &(bool, Instant)| *allowed;
        let wide = namespace_wide(&needed);
        let mut answers = match self.answers_for(client, author, wide).await {
            Ok(answers) => answers,
            Err(why) => return AuthorVerdict::Unverified(why),
        };
        let named = named_to_ask(&needed, &answers, granted);
        match self.answers_for(client, author, named).await {
            Ok(more) => answers.extend(more),
            Err(why) => return AuthorVerdict::Unverified(why),
        }
        let who = author.username.clone().unwrap_or_default();
        let mut oldest = now;
        let mut missing = Vec::new();
        for (path, permission) in &needed {
            match deciding_answer(&answers, permission, granted) {
                Some((true, at)) => oldest = oldest.min(*at),
                Some((false, at)) => {
                    oldest = oldest.min(*at);
                    missing.push(format!("{path}: user {who:?} cannot {permission}"));
                }
                None => missing.push(format!("{path}: user {who:?} cannot {permission}")),
            }
        }
        if missing.is_empty() {
            AuthorVerdict::Allowed {
                recheck_in: self.interval.saturating_sub(now.duration_since(oldest)),
            }
        } else {
            AuthorVerdict::Denied(missing)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::mock_api::{access_reviews, context};

    fn permission(verb: &'static str, namespace: &str, name: &str) -> (String, Permission) {
        (
            format!("spec.targetResources[{name}]"),
            Permission {
                verb,
                group: "apps".into(),
                resource: "deployments".into(),
                subresource: "",
                namespace: namespace.into(),
                name: name.into(),
            },
        )
    }

    fn alice() -> UserInfo {
        UserInfo {
            username: Some("alice".into()),
            ..Default::default()
        }
    }

    fn needed() -> Vec<(String, Permission)> {
        vec![
            permission("get", "prod", "a"),
            permission("patch", "prod", "a"),
            permission("get", "prod", "b"),
            permission("patch", "prod", "b"),
            permission("create", "team", ""),
        ]
    }

    #[tokio::test]
    async fn a_namespace_wide_right_covers_every_target_and_answers_are_reused() {
        let (ctx, recorded) = context(access_reviews(|_, _| true));
        let checks = AuthorChecks::new(Duration::from_secs(60));
        let verdict = checks.check(&ctx.client, &alice(), needed()).await;
        assert!(
            matches!(verdict, AuthorVerdict::Allowed { .. }),
            "{verdict:?}"
        );
        // get and patch in prod, create in team: three reviews for five permissions.
        assert_eq!(recorded.lines().len(), 3, "{:?}", recorded.lines());
        let again = checks.check(&ctx.client, &alice(), needed()).await;
        assert!(matches!(again, AuthorVerdict::Allowed { .. }));
        assert_eq!(
            recorded.lines().len(),
            3,
            "answers within the interval are reused"
        );
    }

    #[tokio::test]
    async fn where_the_namespace_is_denied_each_named_object_is_asked() {
        // May get and patch "a" by name only, and get everything.
        let (ctx, recorded) = context(access_reviews(|verb, name| verb != "patch" || name == "a"));
        let checks = AuthorChecks::new(Duration::from_secs(60));
        let verdict = checks.check(&ctx.client, &alice(), needed()).await;
        assert_eq!(
            verdict,
            AuthorVerdict::Denied(vec![
                r#"spec.targetResources[b]: user "alice" cannot patch deployments.apps "b" in namespace "prod""#.to_string()
            ])
        );
        // Three broad reviews, then patch of "a" and of "b".
        assert_eq!(recorded.lines().len(), 5, "{:?}", recorded.lines());
    }

    #[tokio::test]
    async fn a_review_that_fails_verifies_nothing() {
        let (ctx, _) = context(|_| crate::reconcile::mock_api::status(500, "InternalError"));
        let checks = AuthorChecks::new(Duration::from_secs(60));
        let verdict = checks.check(&ctx.client, &alice(), needed()).await;
        assert!(
            matches!(&verdict, AuthorVerdict::Unverified(why) if why.contains("could not verify that user \"alice\"")),
            "{verdict:?}"
        );
    }
}
