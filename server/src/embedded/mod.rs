//! The embedded S3-compatible store: s3s-fs running in this process on its own loopback port, so
//! the demo works on a fresh machine with zero configuration.
//!
//! s3s-fs keeps each bucket as a folder under the data dir. It is served by a plain hyper
//! HTTP/1.1 server behind a CORS layer that exposes `ETag` (without it a browser cannot read a
//! part's ETag, the most common failure of browser uploaders). It gets its own port because a SigV4
//! signature covers the whole path, so it cannot be mounted under a prefix of the API server.
//!
//! s3s-fs serves the store, with two parts of this module around it: an upload guard
//! (`guard.rs`) that answers S3's errors where s3s-fs 0.14.1 would not (`NoSuchUpload`), and its
//! own UploadPart and CompleteMultipartUpload (`multipart.rs`, completing in `assemble.rs`, with
//! `checksums.rs`, `xattr.rs` and `files.rs`), which verify part checksums and ETags and complete
//! without reading the parts through this process. `layout.rs` names s3s-fs's files for both,
//! and for the operator commands.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower_http::cors::{Any, CorsLayer};
use uuid::Uuid;

use crate::store::{S3Store, S3StoreConfig};

mod assemble;
mod checksums;
mod files;
mod guard;
pub(crate) mod layout;
mod multipart;
mod xattr;

use guard::UploadGuard;
use layout::Layout;
use multipart::EmbeddedFs;

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

        let layout = Layout::new(&data_dir);
        let mut builder = S3ServiceBuilder::new(EmbeddedFs::new(fs, layout.clone()));
        // Without an auth provider s3s answers every signed request 501 NotImplemented.
        builder.set_auth(SimpleAuth::from_single(
            credentials.access_key.as_str(),
            credentials.secret_key.as_str(),
        ));
        builder.set_access(UploadGuard { layout });
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
        .with_max_key_bytes(layout::max_key_bytes(bucket))
        // Its own UploadPart verifies every checksum (docs/stores.md, "Integrity").
        .with_verified_checksum(s3_direct_protocol::wire::ChecksumAlgorithm::Crc32c)
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

/// Browsers PUT parts (and POST small-file forms) from the page's origin; they must be allowed
/// to, and to read `ETag` (and a form's `Location`).
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
        .expose_headers([header::ETAG, header::LOCATION])
        .max_age(Duration::from_secs(3600))
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
    fn wildcard_addresses_become_loopback() {
        let a: SocketAddr = "0.0.0.0:9000".parse().unwrap();
        assert_eq!(loopback_for(a).to_string(), "127.0.0.1:9000");
        let b: SocketAddr = "127.0.0.2:9000".parse().unwrap();
        assert_eq!(loopback_for(b), b);
    }
}
