//! Events leave the reconcile path: a reconcile queues its Events and one task publishes them
//! in the order they were queued, so no reconcile waits on an Event's write (a new RSG has
//! three: its snapshot, its adoption, its scale-up). The queue is bounded: when the API server
//! falls that far behind, an Event is dropped and counted (`rsg_events_dropped_total`) rather
//! than slowing the reconciles that do the work.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, Recorder};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{mpsc, oneshot};

/// How many Events may wait for the publishing task.
pub const CAPACITY: usize = 4096;

enum Queued {
    Publish(Box<(Event, ObjectReference)>),
    Flush(oneshot::Sender<()>),
}

/// The sending side; cheap to share. Publishing stops when every sender is gone.
#[derive(Clone)]
pub struct EventQueue {
    sender: mpsc::Sender<Queued>,
    dropped: Counter,
}

impl EventQueue {
    /// Starts the task that publishes queued Events with `recorder` (needs a Tokio runtime);
    /// Events that find the queue full are counted in `dropped`.
    pub fn start(recorder: Recorder, dropped: Counter) -> Self {
        let (sender, mut receiver) = mpsc::channel::<Queued>(CAPACITY);
        tokio::spawn(async move {
            while let Some(queued) = receiver.recv().await {
                match queued {
                    Queued::Publish(event) => {
                        let (event, reference) = *event;
                        if let Err(err) = recorder.publish(&event, &reference).await {
                            tracing::warn!(error = %err, reason = %event.reason, "could not publish an Event");
                        }
                    }
                    Queued::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
        Self { sender, dropped }
    }

    /// Queues `event` about `reference`; counts and logs it when the queue is full.
    pub fn publish(&self, event: Event, reference: ObjectReference) {
        if let Err(mpsc::error::TrySendError::Full(Queued::Publish(event))) = self
            .sender
            .try_send(Queued::Publish(Box::new((event, reference))))
        {
            self.dropped.inc();
            tracing::warn!(reason = %event.0.reason, "Event dropped: too many Events wait to be published");
        }
    }

    /// Returns once every Event queued before this call has been published (or failed).
    pub async fn flush(&self) {
        let (done, published) = oneshot::channel();
        if self.sender.send(Queued::Flush(done)).await.is_ok() {
            let _ = published.await;
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
    async fn queued_events_are_published_in_order_and_flush_waits_for_them() {
        let (ctx, recorded) = mock_api::context(mock_api::created);
        for reason in ["First", "Second", "Third"] {
            ctx.events.publish(event(reason), reference());
        }
        ctx.events.flush().await;
        assert_eq!(recorded.event_reasons(), ["First", "Second", "Third"]);
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let dropped = Counter::default();
        // A queue whose publishing task never runs, with room for one Event.
        let (sender, _receiver) = mpsc::channel::<Queued>(1);
        let queue = EventQueue {
            sender,
            dropped: dropped.clone(),
        };
        queue.publish(event("Kept"), reference());
        queue.publish(event("Dropped"), reference());
        queue.publish(event("AlsoDropped"), reference());
        assert_eq!(dropped.get(), 2);
    }
}
