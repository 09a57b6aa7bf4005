//! Turning events on managed objects into reconcile requests for the RSGs they belong to.

use std::sync::Arc;

use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use super::{retyped, ReconcileFeed, RsgNames, TargetIndex};
use crate::api::{ResourceScalingGroup, LABEL_NAME, LABEL_REPRESENTATIVE};
use crate::workload::WorkloadKey;

/// Sends RSG references to the controller.
#[derive(Clone)]
pub struct RsgTriggers {
    feed: Arc<ReconcileFeed>,
    rsgs: RsgNames,
    target_index: Arc<TargetIndex>,
}

impl RsgTriggers {
    /// Triggers that resolve owners through the RSG store and the target index.
    pub fn new(feed: Arc<ReconcileFeed>, rsgs: RsgNames, target_index: Arc<TargetIndex>) -> Self {
        Self {
            feed,
            rsgs,
            target_index,
        }
    }

    /// Sends a trigger for every RSG `map` finds for the objects of `event`.
    pub fn send_for_event<K>(
        &self,
        event: &watcher::Event<K>,
        map: fn(&Self, &K) -> Vec<ObjectRef<ResourceScalingGroup>>,
    ) {
        let object = match event {
            watcher::Event::Apply(o) | watcher::Event::Delete(o) | watcher::Event::InitApply(o) => {
                o
            }
            watcher::Event::Init | watcher::Event::InitDone => return,
        };
        for reference in map(self, object) {
            self.feed.offer(reference);
        }
    }

    /// The RSG itself.
    pub fn for_itself(&self, rsg: &ResourceScalingGroup) -> Vec<ObjectRef<ResourceScalingGroup>> {
        vec![ObjectRef::from_obj(rsg)]
    }

    /// An object labelled `rsg.io/name=<rsg>` in the RSG's namespace.
    pub fn for_labelled<K: Resource>(&self, object: &K) -> Vec<ObjectRef<ResourceScalingGroup>> {
        match (object.labels().get(LABEL_NAME), object.namespace()) {
            (Some(name), Some(namespace)) => vec![ObjectRef::new(name).within(&namespace)],
            _ => Vec::new(),
        }
    }

    /// A workload: its copies are labelled in the RSG namespace; an adopted base may live in
    /// another namespace, so the RSGs targeting it are looked up in the index too.
    pub fn for_workload<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
    ) -> Vec<ObjectRef<ResourceScalingGroup>> {
        let key = WorkloadKey {
            group: K::group(&()).into_owned(),
            kind: K::kind(&()).into_owned(),
            namespace: object.namespace().unwrap_or_default(),
            name: object.name_any(),
        };
        self.for_workload_key(object, &key)
    }

    /// A workload of any kind, known as `key`: the RSG its label names (a copy) and the RSGs
    /// claiming it (a base, leader or follower).
    pub fn for_workload_key<K: Resource>(
        &self,
        object: &K,
        key: &WorkloadKey,
    ) -> Vec<ObjectRef<ResourceScalingGroup>> {
        let mut refs = self.for_labelled(object);
        for claim in self.target_index.claims_on(key) {
            let reference = ObjectRef::new(&claim.rsg_name).within(&claim.rsg_namespace);
            if !refs.contains(&reference) {
                refs.push(reference);
            }
        }
        refs
    }

    /// A grant: every RSG with a target in the grant's namespace (consent given or taken back).
    pub fn for_grant<K: Resource>(&self, grant: &K) -> Vec<ObjectRef<ResourceScalingGroup>> {
        let Some(namespace) = grant.namespace() else {
            return Vec::new();
        };
        self.target_index.rsgs_targeting_namespace(&namespace)
    }

    /// Asks for a reconcile of each of `rsgs`.
    pub fn offer_all(&self, rsgs: Vec<ObjectRef<ResourceScalingGroup>>) {
        for rsg in rsgs {
            self.feed.offer(rsg);
        }
    }

    /// A representative pod: `rsg.io/representative=<rsg>`; group 0's pods live in the base
    /// namespace, so every RSG with that name is triggered.
    pub fn for_representative<K: Resource>(
        &self,
        object: &K,
    ) -> Vec<ObjectRef<ResourceScalingGroup>> {
        let Some(name) = object.labels().get(LABEL_REPRESENTATIVE) else {
            return Vec::new();
        };
        self.rsgs
            .state()
            .iter()
            .filter(|rsg| &rsg.name_any() == name)
            .map(|rsg| retyped(&ObjectRef::from_obj(rsg.as_ref())))
            .collect()
    }
}
