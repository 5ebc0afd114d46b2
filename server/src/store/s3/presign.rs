//! Presigning: part URLs signed directly by `sigv4.rs` (the hot path, a batch at a time), or by
//! the SDK's presigner where the direct signer cannot address the public endpoint; POST policy
//! forms (direct only); whole-object PUT URLs (SDK). Every URL is signed for the public endpoint,
//! the address browsers send it to.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::config::Credentials;
use aws_sdk_s3::presigning::{PresignedRequest, PresigningConfig};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::convert::{classify, part_number_i32, with_checksum};
use super::{S3Store, sigv4};
use crate::store::{PartSigning, PostSigning, Presigned, PresignedPost, PutSigning, StoreError};

impl S3Store {
    /// Presigns part `part_number` for the window `start..start + lifetime`.
    ///
    /// [`Store::presign_part`](crate::store::Store::presign_part) starts the window now; tests start it in the past to get an
    /// expired URL without waiting.
    pub async fn presign_part_at(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        start: SystemTime,
        lifetime: Duration,
        signing: &PartSigning,
    ) -> Result<Presigned, StoreError> {
        let mut signed = self
            .presign_parts_at(
                key,
                upload_id,
                std::slice::from_ref(&(part_number, signing.clone())),
                start,
                lifetime,
            )
            .await?;
        signed
            .pop()
            .ok_or_else(|| StoreError::unavailable("presign UploadPart", "no URL signed"))
    }

    /// [`Self::presign_part_at`] for several parts of one upload, one URL per entry of `parts`
    /// in the same order.
    pub async fn presign_parts_at(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(u32, PartSigning)],
        start: SystemTime,
        lifetime: Duration,
    ) -> Result<Vec<Presigned>, StoreError> {
        const OP: &str = "presign UploadPart";
        if let Some(signer) = &self.part_signer
            && let Some(creds) = self.signing_credentials().await
        {
            if lifetime > sigv4::MAX_LIFETIME {
                return Err(StoreError::unavailable(
                    OP,
                    "a presigned URL lives at most 7 days",
                ));
            }
            let parts = parts.iter().map(|(n, signing)| (*n, signing));
            return Ok(signer.presign_parts(&creds, start, lifetime, key, upload_id, parts));
        }
        let mut signed = Vec::with_capacity(parts.len());
        for (n, signing) in parts {
            signed.push(
                self.presign_part_with_sdk(key, upload_id, *n, start, lifetime, signing)
                    .await?,
            );
        }
        Ok(signed)
    }

    /// [`Store::presign_post`](crate::store::Store::presign_post) for the window `start..start + lifetime` (tests start it in the
    /// past). `None` when the direct signer cannot address the public endpoint, or no
    /// credentials are known to sign with.
    pub async fn presign_post_at(
        &self,
        key: &str,
        signing: &PostSigning,
        start: SystemTime,
        lifetime: Duration,
    ) -> Result<Option<PresignedPost>, StoreError> {
        let Some(signer) = &self.part_signer else {
            return Ok(None);
        };
        let Some(creds) = self.signing_credentials().await else {
            return Ok(None);
        };
        if lifetime > sigv4::MAX_LIFETIME {
            return Err(StoreError::unavailable(
                "presign PostObject",
                "a presigned form lives at most 7 days",
            ));
        }
        Ok(Some(
            signer.presign_post(&creds, start, lifetime, key, signing),
        ))
    }

    /// The credentials that sign now, if this store knows them (`None`: the SDK resolves and
    /// reports them).
    async fn signing_credentials(&self) -> Option<Credentials> {
        match &self.creds {
            Some(c) => c.current().await.ok(),
            None => self.fixed_creds.clone(),
        }
    }

    /// [`Self::presign_part_at`] through the SDK's presigner: the fallback, and the reference the
    /// direct signer is tested against.
    pub(super) async fn presign_part_with_sdk(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        start: SystemTime,
        lifetime: Duration,
        signing: &PartSigning,
    ) -> Result<Presigned, StoreError> {
        const OP: &str = "presign UploadPart";
        let presigning = presigning_config(OP, start, lifetime)?;
        let mut builder = self
            .presigner
            .upload_part()
            .bucket(&self.config.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(part_number_i32(part_number));
        if let Some(len) = signing.content_length {
            builder = builder.content_length(i64::try_from(len).unwrap_or(i64::MAX));
        }
        if let Some((algorithm, value)) = &signing.checksum {
            builder = with_checksum!(builder, *algorithm, value);
        }
        let request = builder
            .presigned(presigning)
            .await
            .map_err(|e| classify(OP, upload_id, e))?;
        Ok(to_presigned(&request))
    }

    /// URL of an object as browsers reach it.
    pub(super) fn object_url(&self, key: &str) -> String {
        let endpoint = self.config.public_endpoint();
        let key = encode_key(key);
        if self.config.path_style {
            return format!("{endpoint}/{}/{key}", self.config.bucket);
        }
        match endpoint.split_once("://") {
            Some((scheme, host)) => format!("{scheme}://{}.{host}/{key}", self.config.bucket),
            None => format!("{endpoint}/{}/{key}", self.config.bucket),
        }
    }

    /// [`Store::presign_put`](crate::store::Store::presign_put): a whole object's PUT URL, through the SDK's presigner.
    pub(super) async fn presign_put_with_sdk(
        &self,
        key: &str,
        signing: &PutSigning,
        lifetime: Duration,
    ) -> Result<Presigned, StoreError> {
        const OP: &str = "presign PutObject";
        let presigning = presigning_config(OP, SystemTime::now(), lifetime)?;
        let mut builder = self
            .presigner
            .put_object()
            .bucket(&self.config.bucket)
            .key(key)
            .content_type(&signing.content_type)
            .set_content_length(
                signing
                    .content_length
                    .map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
            );
        if !signing.metadata.is_empty() {
            builder = builder.set_metadata(Some(signing.metadata.clone().into_iter().collect()));
        }
        if let Some((algorithm, value)) = &signing.checksum {
            builder = with_checksum!(builder, *algorithm, value);
        }
        let request = builder
            .presigned(presigning)
            .await
            .map_err(|e| classify(OP, "", e))?;
        Ok(to_presigned(&request))
    }
}

fn presigning_config(
    op: &'static str,
    start: SystemTime,
    lifetime: Duration,
) -> Result<PresigningConfig, StoreError> {
    PresigningConfig::builder()
        .start_time(start)
        .expires_in(lifetime)
        .build()
        .map_err(|e| StoreError::unavailable(op, e))
}

fn to_presigned(request: &PresignedRequest) -> Presigned {
    // Browsers set Host themselves and refuse to let scripts set it.
    let headers = request
        .headers()
        .filter(|(name, _)| !name.eq_ignore_ascii_case("host"))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
        .collect::<BTreeMap<_, _>>();
    Presigned {
        url: request.uri().to_owned(),
        headers,
    }
}

/// What a key keeps unencoded in a URL path: the unreserved characters (RFC 3986) and the `/`
/// separators.
const KEY_PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Percent-encodes a key (or a bucket) for a URL path, keeping `/` separators and unreserved
/// characters.
pub(crate) fn encode_key(key: &str) -> String {
    utf8_percent_encode(key, KEY_PATH).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_percent_encoded_in_urls() {
        assert_eq!(
            encode_key("uploads/a b+ñ.bin"),
            "uploads/a%20b%2B%C3%B1.bin"
        );
        // Every ASCII character: unreserved ones and `/` as they are, the rest as `%XX`.
        for b in 0u8..128 {
            let c = char::from(b);
            let kept = b.is_ascii_alphanumeric() || "-_.~/".contains(c);
            let want = if kept {
                c.to_string()
            } else {
                format!("%{b:02X}")
            };
            assert_eq!(encode_key(&c.to_string()), want);
        }
    }
}
