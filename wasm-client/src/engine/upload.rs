//! The upload driver: create the multipart upload, PUT the parts in parallel with URLs signed a
//! batch ahead, then complete — or abort when the caller cancels.
//!
//! Policies, each tested in `tests/engine`:
//! - at most `concurrency` PUTs in flight; parts finish in any order and are completed sorted;
//! - a PUT without a readable ETag fails the upload at once (it is a CORS misconfiguration that
//!   would otherwise surface only after the whole file was sent);
//! - cancel drops every in-flight request first, then aborts the multipart upload (its stored
//!   parts would be billed until purged);
//! - any other failure keeps the multipart upload, so a later resume can reuse its parts.

use std::collections::BTreeMap;
use std::future::{Future, poll_fn};
use std::ops::Range;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::task::Poll;

use futures::future::{self, Either, Fuse, FusedFuture};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use s3_direct_protocol::limits::{DEFAULT_PART_SIZE, MAX_PART_SIZE, MIN_PART_SIZE};
use s3_direct_protocol::wire::{
    CompleteRequest, CompletedPart, CreateMultipartRequest, CreateMultipartResponse,
    SignBatchResponse,
};
use s3_direct_protocol::{PartPlan, PlanError};

use super::error::{ApiCall, ApiError, Error, PutError};
use super::ports::{Clock, PartPut, PartSink, Signer};
use super::progress::{PartProgress, ProgressCallback, Reporter};
use super::signing::{SignQueue, SignedPart};

/// Parallel PUTs unless configured otherwise: what Chromium allows per origin over HTTP/1.1.
pub const DEFAULT_CONCURRENCY: usize = 6;
/// Most parallel PUTs allowed. Beyond this a browser only queues the requests, and URLs signed for
/// queued parts age for nothing.
pub const MAX_CONCURRENCY: usize = 64;
/// Least time between two progress reports caused by bytes sent (a browser fires an upload
/// progress event about every 50 ms per request; a page needs far fewer).
pub const DEFAULT_PROGRESS_INTERVAL_MS: f64 = 100.0;

/// How to upload.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadOptions {
    /// Preferred part size in bytes; grown automatically for files that would need more than
    /// 10,000 parts.
    pub part_size: u64,
    /// Most part PUTs in flight at once.
    pub concurrency: usize,
    /// Least milliseconds between progress reports caused by bytes sent. Parts being stored and
    /// the upload finishing always report.
    pub progress_interval_ms: f64,
}

impl Default for UploadOptions {
    fn default() -> Self {
        Self {
            part_size: DEFAULT_PART_SIZE,
            concurrency: DEFAULT_CONCURRENCY,
            progress_interval_ms: DEFAULT_PROGRESS_INTERVAL_MS,
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
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&self.part_size) {
            return Err(Error::InvalidOptions(format!(
                "part size {} is outside S3's limits ({MIN_PART_SIZE}..={MAX_PART_SIZE} bytes)",
                self.part_size
            )));
        }
        if self.progress_interval_ms.is_nan() || self.progress_interval_ms < 0.0 {
            return Err(Error::InvalidOptions(format!(
                "progress interval {} ms is not a number of milliseconds >= 0",
                self.progress_interval_ms
            )));
        }
        Ok(())
    }

    fn plan(&self, size: u64) -> Result<PartPlan, Error> {
        self.validate()?;
        PartPlan::new(size, self.part_size).map_err(|e| match e {
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
}

/// Uploads files through a [`Signer`] and a [`PartSink`].
pub struct Engine<S, P> {
    signer: S,
    sink: P,
    clock: Rc<dyn Clock>,
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
    pub fn new(signer: S, sink: P, clock: Rc<dyn Clock>, options: UploadOptions) -> Self {
        Self {
            signer,
            sink,
            clock,
            options,
        }
    }

    /// Uploads `file`, reporting progress to `on_progress`, until done or until `cancel` resolves.
    ///
    /// Cancel is honoured before the upload is created, and while parts are being sent. A cancel
    /// that arrives while the server is creating the upload takes effect when its answer arrives,
    /// so the new upload can be aborted instead of left behind. Once every part is stored and
    /// completion has been requested, cancel is too late: the object is being assembled.
    pub async fn upload(
        &self,
        file: &FileInfo,
        on_progress: ProgressCallback,
        cancel: impl Future<Output = ()>,
    ) -> Result<UploadResult, Error> {
        let plan = self.options.plan(file.size)?;
        let mut cancel = pin!(cancel.fuse());
        if cancelled(cancel.as_mut()) {
            return Err(Error::Aborted { cleanup: None });
        }

        let reporter = Reporter::new(
            plan.size,
            plan.part_count,
            self.clock.clone(),
            self.options.progress_interval_ms,
            on_progress,
        );
        reporter.report();

        let request = CreateMultipartRequest {
            filename: file.filename.clone(),
            content_type: file.content_type.clone(),
            metadata: file.metadata.clone(),
            size: Some(file.size),
        };
        let upload = self
            .signer
            .create(&request)
            .await
            .map_err(|source| Error::Api {
                call: ApiCall::Create,
                source,
            })?;
        if cancelled(cancel.as_mut()) {
            return Err(self.abort(&upload).await);
        }

        let transferred = {
            let transfer = pin!(self.transfer(&upload, &plan, &reporter));
            match future::select(transfer, cancel.as_mut()).await {
                Either::Left((result, _)) => Some(result),
                Either::Right(_) => None,
            }
            // `transfer` is dropped here, and with it every in-flight PUT and signing request,
            // before the abort below: a PUT landing after the abort would store an orphan part.
        };
        let Some(parts) = transferred else {
            return Err(self.abort(&upload).await);
        };
        let parts = parts?;

        let done = self
            .signer
            .complete(&upload, &CompleteRequest { parts })
            .await
            .map_err(|source| Error::Api {
                call: ApiCall::Complete,
                source,
            })?;
        reporter.finish();
        Ok(UploadResult {
            key: done.key,
            bucket: done.bucket,
            location: done.location,
            etag: done.etag,
            size: file.size,
        })
    }

    /// Sends every part; returns them sorted for completion.
    async fn transfer(
        &self,
        upload: &CreateMultipartResponse,
        plan: &PartPlan,
        reporter: &Rc<Reporter>,
    ) -> Result<Vec<CompletedPart>, Error> {
        let concurrency = self.options.concurrency;
        let parts_total = plan.part_count;
        let mut queue = SignQueue::new(plan.numbers(), concurrency);
        let mut stored: Vec<CompletedPart> = Vec::with_capacity(parts_total as usize);
        let mut puts = FuturesUnordered::new();
        let mut signing = pin!(Fuse::terminated());
        let mut signing_call = ApiCall::Sign { first: 0, count: 0 };

        while stored.len() < parts_total as usize {
            while puts.len() < concurrency {
                let Some(signed) = queue.take() else { break };
                let range = plan.range(signed.part);
                let progress = reporter.start_part(signed.part, range.end - range.start);
                puts.push(put_part(&self.sink, signed, range, progress));
            }
            if signing.is_terminated()
                && let Some(batch) = queue.next_batch()
            {
                // `next_batch` never returns an empty batch.
                signing_call = ApiCall::Sign {
                    first: batch[0],
                    count: batch.len(),
                };
                signing.set(sign_parts(&self.signer, upload, batch).fuse());
            }
            // Every part not stored is unsigned (so a batch was just requested, or one is out),
            // signed (so it was just launched, or all PUT slots are busy), or being PUT. Waiting
            // on nothing would hang the upload forever; a panic at least surfaces the bug.
            assert!(
                !puts.is_empty() || !signing.is_terminated(),
                "upload scheduler has nothing to wait for with {} of {parts_total} parts stored",
                stored.len()
            );

            match next_event(&mut puts, signing.as_mut()).await {
                Event::Signed(Ok(answer)) => {
                    queue.accept(answer).map_err(|missing| Error::Api {
                        call: signing_call,
                        source: ApiError::InvalidResponse(format!(
                            "the batch has no URL for part {missing}"
                        )),
                    })?;
                }
                Event::Signed(Err(source)) => {
                    return Err(Error::Api {
                        call: signing_call,
                        source,
                    });
                }
                Event::Put(part, Ok(Some(etag))) if !etag.trim().is_empty() => {
                    reporter.part_done(part);
                    stored.push(CompletedPart {
                        part_number: part,
                        etag,
                    });
                }
                Event::Put(part, Ok(_)) => {
                    return Err(Error::MissingEtag {
                        part,
                        parts: parts_total,
                    });
                }
                Event::Put(part, Err(PutError::Status { status, body })) => {
                    return Err(Error::PartStatus {
                        part,
                        parts: parts_total,
                        status,
                        body,
                    });
                }
                Event::Put(part, Err(PutError::Network(message))) => {
                    return Err(Error::PartNetwork {
                        part,
                        parts: parts_total,
                        message,
                    });
                }
            }
        }
        stored.sort_unstable_by_key(|p| p.part_number);
        Ok(stored)
    }

    async fn abort(&self, upload: &CreateMultipartResponse) -> Error {
        Error::Aborted {
            cleanup: self.signer.abort(upload).await.err(),
        }
    }
}

/// Polls a fused cancel future once.
fn cancelled<F: Future<Output = ()> + FusedFuture>(cancel: Pin<&mut F>) -> bool {
    !cancel.is_terminated() && cancel.now_or_never().is_some()
}

/// Something the scheduler must react to.
enum Event {
    Signed(Result<SignBatchResponse, ApiError>),
    Put(u32, Result<Option<String>, PutError>),
}

/// Waits for the signing request or any PUT to finish, whichever is first.
async fn next_event<F, S>(puts: &mut FuturesUnordered<F>, mut signing: Pin<&mut S>) -> Event
where
    F: Future<Output = (u32, Result<Option<String>, PutError>)>,
    S: Future<Output = Result<SignBatchResponse, ApiError>> + FusedFuture,
{
    poll_fn(|cx| {
        if !signing.is_terminated()
            && let Poll::Ready(answer) = signing.as_mut().poll(cx)
        {
            return Poll::Ready(Event::Signed(answer));
        }
        match puts.poll_next_unpin(cx) {
            Poll::Ready(Some((part, result))) => Poll::Ready(Event::Put(part, result)),
            // `None` means no PUT is in flight; the signing request registered the waker.
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    })
    .await
}

async fn put_part<P: PartSink>(
    sink: &P,
    signed: SignedPart,
    range: Range<u64>,
    progress: PartProgress,
) -> (u32, Result<Option<String>, PutError>) {
    let put = PartPut {
        part: signed.part,
        url: &signed.url,
        headers: &signed.headers,
        range,
    };
    (signed.part, sink.put_part(put, progress).await)
}

async fn sign_parts<S: Signer>(
    signer: &S,
    upload: &CreateMultipartResponse,
    batch: Vec<u32>,
) -> Result<SignBatchResponse, ApiError> {
    signer.sign_parts(upload, &batch).await
}
