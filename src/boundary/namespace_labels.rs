//! The I/O edge of the boundary: namespace labels read from the API server, grants indexed
//! from the cache.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::{Api, Client, ResourceExt};

use super::NamespaceLabels;
use crate::api::{ResourceScalingGroupGrant, ResourceScalingGroupGrantSpec};

/// Namespaces read at once.
const CONCURRENCY: usize = 4;

/// The labels of each namespace; a namespace that cannot be read (missing, forbidden, API
/// down) maps to `None`, which the boundary treats as not selected.
pub async fn read_namespace_labels(
    client: &Client,
    namespaces: BTreeSet<String>,
) -> NamespaceLabels {
    let api: Api<Namespace> = Api::all(client.clone());
    futures::stream::iter(namespaces)
        .map(|namespace| {
            let api = api.clone();
            async move {
                let labels = match api.get_opt(&namespace).await {
                    Ok(found) => found.map(|ns| ns.labels().clone()),
                    Err(err) => {
                        tracing::debug!(%namespace, error = %err, "could not read a target namespace's labels");
                        None
                    }
                };
                (namespace, labels)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await
}

/// Grant specs by namespace, borrowed from `grants`.
pub fn grants_by_namespace(
    grants: &[Arc<ResourceScalingGroupGrant>],
) -> HashMap<String, Vec<&ResourceScalingGroupGrantSpec>> {
    let mut by_namespace: HashMap<String, Vec<&ResourceScalingGroupGrantSpec>> = HashMap::new();
    for grant in grants {
        by_namespace
            .entry(grant.namespace().unwrap_or_default())
            .or_default()
            .push(&grant.spec);
    }
    by_namespace
}
