//! A cache of one kind that holds each object as its compact JSON text and parses it when read.
//!
//! A parsed Kubernetes object takes several times its JSON text in memory: a Deployment is
//! 2.4 KB before its first field is set (its pod spec is held inline even when absent), and
//! every label map costs a tree node of about 540 bytes however few labels it holds. At
//! 10,000 RSGs the cache holds about 100,000 objects, and a reconcile reads a handful of
//! them, so the objects are kept as text (about a fifth of the parsed size for a copy) and
//! parsed on each read.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, PoisonError, RwLock};

use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::Event;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;
use tracing::error;

/// Namespace and name.
type Key = (Box<str>, Box<str>);
type Objects = HashMap<Key, Box<str>>;

fn key_of<K: Resource>(object: &K) -> Key {
    (
        object.namespace().unwrap_or_default().into_boxed_str(),
        object.name_any().into_boxed_str(),
    )
}

/// The reading side: cheap to clone, shared by every task.
pub struct CompactStore<K> {
    objects: Arc<RwLock<Objects>>,
    ready: watch::Receiver<bool>,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for CompactStore<K> {
    fn clone(&self) -> Self {
        Self {
            objects: self.objects.clone(),
            ready: self.ready.clone(),
            kind: PhantomData,
        }
    }
}

/// The cache's writer was dropped before its first list completed (the watch task ended).
#[derive(Debug, thiserror::Error)]
#[error("the cache's watch ended before its first list completed")]
pub struct WriterDropped;

impl<K> CompactStore<K>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    /// The cached object `reference` names, parsed. A text that no longer parses (it was
    /// written from the same type, so this is a defect) is logged and read as absent.
    pub fn get(&self, reference: &ObjectRef<K>) -> Option<Arc<K>> {
        let key = (
            reference
                .namespace
                .clone()
                .unwrap_or_default()
                .into_boxed_str(),
            reference.name.clone().into_boxed_str(),
        );
        let objects = self.objects.read().unwrap_or_else(PoisonError::into_inner);
        parsed(objects.get(&key)?).map(Arc::new)
    }

    /// Every cached object in `namespace`, parsed.
    pub fn objects_in(&self, namespace: &str) -> Vec<K> {
        let objects = self.objects.read().unwrap_or_else(PoisonError::into_inner);
        objects
            .iter()
            .filter(|((ns, _), _)| &**ns == namespace)
            .filter_map(|(_, text)| parsed(text))
            .collect()
    }

    /// How many objects are cached.
    pub fn len(&self) -> usize {
        self.objects
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// True when no object is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Returns once the first list has completed.
    pub async fn wait_until_ready(&self) -> Result<(), WriterDropped> {
        let mut ready = self.ready.clone();
        ready
            .wait_for(|ready| *ready)
            .await
            .map(drop)
            .map_err(|_| WriterDropped)
    }
}

fn parsed<K: DeserializeOwned>(text: &str) -> Option<K> {
    serde_json::from_str(text)
        .inspect_err(|err| error!(error = %err, "a cached object no longer parses; read as absent"))
        .ok()
}

/// The writing side, fed by one watch's events.
pub struct CompactWriter<K> {
    store: CompactStore<K>,
    ready: watch::Sender<bool>,
    /// The objects of a list in progress, which replace the cached ones when it completes.
    relisting: Option<Objects>,
}

/// An empty cache of `K` and its writer.
pub fn compact_store<K>() -> (CompactStore<K>, CompactWriter<K>) {
    let (ready, ready_reader) = watch::channel(false);
    let store = CompactStore {
        objects: Arc::default(),
        ready: ready_reader,
        kind: PhantomData,
    };
    let writer = CompactWriter {
        store: store.clone(),
        ready,
        relisting: None,
    };
    (store, writer)
}

impl<K> CompactWriter<K>
where
    K: Resource<DynamicType = ()> + Serialize,
{
    /// The store this writer fills.
    pub fn as_reader(&self) -> CompactStore<K> {
        self.store.clone()
    }

    /// Applies one watch event, as kube's reflector store does: a list replaces the cache's
    /// objects when it completes, and the first completed list makes the cache ready.
    pub fn apply_watcher_event(&mut self, event: &Event<K>) {
        match event {
            Event::Init => self.relisting = Some(Objects::new()),
            Event::InitApply(object) => {
                if let (Some(listed), Some(text)) = (self.relisting.as_mut(), text_of(object)) {
                    listed.insert(key_of(object), text);
                }
            }
            Event::InitDone => {
                if let Some(listed) = self.relisting.take() {
                    *self.objects_mut() = listed;
                }
                self.ready.send_replace(true);
            }
            Event::Apply(object) => {
                if let Some(text) = text_of(object) {
                    self.objects_mut().insert(key_of(object), text);
                }
            }
            Event::Delete(object) => {
                self.objects_mut().remove(&key_of(object));
            }
        }
    }

    fn objects_mut(&self) -> std::sync::RwLockWriteGuard<'_, Objects> {
        self.store
            .objects
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn text_of<K: Serialize>(object: &K) -> Option<Box<str>> {
    serde_json::to_string(object)
        .inspect_err(|err| error!(error = %err, "an object could not be cached"))
        .ok()
        .map(String::into_boxed_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;

    fn deployment(namespace: &str, name: &str, replicas: i32) -> Deployment {
        serde_json::from_value(crate::fixtures::deployment(namespace, name, replicas)).unwrap()
    }

    fn replicas(store: &CompactStore<Deployment>, namespace: &str, name: &str) -> Option<i32> {
        store
            .get(&ObjectRef::new(name).within(namespace))
            .and_then(|d| d.spec.as_ref()?.replicas)
    }

    #[test]
    fn an_object_reads_back_as_it_was_written_and_goes_with_its_delete() {
        let (store, mut writer) = compact_store::<Deployment>();
        let written = deployment("a", "d", 3);
        writer.apply_watcher_event(&Event::Apply(written.clone()));
        assert_eq!(
            store.get(&ObjectRef::new("d").within("a")).as_deref(),
            Some(&written)
        );
        assert_eq!(replicas(&store, "b", "d"), None, "another namespace's name");
        writer.apply_watcher_event(&Event::Apply(deployment("a", "d", 5)));
        assert_eq!(replicas(&store, "a", "d"), Some(5));
        writer.apply_watcher_event(&Event::Delete(written));
        assert_eq!(replicas(&store, "a", "d"), None);
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn a_completed_list_replaces_the_cache_and_makes_it_ready() {
        let (store, mut writer) = compact_store::<Deployment>();
        assert!(!*store.ready.borrow());
        writer.apply_watcher_event(&Event::Apply(deployment("a", "gone", 1)));
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitApply(deployment("a", "listed", 1)));
        assert_eq!(
            replicas(&store, "a", "gone"),
            Some(1),
            "kept until the list ends"
        );
        assert_eq!(
            replicas(&store, "a", "listed"),
            None,
            "shown when the list ends"
        );
        writer.apply_watcher_event(&Event::InitDone);
        store.wait_until_ready().await.unwrap();
        assert_eq!(replicas(&store, "a", "gone"), None);
        assert_eq!(replicas(&store, "a", "listed"), Some(1));
        assert_eq!(store.len(), 1);
        writer.apply_watcher_event(&Event::InitApply(deployment("b", "after", 1)));
        assert_eq!(store.len(), 1, "a list item outside a list is not cached");
        assert_eq!(store.objects_in("a").len(), 1);
        assert!(store.objects_in("b").is_empty());
    }

    #[tokio::test]
    async fn waiting_on_a_store_whose_writer_is_gone_ends() {
        let (store, writer) = compact_store::<Deployment>();
        drop(writer);
        assert!(store.wait_until_ready().await.is_err());
    }
}
