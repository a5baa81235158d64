//! Each organization's log as C2SP tiles (`tlog-tiles`): its newest signed checkpoint,
//! hash tiles read from the stored tree nodes, and entry bundles of the stored leaf
//! bytes (archived ones read back from the archive). A tile exists only within the
//! newest checkpoint, so that everything served is covered by a signature; what
//! retention deleted without an archive lies below the log's minimum index and is not
//! served. No HTTP here: the API serves what this returns.

use trail_core::tiles::{bundle, Tile, TileKind};
use trail_store::{archive, SignedCheckpoint};

use super::{Services, WorkError};

/// The newest signed checkpoint of `org`'s log.
pub async fn checkpoint(st: &Services, org: &str) -> Result<SignedCheckpoint, WorkError> {
    st.store.checkpoint(org, None).await?.ok_or_else(|| {
        WorkError::NotFound("no checkpoint yet: the log is empty or was just written; retry in a second".into())
    })
}

/// The bytes of `tile` of `org`'s log: 32-byte hashes, or an entry bundle.
pub async fn tile(st: &Services, org: &str, tile: Tile) -> Result<Vec<u8>, WorkError> {
    let cp = checkpoint(st, org).await?;
    if !tile.in_tree(cp.size) {
        return Err(WorkError::NotFound(format!(
            "no tile {} in this log: its newest checkpoint covers {} entries",
            tile.path(),
            cp.size
        )));
    }
    match tile.kind {
        TileKind::Hashes { .. } => hashes(st, org, tile).await,
        TileKind::Entries => entries(st, org, tile).await,
    }
}

async fn hashes(st: &Services, org: &str, tile: Tile) -> Result<Vec<u8>, WorkError> {
    let (level, from, to) = tile.nodes().ok_or_else(|| WorkError::Internal("a hash tile without nodes".into()))?;
    let nodes = st.store.tree_nodes(org, level, from, to).await?;
    let whole = nodes.len() as u64 == to - from && nodes.iter().zip(from..).all(|((i, _), want)| *i == want);
    if !whole {
        return Err(WorkError::Internal(format!(
            "the stored tree lacks nodes of tile {} (run `trail verify --org {org}`)",
            tile.path()
        )));
    }
    Ok(nodes.iter().flat_map(|(_, h)| *h).collect())
}

async fn entries(st: &Services, org: &str, tile: Tile) -> Result<Vec<u8>, WorkError> {
    let start = tile.start().ok_or_else(|| WorkError::Internal("an entry bundle without a start".into()))?;
    let width = tile.width();
    let rows = archive::scan_merged(&*st.store, st.archive.as_deref(), org, start, width as usize).await?;
    let got: Vec<u64> = rows.iter().map(|(s, _)| *s).take_while(|s| *s < start + width).collect();
    if got.len() as u64 != width || got.iter().zip(start..).any(|(s, want)| *s != want) {
        let first_kept = min_index(st, org).await?;
        return Err(WorkError::NotFound(format!(
            "the entries of bundle {} are not kept (retention deleted them without an archive): \
             this log's minimum index is {first_kept}",
            tile.path()
        )));
    }
    bundle(rows.iter().take(width as usize).map(|(_, l)| l.as_slice())).map_err(WorkError::Internal)
}

/// The first entry this server still has (online or archived): the log's C2SP
/// minimum index.
pub async fn min_index(st: &Services, org: &str) -> Result<u64, WorkError> {
    let first = archive::scan_merged(&*st.store, st.archive.as_deref(), org, 0, 1).await?;
    Ok(first.first().map_or(0, |(s, _)| *s))
}
