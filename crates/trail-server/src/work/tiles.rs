//! Each organization's log, and the installation log of their checkpoints, as C2SP
//! tiles (`tlog-tiles`): the newest signed checkpoint, hash tiles read from the stored
//! tree nodes, and entry bundles (an organization's stored leaf bytes, archived ones read
//! back from the archive; the installation log's 32-byte checkpoint hashes). A tile
//! exists only within the newest checkpoint, so that everything served is covered by a
//! signature; what retention deleted without an archive lies below the log's minimum
//! index and is not served. Also the proof that an organization checkpoint is in the
//! installation log. No HTTP here: the API serves what this returns.

use trail_core::{
    merkle::{self, Hash},
    tiles::{bundle, Tile, TileKind},
};
use trail_store::{archive, SignedCheckpoint};

use super::{Services, WorkError};

/// The name the installation log is served under (`/log/_installation/…`).
pub const INSTALLATION: &str = "_installation";

/// Which log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Log<'a> {
    Org(&'a str),
    /// Every organization checkpoint, as hashes.
    Installation,
}

impl<'a> Log<'a> {
    /// The log a `/log/{name}/…` path names.
    pub fn named(name: &'a str) -> Log<'a> {
        if name == INSTALLATION {
            Log::Installation
        } else {
            Log::Org(name)
        }
    }
}

/// The newest signed checkpoint of a log.
pub async fn checkpoint(st: &Services, log: Log<'_>) -> Result<SignedCheckpoint, WorkError> {
    let cp = match log {
        Log::Org(org) => st.store.checkpoint(org, None).await?,
        Log::Installation => match st.store.installation_checkpoint(None).await? {
            Some(mut cp) => {
                cp.note = super::witness::cosigned_note(&st.store, &cp).await?;
                Some(cp)
            }
            None => None,
        },
    };
    cp.ok_or_else(|| {
        WorkError::NotFound("no checkpoint yet: the log is empty or was just written; retry in a second".into())
    })
}

/// The bytes of `tile` of a log: 32-byte hashes, or an entry bundle.
pub async fn tile(st: &Services, log: Log<'_>, tile: Tile) -> Result<Vec<u8>, WorkError> {
    let cp = checkpoint(st, log).await?;
    if !tile.in_tree(cp.size) {
        return Err(WorkError::NotFound(format!(
            "no tile {} in this log: its newest checkpoint covers {} entries",
            tile.path(),
            cp.size
        )));
    }
    match (tile.kind, log) {
        (TileKind::Hashes { .. }, _) => hashes(st, log, tile).await,
        (TileKind::Entries, Log::Org(org)) => entries(st, org, tile).await,
        (TileKind::Entries, Log::Installation) => {
            let start = tile.start().ok_or_else(|| WorkError::Internal("an entry bundle without a start".into()))?;
            let found = st.store.installation_entries(start, start + tile.width()).await?;
            if found.len() as u64 != tile.width() {
                return Err(WorkError::Internal(format!("the installation log lacks entries of {}", tile.path())));
            }
            let entries: Vec<[u8; 32]> = found.iter().map(|e| e.bytes()).collect();
            bundle(entries.iter().map(|e| e.as_slice())).map_err(WorkError::Internal)
        }
    }
}

async fn hashes(st: &Services, log: Log<'_>, tile: Tile) -> Result<Vec<u8>, WorkError> {
    let (level, from, to) = tile.nodes().ok_or_else(|| WorkError::Internal("a hash tile without nodes".into()))?;
    let nodes = match log {
        Log::Org(org) => st.store.tree_nodes(org, level, from, to).await?,
        Log::Installation => st.store.installation_nodes(level, from, to).await?,
    };
    let whole = nodes.len() as u64 == to - from && nodes.iter().zip(from..).all(|((i, _), want)| *i == want);
    if !whole {
        return Err(WorkError::Internal(format!(
            "the stored tree lacks nodes of tile {} of {log:?} (run `trail verify`)",
            tile.path()
        )));
    }
    Ok(nodes.iter().flat_map(|(_, h)| *h).collect())
}

async fn entries(st: &Services, org: &str, tile: Tile) -> Result<Vec<u8>, WorkError> {
    let start = tile.start().ok_or_else(|| WorkError::Internal("an entry bundle without a start".into()))?;
    let width = tile.width();
    // The range may span several archive files (one a day): read on until it is whole.
    let mut rows: Vec<(u64, Vec<u8>)> = Vec::with_capacity(width as usize);
    while (rows.len() as u64) < width {
        let next = start + rows.len() as u64;
        let more =
            archive::scan_merged(&*st.store, st.archive.as_deref(), org, next, (width - rows.len() as u64) as usize)
                .await?;
        let before = rows.len();
        rows.extend(more.into_iter().skip_while(|(s, _)| *s < next).take_while(|(s, _)| *s < start + width));
        if rows.len() == before || rows.last().is_some_and(|(s, _)| *s + 1 != start + rows.len() as u64) {
            break;
        }
    }
    let got: Vec<u64> = rows.iter().map(|(s, _)| *s).collect();
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

/// An organization checkpoint as a C2SP `tlog-proof` into the installation log (the
/// checkpoint's note as its `extra`), as served and published; `None` until the
/// checkpoint is appended (within about a second of its signing).
pub async fn checkpoint_proof(st: &Services, org: &str, cp: SignedCheckpoint) -> Result<Option<String>, WorkError> {
    let policy = st.config.witness.as_ref().map(|w| &*w.policy);
    let Some(p) = installation_proof(&st.store, policy, org, cp.size).await? else { return Ok(None) };
    let proof = trail_core::tlog_proof::TlogProof {
        extra: Some(cp.note.into_bytes()),
        index: p.index,
        proof: p.proof,
        checkpoint: p.checkpoint.note,
    };
    Ok(Some(proof.to_text()))
}

/// Where an organization checkpoint is in the installation log: its index, and its
/// inclusion proof in the installation log's newest checkpoint.
#[derive(Debug, Clone)]
pub struct InstallationProof {
    pub index: u64,
    pub proof: Vec<Hash>,
    pub checkpoint: SignedCheckpoint,
}

/// The proof that `org`'s checkpoint of `size` is in the installation log (`None` until
/// it is appended, within about a second of its signing). With a witness policy, into
/// the newest checkpoint its quorum cosigned that covers it (its cosignatures added to
/// the note), else into the newest signed one.
pub async fn installation_proof(
    store: &trail_store::DynStore,
    policy: Option<&trail_core::policy::Policy>,
    org: &str,
    size: u64,
) -> Result<Option<InstallationProof>, WorkError> {
    let Some(index) = store.installation_index(org, size).await? else { return Ok(None) };
    let witnessed = match policy {
        Some(p) => super::witness::newest_witnessed(store, p).await?.filter(|cp| index < cp.size),
        None => None,
    };
    let Some(mut cp) = (match witnessed {
        Some(cp) => Some(cp),
        None => store.installation_checkpoint(None).await?,
    }) else {
        return Ok(None);
    };
    if index >= cp.size {
        return Ok(None);
    }
    cp.note = super::witness::cosigned_note(store, &cp).await?;
    let proof = installation_nodes_for(store, |rec| {
        let Ok(p) = merkle::inclusion_proof(rec, index, cp.size);
        p
    })
    .await?;
    Ok(Some(InstallationProof { index, proof, checkpoint: cp }))
}

/// Runs `prove` over the installation log's stored nodes: a first pass records the
/// nodes it needs, which are then read, and a second pass answers.
pub async fn installation_nodes_for<T>(
    store: &trail_store::DynStore,
    prove: impl Fn(&mut merkle::Recorded) -> T,
) -> Result<T, WorkError> {
    let mut rec = merkle::Recorded::default();
    prove(&mut rec);
    for (level, idx) in std::mem::take(&mut rec.wanted) {
        for (i, h) in store.installation_nodes(level, idx, idx + 1).await? {
            rec.known.insert((level, i), h);
        }
    }
    let out = prove(&mut rec);
    if !rec.wanted.is_empty() {
        return Err(WorkError::Internal("the installation log lacks nodes of a proof".into()));
    }
    Ok(out)
}
