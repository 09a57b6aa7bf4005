//! YAML of the plain workloads the tests build on, from the builders the unit tests and
//! benchmarks share (`rsg::fixtures`).

use serde_json::Value;

fn yaml(object: &Value) -> String {
    serde_norway::to_string(object).unwrap_or_else(|err| panic!("a fixture as YAML: {err}"))
}

/// A Deployment `name` in `ns` whose pods carry `app: <name>`, with one container.
pub fn deployment(ns: &str, name: &str, replicas: i32) -> String {
    yaml(&rsg::fixtures::deployment(ns, name, replicas))
}

/// A Service `name` in `ns` selecting `app: <name>` on port 80.
pub fn service(ns: &str, name: &str) -> String {
    yaml(&rsg::fixtures::service(ns, name))
}

/// A GroupReplication RSG `name` in `ns` over one target `target` (apiVersion, kind and
/// workload name), with `group_config` as the flow mapping of its `groupConfig`.
pub fn group_rsg(
    ns: &str,
    name: &str,
    target: &str,
    workload: (&str, &str, &str),
    group_config: &str,
) -> String {
    let config: Value = serde_norway::from_str(group_config)
        .unwrap_or_else(|err| panic!("groupConfig {group_config:?}: {err}"));
    yaml(&rsg::fixtures::group_rsg_value(
        ns, name, target, workload, config,
    ))
}

/// A ResourceScalingGroupGrant in `ns` letting the RSGs of `from` act on every Deployment
/// and StatefulSet there.
pub fn grant(ns: &str, from: &str) -> String {
    yaml(&rsg::fixtures::grant(ns, from))
}

/// A GroupReplication RSG `llm` in `ns` over the Deployments `prefill` and `decode`, group
/// name `g`, with `replicas` groups and `extra` (YAML lines under `groupConfig:`, indented 6
/// spaces, each ending in a newline).
pub fn prefill_decode_rsg(ns: &str, replicas: i32, extra: &str) -> String {
    format!(
        r#"apiVersion: autoscaling.openfuyao.com/v1alpha1
kind: ResourceScalingGroup
metadata: {{name: llm, namespace: {ns}}}
spec:
  targetResources:
  - {{name: prefill, resourceRef: {{apiVersion: apps/v1, kind: Deployment, name: prefill}}}}
  - {{name: decode, resourceRef: {{apiVersion: apps/v1, kind: Deployment, name: decode}}}}
  scalingStrategy:
    type: GroupReplication
    groupConfig:
      groupName: g
      replicas: {replicas}
{extra}"#
    )
}
