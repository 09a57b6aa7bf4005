//! One labelled pod per active group, so `status.selector` counts groups, not pods.
//!
//! The pick prefers a ready pod of the first target and keeps the current representative
//! while it stays eligible. Labels are changed with a metadata-only patch: nothing restarts.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Pod;
use kube::api::Patch;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::group_pods::GroupPods;
use super::observe::Observation;
use crate::api::{ResourceScalingGroup, LABEL_GROUP_ID, LABEL_REPRESENTATIVE};
use crate::api_errors;
use crate::reconcile::{Context, ObjectName, ReconcileError};
use crate::workload::{pod_selector, selector_matches_template};

/// Whether the pod's Ready condition is True.
pub(super) fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn is_eligible(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && !matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
}

/// Picks the representative among a group's pods (pure): the current one if it is still
/// eligible and either ready or no other pod is, else the first ready pod, else the first
/// eligible pod, by name.
pub fn pick_representative<'a>(pods: &[&'a Pod], rsg_name: &str) -> Option<&'a Pod> {
    let mut eligible: Vec<&Pod> = pods.iter().copied().filter(|p| is_eligible(p)).collect();
    eligible.sort_by_key(|p| p.name_any());
    let any_ready = eligible.iter().any(|p| is_ready(p));
    let current = eligible.iter().find(|p| {
        p.labels().get(LABEL_REPRESENTATIVE).map(String::as_str) == Some(rsg_name)
            && (is_ready(p) || !any_ready)
    });
    current
        .or_else(|| eligible.iter().find(|p| is_ready(p)))
        .or_else(|| eligible.first())
        .copied()
}

/// Which labelled pods are this RSG's representatives. The label's value is the RSG's name,
/// unique in the RSG's namespace but not in a base namespace that RSGs of several namespaces
/// share: there only the first base's own pods count, so two RSGs of one name never take
/// each other's labels away.
struct RepresentativeScope<'a> {
    rsg_name: &'a str,
    rsg_namespace: &'a str,
    base_namespace: &'a str,
    base_selector: BTreeMap<String, String>,
}

impl RepresentativeScope<'_> {
    fn labelled_by_us(&self, pod: &Pod) -> bool {
        let labels = pod.labels();
        if labels.get(LABEL_REPRESENTATIVE).map(String::as_str) != Some(self.rsg_name) {
            return false;
        }
        match pod.namespace().as_deref() {
            Some(ns) if ns == self.rsg_namespace => true,
            Some(ns) if ns == self.base_namespace => {
                !labels.contains_key(LABEL_GROUP_ID)
                    && selector_matches_template(&self.base_selector, labels)
            }
            _ => false,
        }
    }
}

/// Sets (or, with `None`, removes) the representative label of a pod (metadata only).
async fn set_label(
    ctx: &Context,
    namespace: &str,
    pod: &str,
    value: Option<&str>,
) -> Result<(), ReconcileError> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let patch = json!({"metadata": {"labels": {LABEL_REPRESENTATIVE: value}}});
    match api
        .patch(pod, &crate::patch_params(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(err) if api_errors::is_not_found(&err) => Ok(()),
        Err(err) => Err(ReconcileError::patch(ObjectName::new(
            "Pod", namespace, pod,
        ))(err)),
    }
}

/// Labels one pod per active group and unlabels every other pod of this RSG. Returns the
/// groups that have a representative.
pub async fn ensure_representatives(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    obs: &Observation,
    pods: &GroupPods,
    active: &BTreeSet<i32>,
) -> Result<BTreeSet<i32>, ReconcileError> {
    let rsg_name = rsg.name_any();
    let rsg_namespace = rsg.namespace().unwrap_or_default();
    let Some(first) = obs.targets.first() else {
        return Ok(BTreeSet::new());
    };
    let mut chosen: BTreeMap<(String, String), i32> = BTreeMap::new();
    for id in active {
        if let Some(pod) = pick_representative(&pods.of_first_target(*id), &rsg_name) {
            chosen.insert((pod.namespace().unwrap_or_default(), pod.name_any()), *id);
        }
    }
    // Current representatives: pods carrying the label, as the cache sees them, plus any in
    // the lists just read.
    let ours = RepresentativeScope {
        rsg_name: &rsg_name,
        rsg_namespace: &rsg_namespace,
        base_namespace: &first.base_namespace,
        base_selector: pod_selector(&first.base),
    };
    let namespaces: BTreeSet<&str> = [rsg_namespace.as_str(), first.base_namespace.as_str()].into();
    let mut labelled: BTreeSet<(String, String)> = namespaces
        .into_iter()
        .flat_map(|namespace| {
            crate::cache::labelled(
                &ctx.stores.representatives,
                &ctx.stores.representative_index,
                namespace,
                &rsg_name,
            )
        })
        .filter(|p| ours.labelled_by_us(p))
        .map(|p| (p.namespace().unwrap_or_default(), p.name_any()))
        .collect();
    for pod in pods.all() {
        if pod.labels().get(LABEL_REPRESENTATIVE) == Some(&rsg_name) {
            labelled.insert((pod.namespace().unwrap_or_default(), pod.name_any()));
        }
    }
    for (namespace, name) in labelled.difference(&chosen.keys().cloned().collect()) {
        set_label(ctx, namespace, name, None).await?;
    }
    for (namespace, name) in chosen.keys() {
        if !labelled.contains(&(namespace.clone(), name.clone())) {
            set_label(ctx, namespace, name, Some(&rsg_name)).await?;
        }
    }
    Ok(chosen.values().copied().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ready: bool, representative: bool) -> Pod {
        let mut labels = serde_json::Map::new();
        if representative {
            labels.insert(LABEL_REPRESENTATIVE.into(), "g".into());
        }
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
        }))
        .unwrap()
    }

    #[test]
    fn in_a_shared_base_namespace_only_the_own_bases_pods_count() {
        let scope = RepresentativeScope {
            rsg_name: "llm",
            rsg_namespace: "team-a",
            base_namespace: "production",
            base_selector: [("app".to_string(), "llm-a".to_string())].into(),
        };
        let labelled = |ns: &str, app: &str, value: &str| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": "p", "namespace": ns,
                "labels": {"app": app, LABEL_REPRESENTATIVE: value}}}))
            .unwrap()
        };
        assert!(scope.labelled_by_us(&labelled("team-a", "anything", "llm")));
        assert!(scope.labelled_by_us(&labelled("production", "llm-a", "llm")));
        assert!(
            !scope.labelled_by_us(&labelled("production", "llm-b", "llm")),
            "team-b's RSG llm labels its own base's pods here"
        );
        assert!(!scope.labelled_by_us(&labelled("production", "llm-a", "other")));
        assert!(!scope.labelled_by_us(&labelled("elsewhere", "llm-a", "llm")));
    }

    #[test]
    fn prefers_ready_pods_and_keeps_a_good_current_choice() {
        let (a, b, c) = (
            pod("a", false, false),
            pod("b", true, false),
            pod("c", true, true),
        );
        assert_eq!(
            pick_representative(&[&a, &b, &c], "g").map(|p| p.name_any()),
            Some("c".into())
        );
        assert_eq!(
            pick_representative(&[&a, &b], "g").map(|p| p.name_any()),
            Some("b".into())
        );
        let stale = pod("z", false, true);
        assert_eq!(
            pick_representative(&[&stale, &b], "g").map(|p| p.name_any()),
            Some("b".into())
        );
        assert_eq!(
            pick_representative(&[&stale, &a], "g").map(|p| p.name_any()),
            Some("z".into())
        );
        assert_eq!(pick_representative(&[], "g").map(|p| p.name_any()), None);
    }
}
