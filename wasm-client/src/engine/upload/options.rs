//! What an upload is told and what it answers: [`UploadOptions`] (with their checks and the part
//! plan they give a file), [`FileInfo`] and [`UploadResult`], and the defaults.

use std::collections::BTreeMap;

use s3_direct_protocol::limits::{MAX_PART_SIZE, MAX_SINGLE_PUT_SIZE, MIN_PART_SIZE};
use s3_direct_protocol::plan::default_part_size;
use s3_direct_protocol::wire::WholeFileChecksum;
use s3_direct_protocol::{PartPlan, PlanError};

use super::ChecksumChoice;
use crate::engine::error::{Decimal, Error};
use crate::engine::resume::Fingerprint;
use crate::engine::retry::RetryPolicy;
use crate::engine::stall::StallTimeout;

/// Parallel PUTs unless configured otherwise: what Chromium allows per origin over HTTP/1.1.
pub const DEFAULT_CONCURRENCY: usize = 6;
/// Most parallel PUTs allowed. Beyond this a browser only queues the requests, and URLs signed for
/// queued parts age for nothing.
pub const MAX_CONCURRENCY: usize = 64;
/// Least time between two progress reports caused by bytes sent (a browser fires an upload
/// progress event about every 50 ms per request; a page needs far fewer).
pub const DEFAULT_PROGRESS_INTERVAL_MS: f64 = 100.0;
/// A URL is re-signed instead of used when it would expire within this (capped at half its
/// lifetime): the PUT must *arrive* before the deadline, and a queued browser request can wait.
pub const DEFAULT_RESIGN_MARGIN_MS: f64 = 60_000.0;
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

/// A stream's part size when neither the options nor an expected size choose one: the default
/// part size for files (8 MiB), so a stream holds at most 8 MiB × (parts in flight + 1) in memory,
/// a recording loses at most a part's worth to a crash without a spool, and the largest stream
/// is 10,000 × 8 MiB = 80 GiB (83,886,080,000 bytes; `Error::StreamTooLarge` past it).
pub const DEFAULT_STREAM_PART_SIZE: u64 = s3_direct_protocol::limits::DEFAULT_PART_SIZE;

/// Files up to this size go as a single `PUT` in a [`Queue`](crate::engine::Queue) unless
/// configured otherwise: below one default part, a multipart upload only adds round trips.
pub const DEFAULT_SINGLE_PUT_THRESHOLD: u64 = 5 * 1024 * 1024;

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
                Decimal(self.progress_interval_ms)
            )));
        }
        for (name, v) in [
            ("stall timeout", self.stall_timeout.ceiling_ms()),
            ("re-sign margin", self.resign_margin_ms),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(Error::InvalidOptions(format!(
                    "{name} {} ms is not a number of milliseconds >= 0",
                    Decimal(v)
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

    /// Whether a file of `size` bytes goes as one presigned `PUT` (see
    /// [`single_put_threshold`](Self::single_put_threshold)); every other file goes in parts, as
    /// a multipart upload, which alone can resume.
    pub fn goes_as_one_put(&self, size: u64) -> bool {
        self.single_put_threshold > 0 && size <= self.single_put_threshold
    }

    /// The part size of a stream expected to hold about `expected` bytes (`None`: unknown): the
    /// configured one, or the one a file of the expected size would get, or
    /// [`DEFAULT_STREAM_PART_SIZE`]; grown when the expected size needs more than 10,000 parts.
    pub(super) fn stream_part_size(&self, expected: Option<u64>) -> Result<u64, Error> {
        let size = expected.unwrap_or(0);
        let preferred = self.part_size.unwrap_or_else(|| match expected {
            Some(size) => default_part_size(size),
            None => DEFAULT_STREAM_PART_SIZE,
        });
        Ok(self.plan_with(size, preferred)?.part_size)
    }

    pub(super) fn plan(&self, size: u64) -> Result<PartPlan, Error> {
        let part_size = self.part_size.unwrap_or_else(|| default_part_size(size));
        self.plan_with(size, part_size)
    }

    fn plan_with(&self, size: u64, part_size: u64) -> Result<PartPlan, Error> {
        self.validate()?;
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
    /// For a file of a folder the user chose: its path within that folder, ending with
    /// `filename`; the server keeps the folders in the key.
    pub relative_path: Option<String>,
    /// MIME type; empty lets the server pick `application/octet-stream`.
    pub content_type: String,
    /// S3 user metadata.
    pub metadata: BTreeMap<String, String>,
    /// Size in bytes (ignored for a stream: its parts count it).
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
