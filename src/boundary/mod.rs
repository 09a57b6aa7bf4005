//! The tenant boundary: which workloads rsg may act on for an RSG, decided from the RSG's
//! own namespace and spec, the operator's settings and the target namespaces' grants.
//!
//! Admission also checks the requester's own RBAC (see `admission::access_review`), but the
//! webhook can be bypassed (`failurePolicy: Ignore` while rsg is down) and the controller
//! cannot see who wrote an RSG. So the controller acts on a target only when:
//! * its namespace is not a system namespace (`kube-system`, `kube-public`,
//!   `kube-node-lease`) nor rsg's own;
//! * its namespace matches the operator's namespace selector, when one is set;
//! * it lives in the RSG's namespace, or its namespace has a ResourceScalingGroupGrant that
//!   admits the RSG's namespace to that workload.
//!
//! The checks are pure: grants and namespace labels are passed in (`namespace_labels` reads
//! the labels at the edge).

mod namespace_labels;
mod namespace_selector;

use std::collections::{BTreeMap, BTreeSet};

pub use namespace_labels::{current_violations, read_namespace_labels, Grants};
pub use namespace_selector::{NamespaceSelector, SelectorError};

use crate::api::{ResourceScalingGroupGrantSpec, ResourceScalingGroupSpec};
use crate::cache::WatchScope;
use crate::validation::FieldError;

/// Namespaces whose workloads rsg never acts on.
pub const SYSTEM_NAMESPACES: [&str; 3] = ["kube-system", "kube-public", "kube-node-lease"];

/// The operator's settings of the boundary.
#[derive(Clone, Debug, Default)]
pub struct TargetBoundary {
    /// rsg's own namespace (never a target).
    pub own_namespace: Option<String>,
    /// rsg's own ServiceAccount (in its namespace): no copy runs as it.
    pub own_service_account: Option<String>,
    /// rsg's own Secrets (in its namespace): no copy uses them.
    pub own_secrets: std::collections::BTreeSet<String>,
    /// Only namespaces matching this may hold targets.
    pub namespace_selector: Option<NamespaceSelector>,
    /// Whether copies of LoadBalancer and NodePort Services keep their type.
    pub allow_external_service_copies: bool,
    /// The namespaces the installation acts in (RSGs, targets and copies).
    pub watch_scope: WatchScope,
}

/// How a target breaks the boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViolationKind {
    /// A namespace rsg never acts in, whoever asks.
    ClosedNamespace,
    /// Another namespace that has not granted this RSG's namespace the workload.
    NotGranted,
}

/// A target outside the boundary, as a field error on its namespace.
#[derive(Clone, Debug, PartialEq)]
pub struct Violation {
    /// What kind of breach.
    pub kind: ViolationKind,
    /// The message, with the target's field path.
    pub error: FieldError,
}

/// Labels of the namespaces the selector is checked against: `None` for a namespace that
/// could not be read (treated as not selected, with the same message as one that is not).
pub type NamespaceLabels = BTreeMap<String, Option<BTreeMap<String, String>>>;

impl TargetBoundary {
    /// Whether `namespace` is closed to every RSG.
    pub fn is_closed(&self, namespace: &str) -> bool {
        SYSTEM_NAMESPACES.contains(&namespace)
            || self.own_namespace.as_deref() == Some(namespace)
            || !self.watch_scope.includes(namespace)
    }

    /// Why an RSG in `namespace` is not served by this installation, if it is not: one
    /// confined to some namespaces (`--watch-namespaces`) has no rights elsewhere.
    pub fn rsg_namespace_error(&self, namespace: &str) -> Option<FieldError> {
        let listed = self.watch_scope.namespaces()?;
        (!listed.contains(namespace)).then(|| {
            FieldError::forbidden(
                "metadata.namespace",
                format!(
                    "this rsg installation acts only in the namespaces {:?}, not in {namespace:?}",
                    listed.iter().collect::<Vec<_>>()
                ),
            )
        })
    }

    /// The namespaces whose labels [`Self::violations`] needs (none without a selector).
    pub fn namespaces_to_label(
        &self,
        rsg_namespace: &str,
        spec: &ResourceScalingGroupSpec,
    ) -> BTreeSet<String> {
        if self.namespace_selector.is_none() {
            return BTreeSet::new();
        }
        spec.target_resources
            .iter()
            .map(|t| t.resource_ref.namespace_or(rsg_namespace).to_string())
            .filter(|ns| !self.is_closed(ns))
            .collect()
    }

    /// Every target of `spec` outside the boundary. `grants_in(namespace)` lists the grants
    /// of a namespace; `labels` holds what [`Self::namespaces_to_label`] asked for.
    pub fn violations<'g>(
        &self,
        rsg: (&str, &str),
        spec: &ResourceScalingGroupSpec,
        labels: &NamespaceLabels,
        grants_in: impl Fn(&str) -> Vec<&'g ResourceScalingGroupGrantSpec>,
    ) -> Vec<Violation> {
        self.find_violations(rsg, spec, Some(labels), grants_in)
    }

    /// Whether another RSG's claim on a workload counts: only a claim rsg could act on (closed
    /// namespaces and grants checked; the namespace selector, which needs the API, is not).
    /// A claim from outside the boundary never blocks the workload's real owner.
    pub fn claim_counts<'g>(
        &self,
        rsg: (&str, &str),
        spec: &ResourceScalingGroupSpec,
        grants_in: impl Fn(&str) -> Vec<&'g ResourceScalingGroupGrantSpec>,
    ) -> bool {
        self.find_violations(rsg, spec, None, grants_in).is_empty()
    }

    fn find_violations<'g>(
        &self,
        (rsg_namespace, rsg_name): (&str, &str),
        spec: &ResourceScalingGroupSpec,
        labels: Option<&NamespaceLabels>,
        grants_in: impl Fn(&str) -> Vec<&'g ResourceScalingGroupGrantSpec>,
    ) -> Vec<Violation> {
        let mut found = Vec::new();
        for (i, target) in spec.target_resources.iter().enumerate() {
            let reference = &target.resource_ref;
            let namespace = reference.namespace_or(rsg_namespace);
            let path = format!("spec.targetResources[{i}].resourceRef.namespace");
            let closed = |detail: String| Violation {
                kind: ViolationKind::ClosedNamespace,
                error: FieldError::forbidden(&path, detail),
            };
            if SYSTEM_NAMESPACES.contains(&namespace) {
                found.push(closed(format!(
                    "rsg never acts on workloads in {namespace:?}, a system namespace"
                )));
                continue;
            }
            if self.own_namespace.as_deref() == Some(namespace) {
                found.push(closed(format!(
                    "rsg never acts on workloads in {namespace:?}, its own namespace"
                )));
                continue;
            }
            if let Some(listed) = self
                .watch_scope
                .namespaces()
                .filter(|listed| !listed.contains(namespace))
            {
                found.push(closed(format!(
                    "namespace {namespace:?} is not among the namespaces this rsg installation acts in ({:?})",
                    listed.iter().collect::<Vec<_>>()
                )));
                continue;
            }
            if let (Some(selector), Some(labels)) = (&self.namespace_selector, labels) {
                let selected = labels
                    .get(namespace)
                    .and_then(Option::as_ref)
                    .is_some_and(|l| selector.matches(l));
                if !selected {
                    found.push(closed(format!(
                        "namespace {namespace:?} is not among the namespaces this rsg installation acts in (namespace selector {:?})",
                        selector.to_string()
                    )));
                    continue;
                }
            }
            if namespace == rsg_namespace {
                continue;
            }
            let group = reference.group();
            let granted = grants_in(namespace).iter().any(|g| {
                g.admits(
                    (rsg_namespace, rsg_name),
                    group,
                    &reference.kind,
                    &reference.name,
                )
            });
            if !granted {
                found.push(Violation {
                    kind: ViolationKind::NotGranted,
                    error: FieldError::forbidden(
                        &path,
                        format!(
                            "no ResourceScalingGroupGrant in namespace {namespace:?} admits RSG {rsg_name:?} of namespace {rsg_namespace:?} to {} {}; rsg acts on it once one does",
                            reference.kind, reference.name
                        ),
                    ),
                });
            }
        }
        found
    }
}

#[cfg(test)]
mod tests;
