//! Who an RSG acts for (spec §5e). With `failurePolicy: Ignore`, an RSG can be stored while
//! the webhooks are down, so the controller cannot take a stored spec as checked. rsg's
//! mutating webhook therefore records, in a signed annotation, who admitted the RSG's
//! current spec ([`record`]); the controller acts on an RSG only when that record verifies,
//! and only while the author it names still holds the rights the RSG uses
//! ([`author_rights`], re-checked every interval). The key lives in a Secret of rsg's own
//! namespace ([`key_secret`]).

pub mod author_rights;
pub mod key_secret;
pub mod record;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::UserInfo;
use kube::core::ApiResource;
use kube::{Client, ResourceExt};

pub use author_rights::{AuthorChecks, AuthorVerdict};
pub use key_secret::{load_or_create, KeyError};
pub use record::{sign, verify, AdmissionKey, RecordError};

use crate::api::{ResourceScalingGroup, ANNOTATION_ADMISSION_RECORD};
use crate::authorization::needed_permissions;

/// What the controller may do for an RSG.
#[derive(Debug, PartialEq)]
pub enum Authorization {
    /// Act; ask again within `recheck_in`.
    Granted {
        /// Time until the author's rights are due for a re-check.
        recheck_in: Duration,
    },
    /// No record vouches for the current spec.
    NotAdmitted(RecordError),
    /// The recorded author lacks rights the RSG uses.
    AuthorDenied {
        /// The recorded author.
        author: UserInfo,
        /// What is missing, one message each.
        missing: Vec<String>,
    },
    /// The author's rights could not be verified now.
    Unverified(String),
}

/// The controller's half of authorship: the key and the author re-checks.
pub struct Authorship {
    key: Arc<AdmissionKey>,
    checks: AuthorChecks,
}

impl Authorship {
    /// Verifies records with `key`; re-checks authors every `recheck_interval`.
    pub fn new(key: Arc<AdmissionKey>, recheck_interval: Duration) -> Self {
        Self {
            key,
            checks: AuthorChecks::new(recheck_interval),
        }
    }

    /// How long an author's rights are trusted before they are asked again.
    pub fn recheck_interval(&self) -> Duration {
        self.checks.interval()
    }

    /// Whether `rsg`'s admission record verifies for its current spec (the author's rights
    /// are not asked): a claim of an RSG no admission vouched for never blocks another.
    pub fn is_admitted(&self, rsg: &ResourceScalingGroup) -> bool {
        self.verified_author(rsg).is_ok()
    }

    fn verified_author(&self, rsg: &ResourceScalingGroup) -> Result<UserInfo, RecordError> {
        let annotation = rsg
            .annotations()
            .get(ANNOTATION_ADMISSION_RECORD)
            .map(String::as_str);
        verify(
            &self.key,
            &rsg.namespace().unwrap_or_default(),
            &rsg.name_any(),
            &rsg.spec,
            annotation,
        )
    }

    /// Whether rsg may act for `rsg` now. `resource_of(i)` gives target `i`'s API resource.
    pub async fn authorize(
        &self,
        client: &Client,
        rsg: &ResourceScalingGroup,
        resource_of: impl Fn(usize) -> Option<ApiResource>,
    ) -> Authorization {
        let author = match self.verified_author(rsg) {
            Ok(author) => author,
            Err(err) => return Authorization::NotAdmitted(err),
        };
        let namespace = rsg.namespace().unwrap_or_default();
        let needed = needed_permissions(&namespace, &rsg.spec, resource_of);
        match self.checks.check(client, &author, needed).await {
            AuthorVerdict::Allowed { recheck_in } => Authorization::Granted { recheck_in },
            AuthorVerdict::Denied(missing) => Authorization::AuthorDenied { author, missing },
            AuthorVerdict::Unverified(why) => Authorization::Unverified(why),
        }
    }
}
