//! Watches of workload kinds rsg has no typed cache for (LeaderWorkerSet, RoleBasedGroup,
//! other custom kinds), started when an RSG first uses one: only the metadata
//! of objects labelled `rsg.io/managed`, so a leader or follower changed by someone else
//! reaches its RSG at once instead of at the next periodic check.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use kube::core::{ApiResource, DynamicObject, PartialObjectMeta};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use tracing::{debug, warn};

use super::{RsgTriggers, WatchScope};
use crate::api::LABEL_MANAGED;
use crate::workload::WorkloadKey;

/// The kinds watched so far, by `group/version/kind`.
pub struct DynamicWatches {
    client: Option<Client>,
    scope: WatchScope,
    triggers: Option<RsgTriggers>,
    started: Mutex<HashSet<String>>,
}

impl DynamicWatches {
    /// Watches started through `client`, turned into reconcile triggers.
    pub fn new(client: Client, scope: WatchScope, triggers: RsgTriggers) -> Self {
        Self {
            client: Some(client),
            scope,
            triggers: Some(triggers),
            started: Mutex::new(HashSet::new()),
        }
    }

    /// Watches that never start (stores not connected to a cluster).
    pub fn disabled() -> Self {
        Self {
            client: None,
            scope: WatchScope::Cluster,
            triggers: None,
            started: Mutex::new(HashSet::new()),
        }
    }

    /// Makes sure objects of `ar` labelled `rsg.io/managed` are watched; returns whether they
    /// are (false when there is no cluster to watch).
    pub fn ensure(self: &Arc<Self>, ar: &ApiResource) -> bool {
        let (Some(client), Some(triggers)) = (&self.client, &self.triggers) else {
            return false;
        };
        let key = format!("{}/{}/{}", ar.group, ar.version, ar.kind);
        if !self
            .started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone())
        {
            return true;
        }
        debug!(kind = %key, "watching a workload kind without a typed cache");
        // Metadata only: an `Api` of partial objects asks for nothing else. One watch per
        // listed namespace when the installation is confined to some.
        let apis: Vec<Api<PartialObjectMeta<DynamicObject>>> = match self.scope.namespaces() {
            None => vec![Api::all_with(client.clone(), ar)],
            Some(listed) => listed
                .iter()
                .map(|ns| Api::namespaced_with(client.clone(), ns, ar))
                .collect(),
        };
        for api in apis {
            let (group, kind, key) = (ar.group.clone(), ar.kind.clone(), key.clone());
            let triggers = triggers.clone();
            let stream = watcher(api, watcher::Config::default().labels(LABEL_MANAGED))
                .default_backoff()
                .touched_objects();
            tokio::spawn(async move {
                stream
                    .for_each(|event| {
                        match event {
                            Ok(object) => {
                                let workload = WorkloadKey {
                                    group: group.clone(),
                                    kind: kind.clone(),
                                    namespace: object.namespace().unwrap_or_default(),
                                    name: object.name_any(),
                                };
                                triggers.offer_all(triggers.for_workload_key(&object, &workload));
                            }
                            Err(err) => warn!(error = %err, kind = %key, "watch failed; retrying"),
                        }
                        futures::future::ready(())
                    })
                    .await;
            });
        }
        true
    }
}
