//! The upload driver: create the multipart upload, PUT the parts in parallel with URLs signed a
//! batch ahead, retry what failed, then complete — or abort when the caller cancels. Files up to
//! `single_put_threshold` go as one presigned PUT under the same policies.
//!
//! - `options.rs`: [`UploadOptions`], [`FileInfo`], [`UploadResult`] and the defaults;
//! - `checksum.rs`: which checksum protects the parts, asked of the checksummer under a deadline;
//! - `attempt.rs`: one PUT attempt with its stall watchdog, and what follows a failed one;
//! - `multipart.rs`: [`Engine::upload`]: a small file to `single.rs`; else resume or create,
//!   transfer, complete (re-sending refused parts), abort;
//! - `transfer.rs`: the scheduler of one round of part PUTs, a type with one method per event;
//! - `single.rs`: a small file's single PUT and its completion;
//! - `stream.rs`: [`Engine::upload_stream`]: parts cut from a stream as they arrive;
//! - `wait.rs`: calls to the signing server retried, and holding while paused or offline.
//!
//! The engine is one state machine per upload in the page's module, where every `async fn` adds
//! one: between its awaits, an upload runs plain functions and methods (the page weighs about
//! 2 KB less than with an `async fn` per step; `wasm-client/check-size.sh`).
//!
//! Policies, each tested in `tests/engine`:
//! - at most `concurrency` PUTs in flight, never two of the same part; parts finish in any order
//!   and are completed sorted;
//! - a failed PUT is classified (see [`FailureClass`](super::FailureClass)): network errors,
//!   stalls, 5xx, 408, 429, `SlowDown` and `RequestTimeout` wait a jittered, growing delay
//!   ([`RetryPolicy`](super::RetryPolicy)) and try again; an expired URL is re-signed at once
//!   without counting as a failure (at most [`MAX_RESIGNS`](super::retry::MAX_RESIGNS) times in a
//!   row); anything else fails the upload at once;
//! - a URL whose lifetime ends within the re-sign margin is not used but re-signed first;
//! - a part whose bytes stop moving is aborted and retried (this is also what un-hangs an upload
//!   after the laptop slept): by default once it has been silent several times longer than the
//!   link's recent gaps between progress events, or has taken several times longer than the
//!   latest answered parts took for its size, within 4 to 30 s ([`StallDetector`]), or for the
//!   fixed `stall_timeout` the caller chose;
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

mod attempt;
mod checksum;
mod multipart;
mod options;
mod pending;
mod single;
mod stream;
mod transfer;
mod wait;

use std::rc::Rc;

pub use checksum::{ChecksumChoice, ServerChecksum, hash_deadline_ms};
pub use multipart::MAX_COMPLETE_ROUNDS;
pub use options::{
    DEFAULT_CONCURRENCY, DEFAULT_PROGRESS_INTERVAL_MS, DEFAULT_RESIGN_MARGIN_MS,
    DEFAULT_SINGLE_PUT_THRESHOLD, DEFAULT_STREAM_PART_SIZE, FileInfo, MAX_CONCURRENCY,
    UploadOptions, UploadResult,
};

use super::ports::{AlwaysOnline, Checksummer, Clock, Network, PartSink, Signer};
use super::resume::ResumeStore;
use super::retry::{Random, XorShift};
use super::slots::Slots;
use super::stall::StallDetector;

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
}
