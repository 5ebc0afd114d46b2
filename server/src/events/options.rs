//! The options of completion events (`--notify-*`, `--events-prefix`) and the checks that refuse,
//! at start, a configuration that cannot work.

use std::time::Duration;

use clap::Args;
use secrecy::ExposeSecret as _;

use super::{DEFAULT_MAX_IN_FLIGHT, DEFAULT_PREFIX, WebhookSecret};
use crate::config::ServeConfig;
use crate::config::error::ConfigError;

/// Completion events' command line options (flattened into [`ServeConfig`]).
#[derive(Debug, Clone, Args)]
pub struct NotifyArgs {
    /// Endpoint of your application told of every verified completion: a POST of the receipt's
    /// claims and the receipt, signed as Standard Webhooks sign (needs --notify-secret), retried
    /// until it answers 2xx. https://, or plain http:// on loopback or a private network.
    #[arg(long, global = true, env = "S3_DIRECT_NOTIFY_URL", value_parser = crate::config::parse_url)]
    pub notify_url: Option<String>,

    /// Secret that signs completion events, in the Standard Webhooks form whsec_<base64> (at
    /// least 24 bytes once decoded). Every replica must share it.
    #[arg(
        long,
        global = true,
        env = "S3_DIRECT_NOTIFY_SECRET",
        hide_env_values = true
    )]
    pub notify_secret: Option<crate::config::Secret>,

    /// Where pending completion events wait in the bucket until the application took them: a
    /// prefix ending with '/' outside --key-prefix, so uploads, the sweeper and purges never touch
    /// them.
    #[arg(long, global = true, env = "S3_DIRECT_EVENTS_PREFIX", default_value = DEFAULT_PREFIX, value_parser = crate::config::parse_key_prefix)]
    pub events_prefix: String,

    /// How long a new event belongs to the replica that wrote it before any replica's scan may
    /// send it again (1500ms, 30s); longer than the clock skew between replicas and the store.
    #[arg(long, global = true, env = "S3_DIRECT_NOTIFY_GRACE", default_value = "30s", value_parser = parse_interval)]
    pub notify_grace: Duration,

    /// Time between two scans of the pending events (500ms, 15s).
    #[arg(long, global = true, env = "S3_DIRECT_NOTIFY_SCAN_EVERY", default_value = "15s", value_parser = parse_interval)]
    pub notify_scan_every: Duration,

    /// Wait after the first failed scan attempt; it doubles with every attempt, up to an hour,
    /// with jitter (1s, 30s).
    #[arg(long, global = true, env = "S3_DIRECT_NOTIFY_BACKOFF", default_value = "30s", value_parser = parse_interval)]
    pub notify_backoff: Duration,

    /// Age after which an event that still fails is given up: counted as failed and moved to
    /// the events prefix's failed/ for an operator to replay (12h, 3d).
    #[arg(long, global = true, env = "S3_DIRECT_NOTIFY_GIVE_UP_AFTER", default_value = "3d", value_parser = crate::config::parse_period)]
    pub notify_give_up_after: Duration,

    /// How long one delivery may take before it counts as failed (15s).
    #[arg(long, global = true, env = "S3_DIRECT_NOTIFY_TIMEOUT", default_value = "15s", value_parser = parse_interval)]
    pub notify_timeout: Duration,

    /// Most deliveries in flight at once per replica; the others wait for the next scan.
    #[arg(
        long,
        global = true,
        env = "S3_DIRECT_NOTIFY_MAX_IN_FLIGHT",
        default_value_t = DEFAULT_MAX_IN_FLIGHT,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub notify_max_in_flight: u32,
}

/// A short interval: milliseconds (`500ms`) or an age (`30s`, `5m`), never zero.
fn parse_interval(s: &str) -> Result<Duration, ConfigError> {
    let interval = match s.trim().strip_suffix("ms") {
        Some(ms) => ms
            .parse()
            .map(Duration::from_millis)
            .map_err(|_| ConfigError::Interval {
                value: s.to_owned(),
            })?,
        None => crate::ops::units::parse_age(s).map_err(ConfigError::Age)?,
    };
    if interval.is_zero() {
        return Err(ConfigError::NoTime {
            value: s.to_owned(),
            least: "1ms",
            example: "30s",
        });
    }
    Ok(interval)
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
    pub fn from_serve(serve: &ServeConfig) -> Result<Option<Self>, ConfigError> {
        let config = &serve.notify;
        let Some(url) = &config.notify_url else {
            if config.notify_secret.is_some() {
                tracing::warn!("--notify-secret without --notify-url: no events are sent");
            }
            return Ok(None);
        };
        let secret = config
            .notify_secret
            .as_ref()
            .ok_or(ConfigError::NotifySecretMissing)?;
        check_prefix(&config.events_prefix, &serve.key_prefix)?;
        Ok(Some(Self {
            prefix: config.events_prefix.clone(),
            grace: config.notify_grace,
            scan_every: config.notify_scan_every,
            backoff: config.notify_backoff,
            give_up_after: config.notify_give_up_after,
            timeout: config.notify_timeout,
            max_in_flight: config.notify_max_in_flight,
            ..Self::new(url, WebhookSecret::parse(secret.expose_secret())?)
        }))
    }
}

/// An events prefix is non-empty, ends with `/` and shares no key with `key_prefix` (neither
/// starts with the other): uploads are issued under the key prefix, and the sweeper and purges
/// work there, so neither ever reaches a pending event.
pub fn check_prefix(prefix: &str, key_prefix: &str) -> Result<(), ConfigError> {
    if prefix.is_empty() || !prefix.ends_with('/') {
        return Err(ConfigError::EventsPrefixNotFolder {
            prefix: prefix.to_owned(),
            example: DEFAULT_PREFIX,
        });
    }
    if prefix.starts_with(key_prefix) || key_prefix.starts_with(prefix) {
        return Err(ConfigError::EventsPrefixOverlaps {
            prefix: prefix.to_owned(),
            key_prefix: key_prefix.to_owned(),
            example: DEFAULT_PREFIX,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cli;
    use clap::Parser;

    #[test]
    fn notify_options() {
        let d = Cli::try_parse_from(["s3-direct"]).unwrap().serve.notify;
        assert!(d.notify_url.is_none() && d.notify_secret.is_none());
        assert_eq!(d.events_prefix, ".s3-direct/events/");
        assert_eq!(d.notify_grace, Duration::from_secs(30));
        assert_eq!(d.notify_give_up_after, Duration::from_secs(3 * 86_400));
        let c = Cli::try_parse_from([
            "s3-direct",
            "--notify-url",
            "http://127.0.0.1:9/hook",
            "--notify-secret",
            "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0",
            "--notify-grace",
            "250ms",
            "--notify-scan-every",
            "2s",
        ])
        .unwrap()
        .serve
        .notify;
        assert_eq!(c.notify_grace, Duration::from_millis(250));
        assert_eq!(c.notify_scan_every, Duration::from_secs(2));
        assert!(
            !format!("{c:?}").contains("c2VjcmV0"),
            "the secret is redacted"
        );
        for bad in ["0ms", "0s", "1.5s", "ms"] {
            assert!(
                Cli::try_parse_from(["s3-direct", "--notify-grace", bad]).is_err(),
                "{bad}"
            );
        }
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
        assert_eq!(
            check_prefix("events", "uploads/").unwrap_err().to_string(),
            r#"--events-prefix "events" must be a folder ending with '/', like ".s3-direct/events/""#
        );
        assert_eq!(
            check_prefix("uploads/e/", "uploads/")
                .unwrap_err()
                .to_string(),
            r#"--events-prefix "uploads/e/" overlaps --key-prefix "uploads/": uploads could be written among the pending events; use separate folders, like ".s3-direct/events/" and "uploads/""#
        );
        assert_eq!(
            WebhookSecret::parse("whsec_c2hvcnQ=")
                .unwrap_err()
                .to_string(),
            "--notify-secret decodes to 5 bytes; use at least 24 (`echo whsec_$(openssl rand \
             -base64 32)`)"
        );
    }
}
