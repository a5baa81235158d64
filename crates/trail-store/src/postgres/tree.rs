//! Each organization's Merkle tree in PostgreSQL: subtree hashes for proofs, the log's
//! size and the signed checkpoints.

use async_trait::async_trait;
use trail_core::merkle::{self, Hash, Recorded};

use super::{org_id, pg, to_hash, PgStore};
use crate::{verify::StoredEntry, Proofs, SignedCheckpoint, StoreError};

/// Reads complete subtree hashes for proofs.
pub(super) async fn node(
    c: &impl deadpool_postgres::GenericClient,
    org: i64,
    level: u32,
    idx: u64,
) -> Result<Hash, StoreError> {
    let row = c
        .query_opt(
            "SELECT hash FROM tree_nodes WHERE org_id = $1 AND level = $2 AND idx = $3",
            &[&org, &(level as i32), &(idx as i64)],
        )
        .await
        .map_err(pg)?
        .ok_or_else(|| StoreError::Corrupt(format!("tree node {level}/{idx} is missing")))?;
    to_hash(row.get::<_, &[u8]>(0))
}

/// Several tree nodes in one query, in the order asked.
pub(super) async fn nodes(
    c: &impl deadpool_postgres::GenericClient,
    org: i64,
    want: Vec<(u32, u64)>,
) -> Result<Vec<(u32, Hash)>, StoreError> {
    if want.is_empty() {
        return Ok(Vec::new());
    }
    let levels: Vec<i32> = want.iter().map(|w| w.0 as i32).collect();
    let idxs: Vec<i64> = want.iter().map(|w| w.1 as i64).collect();
    let rows = c
        .query(
            "SELECT n.level, n.idx, n.hash FROM tree_nodes n JOIN UNNEST($2::INT4[], $3::INT8[]) AS w(level, idx) \
             ON n.level = w.level AND n.idx = w.idx WHERE n.org_id = $1",
            &[&org, &levels, &idxs],
        )
        .await
        .map_err(pg)?;
    let mut found = std::collections::HashMap::new();
    for r in rows {
        found.insert((r.get::<_, i32>(0) as u32, r.get::<_, i64>(1) as u64), to_hash(r.get::<_, &[u8]>(2))?);
    }
    want.into_iter()
        .map(|(level, idx)| {
            let h = found.remove(&(level, idx));
            h.map(|h| (level, h)).ok_or_else(|| StoreError::Corrupt(format!("tree node {level}/{idx} is missing")))
        })
        .collect()
}

impl PgStore {
    /// A proof computed by `run` over the subtrees it asks for, fetched ahead (see
    /// `merkle::Recorded`).
    async fn proof(
        &self,
        org: &str,
        run: impl Fn(&mut Recorded) -> Result<Vec<Hash>, std::convert::Infallible>,
    ) -> Result<Vec<Hash>, StoreError> {
        let c = self.client().await?;
        let org = org_id(&c, org).await?;
        let mut rec = Recorded::default();
        let Ok(_) = run(&mut rec);
        for (level, idx) in std::mem::take(&mut rec.wanted) {
            let h = node(&c, org, level, idx).await?;
            rec.known.insert((level, idx), h);
        }
        let Ok(proof) = run(&mut rec);
        Ok(proof)
    }

    async fn log_size(&self, org: &str) -> Result<u64, StoreError> {
        let c = self.client().await?;
        let id = org_id(&c, org).await?;
        let r = c.query_opt("SELECT size FROM logs WHERE org_id = $1", &[&id]).await.map_err(pg)?;
        Ok(r.map_or(0, |r| r.get::<_, i64>(0) as u64))
    }
}

#[async_trait]
impl Proofs for PgStore {
    async fn checkpoint(&self, org: &str, size: Option<u64>) -> Result<Option<SignedCheckpoint>, StoreError> {
        let c = self.client().await?;
        let id = org_id(&c, org).await?;
        let r = c
            .query_opt(
                "SELECT size, root, note FROM checkpoints WHERE org_id = $1 AND ($2::BIGINT IS NULL OR size = $2) \
                 ORDER BY size DESC LIMIT 1",
                &[&id, &size.map(|s| s as i64)],
            )
            .await
            .map_err(pg)?;
        r.map(|r| Ok(SignedCheckpoint { size: r.get::<_, i64>(0) as u64, root: to_hash(r.get(1))?, note: r.get(2) }))
            .transpose()
    }

    async fn checkpoints(&self, org: &str) -> Result<Vec<SignedCheckpoint>, StoreError> {
        let c = self.client().await?;
        let id = org_id(&c, org).await?;
        let rows = c
            .query("SELECT size, root, note FROM checkpoints WHERE org_id = $1 ORDER BY size", &[&id])
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| Ok(SignedCheckpoint { size: r.get::<_, i64>(0) as u64, root: to_hash(r.get(1))?, note: r.get(2) }))
            .collect()
    }

    async fn inclusion_proof(&self, org: &str, index: u64, size: u64) -> Result<Vec<Hash>, StoreError> {
        let have = self.log_size(org).await?;
        if size > have {
            return Err(StoreError::Invalid {
                field: "size".into(),
                message: format!("the log has only {have} entries"),
            });
        }
        if index >= size {
            return Err(StoreError::Invalid { field: "index".into(), message: format!("must be below size {size}") });
        }
        self.proof(org, |r| merkle::inclusion_proof(r, index, size)).await
    }

    async fn consistency_proof(&self, org: &str, from: u64, to: u64) -> Result<Vec<Hash>, StoreError> {
        let have = self.log_size(org).await?;
        if to > have {
            return Err(StoreError::Invalid {
                field: "to".into(),
                message: format!("the log has only {have} entries"),
            });
        }
        if from > to {
            return Err(StoreError::Invalid { field: "from".into(), message: format!("must not exceed to ({to})") });
        }
        self.proof(org, |r| merkle::consistency_proof(r, from, to)).await
    }

    async fn stored_entries(&self, org: &str, from: u64, to: u64) -> Result<Vec<StoredEntry>, StoreError> {
        self.audit_entries(org, from, to).await
    }

    async fn tree_nodes(&self, org: &str, level: u32, from: u64, to: u64) -> Result<Vec<(u64, Hash)>, StoreError> {
        self.audit_nodes(org, level, from, to).await
    }

    async fn log_end(&self, org: &str) -> Result<u64, StoreError> {
        self.audit_end(org).await
    }

    async fn stray_rows(&self, org: &str, end: u64) -> Result<Vec<String>, StoreError> {
        self.audit_strays(org, end).await
    }

    async fn stored_rollups(&self, org: &str) -> Result<crate::rollup::StoredRollups, StoreError> {
        self.audit_rollups(org).await
    }

    async fn derived_findings(&self, org: &str) -> Result<Vec<String>, StoreError> {
        self.audit_derived(org).await
    }

    async fn rebuild_derived(&self, org: &str) -> Result<crate::repair::Rebuilt, StoreError> {
        self.rebuild(org).await
    }

    fn refusals(&self) -> Vec<crate::seal::Refusal> {
        self.seal.refusals()
    }
}
