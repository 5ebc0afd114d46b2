//! [`Engine::upload`], and a multipart upload from start to end: a resume record looked up and
//! reconciled with the store's parts, or the upload created (its first parts hashed meanwhile);
//! the transfer; the completion, re-sending parts the store refused with `invalid_part`; the
//! abort on cancel.

use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;

use futures::FutureExt;

use s3_direct_protocol::PartPlan;
use s3_direct_protocol::wire::{
    ChecksumAlgorithm, CompleteRequest, CompleteResponse, CompletedPart, CreateMultipartRequest,
    CreateMultipartResponse, ListedPart,
};

use super::checksum::{HASHES_AT_ONCE, with_checksum};
use super::transfer::{Early, Stop, Stored, Transfer};
use super::{ChecksumChoice, Engine, FileInfo, UploadResult};
use crate::engine::control::Control;
use crate::engine::error::{ApiCall, ApiError, Error};
use crate::engine::parts::PartMap;
use crate::engine::ports::{CreatedUpload, PartSink, PartSource, SignedBatch, Signer};
use crate::engine::progress::{Phase, ProgressCallback, Reporter};
use crate::engine::resume::{
    DEFAULT_RECORD_MAX_AGE_MS, Fingerprint, Journal, ResumeRecord, ResumeStore, reconcile,
};
use crate::engine::signing::batch_size;

/// Times a refused completion (`invalid_part`) is answered by re-sending the parts the store
/// does not hold as sent and completing again.
pub const MAX_COMPLETE_ROUNDS: u32 = 2;

/// Where a file's resume record is kept, and under which fingerprint.
type Resume = (Rc<dyn ResumeStore>, Fingerprint);

/// A multipart upload that exists (created, or found in a resume record): what its transfers
/// and its completion share.
pub(super) struct Multipart<'a, S, P> {
    pub(super) engine: &'a Engine<S, P>,
    pub(super) control: &'a Control,
    pub(super) upload: CreateMultipartResponse,
    /// The parts: a file's, fixed; a stream's, the ones cut so far.
    pub(super) plan: Cell<PartPlan>,
    pub(super) reporter: Rc<Reporter>,
    pub(super) journal: Journal,
    /// The checksum every part carries, if any.
    pub(super) algorithm: Option<ChecksumAlgorithm>,
    /// A stream's source: its parts are cut as the transfer goes.
    pub(super) stream: Option<Rc<dyn PartSource>>,
    /// A stream the caller spools (it gave the stream a fingerprint): its upload is kept for a
    /// resume from the spool when it fails, as a file's is.
    pub(super) spooled: bool,
    /// Whether the stream may hold more parts than `plan` (it has not ended).
    pub(super) open: Cell<bool>,
}

/// An upload just created: its first batch of URLs, when the server signed one with the create,
/// and the checksums asked for while it was being created.
pub(super) struct Created {
    pub(super) upload: CreateMultipartResponse,
    pub(super) algorithm: Option<ChecksumAlgorithm>,
    first_batch: Option<SignedBatch>,
    pub(super) early: Early,
}

impl<S: Signer, P: PartSink> Engine<S, P> {
    /// Uploads `file`, reporting progress to `on_progress`, until done, failed or cancelled
    /// through `control`: as one `PUT` when the options say so
    /// ([`UploadOptions::goes_as_one_put`](super::UploadOptions::goes_as_one_put)), else in
    /// parts.
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
        let interval = self.options.progress_interval_ms;
        if self.options.goes_as_one_put(file.size) {
            let total = Some((file.size, 1));
            let reporter = Reporter::new(total, self.clock.clone(), interval, on_progress);
            return self.single_put(file, reporter, control).await;
        }
        if control.is_cancelled() {
            return Err(Error::Aborted { cleanup: None });
        }
        let resume = self.resume.clone().zip(file.fingerprint.clone());
        let earlier = match self.look_up(resume.as_ref()) {
            Some(found) => found.await,
            None => None,
        };
        // A record's part size wins over the options: its parts were cut with it.
        if let Some(record) = &earlier
            && let Ok(p) = PartPlan::new(file.size, record.part_size)
        {
            plan = p;
        }
        let clock = self.clock.clone();
        let total = Some((plan.size, plan.part_count));
        let reporter = Reporter::new(total, clock, interval, on_progress);
        reporter.report();

        let mut resumed = None;
        if let (Some(record), Some(resume)) = (earlier, &resume) {
            let upload = record.upload();
            let listed = self
                .call(
                    ApiCall::ListParts,
                    Some(control),
                    &reporter,
                    Phase::Uploading,
                    || self.signer.list_parts(&upload),
                )
                .await;
            resumed = reconciled(record, listed, resume, &plan)?;
        }
        let (created, record) = match resumed {
            Some(record) => (self.resumed(&record), Some(record)),
            None => {
                self.create(file, &plan, false, resume.as_ref(), &reporter, control)
                    .await?
            }
        };
        let store = resume.map(|(store, _)| store);
        let m = Multipart {
            engine: self,
            control,
            upload: created.upload,
            plan: Cell::new(plan),
            reporter,
            journal: Journal::new(store, record, self.clock.clone()),
            algorithm: created.algorithm,
            stream: None,
            spooled: false,
            open: Cell::new(false),
        };
        m.journal.save();
        if control.is_cancelled() {
            m.journal.forget();
            return Err(self.abort(&m.upload).await);
        }
        m.send_and_complete(created.first_batch, created.early)
            .await
    }

    /// Starts looking up the file's resume record, which is found when it is of the same file
    /// and has not expired; records that have expired are removed.
    fn look_up<'r>(
        &self,
        resume: Option<&'r Resume>,
    ) -> Option<impl Future<Output = Option<ResumeRecord>> + 'r> {
        let (store, fingerprint) = resume?;
        let now = self.clock.now_ms();
        // Asked first, the lookup does not queue behind the expiry sweep's write.
        let found = store.load(&fingerprint.key());
        store.remove_older_than(now - DEFAULT_RECORD_MAX_AGE_MS);
        Some(found.map(move |found| {
            found.filter(|r| {
                r.fingerprint == *fingerprint && now - r.updated_ms < DEFAULT_RECORD_MAX_AGE_MS
            })
        }))
    }

    /// The upload a resume record continues.
    fn resumed(&self, record: &ResumeRecord) -> Created {
        Created {
            upload: record.upload(),
            algorithm: self.algorithm(record.checksum),
            first_batch: None,
            early: Vec::new(),
        }
    }

    /// Creates the upload (a `streamed` one with only its part size declared, see
    /// [`Engine::create_request`]) and, when it is to be resumable (`resume`), its first
    /// resume record.
    pub(super) async fn create(
        &self,
        file: &FileInfo,
        plan: &PartPlan,
        streamed: bool,
        resume: Option<&Resume>,
        reporter: &Reporter,
        control: &Control,
    ) -> Result<(Created, Option<ResumeRecord>), Error> {
        let (request, guess, early) = self.create_request(file, plan, streamed);
        let upload = self
            .call(
                ApiCall::Create,
                Some(control),
                reporter,
                Phase::Uploading,
                || self.signer.create(&request),
            )
            .await?;
        let created = self.created(upload, guess, early);
        let record = resume.map(|(_, f)| self.new_record(f, &created, plan));
        Ok((created, record))
    }

    /// What creates the upload, the checksum it will likely use, and the checksums of its first
    /// parts, asked for now. With the size and part size declared, the server fixes the plan:
    /// it signs each part's exact length and refuses part numbers beyond it. A `streamed`
    /// upload declares only the part size (the parts cut so far are `plan`): the server then
    /// signs the length each part's URL is asked for, at most the part size.
    fn create_request(
        &self,
        file: &FileInfo,
        plan: &PartPlan,
        streamed: bool,
    ) -> (CreateMultipartRequest, Option<ChecksumAlgorithm>, Early) {
        // Without a checksum of our own, the server can sign the first batch with the create and
        // spare the first PUTs a round trip (it signs none when it wants checksums, nor for a
        // stream, whose parts' lengths it does not know).
        let presign = !streamed && !matches!(self.options.checksum, ChecksumChoice::Use(_));
        // The algorithm is known before the create answers when the options name it, and likely
        // when an earlier upload heard the server's: the first parts are hashed while the create
        // is out, so that their PUTs do not also wait for the hasher to start and read them
        // after it.
        let guess = self.guess();
        let mut early = Vec::new();
        if let (Some(algorithm), Some(summer)) = (guess, &self.checksummer) {
            early = plan
                .numbers()
                .take(HASHES_AT_ONCE)
                .map(|part| (part, self.hash(summer, algorithm, plan, part)))
                .collect();
        }
        let request = CreateMultipartRequest {
            filename: file.filename.clone(),
            relative_path: file.relative_path.clone(),
            content_type: file.content_type.clone(),
            metadata: file.metadata.clone(),
            size: (!streamed).then_some(file.size),
            part_size: Some(plan.part_size),
            presign_parts: presign
                .then(|| batch_size(self.options.concurrency, plan.part_count as usize) as u32),
            checksum: self.declared(),
        };
        (request, guess, early)
    }

    /// The upload the server created, with the checksum it asked for; the `early` checksums are
    /// dropped when they are of another algorithm than the `guess`.
    fn created(
        &self,
        created: CreatedUpload,
        guess: Option<ChecksumAlgorithm>,
        mut early: Early,
    ) -> Created {
        let CreatedUpload {
            upload,
            first_batch,
        } = created;
        self.heard(upload.checksum);
        let algorithm = self.algorithm(upload.checksum);
        if algorithm != guess {
            early.clear();
        }
        Created {
            first_batch,
            upload,
            algorithm,
            early,
        }
    }

    /// The resume record of a new upload, with no part stored yet.
    fn new_record(
        &self,
        fingerprint: &Fingerprint,
        created: &Created,
        plan: &PartPlan,
    ) -> ResumeRecord {
        ResumeRecord {
            fingerprint: fingerprint.clone(),
            upload_id: created.upload.upload_id.clone(),
            key: created.upload.key.clone(),
            bucket: created.upload.bucket.clone(),
            part_size: plan.part_size,
            parts: PartMap::new(),
            updated_ms: self.clock.now_ms(),
            checksum: created.algorithm,
        }
    }

    /// The parts of `sent` that the store does not list with the ETag (or, where it lists no
    /// ETags, the size) they were acknowledged with.
    async fn parts_to_resend(
        &self,
        m: &Multipart<'_, S, P>,
        sent: &[(CompletedPart, Option<String>)],
    ) -> Vec<u32> {
        let Ok(listed) = self
            .call(
                ApiCall::ListParts,
                Some(m.control),
                &m.reporter,
                Phase::Completing,
                || self.signer.list_parts(&m.upload),
            )
            .await
        else {
            return Vec::new();
        };
        let listed: PartMap<_> = listed.into_iter().map(|l| (l.part_number, l)).collect();
        sent.iter()
            .map(|(p, _)| p)
            .filter(|p| match listed.get(p.part_number) {
                None => true,
                Some(l) if l.etag.is_empty() => l.size != m.plan().part_len(p.part_number),
                Some(l) => l.etag.trim_matches('"') != p.etag.trim_matches('"'),
            })
            .map(|p| p.part_number)
            .collect()
    }

    pub(super) async fn abort(&self, upload: &CreateMultipartResponse) -> Error {
        Error::Aborted {
            cleanup: self.signer.abort(upload).await.err(),
        }
    }
}

impl<S: Signer, P: PartSink> Multipart<'_, S, P> {
    /// The parts: all of a file's, or the ones of a stream cut so far.
    pub(super) fn plan(&self) -> PartPlan {
        self.plan.get()
    }

    /// Sends the parts not in `already` and completes; when the store refuses a part it
    /// acknowledged, sends again what it does not hold as sent and completes again (not for a
    /// stream: its parts are gone once stored).
    pub(super) async fn send_and_complete(
        &self,
        mut first_batch: Option<SignedBatch>,
        mut early: Early,
    ) -> Result<UploadResult, Error> {
        let engine = self.engine;
        let mut already = self.journal.stored_parts();
        if !already.is_empty() {
            let plan = self.plan();
            let bytes = already.keys().map(|p| plan.part_len(p)).sum();
            self.reporter.already_stored(bytes, already.len() as u32);
        }
        let mut rounds = 0;
        loop {
            let transfer = Transfer::new(
                self,
                already,
                first_batch.take(),
                std::mem::take(&mut early),
            );
            let parts = match transfer.run().await {
                Ok(parts) => parts,
                // Every in-flight PUT and signing request was dropped with the transfer, before
                // the abort: a PUT landing after the abort would store an orphan part.
                Err(Stop::Cancelled) => {
                    self.journal.forget();
                    if let Some(source) = &self.stream {
                        source.cancel();
                    }
                    return Err(engine.abort(&self.upload).await);
                }
                Err(Stop::Failed(e)) if self.stream.is_some() => {
                    return Err(self.stream_stopped(e).await);
                }
                Err(Stop::Failed(e)) => {
                    // Kept for a later resume: make sure it lists every stored part.
                    self.journal.flush();
                    return Err(e);
                }
            };
            self.reporter.set_phase(Phase::Completing);
            let checksum = engine.composite_checksum(self.algorithm, &parts).await;
            let request = complete_request(&parts);
            let completed = engine
                .call(
                    ApiCall::Complete,
                    None,
                    &self.reporter,
                    Phase::Completing,
                    || engine.signer.complete(&self.upload, &request),
                )
                .await;
            let error = match completed {
                Ok(done) => return Ok(self.finish(done, checksum)),
                Err(e) => e,
            };
            if self.stream.is_some() {
                return Err(self.stream_stopped(error).await);
            }
            // The store refused a part it acknowledged: an interrupted, late attempt of it can
            // replace a good one (docs/stores.md, "Completion"). Send again what the store does
            // not hold as we sent it, and complete again.
            let resend = if rounds < MAX_COMPLETE_ROUNDS && error.code() == "invalid_part" {
                engine.parts_to_resend(self, &parts).await
            } else {
                Vec::new()
            };
            if resend.is_empty() {
                self.journal.flush();
                return Err(error);
            }
            rounds += 1;
            for &part in &resend {
                self.reporter.redo_part(part, self.plan().part_len(part));
            }
            already = kept(parts, &resend);
        }
    }

    /// A stream's upload failed: the stream is cancelled. A spooled stream's upload is kept,
    /// its record written, for a resume from the spool; any other cannot be resumed (the stream
    /// cannot be read again), so it is aborted, its stored parts deleted. `e` names the failure;
    /// a stream's own failure also says what became of the upload.
    async fn stream_stopped(&self, e: Error) -> Error {
        if let Some(source) = &self.stream {
            source.cancel();
        }
        let (kept, cleanup) = if self.spooled {
            self.journal.flush();
            (true, None)
        } else {
            self.journal.forget();
            (false, self.engine.signer.abort(&self.upload).await.err())
        };
        match e {
            Error::StreamFailed { part, message, .. } => Error::StreamFailed {
                part,
                message,
                kept,
                cleanup,
            },
            e => e,
        }
    }

    /// The upload is complete: nothing to resume, progress at 100 %.
    fn finish(&self, done: CompleteResponse, checksum: Option<String>) -> UploadResult {
        self.journal.forget();
        self.reporter.finish();
        UploadResult {
            key: done.key,
            bucket: done.bucket,
            location: done.location,
            etag: done.etag,
            size: self.plan().size,
            checksum,
            whole_file: done.whole_file,
            receipt: done.receipt,
        }
    }
}

/// The parts of `sent` not in `resend`, as stored parts for the next round.
fn kept(sent: Vec<(CompletedPart, Option<String>)>, resend: &[u32]) -> Stored {
    sent.into_iter()
        .filter(|(p, _)| !resend.contains(&p.part_number))
        .map(|(p, sum)| (p.part_number, (p.etag, sum)))
        .collect()
}

/// The completion of `parts`, each with its checksum where S3 takes one.
fn complete_request(parts: &[(CompletedPart, Option<String>)]) -> CompleteRequest {
    CompleteRequest {
        parts: parts
            .iter()
            .map(|(part, sum)| with_checksum(part.clone(), sum.clone()))
            .collect(),
    }
}

/// What a resume record leaves after the store's list of its parts (`listed`): the record with
/// only the parts the store still holds as recorded; or `None`, and the record removed, when its
/// upload is gone (completed, aborted, purged) or no longer ours.
fn reconciled(
    record: ResumeRecord,
    listed: Result<Vec<ListedPart>, Error>,
    (store, fingerprint): &Resume,
    plan: &PartPlan,
) -> Result<Option<ResumeRecord>, Error> {
    match listed {
        Ok(listed) => {
            let plan_size = |n: u32| (1..=plan.part_count).contains(&n).then(|| plan.part_len(n));
            let parts = reconcile(&record, &listed, plan_size);
            Ok(Some(ResumeRecord { parts, ..record }))
        }
        Err(Error::Api {
            source: ApiError::Status { status, .. },
            ..
        }) if (400..500).contains(&status) => {
            store.remove(&fingerprint.key());
            Ok(None)
        }
        Err(e) => Err(e),
    }
}
