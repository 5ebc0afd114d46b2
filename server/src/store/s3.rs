//! [`Store`] over aws-sdk-s3, for any S3-compatible endpoint.
//!
//! Two clients share one configuration: `api` talks to `--endpoint` (the address this server
//! reaches the store on), `presigner` only signs URLs for `--public-endpoint` (the address browsers
//! reach it on). A SigV4 signature covers the host, so the URL must be signed for the host the
//! browser will actually send it to.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_s3::Client;
use std::sync::{Arc, PoisonError, RwLock};

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::future;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, IdentityCache, ProvideCredentials, Region,
    RequestChecksumCalculation, ResponseChecksumValidation, SharedCredentialsProvider,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::{PresignedRequest, PresigningConfig};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart as SdkCompletedPart};
use s3_direct_protocol::limits::MAX_PART_NUMBER;
use s3_direct_protocol::wire::{ChecksumAlgorithm, CompletedPart, ListedPart, PartChecksumFields};

use super::integrity;
use super::{
    Completed, ListedObject, NewUpload, ObjectHead, PartProbe, PartSigning, PostSigning, Presigned,
    PresignedPost, PutSigning, Store, StoreError,
};

mod objects;
mod sigv4;

pub(crate) use sigv4::encode_into as uri_encode_into;

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

/// Credentials are refreshed this long before they expire, so a URL signed just before a refresh
/// still has a useful life.
const REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);

/// A credentials cache that refreshes [`REFRESH_BEFORE`] expiry and can say how long the current
/// credentials live.
///
/// Every signing request reads it, so the read is a short `std` lock that never waits on a
/// refresh. (It was a `tokio` mutex: under 50 concurrent batch requests its hand-offs left a
/// quarter of the CPU idle, and a signer in front of a remote store served 35 % fewer batches than
/// the embedded one; see BENCHMARKS.md.) Refreshes take their own async lock, so only one asks
/// the provider at a time.
#[derive(Debug, Clone)]
pub struct RefreshingCredentials {
    inner: SharedCredentialsProvider,
    cached: Arc<RwLock<Option<Credentials>>>,
    refreshing: Arc<tokio::sync::Mutex<()>>,
}

impl RefreshingCredentials {
    fn new(inner: SharedCredentialsProvider) -> Self {
        Self {
            inner,
            cached: Arc::default(),
            refreshing: Arc::default(),
        }
    }

    /// The cached credentials, unless they are due for a refresh.
    fn fresh(&self) -> Option<Credentials> {
        let cached = self.cached.read().unwrap_or_else(PoisonError::into_inner);
        cached
            .as_ref()
            .filter(|c| {
                c.expiry()
                    .is_none_or(|e| e > SystemTime::now() + REFRESH_BEFORE)
            })
            .cloned()
    }

    async fn current(&self) -> Result<Credentials, CredentialsError> {
        if let Some(c) = self.fresh() {
            return Ok(c);
        }
        let _refreshing = self.refreshing.lock().await;
        // Refreshed by another request while this one waited.
        if let Some(c) = self.fresh() {
            return Ok(c);
        }
        let c = self.inner.provide_credentials().await?;
        if let Some(e) = c.expiry() {
            let left = e.duration_since(SystemTime::now()).unwrap_or_default();
            tracing::info!(
                "signing credentials refreshed; they expire in {} s",
                left.as_secs()
            );
        }
        *self.cached.write().unwrap_or_else(PoisonError::into_inner) = Some(c.clone());
        Ok(c)
    }
}

impl ProvideCredentials for RefreshingCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.current())
    }
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
    /// instance role, web identity, SSO). Both clients share one [`RefreshingCredentials`], so
    /// [`Store::credentials_remaining`] knows the life left in the very credentials that sign.
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
            max_key_bytes: crate::keys::S3_MAX_KEY_BYTES,
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

    /// Presigns part `part_number` for the window `start..start + lifetime`.
    ///
    /// [`Store::presign_part`] starts the window now; tests start it in the past to get an
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

    /// [`Store::presign_post`] for the window `start..start + lifetime` (tests start it in the
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
    async fn presign_part_with_sdk(
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
        if let Some((algo, value)) = &signing.checksum {
            builder = match algo {
                ChecksumAlgorithm::Md5 => builder.content_md5(value),
                ChecksumAlgorithm::Crc32 => builder.checksum_crc32(value),
                ChecksumAlgorithm::Crc32c => builder.checksum_crc32_c(value),
                ChecksumAlgorithm::Sha256 => builder.checksum_sha256(value),
            };
        }
        let request = builder
            .presigned(presigning)
            .await
            .map_err(|e| classify(OP, upload_id, e))?;
        Ok(to_presigned(&request))
    }

    /// URL of an object as browsers reach it.
    fn object_url(&self, key: &str) -> String {
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
            let part = match algorithm {
                ChecksumAlgorithm::Md5 => part.content_md5(wrong),
                ChecksumAlgorithm::Crc32 => part.checksum_crc32(wrong),
                ChecksumAlgorithm::Crc32c => part.checksum_crc32_c(wrong),
                ChecksumAlgorithm::Sha256 => part.checksum_sha256(wrong),
            };
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
            parts.extend(page.parts().iter().map(|p| {
                ListedPart {
                    part_number: p
                        .part_number()
                        .and_then(|n| u32::try_from(n).ok())
                        .unwrap_or(0),
                    etag: p.e_tag().unwrap_or_default().to_owned(),
                    size: p.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                    checksums: PartChecksumFields {
                        crc32: p.checksum_crc32().map(str::to_owned),
                        crc32c: p.checksum_crc32_c().map(str::to_owned),
                        sha256: p.checksum_sha256().map(str::to_owned),
                    },
                }
            }));
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
        let parts = parts
            .iter()
            .map(|p| {
                SdkCompletedPart::builder()
                    .part_number(part_number_i32(p.part_number))
                    .e_tag(&p.etag)
                    .set_checksum_crc32(p.checksums.crc32.clone())
                    .set_checksum_crc32_c(p.checksums.crc32c.clone())
                    .set_checksum_sha256(p.checksums.sha256.clone())
                    .build()
            })
            .collect();
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
        let creds = self.creds.as_ref()?;
        match creds.current().await {
            Ok(c) => c
                .expiry()
                .map(|e| e.duration_since(SystemTime::now()).unwrap_or_default()),
            Err(e) => {
                // Signing will fail the same way and report it; keep the configured lifetime.
                tracing::warn!("cannot read the signing credentials: {e}");
                None
            }
        }
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
        if let Some((algo, value)) = &signing.checksum {
            builder = match algo {
                ChecksumAlgorithm::Md5 => builder.content_md5(value),
                ChecksumAlgorithm::Crc32 => builder.checksum_crc32(value),
                ChecksumAlgorithm::Crc32c => builder.checksum_crc32_c(value),
                ChecksumAlgorithm::Sha256 => builder.checksum_sha256(value),
            };
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

/// The first checksum a store's answer reports, as `ALGO:BASE64` (the value as the store gave it,
/// `-N` included for a multipart object's composite).
fn reported_checksum(values: [(ChecksumAlgorithm, Option<&str>); 3]) -> Option<String> {
    values.into_iter().find_map(|(algorithm, value)| {
        value
            .filter(|v| !v.is_empty())
            .map(|v| format!("{algorithm}:{v}"))
    })
}

/// Part numbers are validated to 1..=10,000 before any store call, so this cannot truncate.
fn part_number_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Maps an SDK failure to what the caller can act on; everything unexpected keeps its full
/// error chain for the log.
/// The SDK's name for an algorithm declared at create; MD5 is not one (S3 checks `Content-MD5`
/// on any upload).
fn sdk_checksum_algorithm(
    algorithm: ChecksumAlgorithm,
) -> Option<aws_sdk_s3::types::ChecksumAlgorithm> {
    use aws_sdk_s3::types::ChecksumAlgorithm as Sdk;
    match algorithm {
        ChecksumAlgorithm::Md5 => None,
        ChecksumAlgorithm::Crc32 => Some(Sdk::Crc32),
        ChecksumAlgorithm::Crc32c => Some(Sdk::Crc32C),
        ChecksumAlgorithm::Sha256 => Some(Sdk::Sha256),
    }
}

fn classify<E>(op: &'static str, upload_id: &str, err: SdkError<E>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let message = lowercase_first(err.message().unwrap_or("no details given"));
    match err.code() {
        // Ceph 16 answers ListParts of a completed upload with NoSuchKey (docs/stores.md,
        // "Completion").
        Some("NoSuchUpload") => StoreError::NoSuchUpload {
            upload_id: upload_id.to_owned(),
        },
        Some("NoSuchKey") if !upload_id.is_empty() => StoreError::NoSuchUpload {
            upload_id: upload_id.to_owned(),
        },
        Some("InvalidPart" | "InvalidPartOrder") => StoreError::InvalidPart { message },
        Some("EntityTooSmall") => StoreError::EntityTooSmall { message },
        _ => StoreError::unavailable(op, DisplayErrorContext(&err).to_string()),
    }
}

/// Store messages are sentences ("One or more of the specified parts could not be found.");
/// ours continue them mid-sentence.
fn lowercase_first(s: &str) -> String {
    let s = s.trim().trim_end_matches('.');
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Percent-encodes a key for a URL path, keeping `/` separators and unreserved characters.
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(path_style: bool, public: Option<&str>) -> S3Store {
        S3Store::with_credentials(
            S3StoreConfig {
                endpoint: "http://127.0.0.1:9".into(),
                public_endpoint: public.map(str::to_owned),
                bucket: "b".into(),
                region: "us-east-1".into(),
                path_style,
            },
            "AKIDEXAMPLE",
            "secret",
        )
    }

    #[test]
    fn store_messages_continue_our_sentences() {
        assert_eq!(
            lowercase_first("One or more of the specified parts could not be found."),
            "one or more of the specified parts could not be found"
        );
        assert_eq!(lowercase_first(""), "");
    }

    #[test]
    fn keys_are_percent_encoded_in_urls() {
        assert_eq!(
            encode_key("uploads/a b+ñ.bin"),
            "uploads/a%20b%2B%C3%B1.bin"
        );
    }

    /// URL path and query parameters, sorted, for comparing URLs whose parameter order differs.
    fn url_parts(url: &str) -> (String, Vec<(String, String)>) {
        let (path, query) = url.split_once('?').unwrap();
        let mut params: Vec<(String, String)> = query
            .split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect();
        params.sort();
        (path.to_owned(), params)
    }

    /// The direct signer writes the same URL (same signature) and headers as the SDK for every
    /// kind of part URL the server hands out.
    #[tokio::test]
    async fn direct_part_signatures_match_the_sdk() {
        let session = S3Store::with_provider(
            aws_sdk_s3::config::Builder::new().behavior_version(BehaviorVersion::latest()),
            store(true, Some("https://files.example.net"))
                .config
                .clone(),
            SharedCredentialsProvider::new(Credentials::new(
                "ASIAEXAMPLE",
                "session-secret/+=",
                Some("token/with+special=chars".into()),
                Some(SystemTime::now() + Duration::from_secs(3600)),
                "test",
            )),
        );
        // Virtual-hosted addressing needs a bucket that can be a host name label.
        let hosted = |public: &str| {
            S3Store::with_credentials(
                S3StoreConfig {
                    endpoint: "http://127.0.0.1:9".into(),
                    public_endpoint: Some(public.to_owned()),
                    bucket: "uploads-1".into(),
                    region: "eu-west-3".into(),
                    path_style: false,
                },
                "AKIDEXAMPLE",
                "secret",
            )
        };
        let stores = [
            store(true, None),
            store(false, None),
            hosted("https://s3.example.net"),
            hosted("http://localhost:3900/prefix"),
            store(true, Some("http://files.example.net:8000")),
            store(true, Some("http://files.example.net:80/")),
            hosted("https://s3.example.net:443"),
            store(true, Some("https://proxy.example.net/s3store")),
            session,
        ];
        let signings = [
            PartSigning::default(),
            PartSigning {
                content_length: Some(8_388_608),
                checksum: None,
            },
            PartSigning {
                content_length: Some(5),
                checksum: Some((ChecksumAlgorithm::Md5, "1B2M2Y8AsgTpgAmY7PhCfg==".into())),
            },
            PartSigning {
                content_length: None,
                checksum: Some((ChecksumAlgorithm::Crc32, "AAAAAA==".into())),
            },
            PartSigning {
                content_length: Some(1),
                checksum: Some((ChecksumAlgorithm::Crc32c, "yZRlqg==".into())),
            },
            PartSigning {
                content_length: Some(1),
                checksum: Some((
                    ChecksumAlgorithm::Sha256,
                    "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".into(),
                )),
            },
        ];
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_921_552);
        for s in &stores {
            // An endpoint with a path is left to the SDK (compared with itself below).
            let with_path = s
                .config
                .public_endpoint()
                .split('/')
                .nth(3)
                .is_some_and(|p| !p.is_empty());
            assert_eq!(s.part_signer.is_some(), !with_path, "{:?}", s.config);
            for signing in &signings {
                for (key, upload_id, n) in [
                    ("uploads/0b6c/a.bin", "up1", 1),
                    (
                        "uploads/x/ñ a+b=(c)~'!*&$@,;:.bin",
                        "2~Ab_c-D.e/f+g=",
                        10_000,
                    ),
                ] {
                    let direct = s
                        .presign_part_at(
                            key,
                            upload_id,
                            n,
                            start,
                            Duration::from_secs(900),
                            signing,
                        )
                        .await
                        .unwrap();
                    let sdk = s
                        .presign_part_with_sdk(
                            key,
                            upload_id,
                            n,
                            start,
                            Duration::from_secs(900),
                            signing,
                        )
                        .await
                        .unwrap();
                    assert_eq!(
                        url_parts(&direct.url),
                        url_parts(&sdk.url),
                        "{:?}",
                        s.config
                    );
                    assert_eq!(direct.headers, sdk.headers);
                }
            }
        }
    }

    /// A batch shares its dates, key, hash prefix and HMAC state between parts: parts with
    /// different signed headers in one call (a checksum on some, another length on the last) still
    /// get each the URL the SDK writes for it alone.
    #[tokio::test]
    async fn batches_of_mixed_parts_match_the_sdk_part_by_part() {
        let s = store(true, Some("http://files.example.net:8000"));
        let eight = |checksum| PartSigning {
            content_length: Some(8_388_608),
            checksum,
        };
        let parts = vec![
            (3, eight(None)),
            (
                1,
                eight(Some((ChecksumAlgorithm::Crc32c, "yZRlqg==".into()))),
            ),
            (2, eight(None)),
            (
                4,
                eight(Some((
                    ChecksumAlgorithm::Md5,
                    "1B2M2Y8AsgTpgAmY7PhCfg==".into(),
                ))),
            ),
            (10_000, PartSigning::default()),
            (
                5,
                eight(Some((ChecksumAlgorithm::Crc32c, "AAAAAA==".into()))),
            ),
            (
                6,
                PartSigning {
                    content_length: Some(5),
                    checksum: None,
                },
            ),
        ];
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_921_552);
        let lifetime = Duration::from_secs(900);
        let key = "uploads/x/ñ a+b.bin";
        let batch = s
            .presign_parts_at(key, "up~1/2", &parts, start, lifetime)
            .await
            .unwrap();
        assert_eq!(batch.len(), parts.len());
        for ((n, signing), direct) in parts.iter().zip(&batch) {
            let sdk = s
                .presign_part_with_sdk(key, "up~1/2", *n, start, lifetime, signing)
                .await
                .unwrap();
            assert_eq!(url_parts(&direct.url), url_parts(&sdk.url), "part {n}");
            assert_eq!(direct.headers, sdk.headers, "part {n}");
        }
        // An empty batch signs nothing.
        assert!(
            s.presign_parts_at(key, "u", &[], start, lifetime)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn direct_part_urls_refuse_lifetimes_over_seven_days() {
        let s = store(true, None);
        let long = Duration::from_secs(7 * 24 * 3600 + 1);
        assert!(
            s.presign_part("k", "u", 1, long, &PartSigning::default())
                .await
                .is_err()
        );
    }

    #[test]
    fn object_urls_follow_the_addressing_style() {
        assert_eq!(
            store(true, None).object_url("k/x"),
            "http://127.0.0.1:9/b/k/x"
        );
        assert_eq!(
            store(false, Some("https://s3.example.net")).object_url("k"),
            "https://b.s3.example.net/k"
        );
    }

    #[tokio::test]
    async fn part_urls_use_the_public_endpoint_and_carry_no_checksum() {
        let s = store(true, Some("http://files.example.net:8000"));
        let p = s
            .presign_part(
                "k/a.bin",
                "up1",
                7,
                Duration::from_secs(60),
                &PartSigning::default(),
            )
            .await
            .unwrap();
        assert!(
            p.url
                .starts_with("http://files.example.net:8000/b/k/a.bin?"),
            "{}",
            p.url
        );
        assert!(p.url.contains("partNumber=7") && p.url.contains("uploadId=up1"));
        assert!(p.url.contains("X-Amz-Expires=60"));
        let lower = p.url.to_ascii_lowercase();
        assert!(!lower.contains("x-amz-checksum"), "{}", p.url);
        assert!(!lower.contains("x-amz-sdk-checksum-algorithm"), "{}", p.url);
        assert!(p.headers.keys().all(|h| !h.starts_with("x-amz-checksum")));
    }

    /// A provider that counts its calls and hands out credentials `lifetime` from expiry, named
    /// after the call that made them.
    #[derive(Debug)]
    struct CountingProvider {
        calls: Arc<std::sync::atomic::AtomicUsize>,
        lifetime: Duration,
    }

    impl ProvideCredentials for CountingProvider {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            future::ProvideCredentials::new(async move {
                let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                // Let the other callers run into the refresh meanwhile.
                tokio::task::yield_now().await;
                Ok(Credentials::new(
                    format!("AKID{n}"),
                    "secret",
                    None,
                    Some(SystemTime::now() + self.lifetime),
                    "test",
                ))
            })
        }
    }

    fn counting(
        lifetime: Duration,
    ) -> (RefreshingCredentials, Arc<std::sync::atomic::AtomicUsize>) {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let provider = CountingProvider {
            calls: calls.clone(),
            lifetime,
        };
        (
            RefreshingCredentials::new(SharedCredentialsProvider::new(provider)),
            calls,
        )
    }

    #[tokio::test]
    async fn credentials_are_fetched_once_for_concurrent_callers_and_again_when_due() {
        let (creds, calls) = counting(Duration::from_secs(3600));
        let all = futures::future::join_all((0..20).map(|_| creds.current())).await;
        for c in all {
            assert_eq!(c.unwrap().access_key_id(), "AKID1");
        }
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);

        // Credentials closer to their expiry than REFRESH_BEFORE are fetched again, once per
        // caller that finds them due (they are due again as soon as they arrive).
        let (creds, calls) = counting(REFRESH_BEFORE / 2);
        assert_eq!(creds.current().await.unwrap().access_key_id(), "AKID1");
        assert_eq!(creds.current().await.unwrap().access_key_id(), "AKID2");
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn expiring_credentials_report_their_remaining_life() {
        let expiry = SystemTime::now() + Duration::from_secs(120);
        let provider = SharedCredentialsProvider::new(Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            Some("session".into()),
            Some(expiry),
            "test",
        ));
        let s = S3Store::with_provider(
            aws_sdk_s3::config::Builder::new().behavior_version(BehaviorVersion::latest()),
            store(true, None).config.clone(),
            provider,
        );
        let left = s.credentials_remaining().await.unwrap();
        assert!(
            left <= Duration::from_secs(120) && left > Duration::from_secs(100),
            "{left:?}"
        );
        // The presigner signs with them (the session token is in the URL).
        let p = s
            .presign_part(
                "k",
                "u",
                1,
                Duration::from_secs(60),
                &PartSigning::default(),
            )
            .await
            .unwrap();
        assert!(p.url.contains("X-Amz-Security-Token=session"), "{}", p.url);
        assert!(store(true, None).credentials_remaining().await.is_none());
    }

    #[tokio::test]
    async fn a_planned_part_signs_its_length_and_checksum() {
        let s = store(true, None);
        let p = s
            .presign_part(
                "k/a.bin",
                "up1",
                2,
                Duration::from_secs(60),
                &PartSigning {
                    content_length: Some(5_242_880),
                    checksum: Some((ChecksumAlgorithm::Crc32c, "yZRlqg==".into())),
                },
            )
            .await
            .unwrap();
        let signed = p
            .url
            .split("X-Amz-SignedHeaders=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .to_ascii_lowercase();
        assert!(signed.contains("content-length"), "{signed}");
        assert!(signed.contains("x-amz-checksum-crc32c"), "{signed}");
        assert_eq!(p.headers["content-length"], "5242880");
        assert_eq!(p.headers["x-amz-checksum-crc32c"], "yZRlqg==");
        assert!(
            !p.url
                .to_ascii_lowercase()
                .contains("x-amz-sdk-checksum-algorithm"),
            "{}",
            p.url
        );
        let md5 = s
            .presign_part(
                "k/a.bin",
                "up1",
                2,
                Duration::from_secs(60),
                &PartSigning {
                    content_length: None,
                    checksum: Some((ChecksumAlgorithm::Md5, "1B2M2Y8AsgTpgAmY7PhCfg==".into())),
                },
            )
            .await
            .unwrap();
        assert_eq!(md5.headers["content-md5"], "1B2M2Y8AsgTpgAmY7PhCfg==");
    }

    #[tokio::test]
    async fn single_put_urls_sign_the_content_type() {
        let s = store(true, None);
        let signing = PutSigning {
            content_type: "text/plain".into(),
            ..PutSigning::default()
        };
        let p = s
            .presign_put("k/a.txt", &signing, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(
            p.headers.get("content-type").map(String::as_str),
            Some("text/plain")
        );
        assert!(p.url.contains("content-type"), "signed headers: {}", p.url);
        assert!(!p.url.to_ascii_lowercase().contains("x-amz-checksum"));
        assert!(!p.url.to_ascii_lowercase().contains("x-amz-meta"));
    }

    #[tokio::test]
    async fn single_put_urls_sign_metadata_length_and_checksum() {
        let s = store(true, None);
        for (algo, value, header) in [
            (
                ChecksumAlgorithm::Md5,
                "1B2M2Y8AsgTpgAmY7PhCfg==",
                "content-md5",
            ),
            (
                ChecksumAlgorithm::Sha256,
                "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
                "x-amz-checksum-sha256",
            ),
        ] {
            let signing = PutSigning {
                content_type: "text/plain".into(),
                content_length: Some(0),
                metadata: BTreeMap::from([("origin".to_owned(), "queue".to_owned())]),
                checksum: Some((algo, value.to_owned())),
            };
            let p = s
                .presign_put("k/a.txt", &signing, Duration::from_secs(60))
                .await
                .unwrap();
            assert_eq!(p.headers["x-amz-meta-origin"], "queue");
            assert_eq!(p.headers[header], value);
            assert_eq!(p.headers["content-length"], "0");
            let signed = p
                .url
                .split('&')
                .find_map(|kv| kv.strip_prefix("X-Amz-SignedHeaders="))
                .expect("a SigV4 query signature")
                .replace("%3B", ";");
            for name in [
                "content-length",
                "content-type",
                header,
                "x-amz-meta-origin",
            ] {
                assert!(signed.split(';').any(|h| h == name), "{name} in {signed}");
            }
        }
    }
}
