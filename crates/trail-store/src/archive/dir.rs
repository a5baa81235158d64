//! Archives in a local directory (the default): each file written durably (a temporary
//! file, fsync, rename, fsync of the directory), read back whole.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use super::file::io;
use crate::StoreError;

/// The archive directory.
#[derive(Debug, Clone)]
pub struct Dir {
    pub(super) root: PathBuf,
}

impl Dir {
    /// Writes `bytes` at `path` durably, replacing what was there.
    pub fn write(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.root.join(path);
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| io(&dir.display().to_string(), e))?;
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp).map_err(|e| io(&tmp.display().to_string(), e))?;
        f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| io(&tmp.display().to_string(), e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io(&path.display().to_string(), e))?;
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io(&dir.display().to_string(), e))
    }

    /// The bytes at `path`, or `None` if there is no such file.
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let p = self.root.join(path);
        match std::fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&p.display().to_string(), e)),
        }
    }

    /// The data files (and temporary files) under an organization's directory.
    pub fn list(&self, org: &str) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let root = self.root.join(org);
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

    /// Removes `path` (nothing there is fine).
    pub fn remove(&self, path: &str) -> Result<(), StoreError> {
        let p = self.root.join(path);
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&p.display().to_string(), e)),
        }
    }
}
