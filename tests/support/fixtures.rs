//! YAML of the plain workloads the tests build on.

/// A Deployment `name` in `ns` whose pods carry `app: <name>`, with one container.
pub fn deployment(ns: &str, name: &str, replicas: i32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: {name}, image: registry.local/{name}:1}}]
"#
    )
}

/// A Service `name` in `ns` selecting `app: <name>` on port 80.
pub fn service(ns: &str, name: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {{app: {name}}}
  ports: [{{port: 80}}]
"#
    )
}

/// A GroupReplication RSG `name` in `ns` over one target `target` (apiVersion, kind and
/// workload name), with `group_config` as the flow mapping of its `groupConfig`.
pub fn group_rsg(
    ns: &str,
    name: &str,
    target: &str,
    (api_version, kind, workload): (&str, &str, &str),
    group_config: &str,
) -> String {
    format!(
        r#"apiVersion: autoscaling.openfuyao.com/v1alpha1
kind: ResourceScalingGroup
metadata: {{name: {name}, namespace: {ns}}}
spec:
  targetResources:
  - name: {target}
    resourceRef: {{apiVersion: {api_version}, kind: {kind}, name: {workload}}}
  scalingStrategy:
    type: GroupReplication
    groupConfig: {group_config}
"#
    )
}

/// A ResourceScalingGroupGrant in `ns` letting the RSGs of `from` act on every Deployment
/// and StatefulSet there.
pub fn grant(ns: &str, from: &str) -> String {
    format!(
        r#"apiVersion: autoscaling.openfuyao.com/v1alpha1
kind: ResourceScalingGroupGrant
metadata: {{name: from-{from}, namespace: {ns}}}
spec:
  from: [{{namespace: {from}}}]
  to:
  - {{group: apps, kind: Deployment}}
  - {{group: apps, kind: StatefulSet}}
"#
    )
}
