//! A per-caller token bucket: `burst` requests at once, refilled at `per_minute`.
//!
//! Buckets live in this process's memory, so with several replicas behind a load balancer each
//! replica limits on its own (a caller gets up to replicas x the limit). That bounds abuse of one
//! replica's signing capacity; a global limit belongs in the load balancer.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most buckets kept; beyond it, full (idle) buckets are dropped.
const MAX_BUCKETS: usize = 100_000;

/// The limiter. `per_minute == 0` disables it.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    burst: u32,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `burst` requests at once, then `per_minute` on average.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            per_minute,
            burst: burst.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request for `caller` at `now`; `Err(wait)` when it must wait that long.
    pub fn check(&self, caller: &str, now: Instant) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let rate = f64::from(self.per_minute) / 60.0;
        let burst = f64::from(self.burst);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(caller) {
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
            });
        }
        let b = buckets.entry(caller.to_owned()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let refill = now.saturating_duration_since(b.at).as_secs_f64() * rate;
        b.tokens = (b.tokens + refill).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_refill_rate() {
        let l = RateLimiter::new(60, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.check("a", t0).is_ok());
        }
        let wait = l.check("a", t0).unwrap_err();
        assert!(
            wait > Duration::from_millis(900) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        // Another caller has its own bucket.
        assert!(l.check("b", t0).is_ok());
        // One token per second comes back.
        assert!(l.check("a", t0 + Duration::from_secs(1)).is_ok());
        assert!(l.check("a", t0 + Duration::from_secs(1)).is_err());
        assert!(l.check("a", t0 + Duration::from_secs(100)).is_ok());
    }

    #[test]
    fn zero_disables_it() {
        let l = RateLimiter::new(0, 1);
        let t0 = Instant::now();
        for _ in 0..100 {
            assert!(l.check("a", t0).is_ok());
        }
    }
}
