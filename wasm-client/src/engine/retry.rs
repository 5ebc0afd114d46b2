//! How long to wait before trying again, and how often to try.
//!
//! Exponential backoff with jitter: the n-th consecutive failure waits a random time between half
//! and all of `base × 2^(n−1)`, capped at `max`, so parts that failed together (a dropped
//! connection fails every PUT at once) do not come back together. A `Retry-After` the store sent
//! is a floor. The count restarts when a part makes progress — sends more of its bytes than any
//! earlier attempt did — so a flaky link that moves the upload forward never exhausts it, while a
//! part refused again and again after the same bytes does.

use std::cell::Cell;
use std::fmt;

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

    pub(crate) fn validate(&self) -> Result<(), String> {
        let ok = |v: f64| v.is_finite() && v >= 0.0;
        if !ok(self.base_delay_ms) || !ok(self.max_delay_ms) {
            return Err(format!(
                "retry delays {} ms and {} ms must be numbers of milliseconds >= 0",
                self.base_delay_ms, self.max_delay_ms
            ));
        }
        Ok(())
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
    fn xorshift_stays_in_range() {
        let r = XorShift::new(42);
        for _ in 0..1000 {
            let x = r.next();
            assert!((0.0..1.0).contains(&x), "{x}");
        }
    }
}
