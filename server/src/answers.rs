//! The authorization webhook's answers, kept briefly so that callers cannot make the server ask
//! the application again and again: allow answers per (credentials, action), denials per
//! credentials (401) or per call (403), and which principal a set of credentials was last allowed
//! as, so its next create is charged to that caller's rate limit instead of its address.
//!
//! A bounded map with an expiry per map, in this process's memory. When full, expired entries go
//! first and then the oldest one; keys are SHA-256 digests, so a map of 10,000 entries stays
//! under a few MB whatever the credentials' size. (A crate cache such as moka is not among the
//! workspace's dependencies; this one is a `HashMap` behind a `Mutex`, and the webhook call it
//! saves costs far more than the lock.)

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A key: a digest of what the answer depends on.
pub type Digest = [u8; 32];

/// Entries kept per map, at most.
pub const MAX_ENTRIES: usize = 10_000;

/// A map from digests to answers that expire after `ttl`.
#[derive(Debug)]
pub struct Answers<V> {
    ttl: Duration,
    max: usize,
    entries: Mutex<HashMap<Digest, (Instant, V)>>,
}

impl<V: Clone> Answers<V> {
    /// A map keeping answers for `ttl` (zero: keeps nothing), at most `max` of them.
    pub fn new(ttl: Duration, max: usize) -> Self {
        Self {
            ttl,
            max: max.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The answer kept for `key` at `now`, unless it has expired.
    pub fn get(&self, key: &Digest, now: Instant) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|(at, _)| now.saturating_duration_since(*at) < self.ttl)
            .map(|(_, v)| v.clone())
    }

    /// Keeps `value` for `key` from `now`, making room when the map is full.
    pub fn insert(&self, key: Digest, value: V, now: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.max && !entries.contains_key(&key) {
            entries.retain(|_, (at, _)| now.saturating_duration_since(*at) < self.ttl);
            if entries.len() >= self.max
                && let Some(oldest) = entries.iter().min_by_key(|(_, (at, _))| *at).map(|e| *e.0)
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(key, (now, value));
    }

    /// How many answers are kept, expired ones included.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
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
