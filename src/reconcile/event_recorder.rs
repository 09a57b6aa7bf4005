//! Writes Events (events.k8s.io/v1), counting a repeat of the same Event within six minutes
//! into the first one's series rather than writing another object, as kubectl and the
//! Kubernetes controllers do.
//!
//! What is remembered of a written Event is its name and count under a hash of what makes
//! it the same Event (type, action, reason, note, the object it is about): about a hundred
//! bytes, not the Event itself. At most [`SERIES_CAPACITY`] Events are remembered; past
//! that, a repeat is written as a new Event. Expired entries are swept at most every
//! [`SWEEP_INTERVAL`], not on every write: at 10,000 RSGs, 30,000 Events are written in a
//! few minutes, and a sweep of every remembered Event on each one would cost more than the
//! writes.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use kube::{Api, Client};
use serde_json::json;

/// How long a written Event takes repeats into its series.
pub const SERIES_TTL: Duration = Duration::from_secs(6 * 60);

/// How many written Events are remembered for their series.
pub const SERIES_CAPACITY: usize = 16_384;

/// How often remembered Events past [`SERIES_TTL`] are forgotten (and whenever the cache is
/// full).
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// A written Event as remembered for its series.
#[derive(Debug)]
struct Written {
    name: Box<str>,
    count: i32,
    last_seen: Instant,
}

/// The Events written in the last [`SERIES_TTL`], by a hash of what makes them the same.
#[derive(Debug)]
struct SeriesCache {
    written: HashMap<u64, Written>,
    last_sweep: Instant,
}

/// What to write for an Event.
#[derive(Debug, PartialEq, Eq)]
enum Write {
    /// A new Event object.
    Create,
    /// A repeat: the series of the Event `name` now counts `count`.
    Repeat { name: Box<str>, count: i32 },
}

impl SeriesCache {
    fn new(now: Instant) -> Self {
        Self {
            written: HashMap::new(),
            last_sweep: now,
        }
    }

    /// What to write for an Event whose sameness hashes to `key`, at `now`.
    fn write_for(&self, key: u64, now: Instant) -> Write {
        match self.written.get(&key) {
            Some(seen) if now.duration_since(seen.last_seen) < SERIES_TTL => Write::Repeat {
                name: seen.name.clone(),
                count: seen.count.saturating_add(1),
            },
            _ => Write::Create,
        }
    }

    /// Remembers that the Event `name` (sameness `key`) counts `count` at `now`; sweeps
    /// expired entries when due or full, and remembers nothing when still full.
    fn record(&mut self, key: u64, name: Box<str>, count: i32, now: Instant) {
        if self.full_without(key) || now.duration_since(self.last_sweep) >= SWEEP_INTERVAL {
            self.written
                .retain(|_, seen| now.duration_since(seen.last_seen) < SERIES_TTL);
            self.last_sweep = now;
        }
        if self.full_without(key) {
            return;
        }
        let last_seen = now;
        self.written.insert(
            key,
            Written {
                name,
                count,
                last_seen,
            },
        );
    }

    /// True when the cache is full and does not hold `key` (which would take no new room).
    fn full_without(&self, key: u64) -> bool {
        self.written.len() >= SERIES_CAPACITY && !self.written.contains_key(&key)
    }
}

/// Writes Events for one reporting controller; cheap to clone, clones share the series.
#[derive(Clone)]
pub struct EventRecorder {
    client: Client,
    reporter: Reporter,
    /// Random keys: which Events share a hash cannot be chosen by whoever names objects.
    hasher: RandomState,
    series: Arc<Mutex<SeriesCache>>,
}

impl EventRecorder {
    /// A recorder writing as `reporter`.
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self {
            client,
            reporter,
            hasher: RandomState::new(),
            series: Arc::new(Mutex::new(SeriesCache::new(Instant::now()))),
        }
    }

    fn sameness(&self, event: &Event, regarding: &ObjectReference) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        matches!(event.type_, EventType::Warning).hash(&mut hasher);
        (&event.action, &event.reason, &event.note).hash(&mut hasher);
        (&regarding.namespace, &regarding.name, &regarding.uid).hash(&mut hasher);
        (&regarding.api_version, &regarding.kind).hash(&mut hasher);
        hasher.finish()
    }

    fn series(&self) -> std::sync::MutexGuard<'_, SeriesCache> {
        self.series.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes `event` about `regarding` in the object's namespace (`default` for a
    /// cluster-scoped object): a new Event, or a repeat counted into an earlier one's series.
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let key = self.sameness(event, regarding);
        let write = self.series().write_for(key, Instant::now());
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let events = Api::<K8sEvent>::namespaced(self.client.clone(), namespace);
        let now = Timestamp::now();
        let (name, count) = match write {
            Write::Repeat { name, count } => {
                let series = EventSeries {
                    count,
                    last_observed_time: MicroTime(now),
                };
                let patch = json!({ "series": series });
                match events
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => (name, count),
                    // The first Event is gone (Events expire): this one starts anew.
                    Err(kube::Error::Api(status)) if status.code == 404 => {
                        (self.create(&events, event, regarding, now).await?, 1)
                    }
                    Err(err) => return Err(err),
                }
            }
            Write::Create => (self.create(&events, event, regarding, now).await?, 1),
        };
        self.series().record(key, name, count, Instant::now());
        Ok(())
    }

    async fn create(
        &self,
        events: &Api<K8sEvent>,
        event: &Event,
        regarding: &ObjectReference,
        now: Timestamp,
    ) -> Result<Box<str>, kube::Error> {
        let created = events
            .create(
                &PostParams::default(),
                &self.new_event(event, regarding, now),
            )
            .await?;
        Ok(created.metadata.name.unwrap_or_default().into_boxed_str())
    }

    fn new_event(&self, event: &Event, regarding: &ObjectReference, now: Timestamp) -> K8sEvent {
        let controller = &self.reporter.controller;
        let about = regarding.name.as_deref().unwrap_or(controller);
        K8sEvent {
            metadata: ObjectMeta {
                namespace: regarding.namespace.clone(),
                name: Some(format!("{about}.{:x}", now.as_nanosecond())),
                ..ObjectMeta::default()
            },
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            note: event.note.clone(),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: event.secondary.clone(),
            reporting_controller: Some(controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| controller.clone()),
            ),
            type_: Some(match event.type_ {
                EventType::Normal => "Normal".into(),
                EventType::Warning => "Warning".into(),
            }),
            ..K8sEvent::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeat_within_the_ttl_counts_into_the_first_events_series() {
        let start = Instant::now();
        let mut cache = SeriesCache::new(start);
        assert_eq!(cache.write_for(1, start), Write::Create);
        cache.record(1, "e.1".into(), 1, start);
        let later = start + Duration::from_secs(60);
        let repeat = Write::Repeat {
            name: "e.1".into(),
            count: 2,
        };
        assert_eq!(cache.write_for(1, later), repeat);
        assert_eq!(cache.write_for(2, later), Write::Create, "another Event");
        cache.record(1, "e.1".into(), 2, later);
        let past_ttl = later + SERIES_TTL;
        assert_eq!(cache.write_for(1, past_ttl), Write::Create);
    }

    #[test]
    fn expired_events_are_forgotten_at_the_next_write_past_the_sweep_interval() {
        let start = Instant::now();
        let mut cache = SeriesCache::new(start);
        cache.record(1, "old".into(), 1, start);
        cache.record(2, "recent".into(), 1, start + SERIES_TTL - SWEEP_INTERVAL);
        cache.record(3, "new".into(), 1, start + SERIES_TTL);
        let mut kept: Vec<u64> = cache.written.keys().copied().collect();
        kept.sort();
        assert_eq!(kept, [2, 3], "the expired Event is no longer held");
    }

    #[test]
    fn expired_events_are_swept_when_due_and_a_full_cache_remembers_no_more() {
        let start = Instant::now();
        let mut cache = SeriesCache::new(start);
        for key in 0..SERIES_CAPACITY as u64 {
            cache.record(key, "e".into(), 1, start);
        }
        let soon = start + Duration::from_secs(1);
        cache.record(u64::MAX, "new".into(), 1, soon);
        assert_eq!(cache.write_for(u64::MAX, soon), Write::Create, "full");
        assert_eq!(cache.written.len(), SERIES_CAPACITY);
        cache.record(0, "e".into(), 2, soon);
        assert!(matches!(
            cache.write_for(0, soon),
            Write::Repeat { count: 3, .. }
        ));

        let expired = start + SERIES_TTL;
        cache.record(u64::MAX, "new".into(), 1, expired);
        assert_eq!(
            cache.written.len(),
            2,
            "what expired is swept: kept 0 and the new one"
        );
        assert!(matches!(
            cache.write_for(u64::MAX, expired),
            Write::Repeat { .. }
        ));
    }
}
