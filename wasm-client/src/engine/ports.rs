//! The engine's ports: the outside world as traits the engine owns.
//!
//! The browser implements them in `crate::web` (`fetch` for the signing server, `XMLHttpRequest`
//! for part PUTs, `Date.now()` and `setTimeout` for time, `navigator.onLine` and its events for the
//! network); the engine's tests implement them with scripted fakes and a manual clock.
//! Everything is single-threaded: futures need not be `Send`, which is what the browser's
//! callback-based APIs give us.

use std::collections::BTreeMap;
use std::ops::Range;

use futures::future::LocalBoxFuture;
use s3_direct_protocol::wire::{
    ChecksumAlgorithm, CompleteRequest, CompleteResponse, CreateMultipartRequest,
    CreateMultipartResponse, ListedPart, ObjectCompleteRequest, SignBatchResponse, SinglePutParams,
};

use super::error::{ApiError, ChecksumError, PutError, SourceError};
use super::parts::PartMap;
use super::progress::PartProgress;

/// The signing server: the calls of the signing API an upload needs.
///
/// The upload is identified by the [`CreateMultipartResponse`] that `create` returned (upload id,
/// key and bucket), passed back as is.
// `async fn` in a public trait cannot promise `Send` futures; the engine runs on one thread and
// the browser implementation's futures are not `Send`, so that is the contract we want.
#[allow(async_fn_in_trait)]
pub trait Signer {
    /// `POST {endpoint}/multipart`: starts a multipart upload. The answer may name the checksum
    /// the server wants with every part.
    async fn create(&self, request: &CreateMultipartRequest) -> Result<CreatedUpload, ApiError>;

    /// `GET {endpoint}/multipart/{uploadId}/batch`: presigned PUT URLs for `parts` (at most
    /// [`MAX_BATCH_PARTS`](s3_direct_protocol::limits::MAX_BATCH_PARTS), ascending), with the
    /// parts' checksums (`ALGO:BASE64`) to sign into them where `checksums` has one, and each
    /// part's length in bytes (from the plan) in `lengths`: the server signs it into the URL.
    async fn sign_parts(
        &self,
        upload: &CreateMultipartResponse,
        parts: &[u32],
        checksums: &PartMap<String>,
        lengths: &PartMap<u64>,
    ) -> Result<SignedBatch, ApiError>;

    /// `POST {endpoint}/multipart/{uploadId}/complete`: assembles the object from `request.parts`.
    async fn complete(
        &self,
        upload: &CreateMultipartResponse,
        request: &CompleteRequest,
    ) -> Result<CompleteResponse, ApiError>;

    /// `DELETE {endpoint}/multipart/{uploadId}`: discards the upload and its stored parts.
    async fn abort(&self, upload: &CreateMultipartResponse) -> Result<(), ApiError>;

    /// `GET {endpoint}/multipart/{uploadId}`: the parts the store holds (for resuming).
    async fn list_parts(
        &self,
        upload: &CreateMultipartResponse,
    ) -> Result<Vec<ListedPart>, ApiError>;

    /// `GET {endpoint}/params`: a presigned `PUT` of a whole (small) file, under a key the
    /// server chooses.
    async fn single_put(&self, request: &SinglePutRequest) -> Result<SinglePutParams, ApiError>;

    /// `POST {endpoint}/params/complete`: the small file under `request.key` was sent; the server
    /// reads it back, holds it to what `request.token` signed and answers the verified object with
    /// its receipt. A server older than the route answers 404 (and sends no token to begin with).
    async fn complete_single(
        &self,
        request: &ObjectCompleteRequest,
    ) -> Result<CompleteResponse, ApiError>;
}

/// A created multipart upload: the create's answer, with the part URLs it came with (its
/// `presigned` batch) taken out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedUpload {
    /// The answer, `presigned` empty.
    pub upload: CreateMultipartResponse,
    pub first_batch: Option<SignedBatch>,
}

impl From<CreateMultipartResponse> for CreatedUpload {
    fn from(mut upload: CreateMultipartResponse) -> Self {
        let first_batch = upload.presigned.take().map(SignedBatch::from);
        Self {
            upload,
            first_batch,
        }
    }
}

/// A batch of presigned part URLs ([`SignBatchResponse`]) with its per-part fields in
/// part-numbered tables: the browser reads the answer straight into these, so the page's module
/// holds no `BTreeMap` keyed by part number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignedBatch {
    /// Presigned `PUT` URL per part number.
    pub urls: PartMap<String>,
    /// Lifetime of every URL in seconds from when it was signed.
    pub expires: Option<u64>,
    /// Headers to send with every PUT of the batch.
    pub headers: BTreeMap<String, String>,
    /// Headers of one part's PUT, added to (and winning over) `headers`.
    pub part_headers: PartMap<BTreeMap<String, String>>,
}

impl From<SignBatchResponse> for SignedBatch {
    fn from(batch: SignBatchResponse) -> Self {
        Self {
            urls: batch.presigned_urls.into_iter().collect(),
            expires: batch.expires,
            headers: batch.headers,
            part_headers: batch.part_headers.into_iter().collect(),
        }
    }
}

/// What a single-PUT upload tells the signing server (`GET {endpoint}/params`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinglePutRequest {
    pub filename: String,
    /// The file's path within a folder the user chose (see [`FileInfo::relative_path`]).
    ///
    /// [`FileInfo::relative_path`]: super::FileInfo::relative_path
    pub relative_path: Option<String>,
    /// MIME type; empty lets the server pick `application/octet-stream`.
    pub content_type: String,
    /// Exact size in bytes, signed into the URL by servers that take it.
    pub size: u64,
    /// S3 user metadata (`x-amz-meta-*`), sent as `metadata[name]=value` like Uppy does.
    pub metadata: BTreeMap<String, String>,
    /// `ALGO:BASE64` checksum of the whole file, to sign into the URL.
    pub checksum: Option<String>,
}

/// One part PUT for a [`PartSink`].
#[derive(Debug, Clone)]
pub struct PartPut<'a> {
    /// 1-based part number.
    pub part: u32,
    /// Presigned URL to `PUT` the bytes to.
    pub url: &'a str,
    /// Headers to send exactly as given: they are signed into the URL.
    pub headers: &'a BTreeMap<String, String>,
    /// Byte range of the file this part holds.
    pub range: Range<u64>,
}

/// Where part bytes go: the store, through presigned URLs.
#[allow(async_fn_in_trait)] // see `Signer`
pub trait PartSink {
    /// Sends the bytes of `put.range` to `put.url` and returns the response's `ETag` header, or
    /// `None` when the response had none the implementation could read.
    ///
    /// Reports bytes sent so far through `progress` as they go. **Dropping the returned future
    /// must abort the request**: the engine drops in-flight PUTs on cancel and on failure, and a
    /// PUT that keeps running would both waste bandwidth and race a later attempt of the same part.
    async fn put_part(
        &self,
        put: PartPut<'_>,
        progress: PartProgress,
    ) -> Result<Option<String>, PutError>;
}

/// The bytes of a stream being uploaded, cut into parts as they arrive (see
/// [`Engine::upload_stream`](super::Engine::upload_stream)).
///
/// The engine cuts parts in order, one at a time, and only while fewer than `concurrency` parts
/// are held (cut and not yet stored): that is the backpressure on the producer. A cut part's
/// bytes are then what [`PartSink::put_part`] and [`Checksummer::checksum`] are asked for, by the
/// part's byte range within the object, until the engine releases it.
pub trait PartSource {
    /// Reads the stream's next bytes into part `part` until it holds `len` bytes or the stream
    /// ends, and answers how many it holds: `len`, or fewer (0 at most once, for a part that
    /// would start after the end) when the stream ended. Reading should go on when the returned
    /// future is not polled (the engine pauses) and must not lose bytes when it is dropped.
    fn cut(&self, part: u32, len: u64) -> LocalBoxFuture<'static, Result<u64, SourceError>>;

    /// The store holds `part`: its bytes may go.
    fn release(&self, part: u32);

    /// The upload stopped before the stream's end (cancelled or failed): stop reading it and
    /// drop every part held.
    fn cancel(&self);
}

/// Computes part checksums: in the browser in a Web Worker (hashing a part reads it into memory
/// and takes CPU; the page must stay responsive), in tests a fake.
pub trait Checksummer {
    /// The base64 checksum of the file's bytes in `range`, or why they could not be read.
    /// The work should start with the call, not when the future is first polled: the engine
    /// asks for the first parts' checksums before it creates the upload, and awaits them after.
    fn checksum(
        &self,
        algorithm: ChecksumAlgorithm,
        range: Range<u64>,
    ) -> LocalBoxFuture<'static, Result<String, ChecksumError>>;

    /// S3's composite checksum of an upload, base64: the `algorithm` checksum of its parts'
    /// checksums (`sums`, base64, in part order) as raw bytes, one after the other. Asked of the
    /// checksummer because the hashing code lives with it (in the browser, in the worker's own
    /// module, which a page without checksums never loads).
    fn composite(
        &self,
        algorithm: ChecksumAlgorithm,
        sums: Vec<String>,
    ) -> LocalBoxFuture<'static, Result<String, ChecksumError>>;

    /// Called when a checksum gave no answer in time (see [`hash_deadline_ms`]), before it is
    /// asked for again: start afresh (the browser's starts a new worker). Checksums still awaited
    /// must still be answered.
    ///
    /// [`hash_deadline_ms`]: super::upload::hash_deadline_ms
    fn restart(&self) {}
}

/// Time: for speed and ETA, URL lifetimes, retry delays and the stall watchdog.
pub trait Clock {
    /// Milliseconds from any fixed origin; must not go backwards by much (the engine tolerates
    /// small steps back, e.g. from a wall clock being adjusted).
    fn now_ms(&self) -> f64;

    /// Resolves once `ms` milliseconds have passed on this clock (at once for `ms <= 0`).
    /// Dropping the future cancels the timer. A timer may fire late (a laptop asleep, a throttled
    /// background tab); the engine re-reads [`now_ms`](Self::now_ms) when it wakes.
    fn sleep(&self, ms: f64) -> LocalBoxFuture<'static, ()>;
}

/// Whether the device believes it is online. A hint, not a promise: "online" may still fail,
/// which the retry policy handles; "offline" pauses the upload without spending its retries.
pub trait Network {
    fn is_online(&self) -> bool;

    /// Resolves at the next change of [`is_online`](Self::is_online) (it may resolve spuriously).
    fn changed(&self) -> LocalBoxFuture<'static, ()>;
}

/// A [`Network`] that never goes offline, for hosts without a network status.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysOnline;

impl Network for AlwaysOnline {
    fn is_online(&self) -> bool {
        true
    }

    fn changed(&self) -> LocalBoxFuture<'static, ()> {
        Box::pin(futures::future::pending())
    }
}
