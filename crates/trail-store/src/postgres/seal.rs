//! The signer's rule on PostgreSQL (see the shared `seal`): each organization's tree
//! established from its newest checkpoint and the leaf bytes after it, or extended by
//! what other processes appended, before this process signs anything for it.

use trail_core::merkle::Frontier;

use super::{pg, tree::nodes, Inner};
use crate::{
    seal::{self, Tail},
    SignedCheckpoint, StoreError,
};

impl Inner {
    /// Establishes every organization's tree (at open, before anything is signed).
    pub(super) async fn establish_all(&self) -> Result<(), StoreError> {
        if self.signer.is_none() {
            return Ok(());
        }
        let c = self.client().await?;
        let rows = c
            .query("SELECT o.id, o.slug, COALESCE(l.size, 0) FROM orgs o LEFT JOIN logs l ON l.org_id = o.id", &[])
            .await
            .map_err(pg)?;
        for r in rows {
            self.established(&c, r.get(0), r.get(1), r.get::<_, i64>(2) as u64).await?;
        }
        Ok(())
    }

    /// The tree of `org` at `size` leaves as recomputed from its leaves (see `seal`):
    /// the one kept in memory, extended by what other processes appended since, or
    /// established from the newest checkpoint on. `None` when the organization is
    /// refused (this call may refuse it).
    pub(super) async fn established(
        &self,
        c: &impl deadpool_postgres::GenericClient,
        org: i64,
        slug: &str,
        size: u64,
    ) -> Result<Option<Frontier>, StoreError> {
        let Some(signer) = &self.signer else { return Ok(None) };
        if self.seal.is_refused(slug) {
            return Ok(None);
        }
        let (mut tail, unsigned_run) = match self.seal.trusted(slug) {
            Some(t) if t.size == size => return Ok(Some(t)),
            Some(t) if t.size > size => {
                self.seal
                    .refuse(slug, format!("the log has {size} entries, but {} were signed by this process", t.size));
                return Ok(None);
            }
            Some(t) => (Tail::new(slug, t), false),
            None => {
                let newest = c
                    .query_opt(
                        "SELECT size, root, note FROM checkpoints WHERE org_id = $1 ORDER BY size DESC LIMIT 1",
                        &[&org],
                    )
                    .await
                    .map_err(pg)?
                    .map(|r| -> Result<SignedCheckpoint, StoreError> {
                        Ok(SignedCheckpoint {
                            size: r.get::<_, i64>(0) as u64,
                            root: super::to_hash(r.get::<_, &[u8]>(1))?,
                            note: r.get(2),
                        })
                    })
                    .transpose()?;
                let edge = match seal::base(signer, slug, newest.as_ref(), size) {
                    Err(reason) => {
                        self.seal.refuse(slug, reason);
                        return Ok(None);
                    }
                    Ok(None) => Frontier::default(),
                    Ok(Some((at, root))) => {
                        let edge = Frontier { size: at, nodes: nodes(c, org, Frontier::shape(at)).await? };
                        if let Err(reason) = seal::check_base(&edge, &root) {
                            self.seal.refuse(slug, reason);
                            return Ok(None);
                        }
                        edge
                    }
                };
                (Tail::new(slug, edge), true)
            }
        };
        const STEP: u64 = 8192;
        while tail.next() < size {
            let from = tail.next();
            let to = (from + STEP).min(size);
            let rows = c
                .query(
                    "SELECT t.idx, e.leaf, t.hash FROM tree_nodes t LEFT JOIN events e ON e.org_id = t.org_id \
                     AND e.seq = t.idx WHERE t.org_id = $1 AND t.level = 0 AND t.idx >= $2 AND t.idx < $3 ORDER BY t.idx",
                    &[&org, &(from as i64), &(to as i64)],
                )
                .await
                .map_err(pg)?;
            for r in rows {
                let pushed = tail.push(
                    r.get::<_, i64>(0) as u64,
                    r.get::<_, Option<&[u8]>>(1),
                    Some(super::to_hash(r.get::<_, &[u8]>(2))?),
                );
                if let Err(reason) = pushed {
                    self.seal.refuse(slug, reason);
                    return Ok(None);
                }
            }
            if tail.next() < to {
                self.seal.refuse(slug, format!("entry {} has no recorded leaf hash", tail.next()));
                return Ok(None);
            }
        }
        let stored = Frontier { size, nodes: nodes(c, org, Frontier::shape(size)).await? };
        match tail.finish(&stored, unsigned_run) {
            Ok(tree) => {
                self.seal.set_trusted(slug, tree.clone());
                Ok(Some(tree))
            }
            Err(reason) => {
                self.seal.refuse(slug, reason);
                Ok(None)
            }
        }
    }
}
