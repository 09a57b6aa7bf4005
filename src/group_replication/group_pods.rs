//! The pods of an RSG's active groups, read once per reconcile (from the cache, except group
//! 0's when they must be listed) and shared by representative labelling and the placement
//! report.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use super::observe::{Observation, TargetState};
use super::representatives::is_ready;
use crate::api::{ResourceScalingGroup, LABEL_GROUP_ID};
use crate::cache::labelled;
use crate::reconcile::{Context, ReconcileError};
use crate::workload::{pod_selector, selector_matches_template};

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
    selector_matches_template(selector, pod.labels())
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

/// Whether a base may run pods: a Deployment or StatefulSet whose status counts none has
/// none to list (other kinds' status says less, so they are listed).
fn may_have_pods(target: &TargetState) -> bool {
    let counted = target
        .base
        .pointer("/status/replicas")
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(0);
    counted > 0 || !target.kind.is_watched()
}

/// Group 0's ready representative as the cache sees it: while it stays so, the bases' pods
/// need not be listed.
fn cached_ready_representative(
    ctx: &Context,
    rsg_name: &str,
    base_namespace: &str,
    base_selector: &BTreeMap<String, String>,
) -> Option<Pod> {
    labelled(
        &ctx.stores.representatives,
        &ctx.stores.representative_index,
        base_namespace,
        rsg_name,
    )
    .iter()
    .filter(|p| !p.labels().contains_key(LABEL_GROUP_ID) && selects(base_selector, p))
    .find(|p| p.metadata.deletion_timestamp.is_none() && is_ready(p))
    .map(|p| (**p).clone())
}

/// Group 0's pods: the first base's (every base's when placement is reported). Listed from
/// the API server, as bases' pods carry no label rsg watches; with no placement to report and
/// a ready representative cached, that representative alone.
async fn group0_pods(
    ctx: &Context,
    rsg_name: &str,
    obs: &Observation,
) -> Result<Vec<GroupPod>, ReconcileError> {
    let Some(first) = obs.targets.first() else {
        return Ok(Vec::new());
    };
    if obs.placement.is_none() {
        let selector = pod_selector(&first.base);
        if let Some(pod) =
            cached_ready_representative(ctx, rsg_name, &first.base_namespace, &selector)
        {
            return Ok(vec![GroupPod { target: 0, pod }]);
        }
    }
    let bases = if obs.placement.is_some() {
        obs.targets.len()
    } else {
        1
    };
    let mut pods = Vec::new();
    for (index, target) in obs.targets.iter().enumerate().take(bases) {
        let selector = pod_selector(&target.base);
        if selector.is_empty() || !may_have_pods(target) {
            continue;
        }
        for pod in base_pods(ctx, &target.base_namespace, &selector).await? {
            pods.push(GroupPod { target: index, pod });
        }
    }
    Ok(pods)
}

/// The pods of every group in `active`: copies' pods from the cache (labelled with the RSG's
/// name in its namespace), group 0's as [`group0_pods`] says.
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
        pods.by_group
            .insert(0, group0_pods(ctx, &rsg_name, obs).await?);
    }
    if !active.iter().any(|id| *id > 0) {
        return Ok(pods);
    }
    let copy_pods = labelled(
        &ctx.stores.group_pods,
        &ctx.stores.members,
        &rsg_namespace,
        &rsg_name,
    );
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
                        pod: (**pod).clone(),
                    })
            })
            .collect();
        pods.by_group.insert(*id, group);
    }
    Ok(pods)
}
