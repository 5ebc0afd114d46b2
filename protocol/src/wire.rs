//! JSON bodies of the signing API.
//!
//! Field names follow Uppy Companion's S3 multipart protocol (`uploadId`, `PartNumber`, `ETag`, ...)
//! so that `@uppy/aws-s3` works against s3-direct unchanged; fields Companion lacks are optional
//! extensions that Companion-era clients ignore.
//!
//! | call | route | request | answer |
//! |---|---|---|---|
//! | create | `POST /s3/multipart` | [`CreateMultipartRequest`] | [`CreateMultipartResponse`] |
//! | sign one part | `GET /s3/multipart/{uploadId}/{partNumber}?key=` | | [`SignPartResponse`] |
//! | sign a batch | `GET /s3/multipart/{uploadId}/batch?key=&partNumbers=1,2` | | [`SignBatchResponse`] |
//! | list parts | `GET /s3/multipart/{uploadId}?key=` | | `Vec<`[`ListedPart`]`>` |
//! | complete | `POST /s3/multipart/{uploadId}/complete?key=` | [`CompleteRequest`] | [`CompleteResponse`] |
//! | abort | `DELETE /s3/multipart/{uploadId}?key=` | | `{}` |
//! | small file | `GET /s3/params?filename=&type=` | | [`SinglePutParams`] (a PUT or a POST form) |
//! | small file done | `POST /s3/params/complete` | [`ObjectCompleteRequest`] | [`CompleteResponse`] |
//!
//! Every error is an [`ErrorBody`] with a stable [`ErrorCode`].
//!
//! `uploadId` is opaque to clients: send back exactly what create returned. The server makes it
//! `"{store upload id}.{upload token}"`, the token proving that the upload belongs to the caller
//! and fixing its key, size and part size. Extension fields are optional, so Companion-era
//! clients neither send nor read them (`size`/`partSize`/`presignParts`/`checksum` at create and
//! `checksum`/`presigned` in its answer; `checksum=ALGO:BASE64` on
//! sign-one, `checksums=N:ALGO:BASE64,...` on sign-batch; `partHeaders` in the batch answer;
//! `length=BYTES` on sign-one and `lengths=N:BYTES,...` on sign-batch;
//! `Checksum*` per completed part and `size` and `checksum` in the completion's answer;
//! `size`, `checksum=ALGO:BASE64` and `method=PUT|POST` on params and `checksum` and `token` in
//! its answer; the `POST /s3/params/complete` route).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `POST /s3/multipart`: start a multipart upload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateMultipartRequest {
    /// The file's name as the user chose it; the server sanitises it into the object key.
    pub filename: String,
    /// Extension: for a file of a folder the user chose, its path relative to that folder,
    /// `/`-separated and ending with `filename` (as `File.webkitRelativePath` gives it). The
    /// key then keeps the folders: `{prefix}{id}/{folders}/{name}`, each sanitised like a name.
    #[serde(
        rename = "relativePath",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub relative_path: Option<String>,
    /// The file's MIME type; empty means `application/octet-stream`.
    #[serde(rename = "type", default)]
    pub content_type: String,
    /// S3 user metadata (`x-amz-meta-*`).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Extension: the file's size in bytes, when known, so the server can refuse impossible uploads
    /// before anything is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Extension: the part size the client will use. With `size` it fixes the plan
    /// ([`crate::PartPlan::with_part_size`]), and the server then signs each part's exact
    /// `Content-Length` and refuses part numbers beyond the plan. Without `size` the upload is a
    /// stream: every part but the last has this size, each part URL signs the length the client
    /// names (at most this), and at most 10,000 parts make at most 10,000 times this size.
    #[serde(rename = "partSize", default, skip_serializing_if = "Option::is_none")]
    pub part_size: Option<u64>,
    /// Extension: sign parts 1..=N with the create, so the first PUTs need no second round trip.
    /// The server signs at most [`crate::limits::MAX_BATCH_PARTS`] and no more than the plan
    /// holds, and none when it asks for part checksums (a URL signs its part's checksum, which
    /// the client computes only after the answer names the algorithm).
    #[serde(
        rename = "presignParts",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub presign_parts: Option<u32>,
    /// Extension: the checksum the client will send with every part — `auto` for the one this
    /// create's answer names, or an algorithm — so that the server can create the upload with it.
    /// S3 refuses a part carrying an `x-amz-checksum-*` that the upload was not created with, and
    /// records the object's composite checksum only for an upload created with one. Absent: the
    /// client sends no part checksums, or only `Content-MD5`, which needs no declaring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<PartChecksums>,
}

/// The part checksums a client declares at create ([`CreateMultipartRequest::checksum`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartChecksums {
    /// `auto`: the algorithm the create's answer names ([`CreateMultipartResponse::checksum`]),
    /// none if it names none.
    Auto,
    /// This algorithm, whatever the server asks for.
    Use(ChecksumAlgorithm),
}

impl PartChecksums {
    /// The algorithm the parts will carry when the server asks for `asked`.
    pub fn resolve(self, asked: Option<ChecksumAlgorithm>) -> Option<ChecksumAlgorithm> {
        match self {
            Self::Auto => asked,
            Self::Use(algorithm) => Some(algorithm),
        }
    }
}

impl Serialize for PartChecksums {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Auto => s.serialize_str("auto"),
            Self::Use(algorithm) => s.serialize_str(algorithm.as_str()),
        }
    }
}

impl<'de> Deserialize<'de> for PartChecksums {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        if name.eq_ignore_ascii_case("auto") {
            return Ok(Self::Auto);
        }
        ChecksumAlgorithm::parse(&name)
            .map(Self::Use)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "checksum {name:?} is not one of auto, md5, crc32, crc32c, sha256"
                ))
            })
    }
}

/// Answer to [`CreateMultipartRequest`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateMultipartResponse {
    /// Object key the server chose.
    pub key: String,
    /// `"{store upload id}.{upload token}"`: clients treat it as opaque and send it back unchanged
    /// in every path. The token (base64url, no `.`) proves the upload belongs to the caller and
    /// fixes its key, size and part size.
    #[serde(rename = "uploadId")]
    pub upload_id: String,
    /// Bucket the object goes to.
    pub bucket: String,
    /// Extension: the part size the server signs for, when one was declared (with the size, the
    /// plan is fixed; without, the upload is a stream).
    #[serde(rename = "partSize", default, skip_serializing_if = "Option::is_none")]
    pub part_size: Option<u64>,
    /// Extension: the checksum the server wants with every part (`md5`, `crc32`, `crc32c`,
    /// `sha256`), or absent when none is asked for. Send it as `checksum=` / `checksums=` when
    /// signing, then with the PUT as the header the sign answer names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<ChecksumAlgorithm>,
    /// Extension: the parts `presignParts` asked for, signed as the batch route would, when the
    /// server signed them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presigned: Option<SignBatchResponse>,
}

/// Answer to signing one part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignPartResponse {
    /// Presigned `PUT` URL for the part.
    pub url: String,
    /// Lifetime of the URL in seconds from when it was signed.
    pub expires: u64,
    /// Headers the browser must send with the PUT, exactly (they are signed into the URL).
    /// `content-length` and `host` are signed too but set by the browser itself (scripts may not
    /// set them): skip those; the store refuses a body whose length differs from the signed one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// Answer to signing a batch of parts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignBatchResponse {
    /// Presigned `PUT` URL per part number.
    #[serde(rename = "presignedUrls")]
    pub presigned_urls: BTreeMap<u32, String>,
    /// Extension: lifetime of every URL in seconds from when it was signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    /// Extension: headers to send with every PUT of this batch (signed into the URLs).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Extension: headers of one part's PUT, for parts whose headers differ from the shared
    /// `headers` (a signed `content-length` or checksum). Keys are part numbers as strings.
    ///
    /// Headers named `content-length` or `host` are signed into the URL but browsers set them
    /// themselves (scripts may not): skip them when building the request; the browser sends the
    /// body's true length, and the store refuses it when it differs from the signed one.
    #[serde(
        rename = "partHeaders",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub part_headers: BTreeMap<u32, BTreeMap<String, String>>,
}

/// One stored part, as listed by the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedPart {
    #[serde(rename = "PartNumber")]
    pub part_number: u32,
    /// Empty when the store does not report part ETags (stock s3s-fs; the embedded store does).
    #[serde(rename = "ETag", default)]
    pub etag: String,
    #[serde(rename = "Size", default)]
    pub size: u64,
    /// Extension: the part's checksum as the store lists it, for an upload created with that
    /// algorithm ([`CreateMultipartRequest::checksum`]).
    #[serde(flatten)]
    pub checksums: PartChecksumFields,
}

/// A part's checksums under S3's names (`ChecksumCRC32`, `ChecksumCRC32C`, `ChecksumSHA256`;
/// extension fields), as a completion names them and ListParts lists them. MD5 is not among
/// them: the store checks `Content-MD5` at the PUT.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartChecksumFields {
    #[serde(
        rename = "ChecksumCRC32",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub crc32: Option<String>,
    #[serde(
        rename = "ChecksumCRC32C",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub crc32c: Option<String>,
    #[serde(
        rename = "ChecksumSHA256",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sha256: Option<String>,
}

impl PartChecksumFields {
    /// The checksum of `algorithm` (base64), if one is given and not empty.
    pub fn get(&self, algorithm: ChecksumAlgorithm) -> Option<&str> {
        match algorithm {
            ChecksumAlgorithm::Md5 => None,
            ChecksumAlgorithm::Crc32 => self.crc32.as_deref(),
            ChecksumAlgorithm::Crc32c => self.crc32c.as_deref(),
            ChecksumAlgorithm::Sha256 => self.sha256.as_deref(),
        }
        .filter(|v| !v.is_empty())
    }

    /// Sets the checksum of `algorithm`; MD5 has no field, and is dropped.
    pub fn set(&mut self, algorithm: ChecksumAlgorithm, value: String) {
        match algorithm {
            ChecksumAlgorithm::Md5 => {}
            ChecksumAlgorithm::Crc32 => self.crc32 = Some(value),
            ChecksumAlgorithm::Crc32c => self.crc32c = Some(value),
            ChecksumAlgorithm::Sha256 => self.sha256 = Some(value),
        }
    }

    /// Each field with the name S3 gives it, in wire order.
    pub fn named(&self) -> [(&'static str, &Option<String>); 3] {
        [
            ("ChecksumCRC32", &self.crc32),
            ("ChecksumCRC32C", &self.crc32c),
            ("ChecksumSHA256", &self.sha256),
        ]
    }
}

/// One part of a completion request. For an upload created with a checksum algorithm
/// ([`CreateMultipartRequest::checksum`]) each part must carry its checksum of that algorithm
/// (extension fields, S3's names), which is passed to CompleteMultipartUpload; checksums of other
/// algorithms, and all of them for an upload created without one, are dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletedPart {
    #[serde(rename = "PartNumber")]
    pub part_number: u32,
    #[serde(rename = "ETag")]
    pub etag: String,
    #[serde(flatten)]
    pub checksums: PartChecksumFields,
}

/// `POST /s3/multipart/{uploadId}/complete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompleteRequest {
    /// Every part of the object, in ascending part-number order.
    pub parts: Vec<CompletedPart>,
}

/// Answer to [`CompleteRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompleteResponse {
    /// URL of the object, built from the address browsers use (`--public-endpoint`, else
    /// `--endpoint`), not taken from the store's answer, so a retried completion answers the same.
    pub location: String,
    pub key: String,
    pub bucket: String,
    /// The object's ETag (not an MD5 of the content for multipart objects), as the store reports
    /// it when the server reads the object back. Empty when the store did not report it.
    #[serde(default)]
    pub etag: String,
    /// Extension: the object's size in bytes, as the store reports it when the server reads the
    /// object back after completing it (and checks it against the plan and the caller's limit).
    #[serde(default)]
    pub size: u64,
    /// Extension: the object's checksum as the store computed it, `ALGO:BASE64-N` (the checksum
    /// of the parts' checksums, and the part count), for an upload created with a part checksum
    /// ([`CreateMultipartRequest::checksum`]) on a store that reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// Extension: the CRC of the whole object, whatever its part size (see [`WholeFileChecksum`]).
    #[serde(flatten)]
    pub whole_file: WholeFileChecksum,
    /// Extension: the server's signed receipt of what it verified (a compact JWS, `alg: EdDSA`,
    /// verifiable with the keys at `/.well-known/jwks.json`); see `server/src/receipt.rs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<String>,
}

/// Extension: the CRC of the whole object's bytes, as one PUT of the file would have it: base64
/// of the 4 big-endian bytes, S3's form for `x-amz-checksum-crc32c` / `-crc32`. Unlike a composite
/// checksum (`ALGO:BASE64-N`, a checksum of the parts' checksums) it does not depend on how the
/// file was cut into parts, so an application that knows the file's CRC can compare it. The
/// server combines it from the part CRCs the store verified, without reading the object back;
/// absent when the parts had no CRC (MD5 or SHA-256 parts cannot be combined) or the store did
/// not vouch for them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WholeFileChecksum {
    /// CRC32C (Castagnoli) of the whole object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32c: Option<String>,
    /// CRC32 (IEEE) of the whole object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32: Option<String>,
}

/// `GET /s3/params`: how to upload a small file with one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinglePutParams {
    /// `PUT`: send the file as the body of a PUT to `url` with `headers`. `POST`: send `fields`
    /// and then the file (as the last field, `file`) in a `multipart/form-data` form to `url`,
    /// an S3 POST policy upload, as Companion answers. The server answers a POST to callers that
    /// pass neither `size` nor `checksum` (Companion clients such as Uppy) unless they ask with
    /// `method=PUT|POST`, and a PUT to the others.
    pub method: String,
    pub url: String,
    /// The form fields of a POST (the signed policy among them). A PUT sends no form; s3-direct
    /// puts `key` and `bucket` here then too, where Companion clients (Uppy 5) read them.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Headers the browser must send with a PUT (none for a POST).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Extension: the object key the server chose.
    #[serde(default)]
    pub key: String,
    /// Extension: the bucket.
    #[serde(default)]
    pub bucket: String,
    /// Extension: the checksum the server wants with the PUT, as in
    /// [`CreateMultipartResponse::checksum`]. A URL is signed for the checksum the request
    /// carried: a client that sent none and wants to follow the server hashes the file and asks
    /// again with `checksum=ALGO:BASE64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<ChecksumAlgorithm>,
    /// Extension: the signed token of this small file (its key, the caller, the declared size or
    /// the size bound, the content type and an expiry). Once the PUT or POST succeeded, send it
    /// with the key to `POST /s3/params/complete` ([`ObjectCompleteRequest`]) for the verified
    /// object and its receipt. Absent from servers older than that route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// `POST /s3/params/complete`: a small file sent as one PUT or POST form is done. The server
/// reads the object back, holds it to what its [`SinglePutParams::token`] signed (deleting one
/// that breaks it) and answers as a multipart completion does, receipt included. Calling it again
/// answers the same.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectCompleteRequest {
    /// The key [`SinglePutParams::key`] named.
    pub key: String,
    /// The token [`SinglePutParams::token`] carried.
    pub token: String,
}

/// A checksum algorithm a part can be signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChecksumAlgorithm {
    /// `Content-MD5` (base64 of the 16-byte digest); every S3-compatible store checks it.
    Md5,
    /// `x-amz-checksum-crc32` (base64 of the big-endian 4 bytes).
    Crc32,
    /// `x-amz-checksum-crc32c` (base64 of the big-endian 4 bytes).
    Crc32c,
    /// `x-amz-checksum-sha256` (base64 of the 32-byte digest).
    Sha256,
}

impl ChecksumAlgorithm {
    /// Every algorithm, in wire order.
    pub const ALL: [Self; 4] = [Self::Md5, Self::Crc32, Self::Crc32c, Self::Sha256];

    /// The name in `checksum=ALGO:BASE64` and in the create answer.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Md5 => "md5",
            Self::Crc32 => "crc32",
            Self::Crc32c => "crc32c",
            Self::Sha256 => "sha256",
        }
    }

    /// Parses a wire name (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
    }

    /// The request header that carries the checksum on the part's PUT.
    pub fn header(self) -> &'static str {
        match self {
            Self::Md5 => "content-md5",
            Self::Crc32 => "x-amz-checksum-crc32",
            Self::Crc32c => "x-amz-checksum-crc32c",
            Self::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// Length in bytes of the decoded digest.
    pub fn digest_len(self) -> usize {
        match self {
            Self::Md5 => 16,
            Self::Crc32 | Self::Crc32c => 4,
            Self::Sha256 => 32,
        }
    }
}

impl std::fmt::Display for ChecksumAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every error answer of the signing API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable, machine-readable code.
    pub error: ErrorCode,
    /// Human-readable explanation naming the offending value.
    pub message: String,
}

/// Stable error codes of the signing API. New codes may be added; clients treat unknown ones as
/// [`ErrorCode::Unknown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not valid JSON or does not have the expected shape.
    InvalidJson,
    /// A query parameter or path segment is missing or malformed.
    InvalidRequest,
    /// A part number outside 1..=10,000.
    InvalidPartNumber,
    /// A batch of no part numbers, too many, or duplicates.
    InvalidBatch,
    /// A completion list that is empty, too long, out of order or has duplicates.
    InvalidPartList,
    /// An ETag that is not of the shape stores return.
    InvalidEtag,
    /// A file name that cannot become an object key.
    InvalidFilename,
    /// An object key that this server did not issue.
    InvalidKey,
    /// A declared size S3 cannot store.
    InvalidSize,
    /// The multipart upload does not exist (completed, aborted, or never created).
    NoSuchUpload,
    /// The store refused a part at completion (missing, or its ETag does not match).
    InvalidPart,
    /// A part other than the last is below S3's 5 MiB minimum.
    EntityTooSmall,
    /// The request body is larger than the server accepts.
    PayloadTooLarge,
    /// The store failed or could not be reached.
    StoreUnavailable,
    /// No credentials, or credentials the server cannot verify (a bad or expired bearer token).
    Unauthenticated,
    /// The caller is known but may not do this: another principal's upload, a key outside its
    /// prefix, a size or content type its permissions do not allow.
    Forbidden,
    /// The upload token inside `uploadId` is forged, expired, or belongs to another upload or key.
    InvalidUploadToken,
    /// A content type outside the allow-list.
    ContentTypeNotAllowed,
    /// The parts in the store break the upload's declared plan; the server aborted the upload.
    PlanViolated,
    /// Too many requests from this caller; retry after the `Retry-After` header's seconds.
    RateLimited,
    /// The server is busy asking the application about other callers (503); retry after the
    /// `Retry-After` header's seconds.
    Busy,
    /// A bug or unexpected state on the server; details are in its log.
    Internal,
    /// A file type that is not exactly one RFC 9110 media type (a list, an empty subtype, a bad
    /// parameter).
    InvalidContentType,
    /// No `Host` header, several, or one that is not `host[:port]`.
    InvalidHost,
    /// A `Host` this server does not answer (open mode answers only its loopback names; see
    /// `--allowed-host`).
    MisdirectedRequest,
    /// A request body framed with `Transfer-Encoding` (chunked, or together with
    /// `Content-Length`): bodies must carry a `Content-Length`.
    InvalidFraming,
    /// A `Content-Encoding` the server does not decode, or a JSON body in a charset other than
    /// UTF-8.
    UnsupportedMediaType,
    /// A code this client does not know.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::InvalidRequest => "invalid_request",
            Self::InvalidPartNumber => "invalid_part_number",
            Self::InvalidBatch => "invalid_batch",
            Self::InvalidPartList => "invalid_part_list",
            Self::InvalidEtag => "invalid_etag",
            Self::InvalidFilename => "invalid_filename",
            Self::InvalidKey => "invalid_key",
            Self::InvalidSize => "invalid_size",
            Self::NoSuchUpload => "no_such_upload",
            Self::InvalidPart => "invalid_part",
            Self::EntityTooSmall => "entity_too_small",
            Self::PayloadTooLarge => "payload_too_large",
            Self::StoreUnavailable => "store_unavailable",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::InvalidUploadToken => "invalid_upload_token",
            Self::ContentTypeNotAllowed => "content_type_not_allowed",
            Self::PlanViolated => "plan_violated",
            Self::RateLimited => "rate_limited",
            Self::Busy => "busy",
            Self::Internal => "internal",
            Self::InvalidContentType => "invalid_content_type",
            Self::InvalidHost => "invalid_host",
            Self::MisdirectedRequest => "misdirected_request",
            Self::InvalidFraming => "invalid_framing",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_request_reads_companion_body() {
        let r: CreateMultipartRequest = serde_json::from_str(
            r#"{"filename":"a.bin","type":"video/mp4","metadata":{"name":"a.bin"}}"#,
        )
        .unwrap();
        assert_eq!(r.content_type, "video/mp4");
        assert_eq!(r.size, None);
        assert_eq!(r.metadata["name"], "a.bin");
    }

    #[test]
    fn batch_keys_are_strings_on_the_wire() {
        let b = SignBatchResponse {
            presigned_urls: BTreeMap::from([(1, "u1".into()), (2, "u2".into())]),
            expires: Some(900),
            ..Default::default()
        };
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(
            json,
            r#"{"presignedUrls":{"1":"u1","2":"u2"},"expires":900}"#
        );
        assert_eq!(serde_json::from_str::<SignBatchResponse>(&json).unwrap(), b);
    }

    #[test]
    fn error_codes_round_trip_and_unknown_is_tolerated() {
        let e = ErrorBody {
            error: ErrorCode::InvalidPartNumber,
            message: "part number 0 is out of range 1..=10000".into(),
        };
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.contains(r#""error":"invalid_part_number""#));
        let unknown: ErrorBody =
            serde_json::from_str(r#"{"error":"brand_new","message":"x"}"#).unwrap();
        assert_eq!(unknown.error, ErrorCode::Unknown);
        for code in [ErrorCode::NoSuchUpload, ErrorCode::StoreUnavailable] {
            assert_eq!(
                serde_json::to_string(&code).unwrap(),
                format!("\"{}\"", code.as_str())
            );
        }
    }

    #[test]
    fn extension_fields_are_optional_additions_to_companion_bodies() {
        let r: CreateMultipartRequest = serde_json::from_str(
            r#"{"filename":"a.bin","type":"video/mp4","size":10,"partSize":5242880}"#,
        )
        .unwrap();
        assert_eq!(r.filename, "a.bin");
        assert_eq!((r.size, r.part_size), (Some(10), Some(5_242_880)));
        let plain: CreateMultipartRequest =
            serde_json::from_str(r#"{"filename":"a.bin"}"#).unwrap();
        assert_eq!((plain.part_size, plain.presign_parts), (None, None));
        let eager = CreateMultipartRequest {
            filename: "a.bin".into(),
            presign_parts: Some(12),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&eager).unwrap(),
            r#"{"filename":"a.bin","type":"","metadata":{},"presignParts":12}"#
        );

        let answer = CreateMultipartResponse {
            key: "k".into(),
            upload_id: "u.t".into(),
            bucket: "b".into(),
            part_size: None,
            checksum: Some(ChecksumAlgorithm::Crc32c),
            presigned: None,
        };
        let json = serde_json::to_string(&answer).unwrap();
        assert_eq!(
            json,
            r#"{"key":"k","uploadId":"u.t","bucket":"b","checksum":"crc32c"}"#
        );
        assert_eq!(
            serde_json::from_str::<CreateMultipartResponse>(&json).unwrap(),
            answer
        );

        let batch = SignBatchResponse {
            presigned_urls: BTreeMap::from([(1, "u1".into())]),
            expires: Some(60),
            headers: BTreeMap::new(),
            part_headers: BTreeMap::from([(
                1,
                BTreeMap::from([("content-length".into(), "5".into())]),
            )]),
        };
        let json = serde_json::to_string(&batch).unwrap();
        assert_eq!(
            json,
            r#"{"presignedUrls":{"1":"u1"},"expires":60,"partHeaders":{"1":{"content-length":"5"}}}"#
        );
        assert_eq!(
            serde_json::from_str::<SignBatchResponse>(&json).unwrap(),
            batch
        );
        let with_parts = CreateMultipartResponse {
            checksum: None,
            presigned: Some(batch),
            ..answer
        };
        let json = serde_json::to_string(&with_parts).unwrap();
        assert!(json.ends_with(r#""presigned":{"presignedUrls":{"1":"u1"},"expires":60,"partHeaders":{"1":{"content-length":"5"}}}}"#), "{json}");
        assert_eq!(
            serde_json::from_str::<CreateMultipartResponse>(&json).unwrap(),
            with_parts
        );

        let c: CompleteRequest = serde_json::from_str(
            r#"{"parts":[{"PartNumber":1,"ETag":"x","ChecksumCRC32C":"AAAAAA=="}]}"#,
        )
        .unwrap();
        assert_eq!(c.parts[0].checksums.crc32c.as_deref(), Some("AAAAAA=="));
    }

    #[test]
    fn checksum_algorithms() {
        for a in ChecksumAlgorithm::ALL {
            assert_eq!(ChecksumAlgorithm::parse(a.as_str()), Some(a));
            assert_eq!(serde_json::to_string(&a).unwrap(), format!("\"{a}\""));
        }
        assert_eq!(
            ChecksumAlgorithm::parse("CRC32C"),
            Some(ChecksumAlgorithm::Crc32c)
        );
        assert_eq!(ChecksumAlgorithm::parse("crc64"), None);
        assert_eq!(ChecksumAlgorithm::Md5.header(), "content-md5");
    }

    #[test]
    fn part_checksums_travel_under_s3_names_and_only_when_given() {
        let plain = ListedPart {
            part_number: 1,
            etag: "\"e\"".into(),
            size: 5,
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&plain).unwrap(),
            r#"{"PartNumber":1,"ETag":"\"e\"","Size":5}"#,
            "what Companion-era clients read"
        );
        let mut listed = plain.clone();
        listed.checksums.set(
            ChecksumAlgorithm::Sha256,
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".into(),
        );
        listed
            .checksums
            .set(ChecksumAlgorithm::Md5, "dropped".into());
        let json = serde_json::to_string(&listed).unwrap();
        assert!(
            json.ends_with(r#""ChecksumSHA256":"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}"#),
            "{json}"
        );
        let back: ListedPart = serde_json::from_str(&json).unwrap();
        assert_eq!(back, listed);
        assert_eq!(
            back.checksums.get(ChecksumAlgorithm::Sha256),
            Some("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
        );
        assert_eq!(back.checksums.get(ChecksumAlgorithm::Crc32c), None);
        let empty: CompletedPart =
            serde_json::from_str(r#"{"PartNumber":1,"ETag":"e","ChecksumCRC32":""}"#).unwrap();
        assert_eq!(empty.checksums.get(ChecksumAlgorithm::Crc32), None);
    }

    #[test]
    fn part_checksums_are_declared_by_name() {
        let r: CreateMultipartRequest =
            serde_json::from_str(r#"{"filename":"a","checksum":"auto"}"#).unwrap();
        assert_eq!(r.checksum, Some(PartChecksums::Auto));
        let r: CreateMultipartRequest =
            serde_json::from_str(r#"{"filename":"a","checksum":"SHA256"}"#).unwrap();
        assert_eq!(
            r.checksum,
            Some(PartChecksums::Use(ChecksumAlgorithm::Sha256))
        );
        let err = serde_json::from_str::<CreateMultipartRequest>(
            r#"{"filename":"a","checksum":"crc64nvme"}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("crc64nvme"), "{err}");
        let declared = CreateMultipartRequest {
            checksum: Some(PartChecksums::Use(ChecksumAlgorithm::Crc32c)),
            ..Default::default()
        };
        let json = serde_json::to_string(&declared).unwrap();
        assert!(json.ends_with(r#""checksum":"crc32c"}"#), "{json}");
        assert_eq!(
            serde_json::from_str::<CreateMultipartRequest>(&json).unwrap(),
            declared
        );
        assert!(
            !serde_json::to_string(&CreateMultipartRequest::default())
                .unwrap()
                .contains("checksum")
        );
        let crc = Some(ChecksumAlgorithm::Crc32c);
        assert_eq!(PartChecksums::Auto.resolve(crc), crc);
        assert_eq!(PartChecksums::Auto.resolve(None), None);
        assert_eq!(
            PartChecksums::Use(ChecksumAlgorithm::Md5).resolve(crc),
            Some(ChecksumAlgorithm::Md5)
        );
    }

    #[test]
    fn listed_parts_use_companion_names() {
        let p: Vec<ListedPart> =
            serde_json::from_str(r#"[{"PartNumber":1,"ETag":"\"abc\"","Size":5}]"#).unwrap();
        assert_eq!(p[0].part_number, 1);
        assert_eq!(p[0].etag, "\"abc\"");
    }
}
