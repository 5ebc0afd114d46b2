//! The upload engine: plain Rust that decides what to request and when.
//!
//! It never touches the browser. The signing server, the store and time are reached through the
//! traits in [`ports`] — implemented with `XMLHttpRequest` and gloo-net in `crate::web`, and with
//! scripted fakes in the tests — so every policy here runs natively and deterministically under
//! `cargo test`.

pub mod error;
pub mod ports;
pub mod progress;
mod signing;
pub mod upload;

pub use error::{ApiCall, ApiError, Error, FailureClass, PutError};
pub use ports::{Clock, PartPut, PartSink, Signer};
pub use progress::{PartProgress, Progress, ProgressCallback};
pub use upload::{Engine, FileInfo, UploadOptions, UploadResult};
