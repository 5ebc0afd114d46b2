//! Signing part URLs of a verified upload: one ([`VerifiedUpload::sign_part`]) or a batch
//! ([`VerifiedUpload::sign_batch`]). Every part number is within the upload's plan; every part
//! URL of a bounded upload signs its exact `Content-Length` ([`policy::signed_length`]); an upload
//! created with a checksum algorithm has every part signed with that algorithm's checksum.

use std::collections::BTreeMap;

use s3_direct_protocol::wire::{ChecksumAlgorithm, SignBatchResponse, SignPartResponse};

use super::VerifiedUpload;
use crate::AppState;
use crate::error::Error;
use crate::policy;
use crate::store::PartSigning;
use crate::token::UploadClaims;

impl VerifiedUpload<'_> {
    /// Signs part `n`, with the `length` (bytes) and `checksum` (`ALGO:BASE64`) the client
    /// named, as they came in the query.
    pub async fn sign_part(
        &self,
        n: u32,
        length: Option<&str>,
        checksum: Option<&str>,
    ) -> Result<SignPartResponse, Error> {
        policy::check_part_in_plan(&self.claims, n)?;
        let named = length.map(|raw| policy::length(n, raw)).transpose()?;
        let signing = PartSigning {
            content_length: policy::signed_length(&self.claims, n, named)?,
            checksum: checksum.map(policy::checksum).transpose()?,
        };
        policy::check_part_checksum(&self.claims, n, signing.checksum.as_ref())?;
        let state = self.state();
        let lifetime = state.url_lifetime_now().await;
        let presigned = state
            .store()
            .presign_part(self.key, self.store_id, n, lifetime, &signing)
            .await?;
        Ok(SignPartResponse {
            url: presigned.url,
            expires: lifetime.as_secs(),
            headers: presigned.headers,
        })
    }

    /// Signs the parts `numbers`, with the `checksums` (`N:ALGO:BASE64,…`) and `lengths`
    /// (`N:BYTES,…`) the client named, as they came in the query. Also returns the URLs' total
    /// length.
    pub async fn sign_batch(
        &self,
        numbers: &[u32],
        checksums: &str,
        lengths: &str,
    ) -> Result<(SignBatchResponse, usize), Error> {
        for &n in numbers {
            policy::check_part_in_plan(&self.claims, n)?;
        }
        let checksums = policy::batch_checksums(checksums, numbers)?;
        for &n in numbers {
            policy::check_part_checksum(&self.claims, n, checksums.get(&n))?;
        }
        let lengths = policy::batch_lengths(lengths, numbers)?;
        let parts = part_signings(&self.claims, numbers, &lengths, checksums)?;
        signed_batch(self.state(), self.key, self.store_id, parts).await
    }
}

/// What each part of `numbers` signs in: its length ([`policy::signed_length`] of the one named
/// in `lengths`) and its checksum, if any.
pub(super) fn part_signings(
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
pub(super) async fn signed_batch(
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
