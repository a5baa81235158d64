//! The embedded SQLite backend (WAL, FTS5), the default storage tier.
//!
//! Useful for: one Trail process on one machine, with nothing to install; tens of
//! thousands of events per second and first pages in milliseconds up to millions of
//! events. Not useful for: several Trail processes sharing one log (use PostgreSQL).
//!
//! One writer thread owns the write connection and performs group commit: it takes
//! every batch that is waiting and writes them in one transaction, first without
//! savepoints (opening one makes FTS5 flush); only when that fails is the group written
//! again with a savepoint around each batch, so that a bad batch fails alone. It
//! commits with a full fsync, and only then acknowledges them. Reads use a small pool of read-only connections on Tokio's
//! blocking threads.
//!
//! Rooms: `schema` (migrations), `writer` (group commit), `checkpointer` (WAL
//! checkpoints), `index` (the FTS5 filter and search index), `query` (lists, streams,
//! counts), `rollup` (per-day counts: facets, timelines), `tree` (checkpoints and
//! proofs), `retention`, `accounts` (keys,
//! users, sessions, roles, schedules), `audit` (what the verifier reads).

use std::{
    path::{Path, PathBuf},
    sync::{mpsc, Arc, Mutex},
    time::Duration,
};

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use trail_core::merkle::Hash;

use crate::{seal::Seal, signer::LogSigner, StoreError};

mod accounts;
mod alerts;
mod audit;
mod checkpointer;
mod holds;
mod index;
mod installation;
mod query;
mod repair;
mod retention;
mod rollup;
mod schema;
mod seal;
mod streams;
#[cfg(test)]
mod tests;
mod tree;
mod witnesses;
mod writer;

pub use schema::{migrate, SCHEMA_VERSION};
pub use writer::{Prepared, INSERT_FTS_SQL, INSERT_LEAF_SQL, INSERT_SQL};

use checkpointer::{checkpoint_loop, WRITER_CHECKPOINT_PAGES};
use writer::{writer_loop, Job};

/// Tuning of the SQLite backend.
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    /// Most events written in one group-commit transaction.
    pub max_commit_events: usize,
    /// Page cache of the writer connection, in MiB.
    pub writer_cache_mib: u32,
    /// Page cache of each reader connection, in MiB.
    pub reader_cache_mib: u32,
    /// The key that signs checkpoints; without one, trees grow but nothing is signed.
    pub signer: Option<Arc<LogSigner>>,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        SqliteConfig { max_commit_events: 20_000, writer_cache_mib: 16, reader_cache_mib: 16, signer: None }
    }
}

/// Positions per microsecond: `pos = ts * SLOTS + slot`. Events sharing a microsecond
/// take the next free slot (beyond 512 they spill into the following microseconds,
/// keeping arrival order).
pub const SLOTS: i64 = 512;

/// Read connections kept open between reads (more are opened while reads overlap).
const MAX_IDLE_READERS: usize = 4;
/// How far spilled positions may run past their microsecond; time-range bounds on
/// `pos` are widened by this much and then checked exactly on `ts`.
const SPILL: i64 = SLOTS * 1_000_000;

/// The SQLite store. Cheap to share: hold it in an `Arc`.
pub struct SqliteStore {
    path: PathBuf,
    config: SqliteConfig,
    /// Queue to the writer thread; `None` once closed.
    writer: Mutex<Option<mpsc::Sender<Job>>>,
    /// The writer thread, joined on close so the last commit finishes.
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Idle read-only connections.
    readers: Arc<Mutex<Vec<Connection>>>,
    /// Batches being prepared at once (`prepare_slots`).
    preparing: Arc<tokio::sync::Semaphore>,
    /// What the writer's signer trusts, and the organizations it refuses to sign.
    seal: Arc<Seal>,
    /// Opened by `open_read_only` without a write-ahead log present: readers open the
    /// file as immutable, so that nothing (not even a `-wal` or `-shm` file) is created.
    immutable: bool,
    /// The writer's queue and commits, for metrics.
    stats: Arc<writer::WriterStats>,
}

/// Below this much free space on the database's disk a store is not ready: a commit
/// might not fit.
const MIN_FREE_BYTES: u64 = 64 << 20;

impl SqliteStore {
    /// The writer's queue and commits (`EventLog::stats`; readers open as needed, no
    /// pool).
    pub(crate) fn writer_stats(&self) -> crate::StoreStats {
        use std::sync::atomic::Ordering::Relaxed;
        crate::StoreStats {
            queue_depth: self.stats.queued.load(Relaxed),
            commits: self.stats.commits.load(Relaxed),
            committed_events: self.stats.committed.load(Relaxed),
            pool: None,
        }
    }

    /// Readiness (`EventLog::writable`): the writer runs, the database file can be
    /// opened for writing, and its disk has room.
    pub(crate) fn writable_now(&self) -> Result<(), StoreError> {
        if self.immutable || self.writer.lock().map(|w| w.is_none()).unwrap_or(true) {
            return Err(StoreError::Unavailable("the store is closed or read-only".into()));
        }
        std::fs::OpenOptions::new()
            .write(true)
            .open(&self.path)
            .map_err(|e| StoreError::Unavailable(format!("{} cannot be written: {e}", self.path.display())))?;
        let dir = self.path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        let free = rustix::fs::statvfs(dir).map(|s| s.f_bavail.saturating_mul(s.f_frsize)).unwrap_or(u64::MAX);
        if free < MIN_FREE_BYTES {
            return Err(StoreError::Unavailable(format!("the disk of {} has {free} bytes free", self.path.display())));
        }
        Ok(())
    }

    /// Opens (creating and migrating if needed) the store at `path` and starts its
    /// writer thread.
    pub fn open(path: &Path, config: SqliteConfig) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // The writer reads little beyond its page cache; a map of the whole file would
        // only add its pages to the process's resident set.
        let mut conn = open_unmapped(path, false, config.writer_cache_mib)?;
        migrate(&mut conn)?;
        // Checkpoints (copying the WAL into the database file and syncing it) run on a
        // thread of their own, so commits do not wait for them; the writer checkpoints
        // itself only as a backstop, when the WAL has grown past WRITER_CHECKPOINT_PAGES
        // because the checkpointer never caught up between two commits.
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)?;
        let checkpointer = open_unmapped(path, false, 2)?;
        checkpointer.pragma_update(None, "wal_autocheckpoint", 0)?;
        let (ck_tx, ck_rx) = mpsc::sync_channel(1);
        let ck_thread = std::thread::Builder::new()
            .name("trail-sqlite-checkpointer".into())
            .spawn(move || checkpoint_loop(checkpointer, ck_rx))?;
        let (tx, rx) = mpsc::channel();
        let max = config.max_commit_events;
        let signer = config.signer.clone();
        let seal = Arc::new(Seal::default());
        let writer_seal = seal.clone();
        let stats = Arc::new(writer::WriterStats::default());
        let writer_stats = stats.clone();
        let thread = std::thread::Builder::new().name("trail-sqlite-writer".into()).spawn(move || {
            writer_loop(conn, rx, ck_tx, max, signer, writer_seal, writer_stats);
            let _ = ck_thread.join();
        })?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            config,
            writer: Mutex::new(Some(tx)),
            writer_thread: Mutex::new(Some(thread)),
            readers: Arc::new(Mutex::new(Vec::new())),
            preparing: Arc::new(tokio::sync::Semaphore::new(crate::prepare::prepare_slots())),
            seal,
            immutable: false,
            stats,
        })
    }

    /// Opens the store at `path` for reading only (`trail verify`): no migration, no
    /// writer, no signer, nothing written or created. Appends answer `Closed`. When
    /// the write-ahead log is present (a server has it open, or stopped uncleanly) it
    /// is read as usual; otherwise the file is read as immutable. The schema must be
    /// this binary's.
    pub fn open_read_only(path: &Path) -> Result<SqliteStore, StoreError> {
        if !path.is_file() {
            return Err(StoreError::Invalid {
                field: "database".into(),
                message: format!("{} does not exist", path.display()),
            });
        }
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let immutable = !Path::new(&wal).exists();
        let conn = open_reader(path, immutable, 2)?;
        let version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version != SCHEMA_VERSION {
            return Err(StoreError::Invalid {
                field: "database".into(),
                message: format!(
                    "the store's schema is version {version}, this binary's {SCHEMA_VERSION}: open it with the matching trail first"
                ),
            });
        }
        Ok(SqliteStore {
            path: path.to_path_buf(),
            config: SqliteConfig::default(),
            writer: Mutex::new(None),
            writer_thread: Mutex::new(None),
            readers: Arc::new(Mutex::new(vec![conn])),
            preparing: Arc::new(tokio::sync::Semaphore::new(1)),
            seal: Arc::new(Seal::default()),
            immutable,
            stats: Arc::default(),
        })
    }

    /// Stops accepting appends and waits for the writer to finish its last commit.
    pub fn close(&self) {
        self.writer.lock().map(|mut w| w.take()).ok();
        if let Some(t) = self.writer_thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on a pooled read-only connection on a blocking thread. At most
    /// `MAX_IDLE_READERS` are kept between reads: each holds its own page cache, so a
    /// burst of parallel reads would otherwise keep the memory of its widest moment.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let pool = self.readers.clone();
        let path = self.path.clone();
        let cache = self.config.reader_cache_mib;
        let immutable = self.immutable;
        tokio::task::spawn_blocking(move || {
            let conn = pool.lock().ok().and_then(|mut p| p.pop());
            let conn = match conn {
                Some(c) => c,
                None => open_reader(&path, immutable, cache)?,
            };
            let out = f(&conn);
            if let Ok(mut p) = pool.lock() {
                if p.len() < MAX_IDLE_READERS {
                    p.push(conn);
                }
            }
            out
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    /// Runs `f` on a fresh read-write connection (for rare administrative writes that
    /// do not go through group commit, e.g. creating keys beside a running server).
    async fn admin<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = open_conn(&path, false, 2)?;
            f(&mut conn)
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

fn open_conn(path: &Path, read_only: bool, cache_mib: u32) -> Result<Connection, StoreError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    if !read_only {
        // WAL lets readers run during commits; FULL makes every commit fsync the WAL,
        // which is what "acknowledged = durable" requires.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
    }
    conn.pragma_update(None, "cache_size", -(i64::from(cache_mib) * 1024))?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "mmap_size", 1i64 << 30)?;
    Ok(conn)
}

/// A read-only connection; with `immutable`, one that takes no lock and creates no
/// file (for a store no process has open).
fn open_reader(path: &Path, immutable: bool, cache_mib: u32) -> Result<Connection, StoreError> {
    if !immutable {
        return open_conn(path, true, cache_mib);
    }
    // A URI path: every byte but the unreserved ones and '/' percent-encoded.
    let abs = std::fs::canonicalize(path)?;
    let mut uri = String::from("file:");
    for b in abs.as_os_str().as_encoded_bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => uri.push(*b as char),
            _ => uri.push_str(&format!("%{b:02X}")),
        }
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(format!("{uri}?immutable=1"), flags)?;
    conn.pragma_update(None, "cache_size", -(i64::from(cache_mib) * 1024))?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(conn)
}

/// `open_conn` without a memory map: for connections that scan far (streams, counts) or
/// only write, whose pages a map would leave in the process's resident set.
fn open_unmapped(path: &Path, read_only: bool, cache_mib: u32) -> Result<Connection, StoreError> {
    let conn = open_conn(path, read_only, cache_mib)?;
    conn.pragma_update(None, "mmap_size", 0)?;
    Ok(conn)
}

fn known_org(conn: &Connection, slug: &str) -> Result<i64, StoreError> {
    conn.prepare_cached("SELECT id FROM orgs WHERE slug = ?1")?
        .query_row([slug], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::UnknownOrg(slug.to_string()))
}

fn to_hash(bytes: &[u8]) -> Result<Hash, StoreError> {
    bytes.try_into().map_err(|_| StoreError::Corrupt("a stored hash is not 32 bytes".into()))
}

/// A BLOB column borrowed from a row.
/// A named enum read back from a text column (any other text is a conversion error).
fn named<T: crate::named::Named>(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<T> {
    let s: String = row.get(i)?;
    crate::named::read(&s)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e)))
}

fn blob<'r>(row: &'r rusqlite::Row<'_>, i: usize) -> Result<&'r [u8], StoreError> {
    row.get_ref(i)?.as_blob().map_err(|e| StoreError::Corrupt(e.to_string()))
}
