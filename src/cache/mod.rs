//! The one informer cache shared by the webhooks and the controllers.
//!
//! Each kind is watched once (pods twice: copies' pods and representatives). RSGs are watched
//! in full; the objects rsg manages
//! (Deployments, StatefulSets, Services, ConfigMaps, ControllerRevisions) only when they
//! carry the label `rsg.io/name` (Services all, for the bases' Services, through a selector
//! index), pods when they are a copy's or a group's representative (trimmed to what rsg
//! reads), and Nodes as names and labels only (the domains placement reports). An index from
//! RSG to its labelled objects spares reconciles a scan of every cached object.
//! Events on managed objects are turned into reconcile triggers for the RSGs they belong to.

mod api_reachability;
mod compact_store;
mod dynamic_watches;
pub use api_reachability::ApiReachability;
use compact_store::compact_store;
pub use compact_store::CompactStore;
pub use dynamic_watches::DynamicWatches;
mod feed;
mod namespace_scope;
mod rsg_members;
mod rsg_store;
mod service_index;
mod small_set;
mod target_index;
mod triggers;
mod trim;
mod watch_index;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Service};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::{watch, Notify};
use tracing::{info, warn};

pub use feed::ReconcileFeed;
use namespace_scope::CacheWriter;
pub use namespace_scope::{MergedRelists, WatchScope, Watchable};
pub use rsg_members::RsgMembers;
pub use rsg_store::{retyped, RsgName, RsgNames};
use rsg_store::{rsg_stores, RsgWriters};
pub use service_index::ServiceIndex;
pub use target_index::TargetIndex;
pub use triggers::RsgTriggers;
pub use trim::trimmed_as_copy;
use trim::{
    keep_all, trim_deployment, trim_node, trim_pod, trim_rsg, trim_service, trim_statefulset,
};

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
    /// Every ResourceScalingGroup in the cluster (without kubectl's last-applied annotation).
    pub rsgs: CompactStore<ResourceScalingGroup>,
    /// The same RSGs' namespaces and names: the controller's queue reads them.
    pub rsg_names: RsgNames,
    /// Deployments labelled `rsg.io/managed` (adopted bases, copies, leaders, followers),
    /// without status conditions; copies without their pod spec (see `trim`).
    pub deployments: CompactStore<Deployment>,
    /// StatefulSets labelled `rsg.io/managed`, trimmed as Deployments are.
    pub statefulsets: CompactStore<StatefulSet>,
    /// Every Service, as its metadata without annotations, its selector and its type: the
    /// bases' Services (found through [`Stores::service_index`]) and the copies.
    pub services: CompactStore<Service>,
    /// Selector pair → Services, for the Services that front a base.
    pub service_index: Arc<ServiceIndex>,
    /// RSG → its labelled objects of each kind.
    pub members: Arc<RsgMembers>,
    /// ConfigMaps labelled `rsg.io/name` (replica baselines).
    pub config_maps: CompactStore<ConfigMap>,
    /// ControllerRevisions labelled `rsg.io/name` (snapshots).
    pub revisions: CompactStore<ControllerRevision>,
    /// Pods labelled `rsg.io/representative`, trimmed like [`Stores::group_pods`].
    pub representatives: CompactStore<Pod>,
    /// RSG → its representative pods, by namespace (`rsg.io/representative` values).
    pub representative_index: Arc<RsgMembers>,
    /// Pods labelled `rsg.io/name` (the copies' pods), trimmed to metadata, node, phase and
    /// conditions: what representatives and placement reports read.
    pub group_pods: CompactStore<Pod>,
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
    /// Woken by every RSG delete event, so what the controller remembers about the RSG can
    /// be dropped at once (a watch gap misses some; the controller also sweeps every minute).
    pub rsg_deleted: Arc<Notify>,
    /// True once every cache has completed its initial list; a watch wakes every waiter.
    synced: Arc<watch::Sender<bool>>,
    /// The namespaces whose Services are cached (`None`: none, for detached stores).
    service_scope: Option<WatchScope>,
}

fn label_selected(label: &str) -> watcher::Config {
    watcher::Config::default().labels(label)
}

/// What one reflector watches: one cluster-wide watch, or one watch per listed namespace.
enum Watched<K> {
    All(Box<Api<K>>),
    Each(Vec<(String, Api<K>)>),
}

/// The watches of namespaced kind `K` in `scope`.
fn namespaced<K>(client: &Client, scope: &WatchScope) -> Watched<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
{
    match scope.namespaces() {
        None => Watched::All(Box::new(Api::all(client.clone()))),
        Some(listed) => Watched::Each(
            listed
                .iter()
                .map(|ns| (ns.clone(), Api::namespaced(client.clone(), ns)))
                .collect(),
        ),
    }
}

/// Runs a reflector for `K` as a background task, calling `on_event` for every event.
fn spawn_reflector<K, W>(
    watched: Watched<K>,
    config: watcher::Config,
    mut writer: W,
    trim: fn(&mut K),
    on_event: impl Fn(&watcher::Event<K>) + Send + Sync + 'static,
) where
    K: Watchable,
    W: CacheWriter<K>,
    W::Reader: Sync,
{
    let kind = K::kind(&()).into_owned();
    let listed_kind = kind.clone();
    let events = match watched {
        Watched::All(api) => watcher(*api, config).default_backoff().boxed(),
        Watched::Each(apis) => namespace_scope::merged_watch(apis, config, writer.reader()).boxed(),
    };
    let stream = events
        .modify(move |object| {
            object.managed_fields_mut().clear();
            trim(object);
        })
        .inspect_ok(move |event| {
            writer.apply(event);
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

/// One label-selected watch: its store, its objects in `members` (an index that no other
/// watch of the same kind feeds) and its events turned into triggers by `map`.
struct LabelledWatch<'a, K> {
    label: &'a str,
    trim: fn(&mut K),
    members: &'a Arc<RsgMembers>,
    map: fn(&RsgTriggers, &K) -> Vec<ObjectRef<ResourceScalingGroup>>,
}

fn watch_labelled<K>(
    client: &Client,
    scope: &WatchScope,
    triggers: &RsgTriggers,
    watch: LabelledWatch<'_, K>,
) -> CompactStore<K>
where
    K: Watchable
        + serde::Serialize
        + k8s_openapi::Resource
        + Resource<Scope = kube::core::NamespaceResourceScope>,
{
    let (store, writer) = compact_store::<K>();
    let triggers = triggers.clone();
    let members = watch.members.clone();
    let map = watch.map;
    spawn_reflector(
        namespaced::<K>(client, scope),
        label_selected(watch.label),
        writer,
        watch.trim,
        move |event| {
            members.apply(event);
            triggers.send_for_event(event, map);
        },
    );
    store
}

/// A label-selected watch of objects rsg manages, indexed by RSG, trimmed by `trim`.
fn managed<'a, K>(
    label: &'a str,
    trim: fn(&mut K),
    members: &'a Arc<RsgMembers>,
    map: fn(&RsgTriggers, &K) -> Vec<ObjectRef<ResourceScalingGroup>>,
) -> LabelledWatch<'a, K> {
    LabelledWatch {
        label,
        trim,
        members,
        map,
    }
}

/// Watches every Service: the copies (which trigger their RSG) and the bases' Services,
/// indexed by selector.
fn watch_services(
    client: &Client,
    scope: &WatchScope,
    triggers: &RsgTriggers,
    members: &Arc<RsgMembers>,
    index: &Arc<ServiceIndex>,
) -> CompactStore<Service> {
    let (store, writer) = compact_store::<Service>();
    let (triggers, members, index) = (triggers.clone(), members.clone(), index.clone());
    spawn_reflector(
        namespaced::<Service>(client, scope),
        watcher::Config::default(),
        writer,
        trim_service,
        move |event| {
            index.apply(event);
            members.apply(event);
            triggers.send_for_event(event, RsgTriggers::for_labelled);
        },
    );
    store
}

/// Watches the pods rsg reads, trimmed: representatives (indexed in `representatives`) and
/// the copies' pods (indexed in `members`).
fn watch_pods(
    client: &Client,
    scope: &WatchScope,
    triggers: &RsgTriggers,
    members: &Arc<RsgMembers>,
    representatives: &Arc<RsgMembers>,
) -> (CompactStore<Pod>, CompactStore<Pod>) {
    let representative_watch = LabelledWatch {
        label: LABEL_REPRESENTATIVE,
        trim: trim_pod,
        members: representatives,
        map: RsgTriggers::for_representative,
    };
    let group_pod_watch = LabelledWatch {
        label: LABEL_NAME,
        trim: trim_pod,
        members,
        map: RsgTriggers::for_labelled,
    };
    (
        watch_labelled(client, scope, triggers, representative_watch),
        watch_labelled(client, scope, triggers, group_pod_watch),
    )
}

/// Watches Nodes' metadata, names and labels only: what placement reports need.
fn watch_node_labels(client: &Client) -> Store<PartialObjectMeta<Node>> {
    let (store, writer) = reflector::store::<PartialObjectMeta<Node>>();
    spawn_reflector(
        Watched::All(Box::new(Api::<PartialObjectMeta<Node>>::all(
            client.clone(),
        ))),
        watcher::Config::default(),
        writer,
        trim_node,
        |_| {},
    );
    store
}

/// True once a store's first list completes; false when its watch ended first.
fn listed<'a, E>(
    ready: impl std::future::Future<Output = Result<(), E>> + Send + 'a,
) -> futures::future::BoxFuture<'a, bool> {
    ready.map(|ready| ready.is_ok()).boxed()
}

impl Stores {
    /// The value of label `key` on node `node`, if cached.
    pub fn node_label(&self, node: &str, key: &str) -> Option<String> {
        self.nodes
            .get(&ObjectRef::new(node))
            .and_then(|n| n.labels().get(key).cloned())
    }

    /// Starts every reflector as a background task, watching namespaced kinds in `scope`,
    /// and returns the stores they fill.
    pub fn start(client: Client, scope: WatchScope) -> Self {
        let target_index = Arc::new(TargetIndex::default());
        let feed = Arc::new(ReconcileFeed::default());
        let rsg_deleted = Arc::new(Notify::new());
        let (rsgs, rsg_names, grants, triggers) =
            watch_rsgs_and_grants(&client, &scope, &feed, &target_index, &rsg_deleted);
        let members = Arc::new(RsgMembers::default());
        let representative_index = Arc::new(RsgMembers::by_label(LABEL_REPRESENTATIVE));
        let service_index = Arc::new(ServiceIndex::default());
        let m = &members;
        let (representatives, group_pods) =
            watch_pods(&client, &scope, &triggers, m, &representative_index);
        let stores = Self {
            rsgs,
            rsg_names,
            grants,
            dynamic: Arc::new(DynamicWatches::new(
                client.clone(),
                scope.clone(),
                triggers.clone(),
            )),
            deployments: watch_labelled(
                &client,
                &scope,
                &triggers,
                managed(LABEL_MANAGED, trim_deployment, m, RsgTriggers::for_workload),
            ),
            statefulsets: watch_labelled(
                &client,
                &scope,
                &triggers,
                managed(
                    LABEL_MANAGED,
                    trim_statefulset,
                    m,
                    RsgTriggers::for_workload,
                ),
            ),
            services: watch_services(&client, &scope, &triggers, m, &service_index),
            config_maps: watch_labelled(
                &client,
                &scope,
                &triggers,
                managed(LABEL_NAME, keep_all, m, RsgTriggers::for_labelled),
            ),
            revisions: watch_labelled(
                &client,
                &scope,
                &triggers,
                managed(LABEL_NAME, keep_all, m, RsgTriggers::for_labelled),
            ),
            representatives,
            group_pods,
            service_index,
            members,
            representative_index,
            nodes: watch_node_labels(&client),
            target_index,
            feed,
            rsg_deleted,
            synced: Arc::new(watch::channel(false).0),
            service_scope: Some(scope),
        };
        tokio::spawn(stores.clone().mark_synced());
        stores
    }

    /// Stores that are not connected to a cluster, filled through the returned feeder
    /// (for tests and benchmarks of the admission path).
    pub fn detached() -> (Self, DetachedFeeder) {
        let (rsgs, rsg_names, writers) = rsg_stores();
        let target_index = Arc::new(TargetIndex::default());
        let stores = Self {
            rsgs,
            rsg_names,
            deployments: compact_store().0,
            statefulsets: compact_store().0,
            services: compact_store().0,
            config_maps: compact_store().0,
            revisions: compact_store().0,
            representatives: compact_store().0,
            group_pods: compact_store().0,
            grants: reflector::store().0,
            nodes: reflector::store().0,
            service_index: Arc::default(),
            members: Arc::default(),
            representative_index: Arc::new(RsgMembers::by_label(LABEL_REPRESENTATIVE)),
            dynamic: Arc::new(DynamicWatches::disabled()),
            target_index: target_index.clone(),
            feed: Arc::default(),
            rsg_deleted: Arc::default(),
            synced: Arc::new(watch::channel(true).0),
            service_scope: None,
        };
        (
            stores,
            DetachedFeeder {
                writers,
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
            ("ResourceScalingGroup", listed(self.rsgs.wait_until_ready())),
            ("Deployment", listed(self.deployments.wait_until_ready())),
            ("StatefulSet", listed(self.statefulsets.wait_until_ready())),
            ("Service", listed(self.services.wait_until_ready())),
            ("ConfigMap", listed(self.config_maps.wait_until_ready())),
            (
                "ControllerRevision",
                listed(self.revisions.wait_until_ready()),
            ),
            ("Pod", listed(self.representatives.wait_until_ready())),
            ("Pod (groups)", listed(self.group_pods.wait_until_ready())),
            (
                "ResourceScalingGroupGrant",
                listed(self.grants.wait_until_ready()),
            ),
            ("Node", listed(self.nodes.wait_until_ready())),
        ];
        while !pending.is_empty() {
            let waiting: Vec<&str> = pending.iter().map(|(kind, _)| *kind).collect();
            let next = futures::future::select_all(pending.iter_mut().map(|(_, ready)| ready));
            match tokio::time::timeout(std::time::Duration::from_secs(15), next).await {
                Ok((true, index, _)) => {
                    drop(pending.remove(index));
                }
                Ok((false, _, _)) => return,
                Err(_) => {
                    warn!(waiting = ?waiting, "informer caches still waiting for their initial list")
                }
            }
        }
        self.synced.send_replace(true);
        crate::allocator::return_free_memory();
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
    /// The cached Services in `namespace` whose selector picks pods with one of `templates`'
    /// labels, by name: found through the selector index, then the store.
    pub fn cached_services_fronting(
        &self,
        namespace: &str,
        templates: &[BTreeMap<String, String>],
    ) -> BTreeMap<String, Arc<Service>> {
        let names: BTreeSet<String> = templates
            .iter()
            .flat_map(|labels| self.service_index.selecting(namespace, labels))
            .collect();
        names
            .into_iter()
            .filter_map(|name| {
                let service = self
                    .services
                    .get(&ObjectRef::new(&name).within(namespace))?;
                Some((name, service))
            })
            .collect()
    }

    /// The name and type (`ClusterIP` when unset) of each Service in `namespace` whose
    /// selector picks pods with one of `templates`' labels (see
    /// [`Stores::cached_services_fronting`]); `None` when the cache does not hold that
    /// namespace's Services (not synced yet, outside the watched namespaces, or detached).
    pub fn services_fronting(
        &self,
        namespace: &str,
        templates: &[BTreeMap<String, String>],
    ) -> Option<Vec<(String, String)>> {
        let scope = self.service_scope.as_ref()?;
        if !self.is_synced() || !scope.includes(namespace) {
            return None;
        }
        let fronting = self.cached_services_fronting(namespace, templates);
        let typed = fronting.into_iter().map(|(name, service)| {
            let type_ = service.spec.as_ref().and_then(|spec| spec.type_.clone());
            (name, type_.unwrap_or_else(|| "ClusterIP".to_string()))
        });
        Some(typed.collect())
    }

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
                        boundary.claim_counts(
                            (&claim.rsg_namespace, &claim.rsg_name),
                            &other.spec,
                            grants_in,
                        )
                    })
            })
            .collect()
    }
}

/// Objects in `store` in `namespace` whose label (`rsg.io/name` unless `members` is keyed by
/// another) names `rsg`, found through `members`.
pub fn labelled<K>(
    store: &CompactStore<K>,
    members: &RsgMembers,
    namespace: &str,
    rsg: &str,
) -> Vec<Arc<K>>
where
    K: Resource<DynamicType = ()> + k8s_openapi::Resource + serde::de::DeserializeOwned,
{
    members
        .names::<K>(namespace, rsg)
        .iter()
        .filter_map(|name| store.get(&ObjectRef::new(name).within(namespace)))
        .filter(|o| o.labels().get(members.label()).map(String::as_str) == Some(rsg))
        .collect()
}

/// Feeds detached [`Stores`] with watch events.
pub struct DetachedFeeder {
    writers: RsgWriters,
    target_index: Arc<TargetIndex>,
}

impl DetachedFeeder {
    /// Applies one watch event to the store and the index.
    pub fn apply(&mut self, event: watcher::Event<ResourceScalingGroup>) {
        self.target_index.apply(&event);
        self.writers.apply(&event);
    }
}

/// Watches RSGs (keeping the target index) and grants, each event triggering the RSGs it
/// concerns; returns their stores and the triggers the other watches use.
fn watch_rsgs_and_grants(
    client: &Client,
    scope: &WatchScope,
    feed: &Arc<ReconcileFeed>,
    target_index: &Arc<TargetIndex>,
    deleted: &Arc<Notify>,
) -> (
    CompactStore<ResourceScalingGroup>,
    RsgNames,
    Store<ResourceScalingGroupGrant>,
    RsgTriggers,
) {
    let (rsgs, rsg_names, rsg_writer) = rsg_stores();
    let triggers = RsgTriggers::new(feed.clone(), rsg_names.clone(), target_index.clone());
    let index = target_index.clone();
    let rsg_triggers = triggers.clone();
    let deleted = deleted.clone();
    spawn_reflector(
        namespaced::<ResourceScalingGroup>(client, scope),
        watcher::Config::default(),
        rsg_writer,
        trim_rsg,
        move |event| {
            index.apply(event);
            rsg_triggers.send_for_event(event, RsgTriggers::for_itself);
            if matches!(event, watcher::Event::Delete(_)) {
                deleted.notify_one();
            }
        },
    );
    let (grants, grant_writer) = reflector::store::<ResourceScalingGroupGrant>();
    let grant_triggers = triggers.clone();
    spawn_reflector(
        namespaced::<ResourceScalingGroupGrant>(client, scope),
        watcher::Config::default(),
        grant_writer,
        keep_all,
        move |event| grant_triggers.send_for_event(event, RsgTriggers::for_grant),
    );
    (rsgs, rsg_names, grants, triggers)
}
