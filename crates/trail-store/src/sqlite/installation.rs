//! The installation log on SQLite (see the shared `installation`): extended on the
//! writer's connection, read on the readers'.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use trail_core::{
    checkpoint::{self, Checkpoint},
    merkle::{leaf_hash, Frontier, Hash},
};

use super::{known_org, to_hash, SqliteStore};
use crate::{
    installation::{entry_of, InstallationEntry, LOG_NAME},
    Installation, SignedCheckpoint, StoreError,
};

/// The installation log's size: one past its last leaf.
fn size(c: &Connection) -> Result<u64, StoreError> {
    let n: i64 =
        c.query_row("SELECT IFNULL(MAX(idx) + 1, 0) FROM installation_nodes WHERE level = 0", [], |r| r.get(0))?;
    Ok(n as u64)
}

/// The right edge of the installation log's tree of `size` leaves.
fn frontier(c: &Connection, size: u64) -> Result<Frontier, StoreError> {
    let mut stmt = c.prepare_cached("SELECT hash FROM installation_nodes WHERE level = ?1 AND idx = ?2")?;
    let mut nodes = Vec::new();
    for (level, idx) in Frontier::shape(size) {
        let h: Vec<u8> = stmt
            .query_row(params![level, idx as i64], |r| r.get(0))
            .optional()?
            .ok_or_else(|| StoreError::Corrupt(format!("installation log node {level}/{idx} is missing")))?;
        nodes.push((level, to_hash(&h)?));
    }
    Ok(Frontier { size, nodes })
}

#[async_trait]
impl Installation for SqliteStore {
    async fn extend_installation(&self, limit: usize) -> Result<u64, StoreError> {
        let Some(signer) = self.config.signer.clone() else { return Ok(0) };
        self.write(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let pending: Vec<(i64, i64, String)> = {
                let mut stmt = tx.prepare(
                    "SELECT org_id, size, note FROM checkpoints WHERE installation_idx IS NULL \
                     ORDER BY created_at, org_id, size LIMIT ?1",
                )?;
                let rows = stmt.query_map([limit as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                rows.collect::<Result<_, _>>()?
            };
            if pending.is_empty() {
                return Ok(0);
            }
            let mut tree = frontier(&tx, size(&tx)?)?;
            {
                let mut node =
                    tx.prepare_cached("INSERT INTO installation_nodes (level, idx, hash) VALUES (?1, ?2, ?3)")?;
                let mut mark =
                    tx.prepare_cached("UPDATE checkpoints SET installation_idx = ?3 WHERE org_id = ?1 AND size = ?2")?;
                for (org, at, note) in &pending {
                    let index = tree.size;
                    for (level, idx, hash) in tree.push(leaf_hash(&entry_of(note))) {
                        node.execute(params![level, idx as i64, &hash[..]])?;
                    }
                    mark.execute(params![org, at, index as i64])?;
                }
            }
            let cp = Checkpoint { origin: signer.origin(LOG_NAME), size: tree.size, root: tree.root() };
            tx.execute(
                "INSERT INTO installation_checkpoints (size, root, note, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![
                    cp.size as i64,
                    &cp.root[..],
                    checkpoint::sign(&cp, &signer.key),
                    chrono::Utc::now().timestamp_micros()
                ],
            )?;
            tx.commit()?;
            Ok(pending.len() as u64)
        })
        .await
    }

    async fn installation_checkpoint(&self, size: Option<u64>) -> Result<Option<SignedCheckpoint>, StoreError> {
        self.read(move |c| {
            let sql = match size {
                Some(_) => "SELECT size, root, note FROM installation_checkpoints WHERE size = ?1",
                None => {
                    "SELECT size, root, note FROM installation_checkpoints WHERE ?1 IS NULL ORDER BY size DESC LIMIT 1"
                }
            };
            let row = c
                .query_row(sql, [size.map(|s| s as i64)], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, String>(2)?))
                })
                .optional()?;
            row.map(|(size, root, note)| Ok(SignedCheckpoint { size: size as u64, root: to_hash(&root)?, note }))
                .transpose()
        })
        .await
    }

    async fn installation_nodes(&self, level: u32, from: u64, to: u64) -> Result<Vec<(u64, Hash)>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT idx, hash FROM installation_nodes WHERE level = ?1 AND idx >= ?2 AND idx < ?3 ORDER BY idx",
            )?;
            let rows = stmt.query_map(params![level, from as i64, to as i64], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
            })?;
            rows.map(|r| {
                let (i, h) = r?;
                Ok((i as u64, to_hash(&h)?))
            })
            .collect()
        })
        .await
    }

    async fn installation_entries(&self, from: u64, to: u64) -> Result<Vec<InstallationEntry>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT c.installation_idx, o.slug, c.note FROM checkpoints c JOIN orgs o ON o.id = c.org_id \
                 WHERE c.installation_idx >= ?1 AND c.installation_idx < ?2 ORDER BY c.installation_idx",
            )?;
            let rows = stmt.query_map(params![from as i64, to as i64], |r| {
                Ok(InstallationEntry { index: r.get::<_, i64>(0)? as u64, org: r.get(1)?, note: r.get(2)? })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn installation_index(&self, org: &str, size: u64) -> Result<Option<u64>, StoreError> {
        let org = org.to_string();
        self.read(move |c| {
            let org_id = known_org(c, &org)?;
            let idx: Option<Option<i64>> = c
                .query_row(
                    "SELECT installation_idx FROM checkpoints WHERE org_id = ?1 AND size = ?2",
                    params![org_id, size as i64],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(idx.flatten().map(|i| i as u64))
        })
        .await
    }
}
