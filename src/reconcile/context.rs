//! What every reconcile needs.

use std::sync::Arc;
use std::time::Duration;

use kube::api::Patch;
use kube::runtime::events::Event;

use super::event_recorder::EventRecorder;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, Resource, ResourceExt};

use super::conditions::{already_reported, with_condition, READY};
use super::event_queue::EventQueue;
use super::events::RsgEvent;
use super::memory::RsgMemory;
use super::{ObjectName, ReconcileError};
use crate::api::{ResourceScalingGroup, ResourceScalingGroupStatus};
use crate::authorship::Authorship;
use crate::boundary::TargetBoundary;
use crate::cache::Stores;
use crate::metrics::Metrics;
use crate::scale_down::PrometheusClient;
use crate::workload::WorkloadAccess;

/// Shared state of the controllers.
pub struct Context {
    /// API client.
    pub client: Client,
    /// The shared informer cache.
    pub stores: Stores,
    /// Workload I/O for every kind.
    pub workloads: WorkloadAccess,
    /// Publishes Events on RSGs, off the reconcile path.
    pub events: EventQueue,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Prometheus for scale-down decisions, when configured.
    pub prometheus: Option<PrometheusClient>,
    /// Where targets may live.
    pub boundary: TargetBoundary,
    /// Admission records and author re-checks; `None`: every stored RSG is acted on.
    pub authorship: Option<Authorship>,
    /// What is remembered about each RSG between reconciles.
    pub memory: RsgMemory,
}

impl Context {
    /// A context over `client` and `stores`.
    pub fn new(
        client: Client,
        stores: Stores,
        recorder: EventRecorder,
        metrics: Arc<Metrics>,
        prometheus: Option<PrometheusClient>,
        boundary: TargetBoundary,
    ) -> Self {
        Self {
            boundary,
            workloads: WorkloadAccess::new(client.clone()),
            client,
            stores,
            events: EventQueue::start(recorder, metrics.events_dropped.clone()),
            metrics,
            prometheus,
            authorship: None,
            memory: RsgMemory::default(),
        }
    }

    /// This context, acting only for RSGs `authorship` vouches for (when given).
    pub fn with_authorship(mut self, authorship: Option<Authorship>) -> Self {
        self.authorship = authorship;
        self
    }

    /// Queues `event` on `rsg` with `note` as its detail, to be published in order by the
    /// Event task; failures are logged, never fatal, and the reconcile does not wait.
    pub fn event(&self, rsg: &ResourceScalingGroup, event: RsgEvent<'_>, note: String) {
        let published = Event {
            type_: event.event_type(),
            reason: event.reason().to_string(),
            note: Some(note),
            action: event.action().to_string(),
            secondary: None,
        };
        self.events.publish(published, rsg.object_ref(&()));
    }

    /// Writes `status` to the RSG's status subresource with server-side apply, as the one
    /// field manager rsg has: rsg owns the whole status, and a field it no longer sets goes.
    /// Nothing is sent when `rsg` (the newest status there is, see
    /// [`Context::with_newest_status`]) already has it: a settled RSG costs no request.
    pub async fn write_status(
        &self,
        rsg: &ResourceScalingGroup,
        status: &ResourceScalingGroupStatus,
    ) -> Result<(), ReconcileError> {
        if rsg.status.as_ref() == Some(status) {
            return Ok(());
        }
        let namespace = rsg.namespace().unwrap_or_default();
        let api: Api<ResourceScalingGroup> = Api::namespaced(self.client.clone(), &namespace);
        let patch = serde_json::json!({
            "apiVersion": ResourceScalingGroup::api_version(&()),
            "kind": ResourceScalingGroup::kind(&()),
            "status": status,
        });
        api.patch_status(
            &rsg.name_any(),
            &crate::apply_params(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(|source| {
            let object = ObjectName::new("ResourceScalingGroup", &namespace, &rsg.name_any());
            ReconcileError::write_status(object, source)
        })?;
        self.memory
            .record_written(&ObjectRef::from_obj(rsg), status);
        Ok(())
    }

    /// `rsg` with the newest status there is: the one this process wrote last, when the
    /// cache does not show it yet. A reconcile builds on it, so a field carried over from
    /// the previous status (the last scale-down decision, the leader replicas last applied)
    /// is never lost to a cache that lags behind a write (the status is applied whole).
    pub fn with_newest_status(&self, rsg: &ResourceScalingGroup) -> ResourceScalingGroup {
        let mut newest = rsg.clone();
        // Only for this very RSG: one deleted and made again under its name starts afresh.
        let key = ObjectRef::from_obj(rsg);
        if let Some(status) = self.memory.written_unless_cached(&key, rsg.status.as_ref()) {
            newest.status = Some(status);
        }
        newest
    }

    /// Sets the Ready condition (and observedGeneration) only. Nothing is written when the
    /// condition already says this; a Warning Event goes out whenever a not-ready reason or
    /// message is new.
    pub async fn write_ready(
        &self,
        rsg: &ResourceScalingGroup,
        ready: bool,
        why: &str,
        message: String,
    ) -> Result<(), ReconcileError> {
        let mut status = rsg.status.clone().unwrap_or_default();
        let unchanged = status
            .conditions
            .iter()
            .any(|c| c.type_ == READY && c.reason == why && c.message == message)
            && status.observed_generation == rsg.metadata.generation;
        if unchanged {
            return Ok(());
        }
        if !ready {
            self.event(rsg, RsgEvent::Problem(why), message.clone());
        }
        status.observed_generation = rsg.metadata.generation;
        status.conditions = with_condition(
            status.conditions,
            READY,
            ready,
            why,
            message,
            rsg.metadata.generation,
        );
        self.write_status(rsg, &status).await
    }

    /// The delay before retrying `rsg` after a failure: 1s doubling to 5 minutes.
    pub fn next_backoff(&self, rsg: &ObjectRef<ResourceScalingGroup>) -> Duration {
        let count = self.memory.count_failure(rsg);
        Duration::from_secs(1u64 << (count - 1).min(8)).min(Duration::from_secs(300))
    }

    /// The delay before `rsg`, stopped again on a problem the user has to fix (a missing
    /// target), is looked at again: see [`super::backoff::problem_retry`].
    pub fn problem_backoff(&self, rsg: &ObjectRef<ResourceScalingGroup>) -> Duration {
        super::backoff::problem_retry(&rsg.to_string(), self.memory.problem_streak(rsg))
    }

    /// Forgets the problem streak of `rsg` once it gets past its problems.
    pub fn reset_problem_backoff(&self, rsg: &ObjectRef<ResourceScalingGroup>) {
        self.memory.end_problem_streak(rsg);
    }

    /// Makes sure every kind among `kinds` is watched (typed caches, or watches started on
    /// first use); false when one cannot be (its kind not served, or no cluster to watch).
    pub async fn watch_kinds(&self, kinds: &[crate::workload::WorkloadKind]) -> bool {
        let mut all = true;
        for kind in kinds.iter().filter(|k| !k.is_watched()) {
            all &= match self.workloads.api_resource(kind).await {
                Ok(ar) => self.stores.dynamic.ensure(&ar),
                Err(_) => false,
            };
        }
        all
    }

    /// Forgets the failures of `rsg` after a success.
    pub fn reset_backoff(&self, rsg: &ObjectRef<ResourceScalingGroup>) {
        self.memory.reset_failures(rsg);
    }
}

impl Context {
    /// Of `messages`, every problem this reconcile of `rsg` found, those not reported yet:
    /// neither in its stored Ready condition nor among the problems this process found in
    /// its previous reconcile of the same spec generation (the cached RSG may not show the
    /// status written moments ago). The memory is replaced, so a problem that goes away and
    /// comes back is news again.
    pub fn new_reports<'m>(
        &self,
        rsg: &ResourceScalingGroup,
        messages: &'m [String],
    ) -> Vec<&'m str> {
        let key = ObjectRef::from_obj(rsg);
        let generation = rsg.metadata.generation;
        let previous =
            self.memory
                .replace_reported(&key, generation, messages.iter().cloned().collect());
        messages
            .iter()
            .map(String::as_str)
            .filter(|m| !previous.contains(*m) && !already_reported(rsg, m))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reconcile_starts_from_the_status_written_last_not_a_lagging_cache() {
        use super::super::mock_api::{context, Call};
        let strategy = serde_json::json!({"type": "GroupReplication"});
        let stored = crate::fixtures::rsg_value("ns", "pd", Vec::new(), strategy.clone());
        let (ctx, recorded) = context(move |_: &Call| (200, stored.clone()));
        let cached = crate::fixtures::rsg("ns", "pd", Vec::new(), strategy);
        assert_eq!(ctx.with_newest_status(&cached).status, None);
        let written = ResourceScalingGroupStatus {
            current_replicas: 3,
            ..ResourceScalingGroupStatus::default()
        };
        ctx.write_status(&cached, &written).await.expect("written");
        assert_eq!(
            recorded.lines(),
            vec!["PATCH /apis/autoscaling.openfuyao.com/v1alpha1/namespaces/ns/resourcescalinggroups/pd/status"]
        );
        // The cache still shows no status; the reconcile sees the one written.
        assert_eq!(
            ctx.with_newest_status(&cached).status,
            Some(written.clone())
        );
        // Writing what the RSG already has sends nothing.
        ctx.write_status(&ctx.with_newest_status(&cached), &written)
            .await
            .expect("nothing to write");
        assert_eq!(recorded.lines().len(), 1, "{:?}", recorded.lines());
        let mut recreated = cached.clone();
        recreated.metadata.uid = Some("another-uid".into());
        assert_eq!(
            ctx.with_newest_status(&recreated).status,
            None,
            "an RSG made again under the same name starts afresh"
        );
        ctx.memory.forget_written();
        assert_eq!(ctx.with_newest_status(&cached).status, None);
    }
}
