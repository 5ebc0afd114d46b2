//! [`ConfigError`]: a value or a combination of options the server refuses to start with.
//!
//! Its own module so that the modules whose options `ServeConfig` flattens in (the completion
//! events') can name it without importing the configuration they are part of.

/// A configuration the server refuses to start with: a value clap could not take, or options
/// that cannot work together. Each message names the value and says what to use instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{value:?} is not an http:// or https:// URL")]
    NotHttpUrl { value: String },
    #[error("{value:?} has no host")]
    NoHost { value: String },
    #[error("{value:?} is not an origin; use scheme://host[:port], like https://app.example.com")]
    NotOrigin { value: String },
    #[error(
        "{value:?} is not a valid bucket name; use 3 to 63 lowercase letters, digits, '.' or '-', \
         starting and ending with a letter or digit"
    )]
    Bucket { value: String },
    #[error(
        "{value:?} is not a usable key prefix; use something like \"uploads/\" (no leading '/', \
         no '.' or '..' segments)"
    )]
    KeyPrefix { value: String },
    #[error("{value:?} must start with '/', like \"/s3\"")]
    RoutePrefix { value: String },
    #[error("{value:?} is not a checksum setting; use auto, off, md5, crc32, crc32c or sha256")]
    Checksum { value: String },
    /// An age `ops::units::parse_age` refused.
    #[error(transparent)]
    Age(#[from] crate::ops::units::AgeError),
    #[error("{value:?} is not an interval; use 500ms, 30s or 5m")]
    Interval { value: String },
    /// A zero period or interval; `least` and `example` are in the option's own unit.
    #[error("{value:?} is no time at all; use {least} or more, like {example}")]
    NoTime {
        value: String,
        least: &'static str,
        example: &'static str,
    },
    #[error(
        "--notify-secret must be in the Standard Webhooks form whsec_<base64>; make one with \
         `echo whsec_$(openssl rand -base64 32)`"
    )]
    NotifySecretForm,
    #[error("--notify-secret is not whsec_ followed by standard base64")]
    NotifySecretBase64,
    #[error(
        "--notify-secret decodes to {bytes} bytes; use at least {least} (`echo \
         whsec_$(openssl rand -base64 32)`)"
    )]
    NotifySecretShort { bytes: usize, least: usize },
    #[error(
        "--notify-url needs --notify-secret (whsec_<base64>), so the application can tell \
         the server's events from anyone else's; make one with `echo whsec_$(openssl rand \
         -base64 32)`"
    )]
    NotifySecretMissing,
    #[error("--events-prefix {prefix:?} must be a folder ending with '/', like {example:?}")]
    EventsPrefixNotFolder {
        prefix: String,
        example: &'static str,
    },
    #[error(
        "--events-prefix {prefix:?} overlaps --key-prefix {key_prefix:?}: uploads could be \
         written among the pending events; use separate folders, like {example:?} and \
         \"uploads/\""
    )]
    EventsPrefixOverlaps {
        prefix: String,
        key_prefix: String,
        example: &'static str,
    },
}
