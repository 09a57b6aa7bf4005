//! Reading and writing workloads of any supported kind: Deployments and StatefulSets through
//! their typed APIs, everything else through the dynamic API (found by discovery, cached).

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::api::{DeleteParams, ListParams, Patch};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::error::DiscoveryError;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::WorkloadKind;
use crate::api_errors;

/// Why a workload operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The API server does not serve the kind (its CRD is not installed).
    #[error("{api_version} {kind} is not served by the API server (is its CRD installed?)")]
    NotServed { api_version: String, kind: String },
    /// The API call failed.
    #[error(transparent)]
    Api(#[from] kube::Error),
    /// The object could not be converted.
    #[error("converting {kind}: {source}")]
    Convert {
        kind: String,
        source: serde_json::Error,
    },
}

impl AccessError {
    /// HTTP status of an API error.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            Self::Api(err) => api_errors::status_code(err),
            _ => None,
        }
    }

    /// What the API server said (its Status message), else the whole error.
    pub fn api_message(&self) -> String {
        match self {
            Self::Api(kube::Error::Api(status)) => status.message.clone(),
            other => other.to_string(),
        }
    }

    /// RBAC refused the request.
    pub fn is_forbidden(&self) -> bool {
        self.status_code() == Some(api_errors::FORBIDDEN)
    }
}

/// Workload I/O with a discovery cache.
pub struct WorkloadAccess {
    client: Client,
    discovered: Mutex<HashMap<GroupVersionKind, ApiResource>>,
    /// Expectations: the resourceVersion each workload rsg patched has since, until a read
    /// sees it. A cached copy older than rsg's own write is never planned on.
    written: Mutex<HashMap<(String, String, String), String>>,
}

fn written_key(kind: &WorkloadKind, namespace: &str, name: &str) -> (String, String, String) {
    (
        kind.kind_name().to_string(),
        namespace.to_string(),
        name.to_string(),
    )
}

/// What a failed discovery of `gvk` means: the kind is not served (its group answers 404 or
/// does not list it), or discovery itself failed (API server unreachable, timeout, 5xx), which
/// is retried like any failed call rather than reported as a missing CRD.
fn discovery_failure(err: kube::Error, gvk: &GroupVersionKind) -> AccessError {
    let not_served = api_errors::is_not_found(&err)
        || matches!(
            err,
            kube::Error::Discovery(
                DiscoveryError::MissingKind(_)
                    | DiscoveryError::MissingApiGroup(_)
                    | DiscoveryError::MissingResource(_)
            )
        );
    if not_served {
        AccessError::NotServed {
            api_version: gvk.api_version(),
            kind: gvk.kind.clone(),
        }
    } else {
        AccessError::Api(err)
    }
}

enum Typed {
    Deployment,
    StatefulSet,
    Dynamic(ApiResource),
}

fn convert<T: DeserializeOwned>(kind: &str, value: Value) -> Result<T, AccessError> {
    serde_json::from_value(value).map_err(|source| AccessError::Convert {
        kind: kind.to_string(),
        source,
    })
}

fn to_value<T: Serialize>(kind: &str, object: &T) -> Result<Value, AccessError> {
    serde_json::to_value(object).map_err(|source| AccessError::Convert {
        kind: kind.to_string(),
        source,
    })
}

impl WorkloadAccess {
    /// Workload access through `client`.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            discovered: Mutex::new(HashMap::new()),
            written: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a cached copy of a workload at `cached_version` shows rsg's last write to it
    /// (or rsg wrote none): then it may be planned on. Once it does, the expectation is met
    /// and forgotten.
    pub fn cache_has_own_writes(
        &self,
        kind: &WorkloadKind,
        namespace: &str,
        name: &str,
        cached_version: Option<&str>,
    ) -> bool {
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        let key = written_key(kind, namespace, name);
        match written.get(&key) {
            None => true,
            Some(version) if Some(version.as_str()) == cached_version => {
                written.remove(&key);
                true
            }
            Some(_) => false,
        }
    }

    /// Forgets the expectation on a workload just read from the API server.
    fn read_fresh(&self, kind: &WorkloadKind, namespace: &str, name: &str) {
        self.written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&written_key(kind, namespace, name));
    }

    /// Records that rsg's write left a workload at `version`.
    fn wrote(&self, kind: &WorkloadKind, namespace: &str, name: &str, version: Option<String>) {
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        let key = written_key(kind, namespace, name);
        match version {
            Some(version) => written.insert(key, version),
            None => written.remove(&key),
        };
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The API resource of `kind`, from the built-in table or discovery.
    pub async fn api_resource(&self, kind: &WorkloadKind) -> Result<ApiResource, AccessError> {
        if let Some(ar) = kind.known_api_resource() {
            return Ok(ar);
        }
        let gvk = kind.gvk();
        if let Some(ar) = self
            .discovered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&gvk)
        {
            return Ok(ar.clone());
        }
        let (ar, _) = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .map_err(|err| discovery_failure(err, &gvk))?;
        self.discovered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(gvk, ar.clone());
        Ok(ar)
    }

    async fn typed(&self, kind: &WorkloadKind) -> Result<Typed, AccessError> {
        Ok(match kind {
            WorkloadKind::Deployment => Typed::Deployment,
            WorkloadKind::StatefulSet => Typed::StatefulSet,
            other => Typed::Dynamic(self.api_resource(other).await?),
        })
    }

    async fn not_served_check(&self, kind: &WorkloadKind, err: kube::Error) -> AccessError {
        // A 404 on a dynamic kind may mean the CRD went away: forget the discovery result.
        if api_errors::is_not_found(&err)
            && matches!(
                kind,
                WorkloadKind::Custom(_)
                    | WorkloadKind::LeaderWorkerSet
                    | WorkloadKind::RoleBasedGroup
            )
        {
            self.discovered
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&kind.gvk());
            let gvk = kind.gvk();
            if let Err(failure) = kube::discovery::pinned_kind(&self.client, &gvk).await {
                return discovery_failure(failure, &gvk);
            }
        }
        AccessError::Api(err)
    }

    /// The workload as JSON, or `None` when it does not exist.
    pub async fn get(
        &self,
        kind: &WorkloadKind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Value>, AccessError> {
        let result = match self.typed(kind).await? {
            Typed::Deployment => get_typed::<Deployment>(&self.client, namespace, name).await,
            Typed::StatefulSet => get_typed::<StatefulSet>(&self.client, namespace, name).await,
            Typed::Dynamic(ar) => {
                match Api::<DynamicObject>::namespaced_with(self.client.clone(), namespace, &ar)
                    .get_opt(name)
                    .await
                {
                    Ok(object) => object.map(|o| to_value(kind.kind_name(), &o)).transpose(),
                    Err(err) => Err(AccessError::Api(err)),
                }
            }
        };
        match result {
            Ok(value) => {
                self.read_fresh(kind, namespace, name);
                Ok(value.map(|v| with_type_meta(v, kind)))
            }
            Err(AccessError::Api(err)) => Err(self.not_served_check(kind, err).await),
            Err(other) => Err(other),
        }
    }

    /// Workloads of `kind` in `namespace` matching `selector`.
    pub async fn list(
        &self,
        kind: &WorkloadKind,
        namespace: &str,
        selector: &str,
    ) -> Result<Vec<Value>, AccessError> {
        let params = ListParams::default().labels(selector);
        let result = match self.typed(kind).await? {
            Typed::Deployment => list_typed::<Deployment>(&self.client, namespace, &params).await,
            Typed::StatefulSet => list_typed::<StatefulSet>(&self.client, namespace, &params).await,
            Typed::Dynamic(ar) => {
                match Api::<DynamicObject>::namespaced_with(self.client.clone(), namespace, &ar)
                    .list(&params)
                    .await
                {
                    Ok(list) => list
                        .items
                        .iter()
                        .map(|o| to_value(kind.kind_name(), o))
                        .collect(),
                    Err(err) => Err(AccessError::Api(err)),
                }
            }
        };
        match result {
            Ok(items) => Ok(items.into_iter().map(|v| with_type_meta(v, kind)).collect()),
            Err(AccessError::Api(err)) => Err(self.not_served_check(kind, err).await),
            Err(other) => Err(other),
        }
    }

    /// Creates the workload described by `object` in `namespace`.
    pub async fn create(
        &self,
        kind: &WorkloadKind,
        namespace: &str,
        object: Value,
    ) -> Result<(), AccessError> {
        let params = crate::create_params();
        let kind_name = kind.kind_name();
        let result = match self.typed(kind).await? {
            Typed::Deployment => {
                let typed: Deployment = convert(kind_name, object)?;
                Api::<Deployment>::namespaced(self.client.clone(), namespace)
                    .create(&params, &typed)
                    .await
                    .map(|_| ())
            }
            Typed::StatefulSet => {
                let typed: StatefulSet = convert(kind_name, object)?;
                Api::<StatefulSet>::namespaced(self.client.clone(), namespace)
                    .create(&params, &typed)
                    .await
                    .map(|_| ())
            }
            Typed::Dynamic(ar) => {
                let dynamic: DynamicObject = convert(kind_name, object)?;
                Api::<DynamicObject>::namespaced_with(self.client.clone(), namespace, &ar)
                    .create(&params, &dynamic)
                    .await
                    .map(|_| ())
            }
        };
        match result {
            Ok(()) => Ok(()),
            Err(err) => Err(self.not_served_check(kind, err).await),
        }
    }

    /// Deletes a workload; a missing one is not an error.
    pub async fn delete(
        &self,
        kind: &WorkloadKind,
        namespace: &str,
        name: &str,
    ) -> Result<(), AccessError> {
        let params = DeleteParams::background();
        let result = match self.typed(kind).await? {
            Typed::Deployment => Api::<Deployment>::namespaced(self.client.clone(), namespace)
                .delete(name, &params)
                .await
                .map(|_| ()),
            Typed::StatefulSet => Api::<StatefulSet>::namespaced(self.client.clone(), namespace)
                .delete(name, &params)
                .await
                .map(|_| ()),
            Typed::Dynamic(ar) => {
                Api::<DynamicObject>::namespaced_with(self.client.clone(), namespace, &ar)
                    .delete(name, &params)
                    .await
                    .map(|_| ())
            }
        };
        match result {
            Ok(()) => Ok(()),
            Err(err) if api_errors::is_not_found(&err) => Ok(()),
            Err(err) => Err(self.not_served_check(kind, err).await),
        }
    }

    /// Applies a JSON merge patch (only the fields in `patch` change).
    pub async fn merge_patch(
        &self,
        kind: &WorkloadKind,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<(), AccessError> {
        let params = crate::patch_params();
        let patch = Patch::Merge(patch);
        let result = match self.typed(kind).await? {
            Typed::Deployment => Api::<Deployment>::namespaced(self.client.clone(), namespace)
                .patch(name, &params, &patch)
                .await
                .map(|o| o.metadata.resource_version),
            Typed::StatefulSet => Api::<StatefulSet>::namespaced(self.client.clone(), namespace)
                .patch(name, &params, &patch)
                .await
                .map(|o| o.metadata.resource_version),
            Typed::Dynamic(ar) => {
                Api::<DynamicObject>::namespaced_with(self.client.clone(), namespace, &ar)
                    .patch(name, &params, &patch)
                    .await
                    .map(|o| o.metadata.resource_version)
            }
        };
        match result {
            Ok(version) => {
                self.wrote(kind, namespace, name, version);
                Ok(())
            }
            Err(err) => Err(self.not_served_check(kind, err).await),
        }
    }
}

async fn get_typed<K>(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<Value>, AccessError>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let object = Api::<K>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await?;
    object.map(|o| to_value(&K::kind(&()), &o)).transpose()
}

async fn list_typed<K>(
    client: &Client,
    namespace: &str,
    params: &ListParams,
) -> Result<Vec<Value>, AccessError>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let list = Api::<K>::namespaced(client.clone(), namespace)
        .list(params)
        .await?;
    list.items
        .iter()
        .map(|o| to_value(&K::kind(&()), o))
        .collect()
}

/// Lists do not carry apiVersion/kind on their items; put them back.
fn with_type_meta(mut value: Value, kind: &WorkloadKind) -> Value {
    let gvk = kind.gvk();
    if let Some(map) = value.as_object_mut() {
        map.entry("apiVersion")
            .or_insert_with(|| Value::from(gvk.api_version()));
        map.entry("kind")
            .or_insert_with(|| Value::from(gvk.kind.clone()));
    }
    value
}

/// Converts a typed object to JSON for the uniform code paths.
pub fn object_to_value<T: Serialize>(kind: &str, object: &T) -> Result<Value, AccessError> {
    to_value(kind, object)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lws() -> GroupVersionKind {
        GroupVersionKind::gvk("leaderworkerset.x-k8s.io", "v1", "LeaderWorkerSet")
    }

    #[test]
    fn a_kind_the_api_server_does_not_list_is_not_served() {
        let missing_group = kube::Error::Api(Box::new(
            kube::core::Status::failure(
                "the server could not find the requested resource",
                "NotFound",
            )
            .with_code(404),
        ));
        let missing_kind =
            kube::Error::Discovery(DiscoveryError::MissingKind("LeaderWorkerSet".into()));
        for err in [missing_group, missing_kind] {
            assert!(matches!(
                discovery_failure(err, &lws()),
                AccessError::NotServed { ref kind, .. } if kind == "LeaderWorkerSet"
            ));
        }
    }

    #[test]
    fn a_failed_discovery_is_an_api_failure_not_a_missing_crd() {
        let unavailable = kube::Error::Api(Box::new(
            kube::core::Status::failure("etcdserver: request timed out", "ServiceUnavailable")
                .with_code(503),
        ));
        let unreachable = kube::Error::ReadEvents(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused",
        ));
        for err in [unavailable, unreachable] {
            let failure = discovery_failure(err, &lws());
            assert!(matches!(failure, AccessError::Api(_)), "{failure}");
            assert!(!failure.to_string().contains("CRD"), "{failure}");
        }
    }
}
