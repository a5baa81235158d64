//! The installation log on PostgreSQL (see the shared `installation`): one server at a
//! time extends it, holding the row of `installation_lock`.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use trail_core::{
    checkpoint::{self, Checkpoint},
    merkle::{leaf_hash, Frontier, Hash},
};

use super::{now_us, org_id, pg, to_hash, PgStore};
use crate::{
    installation::{entry_of, InstallationEntry, LOG_NAME},
    Installation, SignedCheckpoint, StoreError,
};

/// The right edge of the installation log's tree of `size` leaves.
async fn frontier(c: &impl GenericClient, size: u64) -> Result<Frontier, StoreError> {
    let mut nodes = Vec::new();
    for (level, idx) in Frontier::shape(size) {
        let row = c
            .query_opt(
                "SELECT hash FROM installation_nodes WHERE level = $1 AND idx = $2",
                &[&(level as i32), &(idx as i64)],
            )
            .await
            .map_err(pg)?
            .ok_or_else(|| StoreError::Corrupt(format!("installation log node {level}/{idx} is missing")))?;
        nodes.push((level, to_hash(row.get::<_, &[u8]>(0))?));
    }
    Ok(Frontier { size, nodes })
}

#[async_trait]
impl Installation for PgStore {
    async fn extend_installation(&self, limit: usize) -> Result<u64, StoreError> {
        let Some(signer) = self.signer.clone() else { return Ok(0) };
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        tx.execute("SELECT id FROM installation_lock WHERE id = 1 FOR UPDATE", &[]).await.map_err(pg)?;
        let pending = tx
            .query(
                "SELECT org_id, size, note FROM checkpoints WHERE installation_idx IS NULL \
                 ORDER BY created_at, org_id, size LIMIT $1",
                &[&(limit as i64)],
            )
            .await
            .map_err(pg)?;
        if pending.is_empty() {
            return Ok(0);
        }
        let size: i64 = tx
            .query_one("SELECT COALESCE(MAX(idx) + 1, 0) FROM installation_nodes WHERE level = 0", &[])
            .await
            .map_err(pg)?
            .get(0);
        let mut tree = frontier(&tx, size as u64).await?;
        for row in &pending {
            let (org, at, note): (i64, i64, String) = (row.get(0), row.get(1), row.get(2));
            let index = tree.size as i64;
            for (level, idx, hash) in tree.push(leaf_hash(&entry_of(&note))) {
                tx.execute(
                    "INSERT INTO installation_nodes (level, idx, hash) VALUES ($1, $2, $3)",
                    &[&(level as i32), &(idx as i64), &&hash[..]],
                )
                .await
                .map_err(pg)?;
            }
            tx.execute(
                "UPDATE checkpoints SET installation_idx = $3 WHERE org_id = $1 AND size = $2",
                &[&org, &at, &index],
            )
            .await
            .map_err(pg)?;
        }
        let cp = Checkpoint { origin: signer.origin(LOG_NAME), size: tree.size, root: tree.root() };
        let note = checkpoint::sign(&cp, &signer.key);
        tx.execute(
            "INSERT INTO installation_checkpoints (size, root, note, created_at) VALUES ($1, $2, $3, $4)",
            &[&(cp.size as i64), &&cp.root[..], &note, &now_us()],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(pending.len() as u64)
    }

    async fn installation_checkpoint(&self, size: Option<u64>) -> Result<Option<SignedCheckpoint>, StoreError> {
        let c = self.client().await?;
        let row = match size {
            Some(s) => c
                .query_opt("SELECT size, root, note FROM installation_checkpoints WHERE size = $1", &[&(s as i64)])
                .await
                .map_err(pg)?,
            None => c
                .query_opt("SELECT size, root, note FROM installation_checkpoints ORDER BY size DESC LIMIT 1", &[])
                .await
                .map_err(pg)?,
        };
        row.map(|r| {
            Ok(SignedCheckpoint {
                size: r.get::<_, i64>(0) as u64,
                root: to_hash(r.get::<_, &[u8]>(1))?,
                note: r.get(2),
            })
        })
        .transpose()
    }

    async fn installation_nodes(&self, level: u32, from: u64, to: u64) -> Result<Vec<(u64, Hash)>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT idx, hash FROM installation_nodes WHERE level = $1 AND idx >= $2 AND idx < $3 ORDER BY idx",
                &[&(level as i32), &(from as i64), &(to as i64)],
            )
            .await
            .map_err(pg)?;
        rows.iter().map(|r| Ok((r.get::<_, i64>(0) as u64, to_hash(r.get::<_, &[u8]>(1))?))).collect()
    }

    async fn installation_entries(&self, from: u64, to: u64) -> Result<Vec<InstallationEntry>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT c.installation_idx, o.slug, c.note FROM checkpoints c JOIN orgs o ON o.id = c.org_id \
                 WHERE c.installation_idx >= $1 AND c.installation_idx < $2 ORDER BY c.installation_idx",
                &[&(from as i64), &(to as i64)],
            )
            .await
            .map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| InstallationEntry { index: r.get::<_, i64>(0) as u64, org: r.get(1), note: r.get(2) })
            .collect())
    }

    async fn installation_index(&self, org: &str, size: u64) -> Result<Option<u64>, StoreError> {
        let c = self.client().await?;
        let org = org_id(&c, org).await?;
        let row = c
            .query_opt(
                "SELECT installation_idx FROM checkpoints WHERE org_id = $1 AND size = $2",
                &[&org, &(size as i64)],
            )
            .await
            .map_err(pg)?;
        Ok(row.and_then(|r| r.get::<_, Option<i64>>(0)).map(|i| i as u64))
    }
}
