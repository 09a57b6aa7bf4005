//! What one look at the Lease means for this replica (no I/O).
//!
//! The rules are those of Kubernetes' own leader election: a holder's claim is trusted for
//! its lease duration counted from when this replica last saw the record change (local time,
//! so clocks need not agree); an empty holder means the lease was released.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::LeaseSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;

/// What to do with the Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// No Lease yet: create it holding it.
    Create,
    /// This replica holds it: renew.
    Renew,
    /// Free or expired: take it over.
    Acquire,
    /// Another replica holds it.
    Follow {
        /// Who holds it.
        holder: String,
    },
}

/// The part of a Lease record whose change proves its holder alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    holder: Option<String>,
    renew_time: Option<MicroTime>,
}

impl Fingerprint {
    /// The fingerprint of `spec`.
    pub fn of(spec: &LeaseSpec) -> Self {
        Self {
            holder: spec.holder_identity.clone().filter(|h| !h.is_empty()),
            renew_time: spec.renew_time.clone(),
        }
    }
}

/// Decides the step for `identity`, given the current Lease (if any) and how long its record
/// has been unchanged as seen by this replica.
pub fn decide(
    lease: Option<&LeaseSpec>,
    identity: &str,
    unchanged_for: Duration,
    default_duration: Duration,
) -> Step {
    let Some(spec) = lease else {
        return Step::Create;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder == identity {
        return Step::Renew;
    }
    if holder.is_empty() {
        return Step::Acquire;
    }
    let duration = spec
        .lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs)
        .unwrap_or(default_duration);
    if unchanged_for >= duration {
        Step::Acquire
    } else {
        Step::Follow {
            holder: holder.to_string(),
        }
    }
}

/// The record this replica writes for `step` (`Create`, `Renew` or `Acquire`).
pub fn claimed(
    previous: Option<&LeaseSpec>,
    step: &Step,
    identity: &str,
    duration: Duration,
    now: Timestamp,
) -> LeaseSpec {
    let seconds = i32::try_from(duration.as_secs()).unwrap_or(i32::MAX).max(1);
    let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
    let (acquire_time, transitions) = match (step, previous) {
        (Step::Renew, Some(previous)) => (previous.acquire_time.clone(), transitions),
        (Step::Acquire, _) => (Some(MicroTime(now)), transitions.saturating_add(1)),
        _ => (Some(MicroTime(now)), transitions),
    };
    LeaseSpec {
        holder_identity: Some(identity.to_string()),
        lease_duration_seconds: Some(seconds),
        acquire_time,
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    }
}

/// The record a stopping holder writes so that another replica takes over at once.
pub fn released(previous: &LeaseSpec, now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(String::new()),
        lease_duration_seconds: Some(1),
        renew_time: Some(MicroTime(now)),
        ..previous.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DURATION: Duration = Duration::from_secs(15);

    fn held_by(holder: &str, seconds: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(seconds),
            lease_transitions: Some(2),
            acquire_time: Some(MicroTime(Timestamp::MIN)),
            renew_time: Some(MicroTime(Timestamp::now())),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_missing_lease_is_created() {
        assert_eq!(decide(None, "a", Duration::ZERO, DURATION), Step::Create);
    }

    #[test]
    fn the_holder_renews_even_after_a_restart() {
        let lease = held_by("a", 15);
        assert_eq!(
            decide(Some(&lease), "a", Duration::ZERO, DURATION),
            Step::Renew
        );
    }

    #[test]
    fn another_live_holder_is_followed_until_its_lease_runs_out_unchanged() {
        let lease = held_by("b", 4);
        let follow = Step::Follow { holder: "b".into() };
        assert_eq!(
            decide(Some(&lease), "a", Duration::from_secs(3), DURATION),
            follow
        );
        assert_eq!(
            decide(Some(&lease), "a", Duration::from_secs(4), DURATION),
            Step::Acquire
        );
    }

    #[test]
    fn a_released_lease_is_taken_at_once() {
        let lease = released(&held_by("b", 15), Timestamp::now());
        assert_eq!(
            decide(Some(&lease), "a", Duration::ZERO, DURATION),
            Step::Acquire
        );
    }

    #[test]
    fn the_record_keeps_acquire_time_on_renew_and_counts_transitions_on_acquire() {
        let previous = held_by("b", 15);
        let now = Timestamp::now();
        let renewed = claimed(Some(&previous), &Step::Renew, "b", DURATION, now);
        assert_eq!(renewed.acquire_time, previous.acquire_time);
        assert_eq!(renewed.lease_transitions, Some(2));
        assert_eq!(renewed.renew_time, Some(MicroTime(now)));
        let taken = claimed(Some(&previous), &Step::Acquire, "a", DURATION, now);
        assert_eq!(taken.holder_identity.as_deref(), Some("a"));
        assert_eq!(taken.acquire_time, Some(MicroTime(now)));
        assert_eq!(taken.lease_transitions, Some(3));
        assert_eq!(taken.lease_duration_seconds, Some(15));
    }

    #[test]
    fn a_renewal_changes_the_fingerprint_and_a_release_empties_the_holder() {
        let lease = held_by("b", 15);
        let later = claimed(Some(&lease), &Step::Renew, "b", DURATION, Timestamp::now());
        assert_ne!(Fingerprint::of(&lease), Fingerprint::of(&later));
        assert_eq!(
            Fingerprint::of(&released(&lease, Timestamp::now())).holder,
            None
        );
    }
}
