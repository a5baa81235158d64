//! The signer's rule on SQLite (see the shared `seal`): each organization's tree
//! established from its newest checkpoint and the leaf bytes after it, or extended by
//! what another process appended, before the writer signs anything for it.

use rusqlite::{params, Connection, OptionalExtension};
use trail_core::merkle::Frontier;

use super::tree::load_frontier;
use crate::{
    seal::{self, Seal, Tail},
    signer::LogSigner,
    StoreError,
};

/// The tree of `org` at `size` leaves as recomputed from its leaves (see `seal`):
/// the one kept in memory, extended by what was appended since (by another process),
/// or established from the newest checkpoint on. `None` when the organization is
/// refused (this call may refuse it); `Err` only when the database cannot be read.
pub(super) fn established(
    conn: &Connection,
    signer: &LogSigner,
    seal: &Seal,
    org: i64,
    slug: &str,
    size: u64,
) -> Result<Option<Frontier>, StoreError> {
    if seal.is_refused(slug) {
        return Ok(None);
    }
    let (tail, unsigned_run) = match seal.trusted(slug) {
        Some(t) if t.size == size => return Ok(Some(t)),
        Some(t) if t.size > size => {
            let reason = format!("the log has {size} entries, but {} were signed by this process", t.size);
            seal.refuse(slug, reason);
            return Ok(None);
        }
        Some(t) => (Tail::new(slug, t), false),
        None => {
            let newest = newest_checkpoint(conn, org)?;
            let base = match seal::base(signer, slug, newest.as_ref(), size) {
                Ok(b) => b,
                Err(reason) => {
                    seal.refuse(slug, reason);
                    return Ok(None);
                }
            };
            let edge = match base {
                None => Frontier::default(),
                Some((at, root)) => {
                    let edge = load_frontier(conn, org, at)?;
                    if let Err(reason) = seal::check_base(&edge, &root) {
                        seal.refuse(slug, reason);
                        return Ok(None);
                    }
                    edge
                }
            };
            (Tail::new(slug, edge), true)
        }
    };
    let stored = load_frontier(conn, org, size)?;
    match read_tail(conn, org, tail, size)?.and_then(|t| t.finish(&stored, unsigned_run)) {
        Ok(tree) => {
            seal.set_trusted(slug, tree.clone());
            Ok(Some(tree))
        }
        Err(reason) => {
            seal.refuse(slug, reason);
            Ok(None)
        }
    }
}

/// Entries `[tail.next(), size)` read back into `tail` (their bytes and leaf hashes).
fn read_tail(conn: &Connection, org: i64, mut tail: Tail, size: u64) -> Result<Result<Tail, String>, StoreError> {
    const STEP: u64 = 8192;
    let mut leaves = conn.prepare_cached(
        "SELECT t.idx, l.leaf, t.hash FROM tree_nodes t LEFT JOIN leaves l ON l.org_id = t.org_id AND l.seq = t.idx \
         WHERE t.org_id = ?1 AND t.level = 0 AND t.idx >= ?2 AND t.idx < ?3 ORDER BY t.idx",
    )?;
    while tail.next() < size {
        let from = tail.next();
        let to = (from + STEP).min(size);
        let mut rows = leaves.query(params![org, from as i64, to as i64])?;
        while let Some(r) = rows.next()? {
            let seq = r.get::<_, i64>(0)? as u64;
            let leaf: Option<Vec<u8>> = r.get(1)?;
            let hash = super::to_hash(&r.get::<_, Vec<u8>>(2)?)?;
            if let Err(reason) = tail.push(seq, leaf.as_deref(), Some(hash)) {
                return Ok(Err(reason));
            }
        }
        if tail.next() < to {
            return Ok(Err(format!("entry {} has no recorded leaf hash", tail.next())));
        }
    }
    Ok(Ok(tail))
}

/// The newest stored checkpoint of an organization.
fn newest_checkpoint(conn: &Connection, org: i64) -> Result<Option<crate::SignedCheckpoint>, StoreError> {
    let row = conn
        .prepare_cached("SELECT size, root, note FROM checkpoints WHERE org_id = ?1 ORDER BY size DESC LIMIT 1")?
        .query_row([org], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, String>(2)?)))
        .optional()?;
    row.map(|(size, root, note)| Ok(crate::SignedCheckpoint { size: size as u64, root: super::to_hash(&root)?, note }))
        .transpose()
}
