//! An index from selector labels to the Services whose selector holds them, kept current from
//! watch events, so finding the Services that front a workload costs the same in a namespace
//! of ten Services or ten thousand (and makes no API request).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::RwLock;

use k8s_openapi::api::core::v1::Service;
use kube::runtime::watcher::Event;
use kube::ResourceExt;

use super::small_set::SmallSet;
use super::watch_index::{apply_event, read, write, WatchIndex};
use crate::workload::selector_matches_template;

/// `(namespace, name)` of a Service.
type ServiceKey = (Box<str>, Box<str>);
/// `(namespace, label key, label value)`: one pair of a selector.
type PairKey = (Box<str>, Box<str>, Box<str>);
/// A selector's pairs, sorted by key.
type Selector = Box<[(Box<str>, Box<str>)]>;

#[derive(Default)]
struct IndexState {
    selectors: HashMap<ServiceKey, Selector>,
    by_pair: HashMap<PairKey, SmallSet<Box<str>>>,
    relisting: Option<Vec<IndexEntry>>,
}

type IndexEntry = (ServiceKey, Selector);

fn entry_of(service: &Service) -> IndexEntry {
    let selector = service
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .into_iter()
        .flatten()
        .map(|(label, value)| (label.as_str().into(), value.as_str().into()))
        .collect();
    (
        (
            service.namespace().unwrap_or_default().into(),
            service.name_any().into(),
        ),
        selector,
    )
}

fn pair_key(namespace: &str, label: &str, value: &str) -> PairKey {
    (namespace.into(), label.into(), value.into())
}

impl IndexState {
    fn remove(&mut self, key: &ServiceKey) {
        let Some(selector) = self.selectors.remove(key) else {
            return;
        };
        for (label, value) in selector.iter() {
            let pair = pair_key(&key.0, label, value);
            if let Some(names) = self.by_pair.get_mut(&pair) {
                names.remove(&*key.1);
                if names.is_empty() {
                    self.by_pair.remove(&pair);
                }
            }
        }
    }

    fn insert(&mut self, key: ServiceKey, selector: Selector) {
        self.remove(&key);
        for (label, value) in selector.iter() {
            self.by_pair
                .entry(pair_key(&key.0, label, value))
                .or_default()
                .insert(key.1.clone());
        }
        self.selectors.insert(key, selector);
    }
}

impl WatchIndex<Service> for IndexState {
    type Entry = IndexEntry;

    fn entry_of(&self, service: &Service) -> IndexEntry {
        entry_of(service)
    }

    fn upsert(&mut self, (key, selector): IndexEntry) {
        self.insert(key, selector);
    }

    fn delete(&mut self, service: &Service) {
        self.remove(&entry_of(service).0);
    }

    fn relisting(&mut self) -> &mut Option<Vec<IndexEntry>> {
        &mut self.relisting
    }

    fn replace_all(&mut self, entries: Vec<IndexEntry>) {
        *self = IndexState::default();
        for (key, selector) in entries {
            self.insert(key, selector);
        }
    }
}

/// Selector pair → Services.
#[derive(Default)]
pub struct ServiceIndex {
    state: RwLock<IndexState>,
}

impl ServiceIndex {
    /// Applies one watch event.
    pub fn apply(&self, event: &Event<Service>) {
        apply_event(&mut *write(&self.state), event);
    }

    /// Names of the Services in `namespace` whose non-empty selector is a subset of `labels`
    /// (they select pods with those labels).
    pub fn selecting(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> BTreeSet<String> {
        let state = read(&self.state);
        let mut candidates = BTreeSet::new();
        for (label, value) in labels {
            if let Some(names) = state.by_pair.get(&pair_key(namespace, label, value)) {
                candidates.extend(names.iter().cloned());
            }
        }
        candidates
            .into_iter()
            .filter(|name| {
                state
                    .selectors
                    .get(&(namespace.into(), name.clone()))
                    .is_some_and(|selector| {
                        selector_matches_template(selector.iter().map(|(k, v)| (k, v)), labels)
                    })
            })
            .map(String::from)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(ns: &str, name: &str, selector: serde_json::Value) -> Service {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns},
            "spec": {"selector": selector}}))
        .expect("a Service")
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn finds_services_whose_selector_is_a_subset_of_the_labels() {
        let index = ServiceIndex::default();
        index.apply(&Event::Apply(service("a", "web", json!({"app": "llm"}))));
        index.apply(&Event::Apply(service(
            "a",
            "prefill",
            json!({"app": "llm", "role": "prefill"}),
        )));
        index.apply(&Event::Apply(service(
            "a",
            "decode",
            json!({"app": "llm", "role": "decode"}),
        )));
        index.apply(&Event::Apply(service("b", "web", json!({"app": "llm"}))));
        index.apply(&Event::Apply(service("a", "headless", json!({}))));
        let prefill = labels(&[("app", "llm"), ("role", "prefill"), ("tier", "gpu")]);
        assert_eq!(
            index.selecting("a", &prefill),
            ["prefill".to_string(), "web".to_string()].into()
        );
        assert!(index.selecting("c", &prefill).is_empty());
        assert!(index
            .selecting("a", &labels(&[("role", "prefill")]))
            .is_empty());
    }

    #[test]
    fn a_deleted_service_leaves_nothing_in_the_index() {
        let index = ServiceIndex::default();
        let selector = json!({"app": "llm", "role": "prefill"});
        index.apply(&Event::Apply(service("a", "web", selector.clone())));
        index.apply(&Event::Apply(service("a", "other", json!({"app": "llm"}))));
        index.apply(&Event::Delete(service("a", "web", selector)));
        index.apply(&Event::Delete(service("a", "other", json!({"app": "llm"}))));
        let state = read(&index.state);
        assert!(state.selectors.is_empty());
        assert!(state.by_pair.is_empty(), "{:?}", state.by_pair.keys());
    }

    #[test]
    fn updates_deletes_and_relists_replace_what_was_indexed() {
        let index = ServiceIndex::default();
        let llm = labels(&[("app", "llm")]);
        index.apply(&Event::Apply(service("a", "web", json!({"app": "llm"}))));
        index.apply(&Event::Apply(service("a", "web", json!({"app": "other"}))));
        assert!(index.selecting("a", &llm).is_empty(), "selector changed");
        index.apply(&Event::Apply(service("a", "web", json!({"app": "llm"}))));
        index.apply(&Event::Delete(service("a", "web", json!({"app": "llm"}))));
        assert!(index.selecting("a", &llm).is_empty(), "deleted");
        index.apply(&Event::Apply(service("a", "gone", json!({"app": "llm"}))));
        index.apply(&Event::Init);
        index.apply(&Event::InitApply(service(
            "a",
            "kept",
            json!({"app": "llm"}),
        )));
        assert_eq!(index.selecting("a", &llm), ["gone".to_string()].into());
        index.apply(&Event::InitDone);
        assert_eq!(index.selecting("a", &llm), ["kept".to_string()].into());
    }
}
