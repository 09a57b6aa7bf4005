//! Stand-ins for other projects' CRDs that cannot be built here (RoleBasedGroup: its Go module
//! is not served by the module proxy these machines use), and open schemas for kinds a test
//! only needs stored.

use std::time::Duration;

use super::{apply, env, kubectl, wait_for};

/// RoleBasedGroup (`workloads.x-k8s.io/v1alpha1`) with the schema of the RoleBasedGroup
/// project's API types for every field rsg reads or writes: `spec.roles[]` (`name` and
/// `replicas` required, `replicas` ≥ 0 defaulting to 1, `workload`, `template`, `templateRef`,
/// `labels`, `annotations`, `leaderWorkerSet`), `spec.roleTemplates[]`, and
/// `status.roleStatuses[]` behind the status subresource. The schema is structural without
/// preserving unknown fields, so the API server prunes whatever rsg might write outside it and
/// the tests see that. A pod spec's own fields are not spelled out (`spec` of a template keeps
/// unknown fields), and the CEL rules (template xor templateRef) need Kubernetes 1.25.
pub const ROLE_BASED_GROUP: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: rolebasedgroups.workloads.x-k8s.io}
spec:
  group: workloads.x-k8s.io
  names: {kind: RoleBasedGroup, listKind: RoleBasedGroupList, plural: rolebasedgroups, singular: rolebasedgroup, shortNames: [rbg]}
  scope: Namespaced
  versions:
  - name: v1alpha1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          apiVersion: {type: string}
          kind: {type: string}
          metadata: {type: object}
          spec:
            type: object
            required: [roles]
            properties:
              roles:
                type: array
                minItems: 1
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items:
                  type: object
                  required: [name, replicas]
                  properties:
                    name: {type: string, minLength: 1}
                    replicas: {type: integer, format: int32, minimum: 0, default: 1}
                    labels: {type: object, additionalProperties: {type: string}}
                    annotations: {type: object, additionalProperties: {type: string}}
                    dependencies: {type: array, items: {type: string}}
                    restartPolicy: {type: string}
                    workload:
                      type: object
                      default: {apiVersion: apps/v1, kind: StatefulSet}
                      properties:
                        apiVersion: {type: string, default: apps/v1}
                        kind: {type: string, default: StatefulSet}
                    template: &podTemplate
                      type: object
                      properties:
                        metadata:
                          type: object
                          properties:
                            labels: {type: object, additionalProperties: {type: string}}
                            annotations: {type: object, additionalProperties: {type: string}}
                        spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
                    templateRef:
                      type: object
                      required: [name]
                      properties:
                        name: {type: string, minLength: 1, maxLength: 63}
                    leaderWorkerSet:
                      type: object
                      properties:
                        size: {type: integer, format: int32, default: 1}
                        patchLeaderTemplate: {type: object, x-kubernetes-preserve-unknown-fields: true}
                        patchWorkerTemplate: {type: object, x-kubernetes-preserve-unknown-fields: true}
              roleTemplates:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items:
                  type: object
                  required: [name, template]
                  properties:
                    name: {type: string, minLength: 1, maxLength: 63}
                    template: *podTemplate
          status:
            type: object
            properties:
              observedGeneration: {type: integer, format: int64}
              conditions: {type: array, items: {type: object, x-kubernetes-preserve-unknown-fields: true}}
              roleStatuses:
                type: array
                items:
                  type: object
                  required: [name, readyReplicas, replicas]
                  properties:
                    name: {type: string}
                    readyReplicas: {type: integer, format: int32}
                    replicas: {type: integer, format: int32}
                    updatedReplicas: {type: integer, format: int32}
"#;

/// A namespaced CRD `<plural>.<group>` (version v1) whose objects may hold anything: enough
/// for the API server to store another project's objects.
pub fn open_schema(group: &str, kind: &str, plural: &str) -> String {
    let singular = kind.to_lowercase();
    format!(
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: {plural}.{group}}}
spec:
  group: {group}
  names: {{kind: {kind}, plural: {plural}, singular: {singular}}}
  scope: Namespaced
  versions:
  - {{name: v1, served: true, storage: true, schema: {{openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}}}}}
"#
    )
}

/// Applies CRDs and waits until every resource in `plurals` is served.
pub fn install(yaml: &str, plurals: &[&str]) {
    apply(yaml);
    wait_served(plurals);
}

/// Applies the CRDs of a release's file server-side (a release CRD may be too large for
/// client-side apply's last-applied annotation) and waits until every resource in `plurals`
/// is served.
pub fn install_file(path: &std::path::Path, plurals: &[&str]) {
    let out = kubectl(
        &env().kubeconfig,
        &["apply", "--server-side", "-f", &path.display().to_string()],
    );
    assert!(
        out.success,
        "installing the CRDs of {}: {}",
        path.display(),
        out.stderr
    );
    wait_served(plurals);
}

/// Waits until every resource in `plurals` is served: asked for, not read from the CRD's
/// conditions, which may not be written yet right after the create.
fn wait_served(plurals: &[&str]) {
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
