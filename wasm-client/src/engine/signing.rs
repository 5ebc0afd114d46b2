//! Presigned part URLs: how many to ask for at a time, and how long each can be trusted.
//!
//! One request per part costs hundreds of round trips per gigabyte; signing every part up front
//! lets URLs expire in the queue on slow links. The scheduler keeps a small stock of signed URLs
//! and asks for the next batch — about two rounds of parallel PUTs — when the stock falls below one
//! round, with at most one signing request in flight.
//!
//! A URL's deadline is measured on the client's own clock from when the answer arrived plus the
//! lifetime the URL states (`X-Amz-Expires`, else the batch's `expires`). Comparing the URL's
//! `X-Amz-Date` with the browser's clock instead would make every URL look expired (or immortal) on
//! a machine whose clock is off by minutes, which is common; the arrival time is skew-free and at
//! most one round trip late, which the re-sign margin covers.

use std::collections::BTreeMap;
use std::rc::Rc;

use s3_direct_protocol::limits::MAX_BATCH_PARTS;

/// A part URL, ready to PUT.
#[derive(Debug, Clone)]
pub(crate) struct SignedUrl {
    pub(crate) url: String,
    /// Headers of the batch the URL came from (shared: every part of a batch has the same).
    pub(crate) headers: Rc<BTreeMap<String, String>>,
    /// Clock time after which the store refuses the URL; `None` when the lifetime is unknown.
    pub(crate) deadline_ms: Option<f64>,
    /// The URL's lifetime in milliseconds, when known.
    pub(crate) lifetime_ms: Option<f64>,
}

impl SignedUrl {
    pub(crate) fn new(
        url: String,
        headers: Rc<BTreeMap<String, String>>,
        batch_expires_secs: Option<u64>,
        received_ms: f64,
    ) -> Self {
        let lifetime_ms = url_lifetime_secs(&url)
            .or(batch_expires_secs)
            .map(|s| s as f64 * 1000.0);
        Self {
            url,
            headers,
            deadline_ms: lifetime_ms.map(|l| received_ms + l),
            lifetime_ms,
        }
    }

    /// Whether a PUT started at `now` arrives while the URL is still good. The margin is capped
    /// at half the URL's lifetime, so short-lived URLs (seconds) are still usable at all.
    pub(crate) fn usable_at(&self, now: f64, margin_ms: f64) -> bool {
        match (self.deadline_ms, self.lifetime_ms) {
            (Some(deadline), Some(lifetime)) => now + margin_ms.min(lifetime / 2.0) < deadline,
            _ => true,
        }
    }

    /// Whether the URL is past its deadline at `now`.
    pub(crate) fn expired_at(&self, now: f64) -> bool {
        self.deadline_ms.is_some_and(|d| now >= d)
    }
}

/// The `X-Amz-Expires` query parameter of a SigV4 presigned URL, in seconds.
pub(crate) fn url_lifetime_secs(url: &str) -> Option<u64> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.eq_ignore_ascii_case("X-Amz-Expires")
            .then(|| value.parse().ok())
            .flatten()
    })
}

/// How many part numbers to ask for when `remaining` parts still lack a URL.
pub(crate) fn batch_size(concurrency: usize, remaining: usize) -> usize {
    concurrency
        .saturating_mul(2)
        .clamp(1, MAX_BATCH_PARTS)
        .min(remaining)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_two_rounds_capped_by_the_api_limit_and_what_is_left() {
        assert_eq!(batch_size(4, 40), 8);
        assert_eq!(batch_size(4, 3), 3);
        assert_eq!(batch_size(1, 10), 2);
        assert_eq!(batch_size(600, 10_000), MAX_BATCH_PARTS);
    }

    #[test]
    fn the_lifetime_comes_from_the_url_before_the_batch() {
        let url = "https://s.test/b/k?partNumber=1&X-Amz-Date=20261121T000000Z&X-Amz-Expires=300\
                   &X-Amz-Signature=abc";
        assert_eq!(url_lifetime_secs(url), Some(300));
        assert_eq!(
            url_lifetime_secs("https://s.test/b/k?x-amz-expires=5#f"),
            Some(5)
        );
        assert_eq!(url_lifetime_secs("https://s.test/b/k?partNumber=1"), None);
        let u = SignedUrl::new(url.into(), Rc::default(), Some(900), 1000.0);
        assert_eq!(u.deadline_ms, Some(301_000.0));
        let u = SignedUrl::new("https://s.test/k".into(), Rc::default(), Some(900), 1000.0);
        assert_eq!(u.deadline_ms, Some(901_000.0));
        let u = SignedUrl::new("https://s.test/k".into(), Rc::default(), None, 1000.0);
        assert!(u.usable_at(1e15, 60_000.0) && !u.expired_at(1e15));
    }

    #[test]
    fn the_resign_margin_is_at_most_half_the_lifetime() {
        let u = SignedUrl::new(
            "https://s.test/k?X-Amz-Expires=5".into(),
            Rc::default(),
            None,
            0.0,
        );
        assert!(u.usable_at(2_000.0, 60_000.0));
        assert!(!u.usable_at(2_500.0, 60_000.0));
        let u = SignedUrl::new(
            "https://s.test/k?X-Amz-Expires=900".into(),
            Rc::default(),
            None,
            0.0,
        );
        assert!(u.usable_at(839_000.0, 60_000.0));
        assert!(!u.usable_at(840_000.0, 60_000.0));
        assert!(!u.expired_at(899_999.0) && u.expired_at(900_000.0));
    }
}
