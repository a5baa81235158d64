//! Archive files: one zstd-compressed JSON Lines file per organization, UTC day and
//! run, holding the events' exact leaf bytes in log order, its JSON manifest beside it
//! (counts, seqs, times, SHA-256), written durably and checked when read.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use trail_core::{Event, Timestamp};

use super::*;
use crate::StoreError;

/// One archive file's manifest (also recorded in the store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveFile {
    pub format: String,
    pub org: String,
    /// The UTC day of the events' timestamps (`YYYY-MM-DD`).
    pub day: String,
    /// The data file, relative to the archive directory.
    pub path: String,
    pub count: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// The earliest and latest event timestamp (RFC 3339).
    pub min_time: String,
    pub max_time: String,
    /// SHA-256 of the compressed file (hex).
    pub sha256: String,
    /// When the file was written (RFC 3339).
    pub created_at: String,
}

impl ArchiveFile {
    /// Whether the file may hold events of the time range (inclusive, open ends).
    pub fn overlaps(&self, from: Option<Timestamp>, to: Option<Timestamp>) -> bool {
        let min = Timestamp::parse_rfc3339(&self.min_time).map(|t| t.0).unwrap_or(i64::MIN);
        let max = Timestamp::parse_rfc3339(&self.max_time).map(|t| t.0).unwrap_or(i64::MAX);
        from.is_none_or(|from| max >= from.0) && to.is_none_or(|to| min <= to.0)
    }
}

/// The archive directory.
#[derive(Debug, Clone)]
pub struct Archive {
    dir: PathBuf,
}

fn io(context: &str, e: std::io::Error) -> StoreError {
    StoreError::Io(std::io::Error::new(e.kind(), format!("{context}: {e}")))
}

/// Writes `bytes` to `path` durably: a temporary file, fsync, rename, fsync of the
/// directory.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io(&dir.display().to_string(), e))?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| io(&tmp.display().to_string(), e))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| io(&tmp.display().to_string(), e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(&path.display().to_string(), e))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io(&dir.display().to_string(), e))
}

impl Archive {
    pub fn new(dir: impl Into<PathBuf>) -> Archive {
        Archive { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the events of one organization and UTC day (in seq order) to a new file
    /// and its manifest, both durable when this returns.
    pub fn write(&self, org: &str, day: &str, events: &[Expired], now: Timestamp) -> Result<ArchiveFile, StoreError> {
        let (first, last) = match (events.first(), events.last()) {
            (Some(f), Some(l)) => (f.seq, l.seq),
            _ => return Err(StoreError::Invalid { field: "events".into(), message: "nothing to archive".into() }),
        };
        let mut plain = Vec::with_capacity(events.iter().map(|e| e.leaf.len() + 1).sum());
        for e in events {
            plain.extend_from_slice(&e.leaf);
            plain.push(b'\n');
        }
        let packed = zstd::encode_all(&plain[..], 9).map_err(|e| io("compressing an archive", e))?;
        let month = day.get(..7).unwrap_or(day);
        let path = format!("{org}/{month}/{day}.{first}.jsonl.zst");
        let min = events.iter().map(|e| e.ts).min().unwrap_or_default();
        let max = events.iter().map(|e| e.ts).max().unwrap_or_default();
        let file = ArchiveFile {
            format: FORMAT.into(),
            org: org.into(),
            day: day.into(),
            path: path.clone(),
            count: events.len() as u64,
            first_seq: first,
            last_seq: last,
            min_time: Timestamp(min).to_rfc3339_micros(),
            max_time: Timestamp(max).to_rfc3339_micros(),
            sha256: hex::encode(Sha256::digest(&packed)),
            created_at: now.to_rfc3339(),
        };
        write_durably(&self.dir.join(&path), &packed)?;
        let manifest = serde_json::to_vec_pretty(&file).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        write_durably(&self.dir.join(manifest_path(&path)), &manifest)?;
        Ok(file)
    }

    /// The leaves of a file, after checking it against its manifest (SHA-256, count,
    /// and each entry an event of the manifest's organization and seq range).
    pub fn read(&self, file: &ArchiveFile) -> Result<Vec<Vec<u8>>, StoreError> {
        let damaged = |problem: String| StoreError::Damaged { path: file.path.clone(), problem };
        let path = self.dir.join(&file.path);
        let packed = std::fs::read(&path).map_err(|e| damaged(format!("cannot be read ({e})")))?;
        if hex::encode(Sha256::digest(&packed)) != file.sha256 {
            return Err(damaged("its SHA-256 differs from the manifest".into()));
        }
        let plain = zstd::decode_all(&packed[..]).map_err(|e| damaged(format!("does not decompress ({e})")))?;
        let leaves: Vec<Vec<u8>> = plain.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect();
        if leaves.len() as u64 != file.count {
            return Err(damaged(format!("{} events where the manifest says {}", leaves.len(), file.count)));
        }
        for leaf in &leaves {
            match Event::from_leaf(leaf) {
                Ok(e) if e.org == file.org && (file.first_seq..=file.last_seq).contains(&e.seq) => {}
                Ok(e) => return Err(damaged(format!("entry {} of {} lies outside the manifest", e.seq, e.org))),
                Err(e) => return Err(damaged(format!("an entry is not an event ({e})"))),
            }
        }
        Ok(leaves)
    }

    /// Checks a file against its manifest without keeping its events (so that a
    /// download can refuse a damaged file before it sends anything).
    pub fn check(&self, file: &ArchiveFile) -> Result<(), StoreError> {
        self.read(file).map(drop)
    }

    /// The data files under an organization's directory (relative paths).
    pub fn on_disk(&self, org: &str) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let root = self.dir.join(org);
        let months = match std::fs::read_dir(&root) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io(&root.display().to_string(), e)),
        };
        for month in months.flatten() {
            for f in std::fs::read_dir(month.path()).map_err(|e| io(&root.display().to_string(), e))?.flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                if name.ends_with(".jsonl.zst") || name.ends_with(".tmp") {
                    out.push(format!("{org}/{}/{name}", month.file_name().to_string_lossy()));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes a data file and its manifest (files a crashed run left behind).
    pub fn remove(&self, path: &str) -> Result<(), StoreError> {
        for p in [self.dir.join(path), self.dir.join(manifest_path(path))] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&p.display().to_string(), e)),
            }
        }
        Ok(())
    }
}

fn manifest_path(path: &str) -> String {
    format!("{}.manifest.json", path.trim_end_matches(".jsonl.zst"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_round_trip_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let a = Archive::new(dir.path());
        let evs: Vec<Expired> = (3..6)
            .map(|s| Expired {
                seq: s,
                ts: 1_700_000_000_000_000 + s as i64,
                category: "auth".into(),
                leaf: trail_core::Event::from_new(
                    trail_core::event::parse_event(serde_json::json!({"action": "auth:login"})).unwrap(),
                    uuid::Uuid::nil(),
                    "acme",
                    s,
                    Timestamp(1_700_000_000_000_000 + s as i64),
                )
                .to_leaf(),
            })
            .collect();
        let f = a.write("acme", "2023-11-14", &evs, Timestamp(0)).unwrap();
        assert_eq!((f.count, f.first_seq, f.last_seq), (3, 3, 5));
        assert_eq!(f.path, "acme/2023-11/2023-11-14.3.jsonl.zst");
        assert_eq!(a.read(&f).unwrap(), evs.iter().map(|e| e.leaf.clone()).collect::<Vec<_>>());
        assert_eq!(a.on_disk("acme").unwrap(), vec![f.path.clone()]);
        let manifest: ArchiveFile =
            serde_json::from_slice(&std::fs::read(dir.path().join("acme/2023-11/2023-11-14.3.manifest.json")).unwrap())
                .unwrap();
        assert_eq!(manifest, f);
        // A changed byte is caught.
        let p = dir.path().join(&f.path);
        let mut bytes = std::fs::read(&p).unwrap();
        let n = bytes.len() - 1;
        bytes[n] ^= 1;
        std::fs::write(&p, bytes).unwrap();
        assert!(matches!(a.read(&f), Err(StoreError::Damaged { ref path, .. }) if *path == f.path));
        a.remove(&f.path).unwrap();
        assert!(a.on_disk("acme").unwrap().is_empty());
    }
}
