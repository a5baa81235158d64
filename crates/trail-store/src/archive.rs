//! Retention and the archive. Events past their retention period are first written to
//! archive files — one zstd-compressed JSON Lines file per organization, UTC day and
//! run, holding the events' exact leaf bytes in log order, with a JSON manifest beside
//! it (counts, seqs, times, SHA-256) — and only once those files are durable are the
//! events' rows deleted, in the transaction that records the files in the store. Leaf
//! hashes, tree nodes and checkpoints stay, so proofs keep verifying. A run killed
//! between the two steps leaves files the store does not know: the next run removes
//! them and archives those events again.
//!
//! `merged` reads any period back in time order from the archive and the store
//! together (downloads and evidence of archived periods).

use std::{
    collections::{BTreeMap, HashSet, VecDeque},
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use trail_core::{Event, Filter, Sort, SortField, Timestamp};

use crate::{ListQuery, Scope, Store, StoreError, StreamRx};

/// The `format` of archive manifests.
pub const FORMAT: &str = "trail-archive/1";

/// Events archived per step of a run (one set of files and one delete transaction).
const STEP: usize = 20_000;

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

/// One archive file's manifest (also recorded in the store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveFile {
    pub format: String,
    pub org: String,
    /// The UTC day of the events' timestamps (`YYYY-MM-DD`).
    pub day: String,
    /// The data file, relative to the archive directory.
    pub path: String,
    pub count: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// The earliest and latest event timestamp (RFC 3339).
    pub min_time: String,
    pub max_time: String,
    /// SHA-256 of the compressed file (hex).
    pub sha256: String,
    /// When the file was written (RFC 3339).
    pub created_at: String,
}

impl ArchiveFile {
    /// Whether the file may hold events of the time range (inclusive, open ends).
    pub fn overlaps(&self, from: Option<Timestamp>, to: Option<Timestamp>) -> bool {
        let min = Timestamp::parse_rfc3339(&self.min_time).map(|t| t.0).unwrap_or(i64::MIN);
        let max = Timestamp::parse_rfc3339(&self.max_time).map(|t| t.0).unwrap_or(i64::MAX);
        from.is_none_or(|from| max >= from.0) && to.is_none_or(|to| min <= to.0)
    }
}

/// The archive directory.
#[derive(Debug, Clone)]
pub struct Archive {
    dir: PathBuf,
}

fn io(context: &str, e: std::io::Error) -> StoreError {
    StoreError::Io(std::io::Error::new(e.kind(), format!("{context}: {e}")))
}

/// Writes `bytes` to `path` durably: a temporary file, fsync, rename, fsync of the
/// directory.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io(&dir.display().to_string(), e))?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| io(&tmp.display().to_string(), e))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| io(&tmp.display().to_string(), e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(&path.display().to_string(), e))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io(&dir.display().to_string(), e))
}

impl Archive {
    pub fn new(dir: impl Into<PathBuf>) -> Archive {
        Archive { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the events of one organization and UTC day (in seq order) to a new file
    /// and its manifest, both durable when this returns.
    pub fn write(&self, org: &str, day: &str, events: &[Expired], now: Timestamp) -> Result<ArchiveFile, StoreError> {
        let (first, last) = match (events.first(), events.last()) {
            (Some(f), Some(l)) => (f.seq, l.seq),
            _ => return Err(StoreError::Invalid { field: "events".into(), message: "nothing to archive".into() }),
        };
        let mut plain = Vec::with_capacity(events.iter().map(|e| e.leaf.len() + 1).sum());
        for e in events {
            plain.extend_from_slice(&e.leaf);
            plain.push(b'\n');
        }
        let packed = zstd::encode_all(&plain[..], 9).map_err(|e| io("compressing an archive", e))?;
        let month = day.get(..7).unwrap_or(day);
        let path = format!("{org}/{month}/{day}.{first}.jsonl.zst");
        let min = events.iter().map(|e| e.ts).min().unwrap_or_default();
        let max = events.iter().map(|e| e.ts).max().unwrap_or_default();
        let file = ArchiveFile {
            format: FORMAT.into(),
            org: org.into(),
            day: day.into(),
            path: path.clone(),
            count: events.len() as u64,
            first_seq: first,
            last_seq: last,
            min_time: Timestamp(min).to_rfc3339_micros(),
            max_time: Timestamp(max).to_rfc3339_micros(),
            sha256: hex::encode(Sha256::digest(&packed)),
            created_at: now.to_rfc3339(),
        };
        write_durably(&self.dir.join(&path), &packed)?;
        let manifest = serde_json::to_vec_pretty(&file).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        write_durably(&self.dir.join(manifest_path(&path)), &manifest)?;
        Ok(file)
    }

    /// The leaves of a file, after checking it against its manifest (SHA-256, count,
    /// and each entry an event of the manifest's organization and seq range).
    pub fn read(&self, file: &ArchiveFile) -> Result<Vec<Vec<u8>>, StoreError> {
        let damaged = |problem: String| StoreError::Damaged { path: file.path.clone(), problem };
        let path = self.dir.join(&file.path);
        let packed = std::fs::read(&path).map_err(|e| damaged(format!("cannot be read ({e})")))?;
        if hex::encode(Sha256::digest(&packed)) != file.sha256 {
            return Err(damaged("its SHA-256 differs from the manifest".into()));
        }
        let plain = zstd::decode_all(&packed[..]).map_err(|e| damaged(format!("does not decompress ({e})")))?;
        let leaves: Vec<Vec<u8>> = plain.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect();
        if leaves.len() as u64 != file.count {
            return Err(damaged(format!("{} events where the manifest says {}", leaves.len(), file.count)));
        }
        for leaf in &leaves {
            match Event::from_leaf(leaf) {
                Ok(e) if e.org == file.org && (file.first_seq..=file.last_seq).contains(&e.seq) => {}
                Ok(e) => return Err(damaged(format!("entry {} of {} lies outside the manifest", e.seq, e.org))),
                Err(e) => return Err(damaged(format!("an entry is not an event ({e})"))),
            }
        }
        Ok(leaves)
    }

    /// Checks a file against its manifest without keeping its events (so that a
    /// download can refuse a damaged file before it sends anything).
    pub fn check(&self, file: &ArchiveFile) -> Result<(), StoreError> {
        self.read(file).map(drop)
    }

    /// The data files under an organization's directory (relative paths).
    pub fn on_disk(&self, org: &str) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let root = self.dir.join(org);
        let months = match std::fs::read_dir(&root) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io(&root.display().to_string(), e)),
        };
        for month in months.flatten() {
            for f in std::fs::read_dir(month.path()).map_err(|e| io(&root.display().to_string(), e))?.flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                if name.ends_with(".jsonl.zst") || name.ends_with(".tmp") {
                    out.push(format!("{org}/{}/{name}", month.file_name().to_string_lossy()));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes a data file and its manifest (files a crashed run left behind).
    pub fn remove(&self, path: &str) -> Result<(), StoreError> {
        for p in [self.dir.join(path), self.dir.join(manifest_path(path))] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&p.display().to_string(), e)),
            }
        }
        Ok(())
    }
}

fn manifest_path(path: &str) -> String {
    format!("{}.manifest.json", path.trim_end_matches(".jsonl.zst"))
}

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
    for path in archive.on_disk(org)? {
        if !known.contains(&path) {
            archive.remove(&path)?;
            report.leftovers_removed += 1;
        }
    }
    let (mut oldest, mut newest) = (i64::MAX, i64::MIN);
    let mut after = None;
    loop {
        let expired = store.expired(org, rules, as_of, after, STEP).await?;
        let Some(last) = expired.last() else { break };
        after = Some(last.seq);
        let mut days: BTreeMap<String, Vec<Expired>> = BTreeMap::new();
        let mut seqs = Vec::with_capacity(expired.len());
        for e in expired {
            seqs.push(e.seq);
            *report.categories.entry(e.category.to_ascii_lowercase()).or_default() += 1;
            oldest = oldest.min(e.ts);
            newest = newest.max(e.ts);
            days.entry(Timestamp(e.ts).to_datetime().format("%Y-%m-%d").to_string()).or_default().push(e);
        }
        let (dir, org2) = (archive.clone(), org.to_string());
        let files = tokio::task::spawn_blocking(move || {
            days.iter().map(|(day, evs)| dir.write(&org2, day, evs, as_of)).collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|_| StoreError::Closed)??;
        failpoint("after-archive");
        report.archived += seqs.len() as u64;
        report.files += files.len() as u64;
        report.deleted += store.archived(org, files, seqs).await?;
    }
    if let Some(cutoff) = rules.key_cutoff(as_of) {
        report.keys_forgotten = store.forget_keys(org, cutoff).await?;
    }
    if oldest <= newest {
        report.oldest = Some(Timestamp(oldest).to_rfc3339());
        report.newest = Some(Timestamp(newest).to_rfc3339());
    }
    Ok(report)
}

/// Every event of `scope` matching `filter` in time order (oldest first), from the
/// archive and the store together, a chunk of leaves at a time. The archived part is
/// read one UTC day at a time (memory holds one day of one period's archived events).
pub async fn merged(
    store: &dyn Store,
    archive: Arc<Archive>,
    scope: Scope,
    mut filter: Filter,
    now: Timestamp,
    chunk: usize,
) -> Result<StreamRx, StoreError> {
    filter.sort = Sort { field: SortField::Timestamp, desc: false };
    let (from, to) = filter.time_range(now);
    let mut files = store.archives(scope.org.as_deref()).await?;
    files.retain(|f| f.overlaps(from, to));
    // Every file is checked before the first chunk, against its manifest and against
    // the leaf hashes the log recorded, so a damaged one fails the request while it can
    // still be answered with an error; each is checked again as it is read.
    for f in &files {
        let (a, file) = (archive.clone(), f.clone());
        let leaves = tokio::task::spawn_blocking(move || a.read(&file)).await.map_err(|_| StoreError::Closed)??;
        let recorded: BTreeMap<u64, trail_core::merkle::Hash> =
            store.tree_nodes(&f.org, 0, f.first_seq, f.last_seq + 1).await?.into_iter().collect();
        for leaf in &leaves {
            let seq = Event::from_leaf(leaf).map(|e| e.seq).unwrap_or(u64::MAX);
            if recorded.get(&seq) != Some(&trail_core::merkle::leaf_hash(leaf)) {
                let problem = format!("entry {seq} differs from the leaf hash the log recorded for it");
                return Err(StoreError::Damaged { path: f.path.clone(), problem });
            }
        }
    }
    let mut by_day: BTreeMap<String, Vec<ArchiveFile>> = BTreeMap::new();
    for f in files {
        by_day.entry(f.day.clone()).or_default().push(f);
    }
    let query = ListQuery { scope: scope.clone(), filter: filter.clone(), now, cursor: None, limit: chunk };
    let mut online = store.stream(query, chunk).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tokio::task::spawn_blocking(move || {
        let day_events = |files: &[ArchiveFile]| -> Result<VecDeque<(i64, u64, Vec<u8>)>, StoreError> {
            let mut evs = Vec::new();
            for f in files {
                for leaf in archive.read(f)? {
                    let e = Event::from_leaf(&leaf).map_err(|e| StoreError::Corrupt(format!("{}: {e}", f.path)))?;
                    if scope.allows(&e.org, e.category()) && filter.matches(&e, now) {
                        evs.push((e.timestamp.0, e.seq, leaf));
                    }
                }
            }
            evs.sort_by_key(|a| (a.0, a.1));
            Ok(evs.into())
        };
        let mut days = by_day.into_values();
        let mut archived: VecDeque<(i64, u64, Vec<u8>)> = VecDeque::new();
        let mut live: VecDeque<(i64, u64, Vec<u8>)> = VecDeque::new();
        let mut online_done = false;
        let mut out = Vec::with_capacity(chunk);
        let result = (|| -> Result<(), StoreError> {
            loop {
                while archived.is_empty() {
                    match days.next() {
                        Some(files) => archived = day_events(&files)?,
                        None => break,
                    }
                }
                if live.is_empty() && !online_done {
                    match online.blocking_recv() {
                        Some(chunk) => {
                            for leaf in chunk? {
                                let e = Event::from_leaf(&leaf).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                                live.push_back((e.timestamp.0, e.seq, leaf));
                            }
                            continue;
                        }
                        None => online_done = true,
                    }
                }
                let next = match (archived.front(), live.front()) {
                    (None, None) => break,
                    (Some(_), None) => archived.pop_front(),
                    (None, Some(_)) => live.pop_front(),
                    (Some(a), Some(l)) => {
                        if (a.0, a.1) <= (l.0, l.1) {
                            archived.pop_front()
                        } else {
                            live.pop_front()
                        }
                    }
                };
                if let Some((_, _, leaf)) = next {
                    out.push(leaf);
                }
                if out.len() >= chunk && tx.blocking_send(Ok(std::mem::take(&mut out))).is_err() {
                    return Ok(());
                }
            }
            if !out.is_empty() {
                let _ = tx.blocking_send(Ok(std::mem::take(&mut out)));
            }
            Ok(())
        })();
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(e));
        }
    });
    Ok(rx)
}

/// Events of `org` with `seq >= from` in seq order, from the store and the archive
/// together: at most `limit` online ones, and the archived ones among them (read a
/// file at a time, so a replay of archived days may return more than `limit`).
pub async fn scan_merged(
    store: &dyn Store,
    archive: Option<&Archive>,
    org: &str,
    from: u64,
    limit: usize,
) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    let mut rows = store.scan(org, from, limit).await?;
    let Some(archive) = archive else { return Ok(rows) };
    // Online rows end the range only when there may be more after them.
    let upper = if rows.len() >= limit { rows.last().map_or(u64::MAX, |r| r.0) } else { u64::MAX };
    let mut files: Vec<ArchiveFile> =
        store.archives(Some(org)).await?.into_iter().filter(|f| f.last_seq >= from && f.first_seq <= upper).collect();
    if files.is_empty() {
        return Ok(rows);
    }
    files.sort_by_key(|f| f.first_seq);
    // The earliest file and every other that may hold `from` (days' seq ranges can
    // overlap); the range ends before the first file left unread.
    let split = files.iter().skip(1).position(|f| f.first_seq > from).map_or(files.len(), |i| i + 1);
    let unread = files.split_off(split);
    let upper = unread.first().map_or(upper, |next| upper.min(next.first_seq - 1));
    for file in &files {
        for leaf in archive.read(file)? {
            let e = Event::from_leaf(&leaf).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if e.seq >= from && e.seq <= upper {
                rows.push((e.seq, leaf));
            }
        }
    }
    rows.retain(|r| r.0 <= upper);
    rows.sort_by_key(|r| r.0);
    rows.dedup_by_key(|r| r.0);
    Ok(rows)
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

    #[test]
    fn files_round_trip_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let a = Archive::new(dir.path());
        let evs: Vec<Expired> = (3..6)
            .map(|s| Expired {
                seq: s,
                ts: 1_700_000_000_000_000 + s as i64,
                category: "auth".into(),
                leaf: trail_core::Event::from_new(
                    trail_core::event::parse_event(serde_json::json!({"action": "auth:login"})).unwrap(),
                    uuid::Uuid::nil(),
                    "acme",
                    s,
                    Timestamp(1_700_000_000_000_000 + s as i64),
                )
                .to_leaf(),
            })
            .collect();
        let f = a.write("acme", "2023-11-14", &evs, Timestamp(0)).unwrap();
        assert_eq!((f.count, f.first_seq, f.last_seq), (3, 3, 5));
        assert_eq!(f.path, "acme/2023-11/2023-11-14.3.jsonl.zst");
        assert_eq!(a.read(&f).unwrap(), evs.iter().map(|e| e.leaf.clone()).collect::<Vec<_>>());
        assert_eq!(a.on_disk("acme").unwrap(), vec![f.path.clone()]);
        let manifest: ArchiveFile =
            serde_json::from_slice(&std::fs::read(dir.path().join("acme/2023-11/2023-11-14.3.manifest.json")).unwrap())
                .unwrap();
        assert_eq!(manifest, f);
        // A changed byte is caught.
        let p = dir.path().join(&f.path);
        let mut bytes = std::fs::read(&p).unwrap();
        let n = bytes.len() - 1;
        bytes[n] ^= 1;
        std::fs::write(&p, bytes).unwrap();
        assert!(matches!(a.read(&f), Err(StoreError::Damaged { ref path, .. }) if *path == f.path));
        a.remove(&f.path).unwrap();
        assert!(a.on_disk("acme").unwrap().is_empty());
    }
}
