//! What the verifier reads from SQLite: each entry's stored bytes (`leaves`) beside its
//! indexed row (`events`), and the stored tree nodes. The FTS5 index is contentless, so
//! its entries cannot be read back per event and are not compared here.

use rusqlite::{params, Connection, OptionalExtension};
use trail_core::merkle::Hash;
use trail_core::Event;

use super::{blob, known_org, to_hash, SLOTS};
use crate::{
    rollup::Counter,
    row::{IndexedCopy, RowRef},
    verify::{quick_check, QuickChunk, StoredEntry},
    StoreError,
};

/// How far (µs) events sharing a microsecond may spill into the following ones.
const SPILL_LIMIT: i64 = 1_000_000;

/// `i64` bound of a seq or index range (SQLite integers are signed).
fn bound(n: u64) -> i64 {
    n.min(i64::MAX as u64) as i64
}

fn text(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Option<String>> {
    r.get(i)
}

/// The stored bytes of the entries with seq in `[from, to)`, in seq order.
pub(super) fn leaves_in(c: &Connection, org: &str, from: u64, to: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    let org_id = known_org(c, org)?;
    let mut leaves =
        c.prepare_cached("SELECT seq, leaf FROM leaves WHERE org_id = ?1 AND seq >= ?2 AND seq < ?3 ORDER BY seq")?;
    let mut q = leaves.query(params![org_id, bound(from), bound(to)])?;
    let mut out = Vec::with_capacity((to - from).min(1 << 16) as usize);
    while let Some(r) = q.next()? {
        out.push((r.get::<_, i64>(0)? as u64, blob(r, 1)?.to_vec()));
    }
    Ok(out)
}

/// The indexed rows of the entries with seq in `[from, to)`, in seq order, each with
/// what is wrong with where it sits.
pub(super) fn rows_in(
    c: &Connection,
    org: &str,
    from: u64,
    to: u64,
) -> Result<Vec<(u64, IndexedCopy, Option<String>)>, StoreError> {
    let org_id = known_org(c, org)?;
    let mut rows = c.prepare_cached(
        "SELECT seq, pos, id, ts, received, category, operation, result, status_code, actor_id, actor_name, \
         actor_email, company, request_id, resource_type, resource_id, resource_name, workspace_id, workspace_name, \
         project, cluster, namespace, ip, idem FROM events WHERE org_id = ?1 AND seq >= ?2 AND seq < ?3 ORDER BY seq",
    )?;
    let mut out = Vec::with_capacity((to - from).min(1 << 16) as usize);
    let mut q = rows.query(params![org_id, bound(from), bound(to)])?;
    while let Some(r) = q.next()? {
        let seq = r.get::<_, i64>(0)? as u64;
        let pos: i64 = r.get(1)?;
        let id = uuid::Uuid::from_slice(blob(r, 2)?).unwrap_or_default();
        let ip = r.get::<_, Option<Vec<u8>>>(22)?.map(|b| <[u8; 16]>::try_from(b.as_slice()).unwrap_or_default());
        let row = IndexedCopy {
            id,
            ts: r.get(3)?,
            received: r.get(4)?,
            category: r.get(5)?,
            operation: r.get(6)?,
            result: r.get(7)?,
            status_code: r.get(8)?,
            actor_id: text(r, 9)?,
            actor_name: text(r, 10)?,
            actor_email: text(r, 11)?,
            company: text(r, 12)?,
            request_id: text(r, 13)?,
            resource_type: text(r, 14)?,
            resource_id: text(r, 15)?,
            resource_name: text(r, 16)?,
            workspace_id: text(r, 17)?,
            workspace_name: text(r, 18)?,
            project: text(r, 19)?,
            cluster: text(r, 20)?,
            namespace: text(r, 21)?,
            ip,
            idem: text(r, 23)?,
        };
        // The row's position orders lists by time: it lies in the row's own microsecond,
        // or a little after when more events than slots shared it (they spill forward).
        let spill = pos.div_euclid(SLOTS) - row.ts;
        let misplaced = (!(0..SPILL_LIMIT).contains(&spill)).then(|| {
            format!(
                "its row sits at position {pos}, the time {}, not its own time (lists show it out of order)",
                trail_core::Timestamp(pos.div_euclid(SLOTS)).to_rfc3339_micros()
            )
        });
        out.push((seq, row, misplaced));
    }
    Ok(out)
}

/// Leaves and rows of the same seqs (each in seq order), as entries in seq order.
pub(super) fn merge(leaves: Vec<(u64, Vec<u8>)>, rows: Vec<(u64, IndexedCopy, Option<String>)>) -> Vec<StoredEntry> {
    let mut out = Vec::with_capacity(leaves.len().max(rows.len()));
    let (mut leaves, mut rows) = (leaves.into_iter().peekable(), rows.into_iter().peekable());
    loop {
        let next = match (leaves.peek(), rows.peek()) {
            (None, None) => break,
            (Some(l), Some(r)) => l.0.min(r.0),
            (Some(l), None) => l.0,
            (None, Some(r)) => r.0,
        };
        let leaf = leaves.next_if(|l| l.0 == next).map(|l| l.1);
        let (row, misplaced) = rows.next_if(|r| r.0 == next).map_or((None, None), |r| (Some(r.1), r.2));
        out.push(StoredEntry { seq: next, leaf, row, misplaced, search: None });
    }
    out
}

pub(super) fn tree_nodes(
    c: &Connection,
    org: &str,
    level: u32,
    from: u64,
    to: u64,
) -> Result<Vec<(u64, Hash)>, StoreError> {
    let org_id = known_org(c, org)?;
    let mut stmt = c.prepare_cached(
        "SELECT idx, hash FROM tree_nodes WHERE org_id = ?1 AND level = ?2 AND idx >= ?3 AND idx < ?4 ORDER BY idx",
    )?;
    let mut q = stmt.query(params![org_id, level, bound(from), bound(to)])?;
    let mut out = Vec::new();
    while let Some(r) = q.next()? {
        out.push((r.get::<_, i64>(0)? as u64, to_hash(blob(r, 1)?)?));
    }
    Ok(out)
}

pub(super) fn log_end(c: &Connection, org: &str) -> Result<u64, StoreError> {
    let org_id = known_org(c, org)?;
    let max: Option<i64> = c.query_row(
        "SELECT MAX(m) FROM (SELECT MAX(seq) AS m FROM leaves WHERE org_id = ?1 \
         UNION ALL SELECT MAX(seq) FROM events WHERE org_id = ?1 \
         UNION ALL SELECT MAX(idx) FROM tree_nodes WHERE org_id = ?1 AND level = 0)",
        [org_id],
        |r| r.get(0),
    )?;
    Ok(max.map_or(0, |m| m as u64 + 1))
}

/// Rows of `org` outside its log of `end` entries, or sharing an id with another row
/// (a second row of one seq is found by the verifier as it reads the entries). Each
/// check is an index range, not a scan.
pub(super) fn stray_rows(c: &Connection, org: &str, end: u64) -> Result<Vec<String>, StoreError> {
    let org_id = known_org(c, org)?;
    let end = bound(end);
    let mut out = Vec::new();
    let outside: [(&str, &str); 4] = [
        ("SELECT seq, id FROM events WHERE org_id = ?1 AND seq < 0 AND ?2 >= 0 LIMIT 20", "an indexed row"),
        ("SELECT seq, id FROM events WHERE org_id = ?1 AND seq >= ?2 LIMIT 20", "an indexed row"),
        ("SELECT seq, NULL FROM leaves WHERE org_id = ?1 AND seq < 0 AND ?2 >= 0 LIMIT 20", "a stored event"),
        ("SELECT seq, NULL FROM leaves WHERE org_id = ?1 AND seq >= ?2 LIMIT 20", "a stored event"),
    ];
    for (sql, what) in outside {
        let mut stmt = c.prepare_cached(sql)?;
        let mut q = stmt.query(params![org_id, end])?;
        while let Some(r) = q.next()? {
            let seq: i64 = r.get(0)?;
            let id = r.get::<_, Option<Vec<u8>>>(1)?.and_then(|b| uuid::Uuid::from_slice(&b).ok());
            let id = id.map(|id| format!(" (id {id})")).unwrap_or_default();
            out.push(format!("{what} at seq {seq}{id} lies outside the log's entries 0 to {}", end - 1));
        }
    }
    // Tree nodes: a level outside 0..=63, or an index below 0 on any level.
    let mut odd =
        c.prepare_cached("SELECT level, idx FROM tree_nodes WHERE org_id = ?1 AND (level < 0 OR level > 63) LIMIT 20")?;
    let mut nodes: Vec<(i64, i64)> =
        odd.query_map([org_id], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
    let mut below =
        c.prepare_cached("SELECT idx FROM tree_nodes WHERE org_id = ?1 AND level = ?2 AND idx < 0 LIMIT 1")?;
    for level in 0..64i64 {
        if let Some(idx) = below.query_row(params![org_id, level], |r| r.get::<_, i64>(0)).optional()? {
            nodes.push((level, idx));
        }
    }
    for (level, idx) in nodes {
        out.push(format!("a tree node at level {level} index {idx} lies outside the log's tree"));
    }
    // Over every organization: while the unique index on `id` stands as the schema made
    // it, SQLite itself refuses a second row with an id; only without it (dropped, or
    // made another) are the ids counted, over the whole table.
    let unique: Option<String> = c
        .query_row("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'events_id'", [], |r| r.get(0))
        .optional()?;
    if unique.as_deref() == Some("CREATE UNIQUE INDEX events_id ON events(id)") {
        return Ok(out);
    }
    let mut ids = c.prepare_cached(
        "SELECT (SELECT MIN(e.seq) FROM events e WHERE e.id = d.id), d.id FROM (SELECT id FROM events \
         GROUP BY id HAVING COUNT(*) > 1 LIMIT 20) d",
    )?;
    let mut q = ids.query([])?;
    while let Some(r) = q.next()? {
        let (seq, id): (i64, Vec<u8>) = (r.get(0)?, r.get(1)?);
        let id = uuid::Uuid::from_slice(&id).unwrap_or_default();
        out.push(format!("more than one indexed row has the id {id} (one at seq {seq}): an id is claimed twice"));
    }
    Ok(out)
}

/// The per-day counts stored for `org`.
pub(super) fn stored_rollups(c: &Connection, org: &str) -> Result<crate::rollup::StoredRollups, StoreError> {
    let org_id = known_org(c, org)?;
    let mut out = crate::rollup::StoredRollups::default();
    let mut days = c.prepare_cached("SELECT day, category, result, is_view, n FROM day_counts WHERE org_id = ?1")?;
    let mut q = days.query([org_id])?;
    while let Some(r) = q.next()? {
        out.days.push((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? != 0, r.get(4)?));
    }
    let mut actors = c.prepare_cached("SELECT day, category, actor_email, n FROM day_actors WHERE org_id = ?1")?;
    let mut q = actors.query([org_id])?;
    while let Some(r) = q.next()? {
        out.actors.push((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?));
    }
    Ok(out)
}

/// Findings in the full-text index, the search words and the idempotency keys of
/// `org`:
///
/// - the index's document list of the organization's token must be exactly the
///   positions of its rows (an event missing there vanishes from every filter and
///   search; an extra document is one no row has);
/// - every plain word in the index's vocabulary must be in `search_words` (prefix
///   searches expand through it);
/// - every row's idempotency key must have its key record, naming that row's seq.
pub(super) fn derived_findings(c: &Connection, org: &str) -> Result<Vec<String>, StoreError> {
    const MAX: usize = 20;
    let org_id = known_org(c, org)?;
    let mut out = Vec::new();
    // The organization's documents in the index, against its rows, both by position
    // (the rows read in seq order from their index and sorted here: SQLite's own sort
    // of 900k rows by position takes longer than reading them).
    let mut rows: Vec<(i64, i64)> = c
        .prepare_cached("SELECT pos, seq FROM events WHERE org_id = ?1")?
        .query_map([org_id], row_pos)?
        .collect::<Result<_, _>>()?;
    rows.sort_unstable();
    let mut docs = c.prepare_cached("SELECT rowid FROM events_fts WHERE events_fts MATCH ?1 ORDER BY rowid")?;
    let mut docs = docs.query([super::index::org_token(org_id)])?;
    let mut rows = rows.into_iter();
    let (mut row, mut doc) = (rows.next(), docs.next()?.map(|r| r.get::<_, i64>(0)).transpose()?);
    while out.len() < MAX && (row.is_some() || doc.is_some()) {
        match (row, doc) {
            (Some((p, _)), Some(d)) if p == d => {
                row = rows.next();
                doc = docs.next()?.map(|r| r.get::<_, i64>(0)).transpose()?;
            }
            (Some((p, seq)), d) if d.is_none_or(|d| p < d) => {
                out.push(format!(
                    "entry {seq}: it is missing from the search index, so every filter and search hides it"
                ));
                row = rows.next();
            }
            (_, Some(d)) => {
                out.push(format!("the search index holds a document of {org} at position {d} that no row has"));
                doc = docs.next()?.map(|r| r.get::<_, i64>(0)).transpose()?;
            }
            _ => break,
        }
    }
    // Plain words the index holds must be known to prefix searches. A term missing
    // from `search_words` is confirmed on an event of this organization holding it:
    // the index also folds diacritics ("José" is "jose" there), which are no words of
    // `search_words`; up to 50 candidates are looked at.
    c.execute_batch("CREATE VIRTUAL TABLE IF NOT EXISTS temp.trail_vocab USING fts5vocab(main, events_fts, row)")?;
    // Read by two-letter prefix ranges of the vocabulary (an index seek each), leaving
    // out the ranges a field token can start with (a field letter and a hex digit), so
    // that the millions of field tokens are not scanned.
    let mut missing = c.prepare_cached(
        "SELECT v.term FROM temp.trail_vocab v LEFT JOIN search_words w ON w.word = v.term \
         WHERE v.term >= ?1 AND v.term < ?2 AND v.term NOT GLOB '*[^a-z]*' AND w.word IS NULL",
    )?;
    let mut candidates = Vec::new();
    for a in b'a'..=b'z' {
        for b in b'a'..=b'z' {
            if (b'g'..=b'y').contains(&a) && (b'a'..=b'f').contains(&b) {
                continue;
            }
            let (from, to) = (format!("{}{}", a as char, b as char), format!("{}{}", a as char, (b + 1) as char));
            let mut q = missing.query([&from, &to])?;
            while let Some(r) = q.next()? {
                let term: String = r.get(0)?;
                if (2..=32).contains(&term.len()) {
                    candidates.push(term);
                }
            }
            if candidates.len() >= 50 {
                break;
            }
        }
    }
    let mut holder = c.prepare_cached(
        "SELECT l.leaf FROM events_fts f JOIN events e ON e.pos = f.rowid \
         JOIN leaves l ON l.org_id = e.org_id AND l.seq = e.seq WHERE events_fts MATCH ?1 LIMIT 3",
    )?;
    let (mut unknown, mut looked) = (Vec::new(), 0);
    for term in candidates {
        looked += 1;
        let mut leaves = holder.query([format!("{} AND \"{term}\"", super::index::org_token(org_id))])?;
        while let Some(l) = leaves.next()? {
            let Ok(ev) = Event::from_leaf(blob(l, 0)?) else { continue };
            let mut text = String::new();
            crate::search_doc::search_text(&ev, &mut text);
            if super::index::plain_words(&text).contains(&term) {
                unknown.push(term);
                break;
            }
        }
        if unknown.len() >= 5 || looked >= 50 {
            break;
        }
    }
    if !unknown.is_empty() {
        out.push(format!(
            "the search words lack words the index holds ({}): prefix searches miss the events that contain them",
            unknown.join(", ")
        ));
    }
    // Idempotency keys: each row's key names the row.
    let mut keys = c.prepare_cached(
        "SELECT e.seq, e.idem, i.seq FROM events e LEFT JOIN idempotency i ON i.org_id = e.org_id AND i.key = e.idem \
         WHERE e.org_id = ?1 AND e.idem IS NOT NULL AND (i.seq IS NULL OR i.seq != e.seq) LIMIT 20",
    )?;
    let mut q = keys.query([org_id])?;
    while let Some(r) = q.next()? {
        let (seq, key, names): (i64, String, Option<i64>) = (r.get(0)?, r.get(1)?, r.get(2)?);
        out.push(match names {
            None => {
                format!("entry {seq}: its idempotency key '{key}' has no key record, so a resend would be stored again")
            }
            Some(other) => format!("entry {seq}: its idempotency key '{key}' is recorded for entry {other}"),
        });
    }
    Ok(out)
}

fn row_pos(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, i64)> {
    Ok((r.get(0)?, r.get(1)?))
}

/// `verify`'s fast path over `[from, to)` (`Store::quick_entries`): each entry's bytes
/// and its row read together and compared in place, nothing copied. `None` as soon as
/// anything is not exactly right (a seq without bytes or row, a second row, a row out
/// of place or differing); `verify` then reads the range in full to name it.
pub(super) fn quick_in(c: &Connection, org: &str, from: u64, to: u64) -> Result<Option<QuickChunk>, StoreError> {
    let org_id = known_org(c, org)?;
    let rows: i64 = c
        .prepare_cached("SELECT count(*) FROM events WHERE org_id = ?1 AND seq >= ?2 AND seq < ?3")?
        .query_row(params![org_id, bound(from), bound(to)], |r| r.get(0))?;
    if rows as u64 != to - from {
        return Ok(None);
    }
    let mut stmt = c.prepare_cached(
        "SELECT l.seq, l.leaf, e.pos, e.id, e.ts, e.received, e.category, e.operation, e.result, e.status_code, \
         e.actor_id, e.actor_name, e.actor_email, e.company, e.request_id, e.resource_type, e.resource_id, \
         e.resource_name, e.workspace_id, e.workspace_name, e.project, e.cluster, e.namespace, e.ip, e.idem \
         FROM leaves l LEFT JOIN events e ON e.org_id = l.org_id AND e.seq = l.seq \
         WHERE l.org_id = ?1 AND l.seq >= ?2 AND l.seq < ?3 ORDER BY l.seq",
    )?;
    let mut q = stmt.query(params![org_id, bound(from), bound(to)])?;
    let mut counts = Counter::default();
    let mut entries = Vec::with_capacity((to - from) as usize);
    let mut want = from;
    while let Some(r) = q.next()? {
        let Some(seq) = r.get_ref(0)?.as_i64().ok().filter(|s| *s as u64 == want) else {
            return Ok(None);
        };
        let (Ok(leaf), Some((pos, row))) = (r.get_ref(1)?.as_blob(), quick_row(r)) else {
            return Ok(None);
        };
        if !(0..SPILL_LIMIT).contains(&(pos.div_euclid(SLOTS) - row.ts)) {
            return Ok(None);
        }
        match quick_check(org, seq as u64, leaf, &row, &mut counts) {
            Some(e) => entries.push(e),
            None => return Ok(None),
        }
        want += 1;
    }
    Ok((want == to).then(|| QuickChunk { entries, tally: counts.into_tally() }))
}

/// The row columns of `quick_in`'s query, borrowed (`None` if any is not as stored).
fn quick_row<'r>(r: &'r rusqlite::Row<'_>) -> Option<(i64, RowRef<'r>)> {
    let int = |i: usize| r.get_ref(i).ok()?.as_i64().ok();
    let opt_int = |i: usize| r.get_ref(i).ok()?.as_i64_or_null().ok();
    let text = |i: usize| r.get_ref(i).ok()?.as_str().ok();
    let opt = |i: usize| r.get_ref(i).ok()?.as_str_or_null().ok();
    let ip = match r.get_ref(23).ok()?.as_blob_or_null().ok()? {
        None => None,
        Some(b) => Some(<[u8; 16]>::try_from(b).ok()?),
    };
    let row = RowRef {
        id: uuid::Uuid::from_slice(r.get_ref(3).ok()?.as_blob().ok()?).ok()?,
        ts: int(4)?,
        received: int(5)?,
        category: text(6)?,
        operation: text(7)?,
        result: int(8)?,
        status_code: opt_int(9)?,
        actor_id: opt(10)?,
        actor_name: opt(11)?,
        actor_email: opt(12)?,
        company: opt(13)?,
        request_id: opt(14)?,
        resource_type: opt(15)?,
        resource_id: opt(16)?,
        resource_name: opt(17)?,
        workspace_id: opt(18)?,
        workspace_name: opt(19)?,
        project: opt(20)?,
        cluster: opt(21)?,
        namespace: opt(22)?,
        ip,
        idem: opt(24)?,
    };
    Some((int(2)?, row))
}
