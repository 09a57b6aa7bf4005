//! The RSG-owned artifacts: one snapshot (ControllerRevision) per target (one per revision
//! under RollingUpdate) and the replica baseline ConfigMap. Both carry an ownerReference to
//! the RSG, so deleting the RSG removes them (by garbage collection, even while rsg is down)
//! and nothing else. Pure: what has to be stored is decided here from what was read, and
//! stored by [`super::apply`].

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};
use serde_json::Value;

use super::baseline::{self, Baseline};
use super::copy_objects::strip_runtime_fields;
use super::revision::template_revision;
use crate::api::{ResourceScalingGroup, LABEL_NAME, LABEL_REVISION, LABEL_TARGET};
use crate::cache::{labelled, Stores};
use crate::naming::{replica_config_name, snapshot_name};
use crate::reconcile::{Problem, TakenFor};

/// The workload a snapshot holds (`None` when it holds none).
fn snapshot_workload(revision: &ControllerRevision) -> Option<Value> {
    revision
        .data
        .as_ref()
        .map(|RawExtension(workload)| workload.clone())
}

fn owner_reference(rsg: &ResourceScalingGroup) -> Option<OwnerReference> {
    rsg.controller_owner_ref(&()).map(|mut owner| {
        owner.block_owner_deletion = None;
        owner
    })
}

fn owned_meta(
    rsg: &ResourceScalingGroup,
    name: String,
    extra_labels: &[(&str, &str)],
) -> ObjectMeta {
    let mut labels = BTreeMap::from([(LABEL_NAME.to_string(), rsg.name_any())]);
    for (k, v) in extra_labels {
        labels.insert((*k).to_string(), (*v).to_string());
    }
    ObjectMeta {
        name: Some(name),
        namespace: rsg.namespace(),
        labels: Some(labels),
        owner_references: owner_reference(rsg).map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

/// The metadata patch that makes an existing replica ConfigMap (one written before the RSG,
/// as the manual's flow does) the RSG's: its label and an owner reference, added beside any
/// owner it already has (as a controller only when it has none), so it goes with the RSG.
/// `None` when it already is the RSG's. Its data is never touched.
pub fn adoption_patch(meta: &ObjectMeta, rsg: &ResourceScalingGroup) -> Option<Value> {
    if made_by(meta, rsg) {
        return None;
    }
    let ours = owner_reference(rsg)?;
    let existing: Vec<OwnerReference> = meta
        .owner_references
        .iter()
        .flatten()
        .filter(|owner| owner.uid != ours.uid)
        .cloned()
        .collect();
    let has_controller = existing.iter().any(|o| o.controller == Some(true));
    let ours = OwnerReference {
        controller: (!has_controller).then_some(true),
        ..ours
    };
    let owners: Vec<OwnerReference> = existing.into_iter().chain([ours]).collect();
    Some(serde_json::json!({"metadata": {
        "labels": {LABEL_NAME: rsg.name_any()},
        "ownerReferences": owners,
        // The owner list is replaced whole: only on the version read.
        "resourceVersion": meta.resource_version,
    }}))
}

/// Whether `meta` belongs to `rsg`: its label names the RSG and, when the RSG has a uid, an
/// owner reference carries it (so a leftover of a deleted RSG of the same name is not reused).
pub fn made_by(meta: &ObjectMeta, rsg: &ResourceScalingGroup) -> bool {
    let labelled = meta.labels.as_ref().and_then(|l| l.get(LABEL_NAME)) == Some(&rsg.name_any());
    let owned = match rsg.uid() {
        None => true,
        Some(uid) => meta
            .owner_references
            .iter()
            .flatten()
            .any(|owner| owner.uid == uid),
    };
    labelled && owned
}

/// A snapshot to store before groups are built from it.
#[derive(Clone, Debug, PartialEq)]
pub struct SnapshotWrite {
    /// The target it is of.
    pub target: String,
    /// The ControllerRevision to create.
    pub object: ControllerRevision,
}

impl SnapshotWrite {
    /// Its name.
    pub fn name(&self) -> &str {
        self.object.metadata.name.as_deref().unwrap_or_default()
    }

    /// The workload it holds.
    pub fn workload(&self) -> Option<&Value> {
        self.object.data.as_ref().map(|d| &d.0)
    }
}

/// A name conflict on the snapshot `name` of `target`.
pub fn snapshot_conflict(namespace: &str, name: &str, target: &str) -> Problem {
    Problem::NameConflict {
        object: format!("ControllerRevision {namespace}/{name}"),
        taken_for: TakenFor::Snapshot {
            target: target.to_string(),
        },
    }
}

fn snapshot_write(
    rsg: &ResourceScalingGroup,
    target: &str,
    name: String,
    base: &Value,
    extra_labels: &[(&str, &str)],
    number: i64,
) -> SnapshotWrite {
    let mut labels = vec![(LABEL_TARGET, target)];
    labels.extend_from_slice(extra_labels);
    SnapshotWrite {
        target: target.to_string(),
        object: ControllerRevision {
            metadata: owned_meta(rsg, name, &labels),
            data: Some(RawExtension(strip_runtime_fields(base))),
            revision: number,
        },
    }
}

/// The snapshot new copies of `target` are built from, and the one to store first when
/// there is none yet.
///
/// `named` is the cached ControllerRevision under the first snapshot's plain name, `ours`
/// this RSG's snapshots of the target. Under OnDelete the first snapshot is kept for ever;
/// under RollingUpdate (`rolling`) each revision of the live base (`live_revision`) gets one,
/// the first under the plain name, later ones as `<name>-<revision>`. A ControllerRevision
/// with the plain name not made by this RSG is a name conflict.
pub fn resolve_snapshot(
    rsg: &ResourceScalingGroup,
    target: &str,
    base: &Value,
    live_revision: &str,
    rolling: bool,
    named: Option<&ControllerRevision>,
    ours: &[ControllerRevision],
) -> Result<(Value, Option<SnapshotWrite>), Problem> {
    let namespace = rsg.namespace().unwrap_or_default();
    let first_name = snapshot_name(&rsg.name_any(), target);
    if rolling {
        let current = ours
            .iter()
            .filter_map(snapshot_workload)
            .find(|workload| template_revision(workload) == live_revision);
        if let Some(workload) = current {
            return Ok((workload, None));
        }
    }
    if !rolling || ours.is_empty() {
        if let Some(revision) = named {
            if !made_by(&revision.metadata, rsg) {
                return Err(snapshot_conflict(&namespace, &first_name, target));
            }
            if let Some(workload) = snapshot_workload(revision) {
                return Ok((workload, None));
            }
        }
        let write = snapshot_write(rsg, target, first_name, base, &[], 1);
        return Ok((strip_runtime_fields(base), Some(write)));
    }
    let number = ours.iter().map(|s| s.revision).max().unwrap_or(0) + 1;
    let write = snapshot_write(
        rsg,
        target,
        format!("{first_name}-{live_revision}"),
        base,
        &[(LABEL_REVISION, live_revision)],
        number,
    );
    Ok((strip_runtime_fields(base), Some(write)))
}

/// This RSG's snapshots of `target` (the first one under its plain name, later ones with
/// their revision in the name), from the cache.
pub fn snapshots_of(
    stores: &Stores,
    rsg: &ResourceScalingGroup,
    target: &str,
) -> Vec<ControllerRevision> {
    let namespace = rsg.namespace().unwrap_or_default();
    labelled(
        &stores.revisions,
        &stores.members,
        &namespace,
        &rsg.name_any(),
    )
    .into_iter()
    .filter(|r| r.labels().get(LABEL_TARGET).map(String::as_str) == Some(target))
    .filter(|r| made_by(&r.metadata, rsg))
    .map(|r| (*r).clone())
    .collect()
}

/// The revision a snapshot holds (computed from its data, so snapshots taken before
/// revisions existed have one too).
pub fn snapshot_revision(snapshot: &ControllerRevision) -> Option<String> {
    snapshot_workload(snapshot).map(|workload| template_revision(&workload))
}

/// Snapshots kept per target beyond those groups still use.
pub const SNAPSHOT_HISTORY: usize = 3;

/// The snapshots of a target that may go: neither used by a group (`in_use` revisions) nor
/// among the newest [`SNAPSHOT_HISTORY`].
pub fn surplus_snapshots(
    snapshots: &[ControllerRevision],
    in_use: &BTreeSet<String>,
) -> Vec<String> {
    let mut by_age: Vec<&ControllerRevision> = snapshots.iter().collect();
    by_age.sort_by_key(|s| std::cmp::Reverse(s.revision));
    by_age
        .into_iter()
        .skip(SNAPSHOT_HISTORY)
        .filter(|s| snapshot_revision(s).is_none_or(|r| !in_use.contains(&r)))
        .filter_map(|s| s.metadata.name.clone())
        .collect()
}

/// What the baseline ConfigMap needs before groups are built from its values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BaselineWrite {
    /// Its name.
    pub name: String,
    /// It does not exist: create it with these contents.
    pub create: Option<ConfigMap>,
    /// It was written before the RSG: make it the RSG's (see [`adoption_patch`]).
    pub adopt: Option<Value>,
    /// Keys it lacks, with their values from the snapshots; existing values are never
    /// replaced.
    pub fill: BTreeMap<String, String>,
}

impl BaselineWrite {
    /// Whether nothing has to be written.
    pub fn is_empty(&self) -> bool {
        self.create.is_none() && self.adopt.is_none() && self.fill.is_empty()
    }
}

/// The baseline of every target, and what the ConfigMap (`existing`, `None` when it does not
/// exist) needs for it: created from the snapshots' replica counts, adopted, or given the
/// keys it lacks.
pub fn resolve_baseline(
    rsg: &ResourceScalingGroup,
    existing: Option<&ConfigMap>,
    snapshots: &BTreeMap<String, Value>,
) -> (BaselineWrite, BTreeMap<String, Baseline>) {
    let name = replica_config_name(&rsg.name_any());
    let defaults: BTreeMap<String, String> = snapshots
        .iter()
        .flat_map(|(target, snapshot)| baseline::default_entries(target, snapshot))
        .collect();
    let mut write = BaselineWrite {
        name: name.clone(),
        ..BaselineWrite::default()
    };
    let data = match existing {
        None => {
            write.create = Some(ConfigMap {
                metadata: owned_meta(rsg, name, &[]),
                data: Some(defaults.clone()),
                ..ConfigMap::default()
            });
            defaults
        }
        Some(existing) => {
            write.adopt = adoption_patch(&existing.metadata, rsg);
            let mut data = existing.data.clone().unwrap_or_default();
            write.fill = defaults
                .into_iter()
                .filter(|(k, _)| !data.contains_key(k))
                .collect();
            data.extend(write.fill.clone());
            data
        }
    };
    let baselines = snapshots
        .iter()
        .map(|(target, snapshot)| (target.clone(), baseline::read(target, snapshot, &data)))
        .collect();
    (write, baselines)
}

#[cfg(test)]
mod tests {
    use super::{adoption_patch, made_by};
    use crate::api::ResourceScalingGroup;
    use kube::api::ObjectMeta;

    fn rsg(uid: &str) -> ResourceScalingGroup {
        let strategy = serde_json::json!({"type": "GroupReplication"});
        let mut rsg = crate::fixtures::rsg("ns", "pd", Vec::new(), strategy);
        rsg.metadata.uid = Some(uid.into());
        rsg
    }

    fn meta(label: Option<&str>, owner_uid: Option<&str>) -> ObjectMeta {
        serde_json::from_value(serde_json::json!({
            "name": "pd-prefill-snapshot",
            "labels": label.map(|l| serde_json::json!({"rsg.io/name": l})),
            "ownerReferences": owner_uid.map(|uid| serde_json::json!([{
                "apiVersion": "autoscaling.openfuyao.com/v1alpha1",
                "kind": "ResourceScalingGroup", "name": "pd", "uid": uid}])),
        }))
        .expect("metadata")
    }

    fn snapshot(
        name: &str,
        number: i64,
        image: &str,
    ) -> k8s_openapi::api::apps::v1::ControllerRevision {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "revision": number,
            "data": {"kind": "Deployment", "spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}},
        }))
        .expect("a ControllerRevision")
    }

    #[test]
    fn the_first_snapshot_is_stored_once_and_rolling_updates_add_one_per_revision() {
        use super::resolve_snapshot;
        let ours = rsg("uid-1");
        let base = serde_json::json!({"kind": "Deployment", "metadata": {"name": "llm"}, "spec": {"template": {}}, "status": {"replicas": 1}});
        let (snapshot, write) =
            resolve_snapshot(&ours, "prefill", &base, "r1", false, None, &[]).expect("no conflict");
        let write = write.expect("stored first");
        assert_eq!(write.name(), "pd-prefill-snapshot");
        assert_eq!(write.object.revision, 1);
        assert!(
            snapshot.get("status").is_none(),
            "runtime fields are stripped"
        );
        // Under OnDelete a stored snapshot is used as it is.
        let stored = write.object.clone();
        let (_, again) = resolve_snapshot(
            &ours,
            "prefill",
            &base,
            "r2",
            false,
            Some(&stored),
            std::slice::from_ref(&stored),
        )
        .expect("ours");
        assert!(again.is_none());
        // Under RollingUpdate a new revision gets its own, numbered after the newest.
        let (_, next) = resolve_snapshot(
            &ours,
            "prefill",
            &base,
            "r2",
            true,
            Some(&stored),
            std::slice::from_ref(&stored),
        )
        .expect("ours");
        let next = next.expect("a snapshot of the new revision");
        assert_eq!(
            (next.name(), next.object.revision),
            ("pd-prefill-snapshot-r2", 2)
        );
        // Someone else's object under the plain name is a conflict.
        let mut theirs = stored;
        theirs.metadata = meta(None, None);
        assert!(
            resolve_snapshot(&ours, "prefill", &base, "r1", false, Some(&theirs), &[]).is_err()
        );
    }

    #[test]
    fn the_baseline_is_created_from_the_snapshots_or_filled_in_never_overwritten() {
        use super::resolve_baseline;
        let ours = rsg("uid-1");
        let snapshots = [(
            "prefill".to_string(),
            serde_json::json!({"spec": {"replicas": 2}}),
        )]
        .into_iter()
        .collect();
        let (write, baselines) = resolve_baseline(&ours, None, &snapshots);
        assert!(write.create.is_some() && write.adopt.is_none() && write.fill.is_empty());
        assert_eq!(
            baselines["prefill"],
            Ok(super::baseline::Replicas::Count(2))
        );
        // The user's ConfigMap, written first with their own value and no other key.
        let users: k8s_openapi::api::core::v1::ConfigMap =
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "pd-replica-config"}, "data": {"prefill": "5", "other": "x"}
            }))
            .expect("a ConfigMap");
        let (write, baselines) = resolve_baseline(&ours, Some(&users), &snapshots);
        assert!(write.create.is_none() && write.adopt.is_some() && write.fill.is_empty());
        assert_eq!(
            baselines["prefill"],
            Ok(super::baseline::Replicas::Count(5))
        );
        let empty: k8s_openapi::api::core::v1::ConfigMap =
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "pd-replica-config"}
            }))
            .expect("a ConfigMap");
        let (write, _) = resolve_baseline(&ours, Some(&empty), &snapshots);
        assert_eq!(write.fill.get("prefill").map(String::as_str), Some("2"));
    }

    #[test]
    fn surplus_snapshots_are_the_old_ones_no_group_uses() {
        let all: Vec<_> = (1..=6)
            .map(|n| snapshot(&format!("s{n}"), n, &format!("img:{n}")))
            .collect();
        let used = super::snapshot_revision(&all[1]).expect("a revision");
        let surplus = super::surplus_snapshots(&all, &[used].into_iter().collect());
        // 6, 5, 4 are the newest; 2 is in use.
        assert_eq!(surplus, vec!["s3".to_string(), "s1".to_string()]);
        assert!(super::surplus_snapshots(&all[..3], &Default::default()).is_empty());
    }

    #[test]
    fn a_snapshot_is_ours_only_with_our_label_and_our_uid_as_owner() {
        let ours = rsg("uid-1");
        assert!(made_by(&meta(Some("pd"), Some("uid-1")), &ours));
        assert!(!made_by(&meta(None, None), &ours), "someone else's object");
        assert!(!made_by(&meta(Some("other"), Some("uid-1")), &ours));
        assert!(
            !made_by(&meta(Some("pd"), Some("uid-0")), &ours),
            "left over from a deleted RSG of the same name"
        );
    }

    #[test]
    fn a_replica_config_written_before_the_rsg_is_adopted_beside_its_other_owners() {
        let ours = rsg("uid-1");
        assert_eq!(
            adoption_patch(&meta(Some("pd"), Some("uid-1")), &ours),
            None
        );
        let patch = adoption_patch(&meta(None, None), &ours).expect("adopted");
        assert_eq!(patch["metadata"]["labels"]["rsg.io/name"], "pd");
        let owners = patch["metadata"]["ownerReferences"]
            .as_array()
            .expect("owners");
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0]["uid"], "uid-1");
        assert_eq!(owners[0]["controller"], true);
        // Another controller keeps control; the RSG is added as a plain owner.
        let mut shared = meta(None, Some("uid-9"));
        if let Some(owners) = shared.owner_references.as_mut() {
            owners[0].controller = Some(true);
        }
        let patch = adoption_patch(&shared, &ours).expect("adopted");
        let owners = patch["metadata"]["ownerReferences"]
            .as_array()
            .expect("owners");
        assert_eq!(owners.len(), 2);
        assert_eq!(owners[0]["uid"], "uid-9");
        assert_eq!(owners[1]["uid"], "uid-1");
        assert!(owners[1].get("controller").is_none_or(|c| c.is_null()));
    }
}
