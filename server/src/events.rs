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

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;

use crate::config::ServeConfig;
use crate::receipt::ReceiptClaims;
use crate::{AppState, Error};

mod deliver;

pub use deliver::Notifier;

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
    pub fn parse(secret: &str) -> Result<Self, String> {
        let encoded = secret.strip_prefix(SECRET_PREFIX).ok_or(
            "--notify-secret must be in the Standard Webhooks form whsec_<base64>; make one with \
             `echo whsec_$(openssl rand -base64 32)`",
        )?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| "--notify-secret is not whsec_ followed by standard base64".to_owned())?;
        if key.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "--notify-secret decodes to {} bytes; use at least {MIN_SECRET_BYTES} (`echo \
                 whsec_$(openssl rand -base64 32)`)",
                key.len()
            ));
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

/// Where and how events are delivered: `--notify-*` and `--events-prefix`.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// The application's endpoint.
    pub url: String,
    pub secret: WebhookSecret,
    /// Where pending events wait in the bucket; ends with `/`, outside the key prefix.
    pub prefix: String,
    /// How long a new event belongs to the replica that wrote it (its first attempt).
    pub grace: Duration,
    /// Time between two scans of the pending events.
    pub scan_every: Duration,
    /// Wait after the first failed scan attempt; doubled per attempt up to [`MAX_BACKOFF`].
    pub backoff: Duration,
    /// Age after which a failing event is given up.
    pub give_up_after: Duration,
    /// Time one delivery may take.
    pub timeout: Duration,
    /// Deliveries in flight at once.
    pub max_in_flight: u32,
}

/// The longest wait between two attempts of one event.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

impl NotifyConfig {
    /// Events to `url` signed with `secret`, with the CLI's defaults for the rest.
    pub fn new(url: &str, secret: WebhookSecret) -> Self {
        Self {
            url: url.to_owned(),
            secret,
            prefix: DEFAULT_PREFIX.to_owned(),
            grace: Duration::from_secs(30),
            scan_every: Duration::from_secs(15),
            backoff: Duration::from_secs(30),
            give_up_after: Duration::from_secs(3 * 24 * 3600),
            timeout: Duration::from_secs(15),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }

    /// What `config` asks for: `None` without `--notify-url`. Refuses a URL without a secret and
    /// an events prefix that is empty, lacks its trailing `/` or overlaps `--key-prefix`.
    pub fn from_serve(config: &ServeConfig) -> Result<Option<Self>, String> {
        let Some(url) = &config.notify_url else {
            if config.notify_secret.is_some() {
                tracing::warn!("--notify-secret without --notify-url: no events are sent");
            }
            return Ok(None);
        };
        let secret = config.notify_secret.as_ref().ok_or(
            "--notify-url needs --notify-secret (whsec_<base64>), so the application can tell \
             the server's events from anyone else's; make one with `echo whsec_$(openssl rand \
             -base64 32)`",
        )?;
        check_prefix(&config.events_prefix, &config.key_prefix)?;
        Ok(Some(Self {
            prefix: config.events_prefix.clone(),
            grace: config.notify_grace,
            scan_every: config.notify_scan_every,
            backoff: config.notify_backoff,
            give_up_after: config.notify_give_up_after,
            timeout: config.notify_timeout,
            max_in_flight: config.notify_max_in_flight,
            ..Self::new(url, WebhookSecret::parse(&secret.0)?)
        }))
    }
}

/// An events prefix is non-empty, ends with `/` and shares no key with `key_prefix` (neither
/// starts with the other): uploads are issued under the key prefix, and the sweeper and purges
/// work there, so neither ever reaches a pending event.
pub fn check_prefix(prefix: &str, key_prefix: &str) -> Result<(), String> {
    if prefix.is_empty() || !prefix.ends_with('/') {
        return Err(format!(
            "--events-prefix {prefix:?} must be a folder ending with '/', like {DEFAULT_PREFIX:?}"
        ));
    }
    if prefix.starts_with(key_prefix) || key_prefix.starts_with(prefix) {
        return Err(format!(
            "--events-prefix {prefix:?} overlaps --key-prefix {key_prefix:?}: uploads could be \
             written among the pending events; use separate folders, like {DEFAULT_PREFIX:?} and \
             \"uploads/\""
        ));
    }
    Ok(())
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
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("upload_{hex}")
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
    state: &AppState,
    claims: &ReceiptClaims,
    receipt: &str,
) -> Result<(), Error> {
    let Some(notifier) = state.notifier() else {
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
    fn prefixes_must_be_folders_apart_from_the_key_prefix() {
        assert!(check_prefix(DEFAULT_PREFIX, "uploads/").is_ok());
        assert!(check_prefix("events/", "uploads/").is_ok());
        for (events, keys) in [
            ("", "uploads/"),
            ("events", "uploads/"),
            ("uploads/events/", "uploads/"),
            ("events/", "events/a/"),
            ("events/", ""),
            ("uploads/", "uploads/"),
        ] {
            assert!(check_prefix(events, keys).is_err(), "{events:?} {keys:?}");
        }
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
