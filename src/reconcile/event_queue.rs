//! Events leave the reconcile path: a reconcile queues its Events and publishing tasks send
//! them, so no reconcile waits on an Event's write (a new RSG has three: its snapshot, its
//! adoption, its scale-up). Events go into one of [`LANES`] lanes chosen by the RSG, each
//! published in order by its own task: an RSG's Events keep their order, and eight are sent
//! at once. Each lane is bounded: when the API server falls that far behind, an Event is
//! dropped and counted (`rsg_events_dropped_total`) rather than slowing the reconciles that
//! do the work. Events are writes: when the Lease is lost, [`EventQueue::fence`] discards
//! what is queued and aborts what is being sent, so nothing is written after the loss.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::Event;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{mpsc, oneshot, watch};

use super::event_recorder::EventRecorder;

/// How many lanes (publishing tasks) there are.
pub const LANES: usize = 8;

/// How many Events may wait in one lane.
pub const LANE_CAPACITY: usize = 2048;

/// An Event and what it is about, with the fencing epoch it was queued in.
type Publication = (Event, ObjectReference, u64);

enum Queued {
    Publish(Box<Publication>),
    Flush(oneshot::Sender<()>),
}

/// The sending side; cheap to share. Publishing stops when every sender is gone.
#[derive(Clone)]
pub struct EventQueue {
    lanes: Arc<[mpsc::Sender<Queued>]>,
    dropped: Counter,
    /// Raised by every fence; Events of an earlier epoch are not sent.
    epoch: Arc<watch::Sender<u64>>,
}

/// Publishes what one lane receives, in order, skipping what a fence came after.
async fn publish_lane(
    recorder: EventRecorder,
    mut receiver: mpsc::Receiver<Queued>,
    mut epoch: watch::Receiver<u64>,
) {
    while let Some(queued) = receiver.recv().await {
        match queued {
            Queued::Publish(publication) => {
                let (event, reference, queued_in) = *publication;
                if *epoch.borrow_and_update() != queued_in {
                    continue;
                }
                tokio::select! {
                    sent = recorder.publish(&event, &reference) => if let Err(err) = sent {
                        tracing::warn!(error = %err, reason = %event.reason, "could not publish an Event");
                    },
                    _ = epoch.changed() => {}
                }
            }
            Queued::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

impl EventQueue {
    /// Starts the tasks that publish queued Events with `recorder` (needs a Tokio runtime);
    /// Events that find their lane full are counted in `dropped`.
    pub fn start(recorder: EventRecorder, dropped: Counter) -> Self {
        let (epoch, epochs) = watch::channel(0);
        let lanes: Vec<mpsc::Sender<Queued>> = (0..LANES)
            .map(|_| {
                let (sender, receiver) = mpsc::channel::<Queued>(LANE_CAPACITY);
                tokio::spawn(publish_lane(recorder.clone(), receiver, epochs.clone()));
                sender
            })
            .collect();
        Self {
            lanes: lanes.into(),
            dropped,
            epoch: Arc::new(epoch),
        }
    }

    /// Discards every Event queued so far and aborts those being sent: called when the Lease
    /// is lost, so that this replica writes nothing after the loss.
    pub fn fence(&self) {
        self.epoch.send_modify(|epoch| *epoch += 1);
    }

    /// The lane of the object `reference` names: the same object, the same lane.
    fn lane(&self, reference: &ObjectReference) -> &mpsc::Sender<Queued> {
        let mut hasher = DefaultHasher::new();
        (&reference.namespace, &reference.name).hash(&mut hasher);
        let index = usize::try_from(hasher.finish() % self.lanes.len() as u64).unwrap_or(0);
        &self.lanes[index]
    }

    /// Queues `event` about `reference`; counts and logs it when its lane is full.
    pub fn publish(&self, event: Event, reference: ObjectReference) {
        let lane = self.lane(&reference);
        let epoch = *self.epoch.borrow();
        if let Err(mpsc::error::TrySendError::Full(Queued::Publish(event))) =
            lane.try_send(Queued::Publish(Box::new((event, reference, epoch))))
        {
            self.dropped.inc();
            tracing::warn!(reason = %event.0.reason, "Event dropped: too many Events wait to be published");
        }
    }

    /// Returns once every Event queued before this call has been published (or failed).
    pub async fn flush(&self) {
        for lane in self.lanes.iter() {
            let (done, published) = oneshot::channel();
            if lane.send(Queued::Flush(done)).await.is_ok() {
                let _ = published.await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::mock_api;

    fn event(reason: &str) -> Event {
        Event {
            type_: kube::runtime::events::EventType::Normal,
            reason: reason.to_string(),
            note: None,
            action: "Test".to_string(),
            secondary: None,
        }
    }

    fn reference() -> ObjectReference {
        ObjectReference {
            api_version: Some("autoscaling.openfuyao.com/v1alpha1".into()),
            kind: Some("ResourceScalingGroup".into()),
            name: Some("web".into()),
            namespace: Some("team".into()),
            ..ObjectReference::default()
        }
    }

    #[tokio::test]
    async fn an_objects_events_are_published_in_order_and_flush_waits_for_them() {
        let (ctx, recorded) = mock_api::context(mock_api::created);
        for reason in ["First", "Second", "Third"] {
            ctx.events.publish(event(reason), reference());
        }
        ctx.events.flush().await;
        assert_eq!(recorded.event_reasons(), ["First", "Second", "Third"]);
    }

    #[tokio::test]
    async fn a_fence_discards_what_was_queued_before_it_and_later_events_still_go() {
        let (ctx, recorded) = mock_api::context(mock_api::created);
        for reason in ["BeforeTheLoss", "AlsoBefore"] {
            ctx.events.publish(event(reason), reference());
        }
        ctx.events.fence();
        ctx.events.publish(event("AfterLeadingAgain"), reference());
        ctx.events.flush().await;
        assert_eq!(recorded.event_reasons(), ["AfterLeadingAgain"]);
    }

    #[tokio::test]
    async fn events_of_many_objects_are_spread_over_the_lanes_and_all_published() {
        let (ctx, recorded) = mock_api::context(mock_api::created);
        let lanes: std::collections::BTreeSet<usize> = (0..64)
            .map(|i| {
                let mut other = reference();
                other.name = Some(format!("rsg-{i}"));
                let lane = ctx.events.lane(&other) as *const _ as usize;
                ctx.events.publish(event("Spread"), other);
                lane
            })
            .collect();
        assert_eq!(lanes.len(), LANES, "64 objects use every lane");
        ctx.events.flush().await;
        assert_eq!(recorded.event_reasons().len(), 64);
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let dropped = Counter::default();
        // One lane whose publishing task never runs, with room for one Event.
        let (sender, _receiver) = mpsc::channel::<Queued>(1);
        let queue = EventQueue {
            lanes: vec![sender].into(),
            dropped: dropped.clone(),
            epoch: Arc::new(watch::channel(0).0),
        };
        queue.publish(event("Kept"), reference());
        queue.publish(event("Dropped"), reference());
        queue.publish(event("AlsoDropped"), reference());
        assert_eq!(dropped.get(), 2);
    }
}
