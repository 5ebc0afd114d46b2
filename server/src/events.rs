//! Completion events: after a verified completion the server tells the application, at least
//! once, with a POST signed the way the Standard Webhooks specification signs.
//!
//! The body is `{"type":"upload.completed","timestamp":RFC 3339,"data":{…receipt claims…,
//! "receipt":"<compact JWS>"}}`; the headers are `webhook-id` (stable per upload: every retry and
//! every replica sends the same one, so the application drops duplicates by it),
//! `webhook-timestamp` (Unix seconds of the attempt) and `webhook-signature` (`v1,` and the base64
//! HMAC-SHA256 of `{id}.{timestamp}.{body}` keyed by the decoded `whsec_` secret).
//!
//! The server keeps no local state, so the event is written into the store (under
//! `--events-prefix`, outside `--key-prefix`) before the completion is answered, and deleted once
//! the application answered 2xx. [`completed`] is the one call a completion route makes; the
//! [`Notifier`] (`events/deliver.rs`) tries each new event once at once and every replica's scan
//! delivers what is left (ARCHITECTURE.md, "Invariants").

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;

use crate::Error;
use crate::config::error::ConfigError;
use crate::receipt::ReceiptClaims;

mod deliver;
mod options;

pub use deliver::Notifier;
pub use options::{MAX_BACKOFF, NotifyArgs, NotifyConfig, check_prefix};

/// Where pending events wait unless `--events-prefix` says otherwise.
pub const DEFAULT_PREFIX: &str = ".s3-direct/events/";
/// Deliveries in flight at once per replica unless `--notify-max-in-flight` says otherwise.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 16;
/// The `type` of the one event the server sends.
pub const EVENT_TYPE: &str = "upload.completed";
/// The Standard Webhooks prefix of a symmetric secret.
const SECRET_PREFIX: &str = "whsec_";
/// The specification's lower bound on a symmetric secret.
const MIN_SECRET_BYTES: usize = 24;

/// The HMAC key of a `whsec_<base64>` secret. Its `Debug` never shows it.
#[derive(Clone)]
pub struct WebhookSecret(Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

impl WebhookSecret {
    /// Decodes a secret in the Standard Webhooks form `whsec_<base64>`.
    pub fn parse(secret: &str) -> Result<Self, ConfigError> {
        let encoded = secret
            .strip_prefix(SECRET_PREFIX)
            .ok_or(ConfigError::NotifySecretForm)?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| ConfigError::NotifySecretBase64)?;
        if key.len() < MIN_SECRET_BYTES {
            return Err(ConfigError::NotifySecretShort {
                bytes: key.len(),
                least: MIN_SECRET_BYTES,
            });
        }
        Ok(Self(key))
    }

    /// The `webhook-signature` header of message `id` sent at `timestamp` with `body`.
    pub fn signature(&self, id: &str, timestamp: u64, body: &str) -> String {
        use aws_lc_rs::hmac;
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(id.as_bytes());
        ctx.update(format!(".{timestamp}.").as_bytes());
        ctx.update(body.as_bytes());
        format!("v1,{}", STANDARD.encode(ctx.sign().as_ref()))
    }
}

/// The `webhook-id` of the completion of `upload_id` (the store's id) of `key` in `bucket`: the
/// same on every retry and every replica, with no `.` (the signed content is `.`-delimited).
pub fn webhook_id(bucket: &str, key: &str, upload_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [bucket, key, upload_id] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    let digest = h.finalize();
    format!("upload_{}", hex::encode(&digest[..16]))
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    timestamp: String,
    data: Data<'a>,
}

#[derive(Serialize)]
struct Data<'a> {
    #[serde(flatten)]
    claims: &'a ReceiptClaims,
    receipt: &'a str,
}

/// The JSON body of the event for `claims` and their signed `receipt`; its `timestamp` is the
/// receipt's `iat`, when the completion was verified.
pub fn event_body(claims: &ReceiptClaims, receipt: &str) -> String {
    let at = aws_sdk_s3::primitives::DateTime::from_secs(i64::try_from(claims.iat).unwrap_or(0));
    let body = Body {
        kind: EVENT_TYPE,
        timestamp: at
            .fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime)
            // Formatting fails only for dates past year 9999.
            .unwrap_or_default(),
        data: Data { claims, receipt },
    };
    // Serializing plain strings and numbers cannot fail.
    serde_json::to_string(&body).unwrap_or_default()
}

/// Tells the application about a verified completion, when `--notify-url` is set: the event is
/// written to the store before this returns (so the caller answers only once it is safe), then
/// delivered in the background. Every completion route calls it after signing its receipt; a
/// retried completion calls it again, which rewrites the same event (same `webhook-id`).
pub async fn completed(
    notifier: Option<&Arc<Notifier>>,
    claims: &ReceiptClaims,
    receipt: &str,
) -> Result<(), Error> {
    let Some(notifier) = notifier else {
        return Ok(());
    };
    let id = webhook_id(&claims.bucket, &claims.key, &claims.upload_id);
    notifier
        .enqueue(id, event_body(claims, receipt))
        .await
        .map_err(Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_specification_s_example() {
        // The example of the Standard Webhooks reference libraries' tests.
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            secret.signature("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_must_be_whsec_base64_of_24_bytes_or_more() {
        assert!(WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(WebhookSecret::parse("whsec_not base64!").is_err());
        assert!(WebhookSecret::parse("whsec_c2hvcnQ=").is_err());
        let s = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert!(!format!("{s:?}").contains("MfKQ"));
    }

    #[test]
    fn the_webhook_id_is_stable_per_upload_and_has_no_dot() {
        let a = webhook_id("b", "uploads/x/a.bin", "id.1");
        assert_eq!(a, webhook_id("b", "uploads/x/a.bin", "id.1"));
        assert_ne!(a, webhook_id("b", "uploads/x/a.bin", "id.2"));
        assert!(
            a.starts_with("upload_") && !a.contains('.') && a.len() == 39,
            "{a}"
        );
    }
}
