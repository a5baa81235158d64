//! Entries copied into PostgreSQL with the seqs they had (the target of `copy`): their
//! rows, the tree's nodes (recomputed) and the source's signed checkpoints, whose roots
//! must equal the recomputed ones.

use async_trait::async_trait;
use trail_core::{merkle::Frontier, Event};

use super::{
    now_us, org_id, pg,
    schema::month_bounds,
    tree::nodes,
    writer::{insert_events, insert_nodes, PgRow},
    PgStore,
};
use crate::{rollup::Tally, Restore, RestoredEntry, SignedCheckpoint, StoreError};

#[async_trait]
impl Restore for PgStore {
    async fn restore(
        &self,
        org: &str,
        from: u64,
        entries: Vec<RestoredEntry>,
        checkpoints: Vec<SignedCheckpoint>,
    ) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let org_id = org_id(&c, org).await?;
        let events: Vec<(u64, Event, &[u8])> = entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.leaf.as_deref().map(|leaf| (from + i as u64, leaf)))
            .map(|(seq, leaf)| Event::from_leaf(leaf).map(|e| (seq, e, leaf)))
            .collect::<Result<_, _>>()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut months = std::collections::BTreeMap::new();
        for (_, e, _) in &events {
            let (lo, hi, name) = month_bounds(e.timestamp.0);
            months.insert(name, (lo, hi));
        }
        for (name, (lo, hi)) in months {
            let sql = format!("CREATE TABLE IF NOT EXISTS {name} PARTITION OF events FOR VALUES FROM ({lo}) TO ({hi})");
            c.batch_execute(&sql).await.map_err(pg)?;
        }
        let tx = c.transaction().await.map_err(pg)?;
        let size: Option<i64> = tx
            .query_opt("SELECT size FROM logs WHERE org_id = $1 FOR UPDATE", &[&org_id])
            .await
            .map_err(pg)?
            .map(|r| r.get(0));
        if size.unwrap_or(0) as u64 != from {
            return Err(StoreError::Invalid {
                field: "from".into(),
                message: format!("the log of {org} holds {} entries, not {from}", size.unwrap_or(0)),
            });
        }
        let mut tree = Frontier { size: from, nodes: nodes(&tx, org_id, Frontier::shape(from)).await? };
        let mut counts = Tally::default();
        for (seq, e, leaf) in &events {
            if *seq != e.seq || e.org != org {
                return Err(StoreError::Corrupt(format!("entry {seq} of {org} is out of place")));
            }
            let row = PgRow::new(e);
            counts.add(org_id, row.facts(), 1);
            insert_events(&tx, org_id, &[(&row, *seq, leaf)]).await?;
            if let Some(k) = &e.idempotency_key {
                tx.execute(
                    "INSERT INTO idempotency (org_id, key, id, seq, received) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT DO NOTHING",
                    &[&org_id, k, &e.id, &(*seq as i64), &e.received_at.0],
                )
                .await
                .map_err(pg)?;
            }
        }
        let mut pending = checkpoints.iter().peekable();
        let mut check = |tree: &Frontier| -> Result<Vec<&SignedCheckpoint>, StoreError> {
            let mut due = Vec::new();
            while let Some(cp) = pending.next_if(|cp| cp.size <= tree.size) {
                if cp.size != tree.size || cp.root != tree.root() {
                    return Err(StoreError::Corrupt(format!(
                        "{org}: the checkpoint of size {} does not match the copied entries",
                        cp.size
                    )));
                }
                due.push(cp);
            }
            Ok(due)
        };
        let mut signed = check(&tree)?;
        let mut new_nodes = Vec::new();
        for e in &entries {
            new_nodes.extend(tree.push(e.hash));
            signed.extend(check(&tree)?);
        }
        if pending.peek().is_some() {
            return Err(StoreError::Corrupt(format!("{org}: a checkpoint covers more entries than are stored")));
        }
        insert_nodes(&tx, org_id, &new_nodes).await?;
        super::rollup::apply(&tx, &counts).await?;
        for cp in signed {
            tx.execute(
                "INSERT INTO checkpoints (org_id, size, root, note, created_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT DO NOTHING",
                &[&org_id, &(cp.size as i64), &&cp.root[..], &cp.note, &now_us()],
            )
            .await
            .map_err(pg)?;
        }
        tx.execute(
            "INSERT INTO logs (org_id, size) VALUES ($1, $2) ON CONFLICT (org_id) DO UPDATE SET size = $2",
            &[&org_id, &(tree.size as i64)],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)
    }
}
