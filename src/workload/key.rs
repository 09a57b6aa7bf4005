//! The identity of a workload, independent of API version.

use std::fmt;

use crate::api::ResourceRef;

/// Identifies one workload: API group, kind, namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkloadKey {
    /// API group (empty for core).
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl WorkloadKey {
    /// The workload a reference points at, given the RSG's namespace.
    pub fn from_ref(reference: &ResourceRef, rsg_namespace: &str) -> Self {
        Self {
            group: reference.group().to_string(),
            kind: reference.kind.clone(),
            namespace: reference.namespace_or(rsg_namespace).to_string(),
            name: reference.name.clone(),
        }
    }
}

impl fmt::Display for WorkloadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// An RSG's claim on a workload, as recorded in the shared cache's index.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TargetClaim {
    /// Namespace of the claiming RSG.
    pub rsg_namespace: String,
    /// Name of the claiming RSG.
    pub rsg_name: String,
    /// Strategy type of the claiming RSG.
    pub strategy: String,
}
