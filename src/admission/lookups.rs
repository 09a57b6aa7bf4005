//! Checks that need the live cluster: whether targets exist, whether their pod templates'
//! ConfigMaps/Secrets/PVCs/ServiceAccount exist where copies will run, and whether copied
//! Service names fit. Problems reaching the API only ever produce warnings.

use std::collections::BTreeMap;

use futures::future::join_all;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use kube::api::ListParams;
use kube::core::{ApiResource, DynamicObject};
use kube::{Api, Client};

use crate::api::{
    ResourceScalingGroupSpec, TargetResource, MAX_GROUP_REPLICAS, STRATEGY_GROUP_REPLICATION,
};
use crate::naming::copy_service_name;
use crate::validation::{effective_group_name, FieldError, DNS1123_LABEL_MAX};
use crate::workload::{
    pod_template_labels, referenced_objects, selector_matches_template, ReferencedObject,
    WorkloadKind,
};

/// Errors and warnings found in the live cluster.
#[derive(Default)]
pub struct LiveFindings {
    /// Problems that make the spec unusable.
    pub errors: Vec<FieldError>,
    /// Legal but likely unintended.
    pub warnings: Vec<String>,
}

fn is_forbidden(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 403)
}

async fn api_resource_for(
    client: &Client,
    kind: &WorkloadKind,
) -> Result<ApiResource, kube::Error> {
    match kind.known_api_resource() {
        Some(ar) => Ok(ar),
        None => kube::discovery::pinned_kind(client, &kind.gvk())
            .await
            .map(|(ar, _)| ar),
    }
}

/// Runs every live check for one RSG.
pub async fn live_checks(
    client: &Client,
    rsg_namespace: &str,
    rsg_name: &str,
    spec: &ResourceScalingGroupSpec,
) -> LiveFindings {
    let replicating = spec.scaling_strategy.type_ == STRATEGY_GROUP_REPLICATION;
    let group_name = spec
        .scaling_strategy
        .group_config
        .as_ref()
        .map(|c| effective_group_name(rsg_name, c).to_string());
    let checks = spec.target_resources.iter().enumerate().map(|(i, target)| {
        let group_name = group_name.as_deref().filter(|_| replicating);
        check_target(client, rsg_namespace, i, target, group_name)
    });
    let mut findings = LiveFindings::default();
    for result in join_all(checks).await {
        findings.errors.extend(result.errors);
        findings.warnings.extend(result.warnings);
    }
    findings
}

async fn check_target(
    client: &Client,
    rsg_namespace: &str,
    index: usize,
    target: &TargetResource,
    replicating_as: Option<&str>,
) -> LiveFindings {
    let mut findings = LiveFindings::default();
    let reference = &target.resource_ref;
    let Ok(kind) = WorkloadKind::parse(&reference.api_version, &reference.kind) else {
        return findings;
    };
    let namespace = reference.namespace_or(rsg_namespace);
    let prefix = format!("spec.targetResources[{index}]");
    let ar = match api_resource_for(client, &kind).await {
        Ok(ar) => ar,
        Err(err) => {
            findings.warnings.push(format!(
                "{prefix}: kind {} {} is not served by the API server (is its CRD installed?): {err}",
                reference.api_version, reference.kind
            ));
            return findings;
        }
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
    let workload = match api.get_opt(&reference.name).await {
        Ok(Some(workload)) => workload,
        Ok(None) => {
            findings.warnings.push(format!(
                "{prefix}: {} {namespace}/{} does not exist yet",
                reference.kind, reference.name
            ));
            return findings;
        }
        Err(err) if is_forbidden(&err) => return findings,
        Err(err) => {
            findings.warnings.push(format!(
                "{prefix}: could not read {} {namespace}/{}: {err}",
                reference.kind, reference.name
            ));
            return findings;
        }
    };
    let Some(group_name) = replicating_as else {
        return findings;
    };
    let workload = serde_json::to_value(&workload).unwrap_or_default();
    for referenced in referenced_objects(&workload) {
        match object_exists(client, rsg_namespace, &referenced).await {
            Ok(false) => findings.warnings.push(format!(
                "{prefix}: the pod template of {} {namespace}/{} uses {}, which does not exist in namespace {rsg_namespace:?} where copies run",
                reference.kind, reference.name, referenced.describe()
            )),
            Ok(true) => {}
            Err(err) if is_forbidden(&err) => {}
            Err(err) => findings.warnings.push(format!("{prefix}: could not check {}: {err}", referenced.describe())),
        }
    }
    match associated_services(client, namespace, &pod_template_labels(&workload)).await {
        Ok(services) => {
            for service in services {
                let longest = copy_service_name(&service, group_name, MAX_GROUP_REPLICAS);
                if longest.len() > DNS1123_LABEL_MAX {
                    findings.errors.push(FieldError::invalid(
                        "spec.scalingStrategy.groupConfig.groupName",
                        group_name,
                        format!(
                            "copies of Service {namespace}/{service} (fronting target {:?}) would be named up to {longest:?} ({} characters), longer than the {DNS1123_LABEL_MAX} allowed for a Service name",
                            target.name,
                            longest.len()
                        ),
                    ));
                }
            }
        }
        Err(err) if is_forbidden(&err) => {}
        Err(err) => findings.warnings.push(format!(
            "{prefix}: could not list Services in {namespace:?}: {err}"
        )),
    }
    findings
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

async fn associated_services(
    client: &Client,
    namespace: &str,
    template_labels: &BTreeMap<String, String>,
) -> Result<Vec<String>, kube::Error> {
    let services = Api::<Service>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await?;
    Ok(services
        .items
        .into_iter()
        .filter(|svc| {
            svc.spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .is_some_and(|selector| selector_matches_template(selector, template_labels))
        })
        .filter_map(|svc| svc.metadata.name)
        .collect())
}
