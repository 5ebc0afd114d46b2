//! A small file sent as one presigned `PUT` (`GET /params`) under the same retry, re-sign, stall,
//! pause and cancel policies as a part, then reported done to `POST /params/complete`.

use std::pin::pin;
use std::rc::Rc;

use futures::future::{self, Either};
use s3_direct_protocol::ErrorCode;
use s3_direct_protocol::wire::{
    ChecksumAlgorithm, ObjectCompleteRequest, SinglePutParams, WholeFileChecksum,
};

use super::attempt::{PutDone, PutOutcome, Retry, part_error, part_headers};
use super::wait::cancelled;
use super::{ChecksumChoice, Engine, FileInfo, UploadResult};
use crate::engine::control::{Control, RunState};
use crate::engine::error::{ApiCall, ApiError, Error, Quoted};
use crate::engine::ports::{PartSink, Signer, SinglePutRequest};
use crate::engine::progress::{Phase, Reporter};
use crate::engine::retry::Attempts;
use crate::engine::signing::SignedUrl;
use crate::engine::slots::Slot;

/// One file's single PUT, tried until it is stored or the upload stops.
struct SinglePut<'a, S, P> {
    engine: &'a Engine<S, P>,
    file: &'a FileInfo,
    control: &'a Control,
    reporter: Rc<Reporter>,
    /// What the server is asked to sign, with the file's checksum when it has one.
    request: SinglePutRequest,
    /// The algorithm of `request.checksum`.
    sent: Option<ChecksumAlgorithm>,
    attempts: Attempts,
    /// How long the last stalled attempt was silent, for the error if it gives up.
    stalled_ms: u64,
}

/// Paused, cancelled or offline while waiting for a shared slot, or while sending.
struct Interrupted;

impl<S: Signer, P: PartSink> Engine<S, P> {
    /// Uploads a small file with one presigned `PUT`: the same retry policy, stall watchdog,
    /// pause and cancel as parts of a multipart upload, and the same kind of result.
    ///
    /// A checksum chosen explicitly (`ChecksumChoice::Use`) is computed first and signed into the
    /// URL. With `Auto`, the server names the one it wants in its answer; when the URL was not
    /// signed for it, the file is hashed and the URL asked for again with it (a round trip more,
    /// which [`ServerChecksum`](super::ServerChecksum) spares the uploads after the first). An MD5
    /// the server did not sign goes as a plain `Content-MD5` header, which S3 checks on a
    /// presigned PUT all the same. Cancelling leaves nothing behind: the object exists only once
    /// the PUT has succeeded.
    pub(super) async fn single_put(
        &self,
        file: &FileInfo,
        reporter: Rc<Reporter>,
        control: &Control,
    ) -> Result<UploadResult, Error> {
        if control.is_cancelled() {
            return Err(Error::Aborted { cleanup: None });
        }
        reporter.report();
        let sent = self.guess();
        let checksum = match (sent, &self.checksummer) {
            (Some(algorithm), Some(summer)) => Some(
                self.whole_file_sum(summer, algorithm, file.size, control, &reporter)
                    .await?,
            ),
            _ => None,
        };
        let request = SinglePutRequest {
            filename: file.filename.clone(),
            relative_path: file.relative_path.clone(),
            content_type: file.content_type.clone(),
            size: file.size,
            metadata: file.metadata.clone(),
            checksum,
        };
        let mut put = SinglePut {
            engine: self,
            file,
            control,
            reporter,
            request,
            sent,
            attempts: Attempts::default(),
            stalled_ms: 0,
        };
        put.run().await
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
}

impl<S: Signer, P: PartSink> SinglePut<'_, S, P> {
    /// Sends the file until it is stored, pausing, re-signing and retrying as a part would.
    async fn run(&mut self) -> Result<UploadResult, Error> {
        let (engine, control) = (self.engine, self.control);
        let mut signed: Option<(SinglePutParams, SignedUrl)> = None;
        loop {
            engine
                .hold(Some(control), &self.reporter, Phase::Uploading)
                .await?;
            let now = engine.clock.now_ms();
            let margin = engine.options.resign_margin_ms;
            let (params, url) = match signed.take().filter(|(_, url)| url.usable_at(now, margin)) {
                Some(signed) => signed,
                None => match self.sign(now).await? {
                    Some(signed) => signed,
                    None => continue,
                },
            };
            let Ok(slot) = self.take_slot().await else {
                signed = Some((params, url));
                continue;
            };
            let again = url.clone();
            let Ok(done) = self.send(url).await else {
                // The PUT's future was dropped, which aborts the request; it starts over from
                // its first byte later.
                self.reporter.abandon_part(1);
                if control.is_cancelled() {
                    return Err(Error::Aborted { cleanup: None });
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
                    let sent = self.stored(&params, &url, etag);
                    let result = engine
                        .complete_single(&params, sent, &self.reporter)
                        .await?;
                    self.reporter.finish();
                    return Ok(result);
                }
                PutOutcome::Failed(e) => Some(e),
                PutOutcome::Stalled(ms) => {
                    self.stalled_ms = ms;
                    None
                }
            };
            self.reporter.abandon_part(1);
            match engine.after_failure(&mut self.attempts, failure.as_ref(), bytes, &url) {
                Retry::Offline => signed = Some((params, url)),
                Retry::GiveUp => {
                    let tries = self.attempts.tries;
                    return Err(part_error(1, 0, failure, tries, self.stalled_ms));
                }
                // `signed` stays empty: the next round asks for a fresh URL.
                Retry::Resign => {}
                Retry::Wait { delay_ms, keep_url } => {
                    if keep_url {
                        signed = Some((params, url));
                    }
                    let sleep = engine.clock.sleep(delay_ms);
                    if let Either::Right(_) = future::select(sleep, pin!(cancelled(control))).await
                    {
                        return Err(Error::Aborted { cleanup: None });
                    }
                }
            }
        }
    }

    /// A URL for the file's PUT; `None` when the server asked for a checksum the request did
    /// not carry: the file has then been hashed with it, and the URL must be asked for again.
    async fn sign(&mut self, now: f64) -> Result<Option<(SinglePutParams, SignedUrl)>, Error> {
        let engine = self.engine;
        let request = &self.request;
        let params = engine
            .call(
                ApiCall::SinglePut,
                Some(self.control),
                &self.reporter,
                Phase::Uploading,
                || engine.signer.single_put(request),
            )
            .await?;
        if params.url.is_empty() || !params.method.eq_ignore_ascii_case("PUT") {
            return Err(Error::Api {
                call: ApiCall::SinglePut,
                source: ApiError::InvalidResponse(format!(
                    "expected a presigned PUT URL, got method {} and URL {}",
                    Quoted(&params.method),
                    Quoted(&params.url)
                )),
            });
        }
        engine.heard(params.checksum);
        // The server wants a checksum this URL was not signed for: hash, ask again.
        if engine.options.checksum == ChecksumChoice::Auto
            && params.checksum != self.sent
            && let (Some(algorithm), Some(summer)) = (params.checksum, &engine.checksummer)
        {
            let size = self.file.size;
            let sum = engine
                .whole_file_sum(summer, algorithm, size, self.control, &self.reporter)
                .await?;
            self.request.checksum = Some(sum);
            self.sent = Some(algorithm);
            return Ok(None);
        }
        let headers = Rc::new(params.headers.clone());
        let headers = part_headers(&headers, None, self.request.checksum.as_ref());
        let url = SignedUrl::new(params.url.clone(), headers, None, now);
        Ok(Some((params, url)))
    }

    /// With a queue's shared slots, one, waited for in line; none to take without them.
    async fn take_slot(&self) -> Result<Option<Slot>, Interrupted> {
        let Some(slots) = &self.engine.slots else {
            return Ok(None);
        };
        let changed = pin!(self.engine.changed(Some(self.control)));
        match future::select(slots.take(), changed).await {
            Either::Left((slot, _)) => Ok(Some(slot)),
            // Paused, cancelled or offline while in line: look again.
            Either::Right(_) => Err(Interrupted),
        }
    }

    /// One attempt of the PUT, until it ends or is stopped (paused, cancelled, offline): its
    /// future is then dropped, which aborts the request.
    async fn send(&mut self, url: SignedUrl) -> Result<PutDone, Interrupted> {
        let (engine, control) = (self.engine, self.control);
        let size = self.file.size;
        let watch = engine.watch(size);
        let progress = self.reporter.start_part(1, watch.clone());
        self.attempts.tries += 1;
        let mut put = pin!(engine.put(1, url, 0..size, progress, watch));
        loop {
            match future::select(put.as_mut(), pin!(engine.changed(Some(control)))).await {
                Either::Left((done, _)) => return Ok(done),
                Either::Right(_)
                    if control.state() != RunState::Running || !engine.network.is_online() =>
                {
                    return Err(Interrupted);
                }
                Either::Right(_) => {}
            }
        }
    }

    /// The PUT succeeded: what it showed, for the server to verify.
    fn stored(
        &self,
        params: &SinglePutParams,
        url: &SignedUrl,
        etag: Option<String>,
    ) -> UploadResult {
        self.reporter.part_done(1);
        // A single PUT needs no ETag to be complete: a store that hides it (CORS) still stored
        // the object.
        let location = url.url.split('?').next().unwrap_or_default().to_owned();
        UploadResult {
            whole_file: WholeFileChecksum::default(),
            key: params.key.clone(),
            bucket: params.bucket.clone(),
            location,
            etag: etag.unwrap_or_default(),
            size: self.file.size,
            checksum: self.request.checksum.clone(),
            receipt: None,
        }
    }
}
