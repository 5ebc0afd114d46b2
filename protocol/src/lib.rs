//! Wire types and S3 multipart limits shared by the s3-direct signing server and its browser client.
//!
//! This crate does no I/O. It holds the three things both sides must agree on byte for byte:
//! the S3 limits ([`limits`]), how a file is cut into parts ([`plan`]), and the JSON bodies of the
//! signing API ([`wire`]), which is a superset of Uppy Companion's S3 multipart protocol.

pub mod limits;
pub mod plan;
pub mod wire;

pub use plan::{PartPlan, PlanError};
pub use wire::ErrorCode;
