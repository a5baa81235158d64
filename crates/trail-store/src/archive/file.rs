//! The archive's format: one zstd-compressed JSON Lines file per organization, UTC day
//! and run, holding the events' exact leaf bytes in log order, its JSON manifest beside
//! it (counts, seqs, times, SHA-256), packed here and checked when read back (where
//! they are kept is `place`'s).

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

/// A file's packed bytes and its manifest, ready to be kept.
pub struct Packed {
    pub file: ArchiveFile,
    pub data: Vec<u8>,
    pub manifest: Vec<u8>,
}

/// Packs the events of one organization and UTC day (in seq order): the compressed
/// JSON Lines file and its manifest, at `path_for(first seq)`.
pub fn pack(org: &str, day: &str, events: &[Expired], now: Timestamp) -> Result<Packed, StoreError> {
    let (first, last) = match (events.first(), events.last()) {
        (Some(f), Some(l)) => (f.seq, l.seq),
        _ => return Err(StoreError::Invalid { field: "events".into(), message: "nothing to archive".into() }),
    };
    let mut plain = Vec::with_capacity(events.iter().map(|e| e.leaf.len() + 1).sum());
    for e in events {
        plain.extend_from_slice(&e.leaf);
        plain.push(b'\n');
    }
    let data = zstd::encode_all(&plain[..], 9).map_err(|e| io("compressing an archive", e))?;
    let month = day.get(..7).unwrap_or(day);
    let min = events.iter().map(|e| e.ts).min().unwrap_or_default();
    let max = events.iter().map(|e| e.ts).max().unwrap_or_default();
    let file = ArchiveFile {
        format: FORMAT.into(),
        org: org.into(),
        day: day.into(),
        path: format!("{org}/{month}/{day}.{first}.jsonl.zst"),
        count: events.len() as u64,
        first_seq: first,
        last_seq: last,
        min_time: Timestamp(min).to_rfc3339_micros(),
        max_time: Timestamp(max).to_rfc3339_micros(),
        sha256: hex::encode(Sha256::digest(&data)),
        created_at: now.to_rfc3339(),
    };
    let manifest = manifest_bytes(&file)?;
    Ok(Packed { file, data, manifest })
}

pub(super) fn manifest_bytes(file: &ArchiveFile) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec_pretty(file).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The leaves of a file's bytes, after checking them against its manifest (SHA-256,
/// count, and each entry an event of the manifest's organization and seq range).
pub fn unpack(file: &ArchiveFile, packed: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
    let damaged = |problem: String| StoreError::Damaged { path: file.path.clone(), problem };
    if hex::encode(Sha256::digest(packed)) != file.sha256 {
        return Err(damaged("its SHA-256 differs from the manifest".into()));
    }
    let plain = zstd::decode_all(packed).map_err(|e| damaged(format!("does not decompress ({e})")))?;
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

pub(super) fn io(context: &str, e: std::io::Error) -> StoreError {
    StoreError::Io(std::io::Error::new(e.kind(), format!("{context}: {e}")))
}

pub(super) fn manifest_path(path: &str) -> String {
    format!("{}.manifest.json", path.trim_end_matches(".jsonl.zst"))
}
