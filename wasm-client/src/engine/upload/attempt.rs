//! One PUT attempt: the part (or the whole small file) sent through the [`PartSink`] with its
//! headers, raced against the stall watchdog, which re-reads the clock and the [`PartWatch`]'s
//! deadline after every timer; and the error a part's last failed attempt ends the upload with.

use std::collections::BTreeMap;
use std::ops::Range;
use std::pin::pin;
use std::rc::Rc;

use futures::future::{self, Either};

use super::Engine;
use crate::engine::error::{Error, PutError};
use crate::engine::ports::{PartPut, PartSink, Signer};
use crate::engine::progress::PartProgress;
use crate::engine::retry::{Attempts, NextStep, classify};
use crate::engine::signing::SignedUrl;
use crate::engine::stall::PartWatch;

/// How one part PUT ended.
pub(super) enum PutOutcome {
    Stored(Option<String>),
    Failed(PutError),
    /// No bytes moved for this many milliseconds.
    Stalled(u64),
}

pub(super) struct PutDone {
    pub(super) part: u32,
    pub(super) url: SignedUrl,
    /// Bytes the attempt sent.
    pub(super) bytes: u64,
    pub(super) outcome: PutOutcome,
}

/// What follows a failed attempt, by the retry policy.
pub(super) enum Retry {
    /// The device is offline, which is not the part's fault: send again with the same URL once
    /// back online, without counting the failure.
    Offline,
    /// Out of retries or re-signs, or not worth one: the upload fails.
    GiveUp,
    /// Ask for a fresh URL and send again at once.
    Resign,
    /// Send again after `delay_ms`, with the same URL unless it has expired.
    Wait { delay_ms: f64, keep_url: bool },
}

impl<S: Signer, P: PartSink> Engine<S, P> {
    /// Judges a failed attempt that sent `bytes` through `url` (`failure` is `None` for a
    /// stall), counting it in `attempts`.
    pub(super) fn after_failure(
        &self,
        attempts: &mut Attempts,
        failure: Option<&PutError>,
        bytes: u64,
        url: &SignedUrl,
    ) -> Retry {
        attempts.sent(bytes);
        if !self.network.is_online() {
            return Retry::Offline;
        }
        let expired = url.expired_at(self.clock.now_ms());
        let class = classify(failure, expired);
        let retry_after = failure.and_then(PutError::retry_after_ms);
        let retry = &self.options.retry;
        match attempts.next_step(class, retry, &*self.random, retry_after) {
            NextStep::GiveUp => Retry::GiveUp,
            NextStep::Resign => Retry::Resign,
            NextStep::Wait(delay_ms) => Retry::Wait {
                delay_ms,
                keep_url: !expired,
            },
        }
    }

    /// A stall watch for a PUT of `len` bytes starting now.
    pub(super) fn watch(&self, len: u64) -> Rc<PartWatch> {
        self.stall
            .watch(self.options.stall_timeout, len, self.clock.now_ms())
    }

    /// One PUT of `part`, abandoned when `watch` finds it stalled.
    pub(super) async fn put(
        &self,
        part: u32,
        url: SignedUrl,
        range: Range<u64>,
        progress: PartProgress,
        watch: Rc<PartWatch>,
    ) -> PutDone {
        let outcome = {
            let put = PartPut {
                part,
                url: &url.url,
                headers: &url.headers,
                range,
            };
            let send = pin!(self.sink.put_part(put, progress));
            let watchdog = pin!(self.watchdog(&watch));
            match future::select(send, watchdog).await {
                Either::Left((Ok(etag), _)) => {
                    watch.answered(self.clock.now_ms());
                    PutOutcome::Stored(etag)
                }
                Either::Left((Err(e), _)) => PutOutcome::Failed(e),
                Either::Right((idle_ms, _)) => PutOutcome::Stalled(idle_ms),
            }
        };
        PutDone {
            part,
            url,
            bytes: watch.sent(),
            outcome,
        }
    }

    /// Resolves, with how long the part was silent, once `watch` finds it stalled; never when
    /// stall detection is off. Re-reads the clock and the deadline after every timer: a timer
    /// may fire late (the machine slept, which still detects the stall), and the deadline moves
    /// with the part's and the link's progress.
    pub(super) async fn watchdog(&self, watch: &PartWatch) -> u64 {
        loop {
            let now = self.clock.now_ms();
            if watch.is_stalled(now) {
                watch.gave_up(now);
                return (now - watch.last_ms()).max(0.0).round() as u64;
            }
            let Some(look) = watch.next_look(now) else {
                return future::pending().await;
            };
            self.clock.sleep(look - now).await;
        }
    }
}

/// The error that ends the upload because of `part`; `stalled_ms`: how long its last attempt
/// was silent, when it stalled.
pub(super) fn part_error(
    part: u32,
    parts: u32,
    failure: Option<PutError>,
    attempts: u32,
    stalled_ms: u64,
) -> Error {
    match failure {
        Some(PutError::Status { status, body, .. }) => Error::PartStatus {
            part,
            parts,
            status,
            body,
            attempts,
        },
        Some(PutError::Network(message)) => Error::PartNetwork {
            part,
            parts,
            message,
            attempts,
        },
        Some(PutError::Unreadable(message)) => Error::FileUnreadable {
            part: part.max(1),
            message,
        },
        None => Error::PartStalled {
            part,
            parts,
            stall_ms: stalled_ms,
            attempts,
        },
    }
}

/// The headers of one part's PUT: the batch's, the part's own on top (its signed checksum or
/// length), and `Content-MD5` when the part has an MD5 the server did not sign. S3 checks an
/// unsigned `Content-MD5` on a presigned PUT all the same (only `x-amz-*` headers must be
/// signed), so a server that does not sign checksums still gets corrupted bodies refused.
pub(super) fn part_headers(
    batch: &Rc<BTreeMap<String, String>>,
    own: Option<BTreeMap<String, String>>,
    sum: Option<&String>,
) -> Rc<BTreeMap<String, String>> {
    let md5 = sum.and_then(|s| s.strip_prefix("md5:"));
    let has_md5 =
        |h: &BTreeMap<String, String>| h.keys().any(|k| k.eq_ignore_ascii_case("content-md5"));
    if own.is_none() && (md5.is_none() || has_md5(batch)) {
        return batch.clone();
    }
    let mut all = (**batch).clone();
    all.extend(own.unwrap_or_default());
    if let Some(md5) = md5
        && !has_md5(&all)
    {
        all.insert("content-md5".to_owned(), md5.to_owned());
    }
    Rc::new(all)
}
