//! Fair shares of the reconcile workers between namespaces (tenants).
//!
//! One namespace may always hold its share of the workers (half of them). Past its share it
//! may take more only while a reserve stays free for other namespaces (a quarter of the
//! workers), so a lone namespace's fleet gets three quarters of the workers and a namespace
//! that arrives later still finds a worker at once. A reconcile of an RSG whose namespace
//! cannot take a turn does nothing and is looked at again a moment later: a thousand RSGs of
//! one tenant waiting on a slow Prometheus keep that tenant's workers busy, and the others'
//! RSGs still find a worker within seconds.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::Duration;

/// Reconciles in flight per namespace, bounded.
#[derive(Debug)]
pub struct NamespaceShares {
    in_flight: Mutex<HashMap<String, usize>>,
    per_namespace: usize,
    /// Past its share, a namespace takes a turn only while fewer than this many reconciles
    /// are in flight in all: the workers less the reserve kept for other namespaces.
    over_share_limit: usize,
}

/// A namespace's turn on a worker: held while the reconcile runs, given back on drop.
#[derive(Debug)]
pub struct Turn<'a> {
    shares: &'a NamespaceShares,
    namespace: String,
}

/// How soon an RSG whose namespace had no free share is looked at again: a second, spread
/// over up to another second by its name so that the deferred RSGs do not return together.
pub fn retry_after_deferral(namespace: &str, name: &str) -> Duration {
    let mut hasher = DefaultHasher::new();
    (namespace, name).hash(&mut hasher);
    Duration::from_millis(1000 + hasher.finish() % 1000)
}

impl NamespaceShares {
    /// Shares of `per_namespace` reconciles in flight for each namespace among `workers`;
    /// beyond it a namespace may use idle workers up to `workers - reserve` in flight in all.
    pub fn new(workers: usize, per_namespace: usize, reserve: usize) -> Self {
        let per_namespace = per_namespace.max(1);
        Self {
            in_flight: Mutex::new(HashMap::new()),
            per_namespace,
            over_share_limit: workers.saturating_sub(reserve).max(per_namespace),
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A turn for `namespace`, or `None` when its share is in use and the idle workers are
    /// down to the reserve.
    pub fn try_enter(&self, namespace: &str) -> Option<Turn<'_>> {
        let mut counts = self.counts();
        let total: usize = counts.values().sum();
        let count = counts.entry(namespace.to_string()).or_default();
        if *count >= self.per_namespace && total >= self.over_share_limit {
            return None;
        }
        *count += 1;
        Some(Turn {
            shares: self,
            namespace: namespace.to_string(),
        })
    }

    /// Reconciles of `namespace` in flight.
    #[cfg(test)]
    pub fn in_flight(&self, namespace: &str) -> usize {
        self.counts().get(namespace).copied().unwrap_or_default()
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut counts = self.shares.counts();
        if let Some(count) = counts.get_mut(&self.namespace) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.namespace);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_past_its_share_with_the_rest_busy_waits_and_others_still_get_turns() {
        // Four workers, shares of two, no reserve: past its share only while workers idle.
        let shares = NamespaceShares::new(4, 2, 0);
        let neighbour = [shares.try_enter("neighbour"), shares.try_enter("neighbour")];
        let first = shares.try_enter("busy");
        let second = shares.try_enter("busy");
        assert!(first.is_some() && second.is_some());
        assert!(
            shares.try_enter("busy").is_none(),
            "over its share, no worker idle"
        );
        drop(neighbour);
        let other = shares.try_enter("quiet");
        assert!(other.is_some(), "another namespace is not held back");
        drop(first);
        assert_eq!(shares.in_flight("busy"), 1);
        assert!(
            shares.try_enter("busy").is_some(),
            "a turn given back is free again"
        );
        drop(other);
        assert_eq!(shares.in_flight("quiet"), 0);
    }

    #[test]
    fn a_lone_namespace_uses_idle_workers_but_leaves_the_reserve_to_others() {
        // Eight workers, shares of four, a reserve of two.
        let shares = NamespaceShares::new(8, 4, 2);
        let busy: Vec<_> = (0..6).map(|_| shares.try_enter("busy")).collect();
        assert!(
            busy.iter().all(Option::is_some),
            "past its share into idle workers"
        );
        assert!(shares.try_enter("busy").is_none(), "the reserve stays free");
        let quiet = [shares.try_enter("quiet"), shares.try_enter("quiet")];
        assert!(quiet.iter().all(Option::is_some), "others find the reserve");
        assert!(
            shares.try_enter("quiet").is_some(),
            "and their own share, the busy one being past its"
        );
        drop(busy);
        assert_eq!(shares.in_flight("busy"), 0);
    }

    #[test]
    fn deferred_rsgs_come_back_within_two_seconds_spread_by_name() {
        let delays: Vec<Duration> = (0..50)
            .map(|i| retry_after_deferral("busy", &format!("rsg-{i}")))
            .collect();
        assert!(delays
            .iter()
            .all(|d| (Duration::from_secs(1)..Duration::from_secs(2)).contains(d)));
        assert!(delays.iter().any(|d| *d != delays[0]), "{delays:?}");
        assert_eq!(
            retry_after_deferral("busy", "rsg-1"),
            retry_after_deferral("busy", "rsg-1")
        );
    }
}
