//! The server's one error type and its conversion into the signing API's JSON error answer.
//!
//! Handlers return `Result<_, Error>` and use `?`; the conversion to `{error, message}` with a
//! stable [`ErrorCode`] happens once, in [`IntoResponse`]. Caller mistakes (4xx) are logged at
//! debug level only; server and store failures (5xx) are logged with their details, which the
//! answer hides.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use s3_direct_protocol::ErrorCode;
use s3_direct_protocol::limits::{MAX_COMPLETE_BODY_BYTES, MAX_CREATE_BODY_BYTES};
use s3_direct_protocol::wire::ErrorBody;

use crate::keys::KeyError;
use crate::store::StoreError;

/// Everything that can go wrong while answering a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or asks for something S3 would refuse; nothing was sent to the store.
    #[error("{message}")]
    BadRequest { code: ErrorCode, message: String },

    /// No API route has this path.
    #[error("no signing API route for {method} {path}; see the route table in the docs")]
    NoRoute { method: String, path: String },

    /// The route exists but not for this method.
    #[error("method {method} is not allowed on {path}; see the route table in the docs")]
    MethodNotAllowed { method: String, path: String },

    /// The body exceeds the route's limit.
    #[error(
        "request body is too large (create accepts {} bytes, complete {} bytes)",
        MAX_CREATE_BODY_BYTES,
        MAX_COMPLETE_BODY_BYTES
    )]
    PayloadTooLarge,

    /// No credentials, or ones that do not verify. The message never repeats the credentials.
    #[error("{0}")]
    Unauthenticated(String),

    /// The caller is known but may not do this (another principal's upload, a bad upload token,
    /// a key outside its prefix, a size or type its permissions do not allow).
    #[error("{message}")]
    Forbidden { code: ErrorCode, message: String },

    /// The request names a `Host` this server does not answer (DNS rebinding, a wrong proxy).
    #[error("{0}")]
    Misdirected(String),

    /// A `Content-Encoding` or charset the server does not decode.
    #[error("{0}")]
    UnsupportedMediaType(String),

    /// The caller sent too many requests; it may try again after `retry_after_secs`.
    #[error("too many requests from this caller; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },

    /// Too many calls to the authorization webhook are in flight; the caller may try again after
    /// `retry_after_secs`.
    #[error("{message}")]
    Busy {
        message: String,
        retry_after_secs: u64,
    },

    /// The parts in the store break the upload's plan; the upload was aborted.
    #[error("{0}")]
    PlanViolated(String),

    /// A small file reported done whose object the store does not hold (answered like a
    /// multipart upload that does not exist: 404 `no_such_upload`).
    #[error("{0}")]
    NoSuchObject(String),

    /// The store answered with an error or could not be reached.
    #[error(transparent)]
    Store(#[from] StoreError),

    /// A bug or an unexpected state in this server.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// A 400 answer with `code` and a message that names the offending value.
    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// The stable code the client sees.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BadRequest { code, .. } => *code,
            Self::NoRoute { .. } | Self::MethodNotAllowed { .. } => ErrorCode::InvalidRequest,
            Self::PayloadTooLarge => ErrorCode::PayloadTooLarge,
            Self::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Self::Forbidden { code, .. } => *code,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Misdirected(_) => ErrorCode::MisdirectedRequest,
            Self::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            Self::Busy { .. } => ErrorCode::Busy,
            Self::PlanViolated(_) => ErrorCode::PlanViolated,
            Self::NoSuchObject(_) | Self::Store(StoreError::NoSuchUpload { .. }) => {
                ErrorCode::NoSuchUpload
            }
            Self::Store(StoreError::InvalidPart { .. }) => ErrorCode::InvalidPart,
            Self::Store(StoreError::EntityTooSmall { .. }) => ErrorCode::EntityTooSmall,
            Self::Store(StoreError::Unavailable { .. }) => ErrorCode::StoreUnavailable,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::NoRoute { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Misdirected(_) => StatusCode::MISDIRECTED_REQUEST,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::PlanViolated(_) => StatusCode::CONFLICT,
            Self::NoSuchObject(_) | Self::Store(StoreError::NoSuchUpload { .. }) => {
                StatusCode::NOT_FOUND
            }
            Self::Store(StoreError::InvalidPart { .. } | StoreError::EntityTooSmall { .. }) => {
                StatusCode::BAD_REQUEST
            }
            Self::Store(StoreError::Unavailable { .. }) => StatusCode::BAD_GATEWAY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message the client sees: specific for its own mistakes, generic for ours.
    fn public_message(&self) -> String {
        match self {
            Self::Store(StoreError::Unavailable { operation, .. }) => format!(
                "the storage service failed during {operation}; try again later \
                 (details are in the server log)"
            ),
            Self::Internal(_) => {
                "internal error in the signing server (details are in the server log)".to_owned()
            }
            other => other.to_string(),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Self::Busy { .. } = self {
            // Expected under a flood: a warning per refused request, not an error with details.
            tracing::warn!(code = %self.code(), "refused request: {self}");
        } else if status.is_server_error() {
            // `{:?}` keeps the store's error chain, which the client never sees.
            tracing::error!(code = %self.code(), error = ?self, "request failed");
        } else {
            tracing::debug!(code = %self.code(), "refused request: {self}");
        }
        let body = ErrorBody {
            error: self.code(),
            message: self.public_message(),
        };
        let mut res = (status, Json(body)).into_response();
        match self {
            Self::RateLimited { retry_after_secs }
            | Self::Busy {
                retry_after_secs, ..
            } => {
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            Self::Unauthenticated(_) => {
                res.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        res
    }
}

impl From<KeyError> for Error {
    fn from(e: KeyError) -> Self {
        Self::bad_request(e.code(), e.to_string())
    }
}

impl From<JsonRejection> for Error {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Self::bad_request(
                ErrorCode::InvalidJson,
                "request body must be JSON; send the header content-type: application/json",
            ),
            JsonRejection::JsonSyntaxError(e) => Self::bad_request(
                ErrorCode::InvalidJson,
                format!("request body is not valid JSON: {}", source_text(&e)),
            ),
            JsonRejection::JsonDataError(e) => Self::bad_request(
                ErrorCode::InvalidJson,
                format!(
                    "request body does not have the expected fields: {}",
                    source_text(&e)
                ),
            ),
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::PayloadTooLarge
            }
            other => Self::bad_request(
                ErrorCode::InvalidJson,
                format!("could not read the request body: {}", other.body_text()),
            ),
        }
    }
}

impl From<QueryRejection> for Error {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request(
            ErrorCode::InvalidRequest,
            format!("malformed query string: {}", rejection.body_text()),
        )
    }
}

impl From<PathRejection> for Error {
    fn from(rejection: PathRejection) -> Self {
        Self::bad_request(
            ErrorCode::InvalidRequest,
            format!("malformed path: {}", rejection.body_text()),
        )
    }
}

/// The innermost cause of an error, which for serde names the field and position
/// (axum's own text adds a capitalised "Failed to deserialize" preamble).
fn source_text(e: &dyn std::error::Error) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
