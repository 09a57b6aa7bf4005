//! The RSG-owned artifacts: one snapshot (ControllerRevision) per target and the replica
//! baseline ConfigMap. Both carry an ownerReference to the RSG, so deleting the RSG removes
//! them (by garbage collection, even while rsg is down) and nothing else.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{ObjectMeta, Patch, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde_json::Value;

use super::baseline::{self, Baseline};
use super::build::strip_runtime_fields;
use super::revision::template_revision;
use super::{Problem, ReconcileError};
use crate::api::{ResourceScalingGroup, LABEL_NAME, LABEL_REVISION, LABEL_TARGET};
use crate::api_errors;
use crate::cache::labelled;
use crate::controller::Context;
use crate::naming::{replica_config_name, snapshot_name};

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

fn post_params() -> PostParams {
    crate::create_params()
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
fn made_by(meta: &ObjectMeta, rsg: &ResourceScalingGroup) -> bool {
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

/// The snapshot of `target`, taken from `base` when none exists yet. Returns the stored
/// workload and whether it was taken now, or a name conflict when a ControllerRevision with
/// the snapshot's name was not made by this RSG.
pub async fn ensure_snapshot(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    target: &str,
    base: &Value,
) -> Result<Result<(Value, bool), Problem>, ReconcileError> {
    let namespace = rsg.namespace().unwrap_or_default();
    let name = snapshot_name(&rsg.name_any(), target);
    let cached = ctx
        .stores
        .revisions
        .get(&ObjectRef::new(&name).within(&namespace));
    if let Some(revision) = cached {
        if !made_by(&revision.metadata, rsg) {
            return Ok(Err(snapshot_conflict(&namespace, &name, target)));
        }
        if let Some(data) = revision.data.clone() {
            return Ok(Ok((data.0, false)));
        }
    }
    store_snapshot(ctx, rsg, target, &name, base, &[], 1).await
}

fn snapshot_conflict(namespace: &str, name: &str, target: &str) -> Problem {
    Problem::NameConflict(format!(
        "ControllerRevision {namespace}/{name} (the snapshot of target {target:?}) exists and was not made by this RSG; rename or delete it"
    ))
}

/// Stores `base` as the snapshot `name` of `target` (revision number `number`, with
/// `extra_labels`). A name already taken is read back: a snapshot of this RSG (the cache
/// lagged behind) is used, anything else is a name conflict.
async fn store_snapshot(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    target: &str,
    name: &str,
    base: &Value,
    extra_labels: &[(&str, &str)],
    number: i64,
) -> Result<Result<(Value, bool), Problem>, ReconcileError> {
    let namespace = rsg.namespace().unwrap_or_default();
    let api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &namespace);
    let snapshot = strip_runtime_fields(base);
    let mut labels = vec![(LABEL_TARGET, target)];
    labels.extend_from_slice(extra_labels);
    let stored = ControllerRevision {
        metadata: owned_meta(rsg, name.to_string(), &labels),
        data: Some(RawExtension(snapshot.clone())),
        revision: number,
    };
    match api.create(&post_params(), &stored).await {
        Ok(_) => Ok(Ok((snapshot, true))),
        Err(err) if api_errors::is_conflict(&err) => {
            let existing = api.get(name).await?;
            if !made_by(&existing.metadata, rsg) {
                return Ok(Err(snapshot_conflict(&namespace, name, target)));
            }
            Ok(Ok((existing.data.map(|d| d.0).unwrap_or(snapshot), false)))
        }
        Err(err) => Err(err.into()),
    }
}

/// This RSG's snapshots of `target` (the first one under its plain name, later ones with
/// their revision in the name), from the cache.
pub fn snapshots_of(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    target: &str,
) -> Vec<ControllerRevision> {
    let namespace = rsg.namespace().unwrap_or_default();
    labelled(
        &ctx.stores.revisions,
        &namespace,
        LABEL_NAME,
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
    snapshot.data.as_ref().map(|d| template_revision(&d.0))
}

/// RollingUpdate: the snapshot of `target` at `revision` (the live base's), taken from
/// `base` when none of this RSG's snapshots of the target holds that revision. Returns the
/// stored workload and whether it was taken now.
pub async fn ensure_revision_snapshot(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    target: &str,
    base: &Value,
    revision: &str,
) -> Result<Result<(Value, bool), Problem>, ReconcileError> {
    let existing = snapshots_of(ctx, rsg, target);
    if let Some(found) = existing
        .iter()
        .find(|s| snapshot_revision(s).as_deref() == Some(revision))
    {
        if let Some(data) = &found.data {
            return Ok(Ok((data.0.clone(), false)));
        }
    }
    if existing.is_empty() {
        // The first snapshot keeps the plain name, as under OnDelete.
        return ensure_snapshot(ctx, rsg, target, base).await;
    }
    let name = format!("{}-{revision}", snapshot_name(&rsg.name_any(), target));
    let number = existing.iter().map(|s| s.revision).max().unwrap_or(0) + 1;
    store_snapshot(
        ctx,
        rsg,
        target,
        &name,
        base,
        &[(LABEL_REVISION, revision)],
        number,
    )
    .await
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

/// Deletes the surplus snapshots of `target` (see [`surplus_snapshots`]).
pub async fn prune_snapshots(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    target: &str,
    in_use: &BTreeSet<String>,
) -> Result<Vec<String>, ReconcileError> {
    let surplus = surplus_snapshots(&snapshots_of(ctx, rsg, target), in_use);
    let api: Api<ControllerRevision> =
        Api::namespaced(ctx.client.clone(), &rsg.namespace().unwrap_or_default());
    for name in &surplus {
        match api.delete(name, &Default::default()).await {
            Ok(_) => {}
            Err(err) if api_errors::is_not_found(&err) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(surplus)
}

/// Reads the baseline ConfigMap, creating it (or adding missing keys) from the snapshots'
/// replica counts. Existing values are never replaced.
pub async fn ensure_baselines(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    snapshots: &BTreeMap<String, Value>,
) -> Result<BTreeMap<String, Baseline>, ReconcileError> {
    let namespace = rsg.namespace().unwrap_or_default();
    let name = replica_config_name(&rsg.name_any());
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &namespace);
    let defaults: BTreeMap<String, String> = snapshots
        .iter()
        .flat_map(|(target, snapshot)| baseline::default_entries(target, snapshot))
        .collect();
    let cached = ctx
        .stores
        .config_maps
        .get(&ObjectRef::new(&name).within(&namespace));
    // The cache holds only ConfigMaps labelled as rsg's: one the user wrote first (the
    // manual's flow) is found by the create's conflict.
    let existing = match cached {
        Some(existing) => (*existing).clone(),
        None => {
            let config_map = ConfigMap {
                metadata: owned_meta(rsg, name.clone(), &[]),
                data: Some(defaults.clone()),
                ..ConfigMap::default()
            };
            match api.create(&post_params(), &config_map).await {
                Ok(created) => created,
                Err(err) if api_errors::is_conflict(&err) => api.get(&name).await?,
                Err(err) => return Err(err.into()),
            }
        }
    };
    if let Some(patch) = adoption_patch(&existing.metadata, rsg) {
        api.patch(&name, &crate::patch_params(), &Patch::Merge(&patch))
            .await?;
        ctx.event(
            rsg,
            false,
            "Adopted",
            "Own",
            format!("ConfigMap {namespace}/{name}: owned by this RSG now, so it is deleted with it; its values are kept"),
        )
        .await;
    }
    let mut data = existing.data.unwrap_or_default();
    let missing: BTreeMap<&String, &String> = defaults
        .iter()
        .filter(|(k, _)| !data.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        let patch = serde_json::json!({"data": missing});
        api.patch(&name, &crate::patch_params(), &Patch::Merge(&patch))
            .await?;
        for (k, v) in missing {
            data.insert(k.clone(), v.clone());
        }
    }
    Ok(snapshots
        .iter()
        .map(|(target, snapshot)| (target.clone(), baseline::read(target, snapshot, &data)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::{adoption_patch, made_by};
    use crate::api::ResourceScalingGroup;
    use kube::api::ObjectMeta;

    fn rsg(uid: &str) -> ResourceScalingGroup {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "autoscaling.openfuyao.com/v1alpha1",
            "kind": "ResourceScalingGroup",
            "metadata": {"name": "pd", "namespace": "ns", "uid": uid},
            "spec": {"targetResources": [], "scalingStrategy": {"type": "GroupReplication"}}
        }))
        .expect("an RSG")
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
