//! The storage seam: everything the handlers need from an S3-compatible store, as one trait.
//!
//! Handlers never build S3 requests; they call [`Store`]. [`S3Store`] implements it with
//! aws-sdk-s3 against any S3-compatible endpoint (the embedded one included); [`FakeStore`] is an
//! in-memory, scriptable implementation that records every call, for route tests.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use s3_direct_protocol::wire::{ChecksumAlgorithm, CompletedPart, ListedPart};

mod fake;
pub mod integrity;
mod s3;

pub use fake::{FAKE_ENDPOINT, FakeCall, FakeStore, FakeVerification};
pub use integrity::{ChecksumChoice, ChecksumSetting, Decision, PartProbe};
pub(crate) use s3::encode_key;
pub use s3::{S3Store, S3StoreConfig};

/// A new multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUpload {
    /// Object key, already checked against the key policy.
    pub key: String,
    /// MIME type stored with the object.
    pub content_type: String,
    /// User metadata (`x-amz-meta-*`), names lowercase, values header-safe.
    pub metadata: BTreeMap<String, String>,
    /// The checksum algorithm every part will carry (never MD5, which needs no declaring): the
    /// store then refuses parts without it, and records the object's composite checksum.
    pub checksum: Option<ChecksumAlgorithm>,
}

/// A presigned request the browser sends as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presigned {
    /// The URL, query signature included.
    pub url: String,
    /// Headers signed into the URL that the browser must send with exactly these values.
    pub headers: BTreeMap<String, String>,
}

/// What a part's signature fixes besides its number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartSigning {
    /// Exact body length the store must receive (from the upload's plan).
    pub content_length: Option<u64>,
    /// A checksum of the part's body the store must verify: algorithm and base64 digest.
    pub checksum: Option<(ChecksumAlgorithm, String)>,
}

/// What a single `PUT` of a whole object signs in besides its key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutSigning {
    /// MIME type stored with the object.
    pub content_type: String,
    /// Exact body length the store must receive, when the caller declared it.
    pub content_length: Option<u64>,
    /// User metadata (`x-amz-meta-*`), names lowercase, values header-safe.
    pub metadata: BTreeMap<String, String>,
    /// A checksum of the whole body the store must verify: algorithm and base64 digest.
    pub checksum: Option<(ChecksumAlgorithm, String)>,
}

/// What a POST policy lets the browser upload: one whole object, sent as a `multipart/form-data`
/// form (S3's `PostObject`), the way Companion answers its clients' small files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostSigning {
    /// MIME type stored with the object (the form must send exactly it).
    pub content_type: String,
    /// User metadata (`x-amz-meta-*`), names lowercase, values header-safe: the form must send
    /// exactly these.
    pub metadata: BTreeMap<String, String>,
    /// The sizes the store accepts (`content-length-range`), inclusive.
    pub size: std::ops::RangeInclusive<u64>,
}

/// A presigned POST policy upload: the browser POSTs `fields`, then the file as the last field
/// `file`, in a `multipart/form-data` form to `url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedPost {
    /// The bucket's URL.
    pub url: String,
    /// The form fields, the signed policy and its signature among them.
    pub fields: BTreeMap<String, String>,
}

/// Result of completing an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    /// URL of the object.
    pub location: String,
    /// The object's ETag as the store gave it (quotes included); empty if it gave none.
    pub etag: String,
    /// The object's composite checksum as the store gave it, `ALGO:BASE64-N`, for an upload
    /// created with a checksum algorithm; `None` if it gave none.
    pub checksum: Option<String>,
}

/// What a `HeadObject` reports about a stored object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectHead {
    /// The object's size in bytes.
    pub size: u64,
    /// The object's ETag as the store gave it (quotes included); empty if it gave none.
    pub etag: String,
    /// The object's checksum as the store reports it (`ChecksumMode: ENABLED`), `ALGO:BASE64`
    /// (`ALGO:BASE64-N` for a multipart object's composite); `None` if it reports none.
    pub checksum: Option<String>,
    /// The object's `Content-Type`, if the store reports one.
    pub content_type: Option<String>,
}

/// An object found by [`Store::list_objects`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    /// The object's full key.
    pub key: String,
    /// When the object was last written, by the store's clock.
    pub last_modified: SystemTime,
    /// The object's size in bytes.
    pub size: u64,
}

/// Failures of a store call, classified by what the caller can do about them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The upload does not exist: completed, aborted, expired or never created.
    #[error(
        "upload {upload_id:?} does not exist (it was completed, aborted or never created); \
         start a new upload"
    )]
    NoSuchUpload { upload_id: String },

    /// A part named at completion is missing or its ETag does not match the stored part.
    #[error("the store refused a part: {message}; upload the affected parts again, then complete")]
    InvalidPart { message: String },

    /// A part other than the last is below S3's 5 MiB minimum.
    #[error(
        "the store refused the parts: {message}; every part but the last must be at least 5 MiB"
    )]
    EntityTooSmall { message: String },

    /// Anything else: network, credentials, configuration, a store bug. Details are for the log.
    #[error("store call {operation} failed")]
    Unavailable {
        operation: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    /// An [`StoreError::Unavailable`] for `operation` caused by `source`.
    pub fn unavailable(
        operation: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Unavailable {
            operation,
            source: source.into(),
        }
    }
}

/// What the signing server needs from an S3-compatible store.
///
/// Inputs are validated before these are called (part numbers, part lists, keys), so an
/// implementation may assume them well-formed.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// Bucket the store writes to.
    fn bucket(&self) -> &str;

    /// URL of the object under `key` as browsers reach it.
    fn object_location(&self, key: &str) -> String;

    /// Longest object key the store takes, in bytes: S3's 1,024 unless it takes fewer (the
    /// embedded store, which names files after keys). Issued keys are cut to fit.
    fn max_key_bytes(&self) -> usize {
        s3_direct_protocol::limits::MAX_KEY_BYTES
    }

    /// Starts a multipart upload and returns its upload id.
    async fn create_multipart(&self, upload: NewUpload) -> Result<String, StoreError>;

    /// Presigns a `PUT` of part `part_number` of the upload, valid for `lifetime` from now, with
    /// the length and checksum in `signing` signed in.
    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        lifetime: Duration,
        signing: &PartSigning,
    ) -> Result<Presigned, StoreError>;

    /// [`Self::presign_part`] for several parts of one upload at once: one URL per entry of
    /// `parts` (part number and what its signature fixes), in the same order. Stores that can
    /// share work between the parts (the S3 store's direct signer) override it.
    async fn presign_parts(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(u32, PartSigning)],
        lifetime: Duration,
    ) -> Result<Vec<Presigned>, StoreError> {
        let mut signed = Vec::with_capacity(parts.len());
        for (n, signing) in parts {
            signed.push(
                self.presign_part(key, upload_id, *n, lifetime, signing)
                    .await?,
            );
        }
        Ok(signed)
    }

    /// Every part stored so far, in part-number order (all pages).
    async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<ListedPart>, StoreError>;

    /// Assembles the object from `parts` (ascending part numbers). Their checksums are passed
    /// on as given: the caller leaves only those of the algorithm the upload was created with.
    async fn complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<Completed, StoreError>;

    /// Abandons the upload and deletes its parts.
    async fn abort(&self, key: &str, upload_id: &str) -> Result<(), StoreError>;

    /// What the store holds under `key` (`HeadObject`); `None` when it holds nothing there.
    async fn head_object(&self, key: &str) -> Result<Option<ObjectHead>, StoreError>;

    /// Deletes the object under `key`; deleting a missing object succeeds (as S3's DeleteObject).
    async fn delete_object(&self, key: &str) -> Result<(), StoreError>;

    /// Presigns a single `PUT` of a whole object, valid for `lifetime`, with the content type,
    /// metadata, and (when given) length and checksum in `signing` signed in: the browser must
    /// send each as a header with exactly the value in [`Presigned::headers`].
    async fn presign_put(
        &self,
        key: &str,
        signing: &PutSigning,
        lifetime: Duration,
    ) -> Result<Presigned, StoreError>;

    /// Presigns a POST policy upload of a whole object under `key`, valid for `lifetime`: the
    /// store takes the form only with exactly the content type and metadata in `signing`, and a
    /// file whose size is in `signing.size`. `None` when this store cannot sign one (the caller
    /// offers a presigned `PUT` instead).
    async fn presign_post(
        &self,
        key: &str,
        signing: &PostSigning,
        lifetime: Duration,
    ) -> Result<Option<PresignedPost>, StoreError>;

    /// A cheap call that proves the store is reachable and the bucket usable (`HeadBucket`), for
    /// the readiness probe.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Writes `body` as the object under `key`, replacing any object there: for the server's own
    /// small records (pending completion events), never for uploads. A store that keeps no such
    /// records answers [`StoreError::Unavailable`].
    async fn write_object(&self, key: &str, body: Vec<u8>) -> Result<(), StoreError> {
        let _ = (key, body);
        Err(StoreError::unavailable(
            "PutObject",
            "this store cannot keep the server's own records",
        ))
    }

    /// The whole body of the object under `key` (one of the server's small records); `None`
    /// when there is none.
    async fn read_object(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let _ = key;
        Err(StoreError::unavailable(
            "GetObject",
            "this store cannot keep the server's own records",
        ))
    }

    /// Every object directly under the folder `prefix` (ending with `/`), not in its sub-folders
    /// (all pages), in key order.
    async fn list_objects(&self, prefix: &str) -> Result<Vec<ListedObject>, StoreError> {
        let _ = prefix;
        Err(StoreError::unavailable(
            "ListObjectsV2",
            "this store cannot keep the server's own records",
        ))
    }

    /// A part checksum this store is known to verify without asking it (the embedded store:
    /// CRC32C); `None`: probe it ([`Self::probe_checksum`]).
    fn verified_checksum(&self) -> Option<ChecksumAlgorithm> {
        None
    }

    /// Sends a part whose `algorithm` checksum is wrong, in a multipart upload under `key` (a
    /// reserved key, [`integrity::PROBE_PREFIX`]) that is aborted afterwards whatever happened,
    /// and returns what the store answered the part. The default does it as a browser would:
    /// a presigned URL and an HTTP PUT.
    async fn probe_checksum(
        &self,
        key: &str,
        algorithm: ChecksumAlgorithm,
    ) -> Result<PartProbe, StoreError> {
        integrity::probe_by_put(self, key, algorithm).await
    }

    /// How long the credentials that sign URLs still live; `None` when they do not expire.
    /// Handlers never sign a URL that outlives them.
    async fn credentials_remaining(&self) -> Option<Duration> {
        None
    }
}
