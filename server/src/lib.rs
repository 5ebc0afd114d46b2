//! The s3-direct signing service.
