//! doctor's first probes, and how a failed request becomes a verdict: `HeadBucket` with the
//! signing credentials (**credentials**), the store's `Date` against this machine's clock
//! (**clock**), and [`unanswered`], which tells a TLS failure (a certificate browsers refuse too)
//! from a store that is merely unreachable.

use std::time::{Duration, SystemTime};

use super::judge::judge_clock;
use super::report::Status;
use crate::store::S3Store;

/// What the probes that send a browser's requests share.
pub(super) struct Probe<'a> {
    pub http: &'a reqwest::Client,
    pub store: &'a S3Store,
    /// The page's origin (`--origin`, else the first `--cors-origin`).
    pub origin: Option<&'a str>,
    /// Where the test objects go: under `.s3-direct-doctor/` in the key prefix.
    pub key_prefix: &'a str,
    /// `--url-lifetime`, as the server signs.
    pub url_lifetime: Duration,
}

/// `HeadBucket` with the signing credentials, its failure named by status.
pub(super) async fn head_bucket(store: &S3Store) -> (Status, String) {
    let bucket = &store.config().bucket;
    let endpoint = &store.config().endpoint;
    let err = match store.client().head_bucket().bucket(bucket).send().await {
        Ok(_) => {
            return (
                Status::Ok,
                format!("HeadBucket answered: bucket {bucket} is reachable with these credentials"),
            );
        }
        Err(e) => e,
    };
    let message = match err.raw_response().map(|r| r.status().as_u16()) {
        Some(404) => format!("bucket {bucket} does not exist at {endpoint}; check --bucket"),
        Some(403) => format!(
            "the store refused the credentials for bucket {bucket} (403): check \
             AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the profile), their rights on the \
             bucket, and --region"
        ),
        Some(301 | 400) => format!(
            "HeadBucket of {bucket} answered {}: usually --region is not the bucket's region, \
             or the store needs --path-style",
            err.raw_response().map_or(0, |r| r.status().as_u16())
        ),
        Some(status) => format!("HeadBucket of {bucket} answered {status}"),
        None => format!("cannot reach the store at {endpoint}: {}", causes(&err)),
    };
    (Status::Fail, message)
}

/// An error and its causes on one line, without repeating the same text.
fn causes(err: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![err.to_string()];
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// The rustls error somewhere in `err`'s causes: the TLS handshake failed (for instance, a
/// certificate this machine does not trust).
fn tls_failure<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // tokio-rustls wraps it in an io::Error (reqwest wraps that in another), whose `source`
        // skips the wrapped error: look inside instead.
        next = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

/// Why a request to `url` was not answered, as a verdict: a TLS failure (an untrusted or invalid
/// certificate) fails, since browsers refuse that store too; anything else gets `otherwise`.
pub(super) fn unanswered(
    err: &reqwest::Error,
    url: &str,
    what: &str,
    otherwise: Status,
) -> (Status, String) {
    // Not the query: a presigned URL's signature stays out of the report.
    let target = url.split('?').next().unwrap_or(url);
    match tls_failure(err) {
        Some(tls) => (
            Status::Fail,
            format!(
                "{what}: the TLS handshake with {target} failed ({tls}); browsers refuse such a \
                 certificate too unless they trust its CA — give the store a certificate from a CA \
                 browsers trust, or add its CA to this machine's trust store (or SSL_CERT_FILE)"
            ),
        ),
        None => (otherwise, format!("{what}: {}", causes(err))),
    }
}

/// The store's clock against ours, from the `Date` header of any answer.
pub(super) async fn clock(http: &reqwest::Client, endpoint: &str) -> (Status, String) {
    let before = SystemTime::now();
    let answer = http.head(endpoint).send().await;
    let after = SystemTime::now();
    let response = match answer {
        Ok(r) => r,
        Err(e) => {
            return unanswered(
                &e,
                endpoint,
                &format!("cannot reach {endpoint} to read its clock"),
                Status::Warn,
            );
        }
    };
    let date = response.headers().get("date").and_then(|v| v.to_str().ok());
    let Some(date) = date.and_then(|d| {
        aws_sdk_s3::primitives::DateTime::from_str(
            d,
            aws_sdk_s3::primitives::DateTimeFormat::HttpDate,
        )
        .ok()
    }) else {
        return (
            Status::Warn,
            "the store sent no Date header, so its clock cannot be compared".to_owned(),
        );
    };
    let middle = before + after.duration_since(before).unwrap_or_default() / 2;
    let ours = middle
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    // `Date` has whole seconds: half a second of the difference is rounding.
    let skew = date.as_secs_f64() + 0.5 - ours;
    judge_clock(if skew.abs() < 1.0 { 0.0 } else { skew })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_clock_check_goes_over_tls_and_fails_on_an_untrusted_certificate() {
        let server = crate::test_tls::start().await;
        // This machine's root certificates do not include the test's self-signed one.
        let http = crate::http_client().build().unwrap();
        let (status, message) = clock(&http, &server.url).await;
        assert_eq!(status, Status::Fail, "{message}");
        assert!(
            message.contains("TLS handshake") && message.contains("invalid peer certificate"),
            "{message}"
        );
        assert!(!message.contains("not checked"), "{message}");
        // The same listener with its certificate trusted: the handshake completes and the
        // store's clock is read from the answer.
        let trusting = crate::http_client()
            .add_root_certificate(reqwest::Certificate::from_der(&server.cert).unwrap())
            .build()
            .unwrap();
        let (status, message) = clock(&trusting, &server.url).await;
        assert_eq!(status, Status::Ok, "{message}");
    }
}
