//! [`Store`] over aws-sdk-s3, for any S3-compatible endpoint.
//!
//! Two clients share one configuration: `api` talks to `--endpoint` (the address this server
//! reaches the store on), `presigner` only signs URLs for `--public-endpoint` (the address browsers
//! reach it on). A SigV4 signature covers the host, so the URL must be signed for the host the
//! browser will actually send it to.
//!
//! The submodules hold the pieces: `credentials.rs` (the cache of expiring credentials that
//! sign), `presign.rs` (part URLs, POST forms, PUT URLs), `sigv4.rs` (the direct part and form
//! signer), `convert.rs` (the SDK's types and errors to the store's), `objects.rs` (the server's
//! own small records). Tested without a store in `tests.rs` (signatures against the SDK's), and
//! against the embedded store, Garage and Ceph by the integration tests.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, IdentityCache, Region, RequestChecksumCalculation,
    ResponseChecksumValidation, SharedCredentialsProvider,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::CompletedMultipartUpload;
use s3_direct_protocol::limits::MAX_PART_NUMBER;
use s3_direct_protocol::wire::{ChecksumAlgorithm, CompletedPart, ListedPart};

use super::integrity;
use super::{
    Completed, ListedObject, NewUpload, ObjectHead, PartProbe, PartSigning, PostSigning, Presigned,
    PresignedPost, PutSigning, Store, StoreError,
};

mod convert;
mod credentials;
mod objects;
mod presign;
mod sigv4;
#[cfg(test)]
mod tests;

use convert::{
    classify, listed_part, reported_checksum, sdk_checksum_algorithm, sdk_completed_part,
    with_checksum,
};
use credentials::RefreshingCredentials;

pub(crate) use presign::encode_key;

/// Where the store is and how to address it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3StoreConfig {
    /// URL this server uses for API calls, e.g. `http://127.0.0.1:3900`.
    pub endpoint: String,
    /// URL put into presigned URLs; `None` means the same as `endpoint`.
    pub public_endpoint: Option<String>,
    pub bucket: String,
    /// Region for signing and for API calls alike.
    pub region: String,
    /// Path-style (`host/bucket/key`) instead of virtual-hosted (`bucket.host/key`) addressing.
    pub path_style: bool,
}

impl S3StoreConfig {
    /// The address browsers use: `public_endpoint`, else `endpoint`.
    pub fn public_endpoint(&self) -> &str {
        self.public_endpoint.as_deref().unwrap_or(&self.endpoint)
    }
}

/// The aws-sdk-s3 implementation of [`Store`].
#[derive(Debug, Clone)]
pub struct S3Store {
    /// Client for calls that reach the store.
    api: Client,
    /// Client configured with the public endpoint, used only to presign.
    presigner: Client,
    config: S3StoreConfig,
    /// Expiring credentials shared by both clients (`None`: fixed credentials).
    creds: Option<RefreshingCredentials>,
    /// Fixed credentials (`with_credentials`), for `part_signer`.
    fixed_creds: Option<Credentials>,
    /// Signs part URLs directly, without the SDK's per-request pipeline (`None`: a public
    /// endpoint it does not handle; the SDK presigns then).
    part_signer: Option<Arc<sigv4::PartSigner>>,
    /// Longest key the store behind the endpoint takes ([`Store::max_key_bytes`]).
    max_key_bytes: usize,
    /// A part checksum the store behind the endpoint is known to verify
    /// ([`Store::verified_checksum`]).
    verified_checksum: Option<ChecksumAlgorithm>,
}

impl S3Store {
    /// A store using the standard AWS credential chain (environment, profile, web identity,
    /// container and instance metadata), as an operator deploying against a real store expects.
    pub async fn from_env(config: S3StoreConfig) -> Self {
        let shared = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .load()
            .await;
        let builder = aws_sdk_s3::config::Builder::from(&shared);
        match shared.credentials_provider() {
            Some(provider) => Self::with_provider(builder, config, provider),
            None => Self::build(builder, config),
        }
    }

    /// A store whose credentials come from `provider` (which may hand out expiring ones: an
    /// instance role, web identity, SSO). Both clients share one `RefreshingCredentials`
    /// (`credentials.rs`), so [`Store::credentials_remaining`] knows the life left in the very
    /// credentials that sign.
    pub fn with_provider(
        builder: aws_sdk_s3::config::Builder,
        config: S3StoreConfig,
        provider: SharedCredentialsProvider,
    ) -> Self {
        let creds = RefreshingCredentials::new(provider);
        let builder = builder
            .credentials_provider(creds.clone())
            // Our cache decides when to refresh; a second cache on top could sign with older
            // credentials than the ones whose expiry we cap URLs at.
            .identity_cache(IdentityCache::no_cache());
        let mut store = Self::build(builder, config);
        store.creds = Some(creds);
        store
    }

    /// A store using fixed credentials (the embedded store, tests).
    pub fn with_credentials(config: S3StoreConfig, access_key: &str, secret_key: &str) -> Self {
        let builder = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .credentials_provider(Credentials::new(
                access_key,
                secret_key,
                None,
                None,
                "s3-direct",
            ));
        let mut store = Self::build(builder, config);
        store.fixed_creds = Some(Credentials::new(
            access_key,
            secret_key,
            None,
            None,
            "s3-direct",
        ));
        store
    }

    fn build(builder: aws_sdk_s3::config::Builder, config: S3StoreConfig) -> Self {
        let builder = builder
            .region(Region::new(config.region.clone()))
            .force_path_style(config.path_style)
            // The SDK's default (WhenSupported) adds a CRC32 checksum to every upload it sends,
            // which several S3 clones reject, and earlier 1.x releases also baked
            // `x-amz-sdk-checksum-algorithm` into presigned part URLs, which a browser's PUT cannot
            // satisfy. Checksums we want are signed explicitly instead.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        let api = Client::from_conf(builder.clone().endpoint_url(&config.endpoint).build());
        let presigner = Client::from_conf(builder.endpoint_url(config.public_endpoint()).build());
        let part_signer = sigv4::PartSigner::new(
            config.public_endpoint(),
            &config.bucket,
            &config.region,
            config.path_style,
        )
        .map(Arc::new);
        Self {
            api,
            presigner,
            config,
            creds: None,
            fixed_creds: None,
            part_signer,
            max_key_bytes: s3_direct_protocol::limits::MAX_KEY_BYTES,
            verified_checksum: None,
        }
    }

    /// The same store, for an endpoint that takes keys of at most `max` bytes.
    #[must_use]
    pub fn with_max_key_bytes(mut self, max: usize) -> Self {
        self.max_key_bytes = max;
        self
    }

    /// The same store, for an endpoint known to verify `algorithm` part checksums (the embedded
    /// store): `--checksum auto` then needs no probe.
    #[must_use]
    pub fn with_verified_checksum(mut self, algorithm: ChecksumAlgorithm) -> Self {
        self.verified_checksum = Some(algorithm);
        self
    }

    /// The client that makes API calls (operator commands and tests use it directly).
    pub fn client(&self) -> &Client {
        &self.api
    }

    /// How this store was configured.
    pub fn config(&self) -> &S3StoreConfig {
        &self.config
    }
}

#[async_trait]
impl Store for S3Store {
    fn bucket(&self) -> &str {
        &self.config.bucket
    }

    fn object_location(&self, key: &str) -> String {
        self.object_url(key)
    }

    fn max_key_bytes(&self) -> usize {
        self.max_key_bytes
    }

    fn verified_checksum(&self) -> Option<ChecksumAlgorithm> {
        self.verified_checksum
    }

    /// Through the API endpoint, which the server reaches (the public one, which presigned URLs
    /// name, may be reachable only by browsers): the SDK's UploadPart with the wrong checksum
    /// set explicitly (it computes none of its own, `WhenRequired`).
    async fn probe_checksum(
        &self,
        key: &str,
        algorithm: ChecksumAlgorithm,
    ) -> Result<PartProbe, StoreError> {
        integrity::probe_with(self, key, algorithm, |upload_id| async move {
            let (body, wrong) = integrity::wrong_part(algorithm);
            let part = self
                .api
                .upload_part()
                .bucket(&self.config.bucket)
                .key(key)
                .upload_id(&upload_id)
                .part_number(1)
                .body(body.to_vec().into());
            let part = with_checksum!(part, algorithm, wrong);
            match part.send().await {
                Ok(_) => Ok(PartProbe {
                    status: 200,
                    code: None,
                }),
                Err(SdkError::ServiceError(e)) => Ok(PartProbe {
                    status: e.raw().status().as_u16(),
                    code: e.err().code().map(str::to_owned),
                }),
                Err(e) => Err(StoreError::unavailable(
                    "UploadPart (checksum probe)",
                    DisplayErrorContext(&e).to_string(),
                )),
            }
        })
        .await
    }

    async fn create_multipart(&self, upload: NewUpload) -> Result<String, StoreError> {
        const OP: &str = "CreateMultipartUpload";
        let out = self
            .api
            .create_multipart_upload()
            .bucket(&self.config.bucket)
            .key(&upload.key)
            .content_type(&upload.content_type)
            .set_metadata(Some(upload.metadata.into_iter().collect()))
            .set_checksum_algorithm(upload.checksum.and_then(sdk_checksum_algorithm))
            .send()
            .await
            .map_err(|e| classify(OP, "", e))?;
        out.upload_id()
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| StoreError::unavailable(OP, "the store's answer had no UploadId"))
    }

    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        lifetime: Duration,
        signing: &PartSigning,
    ) -> Result<Presigned, StoreError> {
        self.presign_part_at(
            key,
            upload_id,
            part_number,
            SystemTime::now(),
            lifetime,
            signing,
        )
        .await
    }

    async fn presign_parts(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(u32, PartSigning)],
        lifetime: Duration,
    ) -> Result<Vec<Presigned>, StoreError> {
        self.presign_parts_at(key, upload_id, parts, SystemTime::now(), lifetime)
            .await
    }

    async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<ListedPart>, StoreError> {
        const OP: &str = "ListParts";
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .api
                .list_parts()
                .bucket(&self.config.bucket)
                .key(key)
                .upload_id(upload_id)
                .max_parts(1000)
                .set_part_number_marker(marker.clone())
                .send()
                .await
                .map_err(|e| classify(OP, upload_id, e))?;
            parts.extend(page.parts().iter().map(listed_part));
            if page.is_truncated() != Some(true) {
                break;
            }
            let next = page.next_part_number_marker().map(str::to_owned);
            // A store that says "truncated" without moving the marker would loop forever.
            if next.is_none() || next == marker || parts.len() > MAX_PART_NUMBER as usize {
                return Err(StoreError::unavailable(
                    OP,
                    format!(
                        "the store's ListParts paging did not advance (marker {marker:?} -> \
                         {next:?} after {} parts)",
                        parts.len()
                    ),
                ));
            }
            marker = next;
        }
        // Some stores (the embedded one) list in directory order.
        parts.sort_by_key(|p| p.part_number);
        Ok(parts)
    }

    async fn complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<Completed, StoreError> {
        const OP: &str = "CompleteMultipartUpload";
        // The part checksums are those of the algorithm the upload was created with, or none
        // (the routes drop the rest): a store checks them against that algorithm, and refuses
        // them for an upload created without one (Garage: InvalidDigest).
        let parts = parts.iter().map(sdk_completed_part).collect();
        let out = self
            .api
            .complete_multipart_upload()
            .bucket(&self.config.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| classify(OP, upload_id, e))?;
        // The store's Location names the address *it* is reached on; when browsers use another
        // one, build the URL they can use.
        let location = match out.location() {
            Some(loc) if !loc.is_empty() && self.config.public_endpoint.is_none() => loc.to_owned(),
            _ => self.object_url(key),
        };
        let checksum = reported_checksum([
            (ChecksumAlgorithm::Crc32, out.checksum_crc32()),
            (ChecksumAlgorithm::Crc32c, out.checksum_crc32_c()),
            (ChecksumAlgorithm::Sha256, out.checksum_sha256()),
        ]);
        Ok(Completed {
            location,
            etag: out.e_tag().unwrap_or_default().to_owned(),
            checksum,
        })
    }

    async fn credentials_remaining(&self) -> Option<Duration> {
        self.creds.as_ref()?.remaining().await
    }

    async fn abort(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        const OP: &str = "AbortMultipartUpload";
        self.api
            .abort_multipart_upload()
            .bucket(&self.config.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|e| classify(OP, upload_id, e))?;
        Ok(())
    }

    async fn head_object(&self, key: &str) -> Result<Option<ObjectHead>, StoreError> {
        const OP: &str = "HeadObject";
        let out = match self
            .api
            .head_object()
            .bucket(&self.config.bucket)
            .key(key)
            // S3 reports an object's checksum only when asked.
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {
                return Ok(None);
            }
            Err(e) => return Err(classify(OP, "", e)),
        };
        let checksum = reported_checksum([
            (ChecksumAlgorithm::Crc32, out.checksum_crc32()),
            (ChecksumAlgorithm::Crc32c, out.checksum_crc32_c()),
            (ChecksumAlgorithm::Sha256, out.checksum_sha256()),
        ]);
        Ok(Some(ObjectHead {
            size: out
                .content_length()
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| StoreError::unavailable(OP, "the store's answer had no size"))?,
            etag: out.e_tag().unwrap_or_default().to_owned(),
            checksum,
            content_type: out.content_type().map(str::to_owned),
        }))
    }

    async fn delete_object(&self, key: &str) -> Result<(), StoreError> {
        const OP: &str = "DeleteObject";
        self.api
            .delete_object()
            .bucket(&self.config.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify(OP, "", e))?;
        Ok(())
    }

    async fn write_object(&self, key: &str, body: Vec<u8>) -> Result<(), StoreError> {
        self.put_record(key, body).await
    }

    async fn read_object(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_record(key).await
    }

    async fn list_objects(&self, prefix: &str) -> Result<Vec<ListedObject>, StoreError> {
        self.list_records(prefix).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        const OP: &str = "HeadBucket";
        self.api
            .head_bucket()
            .bucket(&self.config.bucket)
            .send()
            .await
            .map_err(|e| StoreError::unavailable(OP, DisplayErrorContext(&e).to_string()))?;
        Ok(())
    }

    async fn presign_post(
        &self,
        key: &str,
        signing: &PostSigning,
        lifetime: Duration,
    ) -> Result<Option<PresignedPost>, StoreError> {
        self.presign_post_at(key, signing, SystemTime::now(), lifetime)
            .await
    }

    async fn presign_put(
        &self,
        key: &str,
        signing: &PutSigning,
        lifetime: Duration,
    ) -> Result<Presigned, StoreError> {
        self.presign_put_with_sdk(key, signing, lifetime).await
    }
}
