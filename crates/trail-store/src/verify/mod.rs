//! The one verifier of a stored log, for every backend: it reads what the store keeps
//! of an organization (through `Store::stored_entries` and `Store::tree_nodes`, each
//! backend only reading its own tables) and checks all of it against the events'
//! stored bytes:
//!
//! - every entry from 0 on is present, once (in the store or in the archive), names
//!   its own seq and organization, and hashes to its recorded leaf hash;
//! - every indexed copy of an event (the row lists and filters read) equals what the
//!   event's bytes say, so that no event can be hidden from queries or shown as another;
//! - every stored tree node equals the hash of its children, recomputed from the
//!   entries, and none lies beyond the log (so proofs served are right);
//! - every signed checkpoint is signed by the verifier key, matches its stored row and
//!   the recomputed root of its size; a log with entries needs at least one; entries
//!   after the newest are reported;
//! - a checkpoint kept outside Trail (an auditor's) is proved consistent with the
//!   current log, which is the only way to catch a log cut short together with its
//!   checkpoints and tree nodes.
//!
//! Each finding names the entry (seq, id) and what differs. The per-entry work (hash,
//! parse, comparison) runs on every core; the tree is folded in order.

use std::collections::BTreeMap;

use trail_core::{checkpoint, merkle::Hash, Event};
use uuid::Uuid;

use crate::{archive::Archive, Store, StoreError};

/// Entries read and checked per step.
const CHUNK: u64 = 8192;
/// Findings kept in a report; the rest are counted.
const MAX_FINDINGS: usize = 1000;

use crate::row::IndexedCopy;
pub use entries::{quick_check, Quick, QuickChunk};

mod entries;
mod walk;

use entries::{check_all, Checked};
use walk::Walk;

/// What a backend keeps of one entry (one seq): its stored bytes and its indexed copy,
/// either of which may be missing.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    pub seq: u64,
    pub leaf: Option<Vec<u8>>,
    pub row: Option<IndexedCopy>,
    /// Where the backend keeps the row does not fit the row (SQLite: a position outside
    /// the row's time), said as a finding.
    pub misplaced: Option<String>,
    /// The entry's search words as the index holds them, where it can be read back.
    pub search: Option<SearchCopy>,
}

/// An entry's search words as stored, and how the backend makes them from an event.
#[derive(Debug, Clone)]
pub struct SearchCopy {
    pub words: Vec<String>,
    pub of: fn(&Event) -> Vec<String>,
}

/// One thing that does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The entry concerned, when there is one.
    pub seq: Option<u64>,
    pub id: Option<Uuid>,
    pub what: String,
    /// The finding is in a structure derived from the leaves (an indexed row, the
    /// search index, the per-day counts, idempotency keys), which `repair` rebuilds.
    pub derived: bool,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.seq, self.id) {
            (Some(s), Some(id)) => write!(f, "entry {s} (id {id}): {}", self.what),
            (Some(s), None) => write!(f, "entry {s}: {}", self.what),
            _ => f.write_str(&self.what),
        }
    }
}

/// What to verify against.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions<'a> {
    /// The verifier key (`<origin>+<hash>+<key>`) checkpoints must be signed by.
    pub vkey: &'a str,
    /// Where archived entries are (required when the organization has archive files).
    pub archive: Option<&'a Archive>,
    /// A signed checkpoint kept outside Trail, which the log must be consistent with.
    pub external: Option<&'a str>,
    /// Now (µs), for entries no checkpoint covers: those received more than `grace_us`
    /// before it are unproven, a finding. `None`: they are only counted.
    pub now: Option<i64>,
    pub grace_us: i64,
}

/// The default grace period of entries no checkpoint covers yet (µs).
pub const DEFAULT_GRACE_US: i64 = 60 * 1_000_000;

/// What a verification covered and found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// Entries in the log (stored, archived or missing up to the last one known).
    pub entries: u64,
    pub checkpoints: u64,
    /// The size of the newest signed checkpoint.
    pub newest_checkpoint: u64,
    /// Stored tree nodes recomputed.
    pub nodes: u64,
    /// Entries archived (read back from the archive).
    pub archived: u64,
    /// Findings, the first `MAX_FINDINGS` of them.
    pub findings: Vec<Finding>,
    /// Findings past those kept.
    pub more: u64,
    /// Some finding (kept or counted) is not in a derived structure.
    pub leaves_failed: bool,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }

    /// Entries no signed checkpoint covers yet (normally those of the last second).
    pub fn beyond_checkpoint(&self) -> u64 {
        self.entries.saturating_sub(self.newest_checkpoint)
    }

    /// One line of what was verified.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} entries, {} tree nodes and {} checkpoints verified (the newest covers {})",
            self.entries, self.nodes, self.checkpoints, self.newest_checkpoint
        );
        if self.archived > 0 {
            s.push_str(&format!("; {} entries read back from the archive", self.archived));
        }
        if self.beyond_checkpoint() > 0 {
            s.push_str(&format!("; {} entries are newer than the newest checkpoint", self.beyond_checkpoint()));
        }
        s
    }

    /// Every finding, one a line (and how many more there were).
    pub fn problems(&self) -> String {
        let mut lines: Vec<String> = self.findings.iter().map(ToString::to_string).collect();
        if self.more > 0 {
            lines.push(format!("… and {} more findings", self.more));
        }
        lines.join("\n")
    }

    fn find(&mut self, seq: Option<u64>, id: Option<Uuid>, what: impl Into<String>) {
        self.push(seq, id, what.into(), false);
    }

    /// A finding in a derived structure (see `Finding::derived`).
    fn find_derived(&mut self, seq: Option<u64>, id: Option<Uuid>, what: impl Into<String>) {
        self.push(seq, id, what.into(), true);
    }

    fn push(&mut self, seq: Option<u64>, id: Option<Uuid>, what: String, derived: bool) {
        if !derived {
            self.leaves_failed = true;
        }
        if self.findings.len() < MAX_FINDINGS {
            self.findings.push(Finding { seq, id, what, derived });
        } else {
            self.more += 1;
        }
    }

    /// Whether the leaves, the tree and the checkpoints verified: every finding (kept
    /// or only counted) is in a derived structure, which `repair` may rebuild.
    pub fn leaves_ok(&self) -> bool {
        !self.leaves_failed
    }
}

/// Verifies one organization's stored log; a finding is a result, not an error
/// (`Err` is for a store that cannot be read).
pub async fn verify(store: &dyn Store, org: &str, opts: VerifyOptions<'_>) -> Result<Report, StoreError> {
    let mut report = Report::default();
    // Checkpoints: signed by the key, each row equal to its note.
    let mut signed: BTreeMap<u64, Hash> = BTreeMap::new();
    let stored_checkpoints = store.checkpoints(org).await?;
    report.checkpoints = stored_checkpoints.len() as u64;
    for cp in &stored_checkpoints {
        match checkpoint::verify(&cp.note, opts.vkey) {
            Ok(c) if c.size == cp.size && c.root == cp.root => {
                signed.insert(c.size, c.root);
            }
            Ok(c) => report.find(
                None,
                None,
                format!(
                    "checkpoint of size {}: the stored row differs from its signed note (size {})",
                    cp.size, c.size
                ),
            ),
            Err(e) => report.find(None, None, format!("checkpoint of size {}: {e}", cp.size)),
        }
    }
    report.newest_checkpoint = signed.keys().next_back().copied().unwrap_or(0);
    let external = match opts.external {
        None => None,
        Some(note) => match checkpoint::verify(note, opts.vkey) {
            Ok(c) => Some(c),
            Err(e) => {
                report.find(None, None, format!("the saved checkpoint: {e}"));
                None
            }
        },
    };
    // Archived entries: their bytes from the archive, each file checked.
    let mut archived: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let files = store.archives(Some(org)).await?;
    if !files.is_empty() && opts.archive.is_none() {
        report.find(
            None,
            None,
            format!("{} archive files hold entries of {org}: verify with the archive", files.len()),
        );
    }
    if let Some(a) = opts.archive {
        for f in &files {
            match a.read(f).await {
                Ok(leaves) => {
                    for leaf in leaves {
                        let seq = Event::from_leaf(&leaf).map(|e| e.seq).unwrap_or(u64::MAX);
                        if archived.insert(seq, leaf).is_some() {
                            report.find(Some(seq), None, "it is archived twice");
                        }
                    }
                }
                Err(e) => report.find(None, None, e.to_string()),
            }
        }
    }
    report.archived = archived.len() as u64;
    let end = store.log_end(org).await?.max(archived.keys().next_back().map_or(0, |s| s + 1));
    let wanted: Vec<u64> = signed.keys().copied().chain(external.as_ref().map(|c| c.size)).collect();
    let mut walk = Walk::default();
    // What lies beyond each entry is read while the entries are: rows outside the log,
    // the per-day counts and each backend's own derived structures.
    let beside = async {
        let stray = store.stray_rows(org, end).await?;
        let rollups = store.stored_rollups(org).await?;
        let derived = store.derived_findings(org).await?;
        Ok::<_, StoreError>((stray, rollups, derived))
    };
    let entries = async {
        let mut from = 0u64;
        let mut next =
            if from < end { Some(fetch(store, org, from, (from + CHUNK).min(end), &archived).await?) } else { None };
        while let Some(fetched) = next.take() {
            let to = (from + CHUNK).min(end);
            let (work, archived_here) = match fetched {
                Fetched::Quick(q) => {
                    let n = q.entries.len();
                    (Ok(q), vec![false; n])
                }
                Fetched::Full(entries) => {
                    let (filled, here) = fill(entries, from, to, &mut archived, &mut report);
                    (Err(filled), here)
                }
            };
            from = to;
            // At once: this chunk checked (on every core, unless the backend did), its
            // tree nodes read, then folded into the tree; and the next chunk read.
            let ranges = walk.node_ranges(to);
            let this = async {
                let org_owned = org.to_string();
                let checking = async move {
                    match work {
                        Ok(q) => Ok((q.entries.into_iter().map(Checked::from).collect::<Vec<_>>(), q.tally)),
                        Err(filled) => tokio::task::spawn_blocking(move || check_all(&org_owned, filled)).await,
                    }
                };
                let (checked, nodes) = tokio::join!(checking, store.tree_nodes_many(org, ranges.clone()));
                let (checked, counted) = checked.map_err(|_| StoreError::Closed)?;
                walk.rollups.absorb(counted);
                walk.take_nodes(ranges, nodes?);
                walk.fold(checked, archived_here, &mut report, &signed, &wanted);
                Ok::<_, StoreError>(())
            };
            let reading_next = async {
                match from < end {
                    true => fetch(store, org, from, (from + CHUNK).min(end), &archived).await.map(Some),
                    false => Ok(None),
                }
            };
            let (done, upcoming) = tokio::join!(this, reading_next);
            done?;
            next = upcoming?;
        }
        Ok::<_, StoreError>(())
    };
    let (walked, beside) = tokio::join!(entries, beside);
    walked?;
    let (stray, stored, derived) = beside?;
    let Walk { tree, broken_at, mut levels, roots, mut run, rollups } = walk;
    report.entries = end;
    // The entries after the newest checkpoint: a run like any other, and unproven once
    // older than the grace period.
    if let (Some(now), Some(first), Some((oldest, _))) = (opts.now, run.first, run.received) {
        if oldest < now - opts.grace_us {
            report.find(
                Some(first),
                None,
                format!(
                    "entries {first} to {} are covered by no signed checkpoint, the oldest received at {} (more than {} s ago): nothing proves them",
                    end.saturating_sub(1),
                    trail_core::Timestamp(oldest).to_rfc3339(),
                    opts.grace_us / 1_000_000
                ),
            );
        }
    }
    run.close(end, &mut report);
    for stray in stray {
        report.find_derived(None, None, stray);
    }
    // What is derived from the rows and bytes beyond each row: the per-day counts, and
    // each backend's own (the search index, search words, idempotency keys).
    for d in crate::rollup::differences(&rollups, &stored, 20) {
        report.find_derived(None, None, d);
    }
    for d in derived {
        report.find_derived(None, None, d);
    }
    if let Some(b) = broken_at {
        report.find(Some(b), None, format!("the tree cannot be recomputed from entry {b} on (its hash is unknown)"));
    }
    for (seq, _) in archived {
        report.find(Some(seq), None, "it is archived but lies beyond the log");
    }
    // Nodes beyond the entries (a cut log whose nodes stayed).
    for l in levels.iter_mut() {
        let beyond = store.tree_nodes(org, l.level, l.read_to, u64::MAX).await?;
        let past_end = |idx: u64| idx.checked_add(1).and_then(|n| n.checked_shl(l.level)).is_none_or(|n| n > end);
        for (idx, _) in l.buffered.drain(..).chain(beyond).filter(|(idx, _)| past_end(*idx)) {
            report.find(
                None,
                None,
                format!("tree node level {} index {idx} is stored beyond the log's {end} entries", l.level),
            );
        }
    }
    let size = tree.size;
    if signed.is_empty() && end > 0 {
        report.find(None, None, format!("no signed checkpoint covers the log's {end} entries: nothing proves them"));
    }
    for (&cp_size, cp_root) in &signed {
        match roots.get(&cp_size) {
            Some(r) if r == cp_root => {}
            Some(_) => report.find(
                None,
                None,
                format!("checkpoint of size {cp_size}: the recomputed root differs: an entry below {cp_size} was changed together with its leaf hash"),
            ),
            None if cp_size > end => report.find(
                Some(end),
                None,
                format!("the log ends at entry {end} but a signed checkpoint covers {cp_size} entries: entries from {end} on are missing"),
            ),
            None if cp_size == 0 => {}
            None => report.find(None, None, format!("checkpoint of size {cp_size}: the tree could not be recomputed that far")),
        }
    }
    if let Some(ext) = external {
        match roots.get(&ext.size) {
            Some(r) if *r == ext.root => {}
            Some(_) => report.find(
                None,
                None,
                format!("the saved checkpoint of size {}: the log's first {} entries differ from what it signed", ext.size, ext.size),
            ),
            None if ext.size > size => report.find(
                Some(size),
                None,
                format!("the saved checkpoint covers {} entries but the log has {size}: entries from {size} on were removed", ext.size),
            ),
            None if ext.size == 0 => {}
            None => report.find(None, None, format!("the saved checkpoint of size {}: the tree could not be recomputed that far", ext.size)),
        }
    }
    Ok(report)
}

/// What was read of a chunk: entries the backend's fast path found all right, or what
/// is kept of each, to be checked in full.
enum Fetched {
    Quick(QuickChunk),
    Full(Vec<StoredEntry>),
}

/// Reads entries `[from, to)`: through the backend's fast path when none of them is
/// archived and it found every one right, else all that is kept of each.
async fn fetch(
    store: &dyn Store,
    org: &str,
    from: u64,
    to: u64,
    archived: &BTreeMap<u64, Vec<u8>>,
) -> Result<Fetched, StoreError> {
    if archived.range(from..to).next().is_none() {
        if let Some(q) = store.quick_entries(org, from, to).await? {
            let whole = q.entries.len() as u64 == to - from && q.entries.iter().zip(from..).all(|(e, s)| e.seq == s);
            if whole {
                return Ok(Fetched::Quick(q));
            }
        }
    }
    Ok(Fetched::Full(store.stored_entries(org, from, to).await?))
}

/// The entries of `[from, to)` with archived bytes filling their seqs, one per seq (a
/// second row claiming a seq, or an entry both archived and stored, is a finding), and
/// whether each entry's bytes came from the archive (its row is gone by design).
fn fill(
    entries: Vec<StoredEntry>,
    from: u64,
    to: u64,
    archived: &mut BTreeMap<u64, Vec<u8>>,
    report: &mut Report,
) -> (Vec<StoredEntry>, Vec<bool>) {
    // Archived entries fill their seqs; an entry both archived and stored is a finding.
    let mut filled = Vec::with_capacity((to - from) as usize);
    // Whether each entry's bytes came from the archive (its row is gone by design).
    let mut archived_here = Vec::with_capacity((to - from) as usize);
    let mut stored = entries.into_iter().peekable();
    for seq in from..to {
        let here = stored.next_if(|e| e.seq == seq);
        // A second row claiming the same seq (its unique index dropped).
        while let Some(dup) = stored.next_if(|e| e.seq == seq) {
            let id = dup.row.as_ref().map(|r| r.id);
            report.find_derived(Some(seq), id, "a second stored row claims its seq");
        }
        let arch = archived.remove(&seq);
        archived_here.push(arch.is_some() && here.as_ref().is_none_or(|e| e.leaf.is_none()));
        match (here, arch) {
            (Some(e), Some(_)) if e.leaf.is_some() => {
                report.find(Some(seq), None, "it is both archived and stored");
                filled.push(e);
            }
            (Some(_), Some(leaf)) => {
                // Retention deletes the row with the leaf: a row left is a finding.
                let misplaced = Some("its indexed row outlived its archiving".to_string());
                filled.push(StoredEntry { seq, leaf: Some(leaf), row: None, misplaced, search: None });
            }
            (None, Some(leaf)) => {
                filled.push(StoredEntry { seq, leaf: Some(leaf), row: None, misplaced: None, search: None });
            }
            (Some(e), None) => filled.push(e),
            (None, None) => filled.push(StoredEntry { seq, leaf: None, row: None, misplaced: None, search: None }),
        }
    }
    (filled, archived_here)
}
