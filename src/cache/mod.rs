//! The one informer cache shared by the webhooks and the controllers.
//!
//! Every kind is watched once. RSGs are watched in full; the objects rsg manages
//! (Deployments, StatefulSets, Services, ConfigMaps, ControllerRevisions) only when they
//! carry the label `rsg.io/name`, pods only when they are a group's representative, and
//! Nodes as names and labels only (the domains placement reports).
//! Events on managed objects are turned into reconcile triggers for the RSGs they belong to.

mod api_reachability;
mod dynamic_watches;
pub use api_reachability::ApiReachability;
pub use dynamic_watches::DynamicWatches;
mod feed;
mod target_index;
mod triggers;

use std::sync::Arc;

use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Service};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, store::Writer, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tracing::{info, warn};

pub use feed::ReconcileFeed;
pub use target_index::TargetIndex;
pub use triggers::RsgTriggers;

use crate::api::{
    ResourceScalingGroup, ResourceScalingGroupGrant, ResourceScalingGroupGrantSpec, LABEL_MANAGED,
    LABEL_NAME, LABEL_REPRESENTATIVE,
};
use crate::boundary::{Grants, TargetBoundary};
use crate::workload::TargetClaim;
use crate::workload::WorkloadKey;

/// Reflector stores and indexes over the objects rsg reads.
#[derive(Clone)]
pub struct Stores {
    /// Every ResourceScalingGroup in the cluster.
    pub rsgs: Store<ResourceScalingGroup>,
    /// Deployments labelled `rsg.io/managed` (adopted bases, copies, leaders, followers).
    pub deployments: Store<Deployment>,
    /// StatefulSets labelled `rsg.io/managed`.
    pub statefulsets: Store<StatefulSet>,
    /// Services labelled `rsg.io/name` (copies).
    pub services: Store<Service>,
    /// ConfigMaps labelled `rsg.io/name` (replica baselines).
    pub config_maps: Store<ConfigMap>,
    /// ControllerRevisions labelled `rsg.io/name` (snapshots).
    pub revisions: Store<ControllerRevision>,
    /// Pods labelled `rsg.io/representative`.
    pub representatives: Store<Pod>,
    /// Every ResourceScalingGroupGrant (namespaces' consent to RSGs of other namespaces).
    pub grants: Store<ResourceScalingGroupGrant>,
    /// Every Node's name and labels (metadata only), for the domains groups landed in.
    pub nodes: Store<PartialObjectMeta<Node>>,
    /// Watches of workload kinds without a typed cache, started on first use.
    pub dynamic: Arc<DynamicWatches>,
    /// Which RSGs claim which workloads.
    pub target_index: Arc<TargetIndex>,
    /// Reconcile requests for the controller, open while this replica leads.
    pub feed: Arc<ReconcileFeed>,
    /// True once every cache has completed its initial list; a watch wakes every waiter.
    synced: Arc<watch::Sender<bool>>,
}

fn label_selected(label: &str) -> watcher::Config {
    watcher::Config::default().labels(label)
}

/// Runs a reflector for `K` as a background task, calling `on_event` for every event.
fn spawn_reflector<K>(
    api: Api<K>,
    config: watcher::Config,
    writer: Writer<K>,
    on_event: impl Fn(&watcher::Event<K>) + Send + Sync + 'static,
) where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    let listed_kind = kind.clone();
    let stream = watcher(api, config)
        .default_backoff()
        .modify(|object| object.managed_fields_mut().clear())
        .reflect(writer)
        .inspect_ok(move |event| {
            if matches!(event, watcher::Event::InitDone) {
                tracing::debug!(kind = %listed_kind, "initial list complete");
            }
            on_event(event)
        });
    tokio::spawn(async move {
        stream
            .for_each(|result| {
                if let Err(err) = result {
                    warn!(error = %err, kind = %kind, "watch failed; retrying");
                }
                futures::future::ready(())
            })
            .await;
    });
}

fn watch_labelled<K>(
    client: &Client,
    label: &str,
    triggers: &RsgTriggers,
    map: fn(&RsgTriggers, &K) -> Vec<ObjectRef<ResourceScalingGroup>>,
) -> Store<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store::<K>();
    let triggers = triggers.clone();
    spawn_reflector(
        Api::<K>::all(client.clone()),
        label_selected(label),
        writer,
        move |event| triggers.send_for_event(event, map),
    );
    store
}

/// Watches Nodes' metadata, keeping only names and labels: what placement reports need.
fn watch_node_labels(client: &Client) -> Store<PartialObjectMeta<Node>> {
    let (store, writer) = reflector::store::<PartialObjectMeta<Node>>();
    let nodes = Api::<PartialObjectMeta<Node>>::all(client.clone());
    let stream = watcher(nodes, watcher::Config::default())
        .default_backoff()
        .modify(|node| {
            node.managed_fields_mut().clear();
            node.annotations_mut().clear();
            node.metadata.owner_references = None;
        })
        .reflect(writer);
    tokio::spawn(async move {
        stream
            .for_each(|result| {
                if let Err(err) = result {
                    warn!(error = %err, kind = "Node", "watch failed; retrying");
                }
                futures::future::ready(())
            })
            .await;
    });
    store
}

impl Stores {
    /// The value of label `key` on node `node`, if cached.
    pub fn node_label(&self, node: &str, key: &str) -> Option<String> {
        self.nodes
            .get(&ObjectRef::new(node))
            .and_then(|n| n.labels().get(key).cloned())
    }

    /// Starts every reflector as a background task and returns the stores they fill.
    pub fn start(client: Client) -> Self {
        let target_index = Arc::new(TargetIndex::default());
        let feed = Arc::new(ReconcileFeed::default());
        let (rsgs, rsg_writer) = reflector::store::<ResourceScalingGroup>();
        let triggers = RsgTriggers::new(feed.clone(), rsgs.clone(), target_index.clone());
        let index = target_index.clone();
        let rsg_triggers = triggers.clone();
        spawn_reflector(
            Api::<ResourceScalingGroup>::all(client.clone()),
            watcher::Config::default(),
            rsg_writer,
            move |event| {
                index.apply(event);
                rsg_triggers.send_for_event(event, RsgTriggers::for_itself);
            },
        );
        let (grants, grant_writer) = reflector::store::<ResourceScalingGroupGrant>();
        let grant_triggers = triggers.clone();
        spawn_reflector(
            Api::<ResourceScalingGroupGrant>::all(client.clone()),
            watcher::Config::default(),
            grant_writer,
            move |event| grant_triggers.send_for_event(event, RsgTriggers::for_grant),
        );
        let stores = Self {
            rsgs,
            grants,
            dynamic: Arc::new(DynamicWatches::new(client.clone(), triggers.clone())),
            deployments: watch_labelled(
                &client,
                LABEL_MANAGED,
                &triggers,
                RsgTriggers::for_workload,
            ),
            statefulsets: watch_labelled(
                &client,
                LABEL_MANAGED,
                &triggers,
                RsgTriggers::for_workload,
            ),
            services: watch_labelled(&client, LABEL_NAME, &triggers, RsgTriggers::for_labelled),
            config_maps: watch_labelled(&client, LABEL_NAME, &triggers, RsgTriggers::for_labelled),
            revisions: watch_labelled(&client, LABEL_NAME, &triggers, RsgTriggers::for_labelled),
            representatives: watch_labelled(
                &client,
                LABEL_REPRESENTATIVE,
                &triggers,
                RsgTriggers::for_representative,
            ),
            nodes: watch_node_labels(&client),
            target_index,
            feed,
            synced: Arc::new(watch::channel(false).0),
        };
        tokio::spawn(stores.clone().mark_synced());
        stores
    }

    /// Stores that are not connected to a cluster, filled through the returned feeder
    /// (for tests and benchmarks of the admission path).
    pub fn detached() -> (Self, DetachedFeeder) {
        let (rsgs, writer) = reflector::store::<ResourceScalingGroup>();
        let target_index = Arc::new(TargetIndex::default());
        let stores = Self {
            rsgs,
            deployments: reflector::store().0,
            statefulsets: reflector::store().0,
            services: reflector::store().0,
            config_maps: reflector::store().0,
            revisions: reflector::store().0,
            representatives: reflector::store().0,
            grants: reflector::store().0,
            nodes: reflector::store().0,
            dynamic: Arc::new(DynamicWatches::disabled()),
            target_index: target_index.clone(),
            feed: Arc::default(),
            synced: Arc::new(watch::channel(true).0),
        };
        (
            stores,
            DetachedFeeder {
                writer,
                target_index,
            },
        )
    }

    /// Waits for every cache's initial list, reporting the ones still missing every 15s.
    ///
    /// This is the only task that waits on the stores' own readiness: a kube store wakes only
    /// the last task that polled its readiness, so two waiters on one store can lose a wake-up
    /// (seen as a 15 s wait for an initial list that took milliseconds). Everything else waits
    /// for [`Stores::wait_synced`]; once this returns, every store's readiness is settled and
    /// answers at once.
    async fn mark_synced(self) {
        let mut pending = vec![
            ("ResourceScalingGroup", self.rsgs.wait_until_ready().boxed()),
            ("Deployment", self.deployments.wait_until_ready().boxed()),
            ("StatefulSet", self.statefulsets.wait_until_ready().boxed()),
            ("Service", self.services.wait_until_ready().boxed()),
            ("ConfigMap", self.config_maps.wait_until_ready().boxed()),
            (
                "ControllerRevision",
                self.revisions.wait_until_ready().boxed(),
            ),
            ("Pod", self.representatives.wait_until_ready().boxed()),
            (
                "ResourceScalingGroupGrant",
                self.grants.wait_until_ready().boxed(),
            ),
            ("Node", self.nodes.wait_until_ready().boxed()),
        ];
        while !pending.is_empty() {
            let waiting: Vec<&str> = pending.iter().map(|(kind, _)| *kind).collect();
            let next = futures::future::select_all(pending.iter_mut().map(|(_, ready)| ready));
            match tokio::time::timeout(std::time::Duration::from_secs(15), next).await {
                Ok((Ok(()), index, _)) => {
                    drop(pending.remove(index));
                }
                Ok((Err(_), _, _)) => return,
                Err(_) => {
                    warn!(waiting = ?waiting, "informer caches still waiting for their initial list")
                }
            }
        }
        self.synced.send_replace(true);
        info!(rsgs = self.rsgs.len(), "informer caches synced");
    }

    /// True once every cache has completed its initial list.
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Returns once every cache has completed its initial list.
    pub async fn wait_synced(&self) {
        let mut synced = self.synced.subscribe();
        // The sender lives as long as these stores: an error cannot happen while `self` does.
        let _ = synced.wait_for(|synced| *synced).await;
    }

    /// The RSG with this namespace and name, if cached.
    pub fn rsg(&self, namespace: &str, name: &str) -> Option<Arc<ResourceScalingGroup>> {
        self.rsgs.get(&ObjectRef::new(name).within(namespace))
    }
}

impl Stores {
    /// The cached grants, by namespace.
    pub fn grants_by_namespace(&self) -> Grants {
        Grants::new(self.grants.state())
    }

    /// The claims on `workload` that count: those of cached RSGs inside the boundary. A
    /// claim from outside it never blocks the workload's real owner.
    pub fn counted_claims<'g>(
        &self,
        workload: &WorkloadKey,
        boundary: &TargetBoundary,
        grants_in: impl Fn(&str) -> Vec<&'g ResourceScalingGroupGrantSpec> + Copy,
    ) -> Vec<TargetClaim> {
        self.target_index
            .claims_on(workload)
            .into_iter()
            .filter(|claim| {
                self.rsg(&claim.rsg_namespace, &claim.rsg_name)
                    .is_some_and(|other| {
                        boundary.claim_counts(&claim.rsg_namespace, &other.spec, grants_in)
                    })
            })
            .collect()
    }
}

/// Objects in `store` in `namespace` whose label `key` equals `value`.
pub fn labelled<K>(store: &Store<K>, namespace: &str, key: &str, value: &str) -> Vec<Arc<K>>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store
        .state()
        .into_iter()
        .filter(|o| {
            o.namespace().as_deref() == Some(namespace)
                && o.labels().get(key).map(String::as_str) == Some(value)
        })
        .collect()
}

/// Feeds detached [`Stores`] with watch events.
pub struct DetachedFeeder {
    writer: Writer<ResourceScalingGroup>,
    target_index: Arc<TargetIndex>,
}

impl DetachedFeeder {
    /// Applies one watch event to the store and the index.
    pub fn apply(&mut self, event: watcher::Event<ResourceScalingGroup>) {
        self.target_index.apply(&event);
        self.writer.apply_watcher_event(&event);
    }
}
