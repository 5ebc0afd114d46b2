//! Creating a multipart upload ([`Caller::create`]): the declared size and part size checked
//! against S3's limits and the caller's, the content type against the allow-lists, the metadata
//! made header-safe, a key issued under the caller's prefix, the upload created in the store with
//! the checksum algorithm its parts will carry, and the `uploadId` answered with its token sealed
//! in. When asked, and when the parts carry no checksum (a URL signs its part's checksum, which
//! the client has not computed yet), the first batch of part URLs comes with the answer.

use std::collections::BTreeMap;

use s3_direct_protocol::limits::MAX_BATCH_PARTS;
use s3_direct_protocol::wire::{
    CreateMultipartRequest, CreateMultipartResponse, SignBatchResponse,
};

use super::Caller;
use super::signing::{part_signings, signed_batch};
use crate::auth::Action;
use crate::error::Error;
use crate::media_type::MediaType;
use crate::policy::{self, now_secs};
use crate::store::NewUpload;
use crate::token::{UploadClaims, principal_digest};
use crate::{upload_id, validate};

impl Caller<'_> {
    /// Creates the multipart upload `req` asks for, of the content type `parsed_type` (already
    /// parsed from `req`); see the module docs.
    pub async fn create(
        &self,
        req: &CreateMultipartRequest,
        parsed_type: &MediaType,
    ) -> Result<CreateMultipartResponse, Error> {
        let state = self.state;
        let part_size = req.part_size;
        self.check_declared_size(req.size, part_size)?;
        let content_type = self.allowed_content_type(parsed_type)?;
        let metadata = validate::metadata(&req.metadata)?;
        let key = self.issue_key(&req.filename, req.relative_path.as_deref())?;
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
            principal: principal_digest(&self.principal.id),
            expires_at: now_secs().saturating_add(state.settings().token_lifetime.as_secs()),
            size: req.size,
            part_size,
            max_size: self.principal.max_size,
            checksum: declared,
        };
        let token = state.secrets().seal(&store_id, &key, &claims);
        tracing::info!(%key, upload = %store_id, size = ?req.size, checksum = ?declared, "multipart upload created");
        // The parts will carry this checksum: the client's own choice, or else the one asked for
        // (a client that declares nothing may still follow the answer).
        let hashed = req.checksum.map_or(asked, |c| c.resolve(asked));
        let presigned = if hashed.is_none() {
            self.first_batch(&claims, &key, &store_id, req.presign_parts)
                .await
        } else {
            None
        };
        Ok(CreateMultipartResponse {
            key,
            upload_id: upload_id::join(&store_id, &token),
            bucket: state.store().bucket().to_owned(),
            part_size,
            checksum: asked,
            presigned,
        })
    }

    /// The URLs of the first `asked` parts of a new upload (at most a batch, at most the plan),
    /// signed as the batch route would sign them, for a client whose parts carry no checksum (a
    /// URL signs its part's checksum, which the client has not computed yet). The upload exists
    /// now, so a caller allowed to create but not to sign, or a signing failure, only costs the
    /// client its own batch request (a bounded upload without a plan cannot be signed without the
    /// parts' lengths): none are answered.
    async fn first_batch(
        &self,
        claims: &UploadClaims,
        key: &str,
        store_id: &str,
        asked: Option<u32>,
    ) -> Option<SignBatchResponse> {
        let count = asked
            .map_or(0, |n| n.min(MAX_BATCH_PARTS as u32))
            .min(policy::max_part_number(claims));
        if count == 0 || !self.may_also(Action::Sign).await {
            return None;
        }
        let numbers: Vec<u32> = (1..=count).collect();
        let parts = part_signings(claims, &numbers, &BTreeMap::new(), BTreeMap::new()).ok()?;
        let (batch, _) = signed_batch(self.state, key, store_id, parts).await.ok()?;
        Some(batch)
    }
}
