//! The writes of one group: creating, completing and removing copy groups, holding and
//! restoring group 0, marking drains, and adopting base workloads. Base pod templates are
//! never touched.

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use kube::api::DeleteParams;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use serde_json::{json, Value};
use tokio::sync::OnceCell;

use crate::api::{ResourceScalingGroup, LABEL_GROUP_ID, LABEL_MANAGED, LABEL_NAME};
use crate::api_errors;
use crate::group_replication::baseline::Replicas;
use crate::group_replication::copy_objects::{
    build_service_copy, build_workload_copy, CopySpec, ServiceCopySpec,
};
use crate::group_replication::observe::{
    BaseService, Observation, TargetState, ANNOTATION_DRAINING_SINCE, ANNOTATION_HELD_AT_ZERO,
};
use crate::group_replication::placement::BasePods;
use crate::naming::{copy_service_name, copy_workload_name};
use crate::reconcile::{to_json, Context, Failure, ObjectName, Problem, ReconcileError, TakenFor};
use crate::workload::{label, role_based_group, AccessError, WorkloadKind};

fn labelled_ours(object: &Value, rsg_name: &str) -> bool {
    label(object, LABEL_NAME) == Some(rsg_name)
}

/// Base Service name → its copy's name in group `id`.
fn service_renames(obs: &Observation, group_name: &str, id: i32) -> BTreeMap<String, String> {
    obs.base_services
        .iter()
        .map(|s| (s.name.clone(), copy_service_name(&s.name, group_name, id)))
        .collect()
}

/// One object of a group that does not exist yet.
enum Missing<'a> {
    Workload {
        target: usize,
        name: String,
        kind: &'a WorkloadKind,
    },
    Service {
        base: usize,
        name: String,
    },
}

fn missing_parts<'a>(obs: &'a Observation, group_name: &str, id: i32) -> Vec<Missing<'a>> {
    let mut missing = Vec::new();
    for (i, target) in obs.targets.iter().enumerate() {
        if !target.copies.contains_key(&id) {
            missing.push(Missing::Workload {
                target: i,
                name: copy_workload_name(group_name, &target.base_name, id),
                kind: &target.kind,
            });
        }
    }
    let existing: Vec<String> = obs
        .copy_services
        .get(&id)
        .map(|s| {
            s.iter()
                .map(|v| {
                    v["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default();
    for (i, service) in obs.base_services.iter().enumerate() {
        let name = copy_service_name(&service.name, group_name, id);
        if !existing.contains(&name) {
            missing.push(Missing::Service { base: i, name });
        }
    }
    missing
}

/// What creating (or completing) a group came to.
#[derive(Debug, PartialEq)]
pub enum GroupCreation {
    /// These objects were created (none when the group was complete already).
    Created(Vec<String>),
    /// A problem stopped it; nothing it created is left.
    Blocked(Problem),
}

/// The base Services whole, read from the API server the first time a group needs a copy of
/// one, then shared by every group this reconcile makes: the cache keeps only their names,
/// selectors and types (a cluster's Services are many; a copy takes everything of its base).
pub struct BaseServiceObjects<'a> {
    services: &'a [BaseService],
    read: OnceCell<Vec<Value>>,
}

impl<'a> BaseServiceObjects<'a> {
    /// The base Services `services`, not read yet.
    pub fn new(services: &'a [BaseService]) -> Self {
        Self {
            services,
            read: OnceCell::new(),
        }
    }

    /// Reads the base Services whole now, for groups made later in the reconcile.
    pub async fn prefetch(&self, ctx: &Context) -> Result<(), ReconcileError> {
        self.read(ctx).await.map(|_| ())
    }

    /// The base Services whole, in the observation's order. One the cache showed but the
    /// API server no longer has is a cache behind: the reconcile is retried on what the
    /// cache shows next.
    async fn read(&self, ctx: &Context) -> Result<&[Value], ReconcileError> {
        let read = self
            .read
            .get_or_try_init(|| read_base_services(ctx, self.services))
            .await?;
        Ok(read)
    }
}

/// Base Services read at once: however many Services select a base, a reconcile keeps at
/// most this many reads in flight.
const BASE_SERVICE_READS: usize = 8;

/// The base Services whole, in `services`' order.
async fn read_base_services(
    ctx: &Context,
    services: &[BaseService],
) -> Result<Vec<Value>, ReconcileError> {
    // Owned, so the stream's futures borrow nothing but `ctx` (and stay `Send`).
    futures::stream::iter(services.to_vec())
        .map(|base| async move {
            let api: Api<Service> = Api::namespaced(ctx.client.clone(), &base.namespace);
            let object = ObjectName::new("Service", &base.namespace, &base.name);
            match api.get_opt(&base.name).await {
                Ok(Some(service)) => to_json("Service", &service),
                Ok(None) => Err(ReconcileError::cache_behind(object)),
                Err(err) => Err(ReconcileError::read(object)(err)),
            }
        })
        .buffered(BASE_SERVICE_READS)
        .try_collect()
        .await
}

/// Creates the objects group `id` is missing, all at once and optimistically: an existing
/// object is looked at only when the create reports a conflict. On a problem or failure,
/// what this call created is deleted again so no half group stays (see
/// [`GroupBuild::create_parts`]).
pub async fn create_group(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    obs: &Observation,
    base_services: &BaseServiceObjects<'_>,
    group_name: &str,
    id: i32,
) -> Result<GroupCreation, ReconcileError> {
    let namespace = rsg.namespace().unwrap_or_default();
    let rsg_name = rsg.name_any();
    if let Some(message) = obs.targets.iter().find_map(|t| t.baseline.as_ref().err()) {
        return Ok(GroupCreation::Blocked(Problem::InvalidReplicaConfig(
            message.clone(),
        )));
    }
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
    let rsg_ref = ObjectRef::from_obj(rsg);
    let missing = missing_parts(obs, group_name, id);
    // Names found taken before are checked first, so a lasting conflict creates nothing.
    if let Some(description) = known_conflict(ctx, &rsg_ref, &services, &missing).await? {
        let problem = name_conflict(&description, &rsg_name, id);
        return Ok(GroupCreation::Blocked(problem));
    }
    // Read before anything is created, so a failed read leaves no half group.
    let needs_services = missing.iter().any(|p| matches!(p, Missing::Service { .. }));
    let base_services = match needs_services {
        true => base_services.read(ctx).await?,
        false => &[],
    };
    let build = GroupBuild {
        ctx,
        obs,
        base_services,
        namespace: &namespace,
        rsg_name: &rsg_name,
        id,
        renames: service_renames(obs, group_name, id),
        base_pods: obs.base_pods(),
        services: &services,
        rsg_ref: &rsg_ref,
    };
    build.create_parts(&missing).await
}

/// The description of the first part of `missing` whose name was found taken before and
/// still is; a name found free again is forgotten as a conflict.
async fn known_conflict(
    ctx: &Context,
    rsg_ref: &ObjectRef<ResourceScalingGroup>,
    services: &Api<Service>,
    missing: &[Missing<'_>],
) -> Result<Option<String>, ReconcileError> {
    let namespace = rsg_ref.namespace.as_deref().unwrap_or_default();
    for part in missing
        .iter()
        .filter(|p| ctx.memory.is_known_conflict(rsg_ref, p.name()))
    {
        match conflicting_owner(ctx, services, namespace, part).await? {
            Some(description) => return Ok(Some(description)),
            None => ctx.memory.set_conflict(rsg_ref, part.name(), false),
        }
    }
    Ok(None)
}

/// What building group `id`'s objects needs.
struct GroupBuild<'a> {
    ctx: &'a Context,
    obs: &'a Observation,
    /// The base Services whole (empty when the group needs no Service copy).
    base_services: &'a [Value],
    namespace: &'a str,
    rsg_name: &'a str,
    id: i32,
    /// Base Service name → its copy's name in this group.
    renames: BTreeMap<String, String>,
    base_pods: Vec<BasePods>,
    services: &'a Api<Service>,
    rsg_ref: &'a ObjectRef<ResourceScalingGroup>,
}

/// Why a create failed (the API server's answer, when it answered).
type Refusal = AccessError;

impl GroupBuild<'_> {
    /// Creates every part of `missing`. The parts are independent objects (a group has a few:
    /// the targets are capped): created at once, then looked at in order; on a problem or
    /// failure, every part created here is deleted again.
    async fn create_parts(&self, missing: &[Missing<'_>]) -> Result<GroupCreation, ReconcileError> {
        let (ctx, services, namespace) = (self.ctx, self.services, self.namespace);
        let outcomes =
            futures::future::join_all(missing.iter().map(|part| self.create(part))).await;
        let mut created: Vec<&Missing<'_>> = Vec::new();
        // Each part that was not created: the API server's refusal, or a failure before it.
        let mut failures: Vec<(&Missing<'_>, Result<Refusal, ReconcileError>)> = Vec::new();
        for (part, outcome) in missing.iter().zip(outcomes) {
            match outcome {
                Ok(Ok(())) => created.push(part),
                Ok(Err(refusal)) => failures.push((part, Ok(refusal))),
                Err(err) => failures.push((part, Err(err))),
            }
        }
        for (part, failed) in failures {
            let problem = match failed {
                Ok(refusal) if refusal.status_code() == Some(api_errors::CONFLICT) => {
                    match conflicting_owner(ctx, services, namespace, part).await? {
                        None => continue,
                        Some(description) => {
                            ctx.memory.set_conflict(self.rsg_ref, part.name(), true);
                            name_conflict(&description, self.rsg_name, self.id)
                        }
                    }
                }
                Ok(refusal) if refusal.is_forbidden() => Problem::Forbidden(Failure::new(
                    format!("creating {} {namespace}/{}", part.kind_name(), part.name()),
                    refusal.api_message(),
                )),
                Ok(refusal) => {
                    roll_back(ctx, services, namespace, &created).await?;
                    return Err(ReconcileError::create(part.object(namespace))(refusal));
                }
                Err(err) => {
                    roll_back(ctx, services, namespace, &created).await?;
                    return Err(err);
                }
            };
            roll_back(ctx, services, namespace, &created).await?;
            return Ok(GroupCreation::Blocked(problem));
        }
        Ok(GroupCreation::Created(
            created
                .iter()
                .map(|p| p.object(namespace).to_string())
                .collect(),
        ))
    }

    /// Builds and creates one missing object.
    async fn create(&self, part: &Missing<'_>) -> Result<Result<(), Refusal>, ReconcileError> {
        match part {
            Missing::Workload { target, name, kind } => {
                let target = &self.obs.targets[*target];
                // Checked by create_group: every baseline is usable.
                let replicas = target.baseline.as_ref().unwrap_or(&Replicas::Count(1));
                let copy = build_workload_copy(
                    &target.snapshot,
                    &CopySpec {
                        rsg_name: self.rsg_name,
                        rsg_namespace: self.namespace,
                        target_name: &target.name,
                        copy_name: name,
                        group_id: self.id,
                        replicas,
                        service_renames: &self.renames,
                        revision: &target.update_revision,
                        placement: self
                            .obs
                            .placement
                            .as_ref()
                            .map(|p| (p, self.base_pods.as_slice())),
                    },
                );
                Ok(self.ctx.workloads.create(kind, self.namespace, copy).await)
            }
            Missing::Service { base, name } => {
                let Some(base) = self.base_services.get(*base) else {
                    let object = ObjectName::new("Service", self.namespace, name);
                    return Err(ReconcileError::cache_behind(object));
                };
                let copy = build_service_copy(
                    base,
                    &ServiceCopySpec {
                        rsg_name: self.rsg_name,
                        rsg_namespace: self.namespace,
                        copy_name: name,
                        group_id: self.id,
                        keep_external_type: self.ctx.boundary.allow_external_service_copies,
                    },
                );
                let service: Service =
                    serde_json::from_value(copy).map_err(ReconcileError::convert("Service"))?;
                let params = crate::create_params();
                Ok(self
                    .services
                    .create(&params, &service)
                    .await
                    .map(|_| ())
                    .map_err(AccessError::from))
            }
        }
    }
}

fn name_conflict(description: &str, rsg_name: &str, id: i32) -> Problem {
    Problem::NameConflict {
        object: description.to_string(),
        taken_for: TakenFor::GroupCopy {
            rsg_name: rsg_name.to_string(),
            group: id,
        },
    }
}

impl Missing<'_> {
    fn name(&self) -> &str {
        match self {
            Self::Workload { name, .. } | Self::Service { name, .. } => name,
        }
    }

    fn kind_name(&self) -> &str {
        match self {
            Self::Workload { kind, .. } => kind.kind_name(),
            Self::Service { .. } => "Service",
        }
    }

    fn object(&self, namespace: &str) -> ObjectName {
        ObjectName::new(self.kind_name(), namespace, self.name())
    }
}

/// After a create conflict: `None` when the existing object is ours (a cache lag), else a
/// description of the object in the way.
async fn conflicting_owner(
    ctx: &Context,
    services: &Api<Service>,
    namespace: &str,
    part: &Missing<'_>,
) -> Result<Option<String>, ReconcileError> {
    let object = part.object(namespace);
    let existing = match part {
        Missing::Workload { name, kind, .. } => ctx
            .workloads
            .get(kind, namespace, name)
            .await
            .map_err(ReconcileError::read(object))?,
        Missing::Service { name, .. } => services
            .get_opt(name)
            .await
            .map_err(ReconcileError::read(object))?
            .map(|s| to_json("Service", &s))
            .transpose()?,
    };
    let rsg_label = existing
        .as_ref()
        .and_then(|o| label(o, LABEL_NAME).map(str::to_string));
    Ok(match (existing, rsg_label) {
        (None, _) => None,
        (Some(_), Some(_)) => None,
        (Some(_), None) => Some(format!("{} {namespace}/{}", part.kind_name(), part.name())),
    })
}

async fn roll_back(
    ctx: &Context,
    services: &Api<Service>,
    namespace: &str,
    created: &[&Missing<'_>],
) -> Result<(), ReconcileError> {
    for part in created {
        match part {
            Missing::Workload { name, kind, .. } => ctx
                .workloads
                .delete(kind, namespace, name)
                .await
                .map_err(ReconcileError::delete(part.object(namespace)))?,
            Missing::Service { name, .. } => {
                delete_service(services, namespace, name).await?;
            }
        }
    }
    Ok(())
}

/// Deletes copy group `id`: its Services first (routing stops), then its workloads.
/// Returns what was deleted.
pub async fn remove_copy_group(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    obs: &Observation,
    id: i32,
) -> Result<Vec<String>, ReconcileError> {
    let namespace = rsg.namespace().unwrap_or_default();
    let mut deleted = delete_copy_services(ctx, rsg, obs, id).await?;
    for target in &obs.targets {
        if let Some(copy) = target.copies.get(&id) {
            let name = copy["metadata"]["name"].as_str().unwrap_or_default();
            let object = ObjectName::new(target.kind.kind_name(), &namespace, name);
            ctx.workloads
                .delete(&target.kind, &namespace, name)
                .await
                .map_err(ReconcileError::delete(object.clone()))?;
            deleted.push(object.to_string());
        }
    }
    Ok(deleted)
}

/// Deletes a Service; a missing one is not an error. Returns whether it existed.
async fn delete_service(
    api: &Api<Service>,
    namespace: &str,
    name: &str,
) -> Result<bool, ReconcileError> {
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(err) if api_errors::is_not_found(&err) => Ok(false),
        Err(err) => Err(ReconcileError::delete(ObjectName::new(
            "Service", namespace, name,
        ))(err)),
    }
}

/// Deletes the Service copies of group `id`.
pub async fn delete_copy_services(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    obs: &Observation,
    id: i32,
) -> Result<Vec<String>, ReconcileError> {
    let namespace = rsg.namespace().unwrap_or_default();
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut deleted = Vec::new();
    for service in obs.copy_services.get(&id).into_iter().flatten() {
        let name = service["metadata"]["name"].as_str().unwrap_or_default();
        let is_group = label(service, LABEL_GROUP_ID) == Some(id.to_string().as_str());
        if !is_group {
            continue;
        }
        if delete_service(&api, &namespace, name).await? {
            deleted.push(format!("Service {namespace}/{name}"));
        }
    }
    Ok(deleted)
}

/// Scales every base workload to zero (holding group 0) or back to its baseline. A
/// RoleBasedGroup is scaled role by role (`spec.roles[].replicas`).
/// Returns the problem that stopped it (an unusable baseline), if any.
pub async fn set_group0(
    ctx: &Context,
    obs: &Observation,
    hold: bool,
) -> Result<Option<Problem>, ReconcileError> {
    for target in &obs.targets {
        let replicas = if hold {
            // Every role the live object has, whatever the baseline says.
            if role_based_group::is_role_based_group(&target.base) {
                let roles = role_based_group::role_replicas(&target.base);
                Replicas::PerRole(roles.into_keys().map(|role| (role, 0)).collect())
            } else {
                Replicas::Count(0)
            }
        } else {
            match &target.baseline {
                Ok(baseline) => baseline.clone(),
                Err(err) => return Ok(Some(Problem::InvalidReplicaConfig(err.clone()))),
            }
        };
        let annotation = if hold {
            Value::from("true")
        } else {
            Value::Null
        };
        let mut patch = json!({"metadata": {"annotations": {ANNOTATION_HELD_AT_ZERO: annotation, ANNOTATION_DRAINING_SINCE: null}}});
        match &replicas {
            Replicas::Count(count) if target.kind.has_single_replica_count() => {
                patch["spec"] = json!({"replicas": count});
            }
            Replicas::PerRole(roles) => {
                let scale = role_based_group::scale_patch(&target.base, roles);
                patch["spec"] = scale["spec"].clone();
                patch["metadata"]["resourceVersion"] = scale["metadata"]["resourceVersion"].clone();
            }
            Replicas::Count(_) => {}
        }
        patch_base(ctx, target, &patch).await?;
    }
    Ok(None)
}

/// Merge-patches a target's base workload (the user's object: rsg changes only the fields
/// it patches, under its field manager).
async fn patch_base(
    ctx: &Context,
    target: &TargetState,
    patch: &Value,
) -> Result<(), ReconcileError> {
    patch_workload(
        ctx,
        &target.kind,
        &target.base_namespace,
        &target.base_name,
        patch,
    )
    .await
}

async fn patch_workload(
    ctx: &Context,
    kind: &WorkloadKind,
    namespace: &str,
    name: &str,
    patch: &Value,
) -> Result<(), ReconcileError> {
    ctx.workloads
        .merge_patch(kind, namespace, name, patch)
        .await
        .map_err(ReconcileError::patch(ObjectName::new(
            kind.kind_name(),
            namespace,
            name,
        )))
}

/// Labels each base workload (metadata only) as group 0 of this RSG.
pub async fn adopt_bases(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    obs: &Observation,
) -> Result<Vec<String>, ReconcileError> {
    let rsg_name = rsg.name_any();
    let patch = json!({"metadata": {"labels": {LABEL_NAME: rsg_name, LABEL_GROUP_ID: "0", LABEL_MANAGED: "true"}}});
    let unadopted = obs.targets.iter().filter(|target| {
        let group = label(&target.base, LABEL_GROUP_ID);
        let managed = label(&target.base, LABEL_MANAGED).is_some();
        !(labelled_ours(&target.base, &rsg_name) && group == Some("0") && managed)
    });
    // Each base is its own object: labelled at once.
    futures::future::try_join_all(unadopted.map(|target| async {
        patch_base(ctx, target, &patch).await?;
        Ok::<_, ReconcileError>(format!(
            "{} {}/{}",
            target.kind.kind_name(),
            target.base_namespace,
            target.base_name
        ))
    }))
    .await
}

/// Marks group `id` as draining since `since` (or, with `None`, no longer draining) on its
/// workloads: the copies for a copy group, the bases for group 0. Only an annotation changes.
pub async fn mark_draining(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    obs: &Observation,
    id: i32,
    since: Option<&str>,
) -> Result<(), ReconcileError> {
    let namespace = rsg.namespace().unwrap_or_default();
    let patch = json!({"metadata": {"annotations": {ANNOTATION_DRAINING_SINCE: since}}});
    for target in &obs.targets {
        if id == 0 {
            patch_base(ctx, target, &patch).await?;
        } else if let Some(copy) = target.copies.get(&id) {
            let name = copy["metadata"]["name"].as_str().unwrap_or_default();
            patch_workload(ctx, &target.kind, &namespace, name, &patch).await?;
        }
    }
    Ok(())
}
