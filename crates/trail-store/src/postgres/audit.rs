//! What the verifier reads from PostgreSQL: each event row (its stored bytes, its
//! indexed columns and its search document, read back) and the stored tree nodes.

use tokio_postgres::types::{FromSql, Type};
use trail_core::merkle::Hash;

use super::{doc_words, org_id, pg, PgStore};
use crate::{
    row::{ip_bytes, IndexedCopy},
    verify::{SearchCopy, StoredEntry},
    StoreError,
};

/// A `tsvector` read in PostgreSQL's binary form: its lexemes (positions ignored).
struct Lexemes(Vec<String>);

impl<'a> FromSql<'a> for Lexemes {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let mut at = 4usize;
        let n = i32::from_be_bytes(raw.get(..4).ok_or("short tsvector")?.try_into()?);
        let mut words = Vec::with_capacity(n.max(0) as usize);
        for _ in 0..n {
            let end = at + raw.get(at..).ok_or("short tsvector")?.iter().position(|b| *b == 0).ok_or("unterminated")?;
            words.push(String::from_utf8(raw[at..end].to_vec())?);
            let positions = u16::from_be_bytes(raw.get(end + 1..end + 3).ok_or("short tsvector")?.try_into()?);
            at = end + 3 + 2 * positions as usize;
        }
        Ok(Lexemes(words))
    }

    fn accepts(ty: &Type) -> bool {
        ty.name() == "tsvector"
    }
}

fn bound(n: u64) -> i64 {
    n.min(i64::MAX as u64) as i64
}

impl PgStore {
    pub(super) async fn audit_entries(&self, org: &str, from: u64, to: u64) -> Result<Vec<StoredEntry>, StoreError> {
        let c = self.client().await?;
        let id = org_id(&c, org).await?;
        let rows = c
            .query(
                "SELECT seq, leaf, id, ts, received, category, operation, result, status_code, actor_id, actor_name, \
                 actor_email, company, request_id, resource_type, resource_id, resource_name, workspace_id, \
                 workspace_name, project, cluster, namespace, ip, doc, \
                 (SELECT i.key FROM idempotency i WHERE i.org_id = e.org_id AND i.seq = e.seq LIMIT 1) FROM events e \
                 WHERE org_id = $1 AND seq >= $2 AND seq < $3 ORDER BY seq",
                &[&id, &bound(from), &bound(to)],
            )
            .await
            .map_err(pg)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let ip: Option<std::net::IpAddr> = r.try_get(22).map_err(pg)?;
            let row = IndexedCopy {
                id: r.get(2),
                ts: r.get(3),
                received: r.get(4),
                category: r.get(5),
                operation: r.get(6),
                result: i64::from(r.get::<_, i16>(7)),
                status_code: r.get::<_, Option<i32>>(8).map(i64::from),
                actor_id: r.get(9),
                actor_name: r.get(10),
                actor_email: r.get(11),
                company: r.get(12),
                request_id: r.get(13),
                resource_type: r.get(14),
                resource_id: r.get(15),
                resource_name: r.get(16),
                workspace_id: r.get(17),
                workspace_name: r.get(18),
                project: r.get(19),
                cluster: r.get(20),
                namespace: r.get(21),
                ip: ip.map(ip_bytes),
                idem: r.get(24),
            };
            let doc: Lexemes = r.try_get(23).map_err(pg)?;
            out.push(StoredEntry {
                seq: r.get::<_, i64>(0) as u64,
                leaf: Some(r.get(1)),
                row: Some(row),
                misplaced: None,
                search: Some(SearchCopy { words: doc.0, of: doc_words }),
            });
        }
        Ok(out)
    }

    pub(super) async fn audit_nodes(
        &self,
        org: &str,
        level: u32,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, Hash)>, StoreError> {
        let c = self.client().await?;
        let id = org_id(&c, org).await?;
        let rows = c
            .query(
                "SELECT idx, hash FROM tree_nodes WHERE org_id = $1 AND level = $2 AND idx >= $3 AND idx < $4 ORDER BY idx",
                &[&id, &(level as i32), &bound(from), &bound(to)],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| {
                let h: &[u8] = r.get(1);
                let h: Hash = h.try_into().map_err(|_| StoreError::Corrupt("a tree node is not 32 bytes".into()))?;
                Ok((r.get::<_, i64>(0) as u64, h))
            })
            .collect()
    }

    pub(super) async fn audit_end(&self, org: &str) -> Result<u64, StoreError> {
        let c = self.client().await?;
        let id = org_id(&c, org).await?;
        let max: Option<i64> = c
            .query_one(
                "SELECT GREATEST((SELECT MAX(seq) FROM events WHERE org_id = $1), \
                 (SELECT MAX(idx) FROM tree_nodes WHERE org_id = $1 AND level = 0))",
                &[&id],
            )
            .await
            .map_err(pg)?
            .get(0);
        Ok(max.map_or(0, |m| m as u64 + 1))
    }

    /// Rows of `org` outside its log of `end` entries, or sharing a seq or an id with
    /// another row.
    pub(super) async fn audit_strays(&self, org: &str, end: u64) -> Result<Vec<String>, StoreError> {
        let c = self.client().await?;
        let id = org_id(&c, org).await?;
        let end = end.min(i64::MAX as u64) as i64;
        let checks: [(&str, &str, bool); 5] = [
            ("SELECT seq, id FROM events WHERE org_id = $1 AND (seq < 0 OR seq >= $2) LIMIT 20", "an indexed row", true),
            (
                "SELECT seq, id FROM idempotency WHERE org_id = $1 AND (seq < 0 OR seq >= $2) LIMIT 20",
                "an idempotency key",
                true,
            ),
            (
                "SELECT idx, NULL::uuid FROM tree_nodes WHERE org_id = $1 AND (idx < 0 OR level < 0 OR level > 63) AND $2::INT8 >= 0 LIMIT 20",
                "a tree node",
                true,
            ),
            (
                "SELECT MIN(seq), id FROM events WHERE org_id = $1 AND $2::INT8 >= 0 GROUP BY id HAVING COUNT(*) > 1 LIMIT 20",
                "more than one stored event with one id",
                false,
            ),
            (
                "SELECT seq, NULL::uuid FROM idempotency WHERE org_id = $1 AND $2::INT8 >= 0 GROUP BY seq HAVING COUNT(*) > 1 LIMIT 20",
                "more than one idempotency key",
                false,
            ),
        ];
        let mut out = Vec::new();
        for (sql, what, outside) in checks {
            for r in c.query(sql, &[&id, &end]).await.map_err(pg)? {
                let seq: i64 = r.get(0);
                let row_id = r.get::<_, Option<uuid::Uuid>>(1).map(|id| format!(" (id {id})")).unwrap_or_default();
                out.push(match outside {
                    true => format!("{what} at seq {seq}{row_id} lies outside the log's entries 0 to {}", end - 1),
                    false => format!("{what} at seq {seq}{row_id}: a seq or id is claimed twice"),
                });
            }
        }
        Ok(out)
    }

    pub(super) async fn audit_rollups(&self, org: &str) -> Result<crate::rollup::StoredRollups, StoreError> {
        let c = self.client().await?;
        let id = org_id(&c, org).await?;
        let mut out = crate::rollup::StoredRollups::default();
        for r in c
            .query("SELECT day, category, result, is_view, n FROM day_counts WHERE org_id = $1", &[&id])
            .await
            .map_err(pg)?
        {
            out.days.push((r.get(0), r.get(1), i64::from(r.get::<_, i16>(2)), r.get(3), r.get(4)));
        }
        for r in c
            .query("SELECT day, category, actor_email, n FROM day_actors WHERE org_id = $1", &[&id])
            .await
            .map_err(pg)?
        {
            out.actors.push((r.get(0), r.get(1), r.get(2), r.get(3)));
        }
        Ok(out)
    }

    /// Idempotency keys whose record names an entry whose bytes carry another key
    /// (the rows' keys are compared entry by entry through the indexed copy).
    pub(super) async fn audit_derived(&self, org: &str) -> Result<Vec<String>, StoreError> {
        let c = self.client().await?;
        let id = org_id(&c, org).await?;
        let rows = c
            .query(
                "SELECT i.seq, i.key FROM idempotency i JOIN events e ON e.org_id = i.org_id AND e.seq = i.seq \
                 WHERE i.org_id = $1 AND convert_from(e.leaf, 'UTF8')::jsonb ->> 'idempotency_key' IS DISTINCT FROM i.key \
                 LIMIT 20",
                &[&id],
            )
            .await
            .map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| {
                let (seq, key): (i64, String) = (r.get(0), r.get(1));
                format!("entry {seq}: the idempotency key '{key}' is recorded for it, but its bytes carry another")
            })
            .collect())
    }
}
