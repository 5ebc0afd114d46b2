//! The signing API's handlers, a superset of Uppy Companion's S3 multipart routes, and the
//! operator's probes.
//!
//! Each handler reads: authorize ([`Caller::authorize`]), decode its input (path, query, JSON),
//! one use-case call ([`crate::uploads`]), answer. A handler checks its whole input before the use
//! case calls the [`Store`](crate::store::Store), so a refused request has no effect on the store.
//! Extractors are wrapped so that axum's plain-text rejections become our JSON errors.

use std::collections::BTreeMap;

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, OriginalUri, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use s3_direct_protocol::limits::{MAX_COMPLETE_BODY_BYTES, MAX_CREATE_BODY_BYTES};
use s3_direct_protocol::wire::{
    CompleteRequest, CompleteResponse, CreateMultipartRequest, CreateMultipartResponse, ListedPart,
    ObjectCompleteRequest, SignPartResponse, SinglePutParams,
};
use s3_direct_protocol::{ErrorCode, api};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::{Action, CreateDetails};
use crate::error::Error;
use crate::uploads::{Caller, SmallFileRequest};
use crate::validate;

/// A JSON body whose rejections are [`Error`]s.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(Error))]
pub struct ApiJson<T>(pub T);

/// A query string whose rejections are [`Error`]s. Percent-escapes that decode to invalid UTF-8
/// are refused (the plain query parser would silently turn them into U+FFFD).
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let raw = parts.uri.query().unwrap_or_default();
        for pair in raw.split('&') {
            if !percent_decodes_to_utf8(pair) {
                return Err(Error::bad_request(
                    ErrorCode::InvalidRequest,
                    "the query string has percent-escapes that are not UTF-8; encode values \
                     with encodeURIComponent",
                ));
            }
        }
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// Whether `%XX` escapes (and `+`) in `s` decode to valid UTF-8.
fn percent_decodes_to_utf8(s: &str) -> bool {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        // Two hex digits make one byte.
                        out.push((h * 16 + l) as u8);
                        i += 3;
                    }
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    std::str::from_utf8(&out).is_ok()
}

/// Path parameters whose rejections are [`Error`]s.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Error))]
pub struct ApiPath<T>(pub T);

/// The API routes, relative to the route prefix.
pub fn api_router() -> Router<AppState> {
    use axum::extract::DefaultBodyLimit;
    Router::new()
        .route(
            api::CREATE,
            post(create).layer(DefaultBodyLimit::max(MAX_CREATE_BODY_BYTES)),
        )
        .route(api::UPLOAD, get(list_parts).delete(abort))
        .route(api::SIGN_BATCH, get(sign_batch))
        .route(
            api::COMPLETE,
            post(complete).layer(DefaultBodyLimit::max(MAX_COMPLETE_BODY_BYTES)),
        )
        .route(api::SIGN_PART, get(sign_part))
        .route(api::PARAMS, get(single_put_params))
        .route(
            api::PARAMS_COMPLETE,
            post(complete_small).layer(DefaultBodyLimit::max(MAX_CREATE_BODY_BYTES)),
        )
        .method_not_allowed_fallback(method_not_allowed)
}

/// JSON 404 for unknown paths under the API prefix.
pub async fn no_route(method: Method, OriginalUri(uri): OriginalUri) -> Error {
    Error::NoRoute {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> Error {
    Error::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

/// `GET /healthz`: the process is up (it does not call the store, so a load balancer does not
/// take the server out of rotation for a store hiccup).
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: the store answers a cheap call (`HeadBucket`); 503 `store_unavailable` when
/// it does not, so a load balancer stops sending uploads to a replica that cannot serve them.
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.store().ping().await {
        Ok(()) => {
            let mut ready = json!({ "status": "ready" });
            // Which part checksum clients are asked for, and why (`--checksum auto` decides it
            // by probing the store at start; absent until then).
            if let Some(d) = state.checksum_decision() {
                ready["checksum"] = json!({
                    "algorithm": crate::store::integrity::name(d.algorithm),
                    "reason": d.reason,
                    "settled": d.settled,
                });
            }
            Json(ready).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "error": "store_unavailable", "message": e.to_string() })),
            )
                .into_response()
        }
    }
}

/// `GET /metrics`: the Prometheus text exposition of this server's metrics.
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics().render(),
    )
        .into_response()
}

/// The client's address, which the per-address rate limits key on: the connection's peer, or the
/// address a trusted proxy names (`client_address.rs`); `None` when the server was started without
/// connection info (under `oneshot` in tests).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub Option<IpAddr>);

impl FromRequestParts<AppState> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(Self(
            state
                .settings()
                .trusted_proxies
                .client(peer, &parts.headers),
        ))
    }
}

/// `?key=` of the routes that act on an existing upload.
#[derive(Debug, Deserialize)]
struct KeyQuery {
    key: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    Peer(peer): Peer,
    ApiJson(req): ApiJson<CreateMultipartRequest>,
) -> Result<Json<CreateMultipartResponse>, Error> {
    // Parsed before anyone sees it: the webhook and the allow-lists get the normalised type.
    let parsed_type = validate::content_type(&req.content_type)?;
    let details = CreateDetails {
        filename: req.filename.clone(),
        relative_path: req.relative_path.clone(),
        content_type: parsed_type.to_string(),
        size: req.size,
    };
    let caller = Caller::authorize(&state, &headers, peer, Action::Create, Some(&details)).await?;
    Ok(Json(caller.create(&req, &parsed_type).await?))
}

#[derive(Debug, Deserialize)]
struct SignQuery {
    key: Option<String>,
    /// Extension: `ALGO:BASE64` checksum of the part, signed into the URL.
    checksum: Option<String>,
    /// Extension: the part's length in bytes, signed into the URL; required for an upload with
    /// a size bound but no declared plan ([`crate::policy::signed_length`]).
    length: Option<String>,
}

async fn sign_part(
    State(state): State<AppState>,
    headers: HeaderMap,
    Peer(peer): Peer,
    ApiPath((upload_id, part_number)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<SignQuery>,
) -> Result<Json<SignPartResponse>, Error> {
    let caller = Caller::authorize(&state, &headers, peer, Action::Sign, None).await?;
    let part_number = validate::part_number(&part_number)?;
    let upload = caller.upload(&upload_id, query.key.as_deref())?;
    let signed = upload
        .sign_part(
            part_number,
            query.length.as_deref(),
            query.checksum.as_deref(),
        )
        .await?;
    Ok(Json(signed))
}

#[derive(Debug, Deserialize)]
struct BatchQuery {
    key: Option<String>,
    #[serde(rename = "partNumbers")]
    part_numbers: Option<String>,
    /// Extension: `N:ALGO:BASE64,...` checksums of some of the parts.
    checksums: Option<String>,
    /// Extension: `N:BYTES,...` lengths of the parts, signed into their URLs; required for an
    /// upload with a size bound but no declared plan ([`crate::policy::signed_length`]).
    lengths: Option<String>,
}

async fn sign_batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    Peer(peer): Peer,
    ApiPath(upload_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<BatchQuery>,
) -> Result<Response, Error> {
    let caller = Caller::authorize(&state, &headers, peer, Action::Sign, None).await?;
    let numbers = validate::batch(query.part_numbers.as_deref().unwrap_or_default())?;
    let upload = caller.upload(&upload_id, query.key.as_deref())?;
    let (answer, urls_len) = upload
        .sign_batch(
            &numbers,
            query.checksums.as_deref().unwrap_or_default(),
            query.lengths.as_deref().unwrap_or_default(),
        )
        .await?;
    // Serialised into one buffer of about its size (a 100-part answer is ~45 KB): axum's `Json`
    // starts at 128 bytes and copies the answer each time it doubles.
    let capacity = urls_len + numbers.len() * 16 + 256;
    let mut body = Vec::with_capacity(capacity);
    serde_json::to_writer(&mut body, &answer).map_err(|e| Error::Internal(e.to_string()))?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

async fn list_parts(
    State(state): State<AppState>,
    headers: HeaderMap,
    Peer(peer): Peer,
    ApiPath(upload_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<KeyQuery>,
) -> Result<Json<Vec<ListedPart>>, Error> {
    let caller = Caller::authorize(&state, &headers, peer, Action::List, None).await?;
    let upload = caller.upload(&upload_id, query.key.as_deref())?;
    Ok(Json(upload.list_parts().await?))
}

async fn complete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Peer(peer): Peer,
    ApiPath(upload_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<KeyQuery>,
    ApiJson(req): ApiJson<CompleteRequest>,
) -> Result<Json<CompleteResponse>, Error> {
    let caller = Caller::authorize(&state, &headers, peer, Action::Complete, None).await?;
    validate::part_list(&req.parts)?;
    let upload = caller.upload(&upload_id, query.key.as_deref())?;
    Ok(Json(upload.complete(&req.parts).await?))
}

async fn abort(
    State(state): State<AppState>,
    headers: HeaderMap,
    Peer(peer): Peer,
    ApiPath(upload_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<KeyQuery>,
) -> Result<Json<Value>, Error> {
    let caller = Caller::authorize(&state, &headers, peer, Action::Abort, None).await?;
    caller
        .upload(&upload_id, query.key.as_deref())?
        .abort()
        .await?;
    Ok(Json(json!({})))
}

#[derive(Debug, Deserialize)]
struct ParamsQuery {
    filename: Option<String>,
    /// Extension: the file's path within a folder the user chose (see
    /// [`CreateMultipartRequest::relative_path`]).
    #[serde(rename = "relativePath")]
    relative_path: Option<String>,
    #[serde(rename = "type", default)]
    content_type: String,
    /// Extension: the file's size, so an impossible single PUT is refused up front and the URL
    /// fixes the exact length.
    size: Option<String>,
    /// Extension: `ALGO:BASE64` checksum of the whole file, signed into the URL.
    checksum: Option<String>,
    /// Extension: `PUT` or `POST`, how the caller will send the file. Without it, callers that
    /// pass `size` or `checksum` (s3-direct's client) get a presigned `PUT`, the others (Uppy,
    /// other Companion clients) what `--small-file-method` says: by default the POST policy
    /// Companion answers.
    method: Option<String>,
    /// `metadata[name]=value` pairs (how Uppy sends a file's metadata, and Companion reads it);
    /// other parameters are ignored.
    #[serde(flatten)]
    rest: BTreeMap<String, String>,
}

impl ParamsQuery {
    /// The `metadata[name]` parameters as `name → value`.
    fn metadata(&self) -> BTreeMap<String, String> {
        self.rest
            .iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix("metadata[")?.strip_suffix(']')?;
                Some((name.to_owned(), v.clone()))
            })
            .collect()
    }

    /// The request, decoded: the file name (required), the size (a whole number) and the type
    /// (one media type), checked in that order.
    fn decode(self) -> Result<SmallFileRequest, Error> {
        let metadata = self.metadata();
        let filename = self.filename.ok_or_else(|| {
            Error::bad_request(
                ErrorCode::InvalidFilename,
                "missing query parameter `filename`; pass the file's name",
            )
        })?;
        let size = match self.size.as_deref() {
            Some(raw) => Some(raw.parse::<u64>().map_err(|_| {
                Error::bad_request(
                    ErrorCode::InvalidSize,
                    format!(
                        "size {:?} is not a whole number of bytes",
                        crate::keys::truncate_for_message(raw)
                    ),
                )
            })?),
            None => None,
        };
        Ok(SmallFileRequest {
            filename,
            relative_path: self.relative_path,
            size,
            content_type: validate::content_type(&self.content_type)?,
            method: self.method,
            checksum: self.checksum,
            metadata,
        })
    }
}

async fn single_put_params(
    State(state): State<AppState>,
    headers: HeaderMap,
    Peer(peer): Peer,
    ApiQuery(query): ApiQuery<ParamsQuery>,
) -> Result<Json<SinglePutParams>, Error> {
    let req = query.decode()?;
    let details = CreateDetails {
        filename: req.filename.clone(),
        relative_path: req.relative_path.clone(),
        content_type: req.content_type.to_string(),
        size: req.size,
    };
    let caller = Caller::authorize(&state, &headers, peer, Action::Create, Some(&details)).await?;
    Ok(Json(caller.small_file(&req).await?))
}

/// `POST /s3/params/complete`: a small file sent as one presigned PUT or POST form is done.
async fn complete_small(
    State(state): State<AppState>,
    headers: HeaderMap,
    Peer(peer): Peer,
    ApiJson(req): ApiJson<ObjectCompleteRequest>,
) -> Result<Json<CompleteResponse>, Error> {
    let caller = Caller::authorize(&state, &headers, peer, Action::Complete, None).await?;
    Ok(Json(caller.complete_small(&req).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_escapes_must_decode_to_utf8() {
        for ok in ["", "a=b", "k=%C3%BC", "k=100%", "k=%zz", "k=%2", "a+b=%20"] {
            assert!(percent_decodes_to_utf8(ok), "{ok}");
        }
        for bad in ["k=%FF", "k=%C3", "%ff%fe", "k=%C3%28"] {
            assert!(!percent_decodes_to_utf8(bad), "{bad}");
        }
    }
}
