//! The signing API's use cases, between the routes (HTTP) and the store.
//!
//! Each route reads: authorize ([`Caller::authorize`]), decode its input, one call here, answer.
//! The two types carry what has been verified so far, so no step can be skipped:
//!
//! - [`Caller`]: an authenticated caller, its request charged to its rate limit (per client
//!   address when the server is open). It creates multipart uploads (`create.rs`), asks for and
//!   completes small files (`small.rs`), and proves it owns an existing upload ([`Caller::upload`]).
//! - [`VerifiedUpload`]: an upload whose token in `uploadId` verified for this store upload id and
//!   key, has not expired and was issued to this caller. It signs parts within the upload's plan
//!   and checksum algorithm (`signing.rs`), lists its parts, aborts it, and completes it with every
//!   check a trustworthy completion needs (`completion.rs`).
//!
//! The rules these apply (plan, lengths, checksums) are pure functions in [`crate::policy`]; the
//! input checks in [`crate::validate`]; the key naming in [`crate::keys`].

use std::net::IpAddr;

use axum::http::HeaderMap;
use s3_direct_protocol::limits::{MAX_PART_SIZE, MIN_PART_SIZE};
use s3_direct_protocol::wire::{CompleteResponse, ListedPart};
use s3_direct_protocol::{ErrorCode, PartPlan};

use crate::AppState;
use crate::auth::{self, Action, CreateDetails, Principal};
use crate::error::Error;
use crate::events;
use crate::keys::{self, truncate_for_message};
use crate::media_type::MediaType;
use crate::policy::now_secs;
use crate::ratelimit::Gate;
use crate::receipt::ReceiptClaims;
use crate::token::{UploadClaims, principal_digest};
use crate::{upload_id, validate};

pub mod completion;
mod create;
mod signing;
mod small;

pub use completion::{Finished, VerifiedObject};
pub use small::SmallFileRequest;

/// An authenticated caller of one request (see the module docs).
#[derive(Debug)]
pub struct Caller<'a> {
    state: &'a AppState,
    headers: &'a HeaderMap,
    peer: Option<IpAddr>,
    principal: Principal,
}

impl<'a> Caller<'a> {
    /// Authenticates the caller of a request with `headers` from `peer` for `action`, and charges
    /// the request to its rate limit (before a webhook call for credentials not known yet, to the
    /// client address's; see `ratelimit.rs`).
    pub async fn authorize(
        state: &'a AppState,
        headers: &'a HeaderMap,
        peer: Option<IpAddr>,
        action: Action,
        create: Option<&CreateDetails>,
    ) -> Result<Self, Error> {
        let principal = Self::principal_for(state, headers, peer, action, create).await?;
        Ok(Self {
            state,
            headers,
            peer,
            principal,
        })
    }

    async fn principal_for(
        state: &AppState,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
        action: Action,
        create: Option<&CreateDetails>,
    ) -> Result<Principal, Error> {
        let gate = Gate::new(
            state.limiter(),
            state.address_limiter(),
            peer,
            state.authorizer().is_open(),
        );
        let outcome = state
            .authorizer()
            .authorize(headers, action, create, &gate)
            .await;
        gate.settle(outcome)
    }

    /// Whether the same credentials may also do `action` as the same principal (charged to the
    /// rate limit like a request of its own).
    async fn may_also(&self, action: Action) -> bool {
        Self::principal_for(self.state, self.headers, self.peer, action, None)
            .await
            .is_ok_and(|p| p.id == self.principal.id)
    }

    /// Who is calling.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The full key prefix of this caller: the server's prefix plus its own.
    fn prefix(&self) -> String {
        format!(
            "{}{}",
            self.state.keys().prefix(),
            self.principal.key_prefix
        )
    }

    /// A new key for `filename` (in the folders of `relative_path`, when it came from a folder)
    /// under this caller's prefix.
    fn issue_key(&self, filename: &str, relative_path: Option<&str>) -> Result<String, Error> {
        let folders = match relative_path {
            Some(path) => keys::sanitize_folders(path, filename)?,
            None => Vec::new(),
        };
        Ok(self
            .state
            .keys()
            .issue_in(&self.prefix(), &folders, filename)?)
    }

    /// The `key` query parameter: present, of the shape this server issues, under the caller's
    /// prefix.
    pub fn checked_key<'k>(&self, key: Option<&'k str>) -> Result<&'k str, Error> {
        let key = key.ok_or_else(|| {
            Error::bad_request(
                ErrorCode::InvalidKey,
                "missing query parameter `key`; pass the key returned when the upload was created",
            )
        })?;
        let prefix = self.prefix();
        if self.principal.key_prefix.is_empty() || key.starts_with(&prefix) {
            return Ok(self.state.keys().check_under(&prefix, key)?);
        }
        Err(Error::Forbidden {
            code: ErrorCode::Forbidden,
            message: format!(
                "key {:?} is outside the prefix {prefix:?} this caller may write under",
                truncate_for_message(key)
            ),
        })
    }

    /// The upload `uploadId` + `key` name, once this caller has proved it owns it: the key is
    /// under its prefix, the upload token verifies for this store upload id and key, has not
    /// expired, and was issued to this caller.
    pub fn upload<'s>(
        &'s self,
        raw_upload_id: &'s str,
        key: Option<&'s str>,
    ) -> Result<VerifiedUpload<'s>, Error> {
        let raw = upload_id::check(raw_upload_id)?;
        let key = self.checked_key(key)?;
        let (store_id, token) = upload_id::split(raw)?;
        let claims = self
            .state
            .secrets()
            .open(store_id, key, token, now_secs())?;
        if claims.principal != principal_digest(&self.principal.id) {
            return Err(Error::Forbidden {
                code: ErrorCode::Forbidden,
                message: "this upload belongs to another principal".to_owned(),
            });
        }
        Ok(VerifiedUpload {
            caller: self,
            store_id,
            key,
            claims,
        })
    }

    /// Checks a declared size and part size against S3's limits and this caller's.
    fn check_declared_size(&self, size: Option<u64>, part_size: Option<u64>) -> Result<(), Error> {
        if let Some(size) = size {
            validate::object_size(size)?;
            if let Some(max) = self.principal.max_size
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
            // A stream: parts of this size as its bytes arrive, the last one shorter.
            (None, Some(part_size)) if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&part_size) => {
                Err(Error::bad_request(
                    ErrorCode::InvalidSize,
                    format!(
                        "partSize {part_size} is outside S3's part sizes ({MIN_PART_SIZE} to \
                         {MAX_PART_SIZE} bytes)"
                    ),
                ))
            }
            (Some(size), Some(part_size)) => PartPlan::with_part_size(size, part_size)
                .map(drop)
                .map_err(|e| Error::bad_request(ErrorCode::InvalidSize, e.to_string())),
            _ => Ok(()),
        }
    }

    /// The content type to store, already parsed ([`validate::content_type`]), checked against
    /// the server's and this caller's allow-lists; answered in its normalised form.
    fn allowed_content_type(&self, parsed: &MediaType) -> Result<String, Error> {
        let content_type = parsed.to_string();
        let lists = [
            self.state.settings().content_types.as_deref(),
            self.principal.content_types.as_deref(),
        ];
        for list in lists.into_iter().flatten() {
            if !auth::content_type_allowed(&content_type, list) {
                return Err(Error::Forbidden {
                    code: ErrorCode::ContentTypeNotAllowed,
                    message: format!(
                        "content type {:?} is not allowed here; allowed: {}",
                        truncate_for_message(&content_type),
                        list.join(", ")
                    ),
                });
            }
        }
        Ok(content_type)
    }

    /// The answer to a verified completion, with the receipt of what was verified (`upload_id`
    /// is its `upload_id` claim), once the completion event, if events are on, is in the store.
    async fn answer(&self, done: Finished, upload_id: &str) -> Result<CompleteResponse, Error> {
        let state = self.state;
        let object = done.object;
        let bucket = state.store().bucket().to_owned();
        let claims = ReceiptClaims {
            iss: state.receipts().issuer().to_owned(),
            sub: self.principal.id.clone(),
            iat: now_secs(),
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
        events::completed(state.notifier(), &claims, &receipt).await?;
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
}

/// An existing upload its caller has proved it owns (see the module docs).
#[derive(Debug)]
pub struct VerifiedUpload<'a> {
    caller: &'a Caller<'a>,
    /// The store's upload id (the part of `uploadId` before the last `.`).
    store_id: &'a str,
    key: &'a str,
    claims: UploadClaims,
}

impl VerifiedUpload<'_> {
    fn state(&self) -> &AppState {
        self.caller.state
    }

    /// The parts the store holds.
    pub async fn list_parts(&self) -> Result<Vec<ListedPart>, Error> {
        Ok(self
            .state()
            .store()
            .list_parts(self.key, self.store_id)
            .await?)
    }

    /// Aborts the upload: the store deletes its parts.
    pub async fn abort(&self) -> Result<(), Error> {
        self.state().store().abort(self.key, self.store_id).await?;
        tracing::info!(key = %self.key, upload = %self.store_id, "upload aborted");
        Ok(())
    }
}
