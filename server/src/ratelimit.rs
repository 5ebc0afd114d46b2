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
//! caller has the proxy's address, unless the proxy is trusted (`--trusted-proxy`): the address
//! is then the one it names (`client_address.rs`).
//!
//! The buckets are `governor`'s keyed GCRA limiter (the token bucket as one timestamp per key).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::Quota;
use governor::clock::{Clock, DefaultClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;

use crate::auth::{Admission, Principal};
use crate::error::Error;

/// Most buckets kept; beyond it, full (idle) buckets are dropped.
const MAX_BUCKETS: usize = 100_000;
/// The shortest time between two sweeps of idle buckets: a sweep visits every bucket, so during
/// a flood of new keys it must not run on every request.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The limiter. `per_minute == 0` disables it. `C` is its clock: the system's monotonic one,
/// or a fake one in tests.
#[derive(Debug)]
pub struct RateLimiter<C: Clock = DefaultClock> {
    /// `None` when disabled.
    buckets: Option<Buckets<C>>,
    /// When idle buckets were last swept.
    swept: Mutex<Option<C::Instant>>,
}

/// `governor`'s keyed limiter on clock `C`, with no middleware.
type Buckets<C> = governor::RateLimiter<
    String,
    DefaultKeyedStateStore<String>,
    C,
    NoOpMiddleware<<C as Clock>::Instant>,
>;

impl RateLimiter {
    /// `burst` requests at once, then `per_minute` on average.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self::with_clock(per_minute, burst, DefaultClock::default())
    }
}

impl<C: Clock> RateLimiter<C> {
    /// The same on `clock`.
    pub fn with_clock(per_minute: u32, burst: u32, clock: C) -> Self {
        let buckets = NonZeroU32::new(per_minute).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
            let quota = Quota::per_minute(rate).allow_burst(burst);
            governor::RateLimiter::new(quota, DefaultKeyedStateStore::default(), clock)
        });
        Self {
            buckets,
            swept: Mutex::new(None),
        }
    }

    /// Takes one request for `caller` now; `Err(wait)` when it must wait that long.
    pub fn check(&self, caller: &str) -> Result<(), Duration> {
        let Some(buckets) = &self.buckets else {
            return Ok(());
        };
        if buckets.len() >= MAX_BUCKETS {
            self.sweep(buckets);
        }
        buckets
            .check_key(&caller.to_owned())
            .map_err(|not_until| not_until.wait_time_from(buckets.clock().now()))
    }
}

impl<C: Clock> RateLimiter<C> {
    /// Drops the idle buckets, unless that was done less than [`SWEEP_EVERY`] ago (or another
    /// request is doing it now).
    fn sweep(&self, buckets: &Buckets<C>) {
        let Ok(mut swept) = self.swept.try_lock() else {
            return;
        };
        let now = buckets.clock().now();
        if swept.is_some_and(|at| now.duration_since(at) < SWEEP_EVERY.into()) {
            return;
        }
        buckets.retain_recent();
        *swept = Some(now);
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
    limiter.check(key).map_err(|wait| Error::RateLimited {
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
    use governor::clock::FakeRelativeClock;

    #[test]
    fn a_burst_then_the_refill_rate() {
        let clock = FakeRelativeClock::default();
        let l = RateLimiter::with_clock(60, 3, clock.clone());
        for _ in 0..3 {
            assert!(l.check("a").is_ok());
        }
        let wait = l.check("a").unwrap_err();
        assert!(
            wait > Duration::from_millis(900) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        // Another caller has its own bucket.
        assert!(l.check("b").is_ok());
        // One token per second comes back.
        clock.advance(Duration::from_secs(1));
        assert!(l.check("a").is_ok());
        assert!(l.check("a").is_err());
        clock.advance(Duration::from_secs(99));
        assert!(l.check("a").is_ok());
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
    fn idle_buckets_are_swept_past_the_limit_at_most_once_a_second() {
        let clock = FakeRelativeClock::default();
        // One request per 10 ms: a bucket is idle (full again) 10 ms after its request.
        let l = RateLimiter::with_clock(6_000, 1, clock.clone());
        let fill = |tag: &str| {
            for i in 0..MAX_BUCKETS {
                l.check(&format!("{tag}{i}")).unwrap();
            }
        };
        let len = || l.buckets.as_ref().unwrap().len();
        fill("a");
        clock.advance(Duration::from_secs(1));
        l.check("x").unwrap();
        assert_eq!(len(), 1, "the idle buckets were dropped");
        fill("b");
        clock.advance(Duration::from_millis(500));
        l.check("y").unwrap();
        assert_eq!(len(), MAX_BUCKETS + 2, "half a second after a sweep: none");
        clock.advance(Duration::from_millis(500));
        l.check("z").unwrap();
        assert_eq!(len(), 1);
    }

    #[test]
    fn zero_disables_it() {
        let l = RateLimiter::new(0, 1);
        for _ in 0..100 {
            assert!(l.check("a").is_ok());
        }
    }
}
