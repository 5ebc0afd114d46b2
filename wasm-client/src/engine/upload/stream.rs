//! [`Engine::upload_stream`]: an upload that begins before its size is known.
//!
//! The first part is cut before anything is asked of the server: a stream that ends within it
//! goes as one `PUT` (a zero-byte stream too), like a small file. Otherwise the multipart upload
//! is created with only its part size declared, and the transfer cuts the next parts as the
//! earlier ones are stored ([`PartSource`]): every part but the last holds exactly the part
//! size (stores such as R2 require equal parts), at most `concurrency` parts are held at once
//! plus the one being filled, and a part is sent as soon as its bytes are there.
//!
//! A stream cannot be read twice, so an upload of one is not kept for a later resume unless the
//! caller spools the stream (and says so with a fingerprint): when it fails or is cancelled, the
//! stream is cancelled and the multipart upload aborted.

use std::cell::Cell;
use std::pin::pin;
use std::rc::Rc;

use futures::future::{self, Either};
use s3_direct_protocol::PartPlan;

use super::multipart::Multipart;
use super::wait::cancelled;
use super::{Engine, FileInfo, UploadResult};
use crate::engine::control::Control;
use crate::engine::error::Error;
use crate::engine::ports::{PartSink, PartSource, Signer};
use crate::engine::progress::{ProgressCallback, Reporter};
use crate::engine::resume::Journal;

impl<S: Signer, P: PartSink> Engine<S, P> {
    /// Uploads what `source` reads from a stream, reporting progress (the total unknown until
    /// the stream ends) to `on_progress`, until done, failed or cancelled through `control`.
    ///
    /// `file` names the object (its `size` is ignored). With a `fingerprint` (and a resume
    /// store), the caller spools the stream: the upload keeps a resume record under it, and one
    /// that fails (not cancelled) is kept, for an [`Engine::upload`] of the spooled bytes with
    /// the same fingerprint to finish. The part size is the
    /// options' part size, or the one a file of `expected_size` bytes would get, or
    /// [`DEFAULT_STREAM_PART_SIZE`](super::DEFAULT_STREAM_PART_SIZE); a stream that holds more
    /// than 10,000 such parts fails with [`Error::StreamTooLarge`]. An expected size is a hint
    /// for the part size: a stream may end before it or go past it.
    pub async fn upload_stream(
        &self,
        file: &FileInfo,
        expected_size: Option<u64>,
        source: Rc<dyn PartSource>,
        on_progress: ProgressCallback,
        control: &Control,
    ) -> Result<UploadResult, Error> {
        let done = match self.options.stream_part_size(expected_size) {
            Ok(part_size) => {
                let interval = self.options.progress_interval_ms;
                let reporter = Reporter::new(None, self.clock.clone(), interval, on_progress);
                reporter.report();
                self.stream_parts(file, part_size, &source, reporter, control)
                    .await
            }
            Err(e) => Err(e),
        };
        if done.is_err() {
            source.cancel();
        }
        done
    }

    async fn stream_parts(
        &self,
        file: &FileInfo,
        part_size: u64,
        source: &Rc<dyn PartSource>,
        reporter: Rc<Reporter>,
        control: &Control,
    ) -> Result<UploadResult, Error> {
        let first = source.cut(1, part_size);
        let len = match future::select(first, pin!(cancelled(control))).await {
            Either::Left((cut, _)) => cut.map_err(|e| Error::StreamFailed {
                part: 1,
                message: e.message,
                kept: false,
                cleanup: None,
            })?,
            Either::Right(_) => return Err(Error::Aborted { cleanup: None }),
        };
        reporter.cut(len);
        if len < part_size {
            reporter.ended();
            let file = FileInfo {
                size: len,
                fingerprint: None,
                ..file.clone()
            };
            return self.single_put(&file, reporter, control).await;
        }
        let plan = PartPlan {
            size: len,
            part_size,
            part_count: 1,
        };
        // A spooled stream (one with a fingerprint) keeps a resume record like a file.
        let resume = self.resume.clone().zip(file.fingerprint.clone());
        let (created, record) = self
            .create(file, &plan, true, resume.as_ref(), &reporter, control)
            .await?;
        let spooled = resume.is_some();
        let store = resume.map(|(store, _)| store);
        let m = Multipart {
            engine: self,
            control,
            upload: created.upload,
            plan: Cell::new(plan),
            reporter,
            journal: Journal::new(store, record, self.clock.clone()),
            algorithm: created.algorithm,
            stream: Some(source.clone()),
            spooled,
            open: Cell::new(true),
        };
        m.journal.save();
        if control.is_cancelled() {
            m.journal.forget();
            return Err(self.abort(&m.upload).await);
        }
        m.send_and_complete(None, created.early).await
    }
}
