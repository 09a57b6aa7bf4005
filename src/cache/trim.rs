//! What the caches keep of each object: what rsg reads, and no more. At 10,000 RSGs the
//! cache is most of rsg's memory, so every field a reconcile never reads is dropped as the
//! object arrives (managed fields are dropped for every kind by the reflector itself).

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod, PodSpec, PodStatus, Service, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::ResourceExt;

use crate::api::{ResourceScalingGroup, LABEL_GROUP_ID};

/// kubectl's copy of what was last applied: never read by rsg, often the largest annotation.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Keeps every field.
pub(super) fn keep_all<K>(_: &mut K) {}

/// What rsg reads of an RSG: everything but kubectl's last-applied annotation (a second copy
/// of the spec). rsg writes RSGs by patch only, so the annotation is never written back.
pub(super) fn trim_rsg(rsg: &mut ResourceScalingGroup) {
    rsg.annotations_mut().remove(LAST_APPLIED);
}

/// What rsg reads of a Service from the cache: its name, labels and owners, its selector
/// (for the index of the Services that front a base) and its type. Every Service of the
/// cluster is cached, most of them nobody's base; a group that needs a copy of a base
/// Service reads it whole from the API server.
pub(super) fn trim_service(service: &mut Service) {
    service.status = None;
    service.metadata.annotations = None;
    service.spec = service.spec.take().map(|spec| ServiceSpec {
        selector: spec.selector,
        type_: spec.type_,
        ..ServiceSpec::default()
    });
}

/// True for a copy (a workload of group 1 and up), whose pod spec the cache drops: rsg reads
/// its metadata, replicas, selector and readiness counts, never its pod template, which the
/// snapshot it was built from holds. A base labelled so (by hand) is cached without its pod
/// spec too, so a base is never read from the cache when this holds.
pub fn trimmed_as_copy(meta: &ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .and_then(|labels| labels.get(LABEL_GROUP_ID))
        .and_then(|id| id.parse::<i32>().ok())
        .is_some_and(|id| id > 0)
}

/// What rsg reads of a Deployment: a base whole but for its status conditions (its template
/// is snapshotted); a copy without its pod spec and strategy.
pub(super) fn trim_deployment(deployment: &mut Deployment) {
    deployment.annotations_mut().remove(LAST_APPLIED);
    if let Some(status) = deployment.status.as_mut() {
        status.conditions = None;
    }
    if trimmed_as_copy(&deployment.metadata) {
        if let Some(spec) = deployment.spec.as_mut() {
            spec.template.spec = None;
            spec.strategy = None;
        }
    }
}

/// What rsg reads of a StatefulSet: as for a Deployment (a copy keeps its volume claim
/// templates' absence: rsg never reads them either).
pub(super) fn trim_statefulset(statefulset: &mut StatefulSet) {
    statefulset.annotations_mut().remove(LAST_APPLIED);
    if let Some(status) = statefulset.status.as_mut() {
        status.conditions = None;
    }
    if trimmed_as_copy(&statefulset.metadata) {
        if let Some(spec) = statefulset.spec.as_mut() {
            spec.template.spec = None;
            spec.volume_claim_templates = None;
            spec.update_strategy = None;
        }
    }
}

/// What rsg reads of a pod: metadata, the node it is bound to, its phase and conditions.
pub(super) fn trim_pod(pod: &mut Pod) {
    pod.metadata.annotations = None;
    let node_name = pod.spec.take().and_then(|spec| spec.node_name);
    pod.spec = Some(PodSpec {
        node_name,
        ..PodSpec::default()
    });
    let status = pod.status.take().unwrap_or_default();
    pod.status = Some(PodStatus {
        phase: status.phase,
        conditions: status.conditions,
        ..PodStatus::default()
    });
}

/// What rsg reads of a Node: its name and labels.
pub(super) fn trim_node(node: &mut PartialObjectMeta<Node>) {
    node.annotations_mut().clear();
    node.metadata.owner_references = None;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(group: &str) -> Deployment {
        let mut value = crate::fixtures::deployment("n", "d", 1);
        value["metadata"]["labels"] = json!({LABEL_GROUP_ID: group});
        value["metadata"]["annotations"] = json!({LAST_APPLIED: "{}", "keep": "1"});
        value["status"] =
            json!({"readyReplicas": 1, "conditions": [{"type": "Available", "status": "True"}]});
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_copy_keeps_what_readiness_and_grouping_read_and_loses_its_pod_spec() {
        let mut copy = deployment("2");
        trim_deployment(&mut copy);
        let spec = copy.spec.as_ref().unwrap();
        assert!(spec.template.spec.is_none());
        assert_eq!(spec.replicas, Some(1));
        assert!(spec.selector.match_labels.is_some());
        assert!(spec.template.metadata.is_some());
        let status = copy.status.as_ref().unwrap();
        assert_eq!(status.ready_replicas, Some(1));
        assert!(status.conditions.is_none());
        assert_eq!(copy.annotations().keys().collect::<Vec<_>>(), ["keep"]);
    }

    #[test]
    fn a_base_keeps_its_pod_template_for_its_snapshot() {
        for group in ["0", "not-a-number"] {
            let mut base = deployment(group);
            trim_deployment(&mut base);
            assert!(base.spec.unwrap().template.spec.is_some(), "group {group}");
        }
    }

    #[test]
    fn a_service_keeps_its_selector_type_and_labels_only() {
        let mut value = crate::fixtures::service("n", "s");
        value["metadata"]["labels"] = json!({"app": "s"});
        value["metadata"]["annotations"] = json!({"prometheus.io/scrape": "true"});
        value["spec"]["type"] = json!("NodePort");
        value["spec"]["clusterIP"] = json!("None");
        let mut service: Service = serde_json::from_value(value).unwrap();
        trim_service(&mut service);
        let spec = service.spec.as_ref().unwrap();
        assert_eq!(spec.selector.as_ref().unwrap()["app"], "s");
        assert_eq!(spec.type_.as_deref(), Some("NodePort"));
        assert!(spec.ports.is_none() && spec.cluster_ip.is_none());
        assert!(service.metadata.annotations.is_none());
        assert_eq!(service.labels()["app"], "s");
    }

    #[test]
    fn an_rsg_loses_only_kubectls_copy_of_its_spec() {
        let mut rsg =
            crate::fixtures::rsg("n", "g", Vec::new(), json!({"type": "GroupReplication"}));
        rsg.metadata.annotations = Some(
            [
                (LAST_APPLIED.to_string(), "{}".to_string()),
                ("a".to_string(), "1".to_string()),
            ]
            .into(),
        );
        trim_rsg(&mut rsg);
        assert_eq!(rsg.annotations().keys().collect::<Vec<_>>(), ["a"]);
    }

    /// Writes `object`, trimmed, to a compact store and reads it back.
    fn cached<K>(mut object: K, trim: fn(&mut K)) -> Option<K>
    where
        K: kube::Resource<DynamicType = ()>
            + serde::Serialize
            + serde::de::DeserializeOwned
            + Clone,
    {
        use kube::runtime::{reflector::ObjectRef, watcher::Event};
        trim(&mut object);
        let (store, mut writer) = super::super::compact_store::compact_store::<K>();
        let reference = ObjectRef::new(&object.name_any()).within(&object.namespace().unwrap());
        writer.apply_watcher_event(&Event::Apply(object));
        store.get(&reference).map(|read| read.as_ref().clone())
    }

    #[test]
    fn every_trimmed_kind_reads_back_from_the_compact_cache_as_it_was_trimmed() {
        for group in ["0", "2"] {
            let mut expected = deployment(group);
            trim_deployment(&mut expected);
            assert_eq!(
                cached(deployment(group), trim_deployment),
                Some(expected),
                "Deployment of group {group}"
            );
        }
        let mut service: Service =
            serde_json::from_value(crate::fixtures::service("n", "s")).unwrap();
        service.spec.as_mut().unwrap().type_ = Some("NodePort".into());
        let mut expected = service.clone();
        trim_service(&mut expected);
        assert_eq!(cached(service, trim_service), Some(expected));
        let revision: k8s_openapi::api::apps::v1::ControllerRevision =
            serde_json::from_value(json!({
                "apiVersion": "apps/v1", "kind": "ControllerRevision",
                "metadata": {"name": "r", "namespace": "n"}, "revision": 1,
                "data": crate::fixtures::deployment("n", "d", 1),
            }))
            .unwrap();
        assert_eq!(cached(revision.clone(), keep_all), Some(revision));
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "n"},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
        }))
        .unwrap();
        let mut expected = pod.clone();
        trim_pod(&mut expected);
        assert_eq!(cached(pod, trim_pod), Some(expected));
    }
}
