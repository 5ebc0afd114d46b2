//! Prometheus metrics, kept in the [`AppState`](crate::AppState) (no process-global recorder, so
//! every state, and every test, has its own) and rendered at `GET /metrics`.
//!
//! Store calls are timed and their failures counted by [`MeteredStore`], a [`Store`] decorator
//! the state wraps around the configured store; it also counts the uploads created, completed and
//! aborted and the parts signed. The complete handler adds the bytes; the background sweeper
//! (`ops::sweeper`) counts its sweeps and what they freed; the completion events' notifier
//! (`events`) what it delivered, retried and gave up, and what it found pending.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use s3_direct_protocol::wire::{ChecksumAlgorithm, CompletedPart, ListedPart};

use crate::store::{
    Completed, ListedObject, NewUpload, ObjectHead, PartProbe, PartSigning, PostSigning, Presigned,
    PresignedPost, PutSigning, Store, StoreError,
};

/// The `operation` label of store metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabel {
    pub operation: &'static str,
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    pub uploads_created: Counter,
    pub uploads_completed: Counter,
    pub uploads_aborted: Counter,
    pub parts_signed: Counter,
    pub bytes_completed: Counter,
    pub store_latency: Family<OperationLabel, Histogram>,
    pub store_errors: Family<OperationLabel, Counter>,
    pub signing_latency: Histogram,
    /// The background sweeper (`serve --sweep-older-than`): sweeps finished, skipped (one still
    /// running) and failed, and what they freed.
    pub sweeps: Counter,
    pub sweeps_skipped: Counter,
    pub sweep_errors: Counter,
    pub sweep_uploads_aborted: Counter,
    pub sweep_parts_freed: Counter,
    pub sweep_bytes_freed: Counter,
    /// Completion events (`--notify-url`, `events.rs`): accepted by the application (2xx),
    /// attempts that failed and will be tried again, events given up on, and the events pending
    /// in the store as the last scan saw them.
    pub events_delivered: Counter,
    pub events_retried: Counter,
    pub events_failed: Counter,
    pub events_pending: Gauge,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("s3direct");
        let uploads_created = Counter::default();
        let uploads_completed = Counter::default();
        let uploads_aborted = Counter::default();
        let parts_signed = Counter::default();
        let bytes_completed = Counter::default();
        let store_latency = Family::<OperationLabel, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let store_errors = Family::<OperationLabel, Counter>::default();
        let signing_latency = latency_histogram();
        let sweeps = Counter::default();
        let sweeps_skipped = Counter::default();
        let sweep_errors = Counter::default();
        let sweep_uploads_aborted = Counter::default();
        let sweep_parts_freed = Counter::default();
        let sweep_bytes_freed = Counter::default();
        let events_delivered = Counter::default();
        let events_retried = Counter::default();
        let events_failed = Counter::default();
        let events_pending = Gauge::default();
        registry.register(
            "uploads_created",
            "Multipart uploads created",
            uploads_created.clone(),
        );
        registry.register(
            "uploads_completed",
            "Multipart uploads completed",
            uploads_completed.clone(),
        );
        registry.register(
            "uploads_aborted",
            "Multipart uploads aborted (by the caller, or by the server for a broken plan)",
            uploads_aborted.clone(),
        );
        registry.register("parts_signed", "Part URLs presigned", parts_signed.clone());
        registry.register(
            "bytes_completed",
            "Bytes of completed uploads: the stored part sizes when the server listed them, \
             else the declared size, else nothing",
            bytes_completed.clone(),
        );
        registry.register(
            "store_call_duration_seconds",
            "Latency of store calls by operation",
            store_latency.clone(),
        );
        registry.register(
            "store_errors",
            "Failed store calls by operation",
            store_errors.clone(),
        );
        registry.register(
            "signing_duration_seconds",
            "Latency of presigning one URL",
            signing_latency.clone(),
        );
        registry.register(
            "sweeps",
            "Sweeps of abandoned uploads finished",
            sweeps.clone(),
        );
        registry.register(
            "sweeps_skipped",
            "Sweeps skipped because the previous one was still running",
            sweeps_skipped.clone(),
        );
        registry.register("sweep_errors", "Sweeps that failed", sweep_errors.clone());
        registry.register(
            "sweep_uploads_aborted",
            "Abandoned uploads the sweeper aborted",
            sweep_uploads_aborted.clone(),
        );
        registry.register(
            "sweep_parts_freed",
            "Parts of the uploads the sweeper aborted",
            sweep_parts_freed.clone(),
        );
        registry.register(
            "sweep_bytes_freed",
            "Bytes stored by the uploads the sweeper aborted",
            sweep_bytes_freed.clone(),
        );
        registry.register(
            "events_delivered",
            "Completion events the application accepted (answered 2xx)",
            events_delivered.clone(),
        );
        registry.register(
            "events_retried",
            "Completion event deliveries that failed and will be tried again",
            events_retried.clone(),
        );
        registry.register(
            "events_failed",
            "Completion events given up on after --notify-give-up-after (kept under the events \
             prefix's failed/)",
            events_failed.clone(),
        );
        registry.register(
            "events_pending",
            "Completion events waiting in the store, as this replica's last scan found them",
            events_pending.clone(),
        );
        Self {
            registry,
            uploads_created,
            uploads_completed,
            uploads_aborted,
            parts_signed,
            bytes_completed,
            store_latency,
            store_errors,
            signing_latency,
            sweeps,
            sweeps_skipped,
            sweep_errors,
            sweep_uploads_aborted,
            sweep_parts_freed,
            sweep_bytes_freed,
            events_delivered,
            events_retried,
            events_failed,
            events_pending,
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    fn observe<T>(
        &self,
        operation: &'static str,
        started: Instant,
        result: &Result<T, StoreError>,
    ) {
        let label = OperationLabel { operation };
        self.store_latency
            .get_or_create(&label)
            .observe(started.elapsed().as_secs_f64());
        if result.is_err() {
            self.store_errors.get_or_create(&label).inc();
        }
    }

    /// Records one signing call: its latency, and a store error labelled `operation` if it failed.
    fn observe_signing<T>(
        &self,
        operation: &'static str,
        started: Instant,
        result: &Result<T, StoreError>,
    ) {
        self.signing_latency
            .observe(started.elapsed().as_secs_f64());
        if result.is_err() {
            self.store_errors
                .get_or_create(&OperationLabel { operation })
                .inc();
        }
    }
}

/// A [`Store`] that times every call of the store it wraps and counts its failures.
#[derive(Debug)]
pub struct MeteredStore {
    inner: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl MeteredStore {
    pub fn new(inner: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

#[async_trait]
impl Store for MeteredStore {
    fn bucket(&self) -> &str {
        self.inner.bucket()
    }

    fn object_location(&self, key: &str) -> String {
        self.inner.object_location(key)
    }

    fn max_key_bytes(&self) -> usize {
        self.inner.max_key_bytes()
    }

    fn verified_checksum(&self) -> Option<ChecksumAlgorithm> {
        self.inner.verified_checksum()
    }

    /// Not counted: a probe is no upload.
    async fn probe_checksum(
        &self,
        key: &str,
        algorithm: ChecksumAlgorithm,
    ) -> Result<PartProbe, StoreError> {
        self.inner.probe_checksum(key, algorithm).await
    }

    async fn create_multipart(&self, upload: NewUpload) -> Result<String, StoreError> {
        let started = Instant::now();
        let r = self.inner.create_multipart(upload).await;
        self.metrics.observe("create_multipart", started, &r);
        if r.is_ok() {
            self.metrics.uploads_created.inc();
        }
        r
    }

    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        lifetime: Duration,
        signing: &PartSigning,
    ) -> Result<Presigned, StoreError> {
        let started = Instant::now();
        let r = self
            .inner
            .presign_part(key, upload_id, part_number, lifetime, signing)
            .await;
        self.metrics.observe_signing("presign_part", started, &r);
        if r.is_ok() {
            self.metrics.parts_signed.inc();
        }
        r
    }

    async fn presign_parts(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(u32, PartSigning)],
        lifetime: Duration,
    ) -> Result<Vec<Presigned>, StoreError> {
        let started = Instant::now();
        let r = self
            .inner
            .presign_parts(key, upload_id, parts, lifetime)
            .await;
        match &r {
            Ok(signed) if !signed.is_empty() => {
                // The histogram is per URL: each URL of the batch counts with its share of the
                // call's time.
                let count = signed.len() as u64;
                let each = started.elapsed().as_secs_f64() / signed.len() as f64;
                for _ in 0..count {
                    self.metrics.signing_latency.observe(each);
                }
                self.metrics.parts_signed.inc_by(count);
            }
            Ok(_) => {}
            Err(_) => {
                self.metrics
                    .store_errors
                    .get_or_create(&OperationLabel {
                        operation: "presign_part",
                    })
                    .inc();
            }
        }
        r
    }

    async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<ListedPart>, StoreError> {
        let started = Instant::now();
        let r = self.inner.list_parts(key, upload_id).await;
        self.metrics.observe("list_parts", started, &r);
        r
    }

    async fn complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<Completed, StoreError> {
        let started = Instant::now();
        let r = self.inner.complete(key, upload_id, parts).await;
        self.metrics.observe("complete", started, &r);
        if r.is_ok() {
            self.metrics.uploads_completed.inc();
        }
        r
    }

    async fn abort(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        let started = Instant::now();
        let r = self.inner.abort(key, upload_id).await;
        self.metrics.observe("abort", started, &r);
        if r.is_ok() {
            self.metrics.uploads_aborted.inc();
        }
        r
    }

    async fn head_object(&self, key: &str) -> Result<Option<ObjectHead>, StoreError> {
        let started = Instant::now();
        let r = self.inner.head_object(key).await;
        self.metrics.observe("head_object", started, &r);
        r
    }

    async fn delete_object(&self, key: &str) -> Result<(), StoreError> {
        let started = Instant::now();
        let r = self.inner.delete_object(key).await;
        self.metrics.observe("delete_object", started, &r);
        r
    }

    async fn presign_put(
        &self,
        key: &str,
        signing: &PutSigning,
        lifetime: Duration,
    ) -> Result<Presigned, StoreError> {
        let started = Instant::now();
        let r = self.inner.presign_put(key, signing, lifetime).await;
        self.metrics.observe_signing("presign_put", started, &r);
        r
    }

    async fn presign_post(
        &self,
        key: &str,
        signing: &PostSigning,
        lifetime: Duration,
    ) -> Result<Option<PresignedPost>, StoreError> {
        let started = Instant::now();
        let r = self.inner.presign_post(key, signing, lifetime).await;
        self.metrics.observe_signing("presign_post", started, &r);
        r
    }

    async fn write_object(&self, key: &str, body: Vec<u8>) -> Result<(), StoreError> {
        let started = Instant::now();
        let r = self.inner.write_object(key, body).await;
        self.metrics.observe("write_object", started, &r);
        r
    }

    async fn read_object(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let started = Instant::now();
        let r = self.inner.read_object(key).await;
        self.metrics.observe("read_object", started, &r);
        r
    }

    async fn list_objects(&self, prefix: &str) -> Result<Vec<ListedObject>, StoreError> {
        let started = Instant::now();
        let r = self.inner.list_objects(prefix).await;
        self.metrics.observe("list_objects", started, &r);
        r
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let started = Instant::now();
        let r = self.inner.ping().await;
        self.metrics.observe("ping", started, &r);
        r
    }

    async fn credentials_remaining(&self) -> Option<Duration> {
        self.inner.credentials_remaining().await
    }
}
