//! `trail repair --org`: what is derived from an organization's stored bytes (rows,
//! search index, search words, per-day counts, idempotency keys) rebuilt from them,
//! for both backends. It refuses to run unless the bytes themselves, the tree and the
//! checkpoints verify: a repair never launders a changed log, and never touches what
//! proves it.

use crate::{
    verify::{verify, Report, VerifyOptions},
    Store, StoreError,
};

/// What a rebuild changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Rebuilt {
    /// Rows recomputed from their bytes (or removed as a second row of a seq).
    pub rows: u64,
    /// Rows outside the log removed.
    pub strays: u64,
    /// Search-index documents written (SQLite rebuilds the whole index).
    pub index_docs: u64,
    /// Search words added.
    pub words: u64,
    /// Idempotency key records removed or written.
    pub keys: u64,
}

/// What `repair` came to.
#[derive(Debug)]
pub enum Repair {
    /// The leaves, tree or checkpoints fail: nothing was changed.
    Refused(Report),
    /// Rebuilt; `after` is the verification that followed.
    Done { before: Report, rebuilt: Rebuilt, after: Report },
}

/// Verifies `org`, rebuilds its derived structures if (and only if) nothing but them
/// is wrong, and verifies again.
pub async fn repair(store: &dyn Store, org: &str, opts: VerifyOptions<'_>) -> Result<Repair, StoreError> {
    let before = verify(store, org, opts.clone()).await?;
    if !before.leaves_ok() {
        return Ok(Repair::Refused(before));
    }
    let rebuilt = store.rebuild_derived(org).await?;
    let after = verify(store, org, opts).await?;
    Ok(Repair::Done { before, rebuilt, after })
}
