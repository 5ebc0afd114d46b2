//! How long to wait before trying again, and how often to try.
//!
//! Exponential backoff with jitter: the n-th consecutive failure waits a random time between half
//! and all of `base × 2^(n−1)`, capped at `max`, so parts that failed together (a dropped
//! connection fails every PUT at once) do not come back together. A `Retry-After` the store sent
//! is a floor. The count restarts when a part makes progress — sends more of its bytes than any
//! earlier attempt did — so a flaky link that moves the upload forward never exhausts it, while a
//! part refused again and again after the same bytes does.
//!
//! The bookkeeping is written once here for the three users: a part of a multipart upload and a
//! file's single PUT (`Attempts`: failures, re-signs and progress per part), and calls to the
//! signing server (`CallFailures`: failures in a row).

use std::cell::Cell;
use std::fmt;

use super::error::{Decimal, Error, FailureClass, PutError};

/// Retry settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Failed attempts of one part (or consecutive failed calls to the signing server) tolerated
    /// before the upload fails; 0 fails at the first error.
    pub retries: u32,
    /// Delay before the first retry, in milliseconds.
    pub base_delay_ms: f64,
    /// Longest delay between two attempts, in milliseconds (a `Retry-After` may be longer).
    pub max_delay_ms: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retries: 6,
            base_delay_ms: 1_000.0,
            max_delay_ms: 30_000.0,
        }
    }
}

/// A `Retry-After` longer than this is treated as this: an upload should not sit silent for
/// hours because of one header.
pub const MAX_RETRY_AFTER_MS: f64 = 5.0 * 60_000.0;

impl RetryPolicy {
    /// The wait after the `failures`-th consecutive failure (1-based), with `random` in `[0, 1)`.
    pub fn delay_ms(&self, failures: u32, random: f64, retry_after_ms: Option<f64>) -> f64 {
        let exp = failures.saturating_sub(1).min(30);
        let nominal = (self.base_delay_ms * f64::from(1u32 << exp)).min(self.max_delay_ms);
        let jittered = nominal / 2.0 + random.clamp(0.0, 1.0) * nominal / 2.0;
        match retry_after_ms {
            Some(after) => jittered.max(after.min(MAX_RETRY_AFTER_MS)),
            None => jittered,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        let ok = |v: f64| v.is_finite() && v >= 0.0;
        if !ok(self.base_delay_ms) || !ok(self.max_delay_ms) {
            return Err(Error::InvalidOptions(format!(
                "retry delays {} ms and {} ms must be numbers of milliseconds >= 0",
                Decimal(self.base_delay_ms),
                Decimal(self.max_delay_ms)
            )));
        }
        Ok(())
    }

    /// Counts one more failure in a row in `failures`: the wait before trying again, or `None`
    /// once more than [`retries`](Self::retries) failed. Draws from `random` only to wait.
    fn count_failure(
        &self,
        failures: &mut u32,
        random: &dyn Random,
        retry_after_ms: Option<f64>,
    ) -> Option<f64> {
        *failures += 1;
        (*failures <= self.retries).then(|| self.delay_ms(*failures, random.next(), retry_after_ms))
    }
}

/// Re-signs of one part in a row, without it making progress, before a refusal is taken as final:
/// a store that refuses fresh URLs too (clock skew beyond its tolerance, a revoked key) would
/// otherwise be asked forever.
pub const MAX_RESIGNS: u32 = 3;

/// How a failed PUT attempt is treated: `failure` is `None` for a stall, and `expired` says the
/// URL was past its lifetime by the engine's clock when the attempt ended.
pub(crate) fn classify(failure: Option<&PutError>, expired: bool) -> FailureClass {
    match failure {
        // A store that omits CORS headers on errors turns its expiry answer into a network
        // error; retry it, with a fresh URL (an expired one is not kept).
        None | Some(PutError::Network(_)) => FailureClass::Retryable,
        Some(PutError::Status { .. }) if expired => FailureClass::Expired,
        Some(e) => e.class(),
    }
}

/// What to do after a PUT attempt failed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum NextStep {
    /// Out of retries or re-signs, or not worth one: the upload fails.
    GiveUp,
    /// Ask for a fresh URL and send at once.
    Resign,
    /// Send again after this many milliseconds.
    Wait(f64),
}

/// What the retry policy remembers about a part (or a file's single PUT).
#[derive(Debug, Default)]
pub(crate) struct Attempts {
    /// PUTs started.
    pub(crate) tries: u32,
    /// Retryable failures since the part last made progress.
    failures: u32,
    /// Re-signs in a row since the part last made progress.
    resigns: u32,
    /// Most bytes any attempt sent.
    best: u64,
}

impl Attempts {
    /// Notes that a failed attempt sent `bytes`: more than any attempt before is progress, which
    /// restarts the counts of failures and re-signs.
    pub(crate) fn sent(&mut self, bytes: u64) {
        if bytes > self.best {
            self.best = bytes;
            self.failures = 0;
            self.resigns = 0;
        }
    }

    /// Counts a failure of `class` and says what comes next.
    pub(crate) fn next_step(
        &mut self,
        class: FailureClass,
        policy: &RetryPolicy,
        random: &dyn Random,
        retry_after_ms: Option<f64>,
    ) -> NextStep {
        match class {
            FailureClass::Expired => {
                self.resigns += 1;
                if self.resigns > MAX_RESIGNS {
                    NextStep::GiveUp
                } else {
                    NextStep::Resign
                }
            }
            FailureClass::Retryable => policy
                .count_failure(&mut self.failures, random, retry_after_ms)
                .map_or(NextStep::GiveUp, NextStep::Wait),
            FailureClass::Fatal => NextStep::GiveUp,
        }
    }
}

/// Failed calls to the signing server in a row.
#[derive(Debug, Default)]
pub(crate) struct CallFailures(u32);

impl CallFailures {
    /// Counts one more failure: the wait before calling again, or `None` when out of retries.
    pub(crate) fn next_delay(
        &mut self,
        policy: &RetryPolicy,
        random: &dyn Random,
        retry_after_ms: Option<f64>,
    ) -> Option<f64> {
        policy.count_failure(&mut self.0, random, retry_after_ms)
    }

    /// A call succeeded: the count starts over.
    pub(crate) fn reset(&mut self) {
        self.0 = 0;
    }
}

/// Numbers in `[0, 1)` for jitter. Tests inject a fixed sequence; the default is a small
/// xorshift generator, which is plenty for spreading retries.
pub trait Random {
    fn next(&self) -> f64;
}

/// xorshift64*, seeded by the caller (the engine seeds it from the clock).
pub struct XorShift(Cell<u64>);

impl fmt::Debug for XorShift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("XorShift")
    }
}

impl XorShift {
    pub fn new(seed: u64) -> Self {
        Self(Cell::new(seed | 1))
    }
}

impl Random for XorShift {
    fn next(&self) -> f64 {
        let mut x = self.0.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0.set(x);
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl<F: Fn() -> f64> Random for F {
    fn next(&self) -> f64 {
        self()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_with_jitter_and_stop_at_the_cap() {
        let p = RetryPolicy {
            retries: 5,
            base_delay_ms: 1000.0,
            max_delay_ms: 10_000.0,
        };
        assert_eq!(p.delay_ms(1, 0.0, None), 500.0);
        assert_eq!(p.delay_ms(1, 0.999_999, None).round(), 1000.0);
        assert_eq!(p.delay_ms(2, 0.5, None), 1500.0);
        assert_eq!(p.delay_ms(3, 0.0, None), 2000.0);
        assert_eq!(p.delay_ms(10, 1.0, None), 10_000.0);
        assert_eq!(p.delay_ms(u32::MAX, 0.0, None), 5_000.0);
    }

    #[test]
    fn retry_after_is_a_floor_with_a_ceiling() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay_ms(1, 0.0, Some(7_000.0)), 7_000.0);
        assert_eq!(p.delay_ms(1, 0.0, Some(10.0)), 500.0);
        assert_eq!(p.delay_ms(1, 0.0, Some(1e12)), MAX_RETRY_AFTER_MS);
    }

    #[test]
    fn progress_restarts_the_counts_and_resigns_are_bounded() {
        let p = RetryPolicy {
            retries: 2,
            ..RetryPolicy::default()
        };
        let zero = || 0.0;
        let mut a = Attempts::default();
        let step = |a: &mut Attempts, class| a.next_step(class, &p, &zero, None);
        assert_eq!(step(&mut a, FailureClass::Retryable), NextStep::Wait(500.0));
        assert_eq!(
            step(&mut a, FailureClass::Retryable),
            NextStep::Wait(1000.0)
        );
        assert_eq!(step(&mut a, FailureClass::Retryable), NextStep::GiveUp);
        a.sent(10);
        assert_eq!(step(&mut a, FailureClass::Retryable), NextStep::Wait(500.0));
        a.sent(10); // no further than before: no progress
        assert_eq!(
            step(&mut a, FailureClass::Retryable),
            NextStep::Wait(1000.0)
        );
        for _ in 0..MAX_RESIGNS {
            assert_eq!(step(&mut a, FailureClass::Expired), NextStep::Resign);
        }
        assert_eq!(step(&mut a, FailureClass::Expired), NextStep::GiveUp);
        assert_eq!(step(&mut a, FailureClass::Fatal), NextStep::GiveUp);
    }

    #[test]
    fn stalls_and_network_errors_are_retried_and_an_expired_url_is_resigned() {
        assert_eq!(classify(None, true), FailureClass::Retryable);
        let network = PutError::Network("reset".into());
        assert_eq!(classify(Some(&network), true), FailureClass::Retryable);
        let refused = PutError::status(400, "");
        assert_eq!(classify(Some(&refused), false), FailureClass::Fatal);
        assert_eq!(classify(Some(&refused), true), FailureClass::Expired);
        let unreadable = PutError::Unreadable("gone".into());
        assert_eq!(classify(Some(&unreadable), true), FailureClass::Fatal);
    }

    #[test]
    fn call_failures_wait_until_out_of_retries() {
        let p = RetryPolicy {
            retries: 1,
            ..RetryPolicy::default()
        };
        let mut f = CallFailures::default();
        assert_eq!(f.next_delay(&p, &|| 0.0, Some(7_000.0)), Some(7_000.0));
        assert_eq!(f.next_delay(&p, &|| 0.0, None), None);
        f.reset();
        assert_eq!(f.next_delay(&p, &|| 0.0, None), Some(500.0));
    }

    #[test]
    fn xorshift_stays_in_range() {
        let r = XorShift::new(42);
        for _ in 0..1000 {
            let x = r.next();
            assert!((0.0..1.0).contains(&x), "{x}");
        }
    }
}
