//! The groups that serve, counted from the cluster itself at every change of a pod or Service
//! (not from rsg's status), so a test can say how low they went while rsg replaced groups.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::ListParams;
use kube::runtime::watcher::{self, watcher};
use kube::Api;

/// The group of a pod or Service copy: its `rsg.io/group-id`, group 0 without one.
fn group_of(labels: Option<&BTreeMap<String, String>>) -> String {
    labels
        .and_then(|l| l.get("rsg.io/group-id"))
        .cloned()
        .unwrap_or_else(|| "0".to_string())
}

/// The groups that serve, read from the cluster itself rather than from rsg's status: a group
/// serves when each target has a pod that is Ready (its own condition, set by kwok) and not
/// terminating, and (for copies) the group's Service copies exist, so traffic reaches it.
fn serving_groups_of(pods: &[Pod], services: &[Service], target_count: usize) -> BTreeSet<String> {
    let mut ready_targets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for pod in pods {
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let app = pod.metadata.labels.as_ref().and_then(|l| l.get("app"));
        if let (true, None, Some(app)) = (ready, &pod.metadata.deletion_timestamp, app) {
            ready_targets
                .entry(group_of(pod.metadata.labels.as_ref()))
                .or_default()
                .insert(app.clone());
        }
    }
    let mut routed: BTreeMap<String, usize> = BTreeMap::new();
    for service in services {
        *routed
            .entry(group_of(service.metadata.labels.as_ref()))
            .or_default() += 1;
    }
    ready_targets
        .into_iter()
        .filter(|(group, targets)| {
            targets.len() == target_count
                && routed.get(group).copied().unwrap_or_default() == target_count
        })
        .map(|(group, _)| group)
        .collect()
}

async fn serving_groups_now(
    client: &kube::Client,
    ns: &str,
    target_count: usize,
) -> Result<usize, kube::Error> {
    let params = ListParams::default();
    let pods = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&params)
        .await?;
    let services = Api::<Service>::namespaced(client.clone(), ns)
        .list(&params)
        .await?;
    Ok(serving_groups_of(&pods.items, &services.items, target_count).len())
}

/// The serving groups (see [`serving_groups_of`]) of an RSG with `target_count` targets now.
pub fn serving_groups(ns: &str, target_count: usize) -> usize {
    let ns = ns.to_string();
    super::block_on_helper(async move {
        let client = super::client().await;
        serving_groups_now(&client, &ns, target_count)
            .await
            .map_err(|e| e.to_string())
    })
    .expect("listing pods and Services")
}

/// What the monitor's watches report: a pod or a Service added, changed or gone.
enum Seen {
    Pod(Box<watcher::Event<Pod>>),
    Service(Box<watcher::Event<Service>>),
}

/// The etcd revision at which a watch event happened (its object's resourceVersion, which for
/// a deletion is the deletion's revision). Pods and Services share one revision sequence, so
/// ordering the two watches' events by it gives the order the cluster went through them.
fn revision_of<K: kube::Resource>(event: &watcher::Event<K>) -> Option<u64> {
    match event {
        watcher::Event::Apply(o) | watcher::Event::InitApply(o) | watcher::Event::Delete(o) => {
            o.meta().resource_version.as_deref()?.parse().ok()
        }
        watcher::Event::Init | watcher::Event::InitDone => None,
    }
}

/// Applies one watch event to a set of objects by name.
fn track<K: kube::Resource + Clone>(objects: &mut BTreeMap<String, K>, event: watcher::Event<K>) {
    match event {
        watcher::Event::Apply(object) | watcher::Event::InitApply(object) => {
            objects.insert(object.meta().name.clone().unwrap_or_default(), object);
        }
        watcher::Event::Delete(object) => {
            objects.remove(&object.meta().name.clone().unwrap_or_default());
        }
        watcher::Event::Init | watcher::Event::InitDone => {}
    }
}

/// Watches the pods and Services of the namespace for the whole rollout; at the end, replays
/// every change in revision order and counts the serving groups (see [`serving_groups_of`])
/// after each one, so no state the cluster went through goes unseen.
pub struct ServingFloorMonitor {
    target_count: usize,
    full: usize,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<(u64, Seen)>>>,
}

impl ServingFloorMonitor {
    /// Starts watching `ns`, whose RSG has `target_count` targets and `full` groups at most.
    pub fn start(ns: &str, target_count: usize, full: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (ns, running) = (ns.to_string(), stop.clone());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the monitor");
            runtime.block_on(async move {
                let client = super::client().await;
                let pods = watcher(
                    Api::<Pod>::namespaced(client.clone(), &ns),
                    watcher::Config::default(),
                )
                .map(|e| e.map(|e| Seen::Pod(Box::new(e))));
                let services = watcher(
                    Api::<Service>::namespaced(client, &ns),
                    watcher::Config::default(),
                )
                .map(|e| e.map(|e| Seen::Service(Box::new(e))));
                let mut events = std::pin::pin!(futures::stream::select(pods, services));
                let mut seen = Vec::new();
                while !running.load(Ordering::Relaxed) {
                    let next =
                        tokio::time::timeout(Duration::from_millis(100), events.next()).await;
                    let event = match next {
                        Ok(Some(Ok(event))) => event,
                        Ok(Some(Err(error))) => panic!("watching the rollout: {error}"),
                        Ok(None) => panic!("the watches of the rollout ended"),
                        Err(_) => continue,
                    };
                    let revision = match &event {
                        Seen::Pod(e) => revision_of(e),
                        Seen::Service(e) => revision_of(e),
                    };
                    if let Some(revision) = revision {
                        seen.push((revision, event));
                    }
                }
                seen
            })
        });
        Self {
            target_count,
            full,
            stop,
            thread: Some(thread),
        }
    }

    /// The lowest count of serving groups from the first state with all `full` on, and how
    /// many states that was; a panic of the watching thread fails the test.
    pub fn finish(mut self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        let mut seen = match self.thread.take().map(|t| t.join()) {
            Some(Ok(seen)) => seen,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Vec::new(),
        };
        seen.sort_by_key(|(revision, _)| *revision);
        let (mut pods, mut services) = (BTreeMap::new(), BTreeMap::new());
        let mut counts = Vec::new();
        for (_, event) in seen {
            match event {
                Seen::Pod(event) => track(&mut pods, *event),
                Seen::Service(event) => track(&mut services, *event),
            }
            let pods: Vec<Pod> = pods.values().cloned().collect();
            let services: Vec<Service> = services.values().cloned().collect();
            counts.push(serving_groups_of(&pods, &services, self.target_count).len());
        }
        let full = counts
            .iter()
            .position(|n| *n == self.full)
            .unwrap_or(counts.len());
        let states = &counts[full..];
        assert!(!states.is_empty(), "the serving-group monitor saw no state");
        (
            states.iter().copied().min().unwrap_or_default(),
            states.len(),
        )
    }
}
