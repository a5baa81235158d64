//! Each organization's Merkle tree in SQLite: its size, its subtree hashes for proofs,
//! its right edge, and the signed checkpoints (read, and written by the writer).

use std::collections::HashSet;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use trail_core::{
    checkpoint::{self, Checkpoint},
    merkle::{self, Frontier, Hash},
};

use super::{audit, known_org, to_hash, SqliteStore};
use crate::{
    signer::LogSigner,
    verify::{QuickChunk, StoredEntry},
    Proofs, SignedCheckpoint, StoreError,
};

/// Refuses a tree size larger than the organization's log.
pub(super) fn check_size(conn: &Connection, org: i64, size: u64, field: &str) -> Result<(), StoreError> {
    let have = tree_size(conn, org)?;
    if size > have {
        return Err(StoreError::Invalid { field: field.into(), message: format!("the log has only {have} entries") });
    }
    Ok(())
}

/// The number of leaves in an organization's tree (an index seek, not a count).
pub(super) fn tree_size(conn: &Connection, org: i64) -> Result<u64, StoreError> {
    let max: Option<i64> = conn
        .prepare_cached("SELECT MAX(idx) FROM tree_nodes WHERE org_id = ?1 AND level = 0")?
        .query_row([org], |r| r.get(0))?;
    Ok(max.map_or(0, |m| m as u64 + 1))
}

/// Subtree hashes of one organization's tree, from `tree_nodes`.
pub(super) struct Nodes<'a> {
    conn: &'a Connection,
    org: i64,
}

impl merkle::Subtrees for Nodes<'_> {
    type Error = StoreError;
    fn subtree(&mut self, start: u64, size: u64) -> Result<Hash, StoreError> {
        let mut stmt =
            self.conn.prepare_cached("SELECT hash FROM tree_nodes WHERE org_id = ?1 AND level = ?2 AND idx = ?3")?;
        let org = self.org;
        merkle::range_hash(start, size, &mut |level, idx| {
            let h: Vec<u8> = stmt
                .query_row(params![org, level, idx as i64], |r| r.get(0))
                .optional()?
                .ok_or_else(|| StoreError::Corrupt(format!("tree node {level}/{idx} is missing")))?;
            to_hash(&h)
        })
    }
}

#[async_trait]
impl Proofs for SqliteStore {
    async fn checkpoint(&self, org: &str, size: Option<u64>) -> Result<Option<SignedCheckpoint>, StoreError> {
        let org = org.to_string();
        self.read(move |c| {
            let org_id = known_org(c, &org)?;
            let mut stmt = c.prepare_cached(
                "SELECT size, root, note FROM checkpoints WHERE org_id = ?1 AND (?2 IS NULL OR size = ?2) \
                 ORDER BY size DESC LIMIT 1",
            )?;
            let row = stmt
                .query_row(params![org_id, size.map(|s| s as i64)], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, String>(2)?))
                })
                .optional()?;
            row.map(|(size, root, note)| Ok(SignedCheckpoint { size: size as u64, root: to_hash(&root)?, note }))
                .transpose()
        })
        .await
    }

    async fn checkpoints(&self, org: &str) -> Result<Vec<SignedCheckpoint>, StoreError> {
        let org = org.to_string();
        self.read(move |c| {
            let org_id = known_org(c, &org)?;
            let mut stmt =
                c.prepare_cached("SELECT size, root, note FROM checkpoints WHERE org_id = ?1 ORDER BY size")?;
            let rows = stmt
                .query_map([org_id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, String>(2)?)))?;
            let mut out = Vec::new();
            for row in rows {
                let (size, root, note) = row?;
                out.push(SignedCheckpoint { size: size as u64, root: to_hash(&root)?, note });
            }
            Ok(out)
        })
        .await
    }

    async fn inclusion_proof(&self, org: &str, index: u64, size: u64) -> Result<Vec<Hash>, StoreError> {
        let org = org.to_string();
        self.read(move |c| {
            let org_id = known_org(c, &org)?;
            check_size(c, org_id, size, "size")?;
            if index >= size {
                return Err(StoreError::Invalid {
                    field: "index".into(),
                    message: format!("must be below size {size}"),
                });
            }
            merkle::inclusion_proof(&mut Nodes { conn: c, org: org_id }, index, size)
        })
        .await
    }

    async fn consistency_proof(&self, org: &str, from: u64, to: u64) -> Result<Vec<Hash>, StoreError> {
        let org = org.to_string();
        self.read(move |c| {
            let org_id = known_org(c, &org)?;
            check_size(c, org_id, to, "to")?;
            if from > to {
                return Err(StoreError::Invalid {
                    field: "from".into(),
                    message: format!("must not exceed to ({to})"),
                });
            }
            merkle::consistency_proof(&mut Nodes { conn: c, org: org_id }, from, to)
        })
        .await
    }

    async fn stored_entries(&self, org: &str, from: u64, to: u64) -> Result<Vec<StoredEntry>, StoreError> {
        // The bytes and the rows are read on two connections at once.
        let (a, b) = (org.to_string(), org.to_string());
        let (leaves, rows) = tokio::try_join!(
            self.read(move |c| audit::leaves_in(c, &a, from, to)),
            self.read(move |c| audit::rows_in(c, &b, from, to))
        )?;
        Ok(audit::merge(leaves, rows))
    }

    async fn quick_entries(&self, org: &str, from: u64, to: u64) -> Result<Option<QuickChunk>, StoreError> {
        // Two halves on two connections at once (each its own core).
        let mid = from + (to - from) / 2;
        let (a, b) = (org.to_string(), org.to_string());
        let (low, high) = tokio::try_join!(
            self.read(move |c| audit::quick_in(c, &a, from, mid)),
            self.read(move |c| audit::quick_in(c, &b, mid, to))
        )?;
        Ok(low.zip(high).map(|(l, h)| l.join(h)))
    }

    async fn tree_nodes(&self, org: &str, level: u32, from: u64, to: u64) -> Result<Vec<(u64, Hash)>, StoreError> {
        let org = org.to_string();
        self.read(move |c| audit::tree_nodes(c, &org, level, from, to)).await
    }

    async fn tree_nodes_many(
        &self,
        org: &str,
        ranges: Vec<(u32, u64, u64)>,
    ) -> Result<Vec<Vec<(u64, Hash)>>, StoreError> {
        let org = org.to_string();
        self.read(move |c| {
            ranges.into_iter().map(|(level, from, to)| audit::tree_nodes(c, &org, level, from, to)).collect()
        })
        .await
    }

    async fn log_end(&self, org: &str) -> Result<u64, StoreError> {
        let org = org.to_string();
        self.read(move |c| audit::log_end(c, &org)).await
    }

    async fn stray_rows(&self, org: &str, end: u64) -> Result<Vec<String>, StoreError> {
        let org = org.to_string();
        self.read(move |c| audit::stray_rows(c, &org, end)).await
    }

    async fn stored_rollups(&self, org: &str) -> Result<crate::rollup::StoredRollups, StoreError> {
        let org = org.to_string();
        self.read(move |c| audit::stored_rollups(c, &org)).await
    }

    async fn derived_findings(&self, org: &str) -> Result<Vec<String>, StoreError> {
        let org = org.to_string();
        self.read(move |c| audit::derived_findings(c, &org)).await
    }

    async fn rebuild_derived(&self, org: &str) -> Result<crate::repair::Rebuilt, StoreError> {
        self.rebuild(org).await
    }

    fn refusals(&self) -> Vec<crate::seal::Refusal> {
        self.seal.refusals()
    }
}

/// Organizations whose tree is larger than their newest checkpoint.
pub(super) fn unsigned_orgs(conn: &Connection) -> Result<HashSet<i64>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT o.id FROM orgs o WHERE IFNULL((SELECT MAX(t.idx) + 1 FROM tree_nodes t WHERE t.org_id = o.id \
         AND t.level = 0), 0) > IFNULL((SELECT MAX(size) FROM checkpoints c WHERE c.org_id = o.id), 0)",
    )?;
    let ids = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    Ok(ids)
}

/// The right edge of an organization's tree of `size` leaves, read from `tree_nodes`.
pub(super) fn load_frontier(conn: &Connection, org: i64, size: u64) -> Result<Frontier, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT hash FROM tree_nodes WHERE org_id = ?1 AND level = ?2 AND idx = ?3")?;
    let mut nodes = Vec::new();
    for (level, idx) in Frontier::shape(size) {
        let hash: Vec<u8> = stmt
            .query_row(params![org, level, idx as i64], |r| r.get(0))
            .optional()?
            .ok_or_else(|| StoreError::Corrupt(format!("tree node {level}/{idx} of organization {org} is missing")))?;
        nodes.push((level, to_hash(&hash)?));
    }
    Ok(Frontier { size, nodes })
}

/// Signs and stores the checkpoint of `tree` (the writer's, in its transaction).
pub(super) fn write_checkpoint(
    conn: &Connection,
    signer: &LogSigner,
    org: i64,
    slug: &str,
    tree: &Frontier,
) -> Result<(), StoreError> {
    let cp = Checkpoint { origin: signer.origin(slug), size: tree.size, root: tree.root() };
    let note = checkpoint::sign(&cp, &signer.key);
    conn.prepare_cached(
        "INSERT OR IGNORE INTO checkpoints (org_id, size, root, note, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![org, cp.size as i64, &cp.root[..], note, chrono::Utc::now().timestamp_micros()])?;
    Ok(())
}
