//! Retention in SQLite: which events are past their period, and deleting the archived
//! ones (rows, stored bytes and search index entries) while their leaf hashes stay.

use async_trait::async_trait;
use rusqlite::{params, types::Value as SqlValue, Connection, OptionalExtension};
use trail_core::{Event, Timestamp};

use super::{index::fts_doc, known_org, SqliteStore};
use crate::{
    archive::{ArchiveFile, Expired, Retention},
    rollup::{Facts, Tally},
    Archives, StoreError,
};

/// Events of `org` past their retention, in seq order after `after`.
pub(super) fn expired_blocking(
    conn: &Connection,
    org: &str,
    rules: &Retention,
    as_of: Timestamp,
    after: Option<u64>,
    limit: usize,
) -> Result<Vec<Expired>, StoreError> {
    let org_id = known_org(conn, org)?;
    let mut params: Vec<SqlValue> = vec![SqlValue::Integer(org_id), SqlValue::Integer(after.map_or(-1, |a| a as i64))];
    let mut conds = Vec::new();
    let cutoffs = rules.cutoffs(as_of);
    for (cat, cutoff) in cutoffs.categories {
        params.extend([SqlValue::Text(cat), SqlValue::Integer(cutoff)]);
        conds.push(format!("(e.category = ?{} AND e.ts < ?{})", params.len() - 1, params.len()));
    }
    if let Some((listed, cutoff)) = cutoffs.others {
        let mut others = Vec::new();
        for cat in listed {
            params.push(SqlValue::Text(cat));
            others.push(format!("?{}", params.len()));
        }
        params.push(SqlValue::Integer(cutoff));
        let not_in =
            if others.is_empty() { String::new() } else { format!("e.category NOT IN ({}) AND ", others.join(", ")) };
        conds.push(format!("({not_in}e.ts < ?{})", params.len()));
    }
    if conds.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT e.seq, e.ts, e.category, l.leaf FROM events e JOIN leaves l ON l.org_id = e.org_id AND l.seq = e.seq \
         WHERE e.org_id = ?1 AND e.seq > ?2 AND ({}) ORDER BY e.seq LIMIT {}",
        conds.join(" OR "),
        limit.max(1)
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(params), |r| {
        Ok(Expired { seq: r.get::<_, i64>(0)? as u64, ts: r.get(1)?, category: r.get(2)?, leaf: r.get(3)? })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Records archive files and deletes the archived events' rows, leaves and index
/// entries in one transaction (tree nodes and checkpoints stay).
pub(super) fn archived_blocking(
    conn: &mut Connection,
    org: &str,
    files: &[ArchiveFile],
    seqs: &[u64],
) -> Result<u64, StoreError> {
    let org_id = known_org(conn, org)?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut deleted = 0u64;
    {
        let mut find = tx.prepare_cached(
            "SELECT e.pos, l.leaf, e.ts, e.category, e.operation, e.result, e.actor_email, e.actor_name \
             FROM events e JOIN leaves l ON l.org_id = e.org_id AND l.seq = e.seq WHERE e.org_id = ?1 AND e.seq = ?2",
        )?;
        let mut tally = Tally::default();
        let mut fts = tx.prepare_cached("INSERT INTO events_fts (events_fts, rowid, doc) VALUES ('delete', ?1, ?2)")?;
        let mut del_event = tx.prepare_cached("DELETE FROM events WHERE pos = ?1")?;
        let mut del_leaf = tx.prepare_cached("DELETE FROM leaves WHERE org_id = ?1 AND seq = ?2")?;
        for seq in seqs {
            let row = find
                .query_row(params![org_id, *seq as i64], |r| {
                    let facts: (i64, String, String, i64, Option<String>, Option<String>) =
                        (r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?);
                    Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?, facts))
                })
                .optional()?;
            let Some((pos, leaf, (ts, category, operation, result, email, name))) = row else { continue };
            let facts = Facts {
                ts,
                category: &category,
                operation: &operation,
                result,
                email: email.as_deref(),
                name: name.as_deref(),
            };
            tally.add(org_id, facts, -1);
            let ev = Event::from_leaf(&leaf).map_err(|e| StoreError::Corrupt(format!("entry {seq}: {e}")))?;
            fts.execute(params![pos, fts_doc(org_id, &ev)])?;
            del_event.execute([pos])?;
            del_leaf.execute(params![org_id, *seq as i64])?;
            deleted += 1;
        }
        super::rollup::apply(&tx, &tally)?;
        let mut rec =
            tx.prepare_cached("INSERT OR REPLACE INTO archives (path, org_id, day, manifest) VALUES (?1, ?2, ?3, ?4)")?;
        for f in files {
            let manifest = serde_json::to_string(f).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            rec.execute(params![f.path, org_id, f.day, manifest])?;
        }
    }
    tx.commit()?;
    Ok(deleted)
}

pub(super) fn archives_blocking(conn: &Connection, org: Option<&str>) -> Result<Vec<ArchiveFile>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT a.manifest FROM archives a JOIN orgs o ON o.id = a.org_id WHERE (?1 IS NULL OR o.slug = ?1) \
         ORDER BY a.day, a.path",
    )?;
    let rows = stmt.query_map([org], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for m in rows {
        out.push(serde_json::from_str(&m?).map_err(|e| StoreError::Corrupt(format!("archive manifest: {e}")))?);
    }
    Ok(out)
}

#[async_trait]
impl Archives for SqliteStore {
    async fn expired(
        &self,
        org: &str,
        rules: &Retention,
        as_of: Timestamp,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Expired>, StoreError> {
        let (org, rules) = (org.to_string(), rules.clone());
        self.read(move |c| expired_blocking(c, &org, &rules, as_of, after, limit)).await
    }

    async fn archived(&self, org: &str, files: Vec<ArchiveFile>, seqs: Vec<u64>) -> Result<u64, StoreError> {
        let org = org.to_string();
        self.admin(move |c| archived_blocking(c, &org, &files, &seqs)).await
    }

    async fn forget_keys(&self, org: &str, received_before: Timestamp) -> Result<u64, StoreError> {
        let received_before = received_before.0;
        let org = org.to_string();
        self.write(move |c| {
            let org_id = known_org(c, &org)?;
            let n = c
                .prepare_cached("DELETE FROM idempotency WHERE org_id = ?1 AND received < ?2")?
                .execute(params![org_id, received_before])?;
            Ok(n as u64)
        })
        .await
    }

    async fn archives(&self, org: Option<&str>) -> Result<Vec<ArchiveFile>, StoreError> {
        let org = org.map(str::to_string);
        self.read(move |c| archives_blocking(c, org.as_deref())).await
    }
}
