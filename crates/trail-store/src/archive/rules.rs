//! Retention's rules: how long each category is kept online, the cutoffs of a run,
//! and an expired event as the store hands it over.

use std::collections::BTreeMap;

use trail_core::Timestamp;

/// How long events are kept online.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    /// Days every category is kept unless overridden; 0 keeps events forever.
    pub default_days: u32,
    /// Days per category (lowercase), e.g. `auth = 365`; 0 keeps that category forever.
    pub categories: BTreeMap<String, u32>,
    /// Days an idempotency key is remembered after its event was received (so that a
    /// resend is still recognised after the event was archived); `None`: the longest
    /// retention period, forever if any category is kept forever.
    pub key_days: Option<u32>,
}

impl Retention {
    /// Days a category is kept (0: forever).
    pub fn days(&self, category: &str) -> u32 {
        self.categories.get(&category.to_ascii_lowercase()).copied().unwrap_or(self.default_days)
    }

    /// Before when (µs) a key's event must have been received for the key to be
    /// forgotten at `as_of`; `None`: keys are kept forever.
    pub fn key_cutoff(&self, as_of: Timestamp) -> Option<i64> {
        let days = match self.key_days {
            Some(d) => d,
            None if self.default_days == 0 || self.categories.values().any(|d| *d == 0) => 0,
            None => self.categories.values().copied().fold(self.default_days, u32::max),
        };
        (days > 0).then(|| Retention::cutoff(days, as_of).0)
    }

    /// Whether anything ever expires.
    pub fn enabled(&self) -> bool {
        self.default_days > 0 || self.categories.values().any(|d| *d > 0)
    }

    /// The instant before which events kept `days` days have expired at `as_of`.
    pub fn cutoff(days: u32, as_of: Timestamp) -> Timestamp {
        Timestamp(as_of.0 - days as i64 * 86_400_000_000)
    }

    /// What has expired at `as_of`, for a backend to put in SQL: events of a listed
    /// category older than its cutoff, and (when the default keeps a limit) events of
    /// any category not listed older than the default cutoff.
    pub fn cutoffs(&self, as_of: Timestamp) -> Cutoffs {
        Cutoffs {
            categories: self
                .categories
                .iter()
                .filter(|(_, d)| **d > 0)
                .map(|(c, d)| (c.clone(), Retention::cutoff(*d, as_of).0))
                .collect(),
            others: (self.default_days > 0)
                .then(|| (self.categories.keys().cloned().collect(), Retention::cutoff(self.default_days, as_of).0)),
        }
    }
}

/// See `Retention::cutoffs` (times in µs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cutoffs {
    pub categories: Vec<(String, i64)>,
    /// The listed categories (excluded) and the default cutoff.
    pub others: Option<(Vec<String>, i64)>,
}

/// One expired event, as `Store::expired` returns it.
#[derive(Debug, Clone)]
pub struct Expired {
    pub seq: u64,
    pub ts: i64,
    pub category: String,
    pub leaf: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_follow_categories() {
        let r = Retention { default_days: 90, categories: [("auth".to_string(), 365)].into(), key_days: None };
        assert_eq!((r.days("AUTH"), r.days("service")), (365, 90));
        assert!(r.enabled());
        assert!(!Retention::default().enabled());
        let off = Retention { default_days: 0, categories: [("auth".to_string(), 0)].into(), key_days: None };
        assert!(!off.enabled());
    }
}
