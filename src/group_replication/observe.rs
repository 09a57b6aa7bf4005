//! Reading everything a GroupReplication reconcile decides from. Nothing here writes: what
//! would have to be stored first (a snapshot, the baseline ConfigMap) is worked out by the
//! pure functions of [`super::artifact_decisions`] and carried in the [`Observation`].

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use serde_json::Value;

use super::artifact_decisions::{
    resolve_baseline, resolve_snapshot, snapshot_revision, BaselineWrite, SnapshotWrite,
};
use super::baseline::{Baseline, Replicas};
use super::placement::{BasePods, CopyPlacement};
use super::revision::{group_revision, template_revision, with_placement};
use crate::api::{
    GroupState, ResourceScalingGroup, TargetResource, LABEL_GROUP_ID, LABEL_NAME, LABEL_PLACEMENT,
    LABEL_REVISION, LABEL_TARGET,
};
use crate::cache::{labelled, trimmed_as_copy};
use crate::naming::{replica_config_name, snapshot_name};
use crate::reconcile::{to_json, Context, Failure, NotFound, ObjectName, Problem, ReconcileError};
use crate::workload::{
    self, all_pod_template_labels, is_fully_ready, label, object_to_value, AccessError,
    WorkloadKind,
};

/// Annotation on base workloads while the RSG holds group 0 at zero replicas.
pub const ANNOTATION_HELD_AT_ZERO: &str = "rsg.io/held-at-zero";
/// Annotation on a group's workloads while it drains before removal (RFC 3339 time).
pub const ANNOTATION_DRAINING_SINCE: &str = "rsg.io/draining-since";

/// One target as observed.
pub struct TargetState {
    /// Target name.
    pub name: String,
    /// Kind.
    pub kind: WorkloadKind,
    /// Namespace of the base workload.
    pub base_namespace: String,
    /// Name of the base workload.
    pub base_name: String,
    /// The live base workload.
    pub base: Value,
    /// The snapshot new copies are built from (stored, or about to be: see
    /// [`Observation::snapshots_to_store`]).
    pub snapshot: Value,
    /// The revision of that snapshot: the one new copies get.
    pub update_revision: String,
    /// The revision of the live base (group 0).
    pub live_revision: String,
    /// The revision of each existing copy, by group id.
    pub copy_revisions: BTreeMap<i32, String>,
    /// The placement fingerprint each existing copy was made with (empty: none), by group id.
    pub copy_placements: BTreeMap<i32, String>,
    /// Replicas for new copies and a restored group 0.
    pub baseline: Baseline,
    /// Existing copies by group id.
    pub copies: BTreeMap<i32, Value>,
}

/// A base Service that fronts one or more targets. The cache holds only its name, selector
/// and type; a group that needs a copy of it reads it whole (see `apply`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseService {
    /// Its namespace (a target's).
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// Everything observed.
pub struct Observation {
    /// Targets in spec order.
    pub targets: Vec<TargetState>,
    /// Base Services to copy into every group.
    pub base_services: Vec<BaseService>,
    /// Existing Service copies by group id.
    pub copy_services: BTreeMap<i32, Vec<Value>>,
    /// Whether group 0 is held at zero.
    pub group0_held: bool,
    /// Groups draining before removal, and since when.
    pub draining: BTreeMap<i32, Timestamp>,
    /// Snapshots that have to be stored before groups are built from them.
    pub snapshots_to_store: Vec<SnapshotWrite>,
    /// What the baseline ConfigMap needs (created, adopted, keys filled in).
    pub baseline_write: BaselineWrite,
    /// The placement new copies get (`groupConfig.placement`).
    pub placement: Option<CopyPlacement>,
}

/// What observing found.
pub enum Observed {
    /// Problems the user has to fix before any group work (a missing target, a taken name).
    Blocked(Vec<Problem>),
    /// Everything the plan is made from.
    Ready(Box<Observation>),
}

impl Observation {
    /// The namespaces the RSG acts in: its own (where copies run) and its targets'.
    pub fn namespaces(&self, rsg_namespace: &str) -> BTreeSet<String> {
        self.targets
            .iter()
            .map(|t| t.base_namespace.clone())
            .chain([rsg_namespace.to_string()])
            .collect()
    }

    /// Names of the base Services in `namespace`.
    pub fn base_services_in(&self, namespace: &str) -> Vec<String> {
        self.base_services
            .iter()
            .filter(|s| s.namespace == namespace)
            .map(|s| s.name.clone())
            .collect()
    }

    /// The placement fingerprint new copies get; empty without placement.
    pub fn placement_fingerprint(&self) -> &str {
        self.placement
            .as_ref()
            .map_or("", |p| p.fingerprint.as_str())
    }

    /// The revision new groups get.
    pub fn update_revision(&self) -> String {
        with_placement(
            group_revision(
                self.targets
                    .iter()
                    .map(|t| (t.name.as_str(), t.update_revision.as_str())),
            ),
            Some(self.placement_fingerprint()),
        )
    }

    /// The revision of group `id` (group 0: the live bases, which placement never changes).
    pub fn group_revision(&self, id: i32) -> String {
        let templates = group_revision(self.targets.iter().map(|t| {
            let revision = if id == 0 {
                t.live_revision.as_str()
            } else {
                t.copy_revisions.get(&id).map_or("missing", String::as_str)
            };
            (t.name.as_str(), revision)
        }));
        let placement = if id == 0 {
            Some(self.placement_fingerprint())
        } else {
            self.targets
                .iter()
                .find_map(|t| t.copy_placements.get(&id))
                .map(String::as_str)
        };
        with_placement(templates, placement)
    }

    /// Whether copy group `id` has a workload made from another revision or placement than
    /// new groups get. A workload not seen yet (a group being created, a cache catching up)
    /// does not make it outdated: that is an incomplete group, completed as such.
    pub fn group_outdated(&self, id: i32) -> bool {
        let placement = self.placement_fingerprint();
        id > 0
            && self.targets.iter().any(|t| {
                t.copy_revisions
                    .get(&id)
                    .is_some_and(|revision| *revision != t.update_revision)
                    || t.copy_placements.get(&id).is_some_and(|p| p != placement)
            })
    }

    /// Copy groups made with another placement than new groups get.
    pub fn groups_placed_otherwise(&self) -> BTreeSet<i32> {
        let placement = self.placement_fingerprint();
        self.targets
            .iter()
            .flat_map(|t| t.copy_placements.iter())
            .filter(|(_, p)| p.as_str() != placement)
            .map(|(id, _)| *id)
            .collect()
    }

    /// The pods of every target's group 0, which spreading keeps copies away from.
    pub fn base_pods(&self) -> Vec<BasePods> {
        self.targets
            .iter()
            .map(|t| BasePods {
                namespace: t.base_namespace.clone(),
                selector: workload::pod_selector(&t.base),
            })
            .collect()
    }

    /// Whether every workload of group `id` is fully ready (group 0: the bases).
    pub fn group_ready(&self, id: i32) -> bool {
        if id == 0 {
            self.targets.iter().all(|t| is_fully_ready(&t.base))
        } else {
            self.targets
                .iter()
                .all(|t| t.copies.get(&id).is_some_and(is_fully_ready))
        }
    }

    /// The value of `annotation` on each group's copy of the first target (group 0: the base).
    pub fn first_target_annotations(&self, annotation: &str) -> BTreeMap<i32, Option<String>> {
        let Some(first) = self.targets.first() else {
            return BTreeMap::new();
        };
        let read = |object: &Value| workload::annotation(object, annotation).map(str::to_string);
        std::iter::once((0, read(&first.base)))
            .chain(first.copies.iter().map(|(id, copy)| (*id, read(copy))))
            .collect()
    }

    /// Copy groups of which at least one object exists.
    pub fn existing_copies(&self) -> BTreeSet<i32> {
        self.targets
            .iter()
            .flat_map(|t| t.copies.keys().copied())
            .chain(self.copy_services.keys().copied())
            .collect()
    }

    /// Existing copy groups that miss a workload or a Service copy.
    pub fn incomplete_copies(&self) -> BTreeSet<i32> {
        self.existing_copies()
            .into_iter()
            .filter(|id| {
                self.targets.iter().any(|t| !t.copies.contains_key(id))
                    || self.copy_services.get(id).map_or(0, Vec::len) < self.base_services.len()
            })
            .collect()
    }
}

fn draining_since(object: &Value) -> Option<Timestamp> {
    workload::annotation(object, ANNOTATION_DRAINING_SINCE)?
        .parse()
        .ok()
}

fn group_of(object: &Value) -> Option<i32> {
    label(object, LABEL_GROUP_ID)?.parse().ok()
}

/// A failed read of a target's objects: a problem the user fixes (kind not served, RBAC), or
/// a failure retried with backoff.
fn access_problem(
    target: &str,
    what: &str,
    err: AccessError,
    failed: impl FnOnce(AccessError) -> ReconcileError,
) -> Result<Problem, ReconcileError> {
    match err {
        AccessError::NotServed { .. } => Ok(Problem::TargetNotFound(NotFound::KindNotServed(
            Failure::new(format!("target {target:?}"), err),
        ))),
        ref e if e.is_forbidden() => Ok(Problem::Forbidden(Failure::new(
            format!("target {target:?}: {what}"),
            err,
        ))),
        other => Err(failed(other)),
    }
}

/// Copies of `kind` made by this RSG, from the cache for typed kinds, else listed.
async fn copies_of(
    ctx: &Context,
    rsg_namespace: &str,
    rsg_name: &str,
    kind: &WorkloadKind,
) -> Result<Vec<Value>, AccessError> {
    let typed = |objects: Vec<Value>, api_version: &str, kind: &str| {
        objects
            .into_iter()
            .map(|v| with_kind(v, api_version, kind))
            .collect()
    };
    Ok(match kind {
        WorkloadKind::Deployment => typed(
            labelled(
                &ctx.stores.deployments,
                &ctx.stores.members,
                rsg_namespace,
                rsg_name,
            )
            .iter()
            .map(|d| object_to_value("Deployment", d.as_ref()))
            .collect::<Result<_, _>>()?,
            "apps/v1",
            "Deployment",
        ),
        WorkloadKind::StatefulSet => typed(
            labelled(
                &ctx.stores.statefulsets,
                &ctx.stores.members,
                rsg_namespace,
                rsg_name,
            )
            .iter()
            .map(|s| object_to_value("StatefulSet", s.as_ref()))
            .collect::<Result<_, _>>()?,
            "apps/v1",
            "StatefulSet",
        ),
        other => {
            ctx.workloads
                .list(other, rsg_namespace, &format!("{LABEL_NAME}={rsg_name}"))
                .await?
        }
    })
}

/// The revision of each copy: its label, or for a copy made before revisions were labelled,
/// the revision of the first snapshot (the one it was built from).
fn copy_revisions(
    copies: &BTreeMap<i32, Value>,
    first_snapshot: Option<String>,
) -> BTreeMap<i32, String> {
    copies
        .iter()
        .map(|(id, copy)| {
            let revision = label(copy, LABEL_REVISION)
                .map(str::to_string)
                .or_else(|| first_snapshot.clone())
                .unwrap_or_else(|| "unknown".to_string());
            (*id, revision)
        })
        .collect()
}

/// The placement fingerprint of each copy (empty when it was made without placement).
fn copy_placements(copies: &BTreeMap<i32, Value>) -> BTreeMap<i32, String> {
    copies
        .iter()
        .map(|(id, copy)| (*id, label(copy, LABEL_PLACEMENT).unwrap_or("").to_string()))
        .collect()
}

/// The copies of target `target` among `all`, by group id.
fn copies_by_group(all: Vec<Value>, target: &str) -> BTreeMap<i32, Value> {
    all.into_iter()
        .filter(|c| label(c, LABEL_TARGET) == Some(target))
        .filter_map(|c| group_of(&c).filter(|id| *id > 0).map(|id| (id, c)))
        .collect()
}

/// The copy groups this RSG's status last listed as existing (active or draining).
fn groups_in_status(rsg: &ResourceScalingGroup) -> BTreeSet<i32> {
    rsg.status
        .iter()
        .flat_map(|s| &s.groups)
        .filter(|g| g.id > 0 && matches!(g.state, GroupState::Active | GroupState::Draining))
        .map(|g| g.id)
        .collect()
}

fn with_kind(mut value: Value, api_version: &str, kind: &str) -> Value {
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), Value::from(api_version));
        map.insert("kind".into(), Value::from(kind));
    }
    value
}

/// A base workload: from the cache when it holds the workload whole (adopted Deployments and
/// StatefulSets carry `rsg.io/managed`; one labelled as a copy is cached without its pod
/// spec) with rsg's own last write to it, else from the API server.
async fn read_base(
    ctx: &Context,
    kind: &WorkloadKind,
    namespace: &str,
    name: &str,
) -> Result<Option<Value>, AccessError> {
    let cached = match kind {
        WorkloadKind::Deployment => ctx
            .stores
            .deployments
            .get(&ObjectRef::new(name).within(namespace))
            .filter(|d| !trimmed_as_copy(&d.metadata))
            .map(|d| {
                (
                    d.metadata.resource_version.clone(),
                    object_to_value("Deployment", d.as_ref()),
                )
            }),
        WorkloadKind::StatefulSet => ctx
            .stores
            .statefulsets
            .get(&ObjectRef::new(name).within(namespace))
            .filter(|s| !trimmed_as_copy(&s.metadata))
            .map(|s| {
                (
                    s.metadata.resource_version.clone(),
                    object_to_value("StatefulSet", s.as_ref()),
                )
            }),
        _ => None,
    };
    if let Some((version, value)) = cached {
        if ctx
            .workloads
            .cache_has_own_writes(kind, namespace, name, version.as_deref())
        {
            let (api_version, kind_name) = ("apps/v1", kind.kind_name().to_string());
            return value.map(|v| Some(with_kind(v, api_version, &kind_name)));
        }
    }
    ctx.workloads.get(kind, namespace, name).await
}

/// Observes the targets, their snapshots and baselines, existing copies and Services.
pub async fn observe(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
) -> Result<Observed, ReconcileError> {
    let expected_groups = groups_in_status(rsg);
    let mut problems = Vec::new();
    let mut targets = Vec::new();
    let mut snapshots_to_store = Vec::new();
    for target in &rsg.spec.target_resources {
        match observe_target(ctx, rsg, target, &expected_groups).await? {
            TargetObservation::Observed(observed) => {
                let (state, to_store) = *observed;
                targets.push(state);
                snapshots_to_store.extend(to_store);
            }
            TargetObservation::Problem(problem) => problems.push(problem),
            TargetObservation::Skipped => {}
        }
    }
    if !problems.is_empty() {
        return Ok(Observed::Blocked(problems));
    }
    let snapshots: BTreeMap<String, Value> = targets
        .iter()
        .map(|t| (t.name.clone(), t.snapshot.clone()))
        .collect();
    let config_map = replica_config(ctx, rsg).await?;
    let (baseline_write, baselines) = resolve_baseline(rsg, config_map.as_ref(), &snapshots);
    for target in &mut targets {
        target.baseline = baselines
            .get(&target.name)
            .cloned()
            .unwrap_or(Ok(Replicas::Count(1)));
    }
    let base_services = associated_services(ctx, &targets);
    let copy_services =
        service_copies(ctx, rsg, &expected_groups, !base_services.is_empty()).await?;
    let group0_held = !targets.is_empty()
        && targets
            .iter()
            .all(|t| workload::annotation(&t.base, ANNOTATION_HELD_AT_ZERO) == Some("true"));
    Ok(Observed::Ready(Box::new(Observation {
        draining: draining_groups(&targets, group0_held),
        targets,
        base_services,
        copy_services,
        group0_held,
        snapshots_to_store,
        baseline_write,
        placement: rsg
            .spec
            .scaling_strategy
            .group_config
            .as_ref()
            .and_then(|c| c.placement.as_ref())
            .map(CopyPlacement::of),
    })))
}

/// What observing one target found.
enum TargetObservation {
    /// Its state, and the snapshot to store first if there is one.
    Observed(Box<(TargetState, Option<SnapshotWrite>)>),
    /// Why the RSG cannot be reconciled for now.
    Problem(Problem),
    /// A kind rsg does not handle (refused at admission; nothing to observe).
    Skipped,
}

/// Reads one target's base, resolves its snapshot (checking the copies' identities) and
/// lists its copies.
async fn observe_target(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    target: &TargetResource,
    expected_groups: &BTreeSet<i32>,
) -> Result<TargetObservation, ReconcileError> {
    let rsg_namespace = rsg.namespace().unwrap_or_default();
    let reference = &target.resource_ref;
    let Ok(kind) = WorkloadKind::parse(&reference.api_version, &reference.kind) else {
        return Ok(TargetObservation::Skipped);
    };
    let base_namespace = reference.namespace_or(&rsg_namespace).to_string();
    let base_object = ObjectName::new(kind.kind_name(), &base_namespace, &reference.name);
    let base = match read_base(ctx, &kind, &base_namespace, &reference.name).await {
        Ok(Some(base)) => base,
        Ok(None) => {
            return Ok(TargetObservation::Problem(Problem::TargetNotFound(
                NotFound::Target {
                    target: target.name.clone(),
                    workload: format!("{} {base_namespace}/{}", reference.kind, reference.name),
                },
            )));
        }
        Err(err) => {
            return access_problem(
                &target.name,
                "reading the base workload",
                err,
                ReconcileError::read(base_object),
            )
            .map(TargetObservation::Problem);
        }
    };
    let live_revision = template_revision(&base);
    let ours = super::artifact_decisions::snapshots_of(&ctx.stores, rsg, &target.name);
    let (snapshot, to_store) = match target_snapshot(ctx, rsg, target, &base, &live_revision, &ours)
    {
        Ok(resolved) => resolved,
        Err(problem) => return Ok(TargetObservation::Problem(problem)),
    };
    let copies = match listed_copies(ctx, rsg, &kind, &target.name, expected_groups).await {
        Ok(copies) => copies,
        Err(err) => {
            return access_problem(
                &target.name,
                "listing copies",
                err,
                ReconcileError::list(kind.kind_name(), &rsg_namespace),
            )
            .map(TargetObservation::Problem);
        }
    };
    let first_snapshot = ours
        .iter()
        .min_by_key(|s| s.revision)
        .and_then(snapshot_revision);
    let state = TargetState {
        name: target.name.clone(),
        kind,
        base_namespace,
        base_name: reference.name.clone(),
        base,
        update_revision: template_revision(&snapshot),
        snapshot,
        live_revision,
        copy_revisions: copy_revisions(&copies, first_snapshot),
        copy_placements: copy_placements(&copies),
        baseline: Ok(Replicas::Count(0)),
        copies,
    };
    Ok(TargetObservation::Observed(Box::new((state, to_store))))
}

/// The snapshot new copies of `target` are built from (and the one to store first, if
/// any), refused when the copies would run with identities the RSG's author did not
/// approve.
fn target_snapshot(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    target: &TargetResource,
    base: &Value,
    live_revision: &str,
    ours: &[ControllerRevision],
) -> Result<(Value, Option<SnapshotWrite>), Problem> {
    let rsg_namespace = rsg.namespace().unwrap_or_default();
    let named = ctx
        .stores
        .revisions
        .get(&ObjectRef::new(&snapshot_name(&rsg.name_any(), &target.name)).within(&rsg_namespace));
    let rolling = rsg
        .spec
        .scaling_strategy
        .group_config
        .as_ref()
        .is_some_and(|c| c.rolling_update().is_some());
    let (snapshot, to_store) = resolve_snapshot(
        rsg,
        &target.name,
        base,
        live_revision,
        rolling,
        named.as_deref(),
        ours,
    )?;
    let base_namespace = target.resource_ref.namespace_or(&rsg_namespace);
    let refused = super::copy_identity::refusals(
        &snapshot,
        (&target.name, target.copy_identity.as_ref()),
        base_namespace,
        &rsg_namespace,
        &ctx.boundary,
    );
    if !refused.is_empty() {
        return Err(Problem::CopyIdentityRefused(refused));
    }
    Ok((snapshot, to_store))
}

/// The target's copies by group id, from the cache; when the cache lacks a group this RSG's
/// own status lists (a watch that is catching up after an API server restart, say), from
/// the API server, before planning on it.
async fn listed_copies(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    kind: &WorkloadKind,
    target: &str,
    expected_groups: &BTreeSet<i32>,
) -> Result<BTreeMap<i32, Value>, AccessError> {
    let rsg_namespace = rsg.namespace().unwrap_or_default();
    let rsg_name = rsg.name_any();
    let cached = copies_of(ctx, &rsg_namespace, &rsg_name, kind)
        .await
        .map(|all| copies_by_group(all, target))?;
    let behind = expected_groups.iter().any(|id| !cached.contains_key(id));
    if !(behind && kind.is_watched()) {
        return Ok(cached);
    }
    ctx.workloads
        .list(kind, &rsg_namespace, &format!("{LABEL_NAME}={rsg_name}"))
        .await
        .map(|all| copies_by_group(all, target))
}

/// The groups draining before removal, and since when (group 0 not while it is held at
/// zero).
fn draining_groups(targets: &[TargetState], group0_held: bool) -> BTreeMap<i32, Timestamp> {
    let mut draining = BTreeMap::new();
    for target in targets {
        if let Some(since) = draining_since(&target.base).filter(|_| !group0_held) {
            draining.insert(0, since);
        }
        for (id, copy) in &target.copies {
            if let Some(since) = draining_since(copy) {
                draining.insert(*id, since);
            }
        }
    }
    draining
}

/// The replica ConfigMap: from the cache, which holds only rsg-labelled ones, else (one the
/// user wrote first, as the manual's flow does, or a cache lagging behind) from the API
/// server. `None` when it does not exist.
async fn replica_config(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
) -> Result<Option<ConfigMap>, ReconcileError> {
    let namespace = rsg.namespace().unwrap_or_default();
    let name = replica_config_name(&rsg.name_any());
    if let Some(cached) = ctx
        .stores
        .config_maps
        .get(&ObjectRef::new(&name).within(&namespace))
    {
        return Ok(Some((*cached).clone()));
    }
    Api::<ConfigMap>::namespaced(ctx.client.clone(), &namespace)
        .get_opt(&name)
        .await
        .map_err(ReconcileError::read(ObjectName::new(
            "ConfigMap",
            &namespace,
            &name,
        )))
}

/// The Service copies of this RSG by group id, from the cache; from the API server when the
/// cache lacks Service copies of a group the RSG's status lists (a watch catching up after
/// an API server or etcd restart), so no group's Services are missed on removal.
async fn service_copies(
    ctx: &Context,
    rsg: &ResourceScalingGroup,
    expected_groups: &BTreeSet<i32>,
    groups_have_services: bool,
) -> Result<BTreeMap<i32, Vec<Value>>, ReconcileError> {
    let namespace = rsg.namespace().unwrap_or_default();
    let rsg_name = rsg.name_any();
    let mut by_group = group_services(
        labelled(
            &ctx.stores.services,
            &ctx.stores.members,
            &namespace,
            &rsg_name,
        )
        .iter()
        .map(|s| to_json("Service", s.as_ref())),
    )?;
    let behind =
        groups_have_services && expected_groups.iter().any(|id| !by_group.contains_key(id));
    if behind {
        let listed = Api::<Service>::namespaced(ctx.client.clone(), &namespace)
            .list(&ListParams::default().labels(&format!("{LABEL_NAME}={rsg_name}")))
            .await
            .map_err(ReconcileError::list("Service", &namespace))?;
        by_group = group_services(listed.items.iter().map(|s| to_json("Service", s)))?;
    }
    Ok(by_group)
}

fn group_services(
    services: impl Iterator<Item = Result<Value, ReconcileError>>,
) -> Result<BTreeMap<i32, Vec<Value>>, ReconcileError> {
    let mut by_group: BTreeMap<i32, Vec<Value>> = BTreeMap::new();
    for service in services {
        let value = service?;
        if let Some(id) = group_of(&value).filter(|id| *id > 0) {
            by_group.entry(id).or_default().push(value);
        }
    }
    Ok(by_group)
}

/// What decides which Services front a target, read once per reconcile.
struct Fronted<'a> {
    namespace: &'a str,
    /// The labels of each of its pod templates.
    templates: Vec<BTreeMap<String, String>>,
    /// A StatefulSet's governing Service.
    governing_service: Option<&'a str>,
}

impl<'a> Fronted<'a> {
    fn of(target: &'a TargetState) -> Self {
        Self {
            namespace: &target.base_namespace,
            templates: all_pod_template_labels(&target.base),
            governing_service: target
                .base
                .pointer("/spec/serviceName")
                .and_then(Value::as_str),
        }
    }
}

/// The Services in the targets' namespaces whose selector picks a target's pods, and a
/// StatefulSet's governing Service, from the cache (its selector index).
fn associated_services(ctx: &Context, targets: &[TargetState]) -> Vec<BaseService> {
    let mut names: BTreeSet<(String, String)> = BTreeSet::new();
    for target in targets.iter().map(Fronted::of) {
        let namespace = target.namespace;
        let fronting = ctx
            .stores
            .cached_services_fronting(namespace, &target.templates);
        names.extend(
            fronting
                .into_keys()
                .map(|name| (namespace.to_string(), name)),
        );
        let governing = target.governing_service.filter(|name| {
            let cached = ObjectRef::new(name).within(namespace);
            ctx.stores.services.get(&cached).is_some()
        });
        names.extend(governing.map(|name| (namespace.to_string(), name.to_string())));
    }
    names
        .into_iter()
        .map(|(namespace, name)| BaseService { namespace, name })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{copies_by_group, copy_revisions, groups_in_status};
    use crate::api::ResourceScalingGroup;
    use serde_json::json;

    #[test]
    fn the_groups_a_status_lists_are_its_active_and_draining_copies() {
        let mut rsg: ResourceScalingGroup =
            crate::fixtures::rsg("n", "g", Vec::new(), json!({"type": "GroupReplication"}));
        rsg.status = serde_json::from_value(json!({
            "currentReplicas": 2, "readyReplicas": 0, "groups": [
                {"id": 0, "state": "Active", "active": true, "ready": false},
                {"id": 1, "state": "Active", "active": true, "ready": false},
                {"id": 2, "state": "Draining", "active": false, "ready": false}
            ]
        }))
        .expect("a status");
        assert_eq!(groups_in_status(&rsg), [1, 2].into_iter().collect());
    }

    #[test]
    fn copies_are_kept_per_group_for_their_target_only() {
        let copy = |target: &str, id: &str| json!({"metadata": {"labels": {"rsg.io/target": target, "rsg.io/group-id": id}}});
        let by_group = copies_by_group(
            vec![
                copy("prefill", "1"),
                copy("decode", "1"),
                copy("prefill", "0"),
                copy("prefill", "3"),
            ],
            "prefill",
        );
        assert_eq!(by_group.keys().copied().collect::<Vec<_>>(), vec![1, 3]);
    }

    #[test]
    fn copies_made_before_revisions_were_labelled_date_from_the_first_snapshot() {
        let copies = [
            (
                1,
                json!({"metadata": {"labels": {"rsg.io/revision": "abc"}}}),
            ),
            (2, json!({"metadata": {"labels": {}}})),
        ]
        .into_iter()
        .collect();
        let revisions = copy_revisions(&copies, Some("first".into()));
        assert_eq!(revisions[&1], "abc");
        assert_eq!(revisions[&2], "first");
        assert_eq!(copy_revisions(&copies, None)[&2], "unknown");
    }
}
