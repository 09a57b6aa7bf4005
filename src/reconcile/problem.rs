//! Problems the user has to fix: reported in the Ready condition and retried later, never
//! failures of the reconcile itself.

use std::fmt;

use super::conditions::reason;
use crate::api::{LABEL_NAME, MAX_FOLLOWER_REPLICAS};

/// An operation on an object and what it was answered: `{doing}: {error}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// What rsg was doing, naming the object (`reading leader Deployment team/l`).
    pub doing: String,
    /// What the API server (or the client) said.
    pub error: String,
}

impl Failure {
    /// `doing`, which failed with `error`.
    pub fn new(doing: impl Into<String>, error: impl fmt::Display) -> Self {
        Self {
            doing: doing.into(),
            error: error.to_string(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.doing, self.error)
    }
}

/// A workload, or its kind, that is not there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotFound {
    /// The InplaceScaling leader, as `Kind namespace/name`.
    Leader(String),
    /// An InplaceScaling follower, as `Kind namespace/name`.
    Follower(String),
    /// The base workload (`Kind namespace/name`) of the GroupReplication target `target`.
    Target {
        /// The target's name in the RSG.
        target: String,
        /// Its workload.
        workload: String,
    },
    /// The API server does not serve the workload's kind.
    KindNotServed(Failure),
}

impl fmt::Display for NotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Leader(leader) => write!(f, "leader resource not found: {leader}"),
            Self::Follower(follower) => write!(f, "follower resource not found: {follower}"),
            Self::Target { target, workload } => {
                write!(f, "target {target:?}: {workload} not found")
            }
            Self::KindNotServed(failure) => failure.fmt(f),
        }
    }
}

/// What an object of a taken name would have been.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TakenFor {
    /// The snapshot of the target `target`.
    Snapshot {
        /// The target's name in the RSG.
        target: String,
    },
    /// A copy in group `group` of the RSG `rsg_name`.
    GroupCopy {
        /// The RSG.
        rsg_name: String,
        /// The group that is not created.
        group: i32,
    },
}

/// Why a ConfigMap value cannot be a baseline (said on the RSG).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BaselineError {
    /// A count above what rsg ever sets.
    #[error("ConfigMap key {key:?} holds {count}, more than the {MAX_FOLLOWER_REPLICAS} replicas rsg sets on a workload; new groups of this target (and group 0 restored from zero) wait until it is fixed")]
    OverCap {
        /// The ConfigMap key.
        key: String,
        /// The count it holds.
        count: i32,
    },
    /// Not a non-negative integer.
    #[error("ConfigMap key {key:?} holds {quoted:?}, which is not a non-negative integer; new groups of this target wait until it is fixed")]
    NotACount {
        /// The ConfigMap key.
        key: String,
        /// The value, at most 32 characters of it.
        quoted: String,
    },
}

/// A problem the user has to fix; reported as a condition, retried later. Its `Display` is
/// the message shown in the condition, the Event and the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A target workload or its kind does not exist.
    TargetNotFound(NotFound),
    /// An object with the name rsg would create was not made by this RSG.
    NameConflict {
        /// The object there, as `Kind namespace/name`.
        object: String,
        /// What rsg would have made under that name.
        taken_for: TakenFor,
    },
    /// The API server refused an operation (RBAC).
    Forbidden(Failure),
    /// A baseline value is not a non-negative integer, or is over the cap.
    InvalidReplicaConfig(BaselineError),
    /// A follower would need more replicas than rsg ever sets.
    ReplicasOverCap {
        /// The follower, as `Kind namespace/name`.
        follower: String,
        /// The leader's replicas.
        leader_replicas: i32,
        /// The follower's followRatio.
        ratio: i32,
        /// Their product.
        wanted: i64,
    },
    /// A base's pod template would give copies an identity or node access no copy may have:
    /// one entry per refused part.
    CopyIdentityRefused(Vec<String>),
    /// A workload call failed for another reason; looked at again soon.
    ApiError(Failure),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TargetNotFound(missing) => missing.fmt(f),
            Self::NameConflict {
                object,
                taken_for: TakenFor::Snapshot { target },
            } => write!(
                f,
                "{object} (the snapshot of target {target:?}) exists and was not made by this RSG; rename or delete it"
            ),
            Self::NameConflict {
                object,
                taken_for: TakenFor::GroupCopy { rsg_name, group },
            } => write!(
                f,
                "{object} exists and was not made by this RSG (no label {LABEL_NAME}={rsg_name}); group {group} is not created"
            ),
            Self::Forbidden(failure) | Self::ApiError(failure) => failure.fmt(f),
            Self::InvalidReplicaConfig(err) => err.fmt(f),
            Self::ReplicasOverCap {
                follower,
                leader_replicas,
                ratio,
                wanted,
            } => write!(
                f,
                "follower replicas over the cap: {follower} would need {leader_replicas} × {ratio} = {wanted} replicas, more than {MAX_FOLLOWER_REPLICAS}; left as it is"
            ),
            Self::CopyIdentityRefused(refusals) => f.write_str(&refusals.join("; ")),
        }
    }
}

impl Problem {
    /// The condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TargetNotFound(_) => reason::TARGET_NOT_FOUND,
            Self::NameConflict { .. } => reason::NAME_CONFLICT,
            Self::Forbidden(_) => reason::FORBIDDEN,
            Self::InvalidReplicaConfig(_) => reason::INVALID_REPLICA_CONFIG,
            Self::ReplicasOverCap { .. } => reason::REPLICAS_OVER_CAP,
            Self::CopyIdentityRefused(_) => reason::COPY_IDENTITY_REFUSED,
            Self::ApiError(_) => reason::API_ERROR,
        }
    }

    /// The words a log line starts with, as the troubleshooting guide searches for them.
    pub fn log_phrase(&self) -> &'static str {
        match self {
            Self::TargetNotFound(_) => "target resource not found",
            Self::NameConflict { .. } => "already exists",
            Self::Forbidden(_) => "forbidden",
            Self::InvalidReplicaConfig(_) => "invalid replica config",
            Self::ReplicasOverCap { .. } => "follower replicas over the cap",
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
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    (first, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_problem_renders_the_message_users_and_the_guide_know() {
        let cases = [
            (
                Problem::TargetNotFound(NotFound::Target {
                    target: "decode".into(),
                    workload: "Deployment team/absent".into(),
                }),
                "target \"decode\": Deployment team/absent not found",
            ),
            (
                Problem::TargetNotFound(NotFound::Follower("Deployment team/worker".into())),
                "follower resource not found: Deployment team/worker",
            ),
            (
                Problem::NameConflict {
                    object: "Deployment team/pd-1".into(),
                    taken_for: TakenFor::GroupCopy {
                        rsg_name: "pd".into(),
                        group: 1,
                    },
                },
                "Deployment team/pd-1 exists and was not made by this RSG (no label rsg.io/name=pd); group 1 is not created",
            ),
            (
                Problem::NameConflict {
                    object: "ControllerRevision team/pd-prefill".into(),
                    taken_for: TakenFor::Snapshot {
                        target: "prefill".into(),
                    },
                },
                "ControllerRevision team/pd-prefill (the snapshot of target \"prefill\") exists and was not made by this RSG; rename or delete it",
            ),
            (
                Problem::Forbidden(Failure::new("creating Service team/pd-1", "denied")),
                "creating Service team/pd-1: denied",
            ),
            (
                Problem::ReplicasOverCap {
                    follower: "Deployment team/worker".into(),
                    leader_replicas: 6000,
                    ratio: 2,
                    wanted: 12000,
                },
                "follower replicas over the cap: Deployment team/worker would need 6000 × 2 = 12000 replicas, more than 10000; left as it is",
            ),
            (
                Problem::CopyIdentityRefused(vec!["one".into(), "two".into()]),
                "one; two",
            ),
        ];
        for (problem, message) in cases {
            assert_eq!(problem.to_string(), message, "{problem:?}");
        }
    }

    #[test]
    fn the_condition_takes_the_first_reason_and_every_message() {
        let problems = [
            Problem::TargetNotFound(NotFound::Leader("Deployment team/l".into())),
            Problem::ApiError(Failure::new(
                "reading follower Deployment team/f",
                "timeout",
            )),
        ];
        assert_eq!(
            problems_condition(&problems),
            (
                reason::TARGET_NOT_FOUND,
                "leader resource not found: Deployment team/l; reading follower Deployment team/f: timeout".to_string()
            )
        );
    }
}
