//! The reconcile requests for the controller: open only while this replica leads.
//!
//! Every RSG event and every event on an object an RSG manages is offered here. While no
//! controller listens (this replica is a standby), offers are dropped rather than queued, so a
//! standby holds no backlog; a controller that starts gets every cached RSG once.

use std::sync::{Mutex, MutexGuard};

use kube::runtime::reflector::ObjectRef;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use super::{retyped, RsgNames};
use crate::api::ResourceScalingGroup;

type Request = ObjectRef<ResourceScalingGroup>;

/// A switchable channel of RSG references.
#[derive(Default)]
pub struct ReconcileFeed {
    sender: Mutex<Option<UnboundedSender<Request>>>,
}

impl ReconcileFeed {
    fn slot(&self) -> MutexGuard<'_, Option<UnboundedSender<Request>>> {
        self.sender
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Offers one request; dropped when no controller listens.
    pub fn offer(&self, request: Request) {
        if let Some(sender) = self.slot().as_ref() {
            // A closed receiver means the controller is stopping; the request is not needed.
            let _ = sender.send(request);
        }
    }

    /// Starts listening: every RSG in `rsgs` is requested once, then every new offer.
    pub fn open(&self, rsgs: &RsgNames) -> UnboundedReceiver<Request> {
        let (sender, receiver) = mpsc::unbounded_channel();
        // Installed before the store is read, so nothing that changes in between is missed.
        *self.slot() = Some(sender.clone());
        for rsg in rsgs.state() {
            let _ = sender.send(retyped(&ObjectRef::from_obj(rsg.as_ref())));
        }
        receiver
    }

    /// Stops listening; later offers are dropped.
    pub fn close(&self) {
        *self.slot() = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector;

    fn reference(name: &str) -> Request {
        ObjectRef::new(name).within("ns")
    }

    #[test]
    fn offers_are_dropped_while_closed_and_delivered_while_open() {
        let feed = ReconcileFeed::default();
        let (store, _writer) = reflector::store();
        feed.offer(reference("before"));
        let mut receiver = feed.open(&store);
        feed.offer(reference("during"));
        feed.close();
        feed.offer(reference("after"));
        assert_eq!(receiver.try_recv().ok(), Some(reference("during")));
        assert!(receiver.try_recv().is_err());
    }
}
