//! The operator commands' one error type. The CLI (`cli.rs`) turns it into the message it prints,
//! with a hint where the embedded store or a store's missing feature explains it.

/// Failures of the operator commands.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The store answered `NotImplemented` to `operation`.
    #[error("the store does not implement {operation}")]
    Unsupported { operation: &'static str },

    /// The upload does not exist (only reported where the caller must know).
    #[error("upload {upload_id:?} of {key:?} does not exist")]
    NoSuchUpload { key: String, upload_id: String },

    /// Anything else the store answered, with its details.
    #[error("{operation} failed: {detail}")]
    Store {
        operation: &'static str,
        detail: String,
    },

    /// The command was asked to do something it refuses to do.
    #[error("{0}")]
    Refused(String),
}
