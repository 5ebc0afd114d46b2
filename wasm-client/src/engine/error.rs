//! The crate's one error type, [`Error`], and the failure reports the engine's ports hand back to
//! it: [`ApiError`] from the signing server, [`PutError`] from the store and [`ChecksumError`]
//! from the checksummer.
//!
//! Every [`Error`] has a stable [`Error::code`] that the JS facade exposes as `err.code`, so callers
//! branch on codes, never on message text. Messages are for people: lowercase, naming the part and
//! the status, and saying what to change when we know it.

use std::fmt;

use s3_direct_protocol::limits::{MAX_OBJECT_SIZE, MAX_PART_NUMBER};

/// Why an upload failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The caller cancelled. The multipart upload was aborted on the server; `cleanup` says why
    /// that failed, if it did (the parts then stay until the server's purge removes them).
    #[error("the upload was aborted{}", cleanup_note(.cleanup))]
    Aborted { cleanup: Option<ApiError> },
    /// A part PUT succeeded but its ETag could not be read. Browsers hide every response header the
    /// store's CORS rule does not list in `ExposeHeaders`, and without ETags the upload can never be
    /// completed, so this fails at the first part instead of after the whole file.
    #[error(
        "part {part} of {parts}: the store did not expose the ETag header; \
         add ExposeHeaders: ETag to the bucket's CORS rule"
    )]
    MissingEtag { part: u32, parts: u32 },
    /// The store answered a part PUT with a status outside 2xx.
    ///
    /// In this and the next two variants `parts` is 0 when the file went as one presigned PUT
    /// (a small file in a queue): there is no multipart upload then, and nothing was stored.
    /// Statuses are written as `u32` here and below: `u16`'s `Display` would be one more copy
    /// of the integer formatting in the page.
    #[error("{}: PUT returned {}{}{}", which(*.part, *.parts), u32::from(*.status), s3_detail(.body), gave_up(*.attempts, *.parts))]
    PartStatus {
        part: u32,
        parts: u32,
        status: u16,
        /// The start of the response body (S3 answers with an XML `<Error>` document).
        body: String,
        /// PUTs of this part tried before giving up (1 when the failure was not worth a retry).
        attempts: u32,
    },
    /// A part PUT ended without an HTTP answer.
    #[error(
        "{}: PUT failed before the store answered ({message}); \
         check the connection and that the bucket's CORS rule allows PUT from this origin{}",
        which(*.part, *.parts),
        gave_up(*.attempts, *.parts)
    )]
    PartNetwork {
        part: u32,
        parts: u32,
        message: String,
        attempts: u32,
    },
    /// A part PUT sent no bytes for the stall timeout, every time it was tried.
    #[error(
        "{}: no bytes moved for {} s{}",
        which(*.part, *.parts),
        Decimal(*.stall_ms as f64 / 1000.0),
        gave_up(*.attempts, *.parts)
    )]
    PartStalled {
        part: u32,
        parts: u32,
        stall_ms: u64,
        attempts: u32,
    },
    /// The file could not be read to checksum or send a part: it was changed, moved or deleted on
    /// disk since it was chosen (browsers refuse to read such a file, or read it short). Not
    /// retried: no attempt can succeed until the user chooses the file again.
    #[error(
        "part {part}: the file could not be read ({message}); a file changed, moved or deleted \
         since it was chosen must be chosen again"
    )]
    FileUnreadable { part: u32, message: String },
    /// A call to the signing server failed.
    #[error("{call} failed: {source}")]
    Api { call: ApiCall, source: ApiError },
    /// The caller's options cannot work; the message names the option and the accepted range.
    #[error("{0}")]
    InvalidOptions(String),
    /// The file is larger than one S3 object can be.
    #[error("file size {size} exceeds S3's 5 TiB ({max} bytes) object limit", max = MAX_OBJECT_SIZE)]
    FileTooLarge { size: u64 },
    /// The stream being uploaded failed (the producer errored) while part `part` was being read.
    /// The multipart upload was aborted (a stream cannot be read again), unless it was `kept`
    /// for a resume from the stream's spool.
    #[error(
        "the stream failed while part {part} was being read ({message}); {}",
        stream_upload(*.kept, .cleanup)
    )]
    StreamFailed {
        part: u32,
        message: String,
        kept: bool,
        cleanup: Option<ApiError>,
    },
    /// The stream holds more than 10,000 parts of `part_size` bytes, the most one S3 object can
    /// have parts for. The multipart upload was aborted.
    #[error(
        "the stream is larger than {limit} bytes, the most 10,000 parts of {part_size} bytes \
         hold; give the stream's expected size (or a larger part size) so that larger parts are \
         cut; the upload was aborted",
        limit = *.part_size * u64::from(MAX_PART_NUMBER)
    )]
    StreamTooLarge { part_size: u64 },
}

impl Error {
    /// Stable machine-readable code. A code the signing server sent is passed through (for example
    /// `no_such_upload` or `invalid_part`), because it says more than the call that failed;
    /// otherwise it is one of `aborted`, `missing_etag`, `http_error`, `network_error`, `stalled`,
    /// `create_failed`, `sign_failed`, `complete_failed`, `invalid_options`, `file_too_large`,
    /// `stream_failed`, `stream_too_large`.
    pub fn code(&self) -> &str {
        match self {
            Self::Aborted { .. } => "aborted",
            Self::MissingEtag { .. } => "missing_etag",
            Self::PartStatus { .. } => "http_error",
            Self::PartNetwork { .. } => "network_error",
            Self::PartStalled { .. } => "stalled",
            Self::FileUnreadable { .. } => "file_unreadable",
            Self::Api { call, source } => match source {
                ApiError::Status {
                    code: Some(code), ..
                } if !code.is_empty() => code,
                _ => call.code(),
            },
            Self::InvalidOptions(_) => "invalid_options",
            Self::FileTooLarge { .. } => "file_too_large",
            Self::StreamFailed { .. } => "stream_failed",
            Self::StreamTooLarge { .. } => "stream_too_large",
        }
    }

    /// The HTTP status that caused the failure, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::PartStatus { status, .. } => Some(*status),
            Self::Api {
                source: ApiError::Status { status, .. },
                ..
            } => Some(*status),
            _ => None,
        }
    }

    /// The part number the failure belongs to, when it belongs to one (never for a file sent as
    /// one PUT).
    pub fn part(&self) -> Option<u32> {
        match self {
            Self::PartStatus { parts: 0, .. }
            | Self::PartNetwork { parts: 0, .. }
            | Self::PartStalled { parts: 0, .. } => None,
            Self::MissingEtag { part, .. }
            | Self::PartStatus { part, .. }
            | Self::PartNetwork { part, .. }
            | Self::PartStalled { part, .. }
            | Self::FileUnreadable { part, .. }
            | Self::StreamFailed { part, .. } => Some(*part),
            _ => None,
        }
    }
}

/// Names what failed: "part 3 of 12", or "the file's single PUT" when `parts` is 0.
fn which(part: u32, parts: u32) -> String {
    if parts == 0 {
        "the file's single PUT".to_owned()
    } else {
        format!("part {part} of {parts}")
    }
}

/// Says how often a part was tried, when more than once: the upload then ran out of retries, and
/// the caller should know that what was stored is still there (a single PUT stored nothing).
fn gave_up(attempts: u32, parts: u32) -> String {
    if attempts <= 1 {
        String::new()
    } else if parts == 0 {
        format!("; gave up after {attempts} attempts")
    } else {
        format!(
            "; gave up after {attempts} attempts, the multipart upload is kept so it can be resumed"
        )
    }
}

fn cleanup_note(cleanup: &Option<ApiError>) -> String {
    match cleanup {
        None => String::new(),
        Some(e) => format!(
            "; removing its stored parts failed ({e}), the server's purge of abandoned uploads will"
        ),
    }
}

fn stream_upload(kept: bool, cleanup: &Option<ApiError>) -> String {
    if kept {
        "the upload was kept, to be resumed from the stream's spool".into()
    } else {
        format!("the upload was aborted{}", cleanup_note(cleanup))
    }
}

/// Which call to the signing server failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiCall {
    Create,
    /// Signing `count` parts starting at part `first`.
    Sign {
        first: u32,
        count: usize,
    },
    Complete,
    /// Listing the stored parts of an upload being resumed.
    ListParts,
    /// Signing the single `PUT` of a small file.
    SinglePut,
}

impl ApiCall {
    /// Code of an [`Error::Api`] when the server sent none of its own.
    pub fn code(self) -> &'static str {
        match self {
            Self::Create => "create_failed",
            Self::Sign { .. } => "sign_failed",
            Self::Complete => "complete_failed",
            Self::ListParts => "list_failed",
            Self::SinglePut => "sign_failed",
        }
    }
}

impl fmt::Display for ApiCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Create => f.write_str("creating the upload"),
            Self::Sign { first, count: 1 } => write!(f, "signing part {first}"),
            Self::Sign { first, count } => {
                write!(
                    f,
                    "signing parts {first} to {}",
                    u64::from(first) + count as u64 - 1
                )
            }
            Self::Complete => f.write_str("completing the upload"),
            Self::ListParts => f.write_str("listing the stored parts"),
            Self::SinglePut => f.write_str("signing the file's upload"),
        }
    }
}

/// A failed call to the signing server, as a [`Signer`](super::Signer) reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The server answered with a status outside 2xx. `code` and `message` come from its JSON
    /// `{error, message}` body when it sent one (a proxy in front of it may not).
    #[error("the signing server answered {}{}", u32::from(*.status), api_detail(.code, .message))]
    Status {
        status: u16,
        code: Option<String>,
        message: String,
        /// The answer's `Retry-After` in milliseconds (the server sends it with 429).
        retry_after_ms: Option<u64>,
    },
    /// The request got no HTTP answer.
    #[error("the signing server could not be reached ({0})")]
    Network(String),
    /// A 2xx answer whose body is not what the signing API promises.
    #[error("the signing server's answer is not usable ({0})")]
    InvalidResponse(String),
}

fn api_detail(code: &Option<String>, message: &str) -> String {
    match (code.as_deref(), message) {
        (Some(code), "") => format!(" {code}"),
        (Some(code), message) => format!(" {code}: {message}"),
        (None, "") => String::new(),
        (None, message) => format!(": {message}"),
    }
}

/// A checksum a [`Checksummer`](super::Checksummer) could not give: the part's bytes could not be
/// read (the file was changed, moved or deleted since it was chosen), or the hasher failed. The
/// engine reports it as [`Error::FileUnreadable`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ChecksumError {
    pub message: String,
}

impl ChecksumError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// Why a [`PartSource`](super::PartSource) could not cut a part: the stream errored (its
/// producer failed) or could not be read. The engine reports it as [`Error::StreamFailed`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    pub message: String,
}

impl SourceError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// A failed part PUT, as a [`PartSink`](super::PartSink) reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PutError {
    /// No HTTP answer: offline, connection reset, or the browser refused the response under CORS
    /// (browsers do not say which).
    #[error("network error: {0}")]
    Network(String),
    /// The part's bytes could not be read from the file before or after sending: the file was
    /// changed, moved or deleted on disk since it was chosen. Fatal: sending again cannot help.
    #[error("file unreadable: {0}")]
    Unreadable(String),
    /// The store answered with a status outside 2xx; `body` is the start of its answer.
    #[error("status {}", u32::from(*.status))]
    Status {
        status: u16,
        body: String,
        /// The answer's `Retry-After`, in milliseconds, when it had one the browser let us read.
        retry_after_ms: Option<u64>,
    },
}

impl PutError {
    /// A status answer without `Retry-After`.
    pub fn status(status: u16, body: impl Into<String>) -> Self {
        Self::Status {
            status,
            body: body.into(),
            retry_after_ms: None,
        }
    }
}

impl PutError {
    /// How long the store asked to wait before the next attempt (`Retry-After`), if it did.
    pub fn retry_after_ms(&self) -> Option<f64> {
        match self {
            Self::Status { retry_after_ms, .. } => retry_after_ms.map(|ms| ms as f64),
            _ => None,
        }
    }
}

impl ApiError {
    /// How long the server asked to wait before the next call, if it did.
    pub fn retry_after_ms(&self) -> Option<f64> {
        match self {
            Self::Status { retry_after_ms, .. } => retry_after_ms.map(|ms| ms as f64),
            _ => None,
        }
    }

    /// Whether asking again may succeed: the server could not be reached, is restarting behind a
    /// proxy (502/503/504), overloaded (429) or failed (5xx). Its 4xx answers are final.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Network(_) => true,
            Self::Status { status, .. } => matches!(status, 408 | 429 | 500..=599),
            Self::InvalidResponse(_) => false,
        }
    }
}

/// What the retry policy does about a failed part PUT (see `upload/attempt.rs` for how each is acted on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// Try the same URL again after a delay: the network or the store had a bad moment.
    Retryable,
    /// Ask for a fresh URL first: the signature was refused, which on a presigned URL means it
    /// expired (S3 checks expiry when the request arrives, so a queued URL can die) or the clocks
    /// disagree. Decided by status and S3 error code, never by English message text; the engine
    /// also treats any failure of a URL past its lifetime (by its own clock) as expiry, because
    /// stores that omit CORS headers on errors make an expired URL look like a network error.
    Expired,
    /// Trying again cannot help.
    Fatal,
}

impl PutError {
    /// How a retry policy should treat this failure.
    pub fn class(&self) -> FailureClass {
        match self {
            Self::Network(_) => FailureClass::Retryable,
            Self::Unreadable(_) => FailureClass::Fatal,
            Self::Status { status, body, .. } => {
                let code = xml_field(body, "Code");
                match (status, code) {
                    (
                        _,
                        Some(
                            "AccessDenied"
                            | "ExpiredToken"
                            | "RequestTimeTooSkewed"
                            | "SignatureDoesNotMatch",
                        ),
                    ) => FailureClass::Expired,
                    (
                        _,
                        Some(
                            "RequestTimeout"
                                | "SlowDown"
                                | "InternalError"
                                | "ServiceUnavailable"
                                // The body arrived damaged: send it again. Garage names a
                                // body that does not match its x-amz-checksum-* InvalidDigest
                                // (S3 uses it for a malformed value, which the retry budget
                                // bounds).
                                | "BadDigest"
                                | "InvalidDigest"
                                | "XAmzContentChecksumMismatch"
                                | "XAmzContentSHA256Mismatch",
                        ),
                    ) => {
                        FailureClass::Retryable
                    }
                    (403, _) => FailureClass::Expired,
                    (408 | 429, _) | (500..=599, _) => FailureClass::Retryable,
                    _ => FailureClass::Fatal,
                }
            }
        }
    }
}

/// Summarises an S3 `<Error>` body as ` (Code: Message)`, or the first line of anything else.
fn s3_detail(body: &str) -> String {
    match (xml_field(body, "Code"), xml_field(body, "Message")) {
        (Some(code), Some(message)) => format!(" ({code}: {message})"),
        (Some(code), None) => format!(" ({code})"),
        _ => {
            let line = body.trim().lines().next().unwrap_or("").trim();
            if line.is_empty() || line.starts_with('<') {
                String::new()
            } else {
                format!(" ({})", truncate(line, 200))
            }
        }
    }
}

/// The text of the first `<name>…</name>` element. S3 error bodies are flat and small; a real XML
/// parser would be the only one in the module for this. The tags are matched at each `<` rather
/// than searched for as strings: a substring search links core's two-way searcher (1.5 KB of
/// the page's code) for this one use.
pub(crate) fn xml_field<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = body;
    let text = loop {
        rest = rest.split_once('<')?.1;
        if let Some(text) = rest.strip_prefix(name).and_then(|t| t.strip_prefix('>')) {
            break text;
        }
    };
    let (end, _) = text.match_indices('<').find(|&(i, _)| {
        text.get(i + 1..)
            .and_then(|t| t.strip_prefix('/'))
            .and_then(|t| t.strip_prefix(name))
            .is_some_and(|t| t.starts_with('>'))
    })?;
    let text = text.get(..end)?.trim();
    (!text.is_empty()).then_some(text)
}

/// A number in a message, as `f64`'s `Display` writes it (`30`, `0.25`, `-1`, `NaN`, `inf`), but to
/// at most 3 decimals and, from 10^15 on, as `>= 1e15`. `f64`'s own formatting (Grisu and Dragon4),
/// which only messages used, was 22,972 bytes of the page (8,767 gzipped).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decimal(pub(crate) f64);

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if v.is_nan() {
            return f.write_str("NaN");
        }
        if v.is_sign_negative() {
            f.write_str("-")?;
        }
        let v = v.abs();
        if v == f64::INFINITY {
            return f.write_str("inf");
        }
        if v >= 1e15 {
            return f.write_str(">= 1e15");
        }
        // Below 10^15, thousandths are exact in a u64.
        let thousandths = (v * 1000.0).round() as u64;
        write!(f, "{}", thousandths / 1000)?;
        let mut fraction = thousandths % 1000;
        if fraction == 0 {
            return Ok(());
        }
        let mut digits = 3;
        while fraction.is_multiple_of(10) {
            fraction /= 10;
            digits -= 1;
        }
        write!(f, ".{fraction:0digits$}")
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    // Not `&s[..end]`: a slice that cannot fail keeps the slice-error message (and what it
    // formats) out of the page.
    s.split_at_checked(end).map_or(s, |(head, _)| head)
}

/// `s` in double quotes, its quotes, backslashes and control characters escaped: what `{:?}`
/// writes for text (a control character other than `\n`, `\r` and `\t` as `\u{…}`), without
/// `str`'s `Debug` and the Unicode tables it reads.
pub(crate) struct Quoted<'a>(pub(crate) &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        f.write_str("\"")?;
        // Where the text not yet written starts.
        let mut plain = 0;
        for (i, c) in s.char_indices() {
            let escape = match c {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                c if c.is_control() => "",
                _ => continue,
            };
            // `char_indices` yields character boundaries: `get` cannot miss.
            f.write_str(s.get(plain..i).unwrap_or_default())?;
            if escape.is_empty() {
                write!(f, "\\u{{{:x}}}", c as u32)?;
            } else {
                f.write_str(escape)?;
            }
            plain = i + c.len_utf8();
        }
        f.write_str(s.get(plain..).unwrap_or_default())?;
        f.write_str("\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPIRED: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code>\
        <Message>Request has expired</Message><RequestId>1</RequestId></Error>";

    #[test]
    fn decimals_read_as_f64_displays_them() {
        for v in [
            0.0,
            30.0,
            0.25,
            12.345,
            -1.0,
            1e14,
            0.1,
            f64::NAN,
            f64::INFINITY,
        ] {
            assert_eq!(Decimal(v).to_string(), v.to_string(), "{v}");
        }
        assert_eq!(Decimal(-0.05).to_string(), "-0.05");
        assert_eq!(Decimal(f64::NEG_INFINITY).to_string(), "-inf");
        assert_eq!(Decimal(2.5e-4).to_string(), "0");
        assert_eq!(Decimal(1.0004).to_string(), "1");
        assert_eq!(Decimal(1.9996).to_string(), "2");
        assert_eq!(Decimal(1e300).to_string(), ">= 1e15");
    }

    #[test]
    fn part_status_names_part_status_and_s3_code() {
        let e = Error::PartStatus {
            part: 3,
            parts: 12,
            status: 403,
            body: EXPIRED.into(),
            attempts: 1,
        };
        assert_eq!(
            e.to_string(),
            "part 3 of 12: PUT returned 403 (AccessDenied: Request has expired)"
        );
        assert_eq!(
            (e.code(), e.status(), e.part()),
            ("http_error", Some(403), Some(3))
        );
    }

    #[test]
    fn part_status_without_xml_shows_the_first_line_only() {
        let e = Error::PartStatus {
            part: 1,
            parts: 1,
            status: 502,
            body: "bad gateway\nmore".into(),
            attempts: 1,
        };
        assert_eq!(e.to_string(), "part 1 of 1: PUT returned 502 (bad gateway)");
        let html = Error::PartStatus {
            part: 1,
            parts: 1,
            status: 502,
            body: "<html><body>oops</body></html>".into(),
            attempts: 1,
        };
        assert_eq!(html.to_string(), "part 1 of 1: PUT returned 502");
    }

    #[test]
    fn a_single_put_failure_names_no_part_and_no_multipart_upload() {
        let e = Error::PartStatus {
            part: 1,
            parts: 0,
            status: 500,
            body: "<Error><Code>InternalError</Code><Message>boom</Message></Error>".into(),
            attempts: 7,
        };
        assert_eq!(
            e.to_string(),
            "the file's single PUT: PUT returned 500 (InternalError: boom); gave up after 7 attempts"
        );
        assert_eq!((e.code(), e.part()), ("http_error", None));
        let stalled = Error::PartStalled {
            part: 1,
            parts: 0,
            stall_ms: 30_000,
            attempts: 2,
        };
        assert_eq!(
            stalled.to_string(),
            "the file's single PUT: no bytes moved for 30 s; gave up after 2 attempts"
        );
    }

    #[test]
    fn server_codes_pass_through_and_stage_codes_fill_in() {
        let with_code = Error::Api {
            call: ApiCall::Complete,
            source: ApiError::Status {
                status: 400,
                code: Some("invalid_part".into()),
                message: "part 2's ETag does not match".into(),
                retry_after_ms: None,
            },
        };
        assert_eq!(with_code.code(), "invalid_part");
        assert_eq!(with_code.status(), Some(400));
        assert_eq!(
            with_code.to_string(),
            "completing the upload failed: the signing server answered 400 invalid_part: \
             part 2's ETag does not match"
        );
        let bare = Error::Api {
            call: ApiCall::Sign { first: 9, count: 8 },
            source: ApiError::Status {
                status: 502,
                code: None,
                message: String::new(),
                retry_after_ms: None,
            },
        };
        assert_eq!(bare.code(), "sign_failed");
        assert_eq!(
            bare.to_string(),
            "signing parts 9 to 16 failed: the signing server answered 502"
        );
        let offline = Error::Api {
            call: ApiCall::Create,
            source: ApiError::Network("offline".into()),
        };
        assert_eq!((offline.code(), offline.status()), ("create_failed", None));
    }

    #[test]
    fn every_local_code_is_stable() {
        let cases = [
            (Error::Aborted { cleanup: None }, "aborted"),
            (Error::MissingEtag { part: 1, parts: 2 }, "missing_etag"),
            (
                Error::PartNetwork {
                    part: 1,
                    parts: 2,
                    message: "x".into(),
                    attempts: 1,
                },
                "network_error",
            ),
            (Error::InvalidOptions("x".into()), "invalid_options"),
            (Error::FileTooLarge { size: 1 }, "file_too_large"),
        ];
        for (e, code) in cases {
            assert_eq!(e.code(), code, "{e}");
        }
    }

    #[test]
    fn aborted_mentions_a_failed_cleanup() {
        let e = Error::Aborted {
            cleanup: Some(ApiError::Network("offline".into())),
        };
        assert!(
            e.to_string()
                .starts_with("the upload was aborted; removing its stored parts")
        );
        assert_eq!(e.code(), "aborted");
    }

    #[test]
    fn failures_are_classified_by_status_and_s3_code() {
        let status = |status, body: &str| PutError::status(status, body);
        assert_eq!(status(403, EXPIRED).class(), FailureClass::Expired);
        assert_eq!(status(403, "").class(), FailureClass::Expired);
        assert_eq!(
            status(400, "<Error><Code>RequestTimeout</Code></Error>").class(),
            FailureClass::Retryable
        );
        assert_eq!(status(503, "").class(), FailureClass::Retryable);
        assert_eq!(status(429, "").class(), FailureClass::Retryable);
        assert_eq!(
            status(400, "<Error><Code>EntityTooLarge</Code></Error>").class(),
            FailureClass::Fatal
        );
        assert_eq!(status(404, "").class(), FailureClass::Fatal);
        assert_eq!(
            PutError::Network("x".into()).class(),
            FailureClass::Retryable
        );
        assert_eq!(
            PutError::Unreadable("NotReadableError".into()).class(),
            FailureClass::Fatal
        );
    }

    #[test]
    fn xml_fields_are_read_by_exact_tag() {
        assert_eq!(xml_field(EXPIRED, "Code"), Some("AccessDenied"));
        assert_eq!(xml_field(EXPIRED, "Message"), Some("Request has expired"));
        let body = "<CodeX>no</CodeX><Code> é </Cod><Code>x</Code>";
        assert_eq!(xml_field(body, "Code"), Some("é </Cod><Code>x"));
        assert_eq!(xml_field("<Code>open", "Code"), None);
        assert_eq!(xml_field("<Code>  </Code>", "Code"), None);
        assert_eq!(xml_field("<Cod", "Code"), None);
        assert_eq!(xml_field("", "Code"), None);
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abc", 0), "");
        assert_eq!(truncate("é", 1), "");
    }

    #[test]
    fn quoted_writes_what_debug_writes() {
        for s in [
            "",
            "plain",
            "say \"hi\"",
            r"C:\dir\file",
            "two\nlines\r\n\ttabbed",
            "héllo wörld ✓ 日本",
            "\"",
            "\\",
            "\u{1b}[31m red \u{7f} \u{85}",
            "ends with a quote\"",
        ] {
            assert_eq!(Quoted(s).to_string(), format!("{s:?}"), "{s:?}");
        }
        assert_eq!(Quoted("a\0b").to_string(), r#""a\u{0}b""#);
    }
}
