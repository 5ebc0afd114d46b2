//! The s3-direct browser client.
