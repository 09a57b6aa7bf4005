//! Stand-ins for other projects' CRDs: enough schema for the API server to store their objects.

use std::time::Duration;

use super::{apply, env, kubectl, wait_for};

/// LeaderWorkerSet (`leaderworkerset.x-k8s.io/v1`), with its scale subresource.
pub const LEADER_WORKER_SET: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: leaderworkersets.leaderworkerset.x-k8s.io}
spec:
  group: leaderworkerset.x-k8s.io
  names: {kind: LeaderWorkerSet, plural: leaderworkersets, singular: leaderworkerset}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

/// RoleBasedGroup (`workloads.x-k8s.io/v1alpha1`).
pub const ROLE_BASED_GROUP: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: rolebasedgroups.workloads.x-k8s.io}
spec:
  group: workloads.x-k8s.io
  names: {kind: RoleBasedGroup, plural: rolebasedgroups, singular: rolebasedgroup}
  scope: Namespaced
  versions:
  - name: v1alpha1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"#;

/// Applies CRDs and waits until every resource in `plurals` is served.
pub fn install(yaml: &str, plurals: &[&str]) {
    apply(yaml);
    wait_for(
        &format!("the CRDs of {plurals:?}"),
        Duration::from_secs(30),
        || {
            plurals
                .iter()
                .all(|plural| kubectl(&env().kubeconfig, &["get", plural, "-A"]).success)
                .then_some(())
        },
    );
}
