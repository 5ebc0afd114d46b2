//! `POST /s3/params/complete`: a small file sent as one presigned PUT or POST form is done.
//!
//! `GET /s3/params` answers, beside the URL or form, a token ([`ObjectClaims`]) sealed with the
//! upload secret, so the completion needs no state: the token binds the key, the caller, the
//! declared size or the size bound, the content type and an expiry. The completion reads the
//! object back ([`policy::single`]) and answers as a multipart completion does, receipt included.
//! The receipt's `upload_id` is the object key: a single PUT has no store upload id, and every
//! params answer issues a new key, so the key identifies this upload as an upload id would.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use s3_direct_protocol::wire::{CompleteResponse, ObjectCompleteRequest};

use super::{ApiJson, Peer, answer};
use crate::AppState;
use crate::auth::{Action, Principal};
use crate::error::Error;
use crate::policy;
use crate::token::{ObjectClaims, principal_digest};

/// The token of the small file `key` that `principal` may send: `size` bytes when declared, else
/// at most the caller's limit, of `content_type` (normalised), until the upload token lifetime.
pub(super) fn token(
    state: &AppState,
    principal: &Principal,
    key: &str,
    size: Option<u64>,
    content_type: &str,
) -> String {
    let claims = ObjectClaims {
        principal: principal_digest(&principal.id),
        expires_at: policy::now_secs().saturating_add(state.settings().token_lifetime.as_secs()),
        size,
        max_size: principal.max_size.filter(|_| size.is_none()),
        content_type: content_type.to_owned(),
    };
    state.secrets().seal_object(key, &claims)
}

pub(super) async fn complete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Peer(peer): Peer,
    ApiJson(req): ApiJson<ObjectCompleteRequest>,
) -> Result<Json<CompleteResponse>, Error> {
    let principal = policy::authorize(&state, &headers, peer, Action::Complete, None).await?;
    let key = policy::checked_key(&state, &principal, Some(&req.key))?;
    let claims = state
        .secrets()
        .open_object(key, &req.token, policy::now_secs())?;
    if claims.principal != principal_digest(&principal.id) {
        return Err(Error::Forbidden {
            code: s3_direct_protocol::ErrorCode::Forbidden,
            message: "this file was signed for another principal".to_owned(),
        });
    }
    let done = policy::single::finish(state.store(), key, &claims).await?;
    tracing::info!(
        %key, size = done.object.size, etag = %done.object.etag, "small file completed"
    );
    Ok(Json(answer(&state, &principal, done, key).await?))
}
