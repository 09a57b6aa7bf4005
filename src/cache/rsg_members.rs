//! An index from RSG to the objects labelled `rsg.io/name=<rsg>` in its namespace (copies,
//! Service copies, snapshots, the baseline ConfigMap), one per kind, kept current from watch
//! events: a reconcile finds its objects without scanning every cached one. The same index
//! keyed by `rsg.io/representative` finds an RSG's representative pods.

use std::collections::{BTreeSet, HashMap};
use std::sync::RwLock;

use kube::runtime::watcher::Event;
use kube::{Resource, ResourceExt};

use super::small_set::SmallSet;
use super::watch_index::{apply_event, read, write, WatchIndex};

use crate::api::LABEL_NAME;

/// A kind's name.
type Kind = &'static str;
/// `(kind, namespace, rsg name)`.
type MemberKey = (Kind, Box<str>, Box<str>);
/// `(kind, namespace, object name)`.
type ObjectKey = (Kind, Box<str>, Box<str>);

#[derive(Default)]
struct IndexState {
    by_rsg: HashMap<MemberKey, SmallSet<Box<str>>>,
    rsg_of: HashMap<ObjectKey, Box<str>>,
    relisting: HashMap<Kind, Option<Vec<Entry>>>,
}

/// An object and the RSG its label names (none: not labelled).
type Entry = (ObjectKey, Option<Box<str>>);

impl IndexState {
    fn remove(&mut self, object: &ObjectKey) {
        let Some(rsg) = self.rsg_of.remove(object) else {
            return;
        };
        let key = (object.0, object.1.clone(), rsg);
        if let Some(names) = self.by_rsg.get_mut(&key) {
            names.remove(&*object.2);
            if names.is_empty() {
                self.by_rsg.remove(&key);
            }
        }
    }

    fn insert(&mut self, object: ObjectKey, rsg: Option<Box<str>>) {
        self.remove(&object);
        if let Some(rsg) = rsg {
            self.by_rsg
                .entry((object.0, object.1.clone(), rsg.clone()))
                .or_default()
                .insert(object.2.clone());
            self.rsg_of.insert(object, rsg);
        }
    }
}

fn keys_of<K: Resource + k8s_openapi::Resource>(object: &K, label: &str) -> Entry {
    (
        (
            K::KIND,
            object.namespace().unwrap_or_default().into(),
            object.name_any().into(),
        ),
        object.labels().get(label).map(|rsg| rsg.as_str().into()),
    )
}

/// RSG → its labelled objects, per kind.
pub struct RsgMembers {
    /// The label whose value names the RSG.
    label: &'static str,
    state: RwLock<IndexState>,
}

impl Default for RsgMembers {
    /// Keyed by `rsg.io/name`.
    fn default() -> Self {
        Self::by_label(LABEL_NAME)
    }
}

/// The index as one kind's watch changes it: a relist of that kind replaces its objects only.
struct OfKind<'a> {
    state: &'a mut IndexState,
    kind: Kind,
    label: &'static str,
}

impl<K: Resource + k8s_openapi::Resource> WatchIndex<K> for OfKind<'_> {
    type Entry = Entry;

    fn entry_of(&self, object: &K) -> Entry {
        keys_of(object, self.label)
    }

    fn upsert(&mut self, (key, rsg): Entry) {
        self.state.insert(key, rsg);
    }

    fn delete(&mut self, object: &K) {
        self.state.remove(&keys_of(object, self.label).0);
    }

    fn relisting(&mut self) -> &mut Option<Vec<Entry>> {
        self.state.relisting.entry(self.kind).or_default()
    }

    fn replace_all(&mut self, entries: Vec<Entry>) {
        let stale: Vec<ObjectKey> = self
            .state
            .rsg_of
            .keys()
            .filter(|key| key.0 == self.kind)
            .cloned()
            .collect();
        for key in &stale {
            self.state.remove(key);
        }
        for (key, rsg) in entries {
            self.state.insert(key, rsg);
        }
    }
}

impl RsgMembers {
    /// An index of the objects whose label `label` names an RSG.
    pub fn by_label(label: &'static str) -> Self {
        Self {
            label,
            state: RwLock::default(),
        }
    }

    /// The label whose value names the RSG.
    pub fn label(&self) -> &'static str {
        self.label
    }

    /// Applies one watch event of kind `K`.
    pub fn apply<K: Resource + k8s_openapi::Resource>(&self, event: &Event<K>) {
        let kind = K::KIND;
        let mut state = write(&self.state);
        apply_event(
            &mut OfKind {
                state: &mut state,
                kind,
                label: self.label,
            },
            event,
        );
    }

    /// Names of the objects of kind `K` in `namespace` whose label names `rsg`.
    pub fn names<K: k8s_openapi::Resource>(&self, namespace: &str, rsg: &str) -> BTreeSet<String> {
        let kind = K::KIND;
        read(&self.state)
            .by_rsg
            .get(&(kind, namespace.into(), rsg.into()))
            .into_iter()
            .flat_map(SmallSet::iter)
            .map(|name| name.to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Service;
    use serde_json::json;

    fn labelled<K: serde::de::DeserializeOwned>(ns: &str, name: &str, rsg: Option<&str>) -> K {
        let labels = rsg.map_or(json!({}), |rsg| json!({LABEL_NAME: rsg}));
        serde_json::from_value(
            json!({"metadata": {"name": name, "namespace": ns, "labels": labels}}),
        )
        .expect("an object")
    }

    #[test]
    fn members_follow_labels_per_kind_and_namespace() {
        let members = RsgMembers::default();
        members.apply(&Event::Apply(labelled::<Deployment>(
            "a",
            "g-web-1",
            Some("g"),
        )));
        members.apply(&Event::Apply(labelled::<Service>(
            "a",
            "web-g-1",
            Some("g"),
        )));
        members.apply(&Event::Apply(labelled::<Deployment>(
            "b",
            "g-web-1",
            Some("g"),
        )));
        members.apply(&Event::Apply(labelled::<Deployment>("a", "plain", None)));
        assert_eq!(
            members.names::<Deployment>("a", "g"),
            ["g-web-1".to_string()].into()
        );
        assert_eq!(
            members.names::<Service>("a", "g"),
            ["web-g-1".to_string()].into()
        );
        members.apply(&Event::Apply(labelled::<Deployment>(
            "a",
            "g-web-1",
            Some("h"),
        )));
        assert!(
            members.names::<Deployment>("a", "g").is_empty(),
            "relabelled"
        );
        assert_eq!(members.names::<Deployment>("a", "h").len(), 1);
        members.apply(&Event::Delete(labelled::<Deployment>(
            "a",
            "g-web-1",
            Some("h"),
        )));
        assert!(members.names::<Deployment>("a", "h").is_empty());
    }

    #[test]
    fn a_relist_of_one_kind_leaves_the_others() {
        let members = RsgMembers::default();
        members.apply(&Event::Apply(labelled::<Deployment>(
            "a",
            "gone",
            Some("g"),
        )));
        members.apply(&Event::Apply(labelled::<Service>("a", "svc", Some("g"))));
        members.apply(&Event::<Deployment>::Init);
        members.apply(&Event::InitApply(labelled::<Deployment>(
            "a",
            "kept",
            Some("g"),
        )));
        members.apply(&Event::<Deployment>::InitDone);
        assert_eq!(
            members.names::<Deployment>("a", "g"),
            ["kept".to_string()].into()
        );
        assert_eq!(
            members.names::<Service>("a", "g"),
            ["svc".to_string()].into()
        );
    }
}
