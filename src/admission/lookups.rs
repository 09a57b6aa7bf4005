//! Checks that need the live cluster: whether targets exist, whether their pod templates'
//! ConfigMaps/Secrets/PVCs/ServiceAccount exist where copies will run, and whether copied
//! Service names fit (the Services from the informer cache where it holds them: a burst of
//! 10,000 RSGs in one namespace of 10,000 Services does not list them every few seconds).
//! Problems reaching the API only ever produce warnings.

use std::collections::BTreeMap;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use kube::api::ListParams;
use kube::core::{ApiResource, DynamicObject};
use kube::{Api, Client};

use crate::api::{
    ResourceScalingGroupSpec, TargetResource, MAX_GROUP_REPLICAS, STRATEGY_GROUP_REPLICATION,
};
use crate::api_errors;
use crate::cache::Stores;
use crate::naming::copy_service_name;
use crate::validation::{effective_group_name, FieldError, DNS1123_LABEL_MAX};
use crate::workload::{
    all_pod_template_labels, referenced_objects, selector_matches_template, ReferencedObject,
    WorkloadKind,
};

use super::lookup_cache::{LookupCache, LookupKey, LookupValue, ServiceSummary};

/// Errors and warnings found in the live cluster.
#[derive(Default)]
pub struct LiveFindings {
    /// Problems that make the spec unusable.
    pub errors: Vec<FieldError>,
    /// Legal but likely unintended.
    pub warnings: Vec<String>,
    /// Requests made to the API server (reads the lookup cache did not answer).
    pub api_calls: usize,
}

/// How many targets are checked at once.
const TARGET_CONCURRENCY: usize = 4;

/// Runs every live check for one RSG: each distinct target read once at most (from `cache`
/// when it was read lately), a few targets at a time; the Services fronting a target found
/// in `stores` (the informer cache) when it holds their namespace, else listed.
pub async fn live_checks(
    (client, cache, stores): (&Client, &LookupCache, &Stores),
    rsg_namespace: &str,
    rsg_name: &str,
    spec: &ResourceScalingGroupSpec,
    allow_external_services: bool,
) -> LiveFindings {
    let replicating = spec.scaling_strategy.type_ == STRATEGY_GROUP_REPLICATION;
    let group_name = spec
        .scaling_strategy
        .group_config
        .as_ref()
        .map(|c| effective_group_name(rsg_name, c).to_string());
    let group_name = group_name.as_deref().filter(|_| replicating);
    // Collected first (not yet started), so the stream below holds no closure.
    let mut checks = Vec::with_capacity(spec.target_resources.len());
    for (i, target) in spec.target_resources.iter().enumerate() {
        checks.push(check_target(
            (client, cache, stores),
            rsg_namespace,
            i,
            target,
            group_name,
            allow_external_services,
        ));
    }
    let results: Vec<LiveFindings> = futures::stream::iter(checks)
        .buffered(TARGET_CONCURRENCY)
        .collect()
        .await;
    let mut findings = LiveFindings::default();
    for result in results {
        findings.errors.extend(result.errors);
        findings.warnings.extend(result.warnings);
        findings.api_calls += result.api_calls;
    }
    findings
}

impl LiveFindings {
    /// Reads `key` through `cache`, counting a call when the API server was asked.
    async fn read<F>(
        &mut self,
        cache: &LookupCache,
        key: LookupKey,
        read: F,
    ) -> Result<LookupValue, kube::Error>
    where
        F: std::future::Future<Output = Result<LookupValue, kube::Error>>,
    {
        let (result, asked) = cache.get_or_read(key, read).await;
        self.api_calls += usize::from(asked);
        result
    }
}

/// The API resource of `kind`: built in, or found by discovery (through the cache).
pub(super) async fn api_resource(
    client: &Client,
    cache: &LookupCache,
    findings: &mut LiveFindings,
    kind: &WorkloadKind,
) -> Result<Option<ApiResource>, kube::Error> {
    if let Some(ar) = kind.known_api_resource() {
        return Ok(Some(ar));
    }
    let gvk = kind.gvk();
    let key = LookupKey::Discovery(format!("{}/{}", gvk.api_version(), gvk.kind));
    let value = findings
        .read(cache, key, async {
            kube::discovery::pinned_kind(client, &gvk)
                .await
                .map(|(ar, _)| LookupValue::Discovery(ar))
        })
        .await?;
    Ok(match value {
        LookupValue::Discovery(ar) => Some(ar),
        _ => None,
    })
}

/// One target being checked against the cluster.
struct TargetCheck<'a> {
    client: &'a Client,
    cache: &'a LookupCache,
    /// The informer cache: the Services fronting a target, when it holds the namespace's.
    stores: &'a Stores,
    /// The RSG's namespace, where copies run.
    rsg_namespace: &'a str,
    /// The target's namespace.
    namespace: &'a str,
    /// `spec.targetResources[i]`.
    prefix: String,
    target: &'a TargetResource,
}

async fn check_target(
    (client, cache, stores): (&Client, &LookupCache, &Stores),
    rsg_namespace: &str,
    index: usize,
    target: &TargetResource,
    replicating_as: Option<&str>,
    allow_external_services: bool,
) -> LiveFindings {
    let mut findings = LiveFindings::default();
    let reference = &target.resource_ref;
    let Ok(kind) = WorkloadKind::parse(&reference.api_version, &reference.kind) else {
        return findings;
    };
    let check = TargetCheck {
        client,
        cache,
        stores,
        rsg_namespace,
        namespace: reference.namespace_or(rsg_namespace),
        prefix: format!("spec.targetResources[{index}]"),
        target,
    };
    let Some(workload) = check.read_workload(&mut findings, &kind).await else {
        return findings;
    };
    let Some(group_name) = replicating_as else {
        return findings;
    };
    check.referenced_objects(&mut findings, &workload).await;
    check
        .fronting_services(
            &mut findings,
            &workload,
            group_name,
            allow_external_services,
        )
        .await;
    findings
}

impl TargetCheck<'_> {
    /// The target workload; `None` (with a warning unless reading it is forbidden) when it
    /// cannot be read or does not exist yet.
    async fn read_workload(
        &self,
        findings: &mut LiveFindings,
        kind: &WorkloadKind,
    ) -> Option<serde_json::Value> {
        let (prefix, namespace) = (&self.prefix, self.namespace);
        let reference = &self.target.resource_ref;
        let ar = match api_resource(self.client, self.cache, findings, kind).await {
            Ok(found) => found?,
            Err(err) => {
                findings.warnings.push(format!(
                    "{prefix}: kind {} {} is not served by the API server (is its CRD installed?): {err}",
                    reference.api_version, reference.kind
                ));
                return None;
            }
        };
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), namespace, &ar);
        let key = LookupKey::Workload(
            ar.plural.clone(),
            namespace.to_string(),
            reference.name.clone(),
        );
        let read = findings
            .read(self.cache, key, async {
                let found = api.get_opt(&reference.name).await?;
                Ok(LookupValue::Workload(
                    found.and_then(|o| serde_json::to_value(o).ok()),
                ))
            })
            .await;
        match read {
            Ok(LookupValue::Workload(Some(workload))) => Some(workload),
            Ok(_) => {
                findings.warnings.push(format!(
                    "{prefix}: {} {namespace}/{} does not exist yet",
                    reference.kind, reference.name
                ));
                None
            }
            Err(err) if api_errors::is_forbidden(&err) => None,
            Err(err) => {
                findings.warnings.push(format!(
                    "{prefix}: could not read {} {namespace}/{}: {err}",
                    reference.kind, reference.name
                ));
                None
            }
        }
    }

    /// Warns of each Secret, ConfigMap or other object the pod template uses that does not
    /// exist in the RSG's namespace, where copies run.
    async fn referenced_objects(&self, findings: &mut LiveFindings, workload: &serde_json::Value) {
        let (prefix, namespace, rsg_namespace) = (&self.prefix, self.namespace, self.rsg_namespace);
        let reference = &self.target.resource_ref;
        for referenced in referenced_objects(workload) {
            let (kind, name) = referenced.kind_and_name();
            let key = LookupKey::Exists(kind, rsg_namespace.to_string(), name.to_string());
            let exists = findings
                .read(self.cache, key, async {
                    object_exists(self.client, rsg_namespace, &referenced)
                        .await
                        .map(LookupValue::Exists)
                })
                .await;
            match exists {
                Ok(LookupValue::Exists(false)) => findings.warnings.push(format!(
                    "{prefix}: the pod template of {} {namespace}/{} uses {}, which does not exist in namespace {rsg_namespace:?} where copies run",
                    reference.kind, reference.name, referenced.describe()
                )),
                Ok(_) => {}
                Err(err) if api_errors::is_forbidden(&err) => {}
                Err(err) => findings.warnings.push(format!("{prefix}: could not check {}: {err}", referenced.describe())),
            }
        }
    }

    /// Refuses copies of the Services fronting the target that would need the operator's
    /// opt-in (LoadBalancer, NodePort) or whose copies' names would be too long.
    async fn fronting_services(
        &self,
        findings: &mut LiveFindings,
        workload: &serde_json::Value,
        group_name: &str,
        allow_external_services: bool,
    ) {
        let (prefix, namespace) = (&self.prefix, self.namespace);
        let templates = all_pod_template_labels(workload);
        let fronting = match self.stores.services_fronting(namespace, &templates) {
            Some(cached) => cached,
            None => match self.listed_services_fronting(findings, &templates).await {
                Some(listed) => listed,
                None => return,
            },
        };
        let target = &self.target.name;
        for (service, type_) in &fronting {
            if is_external(type_) && !allow_external_services {
                findings.errors.push(FieldError::forbidden(
                    format!("{prefix}.resourceRef"),
                    format!(
                        "Service {namespace}/{service} fronts target {target:?} and is of type {type_}; copies of LoadBalancer and NodePort Services need the operator's opt-in (rsg run --allow-external-service-copies, chart value services.allowExternalCopies)"
                    ),
                ));
            }
            let longest = copy_service_name(service, group_name, MAX_GROUP_REPLICAS);
            if longest.len() > DNS1123_LABEL_MAX {
                findings.errors.push(FieldError::invalid(
                    "spec.scalingStrategy.groupConfig.groupName",
                    group_name,
                    format!(
                        "copies of Service {namespace}/{service} (fronting target {target:?}) would be named up to {longest:?} ({} characters), longer than the {DNS1123_LABEL_MAX} allowed for a Service name",
                        longest.len()
                    ),
                ));
            }
        }
    }

    /// The name and type of each Service of the target's namespace whose selector picks pods
    /// with one of `templates`' labels, from one LIST kept by the lookup cache: for a
    /// namespace the informer cache does not hold. `None` (with a warning unless forbidden)
    /// when they cannot be listed.
    async fn listed_services_fronting(
        &self,
        findings: &mut LiveFindings,
        templates: &[BTreeMap<String, String>],
    ) -> Option<Vec<(String, String)>> {
        let (prefix, namespace) = (&self.prefix, self.namespace);
        let key = LookupKey::Services(namespace.to_string());
        let services = findings
            .read(self.cache, key, async {
                service_selectors(self.client, namespace)
                    .await
                    .map(LookupValue::Services)
            })
            .await;
        let services = match services {
            Ok(LookupValue::Services(services)) => services,
            Ok(_) => return None,
            Err(err) if api_errors::is_forbidden(&err) => return None,
            Err(err) => {
                findings.warnings.push(format!(
                    "{prefix}: could not list Services in {namespace:?}: {err}"
                ));
                return None;
            }
        };
        let fronting = services.into_iter().filter(|service| {
            templates
                .iter()
                .any(|labels| selector_matches_template(&service.selector, labels))
        });
        Some(fronting.map(|s| (s.name, s.type_)).collect())
    }
}

async fn object_exists(
    client: &Client,
    namespace: &str,
    object: &ReferencedObject,
) -> Result<bool, kube::Error> {
    let found = match object {
        ReferencedObject::ConfigMap(name) => {
            Api::<ConfigMap>::namespaced(client.clone(), namespace)
                .get_metadata_opt(name)
                .await?
                .is_some()
        }
        ReferencedObject::Secret(name) => Api::<Secret>::namespaced(client.clone(), namespace)
            .get_metadata_opt(name)
            .await?
            .is_some(),
        ReferencedObject::PersistentVolumeClaim(name) => {
            Api::<PersistentVolumeClaim>::namespaced(client.clone(), namespace)
                .get_metadata_opt(name)
                .await?
                .is_some()
        }
        ReferencedObject::ServiceAccount(name) => {
            Api::<ServiceAccount>::namespaced(client.clone(), namespace)
                .get_metadata_opt(name)
                .await?
                .is_some()
        }
    };
    Ok(found)
}

/// Whether copies of a Service of this type reach outside the cluster (and cost money).
pub fn is_external(service_type: &str) -> bool {
    matches!(service_type, "LoadBalancer" | "NodePort")
}

/// The name, selector and type of every Service in `namespace` (one LIST, kept by the cache).
async fn service_selectors(
    client: &Client,
    namespace: &str,
) -> Result<Vec<ServiceSummary>, kube::Error> {
    let services = Api::<Service>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await?;
    Ok(services
        .items
        .into_iter()
        .filter_map(|svc| {
            let spec = svc.spec.unwrap_or_default();
            Some(ServiceSummary {
                name: svc.metadata.name?,
                selector: spec.selector.unwrap_or_default(),
                type_: spec.type_.unwrap_or_else(|| "ClusterIP".to_string()),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::mock_api::{context, status, Call};
    use hyper::Method;
    use serde_json::json;
    use std::time::Duration;

    /// The Services of a namespace the informer cache does not hold are listed: one that
    /// fronts the target as a LoadBalancer is refused without the operator's opt-in.
    #[tokio::test]
    async fn services_of_a_namespace_the_cache_does_not_hold_are_listed() {
        let (ctx, recorded) = context(|call: &Call| match (&call.method, call.path.as_str()) {
            (&Method::GET, "/apis/apps/v1/namespaces/team/deployments/llm") => {
                (200, crate::fixtures::deployment("team", "llm", 1))
            }
            (&Method::GET, "/api/v1/namespaces/team/services") => {
                let mut gateway = crate::fixtures::service("team", "gateway");
                gateway["spec"]["selector"] = json!({"app": "llm"});
                gateway["spec"]["type"] = json!("LoadBalancer");
                let list = json!({"apiVersion": "v1", "kind": "ServiceList", "metadata": {}, "items": [gateway]});
                (200, list)
            }
            _ => status(404, "NotFound"),
        });
        let target = json!({"name": "engine", "resourceRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "llm"}});
        let strategy =
            json!({"type": "GroupReplication", "groupConfig": {"groupName": "g", "replicas": 2}});
        let spec = crate::fixtures::rsg("team", "pd", vec![target], strategy).spec;
        let cache = LookupCache::new(Duration::from_secs(5), 100);
        let findings = live_checks(
            (&ctx.client, &cache, &ctx.stores),
            "team",
            "pd",
            &spec,
            false,
        )
        .await;
        assert!(
            recorded
                .lines()
                .contains(&"GET /api/v1/namespaces/team/services".to_string()),
            "{:?}",
            recorded.lines()
        );
        assert!(
            findings.errors.iter().any(|e| e.to_string().contains(
                "Service team/gateway fronts target \"engine\" and is of type LoadBalancer"
            )),
            "{:?}",
            findings
                .errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        );
    }
}
