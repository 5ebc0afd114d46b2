//! The s3-direct browser client: uploads big files straight from the browser to S3-compatible
//! storage in parallel parts, through presigned URLs handed out by the s3-direct signing server.
//!
//! - [`engine`]: the upload logic as plain Rust behind traits; runs and is tested natively.
//! - [`routes`]: the signing API's URLs; [`json`]: its bodies and the resume records as JSON.
//! - `web` (wasm32 only): the browser implementations of the engine's traits and the JS API
//!   (`Uploader`), exported with wasm-bindgen as the `s3-direct` npm package.
//! - `worker` (wasm32 with the `worker` feature): the checksum worker's own module, the hashers
//!   alone, so that a page loads hashing code only when it checksums parts.

pub mod engine;
pub mod json;
pub mod routes;
#[cfg(all(target_arch = "wasm32", not(feature = "worker")))]
mod web;
#[cfg(all(target_arch = "wasm32", feature = "worker"))]
mod worker;

pub use engine::Error;
