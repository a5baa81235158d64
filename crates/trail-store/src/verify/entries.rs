//! The per-entry checks of `verify`, which need nothing but the entry itself: its bytes
//! name their seq and organization, parse as an event, hash to a leaf, and its indexed
//! row holds what they say. The full path reads the whole event and names each
//! difference; the fast path reads only the indexed fields, and a backend may run it
//! where it reads (`Store::quick_entries`), comparing its rows in place.

use trail_core::{merkle::leaf_hash, merkle::Hash, Event};
use uuid::Uuid;

use super::StoredEntry;
use trail_core::LeafView;

use crate::rollup::{Counter, Tally};
use crate::row::IndexedCopy;
use crate::row::RowRef;

/// An entry after its own checks: the leaf hash the tree takes for it (if any) and what
/// was wrong.
pub(super) struct Checked {
    pub(super) seq: u64,
    pub(super) hash: Option<Hash>,
    pub(super) id: Option<Uuid>,
    /// When the entry was received, as its bytes say.
    pub(super) received: Option<i64>,
    pub(super) problems: Vec<Problem>,
    /// The indexed copy its bytes call for, when it was worked out (the slow path).
    pub(super) expected: Option<IndexedCopy>,
}

/// What can be wrong with one entry. Each says whether it lies in what is derived from
/// the entry's bytes (which `repair` rebuilds) or in the bytes, their hash or their
/// place in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Problem {
    /// Its indexed row is where it should not be (the backend says how).
    Misplaced(String),
    /// Its stored event is missing; `row_left`: its indexed row is still there.
    Missing {
        row_left: bool,
    },
    /// Its bytes name another entry.
    NamesOther {
        seq: u64,
        org: String,
    },
    NotAnEvent(String),
    RowMissing,
    RowDiffers(Vec<String>),
    SearchDiffers {
        missing: Vec<String>,
        extra: Vec<String>,
    },
    HashDiffers,
    NoLeafHash,
}

impl Problem {
    /// Whether it lies in a structure derived from the bytes.
    pub(super) fn derived(&self) -> bool {
        matches!(
            self,
            Problem::Misplaced(_) | Problem::RowMissing | Problem::RowDiffers(_) | Problem::SearchDiffers { .. }
        )
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Misplaced(m) => f.write_str(m),
            Problem::Missing { row_left: true } => {
                f.write_str("its stored event is missing (its indexed row is still there)")
            }
            Problem::Missing { row_left: false } => f.write_str("it is missing"),
            Problem::NamesOther { seq, org } => write!(f, "its stored JSON names entry {seq} of {org}"),
            Problem::NotAnEvent(e) => write!(f, "its stored bytes are not an event ({e})"),
            Problem::RowMissing => f.write_str("its indexed row is missing, so lists and filters hide it"),
            Problem::RowDiffers(diff) => write!(f, "its indexed copy differs: {}", diff.join("; ")),
            Problem::SearchDiffers { missing, extra } => write!(
                f,
                "its search entries differ (missing {missing:?}, extra {extra:?}), so searches miss or invent it"
            ),
            Problem::HashDiffers => f.write_str("its bytes differ from its recorded leaf hash"),
            Problem::NoLeafHash => f.write_str("no leaf hash is recorded for it"),
        }
    }
}

/// The per-entry checks, which need nothing but the entry itself: the fast path reads
/// only the indexed fields; anything off is read again in full to say what differs.
fn check_entry(org: &str, e: &StoredEntry) -> Checked {
    if let (Some(leaf), Some(row), None, None) = (&e.leaf, &e.row, &e.misplaced, &e.search) {
        if let Some(view) = read_view(leaf) {
            if view.seq == e.seq && view.org == org && row.as_ref().matches(&view) {
                return Checked {
                    seq: e.seq,
                    hash: Some(leaf_hash(leaf)),
                    id: Some(row.id),
                    received: Some(row.received),
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
        problems.push(Problem::Misplaced(m.clone()));
    }
    let hash = match &e.leaf {
        None => {
            problems.push(Problem::Missing { row_left: e.row.is_some() });
            None
        }
        Some(leaf) => {
            match Event::from_leaf(leaf) {
                Ok(ev) => {
                    id = Some(ev.id);
                    received = Some(ev.received_at.0);
                    if ev.seq != e.seq || ev.org != org {
                        problems.push(Problem::NamesOther { seq: ev.seq, org: ev.org.clone() });
                    }
                    let want = IndexedCopy::of(&ev);
                    match &e.row {
                        None => problems.push(Problem::RowMissing),
                        Some(row) => {
                            let diff = want.differences(row);
                            if !diff.is_empty() {
                                problems.push(Problem::RowDiffers(diff));
                            }
                        }
                    }
                    expected = Some(want);
                    if let Some(s) = &e.search {
                        let want = (s.of)(&ev);
                        if want != s.words {
                            let missing = want.iter().filter(|w| !s.words.contains(w)).take(5).cloned().collect();
                            let extra = s.words.iter().filter(|w| !want.contains(w)).take(5).cloned().collect();
                            problems.push(Problem::SearchDiffers { missing, extra });
                        }
                    }
                }
                Err(err) => problems.push(Problem::NotAnEvent(err.to_string())),
            }
            Some(leaf_hash(leaf))
        }
    };
    Checked { seq: e.seq, hash, id, received, problems, expected }
}

/// The indexed fields of an entry's bytes: by the scanner, or by serde where it gives way.
fn read_view(leaf: &[u8]) -> Option<LeafView<'_>> {
    LeafView::read(leaf).ok()
}

/// An entry the fast path found right: what the tree and the runs need of it.
#[derive(Debug, Clone, Copy)]
pub struct Quick {
    pub seq: u64,
    pub hash: Hash,
    pub id: Uuid,
    pub received: i64,
}

/// A range of entries every one of which the fast path found right, their rows counted
/// as the per-day counts count them.
#[derive(Debug, Default)]
pub struct QuickChunk {
    pub entries: Vec<Quick>,
    pub tally: Tally,
}

impl QuickChunk {
    /// Two consecutive ranges as one.
    pub fn join(mut self, next: QuickChunk) -> QuickChunk {
        self.entries.extend(next.entries);
        self.tally.absorb(next.tally);
        self
    }
}

/// The fast path on one entry whose bytes and row a backend reads in place: `Some`
/// only when its bytes name `seq` and `org` and `row` holds what they say (the row is
/// then counted). Where the row sits is the backend's own check.
pub fn quick_check(org: &str, seq: u64, leaf: &[u8], row: &RowRef<'_>, counts: &mut Counter) -> Option<Quick> {
    let view = read_view(leaf)?;
    if view.seq != seq || view.org != org || !row.matches(&view) {
        return None;
    }
    counts.add(row);
    Some(Quick { seq, hash: leaf_hash(leaf), id: row.id, received: row.received })
}

impl From<Quick> for Checked {
    fn from(q: Quick) -> Checked {
        Checked {
            seq: q.seq,
            hash: Some(q.hash),
            id: Some(q.id),
            received: Some(q.received),
            problems: Vec::new(),
            expected: None,
        }
    }
}

/// Checks a chunk of entries on every core, in seq order; also counts their rows as
/// the per-day counts must (`Tally`).
pub(super) fn check_all(org: &str, entries: Vec<StoredEntry>) -> (Vec<Checked>, Tally) {
    let part = |part: &[StoredEntry]| {
        let checked = part.iter().map(|e| check_entry(org, e)).collect::<Vec<_>>();
        // An online event counts as its bytes say (a changed row is its own finding,
        // not the counts'); counted with borrowed keys, owned once per chunk.
        let mut counts = Counter::default();
        for (e, c) in part.iter().zip(&checked) {
            if let Some(row) = &e.row {
                match (&c.expected, c.problems.is_empty()) {
                    (Some(want), false) => counts.add(&want.as_ref()),
                    _ => counts.add(&row.as_ref()),
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
            assert!(row.as_ref().matches(&view), "{}", String::from_utf8_lossy(&leaf));
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
                assert!(!changed.as_ref().matches(&view), "edit {i} of {}", String::from_utf8_lossy(&leaf));
                assert!(!row.differences(&changed).is_empty(), "edit {i}");
            }
        }
    }
}
