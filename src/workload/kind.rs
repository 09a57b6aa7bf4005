//! The workload kinds rsg can scale and how they are reached through the API.

use kube::core::{ApiResource, GroupVersionKind};

/// A supported workload kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkloadKind {
    /// `apps/v1` Deployment (typed API).
    Deployment,
    /// `apps/v1` StatefulSet (typed API).
    StatefulSet,
    /// `leaderworkerset.x-k8s.io/v1` LeaderWorkerSet (dynamic API).
    LeaderWorkerSet,
    /// `workloads.x-k8s.io/v1alpha1` RoleBasedGroup (dynamic API; no single replica count).
    RoleBasedGroup,
    /// Another custom kind with `spec.replicas` (dynamic API, found by discovery).
    Custom(GroupVersionKind),
}

/// Why a kind/apiVersion pair is not supported.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KindError {
    /// A known kind paired with the wrong apiVersion.
    #[error("{kind} is supported with apiVersion {expected}")]
    WrongApiVersion {
        kind: String,
        expected: &'static str,
    },
    /// A built-in kind that is not a scalable workload.
    #[error("supported built-in kinds are \"Deployment\" and \"StatefulSet\" (apps/v1); other kinds must be custom resources with spec.replicas")]
    UnsupportedBuiltIn,
    /// The apiVersion is not `group/version`.
    #[error("must be <group>/<version>, e.g. apps/v1")]
    MalformedApiVersion,
    /// The kind is empty.
    #[error("kind must not be empty")]
    EmptyKind,
}

const LWS_GROUP: &str = "leaderworkerset.x-k8s.io";
const RBG_GROUP: &str = "workloads.x-k8s.io";

impl WorkloadKind {
    /// Resolves an `apiVersion`/`kind` pair.
    pub fn parse(api_version: &str, kind: &str) -> Result<Self, KindError> {
        if kind.is_empty() {
            return Err(KindError::EmptyKind);
        }
        let expect = |expected: &'static str, resolved: WorkloadKind| {
            if api_version == expected {
                Ok(resolved)
            } else {
                Err(KindError::WrongApiVersion {
                    kind: kind.to_string(),
                    expected,
                })
            }
        };
        match kind {
            "Deployment" => return expect("apps/v1", Self::Deployment),
            "StatefulSet" => return expect("apps/v1", Self::StatefulSet),
            "LeaderWorkerSet" => {
                return expect("leaderworkerset.x-k8s.io/v1", Self::LeaderWorkerSet)
            }
            "RoleBasedGroup" => return expect("workloads.x-k8s.io/v1alpha1", Self::RoleBasedGroup),
            _ => {}
        }
        let (group, version) = api_version.split_once('/').ok_or(if api_version == "v1" {
            KindError::UnsupportedBuiltIn
        } else {
            KindError::MalformedApiVersion
        })?;
        if group.is_empty() || version.is_empty() || version.contains('/') {
            return Err(KindError::MalformedApiVersion);
        }
        if is_built_in_group(group) {
            return Err(KindError::UnsupportedBuiltIn);
        }
        Ok(Self::Custom(GroupVersionKind::gvk(group, version, kind)))
    }

    /// The kind's name as written in `resourceRef.kind`.
    pub fn kind_name(&self) -> &str {
        match self {
            Self::Deployment => "Deployment",
            Self::StatefulSet => "StatefulSet",
            Self::LeaderWorkerSet => "LeaderWorkerSet",
            Self::RoleBasedGroup => "RoleBasedGroup",
            Self::Custom(gvk) => &gvk.kind,
        }
    }

    /// The API resource for the kinds whose plural is known without discovery.
    pub fn known_api_resource(&self) -> Option<ApiResource> {
        let (group, version, kind, plural) = match self {
            Self::Deployment => ("apps", "v1", "Deployment", "deployments"),
            Self::StatefulSet => ("apps", "v1", "StatefulSet", "statefulsets"),
            Self::LeaderWorkerSet => (LWS_GROUP, "v1", "LeaderWorkerSet", "leaderworkersets"),
            Self::RoleBasedGroup => (RBG_GROUP, "v1alpha1", "RoleBasedGroup", "rolebasedgroups"),
            Self::Custom(_) => return None,
        };
        Some(ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(group, version, kind),
            plural,
        ))
    }

    /// The group/version/kind of this workload kind.
    pub fn gvk(&self) -> GroupVersionKind {
        match self {
            Self::Custom(gvk) => gvk.clone(),
            other => match other.known_api_resource() {
                Some(ar) => GroupVersionKind::gvk(&ar.group, &ar.version, &ar.kind),
                None => GroupVersionKind::gvk("", "", other.kind_name()),
            },
        }
    }

    /// Whether rsg's cache watches workloads of this kind (Deployments and StatefulSets), so
    /// that their changes reach the reconciler at once; other kinds are read when it runs.
    pub fn is_watched(&self) -> bool {
        matches!(self, Self::Deployment | Self::StatefulSet)
    }

    /// Whether the kind has one replica count that InplaceScaling can set.
    pub fn has_single_replica_count(&self) -> bool {
        !matches!(self, Self::RoleBasedGroup)
    }

    /// The longest name a copy of this kind may have. A StatefulSet's pods carry the label
    /// `controller-revision-hash=<name>-<10 characters>`, which must fit in 63 characters;
    /// LeaderWorkerSets create StatefulSets named after themselves plus a suffix.
    pub fn max_name_len(&self) -> usize {
        match self {
            Self::Deployment => 253,
            Self::StatefulSet => 52,
            Self::LeaderWorkerSet => 46,
            Self::RoleBasedGroup | Self::Custom(_) => 63,
        }
    }
}

/// Kubernetes' own API groups: core, the dot-less groups (apps, batch, ...) and `*.k8s.io`
/// except the SIG-owned `*.x-k8s.io` groups that ship as custom resources.
fn is_built_in_group(group: &str) -> bool {
    !group.contains('.') || (group.ends_with(".k8s.io") && !group.ends_with(".x-k8s.io"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_kinds_need_their_api_version() {
        assert_eq!(
            WorkloadKind::parse("apps/v1", "Deployment"),
            Ok(WorkloadKind::Deployment)
        );
        assert_eq!(
            WorkloadKind::parse("apps/v1", "StatefulSet"),
            Ok(WorkloadKind::StatefulSet)
        );
        assert_eq!(
            WorkloadKind::parse("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet"),
            Ok(WorkloadKind::LeaderWorkerSet)
        );
        assert_eq!(
            WorkloadKind::parse("workloads.x-k8s.io/v1alpha1", "RoleBasedGroup"),
            Ok(WorkloadKind::RoleBasedGroup)
        );
        assert!(matches!(
            WorkloadKind::parse("extensions/v1beta1", "Deployment"),
            Err(KindError::WrongApiVersion {
                expected: "apps/v1",
                ..
            })
        ));
    }

    #[test]
    fn built_in_non_workloads_are_rejected_and_custom_kinds_accepted() {
        assert_eq!(
            WorkloadKind::parse("v1", "Service"),
            Err(KindError::UnsupportedBuiltIn)
        );
        assert_eq!(
            WorkloadKind::parse("apps/v1", "DaemonSet"),
            Err(KindError::UnsupportedBuiltIn)
        );
        assert_eq!(
            WorkloadKind::parse("batch/v1", "Job"),
            Err(KindError::UnsupportedBuiltIn)
        );
        assert_eq!(
            WorkloadKind::parse("networking.k8s.io/v1", "Ingress"),
            Err(KindError::UnsupportedBuiltIn)
        );
        assert_eq!(
            WorkloadKind::parse("nonsense", "Foo"),
            Err(KindError::MalformedApiVersion)
        );
        assert_eq!(
            WorkloadKind::parse("apps/v1", ""),
            Err(KindError::EmptyKind)
        );
        assert_eq!(
            WorkloadKind::parse("example.com/v1", "Inference"),
            Ok(WorkloadKind::Custom(GroupVersionKind::gvk(
                "example.com",
                "v1",
                "Inference"
            )))
        );
    }

    #[test]
    fn role_based_group_has_no_single_replica_count() {
        assert!(!WorkloadKind::RoleBasedGroup.has_single_replica_count());
        assert!(WorkloadKind::Deployment.has_single_replica_count());
    }
}
