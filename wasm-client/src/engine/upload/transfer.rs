//! The multipart transfer: every part not yet stored is hashed (when parts carry checksums),
//! signed a batch ahead, PUT with at most `concurrency` in flight (and, in a queue, a shared slot
//! each), and retried, until all are stored or the upload stops.
//!
//! [`Transfer`] holds the scheduler's state. Each turn of [`Transfer::run`] starts what can start
//! (PUTs of parts with a URL, checksums a little ahead, the next signing batch), then waits for
//! one [`Event`] and hands it to the method for that event. Pausing, or the device going offline,
//! drops everything in flight (dropping a PUT aborts it) and waits.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;

use futures::FutureExt;
use futures::future::LocalBoxFuture;
use s3_direct_protocol::limits::MAX_PART_NUMBER;
use s3_direct_protocol::wire::{ChecksumAlgorithm, CompletedPart};

use super::attempt::{PutDone, PutOutcome, Retry, part_error, part_headers};
use super::checksum::{HASHES_AT_ONCE, Hashed, hash_gave_up};
use super::multipart::Multipart;
use super::pending::Pending;
use crate::engine::control::RunState;
use crate::engine::digest;
use crate::engine::error::{ApiCall, ApiError, ChecksumError, Error, SourceError};
use crate::engine::parts::{PartMap, PartSet};
use crate::engine::ports::{Checksummer, PartSink, SignedBatch, Signer};
use crate::engine::progress::Phase;
use crate::engine::retry::{Attempts, CallFailures};
use crate::engine::signing::{SignedUrl, batch_size};
use crate::engine::slots::{Slot, Take};

/// Why the transfer stopped early.
pub(super) enum Stop {
    Cancelled,
    Failed(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Self::Failed(e)
    }
}

/// Stored parts: each one's ETag and checksum (`algo:base64`), if it has one.
pub(super) type Stored = PartMap<(String, Option<String>)>;

/// Checksums asked for before the transfer started (while the upload was being created).
pub(super) type Early = Vec<(u32, LocalBoxFuture<'static, Hashed>)>;

/// Something the scheduler must react to.
enum Event {
    Signed(Result<SignedBatch, ApiError>),
    Put(PutDone),
    BackoffOver(u32),
    SignWaitOver,
    /// A part's checksum, or `None`: no answer by its deadline.
    Hashed(u32, Option<Result<String, ChecksumError>>),
    SlotFree(Slot),
    JournalDue,
    /// A stream's next part was cut (its length), or the stream failed.
    Cut(Result<u64, SourceError>),
    Changed,
}

/// The scheduler of one round of sending parts.
pub(super) struct Transfer<'a, S, P> {
    m: &'a Multipart<'a, S, P>,
    stored: Stored,
    /// Parts ready to PUT as soon as they have a URL and a slot, lowest number first.
    waiting: PartSet,
    urls: PartMap<SignedUrl>,
    attempts: PartMap<Attempts>,
    /// How long each part's last stalled attempt was silent, for the error if it gives up.
    stalled_ms: PartMap<u64>,
    /// Parts being PUT, with a copy of their URL to use again if the PUT is paused.
    in_flight: PartMap<SignedUrl>,
    puts: Pending<'a, PutDone>,
    in_backoff: PartSet,
    backoffs: Pending<'static, u32>,
    /// The signing request out, and the parts it asked for.
    signing: Option<LocalBoxFuture<'a, Result<SignedBatch, ApiError>>>,
    signing_batch: Vec<u32>,
    sign_failures: CallFailures,
    /// The wait before a failed signing request is sent again.
    sign_wait: Option<LocalBoxFuture<'static, ()>>,
    /// The algorithm and the checksummer, when parts carry checksums.
    summer: Option<(ChecksumAlgorithm, Rc<dyn Checksummer>)>,
    /// Checksums (`algo:base64`) of parts not yet stored, and the ones being computed.
    sums: PartMap<String>,
    hashing: Pending<'static, Hashed>,
    hashing_parts: PartSet,
    /// Checksums of a part that gave no answer in time, in a row.
    hash_timeouts: PartMap<u32>,
    /// When the resume record's pending changes are due to be written.
    journal_due: Option<LocalBoxFuture<'static, ()>>,
    /// With shared slots: this upload's one request in the line, and a slot it was handed.
    slot_wait: Option<Take>,
    spare: Option<Slot>,
    /// A stream's next part being cut. Kept while paused: the source goes on reading it.
    cutting: Option<LocalBoxFuture<'static, Result<u64, SourceError>>>,
}

impl<'a, S: Signer, P: PartSink> Transfer<'a, S, P> {
    /// A transfer of every part of `m` not in `stored`, with the URLs of `presigned` (the create
    /// answer's, which carry no checksum, so they only serve without one) and the checksums of
    /// `early` already asked for.
    pub(super) fn new(
        m: &'a Multipart<'a, S, P>,
        stored: Stored,
        presigned: Option<SignedBatch>,
        early: Early,
    ) -> Self {
        let waiting: PartSet = m
            .plan()
            .numbers()
            .filter(|&p| !stored.contains_key(p))
            .collect();
        let mut urls = PartMap::new();
        if let Some(batch) = presigned.filter(|_| m.algorithm.is_none()) {
            let now = m.engine.clock.now_ms();
            let headers = Rc::new(batch.headers);
            let mut own = batch.part_headers;
            for (part, url) in batch.urls {
                if waiting.contains(part) && !url.is_empty() {
                    let headers = part_headers(&headers, own.remove(part), None);
                    urls.insert(part, SignedUrl::new(url, headers, batch.expires, now));
                }
            }
        }
        let mut hashing = Pending::new();
        let mut hashing_parts = PartSet::new();
        for (part, hashed) in early {
            if m.algorithm.is_some() && waiting.contains(part) {
                hashing_parts.insert(part);
                hashing.push(hashed);
            }
        }
        Self {
            m,
            stored,
            waiting,
            urls,
            attempts: PartMap::new(),
            stalled_ms: PartMap::new(),
            in_flight: PartMap::new(),
            puts: Pending::new(),
            in_backoff: PartSet::new(),
            backoffs: Pending::new(),
            signing: None,
            signing_batch: Vec::new(),
            sign_failures: CallFailures::default(),
            sign_wait: None,
            summer: m.algorithm.zip(m.engine.checksummer.clone()),
            sums: PartMap::new(),
            hashing,
            hashing_parts,
            hash_timeouts: PartMap::new(),
            journal_due: None,
            slot_wait: None,
            spare: None,
            cutting: None,
        }
    }

    /// Sends every part not stored (a stream's, until it ends); returns all of them sorted for
    /// completion.
    pub(super) async fn run(mut self) -> Result<Vec<(CompletedPart, Option<String>)>, Stop> {
        while self.m.open.get() || self.stored.len() < self.m.plan().part_count as usize {
            let state = self.m.control.state();
            if state == RunState::Cancelled {
                return Err(Stop::Cancelled);
            }
            if state == RunState::Paused || !self.m.engine.network.is_online() {
                self.stop_sending();
                let m = self.m;
                m.engine
                    .hold(Some(m.control), &m.reporter, Phase::Uploading)
                    .await
                    .map_err(|_| Stop::Cancelled)?;
                continue;
            }
            self.cut_ahead();
            self.launch();
            self.ask_for_slot();
            self.hash_ahead();
            self.sign_ahead();
            self.check_progress_possible();
            if self.journal_due.is_none()
                && let Some(ms) = self.m.journal.due_in()
            {
                self.journal_due = Some(self.m.engine.clock.sleep(ms));
            }
            let event = self.next_event().await;
            self.handle(event)?;
        }
        Ok(self
            .stored
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

    /// Paused or offline: stops everything. Dropping a PUT aborts it; its bytes are sent again
    /// later.
    fn stop_sending(&mut self) {
        for (part, url) in self.in_flight.drain() {
            self.m.reporter.abandon_part(part);
            self.urls.insert(part, url);
            self.waiting.insert(part);
        }
        self.puts.clear();
        self.signing = None;
        self.signing_batch.clear();
        self.waiting.append(&mut self.in_backoff);
        self.backoffs.clear();
        self.sign_wait = None;
        self.hashing.clear();
        self.hashing_parts.clear();
        self.slot_wait = None;
        self.spare = None;
        self.m.journal.flush();
        self.journal_due = None;
    }

    /// Starts the PUTs of waiting parts with a usable URL, as far as the concurrency and the
    /// shared slots allow.
    fn launch(&mut self) {
        let engine = self.m.engine;
        let now = engine.clock.now_ms();
        let margin = engine.options.resign_margin_ms;
        self.urls.retain(|_, url| url.usable_at(now, margin));
        // `urls` is small (about two rounds) and sorted, `waiting` can hold 10,000 parts.
        let launch: Vec<u32> = self
            .urls
            .keys()
            .filter(|&p| self.waiting.contains(p))
            .take(engine.options.concurrency - self.puts.len())
            .collect();
        for part in launch {
            let slot = match &engine.slots {
                None => None,
                Some(slots) => match self.spare.take().or_else(|| slots.try_take()) {
                    Some(slot) => Some(slot),
                    None => break,
                },
            };
            self.waiting.remove(part);
            // `launch` only holds parts with a URL.
            let url = self.urls.remove(part).unwrap();
            let range = self.m.plan().range(part);
            let watch = engine.watch(range.end - range.start);
            let progress = self.m.reporter.start_part(part, watch.clone());
            self.attempts.get_or_default(part).tries += 1;
            self.in_flight.insert(part, url.clone());
            let put = engine.put(part, url, range, progress, watch);
            self.puts.push(Box::pin(async move {
                // The slot is held until the PUT ends or is dropped.
                let _slot = slot;
                put.await
            }));
        }
    }

    /// With shared slots: stands in line for one while a part could use it, and gives back a
    /// slot it was handed when none can.
    fn ask_for_slot(&mut self) {
        let Some(slots) = &self.m.engine.slots else {
            return;
        };
        let ready = self.puts.len() < self.m.engine.options.concurrency
            && self.urls.keys().any(|p| self.waiting.contains(p));
        if !ready {
            // Nothing to send with it: another upload can use it.
            self.spare = None;
        } else if self.slot_wait.is_none() {
            // One request at a time: granted, it goes to the back of the line again.
            self.slot_wait = Some(slots.take());
        }
    }

    /// Asks for checksums a little ahead of signing (a URL is signed for its part's checksum),
    /// `HASHES_AT_ONCE` at a time. Measured on loopback, this keeps 5.2–5.6 of 6 PUTs in flight
    /// with CRC32C or MD5 (5.8 without checksums); SHA-256 is bound by the hash itself.
    fn hash_ahead(&mut self) {
        let Some((algorithm, summer)) = &self.summer else {
            return;
        };
        let ahead = 3 * self.m.engine.options.concurrency;
        let next: Vec<u32> = self
            .waiting
            .iter()
            .filter(|&p| !self.urls.contains_key(p))
            .take(ahead)
            .filter(|&p| !self.sums.contains_key(p) && !self.hashing_parts.contains(p))
            .take(HASHES_AT_ONCE.saturating_sub(self.hashing.len()))
            .collect();
        for part in next {
            self.hashing_parts.insert(part);
            let hashed = self.m.engine.hash(summer, *algorithm, &self.m.plan(), part);
            self.hashing.push(hashed);
        }
    }

    /// Asks for the next batch of URLs when the stock runs low and no request is out or waiting
    /// to be retried. With checksums, the batch stops before the first part not yet hashed; when
    /// that is its first part, it is asked for once the next checksum is known. Without them, a
    /// stream's next parts, not yet cut, are signed ahead at the part size, so that a part leaves
    /// as soon as it is cut (the last, shorter part is signed again for its length).
    fn sign_ahead(&mut self) {
        if self.signing.is_some() || self.sign_wait.is_some() {
            return;
        }
        let concurrency = self.m.engine.options.concurrency;
        let plan = self.m.plan();
        let last = match self.m.open.get() && self.summer.is_none() {
            true => plan.part_count.saturating_add(2 * concurrency as u32),
            false => plan.part_count,
        };
        let ahead = plan.part_count + 1..=last.min(MAX_PART_NUMBER);
        let wanted = |p: u32| self.waiting.contains(p) || ahead.contains(&p);
        let stock = self.urls.keys().filter(|&p| wanted(p)).count();
        let unsigned = self.waiting.len() + ahead.clone().count() - stock;
        if unsigned == 0 || stock >= concurrency {
            return;
        }
        self.signing_batch = self
            .waiting
            .iter()
            .chain(ahead)
            .filter(|&p| !self.urls.contains_key(p))
            .take(batch_size(concurrency, unsigned))
            .filter(|&p| self.summer.is_none() || self.sums.contains_key(p))
            .collect();
        if self.signing_batch.is_empty() {
            return;
        }
        let batch = self.signing_batch.clone();
        let sums: PartMap<String> = batch
            .iter()
            .filter_map(|&p| self.sums.get(p).map(|s| (p, s.clone())))
            .collect();
        let lengths = batch
            .iter()
            .map(|&p| match p <= plan.part_count {
                true => (p, plan.part_len(p)),
                false => (p, plan.part_size),
            })
            .collect();
        let m = self.m;
        let (signer, upload) = (&m.engine.signer, &m.upload);
        self.signing = Some(Box::pin(async move {
            signer.sign_parts(upload, &batch, &sums, &lengths).await
        }));
    }

    /// Every part not stored is waiting (with a URL: launched unless all slots are busy;
    /// without: a batch was just requested, or one is out or waiting to be retried), in backoff,
    /// or in flight. Waiting on nothing would hang forever; a panic at least surfaces the bug.
    fn check_progress_possible(&self) {
        assert!(
            !self.puts.is_empty()
                || self.signing.is_some()
                || !self.backoffs.is_empty()
                || self.sign_wait.is_some()
                || self.slot_wait.is_some()
                || !self.hashing.is_empty()
                || self.cutting.is_some(),
            "upload scheduler has nothing to wait for with {} of {} parts stored",
            self.stored.len(),
            self.m.plan().part_count
        );
    }

    /// A stream's parts are cut one at a time while fewer than `concurrency` are held (cut and
    /// not stored): at most the parts in flight and the one being filled are in memory, and a
    /// producer faster than the link waits. A part is PUT as soon as it is cut.
    fn cut_ahead(&mut self) {
        let Some(source) = &self.m.stream else {
            return;
        };
        if !self.m.open.get() || self.cutting.is_some() {
            return;
        }
        let plan = self.m.plan();
        let held = plan.part_count as usize - self.stored.len();
        if held < self.m.engine.options.concurrency {
            self.cutting = Some(source.cut(plan.part_count + 1, plan.part_size));
        }
    }

    /// A stream's next part is cut: it waits for a URL like any part. A part shorter than the
    /// part size (or none) is the stream's end; a part beyond S3's 10,000 fails the upload.
    fn on_cut(&mut self, cut: Result<u64, SourceError>) -> Result<(), Stop> {
        let mut plan = self.m.plan();
        let part = plan.part_count + 1;
        let len = cut
            .map_err(|e| Error::StreamFailed {
                part,
                message: e.message,
                kept: false,
                cleanup: None,
            })?
            .min(plan.part_size);
        if len > 0 && part > MAX_PART_NUMBER {
            let part_size = plan.part_size;
            return Err(Stop::Failed(Error::StreamTooLarge { part_size }));
        }
        if len > 0 {
            plan.size += len;
            plan.part_count = part;
            self.m.plan.set(plan);
            self.m.reporter.cut(len);
            self.waiting.insert(part);
        }
        if len < plan.part_size {
            // Signed ahead, its URL is for the part size.
            self.urls.remove(part);
            self.m.open.set(false);
            self.m.reporter.ended();
        }
        Ok(())
    }

    /// The next thing to react to, in a fixed order of precedence.
    fn next_event(&mut self) -> impl Future<Output = Event> + '_ {
        let mut changed = self.m.engine.changed(Some(self.m.control));
        poll_fn(move |cx| {
            if let Some(s) = self.signing.as_mut()
                && let Poll::Ready(answer) = s.as_mut().poll(cx)
            {
                self.signing = None;
                return Poll::Ready(Event::Signed(answer));
            }
            if let Some(w) = self.sign_wait.as_mut()
                && w.as_mut().poll(cx).is_ready()
            {
                self.sign_wait = None;
                return Poll::Ready(Event::SignWaitOver);
            }
            if let Poll::Ready(done) = self.puts.poll_next(cx) {
                return Poll::Ready(Event::Put(done));
            }
            if let Some(take) = self.slot_wait.as_mut()
                && let Poll::Ready(slot) = Pin::new(take).poll(cx)
            {
                self.slot_wait = None;
                return Poll::Ready(Event::SlotFree(slot));
            }
            if let Poll::Ready(part) = self.backoffs.poll_next(cx) {
                return Poll::Ready(Event::BackoffOver(part));
            }
            if let Some(due) = self.journal_due.as_mut()
                && due.as_mut().poll(cx).is_ready()
            {
                self.journal_due = None;
                return Poll::Ready(Event::JournalDue);
            }
            if let Poll::Ready((part, sum)) = self.hashing.poll_next(cx) {
                return Poll::Ready(Event::Hashed(part, sum));
            }
            if let Some(cut) = self.cutting.as_mut()
                && let Poll::Ready(cut) = cut.as_mut().poll(cx)
            {
                self.cutting = None;
                return Poll::Ready(Event::Cut(cut));
            }
            if changed.poll_unpin(cx).is_ready() {
                return Poll::Ready(Event::Changed);
            }
            Poll::Pending
        })
    }

    /// Hands `event` to the method for it.
    fn handle(&mut self, event: Event) -> Result<(), Stop> {
        match event {
            Event::Changed | Event::SignWaitOver => {}
            Event::JournalDue => self.m.journal.flush(),
            Event::SlotFree(slot) => self.spare = Some(slot),
            Event::Hashed(part, answer) => self.on_hashed(part, answer)?,
            Event::BackoffOver(part) => {
                self.in_backoff.remove(part);
                self.waiting.insert(part);
            }
            Event::Signed(answer) => self.on_signed(answer)?,
            Event::Put(done) => self.on_put(done)?,
            Event::Cut(cut) => self.on_cut(cut)?,
        }
        Ok(())
    }

    /// A part's checksum arrived, failed, or gave no answer in time (`None`): then the
    /// checksummer is started afresh and asked again, as often as a part may be retried.
    fn on_hashed(
        &mut self,
        part: u32,
        answer: Option<Result<String, ChecksumError>>,
    ) -> Result<(), Stop> {
        match answer {
            Some(Ok(sum)) => {
                self.hashing_parts.remove(part);
                self.hash_timeouts.remove(part);
                if let Some((algorithm, _)) = &self.summer {
                    self.sums.insert(part, digest::tagged(*algorithm, &sum));
                }
            }
            // A stream's part cannot be read again: its bytes are gone (the checksum worker that
            // held them stopped answering), so the stream, not a file, failed.
            Some(Err(e)) if self.m.stream.is_some() => {
                return Err(Stop::Failed(Error::StreamFailed {
                    part,
                    message: e.message,
                    kept: false,
                    cleanup: None,
                }));
            }
            Some(Err(e)) => {
                let message = e.message;
                return Err(Stop::Failed(Error::FileUnreadable { part, message }));
            }
            None => {
                self.hashing_parts.remove(part);
                let tries = self.hash_timeouts.get_or_default(part);
                *tries += 1;
                if *tries > self.m.engine.options.retry.retries {
                    return Err(Stop::Failed(hash_gave_up(part, *tries)));
                }
                if let Some((_, summer)) = &self.summer {
                    summer.restart();
                }
            }
        }
        Ok(())
    }

    /// A batch of URLs arrived, or the request failed: retried with backoff while online and
    /// the failure may pass.
    fn on_signed(&mut self, answer: Result<SignedBatch, ApiError>) -> Result<(), Stop> {
        let batch = std::mem::take(&mut self.signing_batch);
        let call = ApiCall::Sign {
            first: batch[0],
            count: batch.len(),
        };
        let answer = match answer {
            Ok(answer) => answer,
            Err(source) if source.is_retryable() => {
                let engine = self.m.engine;
                if engine.network.is_online() {
                    let retry_after = source.retry_after_ms();
                    let Some(delay) = self.sign_failures.next_delay(
                        &engine.options.retry,
                        &*engine.random,
                        retry_after,
                    ) else {
                        return Err(Stop::Failed(Error::Api { call, source }));
                    };
                    self.sign_wait = Some(engine.clock.sleep(delay));
                }
                return Ok(());
            }
            Err(source) => return Err(Stop::Failed(Error::Api { call, source })),
        };
        self.sign_failures.reset();
        let now = self.m.engine.clock.now_ms();
        let headers = Rc::new(answer.headers);
        let (mut urls, mut own) = (answer.urls, answer.part_headers);
        for part in batch {
            let url = match urls.remove(part) {
                Some(url) if !url.is_empty() => url,
                _ => {
                    return Err(Stop::Failed(Error::Api {
                        call,
                        source: ApiError::InvalidResponse(format!(
                            "the batch has no URL for part {part}"
                        )),
                    }));
                }
            };
            let ahead = self.m.open.get() && part > self.m.plan().part_count;
            if self.waiting.contains(part) || self.in_backoff.contains(part) || ahead {
                // A part's own headers (its checksum, its length) add to, and win over, the
                // batch's.
                let own = own.remove(part);
                let headers = part_headers(&headers, own, self.sums.get(part));
                self.urls
                    .insert(part, SignedUrl::new(url, headers, answer.expires, now));
            }
        }
        Ok(())
    }

    /// A PUT ended: the part is stored, or its failure is retried, re-signed or ends the upload.
    fn on_put(&mut self, done: PutDone) -> Result<(), Stop> {
        let PutDone {
            part,
            url,
            bytes,
            outcome,
        } = done;
        self.in_flight.remove(part);
        let failure = match outcome {
            PutOutcome::Stored(Some(etag)) if !etag.trim().is_empty() => {
                self.on_stored(part, etag);
                return Ok(());
            }
            PutOutcome::Stored(_) => {
                return Err(Stop::Failed(Error::MissingEtag {
                    part,
                    parts: self.m.plan().part_count,
                }));
            }
            PutOutcome::Failed(e) => Some(e),
            PutOutcome::Stalled(ms) => {
                self.stalled_ms.insert(part, ms);
                None
            }
        };
        self.m.reporter.abandon_part(part);
        let engine = self.m.engine;
        let a = self.attempts.get_or_default(part);
        let delay = match engine.after_failure(a, failure.as_ref(), bytes, &url) {
            Retry::Offline => {
                // Not the part's fault: try again, without counting, once back online.
                self.urls.insert(part, url);
                self.waiting.insert(part);
                return Ok(());
            }
            Retry::GiveUp => {
                let stalled = self.stalled_ms.get(part).copied().unwrap_or_default();
                let parts = self.m.plan().part_count;
                return Err(Stop::Failed(part_error(
                    part, parts, failure, a.tries, stalled,
                )));
            }
            Retry::Resign => {
                // Without a URL, the part is in the next signing batch.
                self.waiting.insert(part);
                return Ok(());
            }
            Retry::Wait { delay_ms, keep_url } => {
                if keep_url {
                    self.urls.insert(part, url);
                }
                delay_ms
            }
        };
        let sleep = engine.clock.sleep(delay);
        self.in_backoff.insert(part);
        self.backoffs.push(Box::pin(async move {
            sleep.await;
            part
        }));
        Ok(())
    }

    /// The store acknowledged `part` with `etag`: noted for completion and the resume record.
    fn on_stored(&mut self, part: u32, etag: String) {
        self.m.reporter.part_done(part);
        self.attempts.remove(part);
        let sum = self.sums.remove(part);
        let len = self.m.plan().part_len(part);
        self.m.journal.stored(part, len, &etag, sum.clone());
        self.stored.insert(part, (etag, sum));
        if let Some(source) = &self.m.stream {
            source.release(part);
        }
    }
}
