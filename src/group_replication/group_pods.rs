//! The pods of an RSG's active groups, read once per reconcile and shared by representative
//! labelling and the placement report.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use super::observe::Observation;
use crate::api::{ResourceScalingGroup, LABEL_GROUP_ID, LABEL_NAME};
use crate::reconcile::{Context, ReconcileError};
use crate::workload::pod_selector;

/// One pod of a group, with the index of the target whose workload runs it.
pub struct GroupPod {
    /// Index of the target in the spec.
    pub target: usize,
    /// The pod.
    pub pod: Pod,
}

/// The pods of each active group.
#[derive(Default)]
pub struct GroupPods {
    /// Pods by group id. Group 0 holds the first base's pods, or with placement every
    /// base's pods.
    pub by_group: BTreeMap<i32, Vec<GroupPod>>,
}

impl GroupPods {
    /// Every pod read, of every group.
    pub fn all(&self) -> impl Iterator<Item = &Pod> {
        self.by_group.values().flatten().map(|p| &p.pod)
    }

    /// The pods of group `id`.
    pub fn of_group(&self, id: i32) -> Vec<&Pod> {
        self.by_group
            .get(&id)
            .into_iter()
            .flatten()
            .map(|p| &p.pod)
            .collect()
    }

    /// The pods of group `id` that the first target's workload runs.
    pub fn of_first_target(&self, id: i32) -> Vec<&Pod> {
        self.by_group
            .get(&id)
            .into_iter()
            .flatten()
            .filter(|p| p.target == 0)
            .map(|p| &p.pod)
            .collect()
    }
}

fn selects(selector: &BTreeMap<String, String>, pod: &Pod) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| pod.labels().get(k) == Some(v))
}

/// Lists the pods of a base by its selector, copies' pods (which carry a group label) left
/// out.
async fn base_pods(
    ctx: &Context,
    namespace: &str,
    selector: &BTreeMap<String, String>,
) -> Result<Vec<Pod>, ReconcileError> {
    let selector: Vec<String> = selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .chain([format!("!{LABEL_GROUP_ID}")])
        .collect();
    Ok(Api::<Pod>::namespaced(ctx.client.clone(), namespace)
        .list(&ListParams::default().labels(&selector.join(",")))
        .await
        .map_err(ReconcileError::list("Pod", namespace))?
        .items)
}

/// Lists the pods of every group in `active`: copies' pods by the RSG's label in its
/// namespace, group 0's by the bases' selectors (the first base's only, unless placement is
/// reported).
pub async fn read_group_pods(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    obs: &Observation,
    active: &BTreeSet<i32>,
) -> Result<GroupPods, ReconcileError> {
    let rsg_name = rsg.name_any();
    let rsg_namespace = rsg.namespace().unwrap_or_default();
    let mut pods = GroupPods::default();
    if active.contains(&0) {
        let bases = if obs.placement.is_some() {
            obs.targets.len()
        } else {
            1
        };
        let mut group0 = Vec::new();
        for (index, target) in obs.targets.iter().enumerate().take(bases) {
            let selector = pod_selector(&target.base);
            if selector.is_empty() {
                continue;
            }
            for pod in base_pods(ctx, &target.base_namespace, &selector).await? {
                group0.push(GroupPod { target: index, pod });
            }
        }
        pods.by_group.insert(0, group0);
    }
    if !active.iter().any(|id| *id > 0) {
        return Ok(pods);
    }
    let copy_pods = Api::<Pod>::namespaced(ctx.client.clone(), &rsg_namespace)
        .list(&ListParams::default().labels(&format!("{LABEL_NAME}={rsg_name}")))
        .await
        .map_err(ReconcileError::list("Pod", &rsg_namespace))?
        .items;
    for id in active.iter().filter(|id| **id > 0) {
        let selectors: Vec<(usize, BTreeMap<String, String>)> = obs
            .targets
            .iter()
            .enumerate()
            .filter_map(|(index, t)| t.copies.get(id).map(|c| (index, pod_selector(c))))
            .collect();
        let group = copy_pods
            .iter()
            .filter_map(|pod| {
                selectors
                    .iter()
                    .find(|(_, selector)| selects(selector, pod))
                    .map(|(target, _)| GroupPod {
                        target: *target,
                        pod: pod.clone(),
                    })
            })
            .collect();
        pods.by_group.insert(*id, group);
    }
    Ok(pods)
}
