//! Retention in PostgreSQL: which events are past their period, and deleting the
//! archived ones' rows while their leaf hashes stay.

use async_trait::async_trait;
use tokio_postgres::types::ToSql;
use trail_core::Timestamp;

use super::{org_id, pg, PgStore};
use crate::{
    archive::{ArchiveFile, Expired, Retention},
    rollup::{Facts, Tally},
    Archives, StoreError,
};

#[async_trait]
impl Archives for PgStore {
    async fn expired(
        &self,
        org: &str,
        rules: &Retention,
        as_of: Timestamp,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Expired>, StoreError> {
        let c = self.client().await?;
        let org = org_id(&c, org).await?;
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> =
            vec![Box::new(org), Box::new(after.map_or(-1, |a| a as i64)), Box::new(limit.max(1) as i64)];
        let mut conds = Vec::new();
        let cutoffs = rules.cutoffs(as_of);
        for (cat, cutoff) in cutoffs.categories {
            params.push(Box::new(cat));
            params.push(Box::new(cutoff));
            conds.push(format!("(lower(category) = ${} AND ts < ${})", params.len() - 1, params.len()));
        }
        if let Some((listed, cutoff)) = cutoffs.others {
            params.push(Box::new(listed));
            params.push(Box::new(cutoff));
            conds.push(format!("(NOT (lower(category) = ANY(${})) AND ts < ${})", params.len() - 1, params.len()));
        }
        if conds.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT seq, ts, category, leaf FROM events WHERE org_id = $1 AND seq > $2 AND ({}) ORDER BY seq LIMIT $3",
            conds.join(" OR ")
        );
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
        let rows = c.query(&sql, &refs).await.map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| Expired { seq: r.get::<_, i64>(0) as u64, ts: r.get(1), category: r.get(2), leaf: r.get(3) })
            .collect())
    }

    async fn archived(&self, org: &str, files: Vec<ArchiveFile>, seqs: Vec<u64>) -> Result<u64, StoreError> {
        let mut c = self.client().await?;
        let org = org_id(&c, org).await?;
        let seqs: Vec<i64> = seqs.into_iter().map(|s| s as i64).collect();
        let tx = c.transaction().await.map_err(pg)?;
        let gone = tx
            .query(
                "DELETE FROM events WHERE org_id = $1 AND seq = ANY($2) \
                 RETURNING ts, category, operation, result, actor_email, actor_name",
                &[&org, &seqs],
            )
            .await
            .map_err(pg)?;
        let mut counts = Tally::default();
        for r in &gone {
            let (category, operation): (&str, &str) = (r.get(1), r.get(2));
            let facts = Facts {
                ts: r.get(0),
                category,
                operation,
                result: r.get::<_, i16>(3) as i64,
                email: r.get(4),
                name: r.get(5),
            };
            counts.add(org, facts, -1);
        }
        super::rollup::apply(&tx, &counts).await?;
        let deleted = gone.len() as u64;
        // Idempotency keys stay (`forget_keys` drops them by age).
        for f in &files {
            let manifest = serde_json::to_string(f).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            tx.execute(
                "INSERT INTO archives (path, org_id, day, manifest) VALUES ($1, $2, $3, $4) ON CONFLICT (path) DO \
                 UPDATE SET manifest = EXCLUDED.manifest",
                &[&f.path, &org, &f.day, &manifest],
            )
            .await
            .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)?;
        Ok(deleted)
    }

    async fn forget_keys(&self, org: &str, received_before: Timestamp) -> Result<u64, StoreError> {
        let received_before = received_before.0;
        let c = self.client().await?;
        let id = org_id(&c, org).await?;
        c.execute("DELETE FROM idempotency WHERE org_id = $1 AND received < $2", &[&id, &received_before])
            .await
            .map_err(pg)
    }

    async fn archives(&self, org: Option<&str>) -> Result<Vec<ArchiveFile>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT a.manifest FROM archives a JOIN orgs o ON o.id = a.org_id WHERE ($1::TEXT IS NULL OR o.slug = $1) \
                 ORDER BY a.day, a.path",
                &[&org],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| {
                serde_json::from_str(r.get::<_, &str>(0))
                    .map_err(|e| StoreError::Corrupt(format!("archive manifest: {e}")))
            })
            .collect()
    }
}
