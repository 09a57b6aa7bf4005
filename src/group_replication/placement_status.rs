//! The `Placement` condition of a GroupReplication RSG (pure): whether every active group's
//! pods are placed, which cannot be and why, and which copy groups keep an older placement.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::placement::CopyPlacement;
use super::placement_report::GroupPlacementReport;
use crate::reconcile::conditions::with_condition;

/// Condition type telling whether the groups' pods are placed as `placement` asks.
pub const PLACEMENT: &str = "Placement";

/// What the Placement condition is made from.
pub struct PlacementInputs<'a> {
    /// The placement new copies get.
    pub placement: Option<&'a CopyPlacement>,
    /// Each active group's report.
    pub reports: &'a BTreeMap<i32, GroupPlacementReport>,
    /// Active copy groups made with another placement.
    pub placed_otherwise: &'a BTreeSet<i32>,
    /// Whether a rolling update replaces such groups (else they keep theirs: OnDelete).
    pub rolling: bool,
}

fn ids(ids: impl IntoIterator<Item = i32>) -> String {
    ids.into_iter()
        .map(|id| id.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `(status, reason, message)` of the condition; `None` when there is nothing to say (no
/// placement, and no group made with one).
fn placement_condition(inputs: &PlacementInputs<'_>) -> Option<(bool, &'static str, String)> {
    let unschedulable: Vec<(i32, &str)> = inputs
        .reports
        .iter()
        .filter_map(|(id, r)| r.unschedulable.as_deref().map(|m| (*id, m)))
        .collect();
    if let Some((id, message)) = unschedulable.first() {
        let groups = ids(unschedulable.iter().map(|(id, _)| *id));
        return Some((
            false,
            "Unschedulable",
            format!("groups that cannot be placed: {groups}; group {id}: {message}"),
        ));
    }
    if inputs.placement.is_none() && inputs.placed_otherwise.is_empty() {
        return None;
    }
    if !inputs.placed_otherwise.is_empty() {
        let groups = ids(inputs.placed_otherwise.iter().copied());
        return Some(if inputs.rolling {
            (
                false,
                "RollingUpdate",
                format!("copy groups being replaced to get the current placement: {groups}"),
            )
        } else {
            (
                false,
                "NewGroupsOnly",
                format!(
                    "copy groups made with another placement keep it under updateStrategy OnDelete: {groups}; new groups get the current one"
                ),
            )
        });
    }
    let pending: Vec<i32> = inputs
        .reports
        .iter()
        .filter(|(_, r)| r.pending)
        .map(|(id, _)| *id)
        .collect();
    if !pending.is_empty() {
        return Some((
            false,
            "Scheduling",
            format!("pods of groups {} wait for the scheduler", ids(pending)),
        ));
    }
    let placement = inputs.placement?;
    let mode = placement.mode();
    Some((
        true,
        "Placed",
        format!(
            "every group's pods are scheduled (packDomain {}, {mode}{})",
            placement.pack_domain,
            if placement.spread_groups {
                ", groups spread"
            } else {
                ""
            }
        ),
    ))
}

/// `conditions` with the Placement condition set, or removed when there is nothing to say.
pub fn with_placement_condition(
    mut conditions: Vec<Condition>,
    inputs: &PlacementInputs<'_>,
    generation: Option<i64>,
) -> Vec<Condition> {
    match placement_condition(inputs) {
        Some((status, reason, message)) => {
            with_condition(conditions, PLACEMENT, status, reason, message, generation)
        }
        None => {
            conditions.retain(|c| c.type_ != PLACEMENT);
            conditions
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::GroupPlacement;

    fn zone() -> CopyPlacement {
        CopyPlacement::of(&GroupPlacement {
            pack_domain: "topology.kubernetes.io/zone".into(),
            mode: None,
            spread_groups: Some(true),
        })
    }

    fn report(pending: bool, unschedulable: Option<&str>) -> GroupPlacementReport {
        GroupPlacementReport {
            domain: Some("zone-a".into()),
            unschedulable: unschedulable.map(str::to_string),
            pending,
        }
    }

    fn condition(inputs: &PlacementInputs<'_>) -> Option<(bool, &'static str, String)> {
        placement_condition(inputs)
    }

    #[test]
    fn placed_groups_say_how_and_no_placement_says_nothing() {
        let placement = zone();
        let reports = BTreeMap::from([(0, report(false, None)), (1, report(false, None))]);
        let none = BTreeSet::new();
        let inputs = PlacementInputs {
            placement: Some(&placement),
            reports: &reports,
            placed_otherwise: &none,
            rolling: false,
        };
        let (status, reason, message) = condition(&inputs).expect("a condition");
        assert!(status);
        assert_eq!(reason, "Placed");
        assert!(
            message.contains("topology.kubernetes.io/zone, Required, groups spread"),
            "{message}"
        );
        let unplaced = PlacementInputs {
            placement: None,
            ..inputs
        };
        assert_eq!(condition(&unplaced), None);
        let conditions = with_placement_condition(Vec::new(), &inputs, Some(1));
        assert_eq!(conditions.len(), 1);
        assert!(with_placement_condition(conditions, &unplaced, Some(1)).is_empty());
    }

    #[test]
    fn unschedulable_groups_come_first_with_the_schedulers_message() {
        let placement = zone();
        let reports = BTreeMap::from([
            (1, report(false, None)),
            (2, report(true, Some("d-1: 0/6 nodes are available"))),
        ]);
        let otherwise = BTreeSet::from([1]);
        let (status, reason, message) = condition(&PlacementInputs {
            placement: Some(&placement),
            reports: &reports,
            placed_otherwise: &otherwise,
            rolling: true,
        })
        .expect("a condition");
        assert!(!status);
        assert_eq!(reason, "Unschedulable");
        assert_eq!(
            message,
            "groups that cannot be placed: 2; group 2: d-1: 0/6 nodes are available"
        );
    }

    #[test]
    fn older_placements_are_replaced_under_rolling_update_and_kept_under_on_delete() {
        let placement = zone();
        let reports = BTreeMap::from([(1, report(false, None)), (2, report(false, None))]);
        let otherwise = BTreeSet::from([1, 2]);
        let on_delete = PlacementInputs {
            placement: Some(&placement),
            reports: &reports,
            placed_otherwise: &otherwise,
            rolling: false,
        };
        let (status, reason, message) = condition(&on_delete).expect("a condition");
        assert!(!status);
        assert_eq!(reason, "NewGroupsOnly");
        assert!(
            message.ends_with("OnDelete: 1, 2; new groups get the current one"),
            "{message}"
        );
        let rolling = PlacementInputs {
            rolling: true,
            ..on_delete
        };
        assert_eq!(condition(&rolling).map(|c| c.1), Some("RollingUpdate"));
        let removed = PlacementInputs {
            placement: None,
            ..on_delete
        };
        assert_eq!(
            condition(&removed).map(|c| c.1),
            Some("NewGroupsOnly"),
            "copies placed before placement was removed"
        );
    }

    #[test]
    fn pods_waiting_for_the_scheduler_are_not_placed_yet() {
        let placement = zone();
        let reports = BTreeMap::from([(3, report(true, None))]);
        let none = BTreeSet::new();
        let (status, reason, _) = condition(&PlacementInputs {
            placement: Some(&placement),
            reports: &reports,
            placed_otherwise: &none,
            rolling: false,
        })
        .expect("a condition");
        assert!(!status);
        assert_eq!(reason, "Scheduling");
    }
}
