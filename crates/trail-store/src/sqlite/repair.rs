//! `trail repair` on SQLite: everything derived from an organization's stored bytes,
//! rebuilt from them in one transaction on the writer's connection (between group
//! commits): its rows (filter columns, positions), rows outside the log, the
//! full-text index (contentless, so rebuilt whole, every organization's documents),
//! the search words, the per-day counts and the idempotency keys. The leaves, tree
//! nodes and checkpoints are never touched: `repair::repair` runs only when they verify.

use rusqlite::{params, types::Value as SqlValue, Connection};
use trail_core::Event;

use super::{
    blob, index, known_org,
    writer::{columns, free_pos, INSERT_FTS_SQL, INSERT_SQL},
    SqliteStore, SLOTS,
};
use crate::{repair::Rebuilt, row::IndexedCopy, StoreError};

impl SqliteStore {
    pub(super) async fn rebuild(&self, org: &str) -> Result<Rebuilt, StoreError> {
        let org = org.to_string();
        self.write(move |c| rebuild_blocking(c, &org)).await
    }
}

fn rebuild_blocking(conn: &mut Connection, org: &str) -> Result<Rebuilt, StoreError> {
    let org_id = known_org(conn, org)?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut out = Rebuilt::default();
    let size: i64 = tx.query_row(
        "SELECT IFNULL(MAX(idx) + 1, 0) FROM tree_nodes WHERE org_id = ?1 AND level = 0",
        [org_id],
        |r| r.get(0),
    )?;
    // Rows and bytes outside the log.
    out.strays +=
        tx.execute("DELETE FROM events WHERE org_id = ?1 AND (seq < 0 OR seq >= ?2)", params![org_id, size])? as u64;
    out.strays +=
        tx.execute("DELETE FROM leaves WHERE org_id = ?1 AND (seq < 0 OR seq >= ?2)", params![org_id, size])? as u64;
    out.strays += tx.execute("DELETE FROM tree_nodes WHERE org_id = ?1 AND (idx < 0 OR level < 0)", [org_id])? as u64;
    // Each stored event's row: kept when it is exactly what the bytes say and where
    // they put it, otherwise replaced; a second row of a seq goes.
    {
        let mut entries = tx.prepare(
            "SELECT l.seq, l.leaf, e.pos, e.id, e.ts, e.received, e.category, e.operation, e.result, e.status_code, \
             e.actor_id, e.actor_name, e.actor_email, e.company, e.request_id, e.resource_type, e.resource_id, \
             e.resource_name, e.workspace_id, e.workspace_name, e.project, e.cluster, e.namespace, e.ip, e.idem \
             FROM leaves l LEFT JOIN events e ON e.org_id = l.org_id AND e.seq = l.seq WHERE l.org_id = ?1 \
             ORDER BY l.seq, e.pos",
        )?;
        let mut delete = tx.prepare("DELETE FROM events WHERE pos = ?1")?;
        let mut insert = tx.prepare(INSERT_SQL)?;
        let mut max_in = tx.prepare_cached("SELECT MAX(pos) FROM events WHERE pos >= ?1 AND pos < ?2")?;
        let mut rows = entries.query([org_id])?;
        let mut last_seq = None;
        let mut replace = Vec::new();
        while let Some(r) = rows.next()? {
            let seq: i64 = r.get(0)?;
            let ev = Event::from_leaf(blob(r, 1)?).map_err(|e| StoreError::Corrupt(format!("entry {seq}: {e}")))?;
            let pos: Option<i64> = r.get(2)?;
            let first = last_seq != Some(seq);
            last_seq = Some(seq);
            let Some(pos) = pos else {
                replace.push((None, seq, ev));
                continue;
            };
            let stored = stored_copy(r)?;
            let in_place = (0..1_000_000).contains(&(pos.div_euclid(SLOTS) - ev.timestamp.0));
            if first && in_place && stored == IndexedCopy::of(&ev) {
                continue;
            }
            replace.push((Some(pos), seq, ev));
            if !first {
                // A second row claiming this seq: removed, not replaced.
                replace.pop();
                delete.execute([pos])?;
                out.rows += 1;
            }
        }
        drop(rows);
        for (pos, seq, ev) in replace {
            if let Some(pos) = pos {
                delete.execute([pos])?;
            }
            let new_pos = free_pos(&mut max_in, ev.timestamp.0)?;
            let head = [SqlValue::Integer(new_pos), SqlValue::Integer(org_id), SqlValue::Integer(seq)];
            insert.execute(rusqlite::params_from_iter(head.into_iter().chain(columns(&ev))))?;
            out.rows += 1;
        }
    }
    // The full-text index and the search words, from every stored event.
    tx.execute("INSERT INTO events_fts (events_fts) VALUES ('delete-all')", [])?;
    {
        let mut all = tx.prepare(
            "SELECT e.pos, e.org_id, l.leaf FROM events e JOIN leaves l ON l.org_id = e.org_id AND l.seq = e.seq",
        )?;
        let mut fts = tx.prepare(INSERT_FTS_SQL)?;
        let mut word = tx.prepare("INSERT OR IGNORE INTO search_words (word) VALUES (?1)")?;
        let mut rows = all.query([])?;
        while let Some(r) = rows.next()? {
            let (pos, owner): (i64, i64) = (r.get(0)?, r.get(1)?);
            let Ok(ev) = Event::from_leaf(blob(r, 2)?) else { continue };
            let doc = index::fts_doc(owner, &ev);
            fts.execute(params![pos, doc])?;
            out.index_docs += 1;
            let mut text = String::new();
            crate::search_doc::search_text(&ev, &mut text);
            for w in index::plain_words(&text) {
                out.words += word.execute([w])? as u64;
            }
        }
    }
    // The per-day counts, recounted from the rows.
    tx.execute("DELETE FROM day_counts WHERE org_id = ?1", [org_id])?;
    tx.execute("DELETE FROM day_actors WHERE org_id = ?1", [org_id])?;
    tx.execute(
        "INSERT INTO day_counts (day, org_id, category, result, is_view, n) \
         SELECT (ts - ((ts % 86400000000) + 86400000000) % 86400000000) / 86400000000, org_id, category, result, \
         (category = 'audit' AND operation = 'view'), COUNT(*) FROM events WHERE org_id = ?1 GROUP BY 1, 2, 3, 4, 5",
        [org_id],
    )?;
    tx.execute(
        "INSERT INTO day_actors (day, org_id, category, actor_email, actor_name, n) \
         SELECT (ts - ((ts % 86400000000) + 86400000000) % 86400000000) / 86400000000, org_id, category, actor_email, \
         MAX(actor_name), COUNT(*) FROM events WHERE org_id = ?1 AND actor_email IS NOT NULL GROUP BY 1, 2, 3, 4",
        [org_id],
    )?;
    // Idempotency keys of the stored events; records of archived ones stay.
    out.keys += tx.execute(
        "DELETE FROM idempotency WHERE org_id = ?1 AND seq IN (SELECT seq FROM events WHERE org_id = ?1) \
         AND key IS NOT (SELECT e.idem FROM events e WHERE e.org_id = ?1 AND e.seq = idempotency.seq)",
        [org_id],
    )? as u64;
    out.keys += tx.execute(
        "INSERT OR REPLACE INTO idempotency (org_id, key, id, seq, received) \
         SELECT org_id, idem, id, seq, received FROM events WHERE org_id = ?1 AND idem IS NOT NULL \
         AND NOT EXISTS (SELECT 1 FROM idempotency i WHERE i.org_id = events.org_id AND i.key = events.idem \
         AND i.seq = events.seq)",
        [org_id],
    )? as u64;
    tx.commit()?;
    Ok(out)
}

/// The indexed copy in columns 3.. of the repair query.
fn stored_copy(r: &rusqlite::Row<'_>) -> Result<IndexedCopy, StoreError> {
    let ip = r.get::<_, Option<Vec<u8>>>(23)?.map(|b| <[u8; 16]>::try_from(b.as_slice()).unwrap_or_default());
    Ok(IndexedCopy {
        id: uuid::Uuid::from_slice(blob(r, 3)?).unwrap_or_default(),
        ts: r.get(4)?,
        received: r.get(5)?,
        category: r.get(6)?,
        operation: r.get(7)?,
        result: r.get(8)?,
        status_code: r.get(9)?,
        actor_id: r.get(10)?,
        actor_name: r.get(11)?,
        actor_email: r.get(12)?,
        company: r.get(13)?,
        request_id: r.get(14)?,
        resource_type: r.get(15)?,
        resource_id: r.get(16)?,
        resource_name: r.get(17)?,
        workspace_id: r.get(18)?,
        workspace_name: r.get(19)?,
        project: r.get(20)?,
        cluster: r.get(21)?,
        namespace: r.get(22)?,
        ip,
        idem: r.get(24)?,
    })
}
