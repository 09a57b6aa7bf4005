//! Where a group's pods landed and why some could not (pure): the domain of the nodes its
//! scheduled pods run on, and the scheduler's reason from an unschedulable pod.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

/// Separator of a group's domains when its pods are split across several.
pub const DOMAIN_SEPARATOR: &str = "+";

/// What a group's pods say about its placement.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupPlacementReport {
    /// The `packDomain` values of the nodes its scheduled pods run on, joined by `+`.
    pub domain: Option<String>,
    /// `<pod>: <scheduler message>` of the first (by name) pod the scheduler could not place.
    pub unschedulable: Option<String>,
    /// Whether a live pod of the group is not bound to a node yet.
    pub pending: bool,
}

fn is_live(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && !matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
}

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.node_name.as_deref()
}

/// The scheduler's message on an unbound pod it marked unschedulable.
fn unschedulable_message(pod: &Pod) -> Option<String> {
    if node_of(pod).is_some() {
        return None;
    }
    let condition = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
    if condition.reason.as_deref() != Some("Unschedulable") {
        return None;
    }
    Some(
        condition
            .message
            .clone()
            .unwrap_or_else(|| "unschedulable".into()),
    )
}

/// The report of a group from its pods. `pack_domain` is the node label key whose values
/// name domains (no domain is reported without one); `node_label(node, key)` reads a node's
/// label from the cache.
pub fn report_group(
    pods: &[&Pod],
    pack_domain: Option<&str>,
    node_label: impl Fn(&str, &str) -> Option<String>,
) -> GroupPlacementReport {
    let mut live: Vec<&Pod> = pods.iter().copied().filter(|p| is_live(p)).collect();
    live.sort_by_key(|p| p.name_any());
    let domains: BTreeSet<String> = match pack_domain {
        Some(key) => live
            .iter()
            .filter_map(|p| node_of(p))
            .filter_map(|node| node_label(node, key))
            .collect(),
        None => BTreeSet::new(),
    };
    let domain = (!domains.is_empty()).then(|| {
        domains
            .into_iter()
            .collect::<Vec<_>>()
            .join(DOMAIN_SEPARATOR)
    });
    let unschedulable = live.iter().find_map(|pod| {
        unschedulable_message(pod).map(|message| format!("{}: {message}", pod.name_any()))
    });
    GroupPlacementReport {
        domain,
        unschedulable,
        pending: live.iter().any(|p| node_of(p).is_none()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, node: Option<&str>, scheduled: Option<(&str, &str)>) -> Pod {
        let mut value = json!({"metadata": {"name": name}, "spec": {"containers": []},
            "status": {"phase": "Pending"}});
        if let Some(node) = node {
            value["spec"]["nodeName"] = json!(node);
            value["status"]["phase"] = json!("Running");
        }
        if let Some((reason, message)) = scheduled {
            value["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "False",
                "reason": reason, "message": message}]);
        }
        serde_json::from_value(value).expect("a pod")
    }

    fn zone(node: &str, key: &str) -> Option<String> {
        (key == "zone").then(|| format!("zone-{}", &node[..1]))
    }

    #[test]
    fn a_packed_group_reports_its_one_domain() {
        let (a, b) = (pod("p-1", Some("a1"), None), pod("d-1", Some("a2"), None));
        let report = report_group(&[&a, &b], Some("zone"), zone);
        assert_eq!(report.domain.as_deref(), Some("zone-a"));
        assert_eq!(report.unschedulable, None);
        assert!(!report.pending);
    }

    #[test]
    fn a_split_group_lists_every_domain_and_no_key_reports_none() {
        let (a, b) = (pod("p-1", Some("a1"), None), pod("d-1", Some("c2"), None));
        let report = report_group(&[&a, &b], Some("zone"), zone);
        assert_eq!(report.domain.as_deref(), Some("zone-a+zone-c"));
        assert_eq!(report_group(&[&a, &b], None, zone).domain, None);
        assert_eq!(
            report_group(&[&a], Some("rack"), zone).domain,
            None,
            "nodes without the label"
        );
    }

    #[test]
    fn an_unschedulable_pod_gives_the_schedulers_reason() {
        let placed = pod("p-1", Some("a1"), None);
        let stuck = pod(
            "d-1",
            None,
            Some((
                "Unschedulable",
                "0/6 nodes are available: 6 Insufficient cpu.",
            )),
        );
        let report = report_group(&[&placed, &stuck], Some("zone"), zone);
        assert_eq!(
            report.unschedulable.as_deref(),
            Some("d-1: 0/6 nodes are available: 6 Insufficient cpu.")
        );
        assert!(report.pending);
        assert_eq!(report.domain.as_deref(), Some("zone-a"));
    }

    #[test]
    fn a_pod_waiting_for_the_scheduler_is_pending_but_not_unschedulable() {
        let waiting = pod("d-1", None, None);
        let gated = pod("d-2", None, Some(("SchedulingGated", "gated")));
        let report = report_group(&[&waiting, &gated], Some("zone"), zone);
        assert_eq!(report.unschedulable, None);
        assert!(report.pending);
    }
}
