//! Brute-force protection for logins: after repeated failures an account, or an
//! address, is locked for a while (doubling with each further failure, up to an hour).
//! Attempts while locked are refused without checking the password, and recorded.

use std::{collections::HashMap, sync::Mutex};

/// Failures within the window before an account is locked.
pub const ACCOUNT_FAILURES: u32 = 5;
/// Failures within the window before an address is locked (many accounts, one source).
pub const IP_FAILURES: u32 = 20;
/// Failures older than this are forgotten (µs).
const WINDOW: i64 = 15 * 60 * 1_000_000;
/// The first lock's length and the longest (µs).
const FIRST_LOCK: i64 = 60 * 1_000_000;
const MAX_LOCK: i64 = 60 * 60 * 1_000_000;

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    failures: u32,
    last: i64,
    locked_until: i64,
}

#[derive(Default)]
pub struct Throttle {
    entries: Mutex<HashMap<String, Entry>>,
}

impl Throttle {
    /// Seconds until `key` may try again, if it is locked at `now` (µs).
    pub fn locked(&self, key: &str, now: i64) -> Option<u64> {
        let m = self.entries.lock().ok()?;
        let e = m.get(key)?;
        (e.locked_until > now).then(|| ((e.locked_until - now) as u64).div_ceil(1_000_000))
    }

    /// Counts a failure; locks the key once it reaches `limit` failures.
    pub fn fail(&self, key: &str, now: i64, limit: u32) {
        let Ok(mut m) = self.entries.lock() else { return };
        if m.len() > 100_000 {
            m.retain(|_, e| now - e.last < WINDOW || e.locked_until > now);
        }
        let e = m.entry(key.to_string()).or_default();
        if now - e.last > WINDOW {
            e.failures = 0;
        }
        e.failures += 1;
        e.last = now;
        if e.failures >= limit {
            let doublings = (e.failures - limit).min(6);
            e.locked_until = now + (FIRST_LOCK << doublings).min(MAX_LOCK);
        }
    }

    /// Forgets a key's failures (after a successful login).
    pub fn clear(&self, key: &str) {
        if let Ok(mut m) = self.entries.lock() {
            m.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_the_limit_and_doubles() {
        let t = Throttle::default();
        let s = 1_000_000;
        for i in 0..4 {
            t.fail("a", i * s, 5);
            assert_eq!(t.locked("a", i * s), None);
        }
        t.fail("a", 4 * s, 5);
        assert_eq!(t.locked("a", 4 * s), Some(60));
        assert_eq!(t.locked("a", 64 * s), None);
        t.fail("a", 65 * s, 5);
        assert_eq!(t.locked("a", 65 * s), Some(120));
        t.clear("a");
        assert_eq!(t.locked("a", 66 * s), None);
        // Failures spread wider than the window never lock.
        for i in 0..10 {
            t.fail("b", i * 16 * 60 * s, 5);
        }
        assert_eq!(t.locked("b", 160 * 60 * s), None);
    }
}
