//! What every reconcile needs.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::Patch;
use kube::runtime::events::{Event, Recorder};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, Resource, ResourceExt};

use super::conditions::{already_reported, with_condition, READY};
use super::events::RsgEvent;
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
    /// Publishes Events on RSGs.
    pub recorder: Recorder,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Prometheus for scale-down decisions, when configured.
    pub prometheus: Option<PrometheusClient>,
    /// Where targets may live.
    pub boundary: TargetBoundary,
    /// Admission records and author re-checks; `None`: every stored RSG is acted on.
    pub authorship: Option<Authorship>,
    /// Consecutive failures per RSG, for backoff.
    failures: Mutex<HashMap<ObjectRef<ResourceScalingGroup>, u32>>,
    /// Copy names found taken by objects the RSG did not make; checked before creating.
    name_conflicts: Mutex<HashMap<ObjectRef<ResourceScalingGroup>, BTreeSet<String>>>,
    /// The problems each RSG's latest reconcile found.
    reported: Mutex<HashMap<ObjectRef<ResourceScalingGroup>, Reported>>,
    /// Since when each RSG has been stopped on a problem the user has to fix.
    problem_streaks: Mutex<HashMap<ObjectRef<ResourceScalingGroup>, std::time::Instant>>,
    /// The status this process last wrote for each RSG while leading, with the RSG's uid.
    /// rsg alone writes RSG status, so it is the newest there is; the cache may not show it.
    written: Mutex<HashMap<ObjectRef<ResourceScalingGroup>, Written>>,
}

/// A status written, and the uid of the RSG it was written for.
type Written = (Option<String>, ResourceScalingGroupStatus);

/// The problem messages one reconcile found, and the spec generation it reconciled.
type Reported = (Option<i64>, BTreeSet<String>);

/// RSGs whose latest problems are remembered; past it the memory starts afresh.
const MAX_REMEMBERED_REPORTS: usize = 10_000;

impl Context {
    /// A context over `client` and `stores`.
    pub fn new(
        client: Client,
        stores: Stores,
        recorder: Recorder,
        metrics: Arc<Metrics>,
        prometheus: Option<PrometheusClient>,
        boundary: TargetBoundary,
    ) -> Self {
        Self {
            boundary,
            workloads: WorkloadAccess::new(client.clone()),
            client,
            stores,
            recorder,
            metrics,
            prometheus,
            authorship: None,
            failures: Mutex::new(HashMap::new()),
            name_conflicts: Mutex::new(HashMap::new()),
            reported: Mutex::new(HashMap::new()),
            problem_streaks: Mutex::new(HashMap::new()),
            written: Mutex::new(HashMap::new()),
        }
    }

    /// This context, acting only for RSGs `authorship` vouches for (when given).
    pub fn with_authorship(mut self, authorship: Option<Authorship>) -> Self {
        self.authorship = authorship;
        self
    }

    /// Publishes `event` on `rsg` with `note` as its detail; failures are logged, never fatal.
    pub async fn event(&self, rsg: &ResourceScalingGroup, event: RsgEvent<'_>, note: String) {
        let published = Event {
            type_: event.event_type(),
            reason: event.reason().to_string(),
            note: Some(note),
            action: event.action().to_string(),
            secondary: None,
        };
        let reason = event.reason();
        if let Err(err) = self
            .recorder
            .publish(&published, &rsg.object_ref(&()))
            .await
        {
            tracing::warn!(error = %err, reason, "could not publish an Event");
        }
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
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        let key = ObjectRef::from_obj(rsg);
        if written.len() >= MAX_REMEMBERED_REPORTS && !written.contains_key(&key) {
            written.clear();
        }
        written.insert(key, (rsg.uid(), status.clone()));
        Ok(())
    }

    /// `rsg` with the newest status there is: the one this process wrote last, when the
    /// cache does not show it yet. A reconcile builds on it, so a field carried over from
    /// the previous status (the last scale-down decision, the leader replicas last applied)
    /// is never lost to a cache that lags behind a write (the status is applied whole).
    pub fn with_newest_status(&self, rsg: &ResourceScalingGroup) -> ResourceScalingGroup {
        let mut newest = rsg.clone();
        if let Some(status) = self
            .written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ObjectRef::from_obj(rsg))
            .filter(|(uid, _)| *uid == rsg.uid())
            .map(|(_, status)| status)
        {
            // Only for this very RSG: one deleted and made again under its name starts afresh.
            newest.status = Some(status.clone());
        }
        newest
    }

    /// Forgets the statuses written: at the start of each term as leader, since another
    /// replica may have written since.
    pub fn forget_written_statuses(&self) {
        self.written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
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
            self.event(rsg, RsgEvent::Problem(why), message.clone())
                .await;
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
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let count = failures.entry(rsg.clone()).or_insert(0);
        *count = count.saturating_add(1);
        Duration::from_secs(1u64 << (*count - 1).min(8)).min(Duration::from_secs(300))
    }

    /// The delay before `rsg`, stopped again on a problem the user has to fix (a missing
    /// target), is looked at again: see [`super::backoff::problem_retry`].
    pub fn problem_backoff(&self, rsg: &ObjectRef<ResourceScalingGroup>) -> Duration {
        let mut streaks = self
            .problem_streaks
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let since = *streaks
            .entry(rsg.clone())
            .or_insert_with(std::time::Instant::now);
        super::backoff::problem_retry(&rsg.to_string(), since.elapsed())
    }

    /// Forgets the problem streak of `rsg` once it gets past its problems.
    pub fn reset_problem_backoff(&self, rsg: &ObjectRef<ResourceScalingGroup>) {
        self.problem_streaks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(rsg);
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
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(rsg);
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
        let mut reported = self.reported.lock().unwrap_or_else(|p| p.into_inner());
        let previous = reported
            .get(&key)
            .filter(|(seen, _)| *seen == generation)
            .map(|(_, messages)| messages.clone())
            .unwrap_or_default();
        if reported.len() >= MAX_REMEMBERED_REPORTS && !reported.contains_key(&key) {
            reported.clear();
        }
        reported.insert(key, (generation, messages.iter().cloned().collect()));
        messages
            .iter()
            .map(String::as_str)
            .filter(|m| !previous.contains(*m) && !already_reported(rsg, m))
            .collect()
    }

    /// Whether `name` was found taken for `rsg` before.
    pub fn is_known_conflict(&self, rsg: &ObjectRef<ResourceScalingGroup>, name: &str) -> bool {
        self.name_conflicts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(rsg)
            .is_some_and(|names| names.contains(name))
    }

    /// Forgets everything remembered about RSGs for which `exists` is false (deleted ones):
    /// backoffs, taken names and reported problems. Returns how many were forgotten.
    pub fn forget_gone(&self, exists: impl Fn(&ObjectRef<ResourceScalingGroup>) -> bool) -> usize {
        let mut forgotten = BTreeSet::new();
        let mut keep = |key: &ObjectRef<ResourceScalingGroup>| {
            let keep = exists(key);
            if !keep {
                forgotten.insert(key.to_string());
            }
            keep
        };
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|key, _| keep(key));
        self.name_conflicts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|key, names| keep(key) && !names.is_empty());
        self.reported
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|key, _| keep(key));
        self.problem_streaks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|key, _| keep(key));
        self.written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|key, _| keep(key));
        forgotten.len()
    }

    /// Records (`taken`) or forgets a taken copy name.
    pub fn set_conflict(&self, rsg: &ObjectRef<ResourceScalingGroup>, name: &str, taken: bool) {
        let mut conflicts = self
            .name_conflicts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let names = conflicts.entry(rsg.clone()).or_default();
        if taken {
            names.insert(name.to_string());
        } else {
            names.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A context whose API answers every call with 503 (no test here reaches the API).
    fn offline_context() -> Context {
        super::super::mock_api::context(|_| {
            super::super::mock_api::status(503, "ServiceUnavailable")
        })
        .0
    }

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
        ctx.forget_written_statuses();
        assert_eq!(ctx.with_newest_status(&cached).status, None);
    }

    #[tokio::test]
    async fn state_of_deleted_rsgs_is_forgotten() {
        let ctx = offline_context();
        let kept = ObjectRef::new("kept").within("ns");
        let gone = ObjectRef::new("gone").within("ns");
        for rsg in [&kept, &gone] {
            ctx.next_backoff(rsg);
            ctx.set_conflict(rsg, "pd-llm-prefill-2", true);
        }
        assert_eq!(ctx.forget_gone(|key| *key == kept), 1);
        assert!(ctx.is_known_conflict(&kept, "pd-llm-prefill-2"));
        assert!(!ctx.is_known_conflict(&gone, "pd-llm-prefill-2"));
        // The backoff of the deleted RSG starts afresh; the kept one goes on doubling.
        assert_eq!(ctx.next_backoff(&gone), Duration::from_secs(1));
        assert_eq!(ctx.next_backoff(&kept), Duration::from_secs(2));
        assert_eq!(ctx.forget_gone(|_| true), 0);
    }
}
