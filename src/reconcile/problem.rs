//! Problems the user has to fix: reported in the Ready condition and retried later, never
//! failures of the reconcile itself.

use super::conditions::reason;

/// A problem the user has to fix; reported as a condition, retried later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A target workload or its kind does not exist.
    TargetNotFound(String),
    /// An object with a copy's name was not made by this RSG.
    NameConflict(String),
    /// The API server refused an operation.
    Forbidden(String),
    /// A baseline value is not a non-negative integer.
    InvalidReplicaConfig(String),
    /// A follower would need more replicas than rsg ever sets.
    ReplicasOverCap(String),
    /// A base's pod template would give copies an identity or node access no copy may have.
    CopyIdentityRefused(String),
    /// A workload call failed for another reason; looked at again soon.
    ApiError(String),
}

impl Problem {
    /// The condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TargetNotFound(_) => reason::TARGET_NOT_FOUND,
            Self::NameConflict(_) => reason::NAME_CONFLICT,
            Self::Forbidden(_) => reason::FORBIDDEN,
            Self::InvalidReplicaConfig(_) => reason::INVALID_REPLICA_CONFIG,
            Self::ReplicasOverCap(_) => reason::REPLICAS_OVER_CAP,
            Self::CopyIdentityRefused(_) => reason::COPY_IDENTITY_REFUSED,
            Self::ApiError(_) => reason::API_ERROR,
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        match self {
            Self::TargetNotFound(m)
            | Self::NameConflict(m)
            | Self::Forbidden(m)
            | Self::InvalidReplicaConfig(m)
            | Self::ReplicasOverCap(m)
            | Self::CopyIdentityRefused(m)
            | Self::ApiError(m) => m,
        }
    }

    /// The words a log line starts with, as the troubleshooting guide searches for them.
    pub fn log_phrase(&self) -> &'static str {
        match self {
            Self::TargetNotFound(_) => "target resource not found",
            Self::NameConflict(_) => "already exists",
            Self::Forbidden(_) => "forbidden",
            Self::InvalidReplicaConfig(_) => "invalid replica config",
            Self::ReplicasOverCap(_) => "follower replicas over the cap",
            Self::CopyIdentityRefused(_) => "copy identity refused",
            Self::ApiError(_) => "workload call failed",
        }
    }
}

/// The not-ready condition for `problems`: the first one's reason, every message.
pub fn problems_condition(problems: &[Problem]) -> (&'static str, String) {
    let first = problems
        .first()
        .map(Problem::reason)
        .unwrap_or(reason::PROGRESSING);
    let message = problems
        .iter()
        .map(Problem::message)
        .collect::<Vec<_>>()
        .join("; ");
    (first, message)
}
