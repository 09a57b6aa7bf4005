//! What admission's live checks read from the API server (and, with a longer ttl, the
//! controller's re-checks of RSG authors' rights), kept for a few seconds and shared by all
//! requests: a burst of reviews of the same RSG (an `apply`, its retries, an
//! autoscaler) reads each target, each namespace's Services and each referenced object once.
//! Warnings may so be a few seconds stale, and a permission taken from a user reaches admission
//! within the same few seconds. Bounded in entries; failed reads are not kept.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::core::ApiResource;
use serde_json::Value;

/// What was read.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LookupKey {
    /// The API resource of a kind, by `group/version/kind`.
    Discovery(String),
    /// A workload, by API resource plural, namespace and name.
    Workload(String, String, String),
    /// Whether an object exists, by kind, namespace and name.
    Exists(&'static str, String, String),
    /// The Services of a namespace (name and selector).
    Services(String),
    /// A SubjectAccessReview's answer, by requester identity and permission.
    Access(String),
}

/// A read's result.
#[derive(Clone, Debug)]
pub enum LookupValue {
    /// See [`LookupKey::Discovery`].
    Discovery(ApiResource),
    /// See [`LookupKey::Workload`]; `None` when it does not exist.
    Workload(Option<Value>),
    /// See [`LookupKey::Exists`].
    Exists(bool),
    /// See [`LookupKey::Services`].
    Services(Vec<ServiceSummary>),
    /// See [`LookupKey::Access`]: whether it is allowed.
    Allowed(bool),
}

/// What admission needs of a Service.
#[derive(Clone, Debug)]
pub struct ServiceSummary {
    /// Its name.
    pub name: String,
    /// Its selector (empty when it has none).
    pub selector: BTreeMap<String, String>,
    /// Its type (`ClusterIP` when unset).
    pub type_: String,
}

/// The shared cache of live-check reads.
pub struct LookupCache {
    entries: Mutex<HashMap<LookupKey, (Instant, LookupValue)>>,
    ttl: Duration,
    capacity: usize,
}

impl LookupCache {
    /// Entries live `ttl`; at most `capacity` are kept.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            ttl,
            capacity,
        }
    }

    fn fresh(&self, key: &LookupKey) -> Option<(LookupValue, Instant)> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(at, value)| (value.clone(), *at))
    }

    /// Drops the entries past their ttl; returns how many remain. Run every so often: after
    /// a burst (10,000 RSGs applied at once) the reads it kept would otherwise stay until
    /// the next burst fills the cache.
    pub fn forget_expired(&self) -> usize {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|_, (at, _)| at.elapsed() < self.ttl);
        entries.len()
    }

    fn keep(&self, key: LookupKey, value: LookupValue, at: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity {
            entries.retain(|_, (at, _)| at.elapsed() < self.ttl);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, (at, value));
    }

    /// The cached value of `key`, or what `read` returns (kept when it succeeded), and
    /// whether the API server was asked.
    pub async fn get_or_read<F>(
        &self,
        key: LookupKey,
        read: F,
    ) -> (Result<LookupValue, kube::Error>, bool)
    where
        F: Future<Output = Result<LookupValue, kube::Error>>,
    {
        let (result, asked) = self.get_or_read_dated(key, read).await;
        (result.map(|(value, _)| value), asked)
    }

    /// Like [`Self::get_or_read`], with when the value was read (it is trusted until then
    /// plus the ttl).
    pub async fn get_or_read_dated<F>(
        &self,
        key: LookupKey,
        read: F,
    ) -> (Result<(LookupValue, Instant), kube::Error>, bool)
    where
        F: Future<Output = Result<LookupValue, kube::Error>>,
    {
        if let Some(cached) = self.fresh(&key) {
            return (Ok(cached), false);
        }
        let asked_at = Instant::now();
        let result = read.await;
        if let Ok(value) = &result {
            self.keep(key, value.clone(), asked_at);
        }
        (result.map(|value| (value, asked_at)), true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> LookupKey {
        LookupKey::Exists("ConfigMap", "ns".into(), format!("c{i}"))
    }

    #[tokio::test]
    async fn a_read_is_kept_for_its_ttl_and_failures_are_not_kept() {
        let cache = LookupCache::new(Duration::from_secs(60), 8);
        let (first, asked) = cache
            .get_or_read(key(0), async { Ok(LookupValue::Exists(true)) })
            .await;
        assert!(asked && matches!(first, Ok(LookupValue::Exists(true))));
        let (second, asked) = cache
            .get_or_read(key(0), async { Ok(LookupValue::Exists(false)) })
            .await;
        assert!(!asked, "served from the cache");
        assert!(matches!(second, Ok(LookupValue::Exists(true))));
        let (_, asked) = cache
            .get_or_read(key(1), async {
                Err(kube::Error::LinesCodecMaxLineLengthExceeded)
            })
            .await;
        assert!(asked);
        let (_, asked) = cache
            .get_or_read(key(1), async { Ok(LookupValue::Exists(true)) })
            .await;
        assert!(asked, "a failed read is read again");
    }

    #[tokio::test]
    async fn expired_reads_are_forgotten_fresh_ones_kept() {
        let cache = LookupCache::new(Duration::from_secs(60), 8);
        let long_ago = Instant::now() - Duration::from_secs(61);
        cache.keep(key(0), LookupValue::Exists(true), long_ago);
        cache.keep(key(1), LookupValue::Exists(true), Instant::now());
        assert_eq!(cache.forget_expired(), 1);
        assert!(cache.fresh(&key(1)).is_some());
    }

    #[tokio::test]
    async fn the_cache_never_holds_more_than_its_capacity() {
        let cache = LookupCache::new(Duration::from_secs(60), 4);
        for i in 0..20 {
            let _ = cache
                .get_or_read(key(i), async { Ok(LookupValue::Exists(true)) })
                .await;
            assert!(
                cache
                    .entries
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .len()
                    <= 4
            );
        }
    }
}
