//! The s3-direct browser client: uploads big files straight from the browser to S3-compatible
//! storage in parallel parts, through presigned URLs handed out by the s3-direct signing server.
//!
//! - [`engine`]: the upload logic as plain Rust behind traits; runs and is tested natively.
//! - [`routes`]: the signing API's URLs.

pub mod engine;
pub mod routes;

pub use engine::Error;
