//! The [`Notifier`]: writes pending events into the store, sends them, and scans for those left.
//!
//! A pending event is one small JSON object, `{prefix}{webhook-id}.json`, holding the body, when
//! it was first written and how many scan attempts it had. When it is next due follows from the
//! object alone, so every replica agrees without talking to the others: its `LastModified` plus
//! the grace period (no scan attempt yet: the replica that wrote it tries first) or plus the
//! backoff of its attempts (doubling, capped at an hour, with a jitter fixed by the id and the
//! attempt so all replicas wait alike). A scan attempt first writes the event back with one more
//! attempt — a lease: other replicas now wait a whole backoff — then posts it. A 2xx deletes it;
//! an event still failing once older than the give-up age is moved to `{prefix}failed/` and
//! counted as failed. Two replicas may still send one event twice (both read it before either
//! leased it); the application drops the second by its `webhook-id`.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{MAX_BACKOFF, NotifyConfig};
use crate::metrics::Metrics;
use crate::store::{ListedObject, Store, StoreError};

/// A pending event as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    /// The `webhook-id`.
    id: String,
    /// Unix seconds when the completion first wrote it.
    created: u64,
    /// Scan attempts so far (the writer's first attempt is not counted).
    attempts: u32,
    /// The exact body that is signed and sent.
    body: String,
}

/// Delivers completion events for one replica. Shared by the completion routes (through the
/// state) and the background scan ([`Notifier::run`]).
pub struct Notifier {
    config: NotifyConfig,
    client: reqwest::Client,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    /// Deliveries in flight (`--notify-max-in-flight`).
    slots: Arc<Semaphore>,
    /// Ids this replica is delivering now, so its scan does not send them a second time.
    busy: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a token of the application's; the secret never shows.
        f.debug_struct("Notifier")
            .field("prefix", &self.config.prefix)
            .finish_non_exhaustive()
    }
}

/// One event this replica is delivering: a slot and its id marked busy, both freed on drop.
struct Claim {
    notifier: Arc<Notifier>,
    id: String,
    _slot: OwnedSemaphorePermit,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.notifier.busy_set().remove(&self.id);
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Notifier {
    /// A notifier writing to and reading from `store`, counting into `metrics`.
    pub fn new(
        config: NotifyConfig,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        let client = crate::http_client()
            .timeout(config.timeout)
            // The specification counts a 3xx as a failure: the URL should be fixed instead.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the notify client: {e}"))?;
        Ok(Self {
            slots: Arc::new(Semaphore::new(config.max_in_flight.max(1) as usize)),
            config,
            client,
            store,
            metrics,
            busy: Mutex::new(HashSet::new()),
        })
    }

    /// What it was configured with.
    pub fn config(&self) -> &NotifyConfig {
        &self.config
    }

    /// One line for the start-up log.
    pub fn describe(&self) -> String {
        format!(
            "completion events on: pending events under {:?}, scanned every {} ms, given up \
             after {} s",
            self.config.prefix,
            self.config.scan_every.as_millis(),
            self.config.give_up_after.as_secs()
        )
    }

    fn key(&self, id: &str) -> String {
        format!("{}{id}.json", self.config.prefix)
    }

    fn busy_set(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // The set stays consistent even if a holder panicked: inserts and removes are atomic.
        self.busy.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Claims `id` with `slot`, unless this replica is delivering it already.
    fn claim(self: &Arc<Self>, id: &str, slot: OwnedSemaphorePermit) -> Option<Claim> {
        self.busy_set().insert(id.to_owned()).then(|| Claim {
            notifier: self.clone(),
            id: id.to_owned(),
            _slot: slot,
        })
    }

    /// Writes the event `id` with `body` to the store, then tries it once in the background if a
    /// slot is free (otherwise a scan sends it after the grace period).
    pub(crate) async fn enqueue(
        self: &Arc<Self>,
        id: String,
        body: String,
    ) -> Result<(), StoreError> {
        let pending = Pending {
            id,
            created: now_secs(),
            attempts: 0,
            body,
        };
        self.write(&pending).await?;
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            return Ok(());
        };
        if let Some(claim) = self.claim(&pending.id, slot) {
            let notifier = self.clone();
            tokio::spawn(async move {
                match notifier.post(&pending).await {
                    Ok(()) => notifier.delivered(&pending).await,
                    Err(why) => notifier.will_retry(&pending, &why),
                }
                drop(claim);
            });
        }
        Ok(())
    }

    async fn write(&self, pending: &Pending) -> Result<(), StoreError> {
        // Serializing strings and numbers cannot fail.
        let bytes = serde_json::to_vec(pending).unwrap_or_default();
        self.store.write_object(&self.key(&pending.id), bytes).await
    }

    /// Sends `pending` once: `Ok` when the application answered 2xx, else why not.
    async fn post(&self, pending: &Pending) -> Result<(), String> {
        let timestamp = now_secs();
        let signature = self
            .config
            .secret
            .signature(&pending.id, timestamp, &pending.body);
        let sent = self
            .client
            .post(&self.config.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &pending.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(pending.body.clone())
            .send()
            .await;
        match sent {
            Ok(res) if res.status().is_success() => Ok(()),
            Ok(res) => Err(format!("the application answered {}", res.status())),
            // Without the URL: it may carry a token of the application's.
            Err(e) => Err(format!(
                "the application could not be reached: {}",
                e.without_url()
            )),
        }
    }

    fn will_retry(&self, pending: &Pending, why: &str) {
        self.metrics.events_retried.inc();
        tracing::warn!(
            event = %pending.id, attempts = pending.attempts,
            "completion event not delivered ({why}); it is tried again later"
        );
    }

    /// The application took `pending`: forget it. A failed delete only means one more delivery
    /// (same `webhook-id`) later.
    async fn delivered(&self, pending: &Pending) {
        self.metrics.events_delivered.inc();
        tracing::info!(event = %pending.id, "completion event delivered");
        if let Err(e) = self.store.delete_object(&self.key(&pending.id)).await {
            tracing::warn!(
                event = %pending.id,
                "a delivered completion event could not be deleted ({e}); it will be sent again"
            );
        }
    }

    /// How long after its last write an event with `attempts` scan attempts is due.
    fn delay(&self, id: &str, attempts: u32) -> Duration {
        if attempts == 0 {
            return self.config.grace;
        }
        let doubled = self
            .config
            .backoff
            .saturating_mul(1u32 << (attempts - 1).min(20));
        // Jitter of up to a quarter, fixed by the id and the attempt so that replicas agree and
        // events that failed together spread out.
        let spread = {
            use sha2::{Digest, Sha256};
            let digest = Sha256::new()
                .chain_update(id.as_bytes())
                .chain_update(attempts.to_be_bytes())
                .finalize();
            f64::from(digest[0]) / 255.0
        };
        doubled.min(MAX_BACKOFF).mul_f64(1.0 - 0.25 * spread)
    }

    /// Scans at once and then every `scan_every` until `shutdown` resolves. A scan cut short is
    /// safe: the events stay in the store.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            if let Err(e) = self.scan().await {
                tracing::warn!("cannot scan the pending completion events: {e}");
            }
            tokio::select! {
                () = tokio::time::sleep(self.config.scan_every) => {}
                () = &mut shutdown => return,
            }
        }
    }

    /// Lists the pending events and starts a delivery of each one past its grace period that
    /// this replica is not delivering yet, waiting for a slot when all are taken. Answers how
    /// many were pending.
    pub async fn scan(self: &Arc<Self>) -> Result<usize, StoreError> {
        let mut pending: Vec<ListedObject> = self
            .store
            .list_objects(&self.config.prefix)
            .await?
            .into_iter()
            // Given-up events wait in failed/ for an operator, not listed for this scan.
            .filter(|o| o.key.ends_with(".json"))
            .collect();
        self.metrics
            .events_pending
            .set(i64::try_from(pending.len()).unwrap_or(i64::MAX));
        let count = pending.len();
        pending.sort_by_key(|o| o.last_modified);
        let now = SystemTime::now();
        for object in pending {
            if object.last_modified + self.config.grace > now {
                continue;
            }
            let id = &object.key[self.config.prefix.len()..object.key.len() - ".json".len()];
            if self.busy_set().contains(id) {
                continue;
            }
            let Ok(slot) = self.slots.clone().acquire_owned().await else {
                break;
            };
            let Some(claim) = self.claim(id, slot) else {
                continue;
            };
            let notifier = self.clone();
            tokio::spawn(async move {
                if let Err(e) = notifier.attempt(&object).await {
                    tracing::warn!(key = %object.key, "completion event attempt failed: {e}");
                }
                drop(claim);
            });
        }
        Ok(count)
    }

    /// Reads the listed event and, when due, leases it and sends it.
    async fn attempt(&self, object: &ListedObject) -> Result<(), StoreError> {
        let Some(bytes) = self.store.read_object(&object.key).await? else {
            // Another replica delivered it since the listing.
            return Ok(());
        };
        let mut pending: Pending = match serde_json::from_slice(&bytes) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(key = %object.key, "not a pending completion event ({e}); left as is");
                return Ok(());
            }
        };
        if object.last_modified + self.delay(&pending.id, pending.attempts) > SystemTime::now() {
            return Ok(());
        }
        pending.attempts += 1;
        self.write(&pending).await?;
        match self.post(&pending).await {
            Ok(()) => self.delivered(&pending).await,
            Err(why) => {
                let age = now_secs().saturating_sub(pending.created);
                if age >= self.config.give_up_after.as_secs() {
                    self.give_up(&pending, &why).await?;
                } else {
                    self.will_retry(&pending, &why);
                }
            }
        }
        Ok(())
    }

    /// Moves an event that kept failing to `{prefix}failed/`, where scans do not look: kept for
    /// an operator to replay (copy it back) once the application is fixed, never lost silently.
    async fn give_up(&self, pending: &Pending, why: &str) -> Result<(), StoreError> {
        let failed = format!("{}failed/{}.json", self.config.prefix, pending.id);
        let bytes = serde_json::to_vec(pending).unwrap_or_default();
        self.store.write_object(&failed, bytes).await?;
        self.store.delete_object(&self.key(&pending.id)).await?;
        self.metrics.events_failed.inc();
        tracing::error!(
            event = %pending.id, attempts = pending.attempts, kept = %failed,
            "completion event given up after {} s of failed deliveries (last: {why})",
            self.config.give_up_after.as_secs()
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::WebhookSecret;

    #[test]
    fn the_backoff_doubles_with_a_bounded_jitter_and_stops_at_an_hour() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let config = NotifyConfig {
            backoff: Duration::from_secs(10),
            ..NotifyConfig::new("http://127.0.0.1:9/", secret)
        };
        let store = Arc::new(crate::FakeStore::new());
        let n = Notifier::new(config, store, Arc::new(Metrics::new())).unwrap();
        assert_eq!(n.delay("upload_a", 0), Duration::from_secs(30), "the grace");
        for attempts in 1..=40 {
            let full = Duration::from_secs(10)
                .saturating_mul(1 << (attempts - 1).min(20))
                .min(MAX_BACKOFF);
            let d = n.delay("upload_a", attempts);
            assert!(d <= full && d >= full.mul_f64(0.75), "{attempts}: {d:?}");
            assert_eq!(
                d,
                n.delay("upload_a", attempts),
                "every replica waits alike"
            );
        }
        let spread: HashSet<Duration> = (0..20)
            .map(|i| n.delay(&format!("upload_{i}"), 3))
            .collect();
        assert!(
            spread.len() > 10,
            "events that failed together spread out: {spread:?}"
        );
    }
}
