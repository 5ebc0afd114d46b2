//! doctor's verdicts on the deployment: the store's clock, the signing credentials' lifetime, the
//! lifecycle rule, and a damaged part the store must refuse. Pure functions of what the store
//! answered, each a [`Status`] with a one-line reason naming the fix; the verdicts on what a page
//! can read of the store's answers are in `browser.rs`.

use std::time::Duration;

use s3_direct_protocol::wire::ChecksumAlgorithm;
use serde_json::Value;

use super::report::Status;
use crate::ops::error::OpsError;
use crate::ops::setup;
use crate::ops::units::format_age;
use crate::store::integrity::s3_error_code;

/// Clock skew S3 tolerates before it refuses signed requests (`RequestTimeTooSkewed`).
const MAX_SKEW: Duration = Duration::from_secs(15 * 60);
/// Skew worth a warning: URLs expire that much early or late.
const WARN_SKEW: Duration = Duration::from_secs(30);

/// The verdict on the store's clock: `skew_secs` is the store's time minus ours.
pub fn judge_clock(skew_secs: f64) -> (Status, String) {
    let off = Duration::from_secs_f64(skew_secs.abs());
    let direction = if skew_secs >= 0.0 {
        "ahead of"
    } else {
        "behind"
    };
    let what = format!(
        "the store's clock is {} s {direction} this machine's",
        skew_secs.abs().round()
    );
    if off >= MAX_SKEW {
        (
            Status::Fail,
            format!(
                "{what}; S3 refuses signed requests more than 15 minutes off: synchronise the \
                 clocks (NTP)"
            ),
        )
    } else if off >= WARN_SKEW {
        (
            Status::Warn,
            format!(
                "{what}; presigned URLs expire that much early or late: synchronise the clocks"
            ),
        )
    } else {
        (Status::Ok, what)
    }
}

/// The verdict on the signing credentials' remaining life against the URL lifetime.
pub fn judge_credential_lifetime(
    remaining: Option<Duration>,
    url_lifetime: Duration,
) -> (Status, String) {
    match remaining {
        None => (
            Status::Ok,
            format!(
                "the signing credentials do not expire; URLs live {}",
                format_age(url_lifetime)
            ),
        ),
        Some(left) if left.is_zero() => (
            Status::Fail,
            "the signing credentials have expired and could not be refreshed".to_owned(),
        ),
        Some(left) if left < url_lifetime => (
            Status::Warn,
            format!(
                "the signing credentials expire in {}, before the --url-lifetime of {}: URLs \
                 are cut to the credentials' life (they are refreshed 5 minutes before expiry), \
                 so clients re-sign more often; lower --url-lifetime or use longer-lived \
                 credentials",
                format_age(left),
                format_age(url_lifetime)
            ),
        ),
        Some(left) => (
            Status::Ok,
            format!(
                "the signing credentials live {} more, longer than the URL lifetime of {}",
                format_age(left),
                format_age(url_lifetime)
            ),
        ),
    }
}

/// The verdict on the bucket's lifecycle rules for `key_prefix`.
pub fn judge_lifecycle(rules: &Result<Vec<Value>, OpsError>, key_prefix: &str) -> (Status, String) {
    match rules {
        Ok(rules) => match setup::covering_abort_rule(rules, key_prefix) {
            Some((id, days)) => (
                Status::Ok,
                format!(
                    "rule {id:?} aborts incomplete uploads under {key_prefix:?} after {days} \
                     day(s)"
                ),
            ),
            None => (
                Status::Warn,
                format!(
                    "no enabled AbortIncompleteMultipartUpload rule covers {key_prefix:?}: parts \
                     of uploads nobody completes stay stored (and billed) until purged"
                ),
            ),
        },
        Err(OpsError::Unsupported { operation }) => (
            Status::Warn,
            format!(
                "the store does not implement {operation}: run `s3-direct serve \
                 --sweep-older-than 24h` or `s3-direct uploads purge --older-than 24h` on a \
                 schedule instead"
            ),
        ),
        Err(e) => (
            Status::Warn,
            format!("cannot read the lifecycle rules: {e}"),
        ),
    }
}

/// The verdict on the PUT of a part whose body no longer matches the checksum signed into it.
pub fn judge_checksum_check(
    c: ChecksumAlgorithm,
    status: u16,
    body: &str,
    stored: &str,
) -> (Status, String) {
    let code = s3_error_code(body).unwrap_or("");
    if status == 400
        && matches!(
            code,
            "BadDigest" | "InvalidDigest" | "XAmzContentChecksumMismatch"
        )
    {
        return (
            Status::Ok,
            format!("{stored}; with its {c} checksum, and a damaged copy was refused ({code})"),
        );
    }
    if (200..300).contains(&status) {
        return (
            Status::Warn,
            format!(
                "{stored}, but a damaged copy with the same {c} checksum was stored too: this \
                 store does not verify {} — use --checksum md5, which every S3-compatible store \
                 checks",
                c.header()
            ),
        );
    }
    (
        Status::Warn,
        format!(
            "{stored}; a damaged copy with the same {c} checksum got status {status} ({}) \
             instead of BadDigest, so whether the store verifies {c} is unknown",
            if code.is_empty() {
                "no S3 error code"
            } else {
                code
            }
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::setup::Wanted;

    const ORIGIN: &str = "https://app.example.com";

    #[test]
    fn a_damaged_copy_of_a_checksummed_part_must_be_refused() {
        let c = ChecksumAlgorithm::Crc32c;
        for code in ["BadDigest", "InvalidDigest"] {
            let body = format!("<Error><Code>{code}</Code></Error>");
            let (status, message) = judge_checksum_check(c, 400, &body, "stored");
            assert_eq!(status, Status::Ok, "{message}");
            assert!(message.ends_with(&format!("refused ({code})")), "{message}");
        }
        let (status, message) = judge_checksum_check(c, 200, "", "stored");
        assert_eq!(status, Status::Warn);
        assert!(
            message.contains("does not verify x-amz-checksum-crc32c — use --checksum md5"),
            "{message}"
        );
        let (status, message) =
            judge_checksum_check(c, 403, "<Error><Code>AccessDenied</Code></Error>", "stored");
        assert_eq!(status, Status::Warn);
        assert!(message.contains("status 403 (AccessDenied)"), "{message}");
    }

    #[test]
    fn clock_skew_thresholds() {
        assert_eq!(judge_clock(0.0).0, Status::Ok);
        assert_eq!(judge_clock(-29.0).0, Status::Ok);
        let (s, m) = judge_clock(-45.0);
        assert_eq!(s, Status::Warn);
        assert!(m.contains("45 s behind"), "{m}");
        let (s, m) = judge_clock(16.0 * 60.0);
        assert_eq!(s, Status::Fail);
        assert!(m.contains("960 s ahead of") && m.contains("NTP"), "{m}");
    }

    #[test]
    fn credentials_must_outlive_the_urls() {
        let url = Duration::from_secs(900);
        assert_eq!(judge_credential_lifetime(None, url).0, Status::Ok);
        assert_eq!(
            judge_credential_lifetime(Some(Duration::from_secs(3600)), url).0,
            Status::Ok
        );
        let (s, m) = judge_credential_lifetime(Some(Duration::from_secs(600)), url);
        assert_eq!(s, Status::Warn);
        assert!(
            m.contains("expire in 10m, before the --url-lifetime of 15m"),
            "{m}"
        );
        assert_eq!(
            judge_credential_lifetime(Some(Duration::ZERO), url).0,
            Status::Fail
        );
    }

    #[test]
    fn the_lifecycle_rule_is_looked_for_and_its_absence_explained() {
        let w = Wanted {
            origins: vec![ORIGIN.into()],
            abort_after_days: 2,
            key_prefix: "uploads/".into(),
        };
        let (s, m) = judge_lifecycle(&Ok(vec![w.lifecycle_rule()]), "uploads/");
        assert_eq!(s, Status::Ok);
        assert!(m.contains("after 2 day(s)"), "{m}");
        let (s, m) = judge_lifecycle(&Ok(vec![]), "uploads/");
        assert_eq!(s, Status::Warn);
        assert!(
            m.contains("no enabled AbortIncompleteMultipartUpload rule"),
            "{m}"
        );
        let (s, m) = judge_lifecycle(
            &Err(OpsError::Unsupported {
                operation: "GetBucketLifecycleConfiguration",
            }),
            "uploads/",
        );
        assert_eq!(s, Status::Warn);
        assert!(m.contains("--sweep-older-than"), "{m}");
    }
}
