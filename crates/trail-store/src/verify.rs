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

use trail_core::{
    checkpoint,
    merkle::{leaf_hash, Frontier, Hash},
    Event,
};
use uuid::Uuid;

use crate::{archive::Archive, rollup::Tally, Store, StoreError};

/// Entries read and checked per step.
const CHUNK: u64 = 8192;
/// Findings kept in a report; the rest are counted.
const MAX_FINDINGS: usize = 1000;

pub use crate::indexed::IndexedCopy;
pub(crate) use crate::indexed::{ip_bytes, outcome_code, LeafView};

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

/// A run of entries that no checkpoint between them covers: the first seq and the
/// earliest and latest received times.
#[derive(Default)]
struct Run {
    first: Option<u64>,
    received: Option<(i64, i64)>,
}

impl Run {
    fn add(&mut self, seq: u64, received: Option<i64>) {
        self.first.get_or_insert(seq);
        if let Some(t) = received {
            self.received = Some(self.received.map_or((t, t), |(a, b)| (a.min(t), b.max(t))));
        }
    }

    /// Reports a run longer than the signer ever leaves unsigned; `end` is one past its
    /// last entry.
    fn close(&mut self, end: u64, report: &mut Report) {
        if let (Some(first), Some((a, b))) = (self.first, self.received) {
            if b - a > crate::seal::MAX_UNSIGNED_SPAN_US {
                let at = |us: i64| trail_core::Timestamp(us).to_rfc3339();
                report.find(
                    Some(first),
                    None,
                    format!(
                        "entries {first} to {} were received from {} to {} with no signed checkpoint among them: checkpoints were removed",
                        end - 1,
                        at(a),
                        at(b)
                    ),
                );
            }
        }
        *self = Run::default();
    }
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

/// An entry after its own checks: the leaf hash the tree takes for it (if any) and what
/// was wrong.
struct Checked {
    seq: u64,
    hash: Option<Hash>,
    id: Option<Uuid>,
    /// When the entry was received, as its bytes say.
    received: Option<i64>,
    problems: Vec<String>,
    /// The indexed copy its bytes call for, when it was worked out (the slow path).
    expected: Option<IndexedCopy>,
}

/// The per-entry checks, which need nothing but the entry itself: the fast path reads
/// only the indexed fields; anything off is read again in full to say what differs.
fn check_entry(org: &str, e: &StoredEntry) -> Checked {
    if let (Some(leaf), Some(row), None, None) = (&e.leaf, &e.row, &e.misplaced, &e.search) {
        if let Ok(view) = serde_json::from_slice::<LeafView<'_>>(leaf) {
            if view.seq == e.seq && view.org == org && view.matches(row) {
                return Checked {
                    seq: e.seq,
                    hash: Some(leaf_hash(leaf)),
                    id: Some(view.id),
                    received: Some(view.received_at.0),
                    problems: Vec::new(),
                    expected: None,
                };
            }
        }
    }
    check_in_full(org, e)
}

/// The per-entry checks on the whole event, naming each difference.
fn check_in_full(org: &str, e: &StoredEntry) -> Checked {
    let mut problems = Vec::new();
    let mut id = e.row.as_ref().map(|r| r.id);
    let mut received = None;
    let mut expected = None;
    if let Some(m) = &e.misplaced {
        problems.push(m.clone());
    }
    let hash = match &e.leaf {
        None => {
            problems.push(if e.row.is_some() {
                "its stored event is missing (its indexed row is still there)".into()
            } else {
                "it is missing".into()
            });
            None
        }
        Some(leaf) => {
            match Event::from_leaf(leaf) {
                Ok(ev) => {
                    id = Some(ev.id);
                    received = Some(ev.received_at.0);
                    if ev.seq != e.seq || ev.org != org {
                        problems.push(format!("its stored JSON names entry {} of {}", ev.seq, ev.org));
                    }
                    let want = IndexedCopy::of(&ev);
                    match &e.row {
                        None => problems.push("its indexed row is missing, so lists and filters hide it".into()),
                        Some(row) => {
                            let diff = want.differences(row);
                            if !diff.is_empty() {
                                problems.push(format!("its indexed copy differs: {}", diff.join("; ")));
                            }
                        }
                    }
                    expected = Some(want);
                    if let Some(s) = &e.search {
                        let want = (s.of)(&ev);
                        if want != s.words {
                            let missing: Vec<&String> = want.iter().filter(|w| !s.words.contains(w)).take(5).collect();
                            let extra: Vec<&String> = s.words.iter().filter(|w| !want.contains(w)).take(5).collect();
                            problems.push(format!(
                                "its search entries differ (missing {missing:?}, extra {extra:?}), so searches miss or invent it"
                            ));
                        }
                    }
                }
                Err(err) => problems.push(format!("its stored bytes are not an event ({err})")),
            }
            Some(leaf_hash(leaf))
        }
    };
    Checked { seq: e.seq, hash, id, received, problems, expected }
}

/// Checks a chunk of entries on every core, in seq order; also counts their rows as
/// the per-day counts must (`Tally`).
fn check_all(org: &str, entries: Vec<StoredEntry>) -> (Vec<Checked>, Tally) {
    let part = |part: &[StoredEntry]| {
        let checked = part.iter().map(|e| check_entry(org, e)).collect::<Vec<_>>();
        // An online event counts as its bytes say (a changed row is its own finding,
        // not the counts'); counted with borrowed keys, owned once per chunk.
        let mut counts = crate::rollup::Counter::default();
        for (e, c) in part.iter().zip(&checked) {
            if let Some(row) = &e.row {
                match (&c.expected, c.problems.is_empty()) {
                    (Some(want), false) => counts.add(want),
                    _ => counts.add(row),
                }
            }
        }
        let tally = counts.into_tally();
        (checked, tally)
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
    if cores == 1 || entries.len() < 256 {
        return part(&entries);
    }
    let per = entries.len().div_ceil(cores);
    std::thread::scope(|s| {
        let handles: Vec<_> = entries.chunks(per).map(|p| s.spawn(move || part(p))).collect();
        let mut out = (Vec::with_capacity(entries.len()), Tally::default());
        for h in handles {
            let (checked, tally) = h.join().unwrap_or_default();
            out.0.extend(checked);
            out.1.absorb(tally);
        }
        out
    })
}

/// The stored tree nodes of one level, read ahead in index order.
struct Level {
    level: u32,
    buffered: std::collections::VecDeque<(u64, Hash)>,
    /// Indexes below this were read.
    read_to: u64,
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
            match a.read(f) {
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
    let mut tree = Frontier::default();
    // The tree cannot be recomputed past an entry whose hash is unknown.
    let mut broken_at: Option<u64> = None;
    let mut levels: Vec<Level> = Vec::new();
    let mut roots: BTreeMap<u64, Hash> = BTreeMap::new();
    let wanted: Vec<u64> = signed.keys().copied().chain(external.as_ref().map(|c| c.size)).collect();
    let mut run = Run::default();
    let mut rollups = Tally::default();
    let mut from = 0u64;
    let mut next =
        if from < end { Some(store.stored_entries(org, from, (from + CHUNK).min(end)).await?) } else { None };
    while let Some(mut entries) = next.take() {
        let to = (from + CHUNK).min(end);
        // Archived entries fill their seqs; an entry both archived and stored is a finding.
        let mut filled = Vec::with_capacity((to - from) as usize);
        // Whether each entry's bytes came from the archive (its row is gone by design).
        let mut archived_here = Vec::with_capacity((to - from) as usize);
        let mut stored = entries.drain(..).peekable();
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
        from = to;
        // Three things at once: this chunk checked on every core, its tree nodes read,
        // and the next chunk read.
        let top = 64 - (to.max(1)).leading_zeros();
        while levels.len() <= top as usize {
            levels.push(Level { level: levels.len() as u32, buffered: Default::default(), read_to: 0 });
        }
        let org_owned = org.to_string();
        let checking = tokio::task::spawn_blocking(move || check_all(&org_owned, filled));
        let reading_nodes = async {
            let ranges: Vec<(u32, u64, u64)> = levels
                .iter()
                .filter(|l| (to >> l.level) > l.read_to)
                .map(|l| (l.level, l.read_to, to >> l.level))
                .collect();
            let got = store.tree_nodes_many(org, ranges.clone()).await?;
            Ok::<_, StoreError>(
                ranges.into_iter().zip(got).map(|((level, _, want_to), g)| (level, want_to, g)).collect::<Vec<_>>(),
            )
        };
        let reading_next = async {
            match from < end {
                true => store.stored_entries(org, from, (from + CHUNK).min(end)).await.map(Some),
                false => Ok(None),
            }
        };
        let (checked, nodes, upcoming) = tokio::join!(checking, reading_nodes, reading_next);
        let (checked, counted) = checked.map_err(|_| StoreError::Closed)?;
        rollups.absorb(counted);
        for (level, want_to, got) in nodes? {
            let l = &mut levels[level as usize];
            l.buffered.extend(got);
            l.read_to = want_to;
        }
        next = upcoming?;
        for (c, was_archived) in checked.into_iter().zip(archived_here) {
            let mut problems = c.problems;
            if was_archived {
                problems.retain(|p| !p.starts_with("its indexed row is missing"));
            }
            let recorded = take_node(&mut levels[0], c.seq);
            let hash = match (c.hash, recorded) {
                (Some(h), Some(r)) if h == r => Some(h),
                (Some(h), Some(_)) => {
                    problems.push("its bytes differ from its recorded leaf hash".into());
                    Some(h)
                }
                (Some(h), None) => {
                    problems.push("no leaf hash is recorded for it".into());
                    Some(h)
                }
                (None, r) => r,
            };
            for p in problems {
                if is_derived(&p) {
                    report.find_derived(Some(c.seq), c.id, p);
                } else {
                    report.find(Some(c.seq), c.id, p);
                }
            }
            run.add(c.seq, c.received);
            if signed.contains_key(&(c.seq + 1)) {
                run.close(c.seq + 1, &mut report);
            }
            match hash {
                Some(h) if broken_at.is_none() => {
                    for (level, idx, node) in tree.push(h).into_iter().skip(1) {
                        report.nodes += 1;
                        match take_node(&mut levels[level as usize], idx) {
                            Some(stored) if stored == node => {}
                            Some(_) => report.find(None, None, format!(
                                "tree node level {level} index {idx} (entries {} to {}) differs from the hash of those entries, so proofs through it are wrong",
                                idx << level,
                                ((idx + 1) << level) - 1
                            )),
                            None => report.find(None, None, format!(
                                "tree node level {level} index {idx} (entries {} to {}) is not stored",
                                idx << level,
                                ((idx + 1) << level) - 1
                            )),
                        }
                    }
                    if wanted.contains(&tree.size) {
                        roots.insert(tree.size, tree.root());
                    }
                }
                Some(_) => {}
                None => {
                    if broken_at.is_none() {
                        broken_at = Some(c.seq);
                    }
                }
            }
        }
    }
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
    for stray in store.stray_rows(org, end).await? {
        report.find_derived(None, None, stray);
    }
    // What is derived from the rows and bytes beyond each row: the per-day counts, and
    // each backend's own (the search index, search words, idempotency keys).
    let stored = store.stored_rollups(org).await?;
    for d in crate::rollup::differences(&rollups, &stored, 20) {
        report.find_derived(None, None, d);
    }
    for d in store.derived_findings(org).await? {
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

/// Whether a per-entry problem lies in what is derived from the entry's bytes.
fn is_derived(problem: &str) -> bool {
    [
        "its indexed copy differs",
        "its indexed row is missing",
        "its search entries differ",
        "its row sits at position",
        "its indexed row outlived",
    ]
    .iter()
    .any(|p| problem.starts_with(p))
}

/// The stored node at `idx` of a level, if it is next (nodes before it are missing
/// complete subtrees already reported, or extras).
fn take_node(level: &mut Level, idx: u64) -> Option<Hash> {
    while let Some(&(i, h)) = level.buffered.front() {
        if i < idx {
            level.buffered.pop_front();
            continue;
        }
        if i == idx {
            level.buffered.pop_front();
            return Some(h);
        }
        break;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(v: serde_json::Value) -> Event {
        let new = trail_core::event::parse_event(v).unwrap();
        Event::from_new(new, Uuid::now_v7(), "acme", 7, trail_core::Timestamp(1_710_000_000_000_000))
    }

    type Edit = Box<dyn Fn(&mut IndexedCopy)>;

    /// The fast path sees a row as right exactly when the full comparison does.
    #[test]
    fn the_fast_path_agrees_with_the_full_comparison() {
        let full = event(serde_json::json!({
            "action": "Service:Deploy", "timestamp": "2024-03-01T10:00:00.5+02:00", "status_code": 503,
            "actor": {"id": "u\"1", "name": "Zoë \\ Ünal", "email": "z@x.com", "company": "globex", "type": "user"},
            "resource": {"type": "svc", "id": "r\n1", "name": "api", "parent": {"type": "p", "id": "q"}},
            "context": {"workspace": {"id": "w1", "name": "Prod"}, "project": "p", "cluster": "c", "namespace": "n"},
            "source_ip": "::ffff:10.0.0.1", "request_id": "req-1", "user_agent": "ua",
            "details": {"n": 184467440737095516170000u128.to_string(), "deep": [{"a": {"b": null}}]},
            "before": {"x": 1}, "after": {"x": 2}, "error": "e", "idempotency_key": "k"
        }));
        let bare = event(serde_json::json!({"action": "auth:login"}));
        let ws_string = event(serde_json::json!({"action": "a:b", "context": {"workspace": "w-only"}}));
        for ev in [full, bare, ws_string] {
            let leaf = ev.to_leaf();
            let view: LeafView<'_> = serde_json::from_slice(&leaf).unwrap();
            let row = IndexedCopy::of(&Event::from_leaf(&leaf).unwrap());
            assert!(view.matches(&row), "{}", String::from_utf8_lossy(&leaf));
            let edits: Vec<Edit> = vec![
                Box::new(|r| r.id = Uuid::nil()),
                Box::new(|r| r.ts -= 1),
                Box::new(|r| r.received += 1),
                Box::new(|r| r.category.push('x')),
                Box::new(|r| r.operation.push('x')),
                Box::new(|r| r.result = 9),
                Box::new(|r| r.status_code = Some(1)),
                Box::new(|r| r.actor_id = Some("x".into())),
                Box::new(|r| r.actor_name = None),
                Box::new(|r| r.actor_email = Some("y".into())),
                Box::new(|r| r.company = Some("globex".into())),
                Box::new(|r| r.request_id = Some("other".into())),
                Box::new(|r| r.resource_type = Some("t".into())),
                Box::new(|r| r.resource_id = Some("i".into())),
                Box::new(|r| r.resource_name = Some("n".into())),
                Box::new(|r| r.workspace_id = Some("w9".into())),
                Box::new(|r| r.workspace_name = Some("W".into())),
                Box::new(|r| r.project = Some("q".into())),
                Box::new(|r| r.cluster = Some("k".into())),
                Box::new(|r| r.namespace = Some("m".into())),
                Box::new(|r| r.ip = Some([1; 16])),
                Box::new(|r| r.idem = Some("other".into())),
            ];
            for (i, edit) in edits.iter().enumerate() {
                let mut changed = row.clone();
                edit(&mut changed);
                if changed == row {
                    continue;
                }
                assert!(!view.matches(&changed), "edit {i} of {}", String::from_utf8_lossy(&leaf));
                assert!(!row.differences(&changed).is_empty(), "edit {i}");
            }
        }
    }
}
