//! A retention run: per organization, expired events archived in steps, each step's
//! files made durable before its events' rows are deleted (a failpoint between the two
//! in test builds).

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use trail_core::Timestamp;

use super::*;
use crate::{Store, StoreError};

/// Archive files written at once in a step.
const WRITES_AT_ONCE: usize = 4;

/// What one organization's part of a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OrgReport {
    pub org: String,
    pub archived: u64,
    pub deleted: u64,
    pub files: u64,
    /// Files of an interrupted earlier run, removed (their events were still online).
    pub leftovers_removed: u64,
    /// Idempotency keys forgotten (their events were received before `key_cutoff`).
    pub keys_forgotten: u64,
    /// Expired events kept because an active legal hold covers them.
    pub held: u64,
    /// Archive objects (in a bucket) whose S3 legal hold this run set, and lifted
    /// (their last hold was released).
    pub legal_holds_set: u64,
    pub legal_holds_lifted: u64,
    pub categories: BTreeMap<String, u64>,
    pub oldest: Option<String>,
    pub newest: Option<String>,
}

/// A test hook: `TRAIL_FAILPOINT=after-archive` aborts the process once a step's files
/// are durable and before their events are deleted (the crash the design must survive).
/// Compiled only with the `testing` feature (the `trail` binary's tests turn it on);
/// a release build has no way to abort here.
#[cfg(any(test, feature = "testing"))]
fn failpoint(name: &str) {
    if std::env::var("TRAIL_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
}

#[cfg(not(any(test, feature = "testing")))]
fn failpoint(_name: &str) {}

/// Runs retention for every organization as of `as_of`.
pub async fn run(
    store: &dyn Store,
    archive: &Archive,
    rules: &Retention,
    as_of: Timestamp,
) -> Result<Vec<OrgReport>, StoreError> {
    let mut reports = Vec::new();
    if !rules.enabled() {
        return Ok(reports);
    }
    // One run at a time across the processes sharing the store (servers on one
    // PostgreSQL database each start the nightly job).
    let Some(_lock) = store.exclusive("trail-retention").await? else {
        return Err(StoreError::Unavailable("another Trail process is running retention now".into()));
    };
    for org in store.orgs().await? {
        reports.push(run_org(store, archive, rules, as_of, &org.slug).await?);
    }
    Ok(reports)
}

async fn run_org(
    store: &dyn Store,
    archive: &Archive,
    rules: &Retention,
    as_of: Timestamp,
    org: &str,
) -> Result<OrgReport, StoreError> {
    let mut report = OrgReport { org: org.into(), ..OrgReport::default() };
    let known: HashSet<String> = store.archives(Some(org)).await?.into_iter().map(|f| f.path).collect();
    for path in archive.on_disk(org).await? {
        if !known.contains(&path) && archive.remove(&path).await? {
            report.leftovers_removed += 1;
        }
    }
    let holds = Held::of(store, org).await?;
    let (mut oldest, mut newest) = (i64::MAX, i64::MIN);
    let mut after = None;
    loop {
        let expired = store.expired(org, rules, as_of, after, STEP).await?;
        let Some(last) = expired.last() else { break };
        after = Some(last.seq);
        let before = expired.len();
        let expired: Vec<Expired> = expired.into_iter().filter(|e| !holds.covers(e, as_of)).collect();
        report.held += (before - expired.len()) as u64;
        if expired.is_empty() {
            continue;
        }
        let mut days: BTreeMap<String, Vec<Expired>> = BTreeMap::new();
        let mut seqs = Vec::with_capacity(expired.len());
        for e in expired {
            seqs.push(e.seq);
            *report.categories.entry(e.category.to_ascii_lowercase()).or_default() += 1;
            oldest = oldest.min(e.ts);
            newest = newest.max(e.ts);
            days.entry(Timestamp(e.ts).to_datetime().format("%Y-%m-%d").to_string()).or_default().push(e);
        }
        // A few days' files at once: compressing on every core while others are
        // written and confirmed.
        let mut files = Vec::with_capacity(days.len());
        let days: Vec<(String, Vec<Expired>)> = days.into_iter().collect();
        for some in days.chunks(WRITES_AT_ONCE) {
            let writes = some.iter().map(|(day, evs)| archive.write(org, day, evs, as_of));
            files.extend(futures::future::try_join_all(writes).await?);
        }
        failpoint("after-archive");
        report.archived += seqs.len() as u64;
        report.files += files.len() as u64;
        report.deleted += store.archived(org, files, seqs).await?;
    }
    let (set, lifted) = legal_holds(store, archive, org, &holds, as_of).await?;
    (report.legal_holds_set, report.legal_holds_lifted) = (set, lifted);
    if let Some(cutoff) = rules.key_cutoff(as_of) {
        report.keys_forgotten = store.forget_keys(org, Timestamp(cutoff)).await?;
    }
    if oldest <= newest {
        report.oldest = Some(Timestamp(oldest).to_rfc3339());
        report.newest = Some(Timestamp(newest).to_rfc3339());
    }
    Ok(report)
}

/// Puts an S3 legal hold on every archived file of `org` an active hold covers, and
/// lifts it from those no hold covers any more (a bucket archive; a directory has
/// none). Returns how many were set and lifted.
pub async fn legal_holds(
    store: &dyn Store,
    archive: &Archive,
    org: &str,
    holds: &Held,
    now: Timestamp,
) -> Result<(u64, u64), StoreError> {
    let (mut set, mut lifted) = (0, 0);
    if archive.dir().is_some() {
        return Ok((0, 0));
    }
    for file in store.archives(Some(org)).await? {
        let wanted = holds.everything
            || (!holds.filters.is_empty() && archive.read(&file).await?.iter().any(|l| holds.covers_leaf(l, now)));
        if archive.legally_held(&file).await? != wanted {
            archive.legal_hold(&file, wanted).await?;
            if wanted {
                set += 1;
            } else {
                lifted += 1;
            }
        }
    }
    Ok((set, lifted))
}

/// The active legal holds of an organization, as retention applies them: the whole
/// organization, or the events each hold's query matches.
pub struct Held {
    everything: bool,
    filters: Vec<trail_core::Filter>,
}

impl Held {
    pub async fn of(store: &dyn Store, org: &str) -> Result<Held, StoreError> {
        let mut held = Held { everything: false, filters: Vec::new() };
        for h in store.holds(Some(org)).await?.into_iter().filter(|h| h.active()) {
            match h.query.as_deref() {
                None => held.everything = true,
                // A stored query that no longer parses holds everything: keeping too
                // much is the safe side.
                Some(q) => match trail_core::query::parse(q) {
                    Ok(f) => held.filters.push(f),
                    Err(_) => held.everything = true,
                },
            }
        }
        Ok(held)
    }

    fn covers(&self, e: &Expired, now: Timestamp) -> bool {
        if self.everything {
            return true;
        }
        if self.filters.is_empty() {
            return false;
        }
        self.covers_leaf(&e.leaf, now)
    }

    fn covers_leaf(&self, leaf: &[u8], now: Timestamp) -> bool {
        // An event that cannot be read is kept.
        match trail_core::Event::from_leaf(leaf) {
            Ok(ev) => self.filters.iter().any(|f| f.matches(&ev, now)),
            Err(_) => true,
        }
    }
}
