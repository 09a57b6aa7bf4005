//! Leader election over a `coordination.k8s.io` Lease.
//!
//! Every replica serves the webhooks; only the replica holding the Lease reconciles. The
//! holder renews every retry period. The renew deadline is one budget per cycle, counted from
//! the start of the last renewal that succeeded (its `renewTime` is taken then, so a standby
//! trusts the claim no longer than that): no attempt may outlast it, and when it is spent the
//! holder steps down. It is shorter than the lease duration, so the holder has stopped before
//! anyone else may take over. A conflict on renewal is a failed attempt, not a loss: the next
//! read shows whether another replica really holds the Lease. On shutdown the holder
//! releases the Lease so a standby takes over at once.

mod record;

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::api::ObjectMeta;
use kube::{Api, Client};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use record::{claimed, decide, released, Fingerprint, Step};

/// Where the Lease lives and how it is timed.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (the pod name in a cluster).
    pub identity: String,
    /// How long a holder's claim is trusted without renewal.
    pub lease_duration: Duration,
    /// How long the holder keeps leading while renewals fail.
    pub renew_deadline: Duration,
    /// How often the Lease is tried or renewed.
    pub retry_period: Duration,
}

/// Why one try on the Lease failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The Lease could not be read or written.
    #[error("{action} Lease {namespace}/{name}: {source}")]
    Api {
        /// What was being done.
        action: &'static str,
        /// Lease namespace.
        namespace: String,
        /// Lease name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// The try took longer than the renew deadline.
    #[error("Lease request took longer than {0:?}")]
    Timeout(Duration),
}

/// What one try on the Lease found.
enum Outcome {
    Leading,
    Following(String),
}

/// Tries for and renews the Lease, publishing whether this replica leads.
pub struct Elector {
    api: Api<Lease>,
    settings: LeaseSettings,
    observed: Option<(Fingerprint, Instant)>,
}

impl Elector {
    /// An elector for `settings`.
    pub fn new(client: Client, settings: LeaseSettings) -> Self {
        Self {
            api: Api::namespaced(client, &settings.namespace),
            settings,
            observed: None,
        }
    }

    fn api_error(&self, action: &'static str, source: kube::Error) -> LeaderError {
        LeaderError::Api {
            action,
            namespace: self.settings.namespace.clone(),
            name: self.settings.name.clone(),
            source,
        }
    }

    fn observe(&mut self, fingerprint: Fingerprint) {
        if self.observed.as_ref().map(|(seen, _)| seen) != Some(&fingerprint) {
            self.observed = Some((fingerprint, Instant::now()));
        }
    }

    /// Reads the Lease and creates, renews or takes it over when the rules allow.
    async fn try_once(&mut self) -> Result<Outcome, LeaderError> {
        let settings = self.settings.clone();
        let current = self
            .api
            .get_opt(&settings.name)
            .await
            .map_err(|e| self.api_error("reading", e))?;
        let spec = current.as_ref().map(|l| l.spec.clone().unwrap_or_default());
        if let Some(spec) = &spec {
            self.observe(Fingerprint::of(spec));
        }
        let unchanged_for = self
            .observed
            .as_ref()
            .map(|(_, at)| at.elapsed())
            .unwrap_or_default();
        let step = decide(
            spec.as_ref(),
            &settings.identity,
            unchanged_for,
            settings.lease_duration,
        );
        let now = Timestamp::now();
        let written = match (&step, current) {
            (Step::Follow { holder }, _) => return Ok(Outcome::Following(holder.clone())),
            (Step::Create, _) | (_, None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(settings.name.clone()),
                        namespace: Some(settings.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(claimed(
                        None,
                        &Step::Create,
                        &settings.identity,
                        settings.lease_duration,
                        now,
                    )),
                };
                self.api.create(&crate::create_params(), &lease).await
            }
            (_, Some(mut lease)) => {
                lease.spec = Some(claimed(
                    spec.as_ref(),
                    &step,
                    &settings.identity,
                    settings.lease_duration,
                    now,
                ));
                // The resourceVersion read above makes this a compare-and-swap.
                self.api
                    .replace(&settings.name, &crate::create_params(), &lease)
                    .await
            }
        };
        match written {
            Ok(lease) => {
                if let Some(spec) = &lease.spec {
                    self.observe(Fingerprint::of(spec));
                }
                Ok(Outcome::Leading)
            }
            // Another write came first: the next read says who holds the Lease.
            Err(err) => Err(self.api_error("writing", err)),
        }
    }

    /// Releases the Lease if this replica still holds it.
    async fn release(&mut self) {
        let lease = match self.api.get_opt(&self.settings.name).await {
            Ok(Some(lease)) => lease,
            Ok(None) => return,
            Err(err) => {
                warn!(error = %err, "could not read the Lease to release it");
                return;
            }
        };
        let Some(spec) = lease.spec.clone() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return;
        }
        let mut update = lease;
        update.spec = Some(released(&spec, Timestamp::now()));
        match self
            .api
            .replace(&self.settings.name, &crate::create_params(), &update)
            .await
        {
            Ok(_) => info!("released the Lease"),
            Err(err) => {
                warn!(error = %err, "could not release the Lease; a standby takes over when it expires")
            }
        }
    }

    /// Runs until `stop` fires, publishing leadership on `leading`; releases the Lease at the end.
    pub async fn run(mut self, leading: watch::Sender<bool>, stop: CancellationToken) {
        let settings = self.settings.clone();
        info!(
            lease = %format!("{}/{}", settings.namespace, settings.name),
            identity = %settings.identity,
            "waiting to lead; serving the webhooks meanwhile"
        );
        // While leading: when the last renewal that succeeded started.
        let mut renewed_at: Option<Instant> = None;
        let mut last_holder = String::new();
        let mut last_error = String::new();
        loop {
            let started = Instant::now();
            // A standby's try gets the whole deadline; the holder's, what is left of it.
            let budget = match renewed_at {
                Some(at) => settings.renew_deadline.saturating_sub(at.elapsed()),
                None => settings.renew_deadline,
            };
            let attempt = match tokio::time::timeout(budget, self.try_once()).await {
                Ok(result) => result,
                Err(_) => Err(LeaderError::Timeout(settings.renew_deadline)),
            };
            let is_leading = *leading.borrow();
            match attempt {
                Ok(Outcome::Leading) => {
                    last_error.clear();
                    renewed_at = Some(started);
                    if !is_leading {
                        info!(identity = %settings.identity, "acquired the Lease; reconciling");
                        leading.send_replace(true);
                    }
                }
                Ok(Outcome::Following(holder)) => {
                    last_error.clear();
                    renewed_at = None;
                    if is_leading {
                        warn!(holder = %holder, "the Lease was taken over; stopping the controllers");
                        leading.send_replace(false);
                    } else if holder != last_holder {
                        info!(holder = %holder, "another replica leads");
                    }
                    last_holder = holder;
                }
                Err(err) => {
                    let spent = renewed_at.is_none_or(|at| at.elapsed() >= settings.renew_deadline);
                    if is_leading && spent {
                        warn!(error = %err, "could not renew the Lease in time; stopping the controllers");
                        leading.send_replace(false);
                        renewed_at = None;
                    } else if err.to_string() != last_error {
                        // A standby that cannot reach or may not use the Lease never leads:
                        // say so once per distinct error rather than at debug level.
                        warn!(error = %err, "Lease try failed; retrying");
                    } else {
                        debug!(error = %err, "Lease try failed; retrying");
                    }
                    last_error = err.to_string();
                }
            }
            // The next try comes a retry period later, but never after the holder's deadline.
            let pause = match renewed_at {
                Some(at) => settings
                    .retry_period
                    .min(settings.renew_deadline.saturating_sub(at.elapsed())),
                None => settings.retry_period,
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.cancelled() => break,
            }
        }
        if renewed_at.is_some() {
            self.release().await;
        }
    }
}
