//! What rsg remembers about each RSG between reconciles, in one place: failures counted for
//! backoff, since when it has been stopped on a problem, copy names found taken, the
//! problems last reported and the status last written. One entry per RSG, keyed by its
//! namespace/name and tied to its uid (an RSG deleted and made again under its name starts
//! afresh); the least recently used entry goes when the memory is full, entries of deleted
//! RSGs are dropped by [`RsgMemory::forget_gone`].

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::runtime::reflector::ObjectRef;

use crate::api::{ResourceScalingGroup, ResourceScalingGroupStatus};
use crate::bounded_map::make_room;

/// RSGs remembered at most; past it the least recently used one is forgotten.
pub const MAX_REMEMBERED_RSGS: usize = 20_000;

type RsgRef = ObjectRef<ResourceScalingGroup>;

/// The problem messages one reconcile found, and the spec generation it reconciled.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Reported {
    generation: Option<i64>,
    messages: BTreeSet<String>,
}

/// What is remembered about one RSG.
#[derive(Debug, Default)]
struct Remembered {
    /// The uid of the RSG it is about (`None`: not known yet).
    uid: Option<String>,
    /// When it was last used, on the memory's own clock.
    used: u64,
    /// Consecutive failures, for backoff.
    failures: u32,
    /// Since when it has been stopped on a problem the user has to fix.
    problem_since: Option<Instant>,
    /// Copy names found taken by objects the RSG did not make; checked before creating.
    taken_names: BTreeSet<String>,
    /// The problems its latest reconcile found.
    reported: Option<Reported>,
    /// The status this process last wrote for it while leading: rsg alone writes RSG
    /// status, so it is the newest there is, though the cache may not show it yet.
    written: Option<ResourceScalingGroupStatus>,
}

#[derive(Debug)]
struct Entries {
    by_rsg: HashMap<RsgRef, Remembered>,
    clock: u64,
    capacity: usize,
}

impl Entries {
    /// The entry of `rsg`, made (and the least recently used one evicted when full) if
    /// there is none, and started afresh when it was about another RSG of the same name.
    fn entry(&mut self, rsg: &RsgRef) -> &mut Remembered {
        self.clock += 1;
        let clock = self.clock;
        make_room(&mut self.by_rsg, rsg, self.capacity, |remembered| {
            remembered.used
        });
        let uid = &rsg.extra.uid;
        let remembered = self.by_rsg.entry(rsg.clone()).or_default();
        if remembered.uid != *uid {
            *remembered = Remembered {
                uid: uid.clone(),
                ..Remembered::default()
            };
        }
        remembered.used = clock;
        remembered
    }

    /// The entry of `rsg` when there is one for this very RSG (the same uid).
    fn get(&self, rsg: &RsgRef) -> Option<&Remembered> {
        self.by_rsg
            .get(rsg)
            .filter(|remembered| remembered.uid == rsg.extra.uid)
    }
}

/// Per-RSG memory of the controller (see the module documentation).
#[derive(Debug)]
pub struct RsgMemory {
    entries: Mutex<Entries>,
}

impl Default for RsgMemory {
    fn default() -> Self {
        Self::with_capacity(MAX_REMEMBERED_RSGS)
    }
}

impl RsgMemory {
    /// A memory of at most `capacity` RSGs.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(Entries {
                by_rsg: HashMap::new(),
                clock: 0,
                capacity: capacity.max(1),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many RSGs are remembered.
    pub fn len(&self) -> usize {
        self.lock().by_rsg.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counts one more failure of `rsg`; returns how many in a row.
    pub fn count_failure(&self, rsg: &RsgRef) -> u32 {
        let mut entries = self.lock();
        let remembered = entries.entry(rsg);
        remembered.failures = remembered.failures.saturating_add(1);
        remembered.failures
    }

    /// Forgets the failures of `rsg` after a success.
    pub fn reset_failures(&self, rsg: &RsgRef) {
        self.lock().entry(rsg).failures = 0;
    }

    /// How long `rsg` has been stopped on a problem the user has to fix (from now on, when
    /// it was not before).
    pub fn problem_streak(&self, rsg: &RsgRef) -> Duration {
        let mut entries = self.lock();
        let remembered = entries.entry(rsg);
        remembered
            .problem_since
            .get_or_insert_with(Instant::now)
            .elapsed()
    }

    /// Forgets the problem streak of `rsg` once it gets past its problems.
    pub fn end_problem_streak(&self, rsg: &RsgRef) {
        self.lock().entry(rsg).problem_since = None;
    }

    /// Whether `name` was found taken for `rsg` before.
    pub fn is_known_conflict(&self, rsg: &RsgRef, name: &str) -> bool {
        self.lock()
            .get(rsg)
            .is_some_and(|remembered| remembered.taken_names.contains(name))
    }

    /// Records (`taken`) or forgets a taken copy name.
    pub fn set_conflict(&self, rsg: &RsgRef, name: &str, taken: bool) {
        let mut entries = self.lock();
        let names = &mut entries.entry(rsg).taken_names;
        if taken {
            names.insert(name.to_string());
        } else {
            names.remove(name);
        }
    }

    /// Remembers `messages` as the problems of `rsg` at spec `generation`; returns the
    /// problems remembered before for the same generation (none for another generation).
    pub fn replace_reported(
        &self,
        rsg: &RsgRef,
        generation: Option<i64>,
        messages: BTreeSet<String>,
    ) -> BTreeSet<String> {
        let mut entries = self.lock();
        let remembered = entries.entry(rsg);
        let previous = remembered
            .reported
            .replace(Reported {
                generation,
                messages,
            })
            .filter(|previous| previous.generation == generation);
        previous.map(|p| p.messages).unwrap_or_default()
    }

    /// Remembers `status` as written for `rsg`.
    pub fn record_written(&self, rsg: &RsgRef, status: &ResourceScalingGroupStatus) {
        self.lock().entry(rsg).written = Some(status.clone());
    }

    /// The status last written for this very RSG (`rsg` carries its uid) when the cache (`cached`) does not show it
    /// yet. Once the cache shows it, it is forgotten: at 10,000 RSGs, a copy of every settled
    /// status would be tens of megabytes that the cache already holds.
    pub fn written_unless_cached(
        &self,
        rsg: &RsgRef,
        cached: Option<&ResourceScalingGroupStatus>,
    ) -> Option<ResourceScalingGroupStatus> {
        let mut entries = self.lock();
        let remembered = entries
            .by_rsg
            .get_mut(rsg)
            .filter(|remembered| remembered.uid == rsg.extra.uid)?;
        if remembered.written.as_ref() == cached {
            remembered.written = None;
        }
        remembered.written.clone()
    }

    /// Forgets every status written: at the start of each term as leader, since another
    /// replica may have written since.
    pub fn forget_written(&self) {
        for remembered in self.lock().by_rsg.values_mut() {
            remembered.written = None;
        }
    }

    /// Forgets everything remembered about RSGs for which `exists` is false (deleted ones).
    /// Returns how many were forgotten.
    pub fn forget_gone(&self, exists: impl Fn(&RsgRef) -> bool) -> usize {
        let mut entries = self.lock();
        let before = entries.by_rsg.len();
        entries.by_rsg.retain(|key, _| exists(key));
        before - entries.by_rsg.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rsg(name: &str, uid: &str) -> RsgRef {
        let mut key = ObjectRef::new(name).within("ns");
        key.extra.uid = Some(uid.to_string());
        key
    }

    #[test]
    fn a_full_memory_forgets_the_least_recently_used_rsg_only() {
        let memory = RsgMemory::with_capacity(2);
        let (a, b, c) = (rsg("a", "1"), rsg("b", "2"), rsg("c", "3"));
        memory.count_failure(&a);
        memory.count_failure(&b);
        // a is used again, so b is the least recently used when c arrives.
        assert_eq!(memory.count_failure(&a), 2);
        memory.count_failure(&c);
        assert_eq!(memory.len(), 2);
        assert_eq!(memory.count_failure(&a), 3, "a was kept");
        assert_eq!(memory.count_failure(&b), 1, "b was forgotten");
    }

    #[test]
    fn an_rsg_made_again_under_its_name_starts_afresh() {
        let memory = RsgMemory::default();
        let first = rsg("pd", "uid-1");
        memory.set_conflict(&first, "pd-llm-prefill-2", true);
        memory.record_written(&first, &ResourceScalingGroupStatus::default());
        memory.count_failure(&first);
        let again = rsg("pd", "uid-2");
        assert!(!memory.is_known_conflict(&again, "pd-llm-prefill-2"));
        assert_eq!(memory.written_unless_cached(&again, None), None);
        assert_eq!(memory.count_failure(&again), 1);
        assert!(
            memory.written_unless_cached(&first, None).is_none(),
            "the old entry was replaced"
        );
    }

    #[test]
    fn a_written_status_is_kept_until_the_cache_shows_it_then_forgotten() {
        let memory = RsgMemory::default();
        let key = rsg("pd", "1");
        let written = ResourceScalingGroupStatus {
            current_replicas: 3,
            ..ResourceScalingGroupStatus::default()
        };
        memory.record_written(&key, &written);
        let older = ResourceScalingGroupStatus::default();
        assert_eq!(
            memory.written_unless_cached(&key, Some(&older)),
            Some(written.clone()),
            "the cache lags behind the write"
        );
        assert_eq!(memory.written_unless_cached(&key, Some(&written)), None);
        assert_eq!(
            memory.written_unless_cached(&key, Some(&older)),
            None,
            "forgotten once the cache showed it: a later status is the cache's"
        );
    }

    #[test]
    fn reported_problems_are_news_again_after_a_new_generation() {
        let memory = RsgMemory::default();
        let key = rsg("pd", "1");
        let problems = BTreeSet::from(["target \"decode\" not found".to_string()]);
        assert!(memory
            .replace_reported(&key, Some(1), problems.clone())
            .is_empty());
        assert_eq!(
            memory.replace_reported(&key, Some(1), problems.clone()),
            problems
        );
        assert!(memory.replace_reported(&key, Some(2), problems).is_empty());
    }

    #[test]
    fn deleted_rsgs_are_forgotten_and_written_statuses_dropped_per_term() {
        let memory = RsgMemory::default();
        let (kept, gone) = (rsg("kept", "1"), rsg("gone", "2"));
        for key in [&kept, &gone] {
            memory.count_failure(key);
            memory.record_written(key, &ResourceScalingGroupStatus::default());
        }
        assert_eq!(memory.forget_gone(|key| *key == kept), 1);
        assert_eq!(memory.len(), 1);
        memory.forget_written();
        assert_eq!(memory.written_unless_cached(&kept, None), None);
        assert_eq!(
            memory.count_failure(&kept),
            2,
            "failures outlive a new term"
        );
    }
}
