//! `trail repair` on PostgreSQL: everything derived from an organization's stored
//! bytes, rebuilt from them in one transaction under the log's lock: rows outside the
//! log or claiming another's seq, each row's filter columns and search document, the
//! per-day counts and the idempotency keys. Each row keeps its bytes (`leaf`); tree
//! nodes and checkpoints are never touched (`repair::repair` runs only when they verify).

use trail_core::Event;

use super::{org_id, pg, writer::insert_events, writer::PgRow, PgStore};
use crate::{repair::Rebuilt, row::IndexedCopy, StoreError};

/// Entries compared per step.
const STEP: u64 = 8192;

impl PgStore {
    pub(super) async fn rebuild(&self, org: &str) -> Result<Rebuilt, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        let id = org_id(&tx, org).await?;
        let mut out = Rebuilt::default();
        tx.execute("INSERT INTO logs (org_id) VALUES ($1) ON CONFLICT DO NOTHING", &[&id]).await.map_err(pg)?;
        let size: i64 =
            tx.query_one("SELECT size FROM logs WHERE org_id = $1 FOR UPDATE", &[&id]).await.map_err(pg)?.get(0);
        for sql in [
            "DELETE FROM events WHERE org_id = $1 AND (seq < 0 OR seq >= $2)",
            "DELETE FROM idempotency WHERE org_id = $1 AND (seq < 0 OR seq >= $2)",
            "DELETE FROM tree_nodes WHERE org_id = $1 AND (idx < 0 OR level < 0) AND $2::INT8 >= 0",
            // A row whose id is not its bytes' claims another's seq.
            "DELETE FROM events WHERE org_id = $1 AND $2::INT8 >= 0 \
             AND id::text <> convert_from(leaf, 'UTF8')::jsonb ->> 'id'",
        ] {
            out.strays += tx.execute(sql, &[&id, &size]).await.map_err(pg)?;
        }
        // Each row's columns and search document, recomputed from its bytes where they
        // differ (read through the verifier's own query).
        let mut from = 0u64;
        while from < size as u64 {
            let to = (from + STEP).min(size as u64);
            for e in self.audit_entries(org, from, to).await? {
                let Some(leaf) = &e.leaf else { continue };
                let ev =
                    Event::from_leaf(leaf).map_err(|err| StoreError::Corrupt(format!("entry {}: {err}", e.seq)))?;
                let row_ok = e.row.as_ref().is_some_and(|r| *r == IndexedCopy::of(&ev));
                let doc_ok = e.search.as_ref().is_none_or(|s| (s.of)(&ev) == s.words);
                if row_ok && doc_ok {
                    continue;
                }
                tx.execute("DELETE FROM events WHERE org_id = $1 AND seq = $2", &[&id, &(e.seq as i64)])
                    .await
                    .map_err(pg)?;
                let row = PgRow::new(&ev);
                insert_events(&tx, id, &[(&row, e.seq, leaf.as_slice())]).await?;
                out.rows += 1;
            }
            from = to;
        }
        // The per-day counts, recounted from the rows.
        tx.execute("DELETE FROM day_counts WHERE org_id = $1", &[&id]).await.map_err(pg)?;
        tx.execute("DELETE FROM day_actors WHERE org_id = $1", &[&id]).await.map_err(pg)?;
        tx.execute(
            "INSERT INTO day_counts (day, org_id, category, result, is_view, n) \
             SELECT (ts - ((ts % 86400000000) + 86400000000) % 86400000000) / 86400000000, org_id, category, result, \
             (lower(category) = 'audit' AND lower(operation) = 'view'), COUNT(*) FROM events WHERE org_id = $1 \
             GROUP BY 1, 2, 3, 4, 5",
            &[&id],
        )
        .await
        .map_err(pg)?;
        tx.execute(
            "INSERT INTO day_actors (day, org_id, category, actor_email, actor_name, n) \
             SELECT (ts - ((ts % 86400000000) + 86400000000) % 86400000000) / 86400000000, org_id, category, \
             actor_email, MAX(actor_name), COUNT(*) FROM events WHERE org_id = $1 AND actor_email IS NOT NULL \
             GROUP BY 1, 2, 3, 4",
            &[&id],
        )
        .await
        .map_err(pg)?;
        // Idempotency keys of the stored events, as their bytes say; records of
        // archived events stay.
        out.keys += tx
            .execute(
                "DELETE FROM idempotency i USING events e WHERE i.org_id = $1 AND e.org_id = i.org_id \
                 AND e.seq = i.seq AND convert_from(e.leaf, 'UTF8')::jsonb ->> 'idempotency_key' IS DISTINCT FROM i.key",
                &[&id],
            )
            .await
            .map_err(pg)?;
        out.keys += tx
            .execute(
                "INSERT INTO idempotency (org_id, key, id, seq, received) \
                 SELECT org_id, convert_from(leaf, 'UTF8')::jsonb ->> 'idempotency_key', id, seq, received FROM events \
                 WHERE org_id = $1 AND convert_from(leaf, 'UTF8')::jsonb ->> 'idempotency_key' IS NOT NULL \
                 ON CONFLICT (org_id, key) DO UPDATE SET id = EXCLUDED.id, seq = EXCLUDED.seq, received = EXCLUDED.received \
                 WHERE idempotency.seq <> EXCLUDED.seq",
                &[&id],
            )
            .await
            .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(out)
    }
}
