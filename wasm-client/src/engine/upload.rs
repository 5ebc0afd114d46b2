//! The upload driver: create the multipart upload, PUT the parts in parallel with URLs signed a
//! batch ahead, retry what failed, then complete — or abort when the caller cancels.
//!
//! Policies, each tested in `tests/engine`:
//! - at most `concurrency` PUTs in flight, never two of the same part; parts finish in any order
//!   and are completed sorted;
//! - a failed PUT is classified (see [`FailureClass`](super::FailureClass)): network errors, stalls, 5xx, 408, 429,
//!   `SlowDown` and `RequestTimeout` wait a jittered, growing delay ([`RetryPolicy`]) and try
//!   again; an expired URL is re-signed at once without counting as a failure (at most
//!   [`MAX_RESIGNS`](super::retry::MAX_RESIGNS) times in a row); anything else fails the upload at once;
//! - a URL whose lifetime ends within the re-sign margin is not used but re-signed first;
//! - a part whose bytes stop moving is aborted and retried (this is also what un-hangs an upload
//!   after the laptop slept): by default once it has been silent several times longer than the
//!   link's recent gaps between progress events, within 4 to 30 s ([`StallDetector`]), or for
//!   the fixed `stall_timeout` the caller chose;
//! - calls to the signing server are retried like PUTs on network errors and 5xx, so a restarting
//!   server does not fail an upload;
//! - pause, and the device going offline, abort the PUTs in flight and wait; failures while
//!   offline do not count against the retry budget;
//! - a PUT without a readable ETag fails the upload at once (it is a CORS misconfiguration that
//!   would otherwise surface only after the whole file was sent);
//! - cancel drops every in-flight request first, then aborts the multipart upload (its stored
//!   parts would be billed until purged);
//! - any other failure keeps the multipart upload, so a later resume can reuse its parts; the
//!   error names the part, the cause and how often it was tried.

use std::collections::{BTreeMap, BTreeSet};
use std::future::{Future, poll_fn};
use std::ops::Range;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::task::Poll;

use futures::future::{self, Either, LocalBoxFuture};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use s3_direct_protocol::limits::{MAX_PART_SIZE, MAX_SINGLE_PUT_SIZE, MIN_PART_SIZE};
use s3_direct_protocol::plan::default_part_size;
use s3_direct_protocol::wire::{
    ChecksumAlgorithm, CompleteRequest, CompletedPart, CreateMultipartRequest,
    CreateMultipartResponse, ObjectCompleteRequest, PartChecksums, SignBatchResponse,
    SinglePutParams, WholeFileChecksum,
};
use s3_direct_protocol::{ErrorCode, PartPlan, PlanError};

use super::control::{Control, RunState};
use super::error::{ApiCall, ApiError, Error, PutError};
use super::ports::{
    AlwaysOnline, Checksummer, Clock, Network, PartPut, PartSink, Signer, SinglePutRequest,
};
use super::progress::{PartProgress, Phase, ProgressCallback, Reporter};
use super::resume::{
    DEFAULT_RECORD_MAX_AGE_MS, Fingerprint, Journal, ResumeRecord, ResumeStore, reconcile,
};
use super::retry::{Attempts, CallFailures, NextStep, Random, RetryPolicy, XorShift, classify};
use super::signing::{SignedUrl, batch_size};
use super::slots::{Slot, Slots, Take};
use super::stall::{PartWatch, StallDetector, StallTimeout};

/// Parallel PUTs unless configured otherwise: what Chromium allows per origin over HTTP/1.1.
pub const DEFAULT_CONCURRENCY: usize = 6;
/// Most parallel PUTs allowed. Beyond this a browser only queues the requests, and URLs signed for
/// queued parts age for nothing.
pub const MAX_CONCURRENCY: usize = 64;
/// Least time between two progress reports caused by bytes sent (a browser fires an upload
/// progress event about every 50 ms per request; a page needs far fewer).
pub const DEFAULT_PROGRESS_INTERVAL_MS: f64 = 100.0;
/// How long a checksum of `bytes` may take before it is given up and asked for again (after
/// [`Checksummer::restart`]), or `None` when `stall_timeout_ms` is 0 (no stall watchdog). Pass
/// [`StallTimeout::ceiling_ms`]: hashing is not measured by the link's gaps, so an adaptive
/// stall timeout gives its ceiling (30 s) here.
///
/// A checksum that never answers would otherwise hold the upload for ever: the uploads it
/// protects cannot start without it. It was seen once in a benchmark run, a 4 GiB upload whose
/// 221st part never got its SHA-256 while the other 255 were stored (BENCHMARKS.md). The
/// deadline is the stall timeout plus the bytes read at 1 MB/s, about 200× below the slowest
/// algorithm here (SHA-256, 190 MB/s in WASM), so that a slow but working hash is not cut short.
pub fn hash_deadline_ms(stall_timeout_ms: f64, bytes: u64) -> Option<f64> {
    (stall_timeout_ms > 0.0).then(|| stall_timeout_ms + bytes as f64 / 1_000.0)
}

/// Part checksums asked for at once: the browser's one worker hashes on one thread, so more would
/// not go faster (two workers measured slower), and two let one part's reads overlap the other's
/// hashing. A part being hashed holds a 1 MiB buffer (`web/checksum.rs`).
const HASHES_AT_ONCE: usize = 2;

/// A URL is re-signed instead of used when it would expire within this (capped at half its
/// lifetime): the PUT must *arrive* before the deadline, and a queued browser request can wait.
pub const DEFAULT_RESIGN_MARGIN_MS: f64 = 60_000.0;
/// Times a refused completion (`invalid_part`) is answered by re-sending the parts the store
/// does not hold as sent and completing again.
pub const MAX_COMPLETE_ROUNDS: u32 = 2;

/// How to upload.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadOptions {
    /// Preferred part size in bytes, or `None` for one chosen by the file's size
    /// ([`default_part_size`]: 8 MiB up to 128 MiB, 16 MiB from 256 MiB); grown automatically
    /// for files that would need more than 10,000 parts.
    pub part_size: Option<u64>,
    /// Most part PUTs in flight at once.
    pub concurrency: usize,
    /// Least milliseconds between progress reports caused by bytes sent. Parts being stored and
    /// the upload finishing always report.
    pub progress_interval_ms: f64,
    /// When and how often to try again.
    pub retry: RetryPolicy,
    /// How long a part PUT may move no bytes before it is aborted and retried: adapted to the
    /// link (the default), or fixed.
    pub stall_timeout: StallTimeout,
    /// Milliseconds of lifetime a URL must have left to be used (see
    /// [`DEFAULT_RESIGN_MARGIN_MS`]).
    pub resign_margin_ms: f64,
    /// Which checksum to compute for each part and sign into its URL.
    pub checksum: ChecksumChoice,
    /// Files of at most this many bytes go as one presigned `PUT` (the signing API's
    /// `GET /params`) instead of a multipart upload; 0 sends every file in parts.
    pub single_put_threshold: u64,
}

/// Files up to this size go as a single `PUT` in a [`Queue`](super::queue::Queue) unless
/// configured otherwise: below one default part, a multipart upload only adds round trips.
pub const DEFAULT_SINGLE_PUT_THRESHOLD: u64 = 5 * 1024 * 1024;

/// Which checksum protects each part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChecksumChoice {
    /// The one the signing server asks for when it creates the upload, or signs a single PUT
    /// (it knows what its store verifies), or none.
    #[default]
    Auto,
    /// None: parts are not read before they are sent.
    Off,
    /// This one, whatever the server says; it signs it if it can.
    Use(ChecksumAlgorithm),
}

/// The checksum the signing server asked for in its last answer (create, or a single PUT's
/// params) to any upload sharing this: the next upload with [`ChecksumChoice::Auto`] takes it as
/// its guess and starts hashing before the server answers again (the server's `--checksum` is a
/// setting, which seldom changes). A wrong guess costs only the reads: sums of an algorithm the
/// server did not ask for are dropped, or, for a single PUT, kept (they are signed and checked all
/// the same).
#[derive(Debug, Default)]
pub struct ServerChecksum(std::cell::Cell<Option<ChecksumAlgorithm>>);

impl ServerChecksum {
    /// Starts from `known` (`None`: nothing heard yet, or the server asked for none).
    pub fn new(known: Option<ChecksumAlgorithm>) -> Self {
        Self(std::cell::Cell::new(known))
    }

    pub fn get(&self) -> Option<ChecksumAlgorithm> {
        self.0.get()
    }

    fn set(&self, asked: Option<ChecksumAlgorithm>) {
        self.0.set(asked);
    }
}

impl Default for UploadOptions {
    fn default() -> Self {
        Self {
            part_size: None,
            concurrency: DEFAULT_CONCURRENCY,
            progress_interval_ms: DEFAULT_PROGRESS_INTERVAL_MS,
            retry: RetryPolicy::default(),
            stall_timeout: StallTimeout::Adaptive,
            resign_margin_ms: DEFAULT_RESIGN_MARGIN_MS,
            checksum: ChecksumChoice::Auto,
            single_put_threshold: 0,
        }
    }
}

impl UploadOptions {
    /// Checks the options on their own (the file size is checked when uploading).
    pub fn validate(&self) -> Result<(), Error> {
        if !(1..=MAX_CONCURRENCY).contains(&self.concurrency) {
            return Err(Error::InvalidOptions(format!(
                "concurrency {} is outside 1..={MAX_CONCURRENCY}",
                self.concurrency
            )));
        }
        if let Some(part_size) = self.part_size
            && !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&part_size)
        {
            return Err(Error::InvalidOptions(format!(
                "part size {part_size} is outside S3's limits ({MIN_PART_SIZE}..={MAX_PART_SIZE} bytes)"
            )));
        }
        if self.progress_interval_ms.is_nan() || self.progress_interval_ms < 0.0 {
            return Err(Error::InvalidOptions(format!(
                "progress interval {} ms is not a number of milliseconds >= 0",
                self.progress_interval_ms
            )));
        }
        for (name, v) in [
            ("stall timeout", self.stall_timeout.ceiling_ms()),
            ("re-sign margin", self.resign_margin_ms),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(Error::InvalidOptions(format!(
                    "{name} {v} ms is not a number of milliseconds >= 0"
                )));
            }
        }
        if self.single_put_threshold > MAX_SINGLE_PUT_SIZE {
            return Err(Error::InvalidOptions(format!(
                "single PUT threshold {} is above S3's 5 GiB ({MAX_SINGLE_PUT_SIZE} bytes) \
                 limit for one PUT",
                self.single_put_threshold
            )));
        }
        self.retry.validate()?;
        Ok(())
    }

    fn plan(&self, size: u64) -> Result<PartPlan, Error> {
        self.validate()?;
        let part_size = self.part_size.unwrap_or_else(|| default_part_size(size));
        PartPlan::new(size, part_size).map_err(|e| match e {
            PlanError::TooLarge { size, .. } => Error::FileTooLarge { size },
            e @ PlanError::PartSizeOutOfRange { .. } => Error::InvalidOptions(e.to_string()),
        })
    }
}

/// What to tell the signing server about the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileInfo {
    pub filename: String,
    /// MIME type; empty lets the server pick `application/octet-stream`.
    pub content_type: String,
    /// S3 user metadata.
    pub metadata: BTreeMap<String, String>,
    /// Size in bytes.
    pub size: u64,
    /// Identifies the file across page loads, for resuming; `None` never resumes.
    pub fingerprint: Option<Fingerprint>,
}

/// A finished upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadResult {
    pub key: String,
    pub bucket: String,
    /// URL of the object as the server reports it.
    pub location: String,
    /// The object's ETag (for multipart objects not an MD5 of the content); empty when the store
    /// did not report one.
    pub etag: String,
    pub size: u64,
    /// Checksum of the whole object as `ALGO:BASE64-N`: the checksum of the parts' checksums
    /// (S3's composite form; for MD5 the same digest as a multipart ETag), when parts had them;
    /// for a single PUT, the file's own checksum, `ALGO:BASE64`.
    pub checksum: Option<String>,
    /// The CRC32C (or CRC32) of the whole object as the server combined it from the store-verified
    /// part CRCs (base64 of the 4 big-endian bytes), which does not depend on the part size; empty
    /// when the parts had no CRCs or the store did not verify them.
    pub whole_file: WholeFileChecksum,
    /// The server's signed receipt of the completed object, for the application's backend to
    /// verify (a compact JWS); `None` only for a file sent as one PUT to a server older than
    /// `POST /params/complete`, which does not see it complete.
    pub receipt: Option<String>,
}

/// Uploads files through a [`Signer`] and a [`PartSink`].
pub struct Engine<S, P> {
    signer: S,
    sink: P,
    clock: Rc<dyn Clock>,
    network: Rc<dyn Network>,
    random: Rc<dyn Random>,
    resume: Option<Rc<dyn ResumeStore>>,
    checksummer: Option<Rc<dyn Checksummer>>,
    server_checksum: Option<Rc<ServerChecksum>>,
    /// The queue's shared PUT slots; `None` limits only this upload's own PUTs.
    slots: Option<Slots>,
    /// What the PUTs have shown of the link, for the stall watchdog; shared with other uploads
    /// through [`Engine::with_stall_detector`].
    stall: Rc<StallDetector>,
    options: UploadOptions,
}

impl<S: std::fmt::Debug, P: std::fmt::Debug> std::fmt::Debug for Engine<S, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("signer", &self.signer)
            .field("sink", &self.sink)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Why the transfer stopped early.
enum Stop {
    Cancelled,
    Failed(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Self::Failed(e)
    }
}

/// How one part PUT ended.
enum PutOutcome {
    Stored(Option<String>),
    Failed(PutError),
    /// No bytes moved for this many milliseconds.
    Stalled(u64),
}

struct PutDone {
    part: u32,
    url: SignedUrl,
    /// Bytes the attempt sent.
    bytes: u64,
    outcome: PutOutcome,
}

/// A part's checksum, or `None` when it gave no answer by its deadline.
type Hashed = (u32, Option<Result<String, String>>);

/// Something the scheduler must react to.
enum Event {
    Signed(Result<SignBatchResponse, ApiError>),
    Put(PutDone),
    BackoffOver(u32),
    SignWaitOver,
    /// A part's checksum, or `None`: no answer by its deadline.
    Hashed(u32, Option<Result<String, String>>),
    SlotFree(Slot),
    JournalDue,
    Changed,
}

impl<S: Signer, P: PartSink> Engine<S, P> {
    /// An engine that assumes it is always online and jitters with a generator seeded by the
    /// clock; see [`with_network`](Self::with_network) and [`with_random`](Self::with_random).
    pub fn new(signer: S, sink: P, clock: Rc<dyn Clock>, options: UploadOptions) -> Self {
        let seed = clock.now_ms().to_bits();
        Self {
            signer,
            sink,
            clock,
            network: Rc::new(AlwaysOnline),
            random: Rc::new(XorShift::new(seed)),
            resume: None,
            checksummer: None,
            server_checksum: None,
            slots: None,
            stall: StallDetector::new(),
            options,
        }
    }

    /// Judges stalls with what `detector` has seen of the link: share one between the uploads of
    /// a queue (or of one page), so a part waiting behind another upload's requests is known to
    /// be queued, and a new upload starts with what the others measured.
    pub fn with_stall_detector(mut self, detector: Rc<StallDetector>) -> Self {
        self.stall = detector;
        self
    }

    /// Takes a slot from `slots` for every PUT, on top of this upload's own concurrency limit:
    /// how a queue keeps one limit across all its files.
    pub fn with_slots(mut self, slots: Slots) -> Self {
        self.slots = Some(slots);
        self
    }

    /// Computes part checksums with `checksummer`; without one, parts carry none.
    pub fn with_checksummer(mut self, checksummer: Rc<dyn Checksummer>) -> Self {
        self.checksummer = Some(checksummer);
        self
    }

    /// Remembers in `memo` the checksum the server asks for, and guesses from it (see
    /// [`ServerChecksum`]); share one between the uploads of one page's uploader.
    pub fn with_server_checksum(mut self, memo: Rc<ServerChecksum>) -> Self {
        self.server_checksum = Some(memo);
        self
    }

    /// The checksum this upload will likely use, before the server says: the options' own, or
    /// with `Auto` what the server asked for last time.
    fn guess(&self) -> Option<ChecksumAlgorithm> {
        self.checksummer.as_ref()?;
        match self.options.checksum {
            ChecksumChoice::Auto => self.server_checksum.as_ref()?.get(),
            ChecksumChoice::Off => None,
            ChecksumChoice::Use(algorithm) => Some(algorithm),
        }
    }

    /// The part checksums to declare at create: what [`Self::algorithm`] will pick once the
    /// server answers, so that the store is created for them.
    fn declared(&self) -> Option<PartChecksums> {
        self.checksummer.as_ref()?;
        match self.options.checksum {
            ChecksumChoice::Auto => Some(PartChecksums::Auto),
            ChecksumChoice::Off => None,
            ChecksumChoice::Use(algorithm) => Some(PartChecksums::Use(algorithm)),
        }
    }

    /// Notes what the server asked for.
    fn heard(&self, asked: Option<ChecksumAlgorithm>) {
        if let Some(memo) = &self.server_checksum {
            memo.set(asked);
        }
    }

    /// The checksum to use given what the server asked for.
    fn algorithm(&self, asked: Option<ChecksumAlgorithm>) -> Option<ChecksumAlgorithm> {
        self.checksummer.as_ref()?;
        match self.options.checksum {
            ChecksumChoice::Auto => asked,
            ChecksumChoice::Off => None,
            ChecksumChoice::Use(algorithm) => Some(algorithm),
        }
    }

    /// Keeps resume records in `store`, and resumes from them.
    pub fn with_resume(mut self, store: Rc<dyn ResumeStore>) -> Self {
        self.resume = Some(store);
        self
    }

    /// Pauses while `network` says the device is offline.
    pub fn with_network(mut self, network: Rc<dyn Network>) -> Self {
        self.network = network;
        self
    }

    /// Takes retry jitter from `random` (numbers in `[0, 1)`).
    pub fn with_random(mut self, random: Rc<dyn Random>) -> Self {
        self.random = random;
        self
    }

    /// Uploads `file`, reporting progress to `on_progress`, until done, failed or cancelled
    /// through `control`.
    ///
    /// Cancel is honoured before the upload is created, and while parts are being sent. A cancel
    /// that arrives while the server is creating the upload takes effect when its answer arrives,
    /// so the new upload can be aborted instead of left behind. Once every part is stored and
    /// completion has been requested, cancel is too late: the object is being assembled.
    pub async fn upload(
        &self,
        file: &FileInfo,
        on_progress: ProgressCallback,
        control: &Control,
    ) -> Result<UploadResult, Error> {
        let mut plan = self.options.plan(file.size)?;
        if self.options.single_put_threshold > 0 && file.size <= self.options.single_put_threshold {
            return self.single_put(file, on_progress, control).await;
        }
        if control.is_cancelled() {
            return Err(Error::Aborted { cleanup: None });
        }
        let resume = self.resume.clone().zip(file.fingerprint.clone());
        let earlier = match &resume {
            Some((store, fingerprint)) => {
                let now = self.clock.now_ms();
                // Asked first, the lookup does not queue behind the expiry sweep's write.
                let found = store.load(&fingerprint.key());
                store.remove_older_than(now - DEFAULT_RECORD_MAX_AGE_MS);
                found.await.filter(|r| {
                    r.fingerprint == *fingerprint && now - r.updated_ms < DEFAULT_RECORD_MAX_AGE_MS
                })
            }
            None => None,
        };
        // A record's part size wins over the options: its parts were cut with it.
        if let Some(record) = &earlier
            && let Ok(p) = PartPlan::new(file.size, record.part_size)
        {
            plan = p;
        }

        let reporter = Reporter::new(
            plan.size,
            plan.part_count,
            self.clock.clone(),
            self.options.progress_interval_ms,
            on_progress,
        );
        reporter.report();

        let mut resumed = None;
        if let (Some(record), Some((store, fingerprint))) = (earlier, &resume) {
            let earlier_upload = record.upload();
            let listed = self
                .call(
                    ApiCall::ListParts,
                    Some(control),
                    &reporter,
                    Phase::Uploading,
                    || self.signer.list_parts(&earlier_upload),
                )
                .await;
            match listed {
                Ok(listed) => {
                    let plan_size = |n: u32| {
                        (1..=plan.part_count)
                            .contains(&n)
                            .then(|| plan.range(n))
                            .map(|r| r.end - r.start)
                    };
                    let parts = reconcile(&record, &listed, plan_size);
                    resumed = Some(ResumeRecord { parts, ..record });
                }
                // The upload is gone (completed, aborted, purged) or no longer ours: start over.
                Err(Error::Api {
                    source: ApiError::Status { status, .. },
                    ..
                }) if (400..500).contains(&status) => store.remove(&fingerprint.key()),
                Err(e) => return Err(e),
            }
        }

        let mut first_batch = None;
        let mut early = Vec::new();
        let (upload, record, algorithm) = match resumed {
            Some(record) => {
                let algorithm = self.algorithm(record.checksum);
                (record.upload(), Some(record), algorithm)
            }
            None => {
                // With the size and part size declared, the server fixes the plan: it signs each
                // part's exact length and refuses part numbers beyond it.
                // Without a checksum of our own, the server can sign the first batch with the
                // create and spare the first PUTs a round trip (it signs none when it wants
                // checksums).
                let presign = !matches!(self.options.checksum, ChecksumChoice::Use(_));
                // The algorithm is known before the create answers when the options name it, and
                // likely when an earlier upload heard the server's: the first parts are hashed
                // while the create is out, so that their PUTs do not also wait for the hasher to
                // start and read them after it.
                let guess = self.guess();
                if let (Some(algorithm), Some(summer)) = (guess, &self.checksummer) {
                    early = plan
                        .numbers()
                        .take(HASHES_AT_ONCE)
                        .map(|part| (part, self.hash(summer, algorithm, &plan, part)))
                        .collect();
                }
                let request = CreateMultipartRequest {
                    filename: file.filename.clone(),
                    content_type: file.content_type.clone(),
                    metadata: file.metadata.clone(),
                    size: Some(file.size),
                    part_size: Some(plan.part_size),
                    presign_parts: presign.then(|| {
                        batch_size(self.options.concurrency, plan.part_count as usize) as u32
                    }),
                    checksum: self.declared(),
                };
                let created = self
                    .call(
                        ApiCall::Create,
                        Some(control),
                        &reporter,
                        Phase::Uploading,
                        || self.signer.create(&request),
                    )
                    .await?;
                self.heard(created.checksum);
                let algorithm = self.algorithm(created.checksum);
                if algorithm != guess {
                    // Sums of another algorithm than the server now asks for.
                    early.clear();
                }
                let mut upload = created;
                first_batch = upload.presigned.take();
                let record = resume.as_ref().map(|(_, fingerprint)| ResumeRecord {
                    fingerprint: fingerprint.clone(),
                    upload_id: upload.upload_id.clone(),
                    key: upload.key.clone(),
                    bucket: upload.bucket.clone(),
                    part_size: plan.part_size,
                    parts: BTreeMap::new(),
                    updated_ms: self.clock.now_ms(),
                    checksum: algorithm,
                });
                (upload, record, algorithm)
            }
        };
        let journal = Journal::new(
            resume.as_ref().map(|(store, _)| store.clone()),
            record,
            self.clock.clone(),
        );
        journal.save();
        if control.is_cancelled() {
            journal.forget();
            return Err(self.abort(&upload).await);
        }

        let mut already = journal.stored_parts();
        if !already.is_empty() {
            let bytes = already.keys().map(|&p| part_len(&plan, p)).sum();
            reporter.already_stored(bytes, already.len() as u32);
        }
        let mut rounds = 0;
        let (done, checksum) = loop {
            let parts = match self
                .transfer(
                    &upload,
                    &plan,
                    &reporter,
                    control,
                    already,
                    first_batch.take(),
                    std::mem::take(&mut early),
                    &journal,
                    algorithm,
                )
                .await
            {
                Ok(parts) => parts,
                // Every in-flight PUT and signing request was dropped with the transfer, before
                // the abort: a PUT landing after the abort would store an orphan part.
                Err(Stop::Cancelled) => {
                    journal.forget();
                    return Err(self.abort(&upload).await);
                }
                Err(Stop::Failed(e)) => {
                    // Kept for a later resume: make sure it lists every stored part.
                    journal.flush();
                    return Err(e);
                }
            };

            reporter.set_phase(Phase::Completing);
            let checksum = self.composite_checksum(algorithm, &parts).await;
            let request = CompleteRequest {
                parts: parts
                    .iter()
                    .map(|(part, sum)| with_checksum(part.clone(), sum.clone()))
                    .collect(),
            };
            let completed = self
                .call(
                    ApiCall::Complete,
                    None,
                    &reporter,
                    Phase::Completing,
                    || self.signer.complete(&upload, &request),
                )
                .await;
            let error = match completed {
                Ok(done) => break (done, checksum),
                Err(e) => e,
            };
            // The store refused a part it acknowledged: an interrupted, late attempt of it can
            // replace a good one (DESIGN.md, "a failed Complete is not the end"). Send again
            // what the store does not hold as we sent it, and complete again.
            let resend = if rounds < MAX_COMPLETE_ROUNDS && error.code() == "invalid_part" {
                self.parts_to_resend(&upload, &plan, &parts, control, &reporter)
                    .await
            } else {
                Vec::new()
            };
            if resend.is_empty() {
                journal.flush();
                return Err(error);
            }
            rounds += 1;
            for &part in &resend {
                reporter.redo_part(part, part_len(&plan, part));
            }
            already = parts
                .into_iter()
                .filter(|(p, _)| !resend.contains(&p.part_number))
                .map(|(p, sum)| (p.part_number, (p.etag, sum)))
                .collect();
        };
        journal.forget();
        reporter.finish();
        Ok(UploadResult {
            key: done.key,
            bucket: done.bucket,
            location: done.location,
            etag: done.etag,
            size: file.size,
            checksum,
            whole_file: done.whole_file,
            receipt: done.receipt,
        })
    }

    /// Uploads a small file with one presigned `PUT`: the same retry policy, stall watchdog,
    /// pause and cancel as parts of a multipart upload, and the same kind of result.
    ///
    /// A checksum chosen explicitly (`ChecksumChoice::Use`) is computed first and signed into the
    /// URL. With `Auto`, the server names the one it wants in its answer; when the URL was not
    /// signed for it, the file is hashed and the URL asked for again with it (a round trip more,
    /// which [`ServerChecksum`] spares the uploads after the first). An MD5 the server did not
    /// sign goes as a plain `Content-MD5` header, which S3 checks on a presigned PUT all the same.
    /// Cancelling leaves nothing behind: the object exists only once the PUT has succeeded.
    async fn single_put(
        &self,
        file: &FileInfo,
        on_progress: ProgressCallback,
        control: &Control,
    ) -> Result<UploadResult, Error> {
        let aborted = || Error::Aborted { cleanup: None };
        if control.is_cancelled() {
            return Err(aborted());
        }
        let reporter = Reporter::new(
            file.size,
            1,
            self.clock.clone(),
            self.options.progress_interval_ms,
            on_progress,
        );
        reporter.report();
        let whole = 0..file.size;
        let mut sent = self.guess();
        let mut checksum = match (sent, &self.checksummer) {
            (Some(algorithm), Some(summer)) => Some(
                self.whole_file_sum(summer, algorithm, file.size, control, &reporter)
                    .await?,
            ),
            _ => None,
        };
        let mut request = SinglePutRequest {
            filename: file.filename.clone(),
            content_type: file.content_type.clone(),
            size: file.size,
            metadata: file.metadata.clone(),
            checksum: checksum.clone(),
        };
        let retry = self.options.retry;
        let mut signed: Option<(SinglePutParams, SignedUrl)> = None;
        let mut a = Attempts::default();
        let mut stalled_ms = 0;
        loop {
            self.hold(Some(control), &reporter, Phase::Uploading)
                .await?;
            let now = self.clock.now_ms();
            let (params, url) = match signed
                .take()
                .filter(|(_, url)| url.usable_at(now, self.options.resign_margin_ms))
            {
                Some(signed) => signed,
                None => {
                    let params = self
                        .call(
                            ApiCall::SinglePut,
                            Some(control),
                            &reporter,
                            Phase::Uploading,
                            || self.signer.single_put(&request),
                        )
                        .await?;
                    if params.url.is_empty() || !params.method.eq_ignore_ascii_case("PUT") {
                        return Err(Error::Api {
                            call: ApiCall::SinglePut,
                            source: ApiError::InvalidResponse(format!(
                                "expected a presigned PUT URL, got method {:?} and URL {:?}",
                                params.method, params.url
                            )),
                        });
                    }
                    self.heard(params.checksum);
                    // The server wants a checksum this URL was not signed for: hash, ask again.
                    if self.options.checksum == ChecksumChoice::Auto
                        && params.checksum != sent
                        && let (Some(algorithm), Some(summer)) =
                            (params.checksum, &self.checksummer)
                    {
                        checksum = Some(
                            self.whole_file_sum(summer, algorithm, file.size, control, &reporter)
                                .await?,
                        );
                        sent = Some(algorithm);
                        request.checksum = checksum.clone();
                        continue;
                    }
                    let headers =
                        part_headers(&Rc::new(params.headers.clone()), None, checksum.as_ref());
                    let url = SignedUrl::new(params.url.clone(), headers, None, now);
                    (params, url)
                }
            };
            let slot = match &self.slots {
                None => None,
                Some(slots) => {
                    match future::select(slots.take(), pin!(self.changed(Some(control)))).await {
                        Either::Left((slot, _)) => Some(slot),
                        // Paused, cancelled or offline while in line: look again.
                        Either::Right(_) => {
                            signed = Some((params, url));
                            continue;
                        }
                    }
                }
            };
            let watch = self.watch(file.size);
            let progress = reporter.start_part(1, watch.clone());
            a.tries += 1;
            let again = url.clone();
            let mut put = pin!(self.put(1, url, whole.clone(), progress, watch));
            let done = loop {
                match future::select(put.as_mut(), pin!(self.changed(Some(control)))).await {
                    Either::Left((done, _)) => break Some(done),
                    // Paused, cancelled or offline: stop sending.
                    Either::Right(_)
                        if control.state() != RunState::Running || !self.network.is_online() =>
                    {
                        break None;
                    }
                    Either::Right(_) => {}
                }
            };
            let Some(done) = done else {
                // The PUT's future is dropped with this round, which aborts the request; it
                // starts over from its first byte later.
                reporter.abandon_part(1);
                if control.is_cancelled() {
                    return Err(aborted());
                }
                signed = Some((params, again));
                continue;
            };
            drop(slot);
            let PutDone {
                url,
                bytes,
                outcome,
                ..
            } = done;
            let failure = match outcome {
                PutOutcome::Stored(etag) => {
                    reporter.part_done(1);
                    // A single PUT needs no ETag to be complete: a store that hides it (CORS)
                    // still stored the object.
                    let location = url.url.split('?').next().unwrap_or_default().to_owned();
                    let sent = UploadResult {
                        whole_file: WholeFileChecksum::default(),
                        key: params.key.clone(),
                        bucket: params.bucket.clone(),
                        location,
                        etag: etag.unwrap_or_default(),
                        size: file.size,
                        checksum,
                        receipt: None,
                    };
                    let result = self.complete_single(&params, sent, &reporter).await?;
                    reporter.finish();
                    return Ok(result);
                }
                PutOutcome::Failed(e) => Some(e),
                PutOutcome::Stalled(ms) => {
                    stalled_ms = ms;
                    None
                }
            };
            reporter.abandon_part(1);
            a.sent(bytes);
            if !self.network.is_online() {
                signed = Some((params, url));
                continue;
            }
            let expired = url.expired_at(self.clock.now_ms());
            let retry_after = failure.as_ref().and_then(PutError::retry_after_ms);
            let class = classify(failure.as_ref(), expired);
            let delay = match a.next_step(class, &retry, &*self.random, retry_after) {
                NextStep::GiveUp => return Err(part_error(1, 0, failure, a.tries, stalled_ms)),
                // `signed` stays empty: the next round asks for a fresh URL.
                NextStep::Resign => continue,
                NextStep::Wait(delay) => delay,
            };
            if !expired {
                signed = Some((params, url));
            }
            let sleep = self.clock.sleep(delay);
            if let Either::Right(_) = future::select(sleep, pin!(cancelled(control))).await {
                return Err(aborted());
            }
        }
    }

    /// Reports a small file sent (`sent`, what the PUT showed) to the server, which reads the
    /// object back and answers what it verified, with a receipt: called, and retried, as a
    /// multipart completion is (a completion whose answer was lost answers the same when asked
    /// again). A server that sent no token, or answers that it has no such route (404 or 405
    /// without `no_such_upload`: a server older than the route), leaves `sent` as it is.
    async fn complete_single(
        &self,
        params: &SinglePutParams,
        sent: UploadResult,
        reporter: &Reporter,
    ) -> Result<UploadResult, Error> {
        let Some(token) = params.token.clone() else {
            return Ok(sent);
        };
        let request = ObjectCompleteRequest {
            key: params.key.clone(),
            token,
        };
        let done = self
            .call(ApiCall::Complete, None, reporter, Phase::Completing, || {
                self.signer.complete_single(&request)
            })
            .await;
        match done {
            Ok(done) => Ok(UploadResult {
                key: done.key,
                bucket: done.bucket,
                location: done.location,
                etag: if done.etag.is_empty() {
                    sent.etag
                } else {
                    done.etag
                },
                size: done.size,
                // The store's when it reports one; else the file's own, which it checked.
                checksum: done.checksum.or(sent.checksum),
                whole_file: done.whole_file,
                receipt: done.receipt,
            }),
            Err(Error::Api {
                source:
                    ApiError::Status {
                        status: 404 | 405,
                        code,
                        ..
                    },
                ..
            }) if code.as_deref() != Some(ErrorCode::NoSuchUpload.as_str()) => Ok(sent),
            Err(e) => Err(e),
        }
    }

    /// The whole file's checksum as `algo:base64`, for a single PUT: waits while paused or
    /// offline first, and asks again (after a restart) when no answer comes by the deadline.
    async fn whole_file_sum(
        &self,
        summer: &Rc<dyn Checksummer>,
        algorithm: ChecksumAlgorithm,
        size: u64,
        control: &Control,
        reporter: &Reporter,
    ) -> Result<String, Error> {
        self.hold(Some(control), reporter, Phase::Uploading).await?;
        let mut tries = 0;
        loop {
            let deadline = hash_deadline_ms(self.options.stall_timeout.ceiling_ms(), size);
            let timer = deadline.map(|ms| self.clock.sleep(ms));
            match within(summer.checksum(algorithm, 0..size), timer).await {
                Some(answer) => {
                    let sum =
                        answer.map_err(|message| Error::FileUnreadable { part: 1, message })?;
                    return Ok(format!("{algorithm}:{sum}"));
                }
                None => {
                    tries += 1;
                    if tries > self.options.retry.retries {
                        return Err(hash_gave_up(1, tries));
                    }
                    summer.restart();
                }
            }
        }
    }

    /// `algo:BASE64-N`: the checksum of the parts' checksums, when every part has one. `None`
    /// too when the checksummer gives no answer in time: the store has checked every part by
    /// then, and the completion does not wait on a number only the result reports.
    async fn composite_checksum(
        &self,
        algorithm: Option<ChecksumAlgorithm>,
        parts: &[(CompletedPart, Option<String>)],
    ) -> Option<String> {
        let algorithm = algorithm?;
        let summer = self.checksummer.as_ref()?;
        let prefix = format!("{algorithm}:");
        let sums = parts
            .iter()
            .map(|(_, sum)| Some(sum.as_deref()?.strip_prefix(&prefix)?.to_owned()))
            .collect::<Option<Vec<_>>>()?;
        let bytes = sums.iter().map(|s| s.len() as u64).sum();
        let deadline = hash_deadline_ms(self.options.stall_timeout.ceiling_ms(), bytes);
        let timer = deadline.map(|ms| self.clock.sleep(ms));
        let sum = within(summer.composite(algorithm, sums), timer)
            .await?
            .ok()?;
        Some(format!("{algorithm}:{sum}-{}", parts.len()))
    }

    /// One call to the signing server, retried with backoff while it fails in a way that may
    /// pass; waits while offline (or paused, when `control` is given). Fails with
    /// [`Error::Aborted`] (nothing to clean up) if cancelled while waiting.
    async fn call<T, Fut>(
        &self,
        call: ApiCall,
        control: Option<&Control>,
        reporter: &Reporter,
        phase: Phase,
        mut attempt: impl FnMut() -> Fut,
    ) -> Result<T, Error>
    where
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let mut failures = CallFailures::default();
        loop {
            self.hold(control, reporter, phase).await?;
            let source = match attempt().await {
                Ok(v) => return Ok(v),
                Err(source) if source.is_retryable() => source,
                Err(source) => return Err(Error::Api { call, source }),
            };
            if !self.network.is_online() {
                continue;
            }
            let retry_after = source.retry_after_ms();
            let Some(delay) = failures.next_delay(&self.options.retry, &*self.random, retry_after)
            else {
                return Err(Error::Api { call, source });
            };
            let sleep = self.clock.sleep(delay);
            match control {
                None => sleep.await,
                Some(control) => {
                    if let Either::Right(_) = future::select(sleep, pin!(cancelled(control))).await
                    {
                        return Err(Error::Aborted { cleanup: None });
                    }
                }
            }
        }
    }

    /// Waits until the upload may send: running and online. Reports the phase it waits in.
    async fn hold(
        &self,
        control: Option<&Control>,
        reporter: &Reporter,
        running: Phase,
    ) -> Result<(), Error> {
        loop {
            let state = control.map_or(RunState::Running, Control::state);
            let waiting = match state {
                RunState::Cancelled => return Err(Error::Aborted { cleanup: None }),
                RunState::Paused => Phase::Paused,
                RunState::Running if !self.network.is_online() => Phase::Offline,
                RunState::Running => {
                    reporter.set_phase(running);
                    return Ok(());
                }
            };
            reporter.set_phase(waiting);
            self.changed(control).await;
        }
    }

    /// Resolves when the caller's wishes or the network status change.
    fn changed(&self, control: Option<&Control>) -> impl Future<Output = ()> + 'static {
        let control: LocalBoxFuture<'static, ()> = match control {
            Some(c) => Box::pin(c.changed()),
            None => Box::pin(future::pending()),
        };
        future::select(control, self.network.changed()).map(|_| ())
    }

    /// Sends every part not in `stored`; returns all of them sorted for completion.
    // One call site; a struct for its arguments would only rename them.
    #[allow(clippy::too_many_arguments)]
    async fn transfer(
        &self,
        upload: &CreateMultipartResponse,
        plan: &PartPlan,
        reporter: &Rc<Reporter>,
        control: &Control,
        mut stored: BTreeMap<u32, (String, Option<String>)>,
        presigned: Option<SignBatchResponse>,
        early: Vec<(u32, LocalBoxFuture<'static, Hashed>)>,
        journal: &Journal,
        algorithm: Option<ChecksumAlgorithm>,
    ) -> Result<Vec<(CompletedPart, Option<String>)>, Stop> {
        let concurrency = self.options.concurrency;
        let retry = self.options.retry;
        let parts_total = plan.part_count;
        // Parts ready to PUT as soon as they have a URL and a slot, lowest number first.
        let mut waiting: BTreeSet<u32> =
            plan.numbers().filter(|p| !stored.contains_key(p)).collect();
        let mut urls: BTreeMap<u32, SignedUrl> = BTreeMap::new();
        // URLs the create answer brought; they carry no checksum, so they only serve without one.
        if let Some(mut batch) = presigned.filter(|_| algorithm.is_none()) {
            let now = self.clock.now_ms();
            let headers = Rc::new(std::mem::take(&mut batch.headers));
            for (part, url) in std::mem::take(&mut batch.presigned_urls) {
                if waiting.contains(&part) && !url.is_empty() {
                    let headers = part_headers(&headers, batch.part_headers.remove(&part), None);
                    urls.insert(part, SignedUrl::new(url, headers, batch.expires, now));
                }
            }
        }
        let mut attempts: BTreeMap<u32, Attempts> = BTreeMap::new();
        // How long each part's last stalled attempt was silent, for the error if it gives up.
        let mut stalled_ms: BTreeMap<u32, u64> = BTreeMap::new();
        // Parts being PUT, with a copy of their URL to use again if the PUT is paused.
        let mut in_flight: BTreeMap<u32, SignedUrl> = BTreeMap::new();
        let mut puts: FuturesUnordered<LocalBoxFuture<'_, PutDone>> = FuturesUnordered::new();
        let mut in_backoff: BTreeSet<u32> = BTreeSet::new();
        let mut backoffs: FuturesUnordered<LocalBoxFuture<'static, u32>> = FuturesUnordered::new();
        let mut signing: Option<LocalBoxFuture<'_, Result<SignBatchResponse, ApiError>>> = None;
        // Checksums (`algo:base64`) of parts not yet stored, and the ones being computed.
        let mut sums: BTreeMap<u32, String> = BTreeMap::new();
        let mut hashing: FuturesUnordered<LocalBoxFuture<'static, Hashed>> =
            FuturesUnordered::new();
        let mut hashing_parts: BTreeSet<u32> = BTreeSet::new();
        // Checksums asked for while the upload was being created.
        for (part, hashed) in early {
            if algorithm.is_some() && waiting.contains(&part) {
                hashing_parts.insert(part);
                hashing.push(hashed);
            }
        }
        // Checksums of a part that gave no answer in time, in a row.
        let mut hash_timeouts: BTreeMap<u32, u32> = BTreeMap::new();
        let summer = algorithm.zip(self.checksummer.clone());
        let mut signing_batch: Vec<u32> = Vec::new();
        let mut sign_failures = CallFailures::default();
        let mut sign_wait: Option<LocalBoxFuture<'static, ()>> = None;
        // When the resume record's pending changes are due to be written.
        let mut journal_due: Option<LocalBoxFuture<'static, ()>> = None;
        // With shared slots: this upload's one request in the line, and a slot it was handed.
        let mut slot_wait: Option<Take> = None;
        let mut spare: Option<Slot> = None;

        while stored.len() < parts_total as usize {
            let state = control.state();
            if state == RunState::Cancelled {
                return Err(Stop::Cancelled);
            }
            if state == RunState::Paused || !self.network.is_online() {
                // Stop everything: dropping a PUT aborts it. Its bytes are sent again later.
                for (part, url) in std::mem::take(&mut in_flight) {
                    reporter.abandon_part(part);
                    urls.insert(part, url);
                    waiting.insert(part);
                }
                puts = FuturesUnordered::new();
                signing = None;
                signing_batch.clear();
                waiting.append(&mut in_backoff);
                backoffs = FuturesUnordered::new();
                sign_wait = None;
                hashing = FuturesUnordered::new();
                hashing_parts.clear();
                slot_wait = None;
                spare = None;
                journal.flush();
                journal_due = None;
                self.hold(Some(control), reporter, Phase::Uploading)
                    .await
                    .map_err(|_| Stop::Cancelled)?;
                continue;
            }

            let now = self.clock.now_ms();
            let margin = self.options.resign_margin_ms;
            urls.retain(|_, url| url.usable_at(now, margin));
            // `urls` is small (about two rounds) and sorted, `waiting` can hold 10,000 parts.
            let launch: Vec<u32> = urls
                .keys()
                .copied()
                .filter(|p| waiting.contains(p))
                .take(concurrency - puts.len())
                .collect();
            for part in launch {
                let slot = match &self.slots {
                    None => None,
                    Some(slots) => match spare.take().or_else(|| slots.try_take()) {
                        Some(slot) => Some(slot),
                        None => break,
                    },
                };
                waiting.remove(&part);
                // `launch` only holds parts with a URL.
                let url = urls.remove(&part).unwrap();
                let range = plan.range(part);
                let watch = self.watch(range.end - range.start);
                let progress = reporter.start_part(part, watch.clone());
                attempts.entry(part).or_default().tries += 1;
                in_flight.insert(part, url.clone());
                let put = self.put(part, url, range, progress, watch);
                puts.push(Box::pin(async move {
                    // The slot is held until the PUT ends or is dropped.
                    let _slot = slot;
                    put.await
                }));
            }
            if let Some(slots) = &self.slots {
                let ready = puts.len() < concurrency && urls.keys().any(|p| waiting.contains(p));
                if !ready {
                    // Nothing to send with it: another upload can use it.
                    spare = None;
                } else if slot_wait.is_none() {
                    // One request at a time: granted, it goes to the back of the line again.
                    slot_wait = Some(slots.take());
                }
            }

            // Checksums are computed a little ahead of signing (a URL is signed for its part's
            // checksum), `HASHES_AT_ONCE` at a time. Measured on loopback, this keeps 5.2–5.6 of
            // 6 PUTs in flight with CRC32C or MD5 (5.8 without checksums); SHA-256 is bound by
            // the hash itself.
            if let Some((algorithm, summer)) = &summer {
                let ahead = 3 * concurrency;
                let next: Vec<u32> = waiting
                    .iter()
                    .copied()
                    .filter(|p| !urls.contains_key(p))
                    .take(ahead)
                    .filter(|p| !sums.contains_key(p) && !hashing_parts.contains(p))
                    .take(HASHES_AT_ONCE.saturating_sub(hashing.len()))
                    .collect();
                for part in next {
                    hashing_parts.insert(part);
                    hashing.push(self.hash(summer, *algorithm, plan, part));
                }
            }

            if signing.is_none() && sign_wait.is_none() {
                let stock = urls.keys().filter(|p| waiting.contains(p)).count();
                let unsigned = waiting.len() - stock;
                if unsigned > 0 && stock < concurrency {
                    signing_batch = waiting
                        .iter()
                        .copied()
                        .filter(|p| !urls.contains_key(p))
                        .take(batch_size(concurrency, unsigned))
                        .filter(|p| summer.is_none() || sums.contains_key(p))
                        .collect();
                    // Leading parts still being hashed: sign once the next sum is known.
                    if !signing_batch.is_empty() {
                        let batch = signing_batch.clone();
                        let batch_sums: BTreeMap<u32, String> = batch
                            .iter()
                            .filter_map(|p| sums.get(p).map(|s| (*p, s.clone())))
                            .collect();
                        let lengths = batch.iter().map(|&p| (p, plan.part_len(p))).collect();
                        signing = Some(Box::pin(async move {
                            self.signer
                                .sign_parts(upload, &batch, &batch_sums, &lengths)
                                .await
                        }));
                    }
                }
            }
            // Every part not stored is waiting (with a URL: launched unless all slots are busy;
            // without: a batch was just requested, or one is out or waiting to be retried), in
            // backoff, or in flight. Waiting on nothing would hang forever; a panic at least
            // surfaces the bug.
            assert!(
                !puts.is_empty()
                    || signing.is_some()
                    || !backoffs.is_empty()
                    || sign_wait.is_some()
                    || slot_wait.is_some()
                    || !hashing.is_empty(),
                "upload scheduler has nothing to wait for with {} of {parts_total} parts stored",
                stored.len()
            );

            if journal_due.is_none()
                && let Some(ms) = journal.due_in()
            {
                journal_due = Some(self.clock.sleep(ms));
            }

            let event = {
                let mut changed = pin!(self.changed(Some(control)));
                poll_fn(|cx| {
                    if let Some(s) = signing.as_mut()
                        && let Poll::Ready(answer) = s.as_mut().poll(cx)
                    {
                        signing = None;
                        return Poll::Ready(Event::Signed(answer));
                    }
                    if let Some(w) = sign_wait.as_mut()
                        && w.as_mut().poll(cx).is_ready()
                    {
                        sign_wait = None;
                        return Poll::Ready(Event::SignWaitOver);
                    }
                    if let Poll::Ready(Some(done)) = puts.poll_next_unpin(cx) {
                        return Poll::Ready(Event::Put(done));
                    }
                    if let Some(take) = slot_wait.as_mut()
                        && let Poll::Ready(slot) = Pin::new(take).poll(cx)
                    {
                        slot_wait = None;
                        return Poll::Ready(Event::SlotFree(slot));
                    }
                    if let Poll::Ready(Some(part)) = backoffs.poll_next_unpin(cx) {
                        return Poll::Ready(Event::BackoffOver(part));
                    }
                    if let Some(due) = journal_due.as_mut()
                        && due.as_mut().poll(cx).is_ready()
                    {
                        journal_due = None;
                        return Poll::Ready(Event::JournalDue);
                    }
                    if let Poll::Ready(Some((part, sum))) = hashing.poll_next_unpin(cx) {
                        return Poll::Ready(Event::Hashed(part, sum));
                    }
                    if changed.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Event::Changed);
                    }
                    Poll::Pending
                })
                .await
            };

            match event {
                Event::Changed | Event::SignWaitOver => {}
                Event::JournalDue => journal.flush(),
                Event::SlotFree(slot) => spare = Some(slot),
                Event::Hashed(part, Some(Ok(sum))) => {
                    hashing_parts.remove(&part);
                    hash_timeouts.remove(&part);
                    if let Some((algorithm, _)) = &summer {
                        sums.insert(part, format!("{algorithm}:{sum}"));
                    }
                }
                Event::Hashed(part, Some(Err(message))) => {
                    return Err(Stop::Failed(Error::FileUnreadable { part, message }));
                }
                Event::Hashed(part, None) => {
                    // No answer in time: start the checksummer afresh and ask again, as often as
                    // a part may be retried.
                    hashing_parts.remove(&part);
                    let tries = hash_timeouts.entry(part).or_default();
                    *tries += 1;
                    if *tries > retry.retries {
                        return Err(Stop::Failed(hash_gave_up(part, *tries)));
                    }
                    if let Some((_, summer)) = &summer {
                        summer.restart();
                    }
                }
                Event::BackoffOver(part) => {
                    in_backoff.remove(&part);
                    waiting.insert(part);
                }
                Event::Signed(answer) => {
                    let batch = std::mem::take(&mut signing_batch);
                    let call = ApiCall::Sign {
                        first: batch[0],
                        count: batch.len(),
                    };
                    match answer {
                        Ok(mut answer) => {
                            sign_failures.reset();
                            let now = self.clock.now_ms();
                            let headers = Rc::new(std::mem::take(&mut answer.headers));
                            for part in batch {
                                match answer.presigned_urls.remove(&part) {
                                    Some(url) if !url.is_empty() => {
                                        if waiting.contains(&part) || in_backoff.contains(&part) {
                                            // A part's own headers (its checksum, its length)
                                            // add to, and win over, the batch's.
                                            let headers = part_headers(
                                                &headers,
                                                answer.part_headers.remove(&part),
                                                sums.get(&part),
                                            );
                                            let url =
                                                SignedUrl::new(url, headers, answer.expires, now);
                                            urls.insert(part, url);
                                        }
                                    }
                                    _ => {
                                        return Err(Stop::Failed(Error::Api {
                                            call,
                                            source: ApiError::InvalidResponse(format!(
                                                "the batch has no URL for part {part}"
                                            )),
                                        }));
                                    }
                                }
                            }
                        }
                        Err(source) if source.is_retryable() => {
                            if self.network.is_online() {
                                let Some(delay) = sign_failures.next_delay(
                                    &retry,
                                    &*self.random,
                                    source.retry_after_ms(),
                                ) else {
                                    return Err(Stop::Failed(Error::Api { call, source }));
                                };
                                sign_wait = Some(self.clock.sleep(delay));
                            }
                        }
                        Err(source) => return Err(Stop::Failed(Error::Api { call, source })),
                    }
                }
                Event::Put(PutDone {
                    part,
                    url,
                    bytes,
                    outcome,
                }) => {
                    in_flight.remove(&part);
                    let failure = match outcome {
                        PutOutcome::Stored(Some(etag)) if !etag.trim().is_empty() => {
                            reporter.part_done(part);
                            attempts.remove(&part);
                            let range = plan.range(part);
                            let sum = sums.remove(&part);
                            journal.stored(part, range.end - range.start, &etag, sum.clone());
                            stored.insert(part, (etag, sum));
                            continue;
                        }
                        PutOutcome::Stored(_) => {
                            return Err(Stop::Failed(Error::MissingEtag {
                                part,
                                parts: parts_total,
                            }));
                        }
                        PutOutcome::Failed(e) => Some(e),
                        PutOutcome::Stalled(ms) => {
                            stalled_ms.insert(part, ms);
                            None
                        }
                    };
                    reporter.abandon_part(part);
                    let a = attempts.entry(part).or_default();
                    a.sent(bytes);
                    if !self.network.is_online() {
                        // Not the part's fault: try again, without counting, once back online.
                        urls.insert(part, url);
                        waiting.insert(part);
                        continue;
                    }
                    let expired = url.expired_at(self.clock.now_ms());
                    let retry_after = failure.as_ref().and_then(PutError::retry_after_ms);
                    let class = classify(failure.as_ref(), expired);
                    let delay = match a.next_step(class, &retry, &*self.random, retry_after) {
                        NextStep::GiveUp => {
                            let stalled = stalled_ms.get(&part).copied().unwrap_or_default();
                            return Err(Stop::Failed(part_error(
                                part,
                                parts_total,
                                failure,
                                a.tries,
                                stalled,
                            )));
                        }
                        NextStep::Resign => {
                            // Without a URL, the part is in the next signing batch.
                            waiting.insert(part);
                            continue;
                        }
                        NextStep::Wait(delay) => delay,
                    };
                    if !expired {
                        urls.insert(part, url);
                    }
                    let sleep = self.clock.sleep(delay);
                    in_backoff.insert(part);
                    backoffs.push(Box::pin(async move {
                        sleep.await;
                        part
                    }));
                }
            }
        }
        Ok(stored
            .into_iter()
            .map(|(part_number, (etag, sum))| {
                let part = CompletedPart {
                    part_number,
                    etag,
                    ..CompletedPart::default()
                };
                (part, sum)
            })
            .collect())
    }

    /// Asks for `part`'s checksum, with its deadline ([`hash_deadline_ms`]) running from now.
    fn hash(
        &self,
        summer: &Rc<dyn Checksummer>,
        algorithm: ChecksumAlgorithm,
        plan: &PartPlan,
        part: u32,
    ) -> LocalBoxFuture<'static, Hashed> {
        let sum = summer.checksum(algorithm, plan.range(part));
        let deadline =
            hash_deadline_ms(self.options.stall_timeout.ceiling_ms(), plan.part_len(part));
        let timer = deadline.map(|ms| self.clock.sleep(ms));
        Box::pin(async move { (part, within(sum, timer).await) })
    }

    /// The parts of `sent` that the store does not list with the ETag (or, where it lists no
    /// ETags, the size) they were acknowledged with.
    async fn parts_to_resend(
        &self,
        upload: &CreateMultipartResponse,
        plan: &PartPlan,
        sent: &[(CompletedPart, Option<String>)],
        control: &Control,
        reporter: &Reporter,
    ) -> Vec<u32> {
        let Ok(listed) = self
            .call(
                ApiCall::ListParts,
                Some(control),
                reporter,
                Phase::Completing,
                || self.signer.list_parts(upload),
            )
            .await
        else {
            return Vec::new();
        };
        let listed: BTreeMap<u32, _> = listed.into_iter().map(|l| (l.part_number, l)).collect();
        sent.iter()
            .map(|(p, _)| p)
            .filter(|p| match listed.get(&p.part_number) {
                None => true,
                Some(l) if l.etag.is_empty() => l.size != part_len(plan, p.part_number),
                Some(l) => l.etag.trim_matches('"') != p.etag.trim_matches('"'),
            })
            .map(|p| p.part_number)
            .collect()
    }

    /// A stall watch for a PUT of `len` bytes starting now.
    fn watch(&self, len: u64) -> Rc<PartWatch> {
        self.stall
            .watch(self.options.stall_timeout, len, self.clock.now_ms())
    }

    /// One PUT of `part`, abandoned when `watch` finds it stalled.
    async fn put(
        &self,
        part: u32,
        url: SignedUrl,
        range: Range<u64>,
        progress: PartProgress,
        watch: Rc<PartWatch>,
    ) -> PutDone {
        let outcome = {
            let put = PartPut {
                part,
                url: &url.url,
                headers: &url.headers,
                range,
            };
            let send = pin!(self.sink.put_part(put, progress));
            let watchdog = pin!(self.watchdog(&watch));
            match future::select(send, watchdog).await {
                Either::Left((Ok(etag), _)) => PutOutcome::Stored(etag),
                Either::Left((Err(e), _)) => PutOutcome::Failed(e),
                Either::Right((idle_ms, _)) => PutOutcome::Stalled(idle_ms),
            }
        };
        PutDone {
            part,
            url,
            bytes: watch.sent(),
            outcome,
        }
    }

    /// Resolves, with how long the part was silent, once `watch` finds it stalled; never when
    /// stall detection is off. Re-reads the clock and the deadline after every timer: a timer
    /// may fire late (the machine slept, which still detects the stall), and the deadline moves
    /// with the part's and the link's progress.
    async fn watchdog(&self, watch: &PartWatch) -> u64 {
        loop {
            let now = self.clock.now_ms();
            if watch.is_stalled(now) {
                return (now - watch.last_ms()).max(0.0).round() as u64;
            }
            let Some(look) = watch.next_look(now) else {
                return future::pending().await;
            };
            self.clock.sleep(look - now).await;
        }
    }

    async fn abort(&self, upload: &CreateMultipartResponse) -> Error {
        Error::Aborted {
            cleanup: self.signer.abort(upload).await.err(),
        }
    }
}

/// The error that ends the upload because of `part`; `stalled_ms`: how long its last attempt
/// was silent, when it stalled.
fn part_error(
    part: u32,
    parts: u32,
    failure: Option<PutError>,
    attempts: u32,
    stalled_ms: u64,
) -> Error {
    match failure {
        Some(PutError::Status { status, body, .. }) => Error::PartStatus {
            part,
            parts,
            status,
            body,
            attempts,
        },
        Some(PutError::Network(message)) => Error::PartNetwork {
            part,
            parts,
            message,
            attempts,
        },
        Some(PutError::Unreadable(message)) => Error::FileUnreadable {
            part: part.max(1),
            message,
        },
        None => Error::PartStalled {
            part,
            parts,
            stall_ms: stalled_ms,
            attempts,
        },
    }
}

fn part_len(plan: &PartPlan, part: u32) -> u64 {
    let r = plan.range(part);
    r.end - r.start
}

/// The headers of one part's PUT: the batch's, the part's own on top (its signed checksum or
/// length), and `Content-MD5` when the part has an MD5 the server did not sign. S3 checks an
/// unsigned `Content-MD5` on a presigned PUT all the same (only `x-amz-*` headers must be
/// signed), so a server that does not sign checksums still gets corrupted bodies refused.
fn part_headers(
    batch: &Rc<BTreeMap<String, String>>,
    own: Option<BTreeMap<String, String>>,
    sum: Option<&String>,
) -> Rc<BTreeMap<String, String>> {
    let md5 = sum.and_then(|s| s.strip_prefix("md5:"));
    let has_md5 =
        |h: &BTreeMap<String, String>| h.keys().any(|k| k.eq_ignore_ascii_case("content-md5"));
    if own.is_none() && (md5.is_none() || has_md5(batch)) {
        return batch.clone();
    }
    let mut all = (**batch).clone();
    all.extend(own.unwrap_or_default());
    if let Some(md5) = md5
        && !has_md5(&all)
    {
        all.insert("content-md5".to_owned(), md5.to_owned());
    }
    Rc::new(all)
}

/// `answer`'s output, or `None` if `timer` (when there is one) goes off first.
async fn within<T>(
    answer: LocalBoxFuture<'static, T>,
    timer: Option<LocalBoxFuture<'static, ()>>,
) -> Option<T> {
    match timer {
        None => Some(answer.await),
        Some(timer) => match future::select(answer, timer).await {
            Either::Left((value, _)) => Some(value),
            Either::Right(_) => None,
        },
    }
}

/// The error once a part's checksum gave no answer in time `tries` times in a row.
fn hash_gave_up(part: u32, tries: u32) -> Error {
    Error::FileUnreadable {
        part,
        message: format!("its checksum gave no answer in time, {tries} times"),
    }
}

/// A completion entry carrying the part's checksum where S3 takes one (`algo:base64`; MD5 has no
/// completion field: the store checked it on the PUT).
fn with_checksum(mut part: CompletedPart, sum: Option<String>) -> CompletedPart {
    if let Some((algorithm, value)) = sum.as_deref().and_then(|s| s.split_once(':'))
        && let Some(algorithm) = ChecksumAlgorithm::parse(algorithm)
    {
        part.checksums.set(algorithm, value.to_owned());
    }
    part
}

/// Resolves once `control` is cancelled.
async fn cancelled(control: &Control) {
    while !control.is_cancelled() {
        control.changed().await;
    }
}
