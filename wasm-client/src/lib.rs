//! The s3-direct browser client: uploads big files straight from the browser to S3-compatible
//! storage in parallel parts, through presigned URLs handed out by the s3-direct signing server.
//!
//! - [`engine`]: the upload logic as plain Rust behind traits; runs and is tested natively.
//! - [`routes`]: the signing API's URLs.
//! - `web` (wasm32 only): the browser implementations of the engine's traits and the JS API
//!   (`Uploader`), exported with wasm-bindgen as the `s3-direct` npm package.

pub mod engine;
pub mod routes;
#[cfg(target_arch = "wasm32")]
mod web;

pub use engine::Error;
