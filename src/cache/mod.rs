//! The one informer cache shared by the webhooks and the controllers.
//!
//! Every kind is watched once; readers get cheap clones of the stores.

mod target_index;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use tracing::{info, warn};

pub use target_index::TargetIndex;

/// Feeds detached [`Stores`] with watch events.
pub struct DetachedFeeder {
    writer: reflector::store::Writer<ResourceScalingGroup>,
    target_index: Arc<TargetIndex>,
}

impl DetachedFeeder {
    /// Applies one watch event to the store and the index.
    pub fn apply(&mut self, event: watcher::Event<ResourceScalingGroup>) {
        self.target_index.apply(&event);
        self.writer.apply_watcher_event(&event);
    }
}

use crate::api::ResourceScalingGroup;

/// Reflector stores and indexes over the objects rsg reads.
#[derive(Clone)]
pub struct Stores {
    /// Every ResourceScalingGroup in the cluster.
    pub rsgs: Store<ResourceScalingGroup>,
    /// Which RSGs claim which workloads, for the cross-RSG duplicate check.
    pub target_index: Arc<TargetIndex>,
    rsgs_synced: Arc<AtomicBool>,
}

impl Stores {
    /// Starts the reflectors as background tasks and returns the stores they fill.
    pub fn start(client: Client) -> Self {
        let (rsgs, writer) = reflector::store::<ResourceScalingGroup>();
        let target_index = Arc::new(TargetIndex::default());
        let rsgs_synced = Arc::new(AtomicBool::new(false));
        let stores = Self {
            rsgs,
            target_index: target_index.clone(),
            rsgs_synced: rsgs_synced.clone(),
        };

        let api: Api<ResourceScalingGroup> = Api::all(client);
        let stream = watcher(api, watcher::Config::default()).default_backoff();
        let indexed =
            reflector::reflector(writer, stream).inspect_ok(move |event| target_index.apply(event));
        tokio::spawn(async move {
            indexed
                .for_each(|result| async move {
                    if let Err(err) = result {
                        warn!(error = %err, "watch of ResourceScalingGroups failed; retrying");
                    }
                })
                .await;
        });
        let reader = stores.rsgs.clone();
        tokio::spawn(async move {
            if reader.wait_until_ready().await.is_ok() {
                rsgs_synced.store(true, Ordering::Release);
                info!("ResourceScalingGroup cache synced");
            }
        });
        stores
    }

    /// Stores that are not connected to a cluster, filled through the returned feeder
    /// (for tests and benchmarks of the admission path).
    pub fn detached() -> (Self, DetachedFeeder) {
        let (rsgs, writer) = reflector::store::<ResourceScalingGroup>();
        let target_index = Arc::new(TargetIndex::default());
        let stores = Self {
            rsgs,
            target_index: target_index.clone(),
            rsgs_synced: Arc::new(AtomicBool::new(true)),
        };
        (
            stores,
            DetachedFeeder {
                writer,
                target_index,
            },
        )
    }

    /// True once every cache has completed its initial list.
    pub fn is_synced(&self) -> bool {
        self.rsgs_synced.load(Ordering::Acquire)
    }
}
