//! The I/O edge of the boundary: namespace labels read from the API server, grants indexed
//! from the cache, and the check of an RSG against both.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::{Api, Client, ResourceExt};

use super::{NamespaceLabels, TargetBoundary, Violation};
use crate::api::{
    ResourceScalingGroupGrant, ResourceScalingGroupGrantSpec, ResourceScalingGroupSpec,
};

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

/// The grants of the cluster by namespace (a snapshot of the cache).
#[derive(Default)]
pub struct Grants {
    by_namespace: HashMap<String, Vec<Arc<ResourceScalingGroupGrant>>>,
}

impl Grants {
    /// Indexes `grants` by their namespace.
    pub fn new(grants: Vec<Arc<ResourceScalingGroupGrant>>) -> Self {
        let mut by_namespace: HashMap<String, Vec<Arc<ResourceScalingGroupGrant>>> = HashMap::new();
        for grant in grants {
            by_namespace
                .entry(grant.namespace().unwrap_or_default())
                .or_default()
                .push(grant);
        }
        Self { by_namespace }
    }

    /// The grant specs of `namespace`.
    pub fn specs_in(&self, namespace: &str) -> Vec<&ResourceScalingGroupGrantSpec> {
        self.by_namespace
            .get(namespace)
            .map(|grants| grants.iter().map(|g| &g.spec).collect())
            .unwrap_or_default()
    }
}

/// Every target of `spec` outside `boundary` now: the grants as given, the namespace labels
/// the operator's selector needs read from the API server (none without a client).
pub async fn current_violations(
    client: Option<&Client>,
    boundary: &TargetBoundary,
    grants: &Grants,
    rsg: (&str, &str),
    spec: &ResourceScalingGroupSpec,
) -> Vec<Violation> {
    let labels = match client {
        Some(client) => {
            read_namespace_labels(client, boundary.namespaces_to_label(rsg.0, spec)).await
        }
        None => NamespaceLabels::default(),
    };
    boundary.violations(rsg, spec, &labels, |ns| grants.specs_in(ns))
}
