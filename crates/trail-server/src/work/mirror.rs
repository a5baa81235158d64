//! `trail mirror` and `trail verify --mirror`: an auditor's own copy of one log's C2SP
//! tiles, which Trail can no longer change. The mirror fetches the signed checkpoint,
//! every level-0 hash tile and entry bundle and the higher tiles, checks each against
//! the checkpoint before writing it (the level-0 hashes must give the checkpoint's root,
//! every higher hash is recomputed from the level below, every entry must hash to its
//! leaf), and writes them under the paths the server serves them at. Full tiles and
//! bundles already in the directory are read from it and checked again rather than
//! fetched, so an interrupted mirror resumes. The check reads only the directory.

use std::path::{Path, PathBuf};

use trail_core::{
    checkpoint::{self, Checkpoint},
    merkle::{self, Hash},
    tiles::{bundle, unbundle, Tile, TileKind, TILE_WIDTH},
    LeafView,
};

use futures::StreamExt;

use super::{outbound, WorkError};

/// Tiles and bundles fetched at once (each checked and written in order).
const IN_FLIGHT: usize = 8;

/// Where a mirror reads from.
pub struct Source {
    /// The server's URL (`https://trail.example.com`), or the bucket's (`s3://…`).
    pub url: String,
    pub org: String,
    /// An API key (`audit` for the tree, `read` for the entries too).
    pub key: Option<String>,
    /// The bucket the logs are published to (`[transparency] publish`), opened: read
    /// instead of the server.
    pub bucket: Option<trail_store::archive::Archive>,
}

/// Reads a log's resources (`checkpoint`, `tile/…`) from a server or a bucket.
struct Reader<'a> {
    src: &'a Source,
    client: reqwest::Client,
}

impl Reader<'_> {
    async fn get(&self, path: &str) -> Result<Vec<u8>, WorkError> {
        let src = self.src;
        match &src.bucket {
            Some(b) => b.get(&format!("{}/{path}", src.org)).await?.ok_or_else(|| {
                WorkError::NotFound(format!(
                    "{}/{}/{path} is not in the bucket",
                    src.url.trim_end_matches('/'),
                    src.org
                ))
            }),
            None => {
                let url = format!("{}/log/{}/{path}", src.url.trim_end_matches('/'), src.org);
                outbound::fetch(&self.client, &url, src.key.as_deref()).await
            }
        }
    }

    /// The organization checkpoint's proof into the installation log, for `size`.
    async fn checkpoint_proof(&self, size: u64) -> Result<Vec<u8>, WorkError> {
        let src = self.src;
        if src.bucket.is_some() {
            return self.get("checkpoint.tlog-proof").await;
        }
        let url = format!(
            "{}/api/v1/checkpoint?org={}&size={size}&format=tlog-proof",
            src.url.trim_end_matches('/'),
            src.org
        );
        outbound::fetch(&self.client, &url, src.key.as_deref()).await
    }
}

/// What a mirror run did.
#[derive(Debug, Default)]
pub struct Mirrored {
    pub size: u64,
    pub fetched: u64,
    /// Full tiles and bundles already in the directory, checked again.
    pub kept: u64,
    /// The checkpoint is not in the installation log yet (no `checkpoint.tlog-proof`).
    pub unproved: bool,
}

/// What checking a mirror found.
#[derive(Debug, Default)]
pub struct MirrorReport {
    pub size: u64,
    pub origin: String,
    pub entries: u64,
    pub tiles: u64,
    pub findings: Vec<String>,
}

/// Every tile of a tree of `size` at `level` (or its entry bundles), full ones first.
pub(crate) fn tiles_of(size: u64, kind: TileKind) -> Vec<Tile> {
    let span = match kind {
        TileKind::Hashes { level } => TILE_WIDTH.pow(u32::from(level)),
        TileKind::Entries => 1,
    };
    let hashes = size / span;
    let full = hashes / TILE_WIDTH;
    let mut out: Vec<Tile> = (0..full).map(|index| Tile { kind, index, partial: None }).collect();
    let rest = hashes % TILE_WIDTH;
    if rest > 0 {
        out.push(Tile { kind, index: full, partial: Some(rest as u16) });
    }
    out
}

/// The hash levels a tree of `size` has tiles at.
pub(crate) fn levels(size: u64) -> Vec<u8> {
    (0u8..8).take_while(|l| TILE_WIDTH.checked_pow(u32::from(*l)).is_some_and(|s| s <= size)).collect()
}

/// The hashes of every tile level of a tree whose leaf hashes are `leaves`: level `L`
/// holds the Merkle tree hashes of the complete subtrees of `256^L` leaves.
fn tile_levels(leaves: Vec<Hash>) -> Vec<Vec<Hash>> {
    let mut out = vec![leaves];
    while let Some(last) = out.last() {
        if last.len() < TILE_WIDTH as usize {
            break;
        }
        let next: Vec<Hash> = last.chunks_exact(TILE_WIDTH as usize).map(merkle::root).collect();
        out.push(next);
    }
    out
}

fn hashes_of(bytes: &[u8]) -> Vec<Hash> {
    bytes.chunks_exact(32).filter_map(|c| c.try_into().ok()).collect()
}

fn expected(levels: &[Vec<Hash>], tile: &Tile) -> Option<Vec<u8>> {
    let TileKind::Hashes { level } = tile.kind else { return None };
    let from = usize::try_from(tile.index * TILE_WIDTH).ok()?;
    let to = from + tile.width() as usize;
    Some(levels.get(usize::from(level))?.get(from..to)?.concat())
}

fn file(dir: &Path, tile: &Tile) -> PathBuf {
    dir.join("tile").join(tile.path())
}

fn io(what: &Path, e: std::io::Error) -> WorkError {
    WorkError::WriteFailed(format!("{}: {e}", what.display()))
}

/// Writes `bytes` at `path` whole (a temporary file renamed into place).
fn write(path: &Path, bytes: &[u8]) -> Result<(), WorkError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
    }
    let tmp = path.with_extension("partial-write");
    std::fs::write(&tmp, bytes).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))
}

/// A full tile or bundle already mirrored (partial ones are fetched again: the log may
/// have grown past them).
fn kept(dir: &Path, tile: &Tile) -> Option<Vec<u8>> {
    tile.partial.is_none().then(|| std::fs::read(file(dir, tile)).ok()).flatten()
}

/// Mirrors `src`'s log into `dir`, checking every tile against the checkpoint signed
/// by `vkey` before writing it.
pub async fn mirror(src: &Source, vkey: &str, dir: &Path) -> Result<Mirrored, WorkError> {
    let reader = Reader { src, client: outbound::fetcher(std::time::Duration::from_secs(60))? };
    let get = async |path: &str| -> Result<Vec<u8>, WorkError> { reader.get(path).await };
    let note = String::from_utf8(get("checkpoint").await?)
        .map_err(|_| WorkError::Unavailable("the checkpoint is not text".into()))?;
    let cp = checkpoint::verify(&note, vkey).map_err(|e| WorkError::field("key", e.to_string()))?;
    let mut done = Mirrored { size: cp.size, ..Mirrored::default() };
    let get_all = |tiles: Vec<Tile>| {
        let reader = &reader;
        futures::stream::iter(tiles)
            .map(move |tile| async move {
                match kept(dir, &tile) {
                    Some(b) => Ok((tile, b, false)),
                    None => reader.get(&format!("tile/{}", tile.path())).await.map(|b| (tile, b, true)),
                }
            })
            .buffered(IN_FLIGHT)
    };
    // Level 0 first: all of it, since only the whole gives the checkpoint's root.
    let mut leaves = Vec::with_capacity(cp.size as usize);
    let mut fresh = Vec::new();
    let mut level0 = std::pin::pin!(get_all(tiles_of(cp.size, TileKind::Hashes { level: 0 })));
    while let Some(got) = level0.next().await {
        let (tile, bytes, fetched) = got?;
        if fetched {
            done.fetched += 1;
            fresh.push((tile, bytes.clone()));
        } else {
            done.kept += 1;
        }
        if bytes.len() as u64 != tile.width() * 32 {
            return Err(differs(&tile, "is not as wide as it says"));
        }
        leaves.extend(hashes_of(&bytes));
    }
    if merkle::root(&leaves) != cp.root {
        return Err(WorkError::Unavailable(format!(
            "the level-0 tiles do not give the checkpoint's root (size {}): nothing was written",
            cp.size
        )));
    }
    for (tile, bytes) in fresh {
        write(&file(dir, &tile), &bytes)?;
    }
    let levels_of = tile_levels(leaves);
    for level in levels(cp.size).into_iter().skip(1) {
        for tile in tiles_of(cp.size, TileKind::Hashes { level }) {
            let want = expected(&levels_of, &tile).ok_or_else(|| differs(&tile, "lies outside the tree"))?;
            if kept(dir, &tile).as_ref() == Some(&want) {
                done.kept += 1;
                continue;
            }
            done.fetched += 1;
            if get(&format!("tile/{}", tile.path())).await? != want {
                return Err(differs(&tile, "does not hold the hashes of the level below"));
            }
            write(&file(dir, &tile), &want)?;
        }
    }
    let mut bundles = std::pin::pin!(get_all(tiles_of(cp.size, TileKind::Entries)));
    while let Some(got) = bundles.next().await {
        let (tile, bytes, fetched) = got?;
        if fetched {
            done.fetched += 1;
        } else {
            done.kept += 1;
        }
        check_bundle(&tile, &bytes, &levels_of[0], event_org(&src.org)).map_err(|m| differs(&tile, &m))?;
        if fetched {
            write(&file(dir, &tile), &bytes)?;
        }
    }
    write(&dir.join("checkpoint"), note.as_bytes())?;
    // An organization's checkpoint proved into the installation log (witnessed, when
    // the server has witnesses), for `trail verify --mirror DIR --policy FILE`.
    if event_org(&src.org).is_some() {
        match reader.checkpoint_proof(cp.size).await {
            Ok(proof) => write(&dir.join(CHECKPOINT_PROOF), &proof)?,
            Err(WorkError::NotFound(_)) => {
                let _ = std::fs::remove_file(dir.join(CHECKPOINT_PROOF));
                done.unproved = true;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Where a mirror keeps its checkpoint's proof into the installation log.
pub const CHECKPOINT_PROOF: &str = "checkpoint.tlog-proof";

/// The organization whose events a log's entries are (`None` for the installation
/// log, whose entries are 32-byte checkpoint hashes).
fn event_org(log: &str) -> Option<&str> {
    (log != super::tiles::INSTALLATION && log != trail_store::installation::LOG_NAME).then_some(log)
}

fn differs(tile: &Tile, what: &str) -> WorkError {
    WorkError::Unavailable(format!("tile {} {what}: nothing more was written", tile.path()))
}

/// Checks that every entry of a bundle hashes to its leaf and is the event of `org`
/// at that index (for the installation log, `None`: a 32-byte checkpoint hash).
fn check_bundle(tile: &Tile, bytes: &[u8], leaves: &[Hash], org: Option<&str>) -> Result<(), String> {
    let entries = unbundle(bytes).ok_or("is not a well-formed bundle")?;
    if entries.len() as u64 != tile.width() {
        return Err(format!("holds {} entries, not {}", entries.len(), tile.width()));
    }
    let start = tile.index * TILE_WIDTH;
    for (i, e) in entries.iter().enumerate() {
        let seq = start + i as u64;
        if leaves.get(seq as usize) != Some(&merkle::leaf_hash(e)) {
            return Err(format!("entry {seq} does not hash to its leaf"));
        }
        let Some(org) = org else {
            if e.len() != 32 {
                return Err(format!("entry {seq} is not a 32-byte checkpoint hash"));
            }
            continue;
        };
        // The lazy scanner reads seq and org without building the whole event.
        let ev = LeafView::read(e).map_err(|err| format!("entry {seq} is not an event: {err}"))?;
        if ev.seq != seq || ev.org != org {
            return Err(format!("entry {seq} names seq {} of '{}'", ev.seq, ev.org));
        }
    }
    // The same bytes a server would serve.
    if bundle(entries.iter().copied()).ok().as_deref() != Some(bytes) {
        return Err("is not encoded as a bundle".into());
    }
    Ok(())
}

/// Checks a mirror in `dir` offline against `vkey`: the checkpoint's signature, the
/// level-0 tiles against its root, every higher tile against the level below, every
/// entry against its leaf. Missing files are findings.
pub fn verify_mirror(dir: &Path, vkey: &str) -> Result<MirrorReport, WorkError> {
    let path = dir.join("checkpoint");
    let note = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
    let cp: Checkpoint = checkpoint::verify(&note, vkey).map_err(|e| WorkError::field("key", e.to_string()))?;
    let org = cp.origin.rsplit_once('/').map_or(cp.origin.as_str(), |(_, o)| o).to_string();
    let mut report = MirrorReport { size: cp.size, origin: cp.origin.clone(), ..MirrorReport::default() };
    let mut leaves = Vec::with_capacity(cp.size as usize);
    for tile in tiles_of(cp.size, TileKind::Hashes { level: 0 }) {
        match std::fs::read(file(dir, &tile)) {
            Ok(b) if b.len() as u64 == tile.width() * 32 => leaves.extend(hashes_of(&b)),
            Ok(_) => return Err(WorkError::Unavailable(format!("tile {} is cut short", tile.path()))),
            Err(_) => return Err(WorkError::Unavailable(format!("tile {} is missing: mirror again", tile.path()))),
        }
        report.tiles += 1;
    }
    if merkle::root(&leaves) != cp.root {
        report.findings.push("the level-0 tiles do not give the checkpoint's root".into());
        return Ok(report);
    }
    let levels_of = tile_levels(leaves);
    for level in levels(cp.size).into_iter().skip(1) {
        for tile in tiles_of(cp.size, TileKind::Hashes { level }) {
            report.tiles += 1;
            let have = std::fs::read(file(dir, &tile)).ok();
            if have.is_none() || have != expected(&levels_of, &tile) {
                report.findings.push(format!("tile {} is missing or does not hold the level below", tile.path()));
            }
        }
    }
    for tile in tiles_of(cp.size, TileKind::Entries) {
        match std::fs::read(file(dir, &tile)) {
            Ok(b) => match check_bundle(&tile, &b, &levels_of[0], event_org(&org)) {
                Ok(()) => report.entries += tile.width(),
                Err(m) => report.findings.push(format!("bundle {} {m}", tile.path())),
            },
            Err(_) => report.findings.push(format!("bundle {} is missing", tile.path())),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tiles_of_a_tree_are_those_the_spec_names() {
        let paths = |size, kind| tiles_of(size, kind).iter().map(Tile::path).collect::<Vec<_>>();
        assert_eq!(paths(70_000, TileKind::Hashes { level: 0 }).len(), 274);
        assert_eq!(paths(70_000, TileKind::Hashes { level: 1 }), ["1/000", "1/001.p/17"]);
        assert_eq!(paths(70_000, TileKind::Hashes { level: 2 }), ["2/000.p/1"]);
        assert_eq!(levels(70_000), [0, 1, 2]);
        assert_eq!(levels(255), [0]);
        assert_eq!(paths(256, TileKind::Entries), ["entries/000"]);
        let leaves: Vec<Hash> = (0..70_000u32).map(|i| merkle::leaf_hash(&i.to_be_bytes())).collect();
        let levels_of = tile_levels(leaves.clone());
        assert_eq!(levels_of.len(), 3);
        assert_eq!(levels_of[1][0], merkle::root(&leaves[..256]));
        assert_eq!(levels_of[2][0], merkle::root(&leaves[..65_536]));
    }
}
