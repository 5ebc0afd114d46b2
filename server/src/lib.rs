//! The s3-direct signing service: creates S3 multipart uploads and hands browsers presigned URLs
//! so that file bytes go straight to the store, never through this server.
//!
//! The crate is a library with a thin binary (`s3-direct`), in the style of mini-redis:
//!
//! - [`app`] builds the whole HTTP router from an [`AppState`]; tests drive it with
//!   `tower::ServiceExt::oneshot`, no socket needed.
//! - [`serve`] runs it on a listener until a shutdown future resolves.
//! - [`prepare`] turns a [`ServeConfig`] into an [`AppState`], starting the
//!   [embedded store](embedded) when no endpoint is configured.
//!
//! The store sits behind the [`Store`] trait ([`S3Store`] for real stores, [`FakeStore`] for tests).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::services::ServeDir;
use tower_http::trace::TraceLayer;

pub mod config;
pub mod embedded;
pub mod error;
pub mod keys;
pub mod routes;
pub mod store;
pub mod validate;

pub use config::{Cli, Command, ServeConfig};
pub use embedded::{EmbeddedCredentials, EmbeddedStore};
pub use error::Error;
pub use keys::KeyPolicy;
pub use store::{FakeStore, S3Store, S3StoreConfig, Store, StoreError};

/// The settings handlers need, apart from the store.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Prefix of every issued key, e.g. `uploads/`.
    pub key_prefix: String,
    /// Path prefix of the API routes, e.g. `/s3`; empty puts them at the root.
    pub route_prefix: String,
    /// Lifetime of presigned URLs.
    pub url_lifetime: Duration,
    /// Folder served at `/`; a missing folder just answers 404.
    pub web_dir: PathBuf,
    /// Folder served at `/pkg/`.
    pub pkg_dir: PathBuf,
}

impl Default for Settings {
    /// The CLI's defaults.
    fn default() -> Self {
        Self {
            key_prefix: "uploads/".to_owned(),
            route_prefix: "/s3".to_owned(),
            url_lifetime: Duration::from_secs(900),
            web_dir: PathBuf::from("web"),
            pkg_dir: PathBuf::from("wasm-client/pkg"),
        }
    }
}

impl From<&ServeConfig> for Settings {
    fn from(c: &ServeConfig) -> Self {
        Self {
            key_prefix: c.key_prefix.clone(),
            route_prefix: c.route_prefix.clone(),
            url_lifetime: c.url_lifetime(),
            web_dir: c.web_dir.clone(),
            pkg_dir: c.pkg_dir.clone(),
        }
    }
}

/// Shared state of every handler: the store and the settings. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    store: Arc<dyn Store>,
    keys: KeyPolicy,
    settings: Settings,
}

impl AppState {
    /// State serving `store` with `settings`.
    pub fn new(store: Arc<dyn Store>, settings: Settings) -> Self {
        Self {
            inner: Arc::new(Shared {
                store,
                keys: KeyPolicy::new(settings.key_prefix.clone()),
                settings,
            }),
        }
    }

    /// The store handlers call.
    pub fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    /// The key policy.
    pub fn keys(&self) -> &KeyPolicy {
        &self.inner.keys
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Lifetime of presigned URLs.
    pub fn url_lifetime(&self) -> Duration {
        self.inner.settings.url_lifetime
    }
}

/// The whole HTTP surface: the signing API under the route prefix, `/healthz`, the WASM package
/// at `/pkg/` and the demo page at `/`.
pub fn app(state: AppState) -> Router {
    let settings = state.settings();
    let api = routes::api_router();
    let pages = Router::new()
        .nest_service("/pkg", ServeDir::new(&settings.pkg_dir))
        .fallback_service(ServeDir::new(&settings.web_dir));
    let router = if settings.route_prefix.is_empty() {
        // API at the root: unknown paths fall through to the static files.
        api.route("/healthz", get(routes::healthz)).merge(pages)
    } else {
        // Unknown paths under the prefix get a JSON 404, not the demo page's HTML 404.
        Router::new()
            .route("/healthz", get(routes::healthz))
            .nest(&settings.route_prefix, api.fallback(routes::no_route))
            .merge(pages)
    };
    router
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// A panicking handler is a bug: answer the documented `internal` JSON error (the panic message
/// goes to the log only) instead of dropping the connection.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("no panic message");
    Error::Internal(format!("handler panicked: {detail}")).into_response()
}

/// Serves [`app`] on `listener` until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// A ready-to-serve state and, in embedded mode, the store it uses (keep it alive while serving).
#[derive(Debug)]
pub struct Prepared {
    pub state: AppState,
    pub embedded: Option<EmbeddedStore>,
}

/// Builds the [`AppState`] for `config`: an [`S3Store`] for `--endpoint` with the standard AWS
/// credential chain, or, without an endpoint, the embedded store on `--embedded-listen`.
pub async fn prepare(config: &ServeConfig) -> std::io::Result<Prepared> {
    let settings = Settings::from(config);
    match &config.endpoint {
        Some(endpoint) => {
            let store = S3Store::from_env(S3StoreConfig {
                endpoint: endpoint.clone(),
                public_endpoint: config.public_endpoint.clone(),
                bucket: config.bucket.clone(),
                region: config.region.clone(),
                path_style: config.path_style,
            })
            .await;
            Ok(Prepared {
                state: AppState::new(Arc::new(store), settings),
                embedded: None,
            })
        }
        None => {
            let listener = TcpListener::bind(config.embedded_listen).await?;
            let embedded = EmbeddedStore::start(
                listener,
                &config.data_dir,
                &config.bucket,
                EmbeddedCredentials::from_env_or_random(),
            )
            .await?;
            let store = embedded.s3_store(
                &config.bucket,
                &config.region,
                config.public_endpoint.clone(),
            );
            Ok(Prepared {
                state: AppState::new(Arc::new(store), settings),
                embedded: Some(embedded),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_panic_becomes_an_internal_json_error_without_details() {
        let res = panic_response(Box::new("secret state at line 42".to_owned()));
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let body: s3_direct_protocol::wire::ErrorBody = serde_json::from_slice(&body).unwrap();
        assert_eq!(body.error, s3_direct_protocol::ErrorCode::Internal);
        assert!(!body.message.contains("secret"), "{}", body.message);
    }
}
