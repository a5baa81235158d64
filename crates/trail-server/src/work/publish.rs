//! Publishing the logs to a bucket (`[transparency] publish`): each log's tiles, in the
//! C2SP tlog-tiles layout (`<log>/tile/…`), and its newest checkpoint (`<log>/checkpoint`),
//! written as they complete, so that auditors and mirrors read them from the bucket or
//! a CDN in front of it, without a Trail server. Every tile path is written once; the
//! checkpoint is written last, so that whatever it covers is already there (and, read
//! back at start, says where publishing resumes). Entry bundles carry event content:
//! they are published only to a bucket the configuration marks private.

use std::{collections::HashMap, time::Duration};

use trail_core::tiles::{Tile, TileKind};
use trail_store::archive::Archive;

use super::{
    mirror::{levels, tiles_of},
    tiles::{self, Log, INSTALLATION},
    Services, WorkError,
};

/// Where and what to publish.
#[derive(Debug, Clone)]
pub struct PublishConfig {
    pub target: Archive,
    /// The bucket is private: entry bundles (event content) go there too.
    pub entries: bool,
    /// How often new checkpoints are looked for.
    pub every: Duration,
}

/// The size a published checkpoint covers (`None`: none, or not ours to read).
fn published_size(note: &[u8]) -> Option<u64> {
    std::str::from_utf8(note).ok()?.lines().nth(1)?.parse().ok()
}

/// The tiles of a tree of `size` not yet published at `from`: full tiles past those
/// complete at `from`, and the partial tiles of `size`.
fn new_tiles(from: u64, size: u64, entries: bool) -> Vec<Tile> {
    let mut kinds: Vec<TileKind> = levels(size).into_iter().map(|level| TileKind::Hashes { level }).collect();
    if entries {
        kinds.push(TileKind::Entries);
    }
    let mut out = Vec::new();
    for kind in kinds {
        let done: Vec<Tile> = tiles_of(from, kind).into_iter().filter(|t| t.partial.is_none()).collect();
        out.extend(tiles_of(size, kind).into_iter().filter(|t| t.partial.is_some() || !done.contains(t)));
    }
    out
}

/// Publishes what is new of one log since `from`; returns the size now published.
pub async fn publish_log(st: &Services, cfg: &PublishConfig, name: &str, from: u64) -> Result<u64, WorkError> {
    let log = Log::named(name);
    let cp = tiles::checkpoint(st, log).await?;
    if cp.size <= from {
        return Ok(from);
    }
    let entries = cfg.entries || name == INSTALLATION;
    for tile in new_tiles(from, cp.size, entries) {
        // A bundle of entries retention deleted without an archive is gone.
        let bytes = match tiles::tile(st, log, tile).await {
            Ok(b) => b,
            Err(WorkError::NotFound(_)) if tile.kind == TileKind::Entries => continue,
            Err(e) => return Err(e),
        };
        cfg.target.publish(&format!("{name}/tile/{}", tile.path()), bytes, true).await?;
    }
    cfg.target.publish(&format!("{name}/checkpoint"), cp.note.into_bytes(), false).await?;
    Ok(cp.size)
}

/// Publishes an organization checkpoint's proof into the installation log
/// (`<org>/checkpoint.tlog-proof`, what `trail verify --mirror --policy` reads); `false`
/// until the checkpoint is in the installation log (within about a second).
pub async fn publish_proof(st: &Services, cfg: &PublishConfig, org: &str, size: u64) -> Result<bool, WorkError> {
    let Some(cp) = st.store.checkpoint(org, Some(size)).await? else { return Ok(false) };
    let Some(text) = tiles::checkpoint_proof(st, org, cp).await? else { return Ok(false) };
    cfg.target.publish(&format!("{org}/checkpoint.tlog-proof"), text.into_bytes(), false).await?;
    Ok(true)
}

/// Publishes every log, then again every `every`, resuming at start from the
/// checkpoints already in the bucket.
pub(crate) async fn run(st: Services) {
    let Some(cfg) = st.config.publish.clone() else { return };
    let mut done: HashMap<String, u64> = HashMap::new();
    let mut proved: HashMap<String, u64> = HashMap::new();
    loop {
        let mut names: Vec<String> = match st.store.orgs().await {
            Ok(orgs) => orgs.into_iter().map(|o| o.slug).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "publishing: cannot list the organizations");
                Vec::new()
            }
        };
        names.push(INSTALLATION.to_string());
        for name in names {
            let from = match done.get(&name) {
                Some(s) => *s,
                None => match cfg.target.get(&format!("{name}/checkpoint")).await {
                    Ok(note) => note.as_deref().and_then(published_size).unwrap_or(0),
                    Err(e) => {
                        tracing::warn!(log = %name, error = %e, "publishing: the bucket cannot be read");
                        continue;
                    }
                },
            };
            let size = match publish_log(&st, &cfg, &name, from).await {
                Ok(size) => size,
                Err(WorkError::NotFound(_)) => continue,
                Err(e) => {
                    tracing::warn!(log = %name, error = %e, "publishing the log's tiles failed");
                    continue;
                }
            };
            done.insert(name.clone(), size);
            if name != INSTALLATION && proved.get(&name) != Some(&size) {
                match publish_proof(&st, &cfg, &name, size).await {
                    Ok(true) => {
                        proved.insert(name, size);
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!(log = %name, error = %e, "publishing the checkpoint's proof failed"),
                }
            }
        }
        tokio::time::sleep(cfg.every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_new_tiles_are_published() {
        let paths = |from, size, entries| new_tiles(from, size, entries).iter().map(Tile::path).collect::<Vec<_>>();
        assert_eq!(paths(0, 3, false), ["0/000.p/3"]);
        assert_eq!(paths(0, 3, true), ["0/000.p/3", "entries/000.p/3"]);
        assert_eq!(paths(3, 256, false), ["0/000", "1/000.p/1"]);
        assert_eq!(paths(256, 300, true), ["0/001.p/44", "1/000.p/1", "entries/001.p/44"]);
        assert!(paths(300, 300, true).iter().all(|p| p.contains(".p/")));
    }
}
