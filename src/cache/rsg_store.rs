//! RSGs are cached twice from one watch: whole, as compact text parsed when read (a parsed
//! RSG takes about 4.5 KB, its text about 1.9 KB), and as names only, for the controller's
//! queue and the triggers that look RSGs up by name (about 0.6 KB each, never parsed).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{PartialObjectMeta, PartialObjectMetaExt};
use kube::runtime::reflector::{self, store::Writer, ObjectRef, Store};
use kube::runtime::watcher::Event;

use super::compact_store::{compact_store, CompactStore, CompactWriter};
use super::namespace_scope::CacheWriter;
use crate::api::ResourceScalingGroup;

/// What the names cache holds of an RSG: its namespace and name.
pub type RsgName = PartialObjectMeta<ResourceScalingGroup>;

/// The names (namespace and name) of the cached RSGs.
pub type RsgNames = Store<RsgName>;

/// `reference` as a reference to the same object of another type: an RSG and its name
/// entry, whichever way round.
pub fn retyped<From, To>(reference: &ObjectRef<From>) -> ObjectRef<To>
where
    From: kube::Resource<DynamicType = ()>,
    To: kube::Resource<DynamicType = ()>,
{
    let mut retyped = ObjectRef::new(&reference.name);
    retyped.namespace = reference.namespace.clone();
    retyped
}

/// Feeds both caches of RSGs from one watch.
pub struct RsgWriters {
    whole: CompactWriter<ResourceScalingGroup>,
    names: Writer<RsgName>,
}

/// Empty caches of RSGs, whole and by name, and their writer.
pub fn rsg_stores() -> (CompactStore<ResourceScalingGroup>, RsgNames, RsgWriters) {
    let (whole, whole_writer) = compact_store();
    let (names, names_writer) = reflector::store();
    let writers = RsgWriters {
        whole: whole_writer,
        names: names_writer,
    };
    (whole, names, writers)
}

/// What the names cache keeps of an RSG: its namespace and name.
fn name_of(rsg: &ResourceScalingGroup) -> RsgName {
    ObjectMeta {
        name: rsg.metadata.name.clone(),
        namespace: rsg.metadata.namespace.clone(),
        ..ObjectMeta::default()
    }
    .into_response_partial()
}

impl CacheWriter<ResourceScalingGroup> for RsgWriters {
    type Reader = CompactStore<ResourceScalingGroup>;

    fn reader(&self) -> Self::Reader {
        self.whole.as_reader()
    }

    /// The names first: once the whole cache shows an RSG, the names cache does too.
    fn apply(&mut self, event: &Event<ResourceScalingGroup>) {
        let names = match event {
            Event::Init => Event::Init,
            Event::InitApply(rsg) => Event::InitApply(name_of(rsg)),
            Event::InitDone => Event::InitDone,
            Event::Apply(rsg) => Event::Apply(name_of(rsg)),
            Event::Delete(rsg) => Event::Delete(name_of(rsg)),
        };
        self.names.apply_watcher_event(&names);
        self.whole.apply_watcher_event(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_caches_follow_the_watch() {
        let (whole, names, mut writers) = rsg_stores();
        let rsg = crate::fixtures::rsg("n", "g", Vec::new(), json!({"type": "GroupReplication"}));
        writers.apply(&Event::Apply(rsg.clone()));
        let reference = ObjectRef::<ResourceScalingGroup>::new("g").within("n");
        assert_eq!(whole.get(&reference).as_deref(), Some(&rsg));
        let named = names.state();
        assert_eq!(named.len(), 1);
        assert_eq!(named[0].metadata.name.as_deref(), Some("g"));
        assert!(named[0].metadata.annotations.is_none());
        let name_entry = ObjectRef::from_obj(named[0].as_ref());
        assert_eq!(retyped::<_, ResourceScalingGroup>(&name_entry), reference);
        assert_eq!(retyped::<_, RsgName>(&reference), name_entry);
        writers.apply(&Event::Delete(rsg));
        assert!(whole.get(&reference).is_none());
        assert!(names.state().is_empty());
    }
}
