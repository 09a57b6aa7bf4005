//! An index from workload to the RSGs that target it, kept current from watch events, so
//! the duplicate-target check costs the same with ten RSGs or ten thousand.

use std::collections::HashMap;
use std::sync::RwLock;

use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::Event;
use kube::ResourceExt;

use super::small_set::SmallSet;
use super::watch_index::{apply_event, read, write, WatchIndex};

use crate::api::ResourceScalingGroup;
use crate::workload::TargetClaim;
use crate::workload::WorkloadKey;

type RsgKey = (String, String);

#[derive(Default)]
struct IndexState {
    by_rsg: HashMap<RsgKey, (String, Vec<WorkloadKey>)>,
    by_workload: HashMap<WorkloadKey, SmallSet<TargetClaim>>,
    relisting: Option<Vec<IndexEntry>>,
}

type IndexEntry = (RsgKey, (String, Vec<WorkloadKey>));

/// Workload → claiming RSGs.
#[derive(Default)]
pub struct TargetIndex {
    state: RwLock<IndexState>,
}

fn entry_of(rsg: &ResourceScalingGroup) -> IndexEntry {
    let namespace = rsg.namespace().unwrap_or_default();
    let workloads = rsg
        .spec
        .target_resources
        .iter()
        .map(|t| WorkloadKey::from_ref(&t.resource_ref, &namespace))
        .collect();
    (
        (namespace, rsg.name_any()),
        (rsg.spec.scaling_strategy.type_.clone(), workloads),
    )
}

impl IndexState {
    fn remove(&mut self, key: &RsgKey) {
        if let Some((strategy, workloads)) = self.by_rsg.remove(key) {
            let claim = claim_of(key, &strategy);
            for workload in workloads {
                if let Some(claims) = self.by_workload.get_mut(&workload) {
                    claims.remove(&claim);
                    if claims.is_empty() {
                        self.by_workload.remove(&workload);
                    }
                }
            }
        }
    }

    fn insert(&mut self, key: RsgKey, value: (String, Vec<WorkloadKey>)) {
        self.remove(&key);
        let claim = claim_of(&key, &value.0);
        for workload in &value.1 {
            self.by_workload
                .entry(workload.clone())
                .or_default()
                .insert(claim.clone());
        }
        self.by_rsg.insert(key, value);
    }
}

impl WatchIndex<ResourceScalingGroup> for IndexState {
    type Entry = IndexEntry;

    fn entry_of(&self, rsg: &ResourceScalingGroup) -> IndexEntry {
        entry_of(rsg)
    }

    fn upsert(&mut self, (key, value): IndexEntry) {
        self.insert(key, value);
    }

    fn delete(&mut self, rsg: &ResourceScalingGroup) {
        self.remove(&entry_of(rsg).0);
    }

    fn relisting(&mut self) -> &mut Option<Vec<IndexEntry>> {
        &mut self.relisting
    }

    fn replace_all(&mut self, entries: Vec<IndexEntry>) {
        *self = IndexState::default();
        for (key, value) in entries {
            self.insert(key, value);
        }
    }
}

fn claim_of(key: &RsgKey, strategy: &str) -> TargetClaim {
    TargetClaim {
        rsg_namespace: key.0.clone(),
        rsg_name: key.1.clone(),
        strategy: strategy.to_string(),
    }
}

impl TargetIndex {
    /// Applies one watch event.
    pub fn apply(&self, event: &Event<ResourceScalingGroup>) {
        apply_event(&mut *write(&self.state), event);
    }

    /// Every RSG that targets `workload`.
    pub fn claims_on(&self, workload: &WorkloadKey) -> Vec<TargetClaim> {
        read(&self.state)
            .by_workload
            .get(workload)
            .map(|c| c.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Every RSG with a target in `namespace`.
    pub fn rsgs_targeting_namespace(
        &self,
        namespace: &str,
    ) -> Vec<ObjectRef<ResourceScalingGroup>> {
        read(&self.state)
            .by_rsg
            .iter()
            .filter(|(_, (_, workloads))| workloads.iter().any(|w| w.namespace == namespace))
            .map(|((rsg_namespace, name), _)| ObjectRef::new(name).within(rsg_namespace))
            .collect()
    }

    /// Number of RSGs indexed.
    pub fn len(&self) -> usize {
        read(&self.state).by_rsg.len()
    }

    /// True when no RSG is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rsg(ns: &str, name: &str, strategy: &str, workloads: &[&str]) -> ResourceScalingGroup {
        let targets = workloads
            .iter()
            .map(|w| crate::fixtures::deployment_target(w, w, None))
            .collect();
        crate::fixtures::rsg(ns, name, targets, serde_json::json!({"type": strategy}))
    }

    fn key(ns: &str, name: &str) -> WorkloadKey {
        WorkloadKey {
            group: "apps".into(),
            kind: "Deployment".into(),
            namespace: ns.into(),
            name: name.into(),
        }
    }

    #[test]
    fn tracks_applies_updates_and_deletes() {
        let index = TargetIndex::default();
        index.apply(&Event::Apply(rsg(
            "a",
            "one",
            "GroupReplication",
            &["web", "db"],
        )));
        index.apply(&Event::Apply(rsg("a", "two", "InplaceScaling", &["web"])));
        assert_eq!(index.claims_on(&key("a", "web")).len(), 2);
        index.apply(&Event::Apply(rsg("a", "one", "GroupReplication", &["db"])));
        assert_eq!(index.claims_on(&key("a", "web")).len(), 1);
        index.apply(&Event::Delete(rsg("a", "two", "InplaceScaling", &["web"])));
        assert!(index.claims_on(&key("a", "web")).is_empty());
        assert_eq!(index.claims_on(&key("a", "db"))[0].rsg_name, "one");
    }

    #[test]
    fn the_rsgs_with_a_target_in_a_namespace_are_found() {
        let index = TargetIndex::default();
        let elsewhere = |ns: &str, name: &str, target_ns: &str| {
            let target = crate::fixtures::deployment_target("t", "web", Some(target_ns));
            let strategy = serde_json::json!({"type": "GroupReplication"});
            crate::fixtures::rsg(ns, name, vec![target], strategy)
        };
        index.apply(&Event::Apply(elsewhere("a", "one", "models")));
        index.apply(&Event::Apply(elsewhere("a", "two", "other")));
        index.apply(&Event::Apply(rsg(
            "models",
            "own",
            "GroupReplication",
            &["web"],
        )));
        let mut found: Vec<String> = index
            .rsgs_targeting_namespace("models")
            .iter()
            .map(|r| format!("{}/{}", r.namespace.as_deref().unwrap_or_default(), r.name))
            .collect();
        found.sort();
        assert_eq!(found, ["a/one", "models/own"]);
    }

    #[test]
    fn relist_replaces_the_contents() {
        let index = TargetIndex::default();
        index.apply(&Event::Apply(rsg(
            "a",
            "gone",
            "GroupReplication",
            &["web"],
        )));
        index.apply(&Event::Init);
        index.apply(&Event::InitApply(rsg(
            "a",
            "kept",
            "GroupReplication",
            &["db"],
        )));
        assert_eq!(
            index.claims_on(&key("a", "web")).len(),
            1,
            "old state serves until the relist completes"
        );
        index.apply(&Event::InitDone);
        assert!(index.claims_on(&key("a", "web")).is_empty());
        assert_eq!(index.claims_on(&key("a", "db")).len(), 1);
        assert_eq!(index.len(), 1);
    }
}
