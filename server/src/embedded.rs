//! The embedded S3-compatible store: s3s-fs running in this process on its own loopback port, so
//! the demo works on a fresh machine with zero configuration.
//!
//! s3s-fs keeps each bucket as a folder under the data dir. It is served by a plain hyper
//! HTTP/1.1 server behind a CORS layer that exposes `ETag` (without it a browser cannot read a
//! part's ETag, the most common failure of browser uploaders). It gets its own port because a SigV4
//! signature covers the whole path, so it cannot be mounted under a prefix of the API server.
//!
//! An [`S3Access`] hook papers over s3s-fs 0.14.1 quirks (DESIGN.md §5) that would otherwise leak
//! into the API: an unknown upload id is answered `AccessDenied` (or, for ListParts, an empty list)
//! instead of `NoSuchUpload`; an upload id is not tied to its key, so it could be completed into
//! another object; and a failed CompleteMultipartUpload deletes the upload before checking its
//! parts. The hook checks all three up front, as S3 does, so a bad completion leaves the upload
//! intact for the client to re-send parts. Part ETags are not compared at completion (that would
//! read every part twice); ListParts still reports no ETags.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::SimpleAuth;
use s3s::dto::{
    AbortMultipartUploadInput, CompleteMultipartUploadInput, ListPartsInput, UploadPartInput,
};
use s3s::service::S3ServiceBuilder;
use s3s::{S3Request, S3Result, s3_error};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower_http::cors::{Any, CorsLayer};
use uuid::Uuid;

use crate::store::{S3Store, S3StoreConfig};

/// The smallest size of a non-last part (S3's rule, which s3s-fs enforces only after destroying
/// the upload).
const MIN_PART_SIZE: u64 = s3_direct_protocol::limits::MIN_PART_SIZE;

/// Credentials the embedded store accepts.
#[derive(Clone)]
pub struct EmbeddedCredentials {
    pub access_key: String,
    pub secret_key: String,
}

impl std::fmt::Debug for EmbeddedCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret, not even in a debug log.
        f.debug_struct("EmbeddedCredentials")
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

impl EmbeddedCredentials {
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` when both are set (so other tools can talk
    /// to the embedded store), otherwise fresh random ones.
    pub fn from_env_or_random() -> Self {
        match (
            std::env::var("AWS_ACCESS_KEY_ID"),
            std::env::var("AWS_SECRET_ACCESS_KEY"),
        ) {
            (Ok(access_key), Ok(secret_key))
                if !access_key.is_empty() && !secret_key.is_empty() =>
            {
                Self {
                    access_key,
                    secret_key,
                }
            }
            _ => Self::random(),
        }
    }

    /// Fresh random credentials (UUID v4 randomness: 122 bits each).
    pub fn random() -> Self {
        let hex = |u: Uuid| u.simple().to_string();
        Self {
            access_key: format!("S3D{}", hex(Uuid::new_v4())[..17].to_ascii_uppercase()),
            secret_key: format!("{}{}", hex(Uuid::new_v4()), hex(Uuid::new_v4())),
        }
    }
}

/// A running embedded store. Dropping it stops accepting connections.
#[derive(Debug)]
pub struct EmbeddedStore {
    endpoint: String,
    local_addr: SocketAddr,
    data_dir: PathBuf,
    credentials: EmbeddedCredentials,
    accept_loop: JoinHandle<()>,
}

impl EmbeddedStore {
    /// Serves s3s-fs over `listener`, keeping data in `data_dir` (created if missing) with
    /// `bucket` created in it.
    pub async fn start(
        listener: TcpListener,
        data_dir: &Path,
        bucket: &str,
        credentials: EmbeddedCredentials,
    ) -> io::Result<Self> {
        // The bucket name was validated by the config, so this stays inside the data dir.
        tokio::fs::create_dir_all(data_dir.join(bucket)).await?;
        let data_dir = tokio::fs::canonicalize(data_dir).await?;
        let fs =
            s3s_fs::FileSystem::new(&data_dir).map_err(|e| io::Error::other(format!("{e:?}")))?;

        let mut builder = S3ServiceBuilder::new(fs);
        // Without an auth provider s3s answers every signed request 501 NotImplemented.
        builder.set_auth(SimpleAuth::from_single(
            credentials.access_key.as_str(),
            credentials.secret_key.as_str(),
        ));
        builder.set_access(UploadGuard {
            root: data_dir.clone(),
        });
        let s3 = builder.build();

        let service = tower::ServiceBuilder::new().layer(cors()).service(s3);
        let service = TowerToHyperService::new(service);

        let local_addr = listener.local_addr()?;
        let endpoint = format!("http://{}", loopback_for(local_addr));
        let accept_loop = tokio::spawn(async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Usually out of file descriptors: back off instead of spinning.
                        tracing::warn!("embedded store: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let service = service.clone();
                tokio::spawn(async move {
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    if let Err(e) = conn.await {
                        tracing::debug!("embedded store: connection ended: {e}");
                    }
                });
            }
        });
        Ok(Self {
            endpoint,
            local_addr,
            data_dir,
            credentials,
            accept_loop,
        })
    }

    /// URL to reach the store, e.g. `http://127.0.0.1:41234`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Address the store listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Canonical path of the data dir.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Credentials the store accepts.
    pub fn credentials(&self) -> &EmbeddedCredentials {
        &self.credentials
    }

    /// An [`S3Store`] talking to this store (always path style: s3s-fs has no virtual hosts).
    pub fn s3_store(&self, bucket: &str, region: &str, public_endpoint: Option<String>) -> S3Store {
        S3Store::with_credentials(
            S3StoreConfig {
                endpoint: self.endpoint.clone(),
                public_endpoint,
                bucket: bucket.to_owned(),
                region: region.to_owned(),
                path_style: true,
            },
            &self.credentials.access_key,
            &self.credentials.secret_key,
        )
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

/// A wildcard listen address is not a URL anyone can use; the API client goes to loopback.
fn loopback_for(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => {
            SocketAddr::from(([127, 0, 0, 1], a.port()))
        }
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port()))
        }
        other => other,
    }
}

/// Browsers PUT parts from the demo page's origin; they must be allowed to, and to read `ETag`.
fn cors() -> CorsLayer {
    use axum::http::{Method, header};
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([
            Method::GET,
            Method::PUT,
            Method::POST,
            Method::HEAD,
            Method::DELETE,
        ])
        .allow_headers(Any)
        .expose_headers([header::ETAG])
        .max_age(Duration::from_secs(3600))
}

/// Base64url without padding, the file-name encoding s3s-fs uses for bucket and key.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        // 1 byte gives 2 characters, 2 give 3, 3 give 4.
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// Checks upload-scoped requests against s3s-fs's on-disk state before s3s-fs acts on them.
struct UploadGuard {
    /// The s3s-fs root (canonical data dir).
    root: PathBuf,
}

impl UploadGuard {
    /// An upload is open for `bucket`/`key` if s3s-fs holds both its record
    /// (`.upload-{uuid}.json`) and the object attributes it saved for that very bucket and key
    /// at creation (`.bucket-{b64}.object-{b64}.upload-{uuid}.metadata.json`, removed on
    /// complete and abort).
    fn check_upload(&self, bucket: &str, key: &str, upload_id: &str) -> S3Result<Uuid> {
        let id = Uuid::parse_str(upload_id).ok().filter(|id| {
            let id = id.hyphenated();
            let record = self.root.join(format!(".upload-{id}.json"));
            let attributes = self.root.join(format!(
                ".bucket-{}.object-{}.upload-{id}.metadata.json",
                base64url(bucket.as_bytes()),
                base64url(key.as_bytes())
            ));
            record.is_file() && attributes.is_file()
        });
        id.ok_or_else(|| s3_error!(NoSuchUpload, "The specified upload does not exist."))
    }

    /// s3s-fs stores part N of an upload as `.upload_id-{uuid}.part-N` in its root.
    fn part_path(&self, id: Uuid, part_number: i32) -> PathBuf {
        self.root
            .join(format!(".upload_id-{}.part-{part_number}", id.hyphenated()))
    }
}

#[async_trait::async_trait]
impl S3Access for UploadGuard {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        // Same as s3s's default: every request must be signed.
        match cx.credentials() {
            Some(_) => Ok(()),
            None => Err(s3_error!(AccessDenied, "Signature is required")),
        }
    }

    async fn upload_part(&self, req: &mut S3Request<UploadPartInput>) -> S3Result<()> {
        self.check_upload(&req.input.bucket, &req.input.key, &req.input.upload_id)
            .map(drop)
    }

    async fn list_parts(&self, req: &mut S3Request<ListPartsInput>) -> S3Result<()> {
        self.check_upload(&req.input.bucket, &req.input.key, &req.input.upload_id)
            .map(drop)
    }

    async fn abort_multipart_upload(
        &self,
        req: &mut S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<()> {
        self.check_upload(&req.input.bucket, &req.input.key, &req.input.upload_id)
            .map(drop)
    }

    async fn complete_multipart_upload(
        &self,
        req: &mut S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<()> {
        let input = &req.input;
        let id = self.check_upload(&input.bucket, &input.key, &input.upload_id)?;
        let parts = input
            .multipart_upload
            .as_ref()
            .and_then(|m| m.parts.as_deref())
            .unwrap_or_default();
        let last = parts.len();
        for (index, part) in parts.iter().enumerate() {
            let expected = i32::try_from(index + 1).unwrap_or(i32::MAX);
            let number = part.part_number.unwrap_or(0);
            // s3s-fs concatenates parts 1..=N and cannot skip numbers, unlike S3.
            if number != expected {
                return Err(s3_error!(
                    InvalidPart,
                    "The embedded store needs parts numbered 1..={last} without gaps; \
                     part {expected} is missing"
                ));
            }
            let size = match tokio::fs::metadata(self.part_path(id, number)).await {
                Ok(meta) if meta.is_file() => meta.len(),
                _ => {
                    return Err(s3_error!(
                        InvalidPart,
                        "Part {number} has not been uploaded"
                    ));
                }
            };
            if index + 1 < last && size < MIN_PART_SIZE {
                return Err(s3_error!(
                    EntityTooSmall,
                    "Part {number} is {size} bytes, below the 5 MiB minimum for all but the last part"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_credentials_differ_and_have_a_usable_shape() {
        let a = EmbeddedCredentials::random();
        let b = EmbeddedCredentials::random();
        assert_ne!(a.secret_key, b.secret_key);
        assert_eq!(a.access_key.len(), 20);
        assert_eq!(a.secret_key.len(), 64);
        assert!(!format!("{a:?}").contains(&a.secret_key));
    }

    #[test]
    fn base64url_matches_the_names_s3s_fs_writes() {
        assert_eq!(base64url(b"s3-direct"), "czMtZGlyZWN0");
        assert_eq!(
            base64url("uploads/c4413e2e-50a8-40ac-aee0-053bf02a5692/ñ 日本.bin".as_bytes()),
            "dXBsb2Fkcy9jNDQxM2UyZS01MGE4LTQwYWMtYWVlMC0wNTNiZjAyYTU2OTIvw7Eg5pel5pysLmJpbg"
        );
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"a"), "YQ");
        assert_eq!(base64url(b"ab"), "YWI");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn wildcard_addresses_become_loopback() {
        let a: SocketAddr = "0.0.0.0:9000".parse().unwrap();
        assert_eq!(loopback_for(a).to_string(), "127.0.0.1:9000");
        let b: SocketAddr = "127.0.0.2:9000".parse().unwrap();
        assert_eq!(loopback_for(b), b);
    }
}
