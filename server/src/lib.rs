//! The s3-direct signing service: creates S3 multipart uploads and hands browsers presigned URLs
//! so that file bytes go straight to the store, never through this server.
//!
//! The crate is a library with a thin binary (`s3-direct`), in the style of mini-redis:
//!
//! - [`app`] builds the whole HTTP router from an [`AppState`]; tests drive it with
//!   `tower::ServiceExt::oneshot`, no socket needed. [`serve`] runs it on a listener until a
//!   shutdown future resolves (`app.rs`).
//! - [`AppState`] and its [`Settings`] are what every handler shares (`state.rs`).
//! - [`prepare`] turns a [`ServeConfig`] into an [`AppState`], starting the
//!   [embedded store](embedded) when no endpoint is configured (`startup.rs`).
//! - [`http_client`] is the TLS-ready HTTPS client builder every outgoing call uses (`tls.rs`).
//!
//! The store sits behind the [`Store`] trait ([`S3Store`] for real stores, [`FakeStore`] for tests).

mod answers;
mod app;
pub mod auth;
pub mod client_address;
pub mod config;
pub mod embedded;
pub mod error;
pub mod events;
pub mod guard;
pub mod keys;
pub mod media_type;
pub mod metrics;
pub mod ops;
pub mod policy;
pub mod ratelimit;
pub mod receipt;
pub mod routes;
mod startup;
mod state;
pub mod store;
mod tls;
pub mod token;
pub mod upload_id;
pub mod uploads;
pub mod validate;
pub mod whole_file;

pub use app::{MAX_REQUEST_ID_LEN, app, serve, usable_request_id};
pub use auth::{Authorizer, JwtAuth, OpenAuth, Principal, WebhookAuth};
pub use config::{Cli, Command, ServeConfig};
pub use embedded::{EmbeddedCredentials, EmbeddedStore};
pub use error::Error;
pub use keys::KeyPolicy;
pub use metrics::Metrics;
pub use ratelimit::RateLimiter;
pub use receipt::{ReceiptClaims, ReceiptSigner};
pub use startup::{Prepared, StartError, prepare, security_from_config};
pub use state::{AppState, EnableEventsError, Settings};
pub use store::{
    ChecksumChoice, ChecksumSetting, FakeStore, FakeVerification, S3Store, S3StoreConfig, Store,
    StoreError,
};
#[cfg(test)]
pub(crate) use tls::test_tls;
pub use tls::{http_client, install_tls_provider};
pub use token::UploadSecrets;
