//! The signing API's handlers (DESIGN.md §4), a superset of Uppy Companion's S3 multipart routes.
//!
//! Each handler checks its whole input first ([`crate::validate`], [`crate::keys`]) and only then
//! calls the [`Store`](crate::store::Store), so a refused request has no effect on the store.
//! Extractors are wrapped so that axum's plain-text rejections become our JSON errors.

use std::collections::BTreeMap;

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, OriginalUri, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use s3_direct_protocol::limits::{MAX_BATCH_PARTS, MAX_SINGLE_PUT_SIZE};
use s3_direct_protocol::wire::{
    ChecksumAlgorithm, CompleteRequest, CompleteResponse, CreateMultipartRequest,
    CreateMultipartResponse, ListedPart, SignBatchResponse, SignPartResponse, SinglePutParams,
};
use s3_direct_protocol::{ErrorCode, PartPlan};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::{self, Action, CreateDetails, Principal};
use crate::config::SmallFileMethod;
use crate::error::Error;
use crate::events;
use crate::media_type::MediaType;
use crate::policy;
use crate::receipt::ReceiptClaims;
use crate::store::{NewUpload, PartSigning, PostSigning, PutSigning};
use crate::token::{UploadClaims, principal_digest};
use crate::validate;

mod small;

/// Body limit of create: a file name, a type and at most 2 KB of metadata.
pub const CREATE_BODY_LIMIT: usize = 64 * 1024;
/// Body limit of complete: 10,000 parts with 128-character ETags take about 1.7 MB.
pub const COMPLETE_BODY_LIMIT: usize = 4 * 1024 * 1024;

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
            "/multipart",
            post(create).layer(DefaultBodyLimit::max(CREATE_BODY_LIMIT)),
        )
        .route("/multipart/{upload_id}", get(list_parts).delete(abort))
        .route("/multipart/{upload_id}/batch", get(sign_batch))
        .route(
            "/multipart/{upload_id}/complete",
            post(complete).layer(DefaultBodyLimit::max(COMPLETE_BODY_LIMIT)),
        )
        .route("/multipart/{upload_id}/{part_number}", get(sign_part))
        .route("/params", get(single_put_params))
        .route(
            "/params/complete",
            post(small::complete).layer(DefaultBodyLimit::max(CREATE_BODY_LIMIT)),
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

/// The client's address when the server was started with connection info (open mode's rate
/// limit keys on it); `None` under `oneshot` in tests.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// `?key=` of the routes that act on an existing upload.
#[derive(Debug, Deserialize)]
struct KeyQuery {
    key: Option<String>,
}

/// Checks the declared size and part size against S3's limits and the caller's.
fn check_declared_size(
    principal: &Principal,
    size: Option<u64>,
    part_size: Option<u64>,
) -> Result<(), Error> {
    if let Some(size) = size {
        validate::object_size(size)?;
        if let Some(max) = principal.max_size
            && size > max
        {
            return Err(Error::Forbidden {
                code: ErrorCode::Forbidden,
                message: format!(
                    "file size {size} exceeds the {max}-byte limit of this caller's upload \
                     permission"
                ),
            });
        }
    }
    match (size, part_size) {
        (None, Some(_)) => Err(Error::bad_request(
            ErrorCode::InvalidSize,
            "partSize needs size; send the file's size with the part size",
        )),
        (Some(size), Some(part_size)) => PartPlan::with_part_size(size, part_size)
            .map(drop)
            .map_err(|e| Error::bad_request(ErrorCode::InvalidSize, e.to_string())),
        _ => Ok(()),
    }
}

/// The content type to store, already parsed ([`validate::content_type`]), checked against the
/// server's and the caller's allow-lists; answered in its normalised form.
fn allowed_content_type(
    state: &AppState,
    principal: &Principal,
    parsed: &MediaType,
) -> Result<String, Error> {
    let content_type = parsed.to_string();
    let lists = [
        state.settings().content_types.as_deref(),
        principal.content_types.as_deref(),
    ];
    for list in lists.into_iter().flatten() {
        if !auth::content_type_allowed(&content_type, list) {
            return Err(Error::Forbidden {
                code: ErrorCode::ContentTypeNotAllowed,
                message: format!(
                    "content type {:?} is not allowed here; allowed: {}",
                    crate::keys::truncate_for_message(&content_type),
                    list.join(", ")
                ),
            });
        }
    }
    Ok(content_type)
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    Peer(peer): Peer,
    ApiJson(req): ApiJson<CreateMultipartRequest>,
) -> Result<Json<CreateMultipartResponse>, Error> {
    let part_size = req.part_size;
    // Parsed before anyone sees it: the webhook and the allow-lists get the normalised type.
    let parsed_type = validate::content_type(&req.content_type)?;
    let details = CreateDetails {
        filename: req.filename.clone(),
        content_type: parsed_type.to_string(),
        size: req.size,
    };
    let principal =
        policy::authorize(&state, &headers, peer, Action::Create, Some(&details)).await?;
    check_declared_size(&principal, req.size, part_size)?;
    let content_type = allowed_content_type(&state, &principal, &parsed_type)?;
    let metadata = validate::metadata(&req.metadata)?;
    let key = state
        .keys()
        .issue_under(&policy::prefix_of(&state, &principal), &req.filename)?;
    let asked = state.checksum_asked().await;
    let declared = policy::declared_checksum(req.checksum, asked);
    let store_id = state
        .store()
        .create_multipart(NewUpload {
            key: key.clone(),
            content_type,
            metadata,
            checksum: declared,
        })
        .await?;
    let claims = UploadClaims {
        principal: principal_digest(&principal.id),
        expires_at: policy::now_secs().saturating_add(state.settings().token_lifetime.as_secs()),
        size: req.size,
        part_size,
        max_size: principal.max_size,
        checksum: declared,
    };
    let token = state.secrets().seal(&store_id, &key, &claims);
    tracing::info!(%key, upload = %store_id, size = ?req.size, checksum = ?declared, "multipart upload created");
    // The parts will carry this checksum: the client's own choice, or else the one asked for
    // (a client that declares nothing may still follow the answer).
    let hashed = req.checksum.map_or(asked, |c| c.resolve(asked));
    // The first parts' URLs, when asked for and no checksum is wanted (a URL signs its part's
    // checksum, which the client has not computed yet). Signing is authorised as the batch route
    // would authorise it; a caller allowed to create but not to sign simply gets none.
    let count = req
        .presign_parts
        .map_or(0, |n| n.min(MAX_BATCH_PARTS as u32))
        .min(policy::max_part_number(&claims));
    let presigned = if count > 0
        && hashed.is_none()
        && policy::authorize(&state, &headers, peer, Action::Sign, None)
            .await
            .is_ok_and(|signer| signer.id == principal.id)
    {
        // The upload exists now: a signing failure only costs the client its own batch request
        // (a bounded upload without a plan cannot be signed without the parts' lengths).
        let numbers: Vec<u32> = (1..=count).collect();
        match part_signings(&claims, &numbers, &BTreeMap::new(), BTreeMap::new()) {
            Ok(parts) => signed_batch(&state, &key, &store_id, parts)
                .await
                .ok()
                .map(|(batch, _)| batch),
            Err(_) => None,
        }
    } else {
        None
    };
    Ok(Json(CreateMultipartResponse {
        key,
        upload_id: format!("{store_id}.{token}"),
        bucket: state.store().bucket().to_owned(),
        part_size: part_size.filter(|_| req.size.is_some()),
        checksum: asked,
        presigned,
    }))
}

#[derive(Debug, Deserialize)]
struct SignQuery {
    key: Option<String>,
    /// Extension: `ALGO:BASE64` checksum of the part, signed into the URL.
    checksum: Option<String>,
    /// Extension: the part's length in bytes, signed into the URL; required for an upload with
    /// a size bound but no declared plan ([`policy::signed_length`]).
    length: Option<String>,
}

async fn sign_part(
    State(state): State<AppState>,
    headers: HeaderMap,
    Peer(peer): Peer,
    ApiPath((upload_id, part_number)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<SignQuery>,
) -> Result<Json<SignPartResponse>, Error> {
    let principal = policy::authorize(&state, &headers, peer, Action::Sign, None).await?;
    let part_number = validate::part_number(&part_number)?;
    let upload = policy::verify_upload(&state, &principal, &upload_id, query.key.as_deref())?;
    policy::check_part_in_plan(&upload.claims, part_number)?;
    let named = query
        .length
        .as_deref()
        .map(|raw| policy::length(part_number, raw))
        .transpose()?;
    let signing = PartSigning {
        content_length: policy::signed_length(&upload.claims, part_number, named)?,
        checksum: query
            .checksum
            .as_deref()
            .map(policy::checksum)
            .transpose()?,
    };
    policy::check_part_checksum(&upload.claims, part_number, signing.checksum.as_ref())?;
    let lifetime = state.url_lifetime_now().await;
    let presigned = state
        .store()
        .presign_part(upload.key, upload.store_id, part_number, lifetime, &signing)
        .await?;
    Ok(Json(SignPartResponse {
        url: presigned.url,
        expires: lifetime.as_secs(),
        headers: presigned.headers,
    }))
}

#[derive(Debug, Deserialize)]
struct BatchQuery {
    key: Option<String>,
    #[serde(rename = "partNumbers")]
    part_numbers: Option<String>,
    /// Extension: `N:ALGO:BASE64,...` checksums of some of the parts.
    checksums: Option<String>,
    /// Extension: `N:BYTES,...` lengths of the parts, signed into their URLs; required for an
    /// upload with a size bound but no declared plan ([`policy::signed_length`]).
    lengths: Option<String>,
}

async fn sign_batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    Peer(peer): Peer,
    ApiPath(upload_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<BatchQuery>,
) -> Result<Response, Error> {
    let principal = policy::authorize(&state, &headers, peer, Action::Sign, None).await?;
    let numbers = validate::batch(query.part_numbers.as_deref().unwrap_or_default())?;
    let upload = policy::verify_upload(&state, &principal, &upload_id, query.key.as_deref())?;
    for &n in &numbers {
        policy::check_part_in_plan(&upload.claims, n)?;
    }
    let checksums =
        policy::batch_checksums(query.checksums.as_deref().unwrap_or_default(), &numbers)?;
    for &n in &numbers {
        policy::check_part_checksum(&upload.claims, n, checksums.get(&n))?;
    }
    let lengths = policy::batch_lengths(query.lengths.as_deref().unwrap_or_default(), &numbers)?;
    let parts = part_signings(&upload.claims, &numbers, &lengths, checksums)?;
    let (answer, urls_len) = signed_batch(&state, upload.key, upload.store_id, parts).await?;
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

/// What each part of `numbers` signs in: its length ([`policy::signed_length`] of the one named
/// in `lengths`) and its checksum, if any.
fn part_signings(
    claims: &UploadClaims,
    numbers: &[u32],
    lengths: &BTreeMap<u32, u64>,
    mut checksums: BTreeMap<u32, (ChecksumAlgorithm, String)>,
) -> Result<Vec<(u32, PartSigning)>, Error> {
    numbers
        .iter()
        .map(|&n| {
            let signing = PartSigning {
                content_length: policy::signed_length(claims, n, lengths.get(&n).copied())?,
                checksum: checksums.remove(&n),
            };
            Ok((n, signing))
        })
        .collect()
}

/// Signs `parts` of one upload as the batch route answers them: headers every part shares in
/// `headers`, the rest per part in `partHeaders`. Also returns the URLs' total length.
async fn signed_batch(
    state: &AppState,
    key: &str,
    store_id: &str,
    parts: Vec<(u32, PartSigning)>,
) -> Result<(SignBatchResponse, usize), Error> {
    let lifetime = state.url_lifetime_now().await;
    let numbers: Vec<u32> = parts.iter().map(|(n, _)| *n).collect();
    let signed = state
        .store()
        .presign_parts(key, store_id, &parts, lifetime)
        .await?;
    let mut urls = BTreeMap::new();
    let mut per_part = BTreeMap::new();
    let mut urls_len = 0;
    for (&n, presigned) in numbers.iter().zip(signed) {
        urls_len += presigned.url.len();
        urls.insert(n, presigned.url);
        per_part.insert(n, presigned.headers);
    }
    // Headers every part shares go to `headers` (what Companion-era clients read); the rest, per
    // part, to `partHeaders`.
    let shared: BTreeMap<String, String> = match per_part.values().next() {
        Some(first) => first
            .iter()
            .filter(|(k, v)| per_part.values().all(|h| h.get(*k) == Some(*v)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        None => BTreeMap::new(),
    };
    let part_headers = per_part
        .into_iter()
        .map(|(n, h)| {
            let own: BTreeMap<String, String> = h
                .into_iter()
                .filter(|(k, _)| !shared.contains_key(k))
                .collect();
            (n, own)
        })
        .filter(|(_, h)| !h.is_empty())
        .collect();
    let answer = SignBatchResponse {
        presigned_urls: urls,
        expires: Some(lifetime.as_secs()),
        headers: shared,
        part_headers,
    };
    Ok((answer, urls_len))
}

async fn list_parts(
    State(state): State<AppState>,
    headers: HeaderMap,
    Peer(peer): Peer,
    ApiPath(upload_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<KeyQuery>,
) -> Result<Json<Vec<ListedPart>>, Error> {
    let principal = policy::authorize(&state, &headers, peer, Action::List, None).await?;
    let upload = policy::verify_upload(&state, &principal, &upload_id, query.key.as_deref())?;
    Ok(Json(
        state
            .store()
            .list_parts(upload.key, upload.store_id)
            .await?,
    ))
}

async fn complete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Peer(peer): Peer,
    ApiPath(upload_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<KeyQuery>,
    ApiJson(req): ApiJson<CompleteRequest>,
) -> Result<Json<CompleteResponse>, Error> {
    let principal = policy::authorize(&state, &headers, peer, Action::Complete, None).await?;
    validate::part_list(&req.parts)?;
    let upload = policy::verify_upload(&state, &principal, &upload_id, query.key.as_deref())?;
    policy::check_part_list_against_plan(&upload.claims, &req.parts)?;
    let parts = policy::completion_checksums(&upload.claims, &req.parts)?;
    let done = policy::completion::finish(state.store(), &upload, &parts).await?;
    let object = &done.object;
    if !done.earlier {
        state.metrics().bytes_completed.inc_by(object.size);
    }
    tracing::info!(
        key = %object.key, upload = %upload.store_id, parts = req.parts.len(),
        size = object.size, etag = %object.etag, earlier = done.earlier,
        "upload completed"
    );
    Ok(Json(
        answer(&state, &principal, done, upload.store_id).await?,
    ))
}

/// The answer to a verified completion, with the receipt of what was verified (`upload_id` is
/// its `upload_id` claim), once the completion event, if events are on, is in the store.
async fn answer(
    state: &AppState,
    principal: &Principal,
    done: policy::completion::Finished,
    upload_id: &str,
) -> Result<CompleteResponse, Error> {
    let object = done.object;
    let bucket = state.store().bucket().to_owned();
    let claims = ReceiptClaims {
        iss: state.receipts().issuer().to_owned(),
        sub: principal.id.clone(),
        iat: policy::now_secs(),
        bucket: bucket.clone(),
        key: object.key.clone(),
        size: object.size,
        etag: object.etag.clone(),
        content_type: object.content_type.clone().unwrap_or_default(),
        checksum: object.checksum.clone(),
        whole_file: object.whole_file.clone(),
        upload_id: upload_id.to_owned(),
    };
    let receipt = state.receipts().sign(&claims);
    // The event is in the store before the browser hears of the completion.
    events::completed(state, &claims, &receipt).await?;
    Ok(CompleteResponse {
        location: done.location,
        key: object.key,
        bucket,
        etag: object.etag,
        size: object.size,
        checksum: object.checksum,
        whole_file: object.whole_file,
        receipt: Some(receipt),
    })
}

async fn abort(
    State(state): State<AppState>,
    headers: HeaderMap,
    Peer(peer): Peer,
    ApiPath(upload_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<KeyQuery>,
) -> Result<Json<Value>, Error> {
    let principal = policy::authorize(&state, &headers, peer, Action::Abort, None).await?;
    let upload = policy::verify_upload(&state, &principal, &upload_id, query.key.as_deref())?;
    state.store().abort(upload.key, upload.store_id).await?;
    tracing::info!(key = %upload.key, upload = %upload.store_id, "upload aborted");
    Ok(Json(json!({})))
}

#[derive(Debug, Deserialize)]
struct ParamsQuery {
    filename: Option<String>,
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
    /// Whether the caller gets a POST policy (`true`) or a presigned `PUT`: what `method` asks
    /// for; without it, `usual` (`--small-file-method`) for callers that pass neither `size` nor
    /// `checksum`, a PUT for the others.
    fn wants_post(&self, size: Option<u64>, usual: SmallFileMethod) -> Result<bool, Error> {
        let post = match self.method.as_deref() {
            None => size.is_none() && self.checksum.is_none() && usual == SmallFileMethod::Post,
            Some(m) if m.eq_ignore_ascii_case("POST") => true,
            Some(m) if m.eq_ignore_ascii_case("PUT") => false,
            Some(m) => {
                return Err(Error::bad_request(
                    ErrorCode::InvalidRequest,
                    format!(
                        "method {:?} is neither PUT nor POST",
                        crate::keys::truncate_for_message(m)
                    ),
                ));
            }
        };
        if post && self.checksum.is_some() {
            return Err(Error::bad_request(
                ErrorCode::InvalidRequest,
                "a checksum is signed into a PUT only; ask for method=PUT",
            ));
        }
        Ok(post)
    }

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
}

async fn single_put_params(
    State(state): State<AppState>,
    headers: HeaderMap,
    Peer(peer): Peer,
    ApiQuery(query): ApiQuery<ParamsQuery>,
) -> Result<Json<SinglePutParams>, Error> {
    let filename = query.filename.as_deref().ok_or_else(|| {
        Error::bad_request(
            ErrorCode::InvalidFilename,
            "missing query parameter `filename`; pass the file's name",
        )
    })?;
    let size = match query.size.as_deref() {
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
    let parsed_type = validate::content_type(&query.content_type)?;
    let details = CreateDetails {
        filename: filename.to_owned(),
        content_type: parsed_type.to_string(),
        size,
    };
    let principal =
        policy::authorize(&state, &headers, peer, Action::Create, Some(&details)).await?;
    if let Some(size) = size {
        validate::single_put_size(size)?;
    }
    check_declared_size(&principal, size, None)?;
    let post = query.wants_post(size, state.settings().small_file_method)?;
    let content_type = allowed_content_type(&state, &principal, &parsed_type)?;
    let metadata = validate::metadata(&query.metadata())?;
    let key = state
        .keys()
        .issue_under(&policy::prefix_of(&state, &principal), filename)?;
    let bucket = state.store().bucket().to_owned();
    let lifetime = state.url_lifetime_now().await;
    let token = Some(small::token(&state, &principal, &key, size, &content_type));
    if post {
        // The policy holds the file to the caller's size limit, which a PUT URL without a
        // length cannot.
        let signing = PostSigning {
            content_type: content_type.clone(),
            metadata: metadata.clone(),
            size: match size {
                Some(n) => n..=n,
                None => {
                    0..=principal
                        .max_size
                        .map_or(MAX_SINGLE_PUT_SIZE, |max| max.min(MAX_SINGLE_PUT_SIZE))
                }
            },
        };
        if let Some(form) = state.store().presign_post(&key, &signing, lifetime).await? {
            return Ok(Json(SinglePutParams {
                method: "POST".to_owned(),
                url: form.url,
                fields: form.fields,
                headers: BTreeMap::new(),
                key,
                bucket,
                checksum: None,
                token,
            }));
        }
        tracing::debug!("the store signs no POST policies; answering a presigned PUT");
    }
    if principal.max_size.is_some() && size.is_none() {
        return Err(Error::bad_request(
            ErrorCode::InvalidSize,
            "this caller's uploads have a size limit; pass the file's size as `size`",
        ));
    }
    let signing = PutSigning {
        content_type,
        content_length: size,
        metadata,
        checksum: query
            .checksum
            .as_deref()
            .map(policy::checksum)
            .transpose()?,
    };
    let presigned = state.store().presign_put(&key, &signing, lifetime).await?;
    // Uppy's @uppy/aws-s3 (5.x) takes a single upload's key and bucket from `fields` (where a
    // POST policy has them), whatever the method; a PUT sends no form, so they change nothing else.
    let fields = BTreeMap::from([
        ("key".to_owned(), key.clone()),
        ("bucket".to_owned(), bucket.clone()),
    ]);
    Ok(Json(SinglePutParams {
        method: "PUT".to_owned(),
        url: presigned.url,
        fields,
        headers: presigned.headers,
        key,
        bucket,
        checksum: state.checksum_asked().await,
        token,
    }))
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
