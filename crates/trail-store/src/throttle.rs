//! Login throttling's counting rule, shared by both backends, which keep the counts in
//! the store so that a restart does not clear them and every server on one database
//! shares them. An attempt is counted *before* its password is checked, in the same
//! atomic step that checks the lock, so parallel guesses cannot all slip through:
//! after `limit` attempts within the window the key is locked for a minute, doubling
//! with each further one up to an hour. A successful login takes its own attempt back
//! (and forgets the account's count).

/// Attempts within the window before an account is locked.
pub const ACCOUNT_ATTEMPTS: u32 = 5;
/// Attempts within the window before an address is locked (many accounts, one source).
pub const IP_ATTEMPTS: u32 = 20;
/// Attempts older than this are forgotten (µs).
pub const WINDOW: i64 = 15 * 60 * 1_000_000;
/// The first lock's length and the longest (µs).
const FIRST_LOCK: i64 = 60 * 1_000_000;
const MAX_LOCK: i64 = 60 * 60 * 1_000_000;

/// One key counted: an account (`acct:<email>`) or an address (`ip:<address>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleKey {
    pub key: String,
    /// Attempts before it locks.
    pub limit: u32,
    /// A successful login forgets this key's count (the account's), rather than only
    /// taking its own attempt back (the address's, which other accounts share).
    pub forget_on_success: bool,
}

/// A key's count as stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    pub attempts: u32,
    /// When the last attempt was counted (µs).
    pub last: i64,
    pub locked_until: i64,
}

impl Count {
    /// Seconds until the key may try again, if it is locked at `now` (µs).
    pub fn wait(&self, now: i64) -> Option<u64> {
        (self.locked_until > now).then(|| ((self.locked_until - now) as u64).div_ceil(1_000_000))
    }

    /// The count with one more attempt at `now`, locked once it reaches `limit`.
    pub fn counted(self, now: i64, limit: u32) -> Count {
        let attempts = if now - self.last > WINDOW { 1 } else { self.attempts + 1 };
        let locked_until = if attempts >= limit {
            let doublings = (attempts - limit).min(6);
            now + (FIRST_LOCK << doublings).min(MAX_LOCK)
        } else {
            self.locked_until
        };
        Count { attempts, last: now, locked_until }
    }

    /// The count with a successful attempt taken back (unlocked if that attempt locked
    /// it).
    pub fn uncounted(self, limit: u32) -> Count {
        let attempts = self.attempts.saturating_sub(1);
        let locked_until = if attempts < limit && self.attempts == limit { 0 } else { self.locked_until };
        Count { attempts, locked_until, ..self }
    }

    /// Whether a row can be dropped at `now` (nothing counted in the window, no lock).
    pub fn expired(&self, now: i64) -> bool {
        now - self.last > WINDOW && self.locked_until <= now
    }
}

/// What to store for each key after an attempt at `now`: `Err(wait)` if any key is
/// locked (then nothing is counted), else each key's new count.
pub fn attempt(keys: &[ThrottleKey], counts: &[Count], now: i64) -> Result<Vec<Count>, u64> {
    if let Some(wait) = counts.iter().filter_map(|c| c.wait(now)).max() {
        return Err(wait);
    }
    Ok(keys.iter().zip(counts).map(|(k, c)| c.counted(now, k.limit)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(limit: u32) -> ThrottleKey {
        ThrottleKey { key: "a".into(), limit, forget_on_success: true }
    }

    #[test]
    fn locks_at_the_limit_and_doubles() {
        let s = 1_000_000;
        let k = [key(5)];
        let mut c = [Count::default()];
        for i in 0..5 {
            c = [attempt(&k, &c, i * s).expect("not locked yet")[0]];
        }
        assert_eq!(c[0].wait(4 * s), Some(60));
        assert_eq!(attempt(&k, &c, 10 * s), Err(54));
        assert_eq!(c[0].wait(64 * s), None);
        c = [attempt(&k, &c, 65 * s).unwrap()[0]];
        assert_eq!(c[0].wait(65 * s), Some(120));
        // Attempts spread wider than the window never lock.
        let mut c = [Count::default()];
        for i in 0..10 {
            c = [attempt(&k, &c, i * 16 * 60 * s).unwrap()[0]];
        }
        assert_eq!(c[0].wait(160 * 60 * s), None);
    }

    #[test]
    fn a_success_takes_its_attempt_back() {
        let c = Count::default().counted(0, 2).counted(1, 2);
        assert!(c.wait(2).is_some());
        let back = c.uncounted(2);
        assert_eq!((back.attempts, back.wait(2)), (1, None));
        let more = Count::default().counted(0, 2).counted(1, 2).counted(70_000_000, 2);
        assert!(more.uncounted(2).wait(70_000_001).is_some(), "a lock earned before stays");
    }
}
