//! The signing API's handlers (DESIGN.md §4), a superset of Uppy Companion's S3 multipart routes.
//!
//! Each handler checks its whole input first ([`crate::validate`], [`crate::keys`]) and only then
//! calls the [`Store`](crate::store::Store), so a refused request has no effect on the store.
//! Extractors are wrapped so that axum's plain-text rejections become our JSON errors.

use std::collections::BTreeMap;

use axum::extract::{FromRequest, FromRequestParts, OriginalUri, State};
use axum::http::Method;
use axum::routing::{get, post};
use axum::{Json, Router};
use s3_direct_protocol::ErrorCode;
use s3_direct_protocol::wire::{
    CompleteRequest, CompleteResponse, CreateMultipartRequest, CreateMultipartResponse, ListedPart,
    SignBatchResponse, SignPartResponse, SinglePutParams,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::Error;
use crate::store::NewUpload;
use crate::validate;

/// Body limit of create: a file name, a type and at most 2 KB of metadata.
pub const CREATE_BODY_LIMIT: usize = 64 * 1024;
/// Body limit of complete: 10,000 parts with 128-character ETags take about 1.7 MB.
pub const COMPLETE_BODY_LIMIT: usize = 4 * 1024 * 1024;

/// A JSON body whose rejections are [`Error`]s.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(Error))]
pub struct ApiJson<T>(pub T);

/// A query string whose rejections are [`Error`]s.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Error))]
pub struct ApiQuery<T>(pub T);

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

/// `?key=` of the routes that act on an existing upload.
#[derive(Debug, Deserialize)]
struct KeyQuery {
    key: Option<String>,
}

/// The `key` query parameter, present and of the shape this server issues.
fn checked_key<'a>(state: &AppState, key: Option<&'a str>) -> Result<&'a str, Error> {
    let key = key.ok_or_else(|| {
        Error::bad_request(
            ErrorCode::InvalidKey,
            "missing query parameter `key`; pass the key returned when the upload was created",
        )
    })?;
    state.keys().check(key)
}

async fn create(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CreateMultipartRequest>,
) -> Result<Json<CreateMultipartResponse>, Error> {
    if let Some(size) = req.size {
        validate::object_size(size)?;
    }
    let content_type = validate::content_type(&req.content_type)?;
    let metadata = validate::metadata(&req.metadata)?;
    let key = state.keys().issue(&req.filename)?;
    let upload_id = state
        .store()
        .create_multipart(NewUpload {
            key: key.clone(),
            content_type,
            metadata,
        })
        .await?;
    tracing::info!(%key, %upload_id, size = ?req.size, "multipart upload created");
    Ok(Json(CreateMultipartResponse {
        key,
        upload_id,
        bucket: state.store().bucket().to_owned(),
    }))
}

async fn sign_part(
    State(state): State<AppState>,
    ApiPath((upload_id, part_number)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<KeyQuery>,
) -> Result<Json<SignPartResponse>, Error> {
    let upload_id = validate::upload_id(&upload_id)?;
    let part_number = validate::part_number(&part_number)?;
    let key = checked_key(&state, query.key.as_deref())?;
    let lifetime = state.url_lifetime();
    let presigned = state
        .store()
        .presign_part(key, upload_id, part_number, lifetime)
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
}

async fn sign_batch(
    State(state): State<AppState>,
    ApiPath(upload_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<BatchQuery>,
) -> Result<Json<SignBatchResponse>, Error> {
    let upload_id = validate::upload_id(&upload_id)?;
    let numbers = validate::batch(query.part_numbers.as_deref().unwrap_or_default())?;
    let key = checked_key(&state, query.key.as_deref())?;
    let lifetime = state.url_lifetime();
    let mut urls = BTreeMap::new();
    let mut headers = BTreeMap::new();
    for n in numbers {
        let presigned = state
            .store()
            .presign_part(key, upload_id, n, lifetime)
            .await?;
        // Every part of one upload is signed alike, so the headers to send are the same.
        headers = presigned.headers;
        urls.insert(n, presigned.url);
    }
    Ok(Json(SignBatchResponse {
        presigned_urls: urls,
        expires: Some(lifetime.as_secs()),
        headers,
    }))
}

async fn list_parts(
    State(state): State<AppState>,
    ApiPath(upload_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<KeyQuery>,
) -> Result<Json<Vec<ListedPart>>, Error> {
    let upload_id = validate::upload_id(&upload_id)?;
    let key = checked_key(&state, query.key.as_deref())?;
    Ok(Json(state.store().list_parts(key, upload_id).await?))
}

async fn complete(
    State(state): State<AppState>,
    ApiPath(upload_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<KeyQuery>,
    ApiJson(req): ApiJson<CompleteRequest>,
) -> Result<Json<CompleteResponse>, Error> {
    let upload_id = validate::upload_id(&upload_id)?;
    let key = checked_key(&state, query.key.as_deref())?;
    validate::part_list(&req.parts)?;
    let done = state.store().complete(key, upload_id, &req.parts).await?;
    tracing::info!(%key, %upload_id, parts = req.parts.len(), etag = %done.etag, "upload completed");
    Ok(Json(CompleteResponse {
        location: done.location,
        key: key.to_owned(),
        bucket: state.store().bucket().to_owned(),
        etag: done.etag,
    }))
}

async fn abort(
    State(state): State<AppState>,
    ApiPath(upload_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<KeyQuery>,
) -> Result<Json<Value>, Error> {
    let upload_id = validate::upload_id(&upload_id)?;
    let key = checked_key(&state, query.key.as_deref())?;
    state.store().abort(key, upload_id).await?;
    tracing::info!(%key, %upload_id, "upload aborted");
    Ok(Json(json!({})))
}

#[derive(Debug, Deserialize)]
struct ParamsQuery {
    filename: Option<String>,
    #[serde(rename = "type", default)]
    content_type: String,
    /// Extension: the file's size, so an impossible single PUT is refused up front.
    size: Option<String>,
}

async fn single_put_params(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ParamsQuery>,
) -> Result<Json<SinglePutParams>, Error> {
    let filename = query.filename.as_deref().ok_or_else(|| {
        Error::bad_request(
            ErrorCode::InvalidFilename,
            "missing query parameter `filename`; pass the file's name",
        )
    })?;
    if let Some(raw) = query.size.as_deref() {
        let size = raw.parse::<u64>().map_err(|_| {
            Error::bad_request(
                ErrorCode::InvalidSize,
                format!("size {raw:?} is not a whole number of bytes"),
            )
        })?;
        validate::single_put_size(size)?;
    }
    let content_type = validate::content_type(&query.content_type)?;
    let key = state.keys().issue(filename)?;
    let presigned = state
        .store()
        .presign_put(&key, &content_type, state.url_lifetime())
        .await?;
    Ok(Json(SinglePutParams {
        method: "PUT".to_owned(),
        url: presigned.url,
        fields: BTreeMap::new(),
        headers: presigned.headers,
        key,
        bucket: state.store().bucket().to_owned(),
    }))
}
