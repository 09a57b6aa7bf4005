//! The namespaces an installation watches. Cluster-wide by default; with
//! `--watch-namespaces` (chart `watchNamespaces`), rsg has rights only in the listed
//! namespaces, so each namespaced kind is watched in each of them and the watches are merged
//! into the events one cluster-wide watch would give its reflector and indexes:
//!
//! * one `Init` first, every namespace's initial objects as `InitApply`, and one `InitDone`
//!   once every namespace has listed (what arrives meanwhile is buffered the same way, and a
//!   deletion is applied after it), so the store is ready only when complete;
//! * after that, a namespace that lists again (its watch expired) sends its objects as
//!   `Apply`, and at its end a `Delete` for each object of that namespace the store holds but
//!   the new list did not: a relist of one namespace never empties the others.

use std::collections::{BTreeSet, HashMap, HashSet};

use futures::{Stream, StreamExt};
use kube::runtime::reflector::{store::Writer, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::compact_store::{CompactStore, CompactWriter};

/// Where rsg watches namespaced kinds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum WatchScope {
    /// Every namespace (one watch per kind).
    #[default]
    Cluster,
    /// Only these namespaces (one watch per kind and namespace).
    Namespaces(BTreeSet<String>),
}

impl WatchScope {
    /// The scope of `namespaces` (empty: the whole cluster).
    pub fn of(namespaces: &[String]) -> Self {
        let listed: BTreeSet<String> = namespaces
            .iter()
            .map(|ns| ns.trim().to_string())
            .filter(|ns| !ns.is_empty())
            .collect();
        if listed.is_empty() {
            Self::Cluster
        } else {
            Self::Namespaces(listed)
        }
    }

    /// Whether objects of `namespace` are watched.
    pub fn includes(&self, namespace: &str) -> bool {
        match self {
            Self::Cluster => true,
            Self::Namespaces(listed) => listed.contains(namespace),
        }
    }

    /// The listed namespaces (`None`: every namespace).
    pub fn namespaces(&self) -> Option<&BTreeSet<String>> {
        match self {
            Self::Cluster => None,
            Self::Namespaces(listed) => Some(listed),
        }
    }
}

/// A cache that tells which objects it holds in one namespace (what a namespace's relist
/// compares its new list with).
pub trait NamespaceContents<K>: Send + 'static {
    /// The cached objects in `namespace`.
    fn objects_in(&self, namespace: &str) -> Vec<K>;
}

impl<K: Watchable> NamespaceContents<K> for Store<K> {
    fn objects_in(&self, namespace: &str) -> Vec<K> {
        self.state()
            .into_iter()
            .filter(|object| object.namespace().as_deref() == Some(namespace))
            .map(|object| object.as_ref().clone())
            .collect()
    }
}

impl<K: Watchable> NamespaceContents<K> for CompactStore<K> {
    fn objects_in(&self, namespace: &str) -> Vec<K> {
        CompactStore::objects_in(self, namespace)
    }
}

/// What a watch's events are applied to: kube's reflector store, or a [`CompactStore`].
pub trait CacheWriter<K>: Send + 'static {
    /// The store this writer fills.
    type Reader: NamespaceContents<K>;
    /// A reader of the store this writer fills.
    fn reader(&self) -> Self::Reader;
    /// Applies one watch event.
    fn apply(&mut self, event: &Event<K>);
}

impl<K: Watchable> CacheWriter<K> for Writer<K> {
    type Reader = Store<K>;
    fn reader(&self) -> Store<K> {
        self.as_reader()
    }
    fn apply(&mut self, event: &Event<K>) {
        self.apply_watcher_event(event);
    }
}

impl<K: Watchable + Serialize> CacheWriter<K> for CompactWriter<K> {
    type Reader = CompactStore<K>;
    fn reader(&self) -> CompactStore<K> {
        self.as_reader()
    }
    fn apply(&mut self, event: &Event<K>) {
        self.apply_watcher_event(event);
    }
}

/// Turns the events of per-namespace watches into those of one watch (see the module docs).
pub struct MergedRelists<K: Resource<DynamicType = ()> + 'static, R> {
    reader: R,
    /// Namespaces whose first list has not ended; empty once the merged store is ready.
    first_list_pending: BTreeSet<String>,
    /// Deletions seen before the merged store was ready.
    deferred_deletes: Vec<K>,
    /// Per namespace relisting after the first list: the objects its new list sent.
    relisting: HashMap<String, HashSet<ObjectRef<K>>>,
}

impl<K, R> MergedRelists<K, R>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
    R: NamespaceContents<K>,
{
    /// For watches of `namespaces` feeding the store `reader` reads.
    pub fn new(namespaces: BTreeSet<String>, reader: R) -> Self {
        Self {
            reader,
            first_list_pending: namespaces,
            deferred_deletes: Vec::new(),
            relisting: HashMap::new(),
        }
    }

    /// The merged events for `event` of the watch of `namespace`.
    pub fn on_event(&mut self, namespace: &str, event: Event<K>) -> Vec<Event<K>> {
        let first_list = !self.first_list_pending.is_empty();
        match event {
            Event::Init if first_list => vec![],
            Event::Init => {
                self.relisting.insert(namespace.to_string(), HashSet::new());
                vec![]
            }
            Event::InitApply(object) | Event::Apply(object) if first_list => {
                vec![Event::InitApply(object)]
            }
            Event::InitApply(object) => {
                if let Some(seen) = self.relisting.get_mut(namespace) {
                    seen.insert(ObjectRef::from_obj(&object));
                }
                vec![Event::Apply(object)]
            }
            Event::Apply(object) => vec![Event::Apply(object)],
            Event::Delete(object) if first_list => {
                self.deferred_deletes.push(object);
                vec![]
            }
            Event::Delete(object) => vec![Event::Delete(object)],
            Event::InitDone if first_list => {
                self.first_list_pending.remove(namespace);
                if !self.first_list_pending.is_empty() {
                    return vec![];
                }
                let mut events = vec![Event::InitDone];
                events.extend(self.deferred_deletes.drain(..).map(Event::Delete));
                events
            }
            Event::InitDone => {
                let Some(seen) = self.relisting.remove(namespace) else {
                    return vec![];
                };
                self.reader
                    .objects_in(namespace)
                    .into_iter()
                    .filter(|object| !seen.contains(&ObjectRef::from_obj(object)))
                    .map(Event::Delete)
                    .collect()
            }
        }
    }
}

/// What a watched kind is: an object the API serves as JSON, kept in a store shared by tasks.
pub trait Watchable:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static
{
}

impl<K> Watchable for K where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// One stream of watcher events over `apis` (namespace, Api of that namespace), merged as a
/// cluster-wide watch's; `reader` reads the store the events feed.
pub fn merged_watch<K, R>(
    apis: Vec<(String, Api<K>)>,
    config: watcher::Config,
    reader: R,
) -> impl Stream<Item = Result<Event<K>, watcher::Error>> + Send
where
    K: Watchable,
    R: NamespaceContents<K> + Sync,
{
    let namespaces = apis.iter().map(|(ns, _)| ns.clone()).collect();
    let watches = apis.into_iter().map(|(namespace, api)| {
        watcher::watcher(api, config.clone())
            .default_backoff()
            .map(move |result| (namespace.clone(), result))
            .boxed()
    });
    let mut merger = MergedRelists::new(namespaces, reader);
    futures::stream::once(futures::future::ready(Ok(Event::Init))).chain(
        futures::stream::select_all(watches).flat_map(move |(namespace, result)| {
            let events: Vec<Result<Event<K>, watcher::Error>> = match result {
                Ok(event) => merger
                    .on_event(&namespace, event)
                    .into_iter()
                    .map(Ok)
                    .collect(),
                Err(err) => vec![Err(err)],
            };
            futures::stream::iter(events)
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::reflector;

    fn config_map(namespace: &str, name: &str) -> ConfigMap {
        let mut object = ConfigMap::default();
        object.metadata.namespace = Some(namespace.into());
        object.metadata.name = Some(name.into());
        object
    }

    fn names(store: &impl NamespaceContents<ConfigMap>) -> Vec<String> {
        let mut names: Vec<String> = ["a", "b"]
            .into_iter()
            .flat_map(|ns| store.objects_in(ns))
            .map(|o| format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any()))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn the_store_is_ready_once_every_namespace_listed_and_a_relist_keeps_the_others() {
        let (_, writer) = reflector::store::<ConfigMap>();
        merged_relists_of_two_namespaces(writer);
        let (_, writer) = super::super::compact_store::compact_store::<ConfigMap>();
        merged_relists_of_two_namespaces(writer);
    }

    fn merged_relists_of_two_namespaces(mut writer: impl CacheWriter<ConfigMap>) {
        let reader = writer.reader();
        let namespaces = ["a".to_string(), "b".to_string()].into();
        let mut merger = MergedRelists::new(namespaces, writer.reader());
        let mut feed = |events: Vec<Event<ConfigMap>>| {
            for event in &events {
                writer.apply(event);
            }
        };
        feed(vec![Event::Init]);
        for (ns, event) in [
            ("a", Event::Init),
            ("a", Event::InitApply(config_map("a", "one"))),
            ("a", Event::InitDone),
            ("a", Event::Apply(config_map("a", "two"))),
            ("b", Event::Init),
            ("a", Event::Delete(config_map("a", "one"))),
            ("b", Event::InitApply(config_map("b", "three"))),
        ] {
            let events = merger.on_event(ns, event);
            feed(events);
        }
        // "b" has not finished its list: nothing is served yet.
        assert!(names(&reader).is_empty());
        let events = merger.on_event("b", Event::InitDone);
        feed(events);
        assert_eq!(names(&reader), ["a/two", "b/three"]);

        // "b" lists again after its watch expired; "b/three" went meanwhile, "b/four" came.
        for (ns, event) in [
            ("b", Event::Init),
            ("b", Event::InitApply(config_map("b", "four"))),
            ("b", Event::InitDone),
        ] {
            let events = merger.on_event(ns, event);
            feed(events);
        }
        assert_eq!(names(&reader), ["a/two", "b/four"]);
        let events = merger.on_event("a", Event::Delete(config_map("a", "two")));
        feed(events);
        assert_eq!(names(&reader), ["b/four"]);
    }

    #[test]
    fn an_empty_list_is_the_cluster() {
        assert_eq!(WatchScope::of(&[]), WatchScope::Cluster);
        assert_eq!(WatchScope::of(&[" ".into()]), WatchScope::Cluster);
        let scope = WatchScope::of(&["b".into(), "a".into()]);
        assert!(scope.includes("a") && !scope.includes("c"));
        assert!(WatchScope::Cluster.includes("c"));
    }
}
