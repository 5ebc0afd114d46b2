//! Wire types and S3 multipart limits shared by the s3-direct signing server and its browser client.
//!
//! This crate does no I/O. It holds the four things both sides must agree on byte for byte:
//! the S3 limits and the API's body limits ([`limits`]), how a file is cut into parts ([`plan`]),
//! the signing API's route paths and query syntax ([`api`]), and its JSON bodies ([`wire`]), which
//! are a superset of Uppy Companion's S3 multipart protocol.

pub mod api;
pub mod limits;
pub mod plan;
pub mod wire;

pub use plan::{PartPlan, PlanError};
pub use wire::ErrorCode;
