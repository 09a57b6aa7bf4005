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

use super::RsgTriggers;
use crate::api::LABEL_MANAGED;
use crate::workload::WorkloadKey;

/// The kinds watched so far, by `group/version/kind`.
pub struct DynamicWatches {
    client: Option<Client>,
    triggers: Option<RsgTriggers>,
    started: Mutex<HashSet<String>>,
}

impl DynamicWatches {
    /// Watches started through `client`, turned into reconcile triggers.
    pub fn new(client: Client, triggers: RsgTriggers) -> Self {
        Self {
            client: Some(client),
            triggers: Some(triggers),
            started: Mutex::new(HashSet::new()),
        }
    }

    /// Watches that never start (stores not connected to a cluster).
    pub fn disabled() -> Self {
        Self {
            client: None,
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
        // Metadata only: an `Api` of partial objects asks for nothing else.
        let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(client.clone(), ar);
        let (group, kind) = (ar.group.clone(), ar.kind.clone());
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
        true
    }
}
