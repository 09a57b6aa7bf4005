//! Fair shares of the reconcile workers between namespaces (tenants).
//!
//! One namespace may hold at most a share of the workers at once (half of them).
//! A reconcile of an RSG whose namespace has used up its share does nothing and is looked
//! at again a moment later, so the free workers go to other namespaces: a thousand RSGs of
//! one tenant waiting on a slow Prometheus keep that tenant's share busy, and the others'
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
    /// Shares of at most `per_namespace` reconciles in flight for each namespace.
    pub fn new(per_namespace: usize) -> Self {
        Self {
            in_flight: Mutex::new(HashMap::new()),
            per_namespace: per_namespace.max(1),
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A turn for `namespace`, or `None` when its share is in use.
    pub fn try_enter(&self, namespace: &str) -> Option<Turn<'_>> {
        let mut counts = self.counts();
        let count = counts.entry(namespace.to_string()).or_default();
        if *count >= self.per_namespace {
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
    fn a_namespace_holds_at_most_its_share_and_others_still_get_turns() {
        let shares = NamespaceShares::new(2);
        let first = shares.try_enter("busy");
        let second = shares.try_enter("busy");
        assert!(first.is_some() && second.is_some());
        assert!(shares.try_enter("busy").is_none(), "over its share");
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
