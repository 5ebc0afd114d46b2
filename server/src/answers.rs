//! The authorization webhook's answers, kept briefly so that callers cannot make the server ask
//! the application again and again: allow answers per (credentials, action), denials per
//! credentials (401) or per call (403), and which principal a set of credentials was last allowed
//! as, so its next create is charged to that caller's rate limit instead of its address.
//!
//! A bounded map with one expiry for all its entries, in this process's memory: an `lru`
//! `LruCache` kept in the order the answers came (a lookup peeks, it does not promote). Since
//! every entry lives as long, that order is also the order they expire in, so a full map drops
//! its expired answers from the old end and then, if still full, the oldest one, each in O(1).
//! Keys are SHA-256 digests, so a map of 10,000 entries stays under a few MB whatever the
//! credentials' size. The map sits behind a `Mutex`: the webhook call it saves costs far more
//! than the lock. (moka and quick_cache were considered: their admission and eviction policies
//! and their own clocks would not drop exactly the expired and then the oldest answers at the
//! time given.)

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lru::LruCache;

/// A key: a digest of what the answer depends on.
pub type Digest = [u8; 32];

/// Entries kept per map, at most.
pub const MAX_ENTRIES: usize = 10_000;

/// A map from digests to answers that expire after `ttl`.
#[derive(Debug)]
pub struct Answers<V> {
    ttl: Duration,
    /// Most entries kept.
    max: NonZeroUsize,
    /// Least recently inserted first. Unbounded for `lru` (a bounded one allocates its whole
    /// capacity up front): [`Answers::insert`] holds it to `max`.
    entries: Mutex<LruCache<Digest, (Instant, V)>>,
}

impl<V: Clone> Answers<V> {
    /// A map keeping answers for `ttl` (zero: keeps nothing), at most `max` of them.
    pub fn new(ttl: Duration, max: usize) -> Self {
        Self {
            ttl,
            max: NonZeroUsize::new(max).unwrap_or(NonZeroUsize::MIN),
            entries: Mutex::new(LruCache::unbounded()),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, LruCache<Digest, (Instant, V)>> {
        // Every change to the map is one call: a panic elsewhere leaves it consistent.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The answer kept for `key` at `now`, unless it has expired.
    pub fn get(&self, key: &Digest, now: Instant) -> Option<V> {
        self.entries()
            .peek(key)
            .filter(|(at, _)| now.saturating_duration_since(*at) < self.ttl)
            .map(|(_, v)| v.clone())
    }

    /// Keeps `value` for `key` from `now`, making room when the map is full.
    pub fn insert(&self, key: Digest, value: V, now: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries();
        if entries.len() >= self.max.get() && !entries.contains(&key) {
            // The oldest answers expire first: drop them from that end.
            while entries
                .peek_lru()
                .is_some_and(|(_, (at, _))| now.saturating_duration_since(*at) >= self.ttl)
            {
                entries.pop_lru();
            }
            // Still full: drop the oldest.
            if entries.len() >= self.max.get() {
                entries.pop_lru();
            }
        }
        // A kept key moves to the new end, with its new time.
        entries.put(key, (now, value));
    }

    /// How many answers are kept, expired ones included.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// True when nothing is kept.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Digest {
        [n; 32]
    }

    #[test]
    fn answers_expire_after_the_ttl() {
        let a = Answers::new(Duration::from_secs(5), 10);
        let t0 = Instant::now();
        a.insert(key(1), "yes", t0);
        assert_eq!(a.get(&key(1), t0 + Duration::from_secs(4)), Some("yes"));
        assert_eq!(a.get(&key(1), t0 + Duration::from_secs(5)), None);
        assert_eq!(a.get(&key(2), t0), None);
    }

    #[test]
    fn a_full_map_drops_expired_answers_then_the_oldest() {
        let a = Answers::new(Duration::from_secs(10), 3);
        let t0 = Instant::now();
        a.insert(key(1), 1, t0);
        a.insert(key(2), 2, t0 + Duration::from_secs(1));
        a.insert(key(3), 3, t0 + Duration::from_secs(2));
        // Full, none expired: the oldest (1) goes.
        a.insert(key(4), 4, t0 + Duration::from_secs(3));
        assert_eq!(a.len(), 3);
        assert_eq!(a.get(&key(1), t0 + Duration::from_secs(3)), None);
        assert_eq!(a.get(&key(2), t0 + Duration::from_secs(3)), Some(2));
        // Later, 2 and 3 have expired: both go, 4 stays.
        a.insert(key(5), 5, t0 + Duration::from_secs(12));
        assert_eq!(a.len(), 2);
        assert_eq!(a.get(&key(4), t0 + Duration::from_secs(12)), Some(4));
        // Replacing a kept answer never evicts another.
        a.insert(key(5), 6, t0 + Duration::from_secs(12));
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let a = Answers::new(Duration::ZERO, 10);
        a.insert(key(1), (), Instant::now());
        assert!(a.is_empty());
    }
}
