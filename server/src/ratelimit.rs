//! Rate limits: a token bucket per key (`burst` requests at once, refilled at `per_minute`), and
//! the [`Gate`] that decides, per request, which bucket pays.
//!
//! Two limiters: one per caller (`--rate-limit`: per principal, or per client address when the
//! server is open), and one per client address for requests whose credentials are not known yet
//! (`--unauthenticated-rate-limit`): those the webhook must be asked about, and those refused as
//! unauthenticated. The second is charged *before* the webhook call, so unknown cookies from one
//! address cost the application at most that address's limit.
//!
//! Buckets live in this process's memory, so with several replicas behind a load balancer each
//! replica limits on its own (a caller gets up to replicas x the limit). That bounds abuse of one
//! replica's signing capacity; a global limit belongs in the load balancer. Behind a proxy every
//! caller has the proxy's address: the per-address limit then bounds all unknown callers together.
//!
//! The bucket is a few lines of our own: the `governor` crate is not among the workspace's
//! dependencies, and this one needs no more than a map of two numbers per key.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::auth::{Admission, Principal};
use crate::error::Error;

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

/// Which bucket a request was charged to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Charged {
    Address,
    Caller(String),
}

/// One request's way through the limits: [`Admission`] for the authorizer (charged before a
/// webhook call: to the caller the credentials were last allowed as, or else to the address),
/// then [`Gate::settle`] once the caller is known (its own bucket) or refused as unauthenticated
/// (the address's). No bucket is charged twice for one request.
#[derive(Debug)]
pub struct Gate<'a> {
    callers: &'a RateLimiter,
    addresses: &'a RateLimiter,
    /// The client address, as a bucket key (`None` under `oneshot` in tests: one shared bucket).
    address: String,
    /// Open servers have one anonymous caller: their caller limit is per address.
    open: bool,
    charged: Mutex<Option<Charged>>,
}

impl<'a> Gate<'a> {
    /// The gate of a request from `peer` through `callers` and `addresses`.
    pub fn new(
        callers: &'a RateLimiter,
        addresses: &'a RateLimiter,
        peer: Option<IpAddr>,
        open: bool,
    ) -> Self {
        Self {
            callers,
            addresses,
            address: peer.map_or_else(|| "anonymous".to_owned(), |ip| format!("ip:{ip}")),
            open,
            charged: Mutex::new(None),
        }
    }

    /// Charges the request to `to`, unless it was already charged there.
    fn charge(&self, to: Charged) -> Result<(), Error> {
        let mut charged = self.charged.lock().unwrap_or_else(|e| e.into_inner());
        if charged.as_ref() == Some(&to) {
            return Ok(());
        }
        let (limiter, key) = match &to {
            Charged::Address => (self.addresses, self.address.clone()),
            Charged::Caller(id) => (self.callers, format!("p:{id}")),
        };
        *charged = Some(to);
        take(limiter, &key)
    }

    /// The authorizer's answer, charged: a caller to its own bucket (an open server's to its
    /// address), a request refused as unauthenticated to the per-address one (over it: 429).
    pub fn settle(&self, outcome: Result<Principal, Error>) -> Result<Principal, Error> {
        match outcome {
            Ok(principal) if self.open => {
                take(self.callers, &self.address)?;
                Ok(principal)
            }
            Ok(principal) => {
                self.charge(Charged::Caller(principal.id.clone()))?;
                Ok(principal)
            }
            Err(e @ Error::Unauthenticated(_)) => {
                self.charge(Charged::Address)?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }
}

/// One request from `key`'s bucket, or 429 with the wait.
fn take(limiter: &RateLimiter, key: &str) -> Result<(), Error> {
    limiter
        .check(key, Instant::now())
        .map_err(|wait| Error::RateLimited {
            retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
        })
}

impl Admission for Gate<'_> {
    fn admit(&self, known: Option<&str>) -> Result<(), Error> {
        match known {
            Some(id) => self.charge(Charged::Caller(id.to_owned())),
            None => self.charge(Charged::Address),
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
    fn a_gate_charges_each_bucket_at_most_once_per_request() {
        let callers = RateLimiter::new(60, 1);
        let addresses = RateLimiter::new(60, 2);
        let ip = Some(IpAddr::from([192, 0, 2, 1]));
        let alice = || Principal {
            id: "alice".into(),
            ..Principal::default()
        };
        let refused = || Error::Unauthenticated("no".into());
        // Unknown credentials: charged to the address before the call, not again when refused.
        let g = Gate::new(&callers, &addresses, ip, false);
        g.admit(None).unwrap();
        assert!(matches!(
            g.settle(Err(refused())),
            Err(Error::Unauthenticated(_))
        ));
        // Known credentials: charged to the caller before the call, not again once allowed.
        let g = Gate::new(&callers, &addresses, ip, false);
        g.admit(Some("alice")).unwrap();
        g.settle(Ok(alice())).unwrap();
        // Alice's one request is spent; the address has one left, then it is out.
        let g = Gate::new(&callers, &addresses, ip, false);
        assert!(matches!(
            g.settle(Ok(alice())),
            Err(Error::RateLimited { .. })
        ));
        let g = Gate::new(&callers, &addresses, ip, false);
        assert!(matches!(
            g.settle(Err(refused())),
            Err(Error::Unauthenticated(_))
        ));
        let g = Gate::new(&callers, &addresses, ip, false);
        assert!(matches!(g.admit(None), Err(Error::RateLimited { .. })));
        // Another address has its own budget.
        let g = Gate::new(
            &callers,
            &addresses,
            Some(IpAddr::from([192, 0, 2, 2])),
            false,
        );
        g.admit(None).unwrap();
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
