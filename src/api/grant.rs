//! ResourceScalingGroupGrant: a namespace's consent that RSGs in other namespaces may scale
//! its workloads (in the style of Gateway API's ReferenceGrant).
//!
//! Only the owners of a namespace should be able to create grants in it: whoever may create a
//! grant in namespace `B` lets the RSGs of the namespaces it names read, clone, label and
//! scale the workloads of `B` it lists.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which RSG namespaces may target which workloads of this grant's namespace.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[kube(
    group = "autoscaling.openfuyao.com",
    version = "v1alpha1",
    kind = "ResourceScalingGroupGrant",
    plural = "resourcescalinggroupgrants",
    shortname = "rsggrant",
    namespaced,
    derive = "PartialEq",
    doc = "ResourceScalingGroupGrant lets ResourceScalingGroups in the namespaces it names act on workloads of its own namespace. Without one, rsg acts only on workloads in the RSG's own namespace.",
    printcolumn = r#"{"name":"From","type":"string","description":"Namespaces whose RSGs may act here","jsonPath":".spec.from[*].namespace"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ResourceScalingGroupGrantSpec {
    /// The namespaces whose ResourceScalingGroups this grant admits (1 to 16).
    #[schemars(length(min = 1, max = 16))]
    pub from: Vec<GrantFrom>,
    /// The workloads of this namespace they may act on (1 to 32).
    #[schemars(length(min = 1, max = 32))]
    pub to: Vec<GrantTo>,
}

/// A namespace whose RSGs are admitted: all of them, or only those `names` lists.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrantFrom {
    /// Namespace of the ResourceScalingGroups.
    #[schemars(length(max = 63))]
    pub namespace: String,
    /// Names of the ResourceScalingGroups of that namespace this grant admits (1 to 32).
    /// Absent: every RSG of the namespace, so every user who may create or edit an RSG there
    /// may act on the workloads this grant lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32), inner(length(min = 1, max = 253)))]
    pub names: Option<Vec<String>>,
}

impl GrantFrom {
    /// Whether this entry admits the RSG `namespace/name`.
    pub fn admits(&self, namespace: &str, name: &str) -> bool {
        self.namespace == namespace
            && self
                .names
                .as_ref()
                .is_none_or(|names| names.iter().any(|n| n == name))
    }
}

/// Workloads that may be acted on.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrantTo {
    /// API group of the workload kind: `apps` for Deployment and StatefulSet,
    /// `leaderworkerset.x-k8s.io`, `workloads.x-k8s.io`, ...
    #[schemars(length(max = 253))]
    pub group: String,
    /// Kind of the workload, e.g. `Deployment`.
    #[schemars(length(max = 63))]
    pub kind: String,
    /// Name of one workload; absent means every workload of that kind in this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub name: Option<String>,
}

impl ResourceScalingGroupGrantSpec {
    /// Whether this grant admits the RSG `rsg_namespace/rsg_name` to the workload
    /// `group/kind name`.
    pub fn admits(
        &self,
        (rsg_namespace, rsg_name): (&str, &str),
        group: &str,
        kind: &str,
        name: &str,
    ) -> bool {
        self.from.iter().any(|f| f.admits(rsg_namespace, rsg_name))
            && self.to.iter().any(|t| {
                t.group == group && t.kind == kind && t.name.as_deref().is_none_or(|n| n == name)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(to_name: Option<&str>) -> ResourceScalingGroupGrantSpec {
        ResourceScalingGroupGrantSpec {
            from: vec![GrantFrom {
                namespace: "scaling-system".into(),
                names: None,
            }],
            to: vec![GrantTo {
                group: "apps".into(),
                kind: "Deployment".into(),
                name: to_name.map(Into::into),
            }],
        }
    }

    #[test]
    fn admits_only_the_named_namespace_kind_and_name() {
        let rsg = ("scaling-system", "llm");
        let all = grant(None);
        assert!(all.admits(rsg, "apps", "Deployment", "decode"));
        assert!(!all.admits(("tenant-a", "llm"), "apps", "Deployment", "decode"));
        assert!(!all.admits(rsg, "apps", "StatefulSet", "decode"));
        assert!(!all.admits(rsg, "", "Deployment", "decode"));
        let one = grant(Some("prefill"));
        assert!(one.admits(rsg, "apps", "Deployment", "prefill"));
        assert!(!one.admits(rsg, "apps", "Deployment", "decode"));
    }

    #[test]
    fn a_grant_naming_rsgs_admits_only_those_of_its_namespace() {
        let mut named = grant(None);
        named.from[0].names = Some(vec!["llm".into(), "chat".into()]);
        assert!(named.admits(("scaling-system", "llm"), "apps", "Deployment", "decode"));
        assert!(named.admits(("scaling-system", "chat"), "apps", "Deployment", "decode"));
        assert!(!named.admits(("scaling-system", "other"), "apps", "Deployment", "decode"));
        assert!(!named.admits(("tenant-a", "llm"), "apps", "Deployment", "decode"));
    }
}
