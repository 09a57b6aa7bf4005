//! A workload may belong to at most one RSG of each strategy type.

use super::field_error::FieldError;
use crate::api::ResourceScalingGroupSpec;
use crate::workload::{TargetClaim, WorkloadKey};

/// Errors for targets already claimed by another RSG of the same strategy type.
/// `claims_on` returns every claim recorded for a workload.
pub fn exclusive_target_errors(
    rsg_namespace: &str,
    rsg_name: &str,
    spec: &ResourceScalingGroupSpec,
    claims_on: impl Fn(&WorkloadKey) -> Vec<TargetClaim>,
) -> Vec<FieldError> {
    let strategy = &spec.scaling_strategy.type_;
    let mut errors = Vec::new();
    for (i, target) in spec.target_resources.iter().enumerate() {
        let key = WorkloadKey::from_ref(&target.resource_ref, rsg_namespace);
        let mut others: Vec<TargetClaim> = claims_on(&key)
            .into_iter()
            .filter(|c| {
                &c.strategy == strategy
                    && !(c.rsg_namespace == rsg_namespace && c.rsg_name == rsg_name)
            })
            .collect();
        others.sort();
        if let Some(other) = others.first() {
            errors.push(FieldError::forbidden(
                format!("spec.targetResources[{i}].resourceRef"),
                format!(
                    "{key} is already a target of ResourceScalingGroup {}/{} with the same strategy type {strategy:?}",
                    other.rsg_namespace, other.rsg_name
                ),
            ));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(strategy: &str) -> ResourceScalingGroupSpec {
        let target = crate::fixtures::deployment_target("a", "web", None);
        let strategy = serde_json::json!({"type": strategy});
        crate::fixtures::rsg("ns", "rsg", vec![target], strategy).spec
    }

    fn claim(ns: &str, name: &str, strategy: &str) -> TargetClaim {
        TargetClaim {
            rsg_namespace: ns.into(),
            rsg_name: name.into(),
            strategy: strategy.into(),
        }
    }

    #[test]
    fn same_strategy_elsewhere_is_forbidden() {
        let errors = exclusive_target_errors("ns", "mine", &spec("GroupReplication"), |key| {
            assert_eq!(key.to_string(), "Deployment ns/web");
            vec![claim("ns", "other", "GroupReplication")]
        });
        assert_eq!(
            errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec![
                r#"spec.targetResources[0].resourceRef: Forbidden: Deployment ns/web is already a target of ResourceScalingGroup ns/other with the same strategy type "GroupReplication""#
            ]
        );
    }

    #[test]
    fn other_strategy_and_self_are_allowed() {
        let errors = exclusive_target_errors("ns", "mine", &spec("GroupReplication"), |_| {
            vec![
                claim("ns", "other", "InplaceScaling"),
                claim("ns", "mine", "GroupReplication"),
            ]
        });
        assert!(errors.is_empty());
    }
}
