//! Where archives are kept: one archive store with two implementations, a local
//! directory (`dir`, the default) and an S3-compatible bucket (`bucket`). Both keep the
//! same paths (`org/YYYY-MM/day.first.jsonl.zst` and its manifest); a file is confirmed
//! kept before retention deletes its events' rows, and checked against its manifest
//! whenever it is read back.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use trail_core::Timestamp;

use super::{
    bucket::{Bucket, BucketConfig, Put},
    dir::Dir,
    file::{manifest_bytes, manifest_path, pack, unpack},
    ArchiveFile, Expired,
};
use crate::StoreError;

/// The archive: a directory or a bucket.
#[derive(Debug, Clone)]
pub struct Archive {
    place: Place,
}

#[derive(Debug, Clone)]
enum Place {
    Dir(Dir),
    Bucket(Bucket),
}

fn joined<T>(r: Result<Result<T, StoreError>, tokio::task::JoinError>) -> Result<T, StoreError> {
    r.map_err(|_| StoreError::Closed)?
}

/// Now (µs): a lock's date counts from when the object is written.
fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

impl Archive {
    /// The archive in a local directory.
    pub fn new(dir: impl Into<PathBuf>) -> Archive {
        Archive { place: Place::Dir(Dir { root: dir.into() }) }
    }

    /// The archive in a bucket, checked at once (see `Bucket::open`).
    pub async fn open_bucket(config: &BucketConfig) -> Result<Archive, StoreError> {
        Ok(Archive { place: Place::Bucket(Bucket::open(config).await?) })
    }

    /// The directory, for a directory archive.
    pub fn dir(&self) -> Option<&Path> {
        match &self.place {
            Place::Dir(d) => Some(&d.root),
            Place::Bucket(_) => None,
        }
    }

    /// Where it is, for messages: a directory's path or the bucket's URL.
    pub fn location(&self) -> String {
        match &self.place {
            Place::Dir(d) => d.root.display().to_string(),
            Place::Bucket(b) => b.url().to_string(),
        }
    }

    /// The bytes kept at `path` (`None`: nothing there).
    pub async fn get(&self, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match &self.place {
            Place::Dir(d) => {
                let (d, path) = (d.clone(), path.to_string());
                joined(tokio::task::spawn_blocking(move || d.read(&path)).await)
            }
            Place::Bucket(b) => b.get(path).await,
        }
    }

    /// Writes the events of one organization and UTC day (in seq order) as a new file
    /// and its manifest, both kept for good when this returns (fsynced; or written once
    /// to the bucket, locked as configured, and confirmed by the checksum it stored).
    pub async fn write(
        &self,
        org: &str,
        day: &str,
        events: &[Expired],
        now: Timestamp,
    ) -> Result<ArchiveFile, StoreError> {
        // Compressing is the CPU's work: off the runtime's threads.
        let (org, day, events) = (org.to_string(), day.to_string(), events.to_vec());
        let packed = joined(tokio::task::spawn_blocking(move || pack(&org, &day, &events, now)).await)?;
        self.keep(packed.file, packed.data, packed.manifest).await
    }

    /// Keeps a packed file and its manifest (also `trail archive move`'s copy).
    pub async fn keep(&self, file: ArchiveFile, data: Vec<u8>, manifest: Vec<u8>) -> Result<ArchiveFile, StoreError> {
        match &self.place {
            Place::Dir(d) => {
                let d = d.clone();
                joined(
                    tokio::task::spawn_blocking(move || {
                        d.write(&file.path, &data)?;
                        d.write(&manifest_path(&file.path), &manifest)?;
                        Ok(file)
                    })
                    .await,
                )
            }
            Place::Bucket(b) => keep_in_bucket(b, file, data, manifest).await,
        }
    }

    /// The leaves of a file, after checking it against its manifest.
    pub async fn read(&self, file: &ArchiveFile) -> Result<Vec<Vec<u8>>, StoreError> {
        let damaged = |problem: String| StoreError::Damaged { path: file.path.clone(), problem };
        let got = match &self.place {
            Place::Dir(_) => self.get(&file.path).await,
            Place::Bucket(b) => {
                b.get_checked(&file.path, |bytes| hex::encode(Sha256::digest(bytes)) == file.sha256).await
            }
        };
        let packed = match got {
            Ok(Some(b)) => b,
            Ok(None) => return Err(damaged("cannot be read (it is not in the archive)".into())),
            Err(StoreError::Io(e)) => return Err(damaged(format!("cannot be read ({e})"))),
            Err(e) => return Err(e),
        };
        let file = file.clone();
        joined(tokio::task::spawn_blocking(move || unpack(&file, &packed)).await)
    }

    /// Checks a file against its manifest without keeping its events (so that a
    /// download can refuse a damaged file before it sends anything).
    pub async fn check(&self, file: &ArchiveFile) -> Result<(), StoreError> {
        self.read(file).await.map(drop)
    }

    /// The data files kept under an organization's directory (relative paths).
    pub async fn on_disk(&self, org: &str) -> Result<Vec<String>, StoreError> {
        match &self.place {
            Place::Dir(d) => {
                let (d, org) = (d.clone(), org.to_string());
                joined(tokio::task::spawn_blocking(move || d.list(&org)).await)
            }
            Place::Bucket(b) => {
                Ok(b.list(&format!("{org}/")).await?.into_iter().filter(|p| p.ends_with(".jsonl.zst")).collect())
            }
        }
    }

    /// Removes a data file and its manifest (files a crashed run left behind); `false`
    /// when a lock keeps them (a bucket's Object Lock).
    pub async fn remove(&self, path: &str) -> Result<bool, StoreError> {
        match &self.place {
            Place::Dir(d) => {
                let (d, path) = (d.clone(), path.to_string());
                joined(
                    tokio::task::spawn_blocking(move || {
                        d.remove(&path)?;
                        d.remove(&manifest_path(&path))?;
                        Ok(true)
                    })
                    .await,
                )
            }
            Place::Bucket(b) => Ok(b.delete(path).await? & b.delete(&manifest_path(path)).await?),
        }
    }

    /// Sets or lifts the S3 legal hold of a file and its manifest; `false` for a
    /// directory, which has none.
    pub async fn legal_hold(&self, file: &ArchiveFile, on: bool) -> Result<bool, StoreError> {
        match &self.place {
            Place::Dir(_) => Ok(false),
            Place::Bucket(b) => {
                b.legal_hold(&file.path, on).await?;
                b.legal_hold(&manifest_path(&file.path), on).await?;
                Ok(true)
            }
        }
    }

    /// Whether a file carries an S3 legal hold.
    pub async fn legally_held(&self, file: &ArchiveFile) -> Result<bool, StoreError> {
        match &self.place {
            Place::Dir(_) => Ok(false),
            Place::Bucket(b) => b.held(&file.path).await,
        }
    }

    /// Writes a published object (tiles, entry bundles: `once`, never rewritten; the
    /// checkpoint: replaced).
    pub async fn publish(&self, path: &str, bytes: Vec<u8>, once: bool) -> Result<(), StoreError> {
        match &self.place {
            Place::Dir(d) => {
                let (d, path) = (d.clone(), path.to_string());
                joined(tokio::task::spawn_blocking(move || d.write(&path, &bytes)).await)
            }
            Place::Bucket(b) if once => b.put_once(path, bytes, false, now_us()).await.map(drop),
            Place::Bucket(b) => b.put(path, bytes).await,
        }
    }
}

/// A file and its manifest written once to the bucket. An object already at the key
/// (left by a run that stopped before recording it, and kept by its lock) is taken
/// when it holds the same bytes; otherwise the file goes to a key of its own.
async fn keep_in_bucket(
    b: &Bucket,
    mut file: ArchiveFile,
    data: Vec<u8>,
    mut manifest: Vec<u8>,
) -> Result<ArchiveFile, StoreError> {
    let sha = Sha256::digest(&data);
    for attempt in 0..2 {
        if attempt == 1 {
            let stem = file.path.trim_end_matches(".jsonl.zst").to_string();
            file.path = format!("{stem}.{}.jsonl.zst", &file.sha256[..12]);
            manifest = manifest_bytes(&file)?;
        }
        b.put_once(&file.path, data.clone(), true, now_us()).await?;
        if !b.confirm(&file.path, data.len(), &sha).await? {
            continue;
        }
        let mpath = manifest_path(&file.path);
        match b.put_once(&mpath, manifest.clone(), true, now_us()).await? {
            Put::Written => {
                if b.confirm(&mpath, manifest.len(), &Sha256::digest(&manifest)).await? {
                    return Ok(file);
                }
            }
            Put::Exists => {
                let kept = b.get(&mpath).await?.and_then(|m| serde_json::from_slice::<ArchiveFile>(&m).ok());
                if let Some(kept) =
                    kept.filter(|k| ArchiveFile { created_at: file.created_at.clone(), ..k.clone() } == file)
                {
                    return Ok(kept);
                }
            }
        }
    }
    Err(StoreError::Damaged {
        path: file.path,
        problem: "the bucket holds other bytes at its keys, which cannot be replaced".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn files_round_trip_and_are_checked() {
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
        let f = a.write("acme", "2023-11-14", &evs, Timestamp(0)).await.unwrap();
        assert_eq!((f.count, f.first_seq, f.last_seq), (3, 3, 5));
        assert_eq!(f.path, "acme/2023-11/2023-11-14.3.jsonl.zst");
        assert_eq!(a.read(&f).await.unwrap(), evs.iter().map(|e| e.leaf.clone()).collect::<Vec<_>>());
        assert_eq!(a.on_disk("acme").await.unwrap(), vec![f.path.clone()]);
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
        assert!(matches!(a.read(&f).await, Err(StoreError::Damaged { ref path, .. }) if *path == f.path));
        assert!(a.remove(&f.path).await.unwrap());
        assert!(a.on_disk("acme").await.unwrap().is_empty());
    }
}
