//! Storing what the observation found missing: snapshots and the baseline ConfigMap, and
//! pruning snapshots no group uses. Creates never take over an object of the same name that
//! this RSG did not make: a conflict is read back and reported as a problem.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Patch;
use kube::{Api, ResourceExt};

use crate::api::ResourceScalingGroup;
use crate::api_errors;
use crate::group_replication::artifact_decisions::{
    made_by, snapshot_conflict, snapshots_of, surplus_snapshots, BaselineWrite, SnapshotWrite,
};
use crate::group_replication::observe::Observation;
use crate::reconcile::{Context, ObjectName, Problem, ReconcileError, RsgEvent};

/// What storing a snapshot came to.
#[derive(Debug, PartialEq)]
pub enum Stored {
    /// Taken now.
    Taken,
    /// This RSG had stored it already (the cache had not shown it yet).
    Existed,
    /// A ControllerRevision of that name was not made by this RSG.
    Conflict(Problem),
}

/// Stores `write`.
pub async fn store_snapshot(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    write: &SnapshotWrite,
) -> Result<Stored, ReconcileError> {
    let namespace = rsg.namespace().unwrap_or_default();
    let api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &namespace);
    let object = ObjectName::new("ControllerRevision", &namespace, write.name());
    let err = match api.create(&crate::create_params(), &write.object).await {
        Ok(_) => return Ok(Stored::Taken),
        Err(err) => err,
    };
    if !api_errors::is_conflict(&err) {
        return Err(ReconcileError::create(object)(err));
    }
    let existing = api
        .get(write.name())
        .await
        .map_err(ReconcileError::read(object.clone()))?;
    if !made_by(&existing.metadata, rsg) {
        return Ok(Stored::Conflict(snapshot_conflict(
            &namespace,
            write.name(),
            &write.target,
        )));
    }
    // Ours already: fine when it holds what was planned on, else plan again.
    match existing.data.as_ref().map(|d| &d.0) == write.workload() {
        true => Ok(Stored::Existed),
        false => Err(ReconcileError::cache_behind(object)),
    }
}

/// Creates, adopts or fills in the baseline ConfigMap as `write` says. Its values are never
/// replaced; an adoption is made against the version read.
pub async fn write_baseline(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    write: &BaselineWrite,
) -> Result<(), ReconcileError> {
    let namespace = rsg.namespace().unwrap_or_default();
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &namespace);
    let object = ObjectName::new("ConfigMap", &namespace, &write.name);
    if let Some(config_map) = &write.create {
        match api.create(&crate::create_params(), config_map).await {
            Ok(_) => {}
            // Written meanwhile (by the user, or by this RSG with the cache behind).
            Err(err) if api_errors::is_conflict(&err) => {
                return Err(ReconcileError::cache_behind(object))
            }
            Err(err) => return Err(ReconcileError::create(object)(err)),
        }
    }
    if let Some(patch) = &write.adopt {
        api.patch(&write.name, &crate::patch_params(), &Patch::Merge(patch))
            .await
            .map_err(ReconcileError::patch(object.clone()))?;
        ctx.event(
            rsg,
            RsgEvent::OwnedArtifact,
            format!(
                "{object}: owned by this RSG now, so it is deleted with it; its values are kept"
            ),
        );
    }
    if !write.fill.is_empty() {
        let patch = serde_json::json!({"data": write.fill});
        api.patch(&write.name, &crate::patch_params(), &Patch::Merge(&patch))
            .await
            .map_err(ReconcileError::patch(object))?;
    }
    Ok(())
}

/// Deletes the snapshots of each target that no group uses any more, beyond a short history.
pub async fn prune_old_snapshots(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    obs: &Observation,
) -> Result<(), ReconcileError> {
    let namespace = rsg.namespace().unwrap_or_default();
    let api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &namespace);
    for target in &obs.targets {
        let in_use: BTreeSet<String> = target
            .copy_revisions
            .values()
            .cloned()
            .chain([target.update_revision.clone()])
            .collect();
        let surplus = surplus_snapshots(&snapshots_of(&ctx.stores, rsg, &target.name), &in_use);
        for name in &surplus {
            match api.delete(name, &Default::default()).await {
                Ok(_) => {}
                Err(err) if api_errors::is_not_found(&err) => {}
                Err(err) => {
                    return Err(ReconcileError::delete(ObjectName::new(
                        "ControllerRevision",
                        &namespace,
                        name,
                    ))(err))
                }
            }
        }
        if !surplus.is_empty() {
            tracing::debug!(target = %target.name, pruned = ?surplus, "deleted snapshots no group uses");
        }
    }
    Ok(())
}
