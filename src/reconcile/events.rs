//! The Events rsg publishes on an RSG, one variant per thing that happened: each knows its
//! type (Normal or Warning), its reason (what `kubectl describe` and `kubectl get events`
//! show) and its action. The note, the human-readable detail, is given when publishing.

use kube::runtime::events::EventType;

/// Something rsg did to, or found about, an RSG's workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RsgEvent<'a> {
    /// The RSG cannot converge: `reason` is the Ready condition's reason.
    Problem(&'a str),
    /// rsg does not act on the RSG until its author is verified: `reason` says why not.
    NotAuthorized(&'a str),
    /// A group could not be created: `reason` is the problem's reason.
    CreateBlocked(&'a str),
    /// A group's pods cannot be scheduled.
    Unschedulable,
    /// InplaceScaling set the leader's replicas.
    ScaledLeader,
    /// InplaceScaling set the followers' replicas from the leader's.
    ScaledFollowers,
    /// The base workload was stored as a ControllerRevision.
    SnapshotTaken,
    /// An existing snapshot or baseline became owned by the RSG.
    OwnedArtifact,
    /// A base workload was labelled as group 0.
    AdoptedBase,
    /// A draining group serves again.
    ReusedGroup,
    /// Group 0 was restored to its baseline replicas.
    RestoredGroup0,
    /// The groups to remove were chosen.
    ScaleDownDecision,
    /// A group of an old revision was replaced by one of the new.
    ReplacedGroup,
    /// Missing objects of existing groups were created.
    CompletedGroups,
    /// New groups were created.
    CreatedGroups,
    /// Group 0 was scaled to zero (its workloads are kept).
    ScaledGroup0ToZero,
    /// A copy group was deleted.
    DeletedGroup,
    /// A group started draining.
    DrainingGroup,
}

impl RsgEvent<'_> {
    /// Normal or Warning.
    pub fn event_type(&self) -> EventType {
        match self {
            Self::Problem(_)
            | Self::NotAuthorized(_)
            | Self::CreateBlocked(_)
            | Self::Unschedulable => EventType::Warning,
            _ => EventType::Normal,
        }
    }

    /// The Event's reason.
    pub fn reason(&self) -> &str {
        match self {
            Self::Problem(reason) | Self::NotAuthorized(reason) | Self::CreateBlocked(reason) => {
                reason
            }
            Self::Unschedulable => "Unschedulable",
            Self::ScaledLeader => "ScaledLeader",
            Self::ScaledFollowers => "ScaledFollowers",
            Self::SnapshotTaken => "SnapshotTaken",
            Self::OwnedArtifact | Self::AdoptedBase => "Adopted",
            Self::ReusedGroup => "ReusedGroup",
            Self::RestoredGroup0 => "ScaledUp",
            Self::ScaleDownDecision => "ScaleDownDecision",
            Self::ReplacedGroup => "ReplacedGroup",
            Self::CompletedGroups => "CompletedGroups",
            Self::CreatedGroups => "CreatedGroups",
            Self::ScaledGroup0ToZero => "ScaledGroup0ToZero",
            Self::DeletedGroup => "DeletedGroup",
            Self::DrainingGroup => "DrainingGroup",
        }
    }

    /// The Event's action: what rsg was doing.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Problem(_) => "Reconcile",
            Self::NotAuthorized(_) => "Authorize",
            Self::CreateBlocked(_) | Self::CompletedGroups | Self::CreatedGroups => "Create",
            Self::Unschedulable => "Schedule",
            Self::SnapshotTaken => "Snapshot",
            Self::OwnedArtifact => "Own",
            Self::AdoptedBase => "Label",
            Self::ScaleDownDecision => "Decide",
            Self::ReplacedGroup => "Update",
            Self::DeletedGroup => "Delete",
            Self::ScaledLeader
            | Self::ScaledFollowers
            | Self::ReusedGroup
            | Self::RestoredGroup0
            | Self::ScaledGroup0ToZero
            | Self::DrainingGroup => "Scale",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_warnings_with_their_own_reason() {
        let event = RsgEvent::Problem("TargetNotFound");
        assert_eq!(event.event_type(), EventType::Warning);
        assert_eq!(event.reason(), "TargetNotFound");
        assert_eq!(event.action(), "Reconcile");
        let blocked = RsgEvent::CreateBlocked("NameConflict");
        assert_eq!(blocked.event_type(), EventType::Warning);
        assert_eq!(
            (blocked.reason(), blocked.action()),
            ("NameConflict", "Create")
        );
    }

    #[test]
    fn changes_are_normal_and_keep_the_reasons_users_filter_on() {
        let cases = [
            (RsgEvent::RestoredGroup0, "ScaledUp", "Scale"),
            (RsgEvent::OwnedArtifact, "Adopted", "Own"),
            (RsgEvent::AdoptedBase, "Adopted", "Label"),
            (RsgEvent::ScaleDownDecision, "ScaleDownDecision", "Decide"),
            (RsgEvent::DeletedGroup, "DeletedGroup", "Delete"),
        ];
        for (event, reason, action) in cases {
            assert_eq!(event.event_type(), EventType::Normal, "{event:?}");
            assert_eq!((event.reason(), event.action()), (reason, action));
        }
        assert_eq!(RsgEvent::Unschedulable.event_type(), EventType::Warning);
    }
}
