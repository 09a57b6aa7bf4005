//! Retry delays for RSGs stuck on a problem the user has to fix (a missing target, a taken
//! name): exponential, capped, and spread out per RSG so that a thousand RSGs waiting for
//! their targets do not all ask the API server at the same moment.

use std::time::Duration;

/// The first retry after a problem.
pub const FIRST_RETRY: Duration = Duration::from_secs(30);
/// The longest wait between two retries.
pub const MAX_RETRY: Duration = Duration::from_secs(300);

fn fnv1a(text: &str, round: u32) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes().chain(round.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The delay before the RSG `key`, stuck on a problem for `stuck` so far, is looked at
/// again: as long as it has been stuck (so retries come 30 s, 30 s, 1, 2, 4 minutes apart),
/// at least 30 s and at most 5 minutes, each within ±20 % by a spread fixed per RSG and
/// step. Reconciles that changes trigger in between do not lengthen it.
pub fn problem_retry(key: &str, stuck: Duration) -> Duration {
    let base = stuck.clamp(FIRST_RETRY, MAX_RETRY);
    let step = u32::try_from(stuck.as_secs() / FIRST_RETRY.as_secs()).unwrap_or(u32::MAX);
    // A fraction in [0, 1) from the hash: 0.8 .. 1.2 of the base.
    let fraction = (fnv1a(key, step) >> 11) as f64 / (1u64 << 53) as f64;
    base.mul_f64(0.8 + 0.4 * fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_follow_how_long_the_rsg_has_been_stuck_up_to_the_cap() {
        let within = |d: Duration, base: u64| {
            d >= Duration::from_secs(base).mul_f64(0.8)
                && d <= Duration::from_secs(base).mul_f64(1.2)
        };
        for (stuck, base) in [
            (0, 30),
            (10, 30),
            (30, 30),
            (60, 60),
            (120, 120),
            (240, 240),
            (600, 300),
            (86_400, 300),
        ] {
            let delay = problem_retry("ns/rsg", Duration::from_secs(stuck));
            assert!(within(delay, base), "stuck {stuck}s: {delay:?}");
        }
    }

    #[test]
    fn rsgs_are_spread_out() {
        let delays: std::collections::BTreeSet<u128> = (0..100)
            .map(|i| problem_retry(&format!("ns/rsg-{i}"), Duration::ZERO).as_millis())
            .collect();
        assert!(delays.len() > 90, "only {} distinct delays", delays.len());
        let (min, max) = (delays.first().copied(), delays.last().copied());
        assert!(min < Some(26_000) && max > Some(34_000), "{min:?}..{max:?}");
        let stuck = Duration::from_secs(100);
        assert_eq!(
            problem_retry("ns/a", stuck),
            problem_retry("ns/a", stuck),
            "stable per RSG"
        );
    }
}
