//! What every index kept from watch events shares: a lock that survives a panicked holder,
//! and the way a watch event changes the index (a relist is gathered until it is complete and
//! then replaces the entries, so the old state serves meanwhile).

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use kube::runtime::watcher::Event;

/// An index of objects of kind `K`.
pub(super) trait WatchIndex<K> {
    /// What the index keeps of one object.
    type Entry;
    /// The entry of `object`.
    fn entry_of(&self, object: &K) -> Self::Entry;
    /// Adds or replaces one entry.
    fn upsert(&mut self, entry: Self::Entry);
    /// Removes the entry of `object`.
    fn delete(&mut self, object: &K);
    /// The entries of a relist under way, if one is.
    fn relisting(&mut self) -> &mut Option<Vec<Self::Entry>>;
    /// Replaces every entry with those of a completed relist.
    fn replace_all(&mut self, entries: Vec<Self::Entry>);
}

/// Applies one watch event to `index`.
pub(super) fn apply_event<K, I: WatchIndex<K>>(index: &mut I, event: &Event<K>) {
    match event {
        Event::Apply(object) => {
            let entry = index.entry_of(object);
            index.upsert(entry);
        }
        Event::Delete(object) => index.delete(object),
        Event::Init => *index.relisting() = Some(Vec::new()),
        Event::InitApply(object) => {
            let entry = index.entry_of(object);
            index.relisting().get_or_insert_with(Vec::new).push(entry);
        }
        Event::InitDone => {
            let fresh = index.relisting().take().unwrap_or_default();
            index.replace_all(fresh);
        }
    }
}

/// Write access to `lock`, also after a holder panicked (the index stays usable).
pub(super) fn write<S>(lock: &RwLock<S>) -> RwLockWriteGuard<'_, S> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Read access to `lock`, also after a holder panicked.
pub(super) fn read<S>(lock: &RwLock<S>) -> RwLockReadGuard<'_, S> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}
