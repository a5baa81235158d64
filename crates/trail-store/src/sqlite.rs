//! The embedded SQLite backend (WAL, FTS5), the default storage tier.
//!
//! Useful for: one Trail process on one machine, with nothing to install; tens of
//! thousands of events per second and first pages in milliseconds up to millions of
//! events. Not useful for: several Trail processes sharing one log (use PostgreSQL).
//!
//! One writer thread owns the write connection and performs group commit: it takes
//! every batch that is waiting, writes them in one transaction (each batch inside a
//! savepoint, so a bad batch fails alone), commits with a full fsync, and only then
//! acknowledges them. Reads use a small pool of read-only connections on Tokio's
//! blocking threads.

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    path::{Path, PathBuf},
    sync::{mpsc, Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use ed25519_dalek::SigningKey;
use rusqlite::{params, types::Value as SqlValue, Connection, OpenFlags, OptionalExtension};
use serde_json::Value;
use std::time::Instant;
use tokio::sync::oneshot;
use trail_core::{
    checkpoint::{self, Checkpoint},
    merkle::{self, leaf_hash, Frontier, Hash},
    Cursor, Event, Filter, NewEvent, Outcome, SortField, StatusClass, Timestamp,
};
use uuid::Uuid;

mod accounts;
mod audit;

use crate::{
    archive::{ArchiveFile, Expired, Retention},
    throttle::ThrottleKey,
    verify::{ip_bytes as ip_key, outcome_code, IndexedCopy, StoredEntry},
    ApiKey, AppendBatch, Appended, Categories, Count, Facets, LeafTemplate, ListQuery, NewKey, NewUser, Org, Page,
    Role, Schedule, Scope, Session, SignedCheckpoint, Store, StoreError, StreamRx, User, UserChange,
};

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

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE orgs (
    id INTEGER PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE api_keys (
    id INTEGER PRIMARY KEY,
    org_id INTEGER NOT NULL REFERENCES orgs(id),
    scope TEXT NOT NULL,
    hash BLOB NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
-- One row per event: copies of its fields that filters check exactly and sorts order
-- by (the event itself is in `leaves`). Text columns compare case-insensitively
-- (ASCII) so filters are forgiving. `pos` is timestamp * 512 + a slot, so the table
-- (and the FTS index) is in time order.
CREATE TABLE events (
    pos INTEGER PRIMARY KEY,
    org_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    id BLOB NOT NULL,
    ts INTEGER NOT NULL,
    received INTEGER NOT NULL,
    category TEXT NOT NULL COLLATE NOCASE,
    operation TEXT NOT NULL COLLATE NOCASE,
    result INTEGER NOT NULL,
    status_code INTEGER,
    actor_id TEXT COLLATE NOCASE,
    actor_name TEXT COLLATE NOCASE,
    actor_email TEXT COLLATE NOCASE,
    company TEXT COLLATE NOCASE,
    request_id TEXT,
    resource_type TEXT COLLATE NOCASE,
    resource_id TEXT COLLATE NOCASE,
    resource_name TEXT COLLATE NOCASE,
    workspace_id TEXT COLLATE NOCASE,
    workspace_name TEXT COLLATE NOCASE,
    project TEXT COLLATE NOCASE,
    cluster TEXT COLLATE NOCASE,
    namespace TEXT COLLATE NOCASE,
    ip BLOB,
    idem TEXT
);
-- Each event's exact stored JSON (the Merkle leaf), in log order: verification and
-- scans read it sequentially, and the narrow `events` rows keep sorts and counts fast.
CREATE TABLE leaves (
    org_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    leaf BLOB NOT NULL,
    PRIMARY KEY (org_id, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX events_seq ON events(org_id, seq);
CREATE UNIQUE INDEX events_id ON events(id);
CREATE UNIQUE INDEX events_idem ON events(org_id, idem) WHERE idem IS NOT NULL;
-- The filter and search index: one document per event holding a token per filterable
-- field value (see `terms`) and the free text that `q` searches (see `search_text`).
-- Its rowid is events.pos, which orders by time, so FTS5 returns matches newest first
-- and stops after one page. Contentless with detail=none: the smallest and fastest
-- FTS5 index; exact conditions (and phrase adjacency) are checked on the row.
CREATE VIRTUAL TABLE events_fts USING fts5(
    doc, content='', detail=none, columnsize=0, tokenize='unicode61 remove_diacritics 2'
);
-- Every plain word (ASCII letters, 2 to 32 of them) that occurs in an indexed document:
-- a search for a word prefix becomes an OR of these words, which FTS5 walks lazily
-- (its own prefix queries read every matching posting first).
CREATE TABLE search_words (word TEXT PRIMARY KEY) WITHOUT ROWID;
-- Merge segments less eagerly while ingesting; the writer merges when idle instead.
INSERT INTO events_fts(events_fts, rank) VALUES('automerge', 8);
"#,
    r#"
-- Every complete subtree of each organization's Merkle tree (RFC 9162): level 0 holds
-- the leaf hashes, level l index i the hash of leaves [i * 2^l, (i + 1) * 2^l). Any
-- proof needs O(log n) of them. Kept when retention deletes an event's row.
CREATE TABLE tree_nodes (
    org_id INTEGER NOT NULL,
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (org_id, level, idx)
) WITHOUT ROWID;
-- Signed tree heads, kept so that old ones stay available for consistency proofs.
CREATE TABLE checkpoints (
    org_id INTEGER NOT NULL,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    note TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, size)
) WITHOUT ROWID;
"#,
    r#"
-- People who log in. Emails are unique across the installation (login is by email).
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    org_id INTEGER NOT NULL REFERENCES orgs(id),
    email TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    password TEXT NOT NULL,
    must_change INTEGER NOT NULL DEFAULT 0,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
-- Login sessions, by the SHA-256 of the cookie value.
CREATE TABLE sessions (
    hash BLOB PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    csrf TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_user ON sessions(user_id);
-- Custom roles: the categories their holders may view and export (see Categories).
CREATE TABLE roles (
    org_id INTEGER NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL COLLATE NOCASE,
    view TEXT NOT NULL,
    export TEXT NOT NULL,
    PRIMARY KEY (org_id, name)
) WITHOUT ROWID;
ALTER TABLE api_keys ADD COLUMN user_id INTEGER REFERENCES users(id);
ALTER TABLE api_keys ADD COLUMN label TEXT NOT NULL DEFAULT '';
"#,
    r#"
-- Scheduled exports (see Schedule). Recipients are a JSON array.
CREATE TABLE schedules (
    id INTEGER PRIMARY KEY,
    org_id INTEGER NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    weekday INTEGER,
    at_minute INTEGER NOT NULL,
    query TEXT NOT NULL,
    format TEXT NOT NULL,
    recipients TEXT NOT NULL,
    directory TEXT,
    created_by TEXT NOT NULL,
    next_run INTEGER NOT NULL,
    last_run INTEGER
);
"#,
    r#"
-- Archive files written by retention (see `archive`): the manifest as JSON. A row is
-- written in the transaction that deletes the archived events' rows.
CREATE TABLE archives (
    path TEXT PRIMARY KEY,
    org_id INTEGER NOT NULL REFERENCES orgs(id),
    day TEXT NOT NULL,
    manifest TEXT NOT NULL
);
CREATE INDEX archives_org_day ON archives(org_id, day);
"#,
    r#"
-- Login attempts counted per account and per address (see `throttle`).
CREATE TABLE login_throttle (
    key TEXT PRIMARY KEY,
    attempts INTEGER NOT NULL,
    last INTEGER NOT NULL,
    locked_until INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    // The Company column is the organization, never the company an event's actor
    // claims: the indexed copy (used to sort) is recomputed once. The events' stored
    // bytes are untouched; this column is derived from them.
    r#"
UPDATE events SET company = (SELECT slug FROM orgs WHERE orgs.id = events.org_id)
 WHERE company IS NOT (SELECT slug FROM orgs WHERE orgs.id = events.org_id);
"#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Columns inserted per event, in order (everything but `pos`).
pub const INSERT_SQL: &str = "INSERT INTO events (pos, org_id, seq, id, ts, received, category, operation, \
    result, status_code, actor_id, actor_name, actor_email, company, request_id, resource_type, resource_id, \
    resource_name, workspace_id, workspace_name, project, cluster, namespace, ip, idem) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, \
    ?22, ?23, ?24, ?25)";
pub const INSERT_LEAF_SQL: &str = "INSERT INTO leaves (org_id, seq, leaf) VALUES (?1, ?2, ?3)";
pub const INSERT_FTS_SQL: &str = "INSERT INTO events_fts (rowid, doc) VALUES (?1, ?2)";

/// Positions per microsecond: `pos = ts * SLOTS + slot`. Events sharing a microsecond
/// take the next free slot (beyond 512 they spill into the following microseconds,
/// keeping arrival order).
pub const SLOTS: i64 = 512;
/// How far spilled positions may run past their microsecond; time-range bounds on
/// `pos` are widened by this much and then checked exactly on `ts`.
const SPILL: i64 = SLOTS * 1_000_000;

type Reply = oneshot::Sender<BatchOutcome>;

/// What one batch of a group commit came to.
type BatchOutcome = Result<Vec<Appended>, StoreError>;

/// The SQLite store. Cheap to share: hold it in an `Arc`.
pub struct SqliteStore {
    path: PathBuf,
    config: SqliteConfig,
    /// Queue to the writer thread; `None` once closed.
    writer: Mutex<Option<mpsc::Sender<(PreparedBatch, Reply)>>>,
    /// The writer thread, joined on close so the last commit finishes.
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Idle read-only connections.
    readers: Arc<Mutex<Vec<Connection>>>,
    /// Batches being prepared at once (`prepare_slots`).
    preparing: Arc<tokio::sync::Semaphore>,
}

impl SqliteStore {
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
        let thread = std::thread::Builder::new().name("trail-sqlite-writer".into()).spawn(move || {
            writer_loop(conn, rx, ck_tx, max, signer);
            let _ = ck_thread.join();
        })?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            config,
            writer: Mutex::new(Some(tx)),
            writer_thread: Mutex::new(Some(thread)),
            readers: Arc::new(Mutex::new(Vec::new())),
            preparing: Arc::new(tokio::sync::Semaphore::new(crate::prepare_slots())),
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

    /// Runs `f` on a pooled read-only connection on a blocking thread.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let pool = self.readers.clone();
        let path = self.path.clone();
        let cache = self.config.reader_cache_mib;
        tokio::task::spawn_blocking(move || {
            let conn = pool.lock().ok().and_then(|mut p| p.pop());
            let conn = match conn {
                Some(c) => c,
                None => open_conn(&path, true, cache)?,
            };
            let out = f(&conn);
            if let Ok(mut p) = pool.lock() {
                if p.len() < 16 {
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

/// `open_conn` without a memory map: for connections that scan far (streams, counts) or
/// only write, whose pages a map would leave in the process's resident set.
fn open_unmapped(path: &Path, read_only: bool, cache_mib: u32) -> Result<Connection, StoreError> {
    let conn = open_conn(path, read_only, cache_mib)?;
    conn.pragma_update(None, "mmap_size", 0)?;
    Ok(conn)
}

pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew { found: version, supported: SCHEMA_VERSION });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        if i == 1 {
            backfill_trees(&tx)?;
        }
        tx.pragma_update(None, "user_version", i as u32 + 1)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "applied sqlite migration");
    }
    Ok(())
}

/// Builds the Merkle trees of events stored before trees existed (schema version 1).
fn backfill_trees(conn: &Connection) -> Result<(), StoreError> {
    let orgs: Vec<i64> = conn.prepare("SELECT id FROM orgs")?.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    let mut insert = conn.prepare("INSERT INTO tree_nodes (org_id, level, idx, hash) VALUES (?1, ?2, ?3, ?4)")?;
    for org in orgs {
        let mut tree = Frontier::default();
        let mut stmt = conn.prepare("SELECT leaf FROM leaves WHERE org_id = ?1 ORDER BY seq")?;
        let mut rows = stmt.query([org])?;
        while let Some(r) = rows.next()? {
            let leaf: Vec<u8> = r.get(0)?;
            for (level, idx, hash) in tree.push(leaf_hash(&leaf)) {
                insert.execute(params![org, level, idx as i64, &hash[..]])?;
            }
        }
    }
    Ok(())
}

/// The key that signs checkpoints, and the installation name that prefixes each
/// organization's log origin (`<name>/<org>`).
pub struct LogSigner {
    pub name: String,
    pub key: SigningKey,
}

impl std::fmt::Debug for LogSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSigner").field("name", &self.name).finish_non_exhaustive()
    }
}

impl LogSigner {
    pub fn origin(&self, org: &str) -> String {
        format!("{}/{org}", self.name)
    }
}

/// Checkpoints are signed at most this often per organization under load; the writer
/// signs the rest as soon as it is idle.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// What the writer thread remembers across transactions.
struct Writer {
    conn: Connection,
    max_events: usize,
    signer: Option<Arc<LogSigner>>,
    /// Organization ids by slug, and slugs by id.
    orgs: HashMap<String, i64>,
    slugs: HashMap<i64, String>,
    /// Every word in `search_words` (looked up for each word of each event: a fast
    /// hasher, not SipHash).
    words: Words,
    /// When each organization's last checkpoint was signed.
    signed_at: HashMap<i64, Instant>,
    /// Organizations whose newest entries no checkpoint covers yet.
    unsigned: HashSet<i64>,
}

/// What one transaction has learned about the logs it appends to. Cloned before each
/// batch so that a failed batch's effects can be undone with its savepoint.
#[derive(Clone)]
struct TxState {
    next_seq: HashMap<i64, u64>,
    /// The highest stored position.
    high: i64,
    /// The right edge of each touched organization's tree.
    trees: HashMap<i64, Frontier>,
    /// Words added to `search_words` by this transaction.
    new_words: Vec<String>,
}

/// Nice value of the writer thread. Every append waits for this one thread, and on a
/// small machine it shared the cores with HTTP parsing and validation, waiting on the
/// run queue about 10 % of the time; with the higher priority, batches of 1,000 ingested
/// at a median 0.77 of the bare loop instead of 0.70 (BENCHMARKS.md, sixth pass).
const WRITER_NICE: i32 = -10;

/// Gives the calling (writer) thread `WRITER_NICE` where allowed (root or
/// CAP_SYS_NICE); elsewhere it keeps the default priority.
fn raise_priority() {
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), WRITER_NICE) {
        tracing::debug!(error = %e, "writer thread keeps the default priority");
    }
}

fn writer_loop(
    conn: Connection,
    rx: mpsc::Receiver<(PreparedBatch, Reply)>,
    checkpoint: mpsc::SyncSender<()>,
    max_events: usize,
    signer: Option<Arc<LogSigner>>,
) {
    raise_priority();
    let words = load_words(&conn);
    let mut w = Writer {
        conn,
        max_events,
        signer,
        orgs: HashMap::new(),
        slugs: HashMap::new(),
        words,
        signed_at: HashMap::new(),
        unsigned: HashSet::new(),
    };
    // Logs that grew while no checkpoint was signed (say, a crash within the second).
    match unsigned_orgs(&w.conn) {
        Ok(orgs) => w.unsigned = orgs,
        Err(e) => tracing::error!(error = %e, "cannot read checkpoints"),
    }
    let mut merged = true;
    loop {
        let first = match rx.recv_timeout(IDLE) {
            Ok(item) => item,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // Signing and merging write too: their pages go the way of a commit's.
                let wrote = !merged || !w.unsigned.is_empty();
                w.sign_pending();
                if !merged {
                    merged = merge_step(&w.conn);
                }
                if wrote {
                    let _ = checkpoint.try_send(());
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        merged = false;
        let mut group = vec![first];
        let mut n = group[0].0.events.len();
        while n < w.max_events {
            match rx.try_recv() {
                Ok(item) => {
                    n += item.0.events.len();
                    group.push(item);
                }
                Err(_) => break,
            }
        }
        let (batches, replies): (Vec<_>, Vec<_>) = group.into_iter().unzip();
        let started = Instant::now();
        let result = w.commit_group(batches);
        tracing::debug!(events = n, elapsed_ms = started.elapsed().as_millis() as u64, "group commit");
        match result {
            Ok(results) => {
                for (reply, r) in replies.into_iter().zip(results) {
                    let _ = reply.send(r);
                }
                // Full means a checkpoint is already due.
                let _ = checkpoint.try_send(());
            }
            Err(e) => {
                // Words remembered from the failed transaction were never stored.
                w.words = load_words(&w.conn);
                tracing::error!(error = %e, "group commit failed");
                let unknown = matches!(e, StoreError::CommitUnknown(_));
                let msg = e.to_string();
                for reply in replies {
                    let e = if unknown {
                        StoreError::CommitUnknown(msg.clone())
                    } else {
                        StoreError::Unavailable(msg.clone())
                    };
                    let _ = reply.send(Err(e));
                }
            }
        }
    }
    w.sign_pending();
}

/// WAL pages after which the writer checkpoints itself (the checkpointer's backstop).
const WRITER_CHECKPOINT_PAGES: i64 = 8192;

/// Least time between two of the checkpointer's checkpoints.
const WAL_CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// The checkpointer: after commits, at most every WAL_CHECKPOINT_EVERY, copies what the
/// WAL holds into the database file (PASSIVE: it never blocks the writer or readers).
/// Ends when the writer does.
fn checkpoint_loop(conn: Connection, commits: mpsc::Receiver<()>) {
    // Whether a commit came while the last checkpoint's interval ran.
    let mut pending = false;
    loop {
        if !pending && commits.recv().is_err() {
            return;
        }
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "background checkpoint failed");
        }
        pending = false;
        let due = Instant::now() + WAL_CHECKPOINT_EVERY;
        while let Some(left) = due.checked_duration_since(Instant::now()) {
            match commits.recv_timeout(left) {
                Ok(()) => pending = true,
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
    }
}

/// Organizations whose tree is larger than their newest checkpoint.
fn unsigned_orgs(conn: &Connection) -> Result<HashSet<i64>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT o.id FROM orgs o WHERE IFNULL((SELECT MAX(t.idx) + 1 FROM tree_nodes t WHERE t.org_id = o.id \
         AND t.level = 0), 0) > IFNULL((SELECT MAX(size) FROM checkpoints c WHERE c.org_id = o.id), 0)",
    )?;
    let ids = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    Ok(ids)
}

/// How long the writer waits for work before using the time to merge the search index.
const IDLE: Duration = Duration::from_millis(100);

/// One bounded step of merging the search index's segments; returns true when there
/// is nothing left to merge. Runs only while no append is waiting.
fn merge_step(conn: &Connection) -> bool {
    let before = conn.total_changes();
    match conn.execute("INSERT INTO events_fts(events_fts, rank) VALUES('merge', 256)", []) {
        Ok(_) => conn.total_changes() - before < 2,
        Err(e) => {
            tracing::warn!(error = %e, "search index merge failed");
            true
        }
    }
}

/// The writer's copy of `search_words`.
type Words = foldhash::HashSet<String>;

fn load_words(conn: &Connection) -> Words {
    let load = || -> Result<Words, rusqlite::Error> {
        let mut stmt = conn.prepare("SELECT word FROM search_words")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect()
    };
    load().unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot read search words");
        Words::default()
    })
}

/// The right edge of an organization's tree of `size` leaves, read from `tree_nodes`.
fn load_frontier(conn: &Connection, org: i64, size: u64) -> Result<Frontier, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT hash FROM tree_nodes WHERE org_id = ?1 AND level = ?2 AND idx = ?3")?;
    let mut nodes = Vec::new();
    for (level, idx) in Frontier::shape(size) {
        let hash: Vec<u8> = stmt
            .query_row(params![org, level, idx as i64], |r| r.get(0))
            .optional()?
            .ok_or_else(|| StoreError::Corrupt(format!("tree node {level}/{idx} of organization {org} is missing")))?;
        nodes.push((level, to_hash(&hash)?));
    }
    Ok(Frontier { size, nodes })
}

fn to_hash(bytes: &[u8]) -> Result<Hash, StoreError> {
    bytes.try_into().map_err(|_| StoreError::Corrupt("a stored hash is not 32 bytes".into()))
}

impl Writer {
    /// Writes every batch in one transaction; returns each batch's own outcome. The
    /// outer error means the transaction as a whole failed and nothing was stored.
    ///
    /// The group is first written without savepoints: opening one makes FTS5 flush its
    /// pending terms into a segment of their own, which for a group of single-event
    /// requests means a segment per event and constant merging. Only when a batch fails
    /// is the group written again with a savepoint around each batch, so that one bad
    /// batch does not fail the others.
    fn commit_group(&mut self, batches: Vec<PreparedBatch>) -> Result<Vec<BatchOutcome>, StoreError> {
        if let Some(out) = self.write_group(&batches, false)? {
            return Ok(out);
        }
        Ok(self.write_group(&batches, true)?.unwrap_or_default())
    }

    /// One attempt of `commit_group`. Without `isolate`, answers `None` (and stores
    /// nothing) as soon as a batch fails.
    fn write_group(
        &mut self,
        batches: &[PreparedBatch],
        isolate: bool,
    ) -> Result<Option<Vec<BatchOutcome>>, StoreError> {
        let mut tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Read once per transaction: another process (`trail ingest`) may have written
        // since the last one.
        let high: i64 = tx.query_row("SELECT IFNULL(MAX(pos), -1) FROM events", [], |r| r.get(0))?;
        let mut st = TxState { next_seq: HashMap::new(), high, trees: HashMap::new(), new_words: Vec::new() };
        let mut out = Vec::with_capacity(batches.len());
        for batch in batches {
            if !isolate {
                match append_batch(&tx, &mut self.orgs, &mut self.slugs, &self.words, &mut st, batch) {
                    Ok(acks) => out.push(Ok(acks)),
                    Err(_) => return Ok(None), // dropping `tx` rolls everything back
                }
                continue;
            }
            let sp = tx.savepoint()?;
            let saved = st.clone();
            match append_batch(&sp, &mut self.orgs, &mut self.slugs, &self.words, &mut st, batch) {
                Ok(acks) => {
                    sp.commit()?;
                    out.push(Ok(acks));
                }
                Err(e) => {
                    drop(sp); // rolls back to the savepoint
                    st = saved;
                    out.push(Err(e));
                }
            }
        }
        // Sign the new tree heads in the same transaction, at most once a second per
        // organization; the others are signed when the writer is next idle.
        let mut signed = Vec::new();
        if let Some(signer) = &self.signer {
            for (org, tree) in &st.trees {
                let due = self.signed_at.get(org).is_none_or(|t| t.elapsed() >= CHECKPOINT_EVERY);
                let slug = self.slugs.get(org).cloned().unwrap_or_default();
                if due {
                    write_checkpoint(&tx, signer, *org, &slug, tree)?;
                    signed.push(*org);
                } else {
                    self.unsigned.insert(*org);
                }
            }
        }
        tx.set_drop_behavior(rusqlite::DropBehavior::Rollback);
        tx.commit().map_err(|e| match e.sqlite_error_code() {
            // The WAL write or its fsync failed: the commit may have reached the disk.
            Some(rusqlite::ErrorCode::SystemIoFailure) => StoreError::CommitUnknown(e.to_string()),
            _ => e.into(),
        })?;
        for w in st.new_words {
            self.words.insert(w);
        }
        for org in signed {
            self.signed_at.insert(org, Instant::now());
            self.unsigned.remove(&org);
        }
        Ok(Some(out))
    }

    /// Signs checkpoints for every organization whose newest entries none covers.
    fn sign_pending(&mut self) {
        let Some(signer) = self.signer.clone() else { return };
        for org in std::mem::take(&mut self.unsigned) {
            let result = (|| -> Result<(), StoreError> {
                let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let slug: String = tx.query_row("SELECT slug FROM orgs WHERE id = ?1", [org], |r| r.get(0))?;
                let tree = load_frontier(&tx, org, tree_size(&tx, org)?)?;
                write_checkpoint(&tx, &signer, org, &slug, &tree)?;
                tx.commit()?;
                Ok(())
            })();
            match result {
                Ok(()) => {
                    self.signed_at.insert(org, Instant::now());
                }
                Err(e) => {
                    tracing::error!(error = %e, org, "cannot sign checkpoint");
                    self.unsigned.insert(org);
                }
            }
        }
    }
}

fn write_checkpoint(
    conn: &Connection,
    signer: &LogSigner,
    org: i64,
    slug: &str,
    tree: &Frontier,
) -> Result<(), StoreError> {
    let cp = Checkpoint { origin: signer.origin(slug), size: tree.size, root: tree.root() };
    let note = checkpoint::sign(&cp, &signer.key);
    conn.prepare_cached(
        "INSERT OR IGNORE INTO checkpoints (org_id, size, root, note, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![org, cp.size as i64, &cp.root[..], note, chrono::Utc::now().timestamp_micros()])?;
    Ok(())
}

fn org_id(
    conn: &Connection,
    cache: &mut HashMap<String, i64>,
    slugs: &mut HashMap<i64, String>,
    slug: &str,
) -> Result<i64, StoreError> {
    if let Some(id) = cache.get(slug) {
        return Ok(*id);
    }
    let id: Option<i64> = conn.query_row("SELECT id FROM orgs WHERE slug = ?1", [slug], |r| r.get(0)).optional()?;
    let id = id.ok_or_else(|| StoreError::UnknownOrg(slug.to_string()))?;
    cache.insert(slug.to_string(), id);
    slugs.insert(id, slug.to_string());
    Ok(id)
}

fn append_batch(
    conn: &Connection,
    orgs: &mut HashMap<String, i64>,
    slugs: &mut HashMap<i64, String>,
    words: &Words,
    st: &mut TxState,
    batch: &PreparedBatch,
) -> Result<Vec<Appended>, StoreError> {
    let org = org_id(conn, orgs, slugs, &batch.org)?;
    let mut seq = match st.next_seq.get(&org) {
        Some(s) => *s,
        // The log's size is its number of leaf hashes: retention may have deleted the
        // newest rows, never a leaf hash.
        None => conn.query_row(
            "SELECT IFNULL(MAX(idx) + 1, 0) FROM tree_nodes WHERE org_id = ?1 AND level = 0",
            [org],
            |r| r.get::<_, i64>(0).map(|v| v as u64),
        )?,
    };
    let mut tree = match st.trees.remove(&org) {
        Some(t) => t,
        None => load_frontier(conn, org, seq)?,
    };
    let mut insert = conn.prepare_cached(INSERT_SQL)?;
    let mut insert_leaf = conn.prepare_cached(INSERT_LEAF_SQL)?;
    let mut fts = conn.prepare_cached(INSERT_FTS_SQL)?;
    let mut node = conn.prepare_cached("INSERT INTO tree_nodes (org_id, level, idx, hash) VALUES (?1, ?2, ?3, ?4)")?;
    let mut max_in = conn.prepare_cached("SELECT MAX(pos) FROM events WHERE pos >= ?1 AND pos < ?2")?;
    let mut find_idem = conn.prepare_cached("SELECT id, seq FROM events WHERE org_id = ?1 AND idem = ?2")?;
    let mut add_word = conn.prepare_cached("INSERT OR IGNORE INTO search_words (word) VALUES (?1)")?;
    let mut seen: HashMap<&str, Appended> = HashMap::new();
    let mut acks = Vec::with_capacity(batch.events.len());
    let mut head = [SqlValue::Null, SqlValue::Integer(org), SqlValue::Null];
    for p in &batch.events {
        if let Some(key) = p.idem.as_deref() {
            if let Some(a) = seen.get(key) {
                acks.push(Appended { duplicate: true, ..*a });
                continue;
            }
            let found = find_idem
                .query_row(params![org, key], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))
                .optional()?;
            if let Some((id, s)) = found {
                let id = Uuid::from_slice(&id).unwrap_or_default();
                acks.push(Appended { id, seq: s as u64, duplicate: true });
                continue;
            }
        }
        // Events arriving in time order land past every stored position: no lookup.
        let pos = if p.ts * SLOTS > st.high { p.ts * SLOTS } else { free_pos(&mut max_in, p.ts)? };
        st.high = st.high.max(pos);
        let leaf = p.leaf(seq);
        for (level, idx, hash) in tree.push(leaf_hash(&leaf)) {
            node.execute(params![org, level, idx as i64, &hash[..]])?;
        }
        head[0] = SqlValue::Integer(pos);
        head[2] = SqlValue::Integer(seq as i64);
        insert.execute(rusqlite::params_from_iter(head.iter().chain(p.cols.iter())))?;
        insert_leaf.execute(params![org, seq as i64, leaf])?;
        fts.execute(params![pos, p.doc(org)])?;
        for w in &p.words {
            if !words.contains(w) && !st.new_words.contains(w) {
                add_word.execute([w])?;
                st.new_words.push(w.clone());
            }
        }
        let ack = Appended { id: p.id, seq, duplicate: false };
        if let Some(key) = p.idem.as_deref() {
            seen.insert(key, ack);
        }
        acks.push(ack);
        seq += 1;
    }
    st.next_seq.insert(org, seq);
    st.trees.insert(org, tree);
    Ok(acks)
}

/// A batch whose events were prepared outside the writer thread.
struct PreparedBatch {
    org: String,
    events: Vec<Prepared>,
}

/// An event made ready for insertion outside the writer thread: everything except what
/// depends on the log's state (org id, seq, position), so the single writer thread does
/// little more than SQLite's own work.
pub struct Prepared {
    id: Uuid,
    ts: i64,
    idem: Option<String>,
    leaf: LeafTemplate,
    /// Columns 4.. of `INSERT_SQL` (id to idem).
    cols: Vec<SqlValue>,
    /// The FTS document, without the organization token.
    doc: String,
    /// The plain words of the document's free text, for `search_words`.
    words: Vec<String>,
}

impl Prepared {
    pub fn new(org: &str, id: Uuid, new: NewEvent, received_at: Timestamp) -> Prepared {
        let (ev, leaf) = LeafTemplate::new(org, id, new, received_at);
        let mut doc = String::new();
        terms(&ev, &mut doc);
        let text_start = doc.len();
        search_text(&ev, &mut doc);
        let words = plain_words(&doc[text_start..]);
        Prepared { id, ts: ev.timestamp.0, idem: ev.idempotency_key.clone(), leaf, cols: columns(&ev), doc, words }
    }

    /// The leaf bytes for a given seq.
    pub fn leaf(&self, seq: u64) -> Vec<u8> {
        self.leaf.leaf(seq)
    }

    /// The full row for `INSERT_SQL` (the leaf goes to `INSERT_LEAF_SQL`).
    pub fn row(&self, pos: i64, org_id: i64, seq: u64) -> Vec<SqlValue> {
        let mut row = Vec::with_capacity(3 + self.cols.len());
        row.extend([SqlValue::Integer(pos), SqlValue::Integer(org_id), SqlValue::Integer(seq as i64)]);
        row.extend(self.cols.iter().cloned());
        row
    }

    /// The full FTS document for `INSERT_FTS_SQL`.
    pub fn doc(&self, org_id: i64) -> String {
        format!("{} {}", org_token(org_id), self.doc)
    }

    pub fn ts(&self) -> i64 {
        self.ts
    }
}

/// The distinct plain words of a text: ASCII letters only, 2 to 32 of them, lowercased
/// (what the unicode61 tokenizer makes of them too).
fn plain_words(text: &str) -> Vec<String> {
    let mut words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| (2..=32).contains(&w.len()) && w.bytes().all(|b| b.is_ascii_alphabetic()))
        .map(str::to_ascii_lowercase)
        .collect();
    words.sort_unstable();
    words.dedup();
    words
}

/// Columns 4.. of `INSERT_SQL` for an event: the copies of its fields that filters
/// check and sorts order by (its indexed copy, the one form `verify` checks it against).
fn columns(ev: &Event) -> Vec<SqlValue> {
    let c = IndexedCopy::of(ev);
    let text = |s: Option<String>| s.map_or(SqlValue::Null, SqlValue::Text);
    vec![
        SqlValue::Blob(c.id.as_bytes().to_vec()),
        SqlValue::Integer(c.ts),
        SqlValue::Integer(c.received),
        SqlValue::Text(c.category),
        SqlValue::Text(c.operation),
        SqlValue::Integer(c.result),
        c.status_code.map_or(SqlValue::Null, SqlValue::Integer),
        text(c.actor_id),
        text(c.actor_name),
        text(c.actor_email),
        text(c.company),
        text(c.request_id),
        text(c.resource_type),
        text(c.resource_id),
        text(c.resource_name),
        text(c.workspace_id),
        text(c.workspace_name),
        text(c.project),
        text(c.cluster),
        text(c.namespace),
        c.ip.map_or(SqlValue::Null, |k| SqlValue::Blob(k.to_vec())),
        text(ev.idempotency_key.clone()),
    ]
}

/// The first free position for an event at `ts` (microseconds).
fn free_pos(max_in: &mut rusqlite::CachedStatement<'_>, ts: i64) -> Result<i64, StoreError> {
    let mut base = ts * SLOTS;
    loop {
        let max: Option<i64> = max_in.query_row([base, base + SLOTS], |r| r.get(0))?;
        match max {
            None => return Ok(base),
            Some(m) if m + 1 < base + SLOTS => return Ok(m + 1),
            Some(_) => base += SLOTS,
        }
    }
}

/// Stable 64-bit FNV-1a of the ASCII-lowercased value: the token of a field value in
/// the filter index. Stored on disk, so it must never change.
fn fnv(value: &str) -> u64 {
    value
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(0x0100_0000_01b3))
}

/// Field prefixes of filter tokens (letters outside a-f, so `prefix + 16 hex digits`
/// never collides across fields).
mod field {
    pub const ORG: char = 'g';
    pub const CATEGORY: char = 'h';
    pub const OPERATION: char = 'i';
    pub const RESULT: char = 'k';
    pub const STATUS: char = 'l';
    pub const ACTOR_ID: char = 'm';
    pub const ACTOR_NAME: char = 'n';
    pub const ACTOR_EMAIL: char = 'o';
    pub const EMAIL_LOCAL: char = 'j';
    pub const REQUEST: char = 'p';
    pub const RESOURCE_ID: char = 'q';
    pub const RESOURCE_NAME: char = 'r';
    pub const RESOURCE_TYPE: char = 's';
    pub const WORKSPACE_ID: char = 't';
    pub const WORKSPACE_NAME: char = 'u';
    pub const PROJECT: char = 'v';
    pub const CLUSTER: char = 'w';
    pub const NAMESPACE: char = 'x';
    pub const IP: char = 'y';
}

fn token(field: char, value: &str) -> String {
    format!("{field}{:016x}", fnv(value))
}

/// The FTS document an event was indexed with (to delete it from the contentless index).
fn fts_doc(org_id: i64, ev: &Event) -> String {
    let mut doc = String::new();
    terms(ev, &mut doc);
    search_text(ev, &mut doc);
    format!("{} {doc}", org_token(org_id))
}

/// Events of `org` past their retention, in seq order after `after`.
fn expired_blocking(
    conn: &Connection,
    org: &str,
    rules: &Retention,
    as_of: Timestamp,
    after: Option<u64>,
    limit: usize,
) -> Result<Vec<Expired>, StoreError> {
    let org_id = known_org(conn, org)?;
    let mut params: Vec<SqlValue> = vec![SqlValue::Integer(org_id), SqlValue::Integer(after.map_or(-1, |a| a as i64))];
    let mut conds = Vec::new();
    let cutoffs = rules.cutoffs(as_of);
    for (cat, cutoff) in cutoffs.categories {
        params.extend([SqlValue::Text(cat), SqlValue::Integer(cutoff)]);
        conds.push(format!("(e.category = ?{} AND e.ts < ?{})", params.len() - 1, params.len()));
    }
    if let Some((listed, cutoff)) = cutoffs.others {
        let mut others = Vec::new();
        for cat in listed {
            params.push(SqlValue::Text(cat));
            others.push(format!("?{}", params.len()));
        }
        params.push(SqlValue::Integer(cutoff));
        let not_in =
            if others.is_empty() { String::new() } else { format!("e.category NOT IN ({}) AND ", others.join(", ")) };
        conds.push(format!("({not_in}e.ts < ?{})", params.len()));
    }
    if conds.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT e.seq, e.ts, e.category, l.leaf FROM events e JOIN leaves l ON l.org_id = e.org_id AND l.seq = e.seq \
         WHERE e.org_id = ?1 AND e.seq > ?2 AND ({}) ORDER BY e.seq LIMIT {}",
        conds.join(" OR "),
        limit.max(1)
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(params), |r| {
        Ok(Expired { seq: r.get::<_, i64>(0)? as u64, ts: r.get(1)?, category: r.get(2)?, leaf: r.get(3)? })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Records archive files and deletes the archived events' rows, leaves and index
/// entries in one transaction (tree nodes and checkpoints stay).
fn archived_blocking(conn: &mut Connection, org: &str, files: &[ArchiveFile], seqs: &[u64]) -> Result<u64, StoreError> {
    let org_id = known_org(conn, org)?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut deleted = 0u64;
    {
        let mut find = tx.prepare_cached(
            "SELECT e.pos, l.leaf FROM events e JOIN leaves l ON l.org_id = e.org_id AND l.seq = e.seq \
             WHERE e.org_id = ?1 AND e.seq = ?2",
        )?;
        let mut fts = tx.prepare_cached("INSERT INTO events_fts (events_fts, rowid, doc) VALUES ('delete', ?1, ?2)")?;
        let mut del_event = tx.prepare_cached("DELETE FROM events WHERE pos = ?1")?;
        let mut del_leaf = tx.prepare_cached("DELETE FROM leaves WHERE org_id = ?1 AND seq = ?2")?;
        for seq in seqs {
            let row = find
                .query_row(params![org_id, *seq as i64], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
                .optional()?;
            let Some((pos, leaf)) = row else { continue };
            let ev = Event::from_leaf(&leaf).map_err(|e| StoreError::Corrupt(format!("entry {seq}: {e}")))?;
            fts.execute(params![pos, fts_doc(org_id, &ev)])?;
            del_event.execute([pos])?;
            del_leaf.execute(params![org_id, *seq as i64])?;
            deleted += 1;
        }
        let mut rec =
            tx.prepare_cached("INSERT OR REPLACE INTO archives (path, org_id, day, manifest) VALUES (?1, ?2, ?3, ?4)")?;
        for f in files {
            let manifest = serde_json::to_string(f).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            rec.execute(params![f.path, org_id, f.day, manifest])?;
        }
    }
    tx.commit()?;
    Ok(deleted)
}

fn archives_blocking(conn: &Connection, org: Option<&str>) -> Result<Vec<ArchiveFile>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT a.manifest FROM archives a JOIN orgs o ON o.id = a.org_id WHERE (?1 IS NULL OR o.slug = ?1) \
         ORDER BY a.day, a.path",
    )?;
    let rows = stmt.query_map([org], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for m in rows {
        out.push(serde_json::from_str(&m?).map_err(|e| StoreError::Corrupt(format!("archive manifest: {e}")))?);
    }
    Ok(out)
}

fn org_token(org_id: i64) -> String {
    format!("{}{org_id}", field::ORG)
}

/// Prefix lengths at which addresses are indexed; a CIDR block of another length uses
/// the next shorter one and is then checked exactly.
const V4_PREFIXES: [u8; 7] = [8, 12, 16, 20, 24, 28, 32];
const V6_PREFIXES: [u8; 8] = [16, 32, 48, 64, 80, 96, 112, 128];

fn ip_tokens(ip: IpAddr) -> Vec<String> {
    let lens: &[u8] = if ip.is_ipv4() { &V4_PREFIXES } else { &V6_PREFIXES };
    lens.iter()
        .filter_map(|l| ipnet::IpNet::new(ip, *l).ok())
        .map(|n| token(field::IP, &n.trunc().to_string()))
        .collect()
}

/// The status class an event counts in for `status=success|failure`.
fn status_class(ev: &Event) -> Option<StatusClass> {
    match (ev.status_code, ev.result) {
        (Some(c), _) if (200..300).contains(&c) => Some(StatusClass::Success),
        (Some(c), _) if c >= 400 => Some(StatusClass::Failure),
        (None, Outcome::Done) => Some(StatusClass::Success),
        (None, Outcome::Failed) => Some(StatusClass::Failure),
        _ => None,
    }
}

/// The filter tokens of one event.
fn terms(ev: &Event, out: &mut String) {
    use std::fmt::Write;
    let mut push = |f: char, v: Option<&str>| {
        if let Some(v) = v {
            let _ = write!(out, "{f}{:016x} ", fnv(v));
        }
    };
    push(field::CATEGORY, Some(ev.category()));
    push(field::OPERATION, Some(ev.operation()));
    push(field::RESULT, Some(ev.result.as_str()));
    push(field::STATUS, status_class(ev).map(StatusClass::as_str));
    if let Some(a) = &ev.actor {
        push(field::ACTOR_ID, a.id.as_deref());
        push(field::ACTOR_NAME, a.name.as_deref());
        push(field::ACTOR_EMAIL, a.email.as_deref());
        push(field::EMAIL_LOCAL, a.email.as_deref().and_then(|e| e.find('@').map(|i| &e[..=i])));
    }
    push(field::REQUEST, ev.request_id.as_deref());
    if let Some(r) = &ev.resource {
        push(field::RESOURCE_ID, r.id.as_deref());
        push(field::RESOURCE_NAME, r.name.as_deref());
        push(field::RESOURCE_TYPE, r.kind.as_deref());
    }
    if let Some(c) = &ev.context {
        if let Some(w) = &c.workspace {
            push(field::WORKSPACE_ID, w.id.as_deref());
            push(field::WORKSPACE_NAME, w.name.as_deref());
        }
        push(field::PROJECT, c.project.as_deref());
        push(field::CLUSTER, c.cluster.as_deref());
        push(field::NAMESPACE, c.namespace.as_deref());
    }
    if let Some(ip) = ev.source_ip.as_deref().and_then(|s| s.parse::<IpAddr>().ok()) {
        for t in ip_tokens(ip) {
            out.push_str(&t);
            out.push(' ');
        }
    }
}

/// Longest piece of `details`/`response` text indexed for search per event.
const MAX_SEARCH_JSON: usize = 2048;

/// The text `q` searches, as the seeds list it: action, resource names, emails and
/// details; plus the result, the actor's name, the request id and the error message.
pub(crate) fn search_text(ev: &Event, out: &mut String) {
    let mut push = |s: Option<&str>| {
        if let Some(s) = s {
            out.push_str(s);
            out.push(' ');
        }
    };
    push(Some(&ev.action));
    push(Some(ev.result.as_str()));
    if let Some(a) = &ev.actor {
        push(a.name.as_deref());
        push(a.email.as_deref());
    }
    if let Some(r) = &ev.resource {
        push(r.id.as_deref());
        push(r.name.as_deref());
        if let Some(p) = &r.parent {
            push(p.name.as_deref());
        }
    }
    push(ev.request_id.as_deref());
    push(ev.error.as_deref());
    let start = out.len();
    for v in [&ev.details, &ev.response].into_iter().flatten() {
        json_strings(v, out, start + MAX_SEARCH_JSON);
    }
}

fn json_strings(v: &Value, out: &mut String, cap: usize) {
    if out.len() >= cap {
        return;
    }
    match v {
        Value::String(s) => {
            out.push_str(s);
            out.push(' ');
        }
        Value::Number(n) => {
            out.push_str(&n.to_string());
            out.push(' ');
        }
        Value::Array(a) => a.iter().for_each(|x| json_strings(x, out, cap)),
        Value::Object(o) => o.values().for_each(|x| json_strings(x, out, cap)),
        Value::Bool(_) | Value::Null => {}
    }
}

/// A query under construction: exact SQL conditions on the row, which decide, and
/// FTS5 conditions (one AND-ed group per filter) that find the candidates fast.
#[derive(Default)]
struct Sql {
    clauses: Vec<String>,
    params: Vec<SqlValue>,
    /// Groups of filter tokens, each `(a OR b ...)`, all of which must match.
    terms: Vec<String>,
    /// The free-text part, matched against the `body` column.
    text: Option<String>,
    /// Bounds on `pos` implied by the time range (a superset; `ts` is checked exactly).
    lo: Option<i64>,
    hi: Option<i64>,
    /// A condition reads the event's JSON (`l.leaf`).
    needs_leaf: bool,
}

impl Sql {
    fn param(&mut self, v: impl Into<SqlValue>) -> String {
        self.params.push(v.into());
        format!("?{}", self.params.len())
    }

    /// Every value must equal one of the columns (OR); each column has its token field.
    fn any_eq(&mut self, cols: &[(&str, char)], values: &[String]) {
        if values.is_empty() {
            return;
        }
        let mut ors = Vec::new();
        let mut toks = Vec::new();
        for v in values {
            for (c, f) in cols {
                let p = self.param(v.clone());
                ors.push(format!("{c} = {p}"));
                toks.push(token(*f, v));
            }
        }
        self.clauses.push(format!("({})", ors.join(" OR ")));
        self.terms.push(format!("({})", toks.join(" OR ")));
    }

    /// Adds the time range's bounds on a position column.
    fn bound_pos(&mut self, col: &str) {
        if let Some(lo) = self.lo {
            let p = self.param(lo);
            self.clauses.push(format!("{col} >= {p}"));
        }
        if let Some(hi) = self.hi {
            let p = self.param(hi);
            self.clauses.push(format!("{col} <= {p}"));
        }
    }

    fn match_expr(&self) -> Option<String> {
        let mut parts = self.terms.clone();
        parts.extend(self.text.clone());
        (!parts.is_empty()).then(|| parts.join(" AND "))
    }

    fn where_sql(&self) -> String {
        if self.clauses.is_empty() {
            "1".into()
        } else {
            self.clauses.join(" AND ")
        }
    }
}

/// Resolves the scope and the `company` filter into organization ids; `None` means no
/// restriction. An unknown organization yields an empty list (nothing matches).
fn org_ids(conn: &Connection, scope: &Scope, companies: &[String]) -> Result<Option<Vec<i64>>, StoreError> {
    let lookup = |slug: &str| -> Result<Option<i64>, StoreError> {
        Ok(conn
            .prepare_cached("SELECT id FROM orgs WHERE slug = ?1 COLLATE NOCASE OR name = ?1 COLLATE NOCASE")?
            .query_row([slug], |r| r.get(0))
            .optional()?)
    };
    let scoped = match &scope.org {
        None => None,
        Some(slug) => Some(lookup(slug)?.into_iter().collect::<Vec<_>>()),
    };
    if companies.is_empty() {
        return Ok(scoped);
    }
    let mut ids = Vec::new();
    for c in companies {
        if let Some(id) = lookup(c)? {
            if scoped.as_ref().is_none_or(|s| s.contains(&id)) {
                ids.push(id);
            }
        }
    }
    Ok(Some(ids))
}

fn where_clause(
    conn: &Connection,
    scope: &Scope,
    f: &Filter,
    now: Timestamp,
    time_only: bool,
) -> Result<Sql, StoreError> {
    use field::*;
    let mut sql = Sql::default();
    if let Some(ids) = org_ids(conn, scope, &f.company)? {
        if ids.is_empty() {
            sql.clauses.push("0".into());
        } else {
            let ps: Vec<String> = ids.iter().map(|i| sql.param(*i)).collect();
            sql.clauses.push(format!("e.org_id IN ({})", ps.join(",")));
            let toks: Vec<String> = ids.iter().map(|i| org_token(*i)).collect();
            sql.terms.push(format!("({})", toks.join(" OR ")));
        }
    }
    match &scope.categories {
        Categories::All => {}
        Categories::Only(list) if list.is_empty() => sql.clauses.push("0".into()),
        Categories::Only(list) => {
            let ps: Vec<String> = list.iter().map(|c| sql.param(c.clone())).collect();
            sql.clauses.push(format!("category IN ({})", ps.join(",")));
            if f.category.is_empty() && f.action.is_empty() {
                let toks: Vec<String> = list.iter().map(|c| token(CATEGORY, c)).collect();
                sql.terms.push(format!("({})", toks.join(" OR ")));
            }
        }
        Categories::Except(list) => {
            let ps: Vec<String> = list.iter().map(|c| sql.param(c.clone())).collect();
            sql.clauses.push(format!("category NOT IN ({})", ps.join(",")));
        }
    }
    let (from, to) = f.time_range(now);
    if let Some(t) = from {
        let p = sql.param(t.0);
        sql.clauses.push(format!("ts >= {p}"));
        sql.lo = Some(t.0 * SLOTS);
    }
    if let Some(t) = to {
        let p = sql.param(t.0);
        sql.clauses.push(format!("ts <= {p}"));
        sql.hi = Some((t.0 + 1) * SLOTS + SPILL);
    }
    if time_only {
        return Ok(sql);
    }
    sql.any_eq(&[("category", CATEGORY)], &f.category);
    sql.any_eq(&[("operation", OPERATION)], &f.operation);
    if !f.action.is_empty() {
        let mut ors = Vec::new();
        let mut toks = Vec::new();
        for a in &f.action {
            let (c, o) = a.split_once(':').unwrap_or((a, ""));
            let (pc, po) = (sql.param(c.to_string()), sql.param(o.to_string()));
            ors.push(format!("(category = {pc} AND operation = {po})"));
            toks.push(format!("({} AND {})", token(CATEGORY, c), token(OPERATION, o)));
        }
        sql.clauses.push(format!("({})", ors.join(" OR ")));
        sql.terms.push(format!("({})", toks.join(" OR ")));
    }
    if !f.result.is_empty() {
        let ps: Vec<String> = f.result.iter().map(|r| sql.param(outcome_code(*r))).collect();
        sql.clauses.push(format!("result IN ({})", ps.join(",")));
        let toks: Vec<String> = f.result.iter().map(|r| token(RESULT, r.as_str())).collect();
        sql.terms.push(format!("({})", toks.join(" OR ")));
    }
    if let Some(status) = f.status {
        sql.clauses.push(match status {
            StatusClass::Success => {
                "((status_code BETWEEN 200 AND 299) OR (status_code IS NULL AND result = 0))".into()
            }
            StatusClass::Failure => "((status_code >= 400) OR (status_code IS NULL AND result = 1))".into(),
        });
        sql.terms.push(token(STATUS, status.as_str()));
    }
    if !f.actor.is_empty() {
        let mut ors = Vec::new();
        let mut toks = Vec::new();
        for v in &f.actor {
            if v.ends_with('@') {
                let lo = sql.param(v.clone());
                let hi = sql.param(format!("{v}\u{10FFFF}"));
                ors.push(format!("(actor_email >= {lo} AND actor_email < {hi})"));
                toks.push(token(EMAIL_LOCAL, v));
            } else {
                for (c, f) in [("actor_id", ACTOR_ID), ("actor_name", ACTOR_NAME), ("actor_email", ACTOR_EMAIL)] {
                    let p = sql.param(v.clone());
                    ors.push(format!("{c} = {p}"));
                    toks.push(token(f, v));
                }
            }
        }
        sql.clauses.push(format!("({})", ors.join(" OR ")));
        sql.terms.push(format!("({})", toks.join(" OR ")));
    }
    sql.any_eq(&[("request_id", REQUEST)], &f.request_id);
    sql.any_eq(&[("resource_name", RESOURCE_NAME), ("resource_id", RESOURCE_ID)], &f.resource);
    sql.any_eq(&[("resource_type", RESOURCE_TYPE)], &f.resource_type);
    sql.any_eq(&[("workspace_id", WORKSPACE_ID), ("workspace_name", WORKSPACE_NAME)], &f.workspace);
    sql.any_eq(&[("project", PROJECT)], &f.project);
    sql.any_eq(&[("cluster", CLUSTER)], &f.cluster);
    sql.any_eq(&[("namespace", NAMESPACE)], &f.namespace);
    if !f.ip.is_empty() {
        let mut ors = Vec::new();
        let mut toks = Vec::new();
        for net in &f.ip {
            let (lo, hi) = match net {
                ipnet::IpNet::V4(n) => (ip_key(n.network().into()), ip_key(n.broadcast().into())),
                ipnet::IpNet::V6(n) => (ip_key(n.network().into()), ip_key(n.broadcast().into())),
            };
            let (plo, phi) = (sql.param(lo.to_vec()), sql.param(hi.to_vec()));
            ors.push(format!("(ip BETWEEN {plo} AND {phi})"));
            let lens: &[u8] = if net.addr().is_ipv4() { &V4_PREFIXES } else { &V6_PREFIXES };
            // The longest indexed prefix the block lies within; a block wider than
            // every indexed prefix cannot use the index at all.
            let indexed = lens.iter().rev().find(|l| **l <= net.prefix_len());
            toks.push(
                indexed.and_then(|l| ipnet::IpNet::new(net.addr(), *l).ok()).map(|n| token(IP, &n.trunc().to_string())),
            );
        }
        sql.clauses.push(format!("({})", ors.join(" OR ")));
        if toks.iter().all(Option::is_some) {
            let toks: Vec<String> = toks.into_iter().flatten().collect();
            sql.terms.push(format!("({})", toks.join(" OR ")));
        }
    }
    sql.text = fts_query(conn, &f.q)?;
    for term in &f.q {
        // The index knows words, not their order: a phrase is checked on the stored
        // JSON text (ASCII case-insensitively). Terms with characters JSON escapes are
        // left to the word match.
        let words = term.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).count();
        if words > 1 && !term.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
            let p = sql.param(term.to_ascii_lowercase());
            sql.clauses.push(format!("instr(lower(CAST(l.leaf AS TEXT)), {p}) > 0"));
            sql.needs_leaf = true;
        }
    }
    Ok(sql)
}

/// Most words a prefix may stand for before the search falls back to FTS5's own
/// (slower, but complete) prefix query.
const MAX_EXPANSION: usize = 64;

/// Turns search terms into an FTS5 expression: every word of every term must match,
/// the last word of each term as a prefix. A plain-word prefix becomes an OR of the
/// stored words it begins (`deploy` → `deploy OR deployment OR deployments`), which
/// FTS5 walks lazily, newest first. Terms without any letter or digit are ignored.
fn fts_query(conn: &Connection, terms: &[String]) -> Result<Option<String>, StoreError> {
    let mut parts = Vec::new();
    for t in terms {
        let words: Vec<&str> = t.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
        for (i, w) in words.iter().enumerate() {
            if i + 1 < words.len() {
                parts.push(format!("\"{w}\""));
                continue;
            }
            let lower = w.to_ascii_lowercase();
            let expansion = if w.bytes().all(|b| b.is_ascii_alphabetic()) {
                let mut stmt = conn.prepare_cached(
                    "SELECT word FROM search_words WHERE word >= ?1 AND word < ?1 || char(127) ORDER BY word LIMIT ?2",
                )?;
                let found = stmt
                    .query_map(params![lower, MAX_EXPANSION as i64 + 1], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                (found.len() <= MAX_EXPANSION).then_some(found)
            } else {
                None
            };
            match expansion {
                Some(mut found) => {
                    if !found.contains(&lower) {
                        found.push(lower);
                    }
                    let ors: Vec<String> = found.iter().map(|x| format!("\"{x}\"")).collect();
                    parts.push(format!("({})", ors.join(" OR ")));
                }
                None => parts.push(format!("\"{w}\"*")),
            }
        }
    }
    Ok((!parts.is_empty()).then(|| parts.join(" AND ")))
}

/// The SQL expression a sort orders by (NULLs folded to a value so keyset comparisons
/// work), and whether it is an integer.
fn sort_expr(field: SortField) -> (&'static str, bool) {
    match field {
        SortField::Timestamp => ("pos", true),
        SortField::ReceivedAt => ("received", true),
        SortField::Seq => ("e.seq", true),
        SortField::SourceIp => ("IFNULL(ip, x'')", false),
        SortField::Performer => ("IFNULL(actor_name, IFNULL(actor_email, ''))", false),
        SortField::Company => ("IFNULL(company, '')", false),
        SortField::Email => ("IFNULL(actor_email, '')", false),
        SortField::Category => ("category", false),
        SortField::Operation => ("operation", false),
        SortField::Action => ("category || ':' || operation", false),
        SortField::Result => ("result", true),
        SortField::StatusCode => ("IFNULL(status_code, -1)", true),
        SortField::RequestId => ("IFNULL(request_id, '')", false),
        SortField::Resource => ("IFNULL(resource_name, IFNULL(resource_id, ''))", false),
    }
}

/// Joins an event row (`e`) to its stored JSON (`l`).
const LEAF_JOIN: &str = "JOIN leaves l ON l.org_id = e.org_id AND l.seq = e.seq";

/// The statement listing `q`'s events (`pos, ts, sort value, leaf`) in sort order,
/// `limit` of them (`None`: all). With `narrow` (time order only) it selects
/// `pos, org_id, seq` instead, for `stream_blocking` to read the JSON a chunk at a time.
fn list_sql(conn: &Connection, q: &ListQuery, limit: Option<usize>, narrow: bool) -> Result<(String, Sql), StoreError> {
    let sort = q.filter.sort;
    let cursor = q.cursor.as_deref().map(|c| Cursor::decode(c, sort)).transpose()?;
    let mut sql = where_clause(conn, &q.scope, &q.filter, q.now, false)?;
    let (expr, is_int) = sort_expr(sort.field);
    let cmp = if sort.desc { "<" } else { ">" };
    let dir = if sort.desc { "DESC" } else { "ASC" };
    let time_sort = sort.field == SortField::Timestamp;
    let limit = limit.map_or(-1, |l| l as i64);
    let match_expr = sql.match_expr();
    // Time order is storage order: with filters, FTS5 walks the matching rowids newest
    // first and stops after one page; without, the table itself is walked.
    let text = if time_sort {
        let via_fts = match_expr.is_some();
        let col = if via_fts { "f.rowid" } else { "e.pos" };
        if let Some(m) = match_expr {
            let p = sql.param(m);
            sql.clauses.push(format!("events_fts MATCH {p}"));
        }
        sql.bound_pos(col);
        if let Some(c) = &cursor {
            let p = sql.param(c.pos);
            sql.clauses.push(format!("{col} {cmp} {p}"));
        }
        let from = if via_fts { "events_fts f JOIN events e ON e.pos = f.rowid" } else { "events e" };
        let (columns, join) = match narrow {
            true => ("e.pos, e.org_id, e.seq", if sql.needs_leaf { LEAF_JOIN } else { "" }),
            false => ("e.pos, e.ts, NULL, l.leaf", LEAF_JOIN),
        };
        format!("SELECT {columns} FROM {from} {join} WHERE {} ORDER BY {col} {dir} LIMIT {}", sql.where_sql(), limit)
    } else {
        if let Some(m) = match_expr {
            let p = sql.param(m);
            sql.clauses.push(format!("e.pos IN (SELECT rowid FROM events_fts WHERE events_fts MATCH {p})"));
        }
        sql.bound_pos("e.pos");
        if let Some(c) = &cursor {
            let v = match &c.value {
                Value::String(s) if sort.field == SortField::SourceIp => SqlValue::Blob(decode_hex(s)),
                Value::String(s) => SqlValue::Text(s.clone()),
                Value::Number(n) if is_int => SqlValue::Integer(n.as_i64().unwrap_or(0)),
                _ => {
                    return Err(StoreError::Invalid {
                        field: "cursor".into(),
                        message: "does not match the sort".into(),
                    })
                }
            };
            let (pv, pp) = (sql.param(v), sql.param(c.pos));
            sql.clauses.push(format!("({expr}, e.pos) {cmp} ({pv}, {pp})"));
        }
        // Sort the narrow rows first; read the events' JSON for one page only.
        let inner = if sql.needs_leaf { format!("events e {LEAF_JOIN}") } else { "events e".to_string() };
        format!(
            "SELECT e.pos, e.ts, {expr}, l.leaf FROM (SELECT e.pos AS page_pos FROM {inner} WHERE {} \
             ORDER BY {expr} {dir}, e.pos {dir} LIMIT {}) JOIN events e ON e.pos = page_pos {LEAF_JOIN} \
             ORDER BY {expr} {dir}, e.pos {dir}",
            sql.where_sql(),
            limit
        )
    };
    Ok((text, sql))
}

/// Sends every event of `q` in chunks until done or the receiver is gone.
fn stream_blocking(
    conn: &Connection,
    q: ListQuery,
    chunk: usize,
    tx: &tokio::sync::mpsc::Sender<Result<Vec<Vec<u8>>, StoreError>>,
) -> Result<(), StoreError> {
    let time_sort = q.filter.sort.field == SortField::Timestamp;
    let (text, sql) = list_sql(conn, &ListQuery { cursor: None, ..q }, None, time_sort)?;
    let mut stmt = conn.prepare(&text)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(sql.params.iter()))?;
    let send = |out: Vec<Vec<u8>>| tx.blocking_send(Ok(out)).is_ok();
    if !time_sort {
        let mut out = Vec::with_capacity(chunk);
        while let Some(r) = rows.next()? {
            out.push(r.get::<_, Vec<u8>>(3)?);
            if out.len() == chunk && !send(std::mem::replace(&mut out, Vec::with_capacity(chunk))) {
                return Ok(());
            }
        }
        if !out.is_empty() {
            send(out);
        }
        return Ok(());
    }
    let mut keys = Vec::with_capacity(chunk);
    while let Some(r) = rows.next()? {
        keys.push((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?));
        if keys.len() == chunk {
            if !send(fetch_leaves(conn, &keys)?) {
                return Ok(());
            }
            keys.clear();
        }
    }
    if !keys.is_empty() {
        send(fetch_leaves(conn, &keys)?);
    }
    Ok(())
}

/// The stored JSON of `keys` (organization id, seq), in their order. Rows walked in
/// time order mostly have consecutive seqs, so where an organization's seqs in the
/// chunk are dense one range read of `leaves` replaces a lookup per row (a lookup costs
/// about 2 µs at 1M events, the range read a fraction of that).
fn fetch_leaves(conn: &Connection, keys: &[(i64, i64)]) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut out: Vec<Option<Vec<u8>>> = vec![None; keys.len()];
    let mut by_org: HashMap<i64, Vec<usize>> = HashMap::new();
    for (i, (org, _)) in keys.iter().enumerate() {
        by_org.entry(*org).or_default().push(i);
    }
    for (org, idx) in by_org {
        let (lo, hi) = idx.iter().fold((i64::MAX, i64::MIN), |(lo, hi), &i| (lo.min(keys[i].1), hi.max(keys[i].1)));
        let span = (hi - lo + 1) as usize;
        if span <= 2 * idx.len() + 64 {
            let mut slot = vec![usize::MAX; span];
            for &i in &idx {
                slot[(keys[i].1 - lo) as usize] = i;
            }
            let mut stmt =
                conn.prepare_cached("SELECT seq, leaf FROM leaves WHERE org_id = ?1 AND seq BETWEEN ?2 AND ?3")?;
            let mut rows = stmt.query(params![org, lo, hi])?;
            while let Some(r) = rows.next()? {
                let i = slot[(r.get::<_, i64>(0)? - lo) as usize];
                if i != usize::MAX {
                    out[i] = Some(r.get(1)?);
                }
            }
        } else {
            let mut stmt = conn.prepare_cached("SELECT leaf FROM leaves WHERE org_id = ?1 AND seq = ?2")?;
            for &i in &idx {
                out[i] = stmt.query_row(params![org, keys[i].1], |r| r.get(0)).optional()?;
            }
        }
    }
    out.into_iter()
        .zip(keys)
        .map(|(leaf, (org, seq))| {
            leaf.ok_or_else(|| StoreError::Corrupt(format!("entry {seq} of organization {org} has no stored JSON")))
        })
        .collect()
}

fn count_blocking(conn: &Connection, scope: &Scope, f: &Filter, now: Timestamp) -> Result<u64, StoreError> {
    let mut sql = where_clause(conn, scope, f, now, false)?;
    if let Some(m) = sql.match_expr() {
        let p = sql.param(m);
        sql.clauses.push(format!("e.pos IN (SELECT rowid FROM events_fts WHERE events_fts MATCH {p})"));
    }
    sql.bound_pos("e.pos");
    let from = if sql.needs_leaf { format!("events e {LEAF_JOIN}") } else { "events e".to_string() };
    let text = format!("SELECT COUNT(*) FROM {from} WHERE {}", sql.where_sql());
    let n: i64 = conn.prepare_cached(&text)?.query_row(rusqlite::params_from_iter(sql.params.iter()), |r| r.get(0))?;
    Ok(n as u64)
}

fn list_blocking(conn: &Connection, q: ListQuery) -> Result<Page, StoreError> {
    let sort = q.filter.sort;
    let limit = q.limit.clamp(1, 1000);
    let (text, sql) = list_sql(conn, &q, Some(limit + 1), false)?;
    let mut stmt = conn.prepare_cached(&text)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(sql.params.iter()))?;
    let mut events = Vec::with_capacity(limit);
    let mut last = None;
    let mut more = false;
    while let Some(r) = rows.next()? {
        if events.len() == limit {
            more = true;
            break;
        }
        let pos: i64 = r.get(0)?;
        let ts: i64 = r.get(1)?;
        let value = match r.get_ref(2)? {
            rusqlite::types::ValueRef::Integer(i) => Value::from(i),
            rusqlite::types::ValueRef::Text(t) => Value::from(String::from_utf8_lossy(t).into_owned()),
            rusqlite::types::ValueRef::Blob(b) => Value::from(encode_hex(b)),
            _ => Value::Null,
        };
        events.push(r.get::<_, Vec<u8>>(3)?);
        last = Some((value, ts, pos));
    }
    let next_cursor = match (more, last) {
        (true, Some((value, ts, pos))) => Some(Cursor { sort: sort.render(), value, ts, pos }.encode()),
        _ => None,
    };
    Ok(Page { events, next_cursor })
}

fn known_org(conn: &Connection, slug: &str) -> Result<i64, StoreError> {
    conn.prepare_cached("SELECT id FROM orgs WHERE slug = ?1")?
        .query_row([slug], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::UnknownOrg(slug.to_string()))
}

/// Refuses a tree size larger than the organization's log.
fn check_size(conn: &Connection, org: i64, size: u64, field: &str) -> Result<(), StoreError> {
    let have = tree_size(conn, org)?;
    if size > have {
        return Err(StoreError::Invalid { field: field.into(), message: format!("the log has only {have} entries") });
    }
    Ok(())
}

/// The number of leaves in an organization's tree (an index seek, not a count).
fn tree_size(conn: &Connection, org: i64) -> Result<u64, StoreError> {
    let max: Option<i64> = conn
        .prepare_cached("SELECT MAX(idx) FROM tree_nodes WHERE org_id = ?1 AND level = 0")?
        .query_row([org], |r| r.get(0))?;
    Ok(max.map_or(0, |m| m as u64 + 1))
}

/// Subtree hashes of one organization's tree, from `tree_nodes`.
struct Nodes<'a> {
    conn: &'a Connection,
    org: i64,
}

impl merkle::Subtrees for Nodes<'_> {
    type Error = StoreError;
    fn subtree(&mut self, start: u64, size: u64) -> Result<Hash, StoreError> {
        let mut stmt =
            self.conn.prepare_cached("SELECT hash FROM tree_nodes WHERE org_id = ?1 AND level = ?2 AND idx = ?3")?;
        let org = self.org;
        merkle::range_hash(start, size, &mut |level, idx| {
            let h: Vec<u8> = stmt
                .query_row(params![org, level, idx as i64], |r| r.get(0))
                .optional()?
                .ok_or_else(|| StoreError::Corrupt(format!("tree node {level}/{idx} is missing")))?;
            to_hash(&h)
        })
    }
}

fn encode_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn decode_hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()).collect()
}

fn facets_blocking(conn: &Connection, scope: Scope, f: Filter, now: Timestamp) -> Result<Facets, StoreError> {
    let mut sql = where_clause(conn, &scope, &f, now, true)?;
    sql.bound_pos("pos");
    let where_sql = sql.where_sql();
    let group = |select: &str, group: &str, limit: usize| -> Result<Vec<(Value, Option<String>, u64)>, StoreError> {
        let text = format!(
            "SELECT {select}, COUNT(*) AS n FROM events e WHERE {where_sql} GROUP BY {group} ORDER BY n DESC \
             LIMIT {limit}"
        );
        let mut stmt = conn.prepare_cached(&text)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(sql.params.iter()), |r| {
            let v = match r.get_ref(0)? {
                rusqlite::types::ValueRef::Integer(i) => Value::from(i),
                rusqlite::types::ValueRef::Text(t) => Value::from(String::from_utf8_lossy(t).into_owned()),
                _ => Value::Null,
            };
            Ok((v, r.get::<_, Option<String>>(1)?, r.get::<_, i64>(2)? as u64))
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    };
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let categories = group("category, NULL", "category", 200)?
        .into_iter()
        .map(|(v, _, count)| Count { value: text(&v), label: None, count })
        .collect::<Vec<_>>();
    let results = group("result, NULL", "result", 4)?
        .into_iter()
        .map(|(v, _, count)| {
            let o = Outcome::ALL[v.as_i64().unwrap_or(0).clamp(0, 3) as usize];
            Count { value: o.as_str().into(), label: None, count }
        })
        .collect();
    let users = group("actor_email, MAX(actor_name)", "actor_email", 200)?
        .into_iter()
        .filter(|(v, _, _)| v.is_string())
        .map(|(v, label, count)| Count { value: text(&v), label, count })
        .collect();
    let companies = group(
        "(SELECT slug FROM orgs WHERE orgs.id = org_id), (SELECT name FROM orgs WHERE orgs.id = org_id)",
        "org_id",
        1000,
    )?
    .into_iter()
    .map(|(v, label, count)| Count { value: text(&v), label, count })
    .collect();
    let total = categories.iter().map(|c| c.count).sum();
    Ok(Facets { total, categories, results, users, companies })
}

/// A BLOB column borrowed from a row.
fn blob<'r>(row: &'r rusqlite::Row<'_>, i: usize) -> Result<&'r [u8], StoreError> {
    row.get_ref(i)?.as_blob().map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[async_trait]
impl Store for SqliteStore {
    async fn append(&self, batch: AppendBatch) -> Result<Vec<Appended>, StoreError> {
        let (org, events) = crate::prepare_batch(batch, &self.preparing, Prepared::new).await?;
        let batch = PreparedBatch { org, events };
        let (tx, rx) = oneshot::channel();
        {
            let guard = self.writer.lock().map_err(|_| StoreError::Closed)?;
            let sender = guard.as_ref().ok_or(StoreError::Closed)?;
            sender.send((batch, tx)).map_err(|_| StoreError::Closed)?;
        }
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn list(&self, query: ListQuery) -> Result<Page, StoreError> {
        self.read(move |c| list_blocking(c, query)).await
    }

    async fn expired(
        &self,
        org: &str,
        rules: &Retention,
        as_of: Timestamp,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Expired>, StoreError> {
        let (org, rules) = (org.to_string(), rules.clone());
        self.read(move |c| expired_blocking(c, &org, &rules, as_of, after, limit)).await
    }

    async fn archived(&self, org: &str, files: Vec<ArchiveFile>, seqs: Vec<u64>) -> Result<u64, StoreError> {
        let org = org.to_string();
        self.admin(move |c| archived_blocking(c, &org, &files, &seqs)).await
    }

    async fn archives(&self, org: Option<&str>) -> Result<Vec<ArchiveFile>, StoreError> {
        let org = org.map(str::to_string);
        self.read(move |c| archives_blocking(c, org.as_deref())).await
    }

    async fn stream(&self, query: ListQuery, chunk: usize) -> Result<StreamRx, StoreError> {
        // Eight chunks ahead (about 8 MB of events): enough that a consumer building
        // rows on other threads (CSV) does not leave the reading thread waiting.
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        // A long scan through a memory map would pull the whole file into the
        // process's resident set; plain reads through a small cache keep it flat.
        let conn = open_unmapped(&self.path, true, 8)?;
        tokio::task::spawn_blocking(move || {
            if let Err(e) = stream_blocking(&conn, query, chunk.max(1), &tx) {
                let _ = tx.blocking_send(Err(e));
            }
        });
        Ok(rx)
    }

    async fn count(&self, scope: Scope, filter: Filter, now: Timestamp) -> Result<u64, StoreError> {
        // Counts serve exports, which may count a million rows: as for streams, plain
        // reads through a small cache instead of the pooled readers' map, which would
        // leave every page the count touched in the process's resident set.
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = open_unmapped(&path, true, 8)?;
            count_blocking(&conn, &scope, &filter, now)
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    async fn get(&self, scope: Scope, id: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(move |c| {
            let row: Option<(Vec<u8>, String, String)> = c
                .prepare_cached(
                    "SELECT l.leaf, o.slug, e.category FROM events e JOIN orgs o ON o.id = e.org_id \
                     JOIN leaves l ON l.org_id = e.org_id AND l.seq = e.seq WHERE e.id = ?1",
                )?
                .query_row([&id.as_bytes()[..]], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            Ok(row.and_then(|(leaf, org, category)| scope.allows(&org, &category).then_some(leaf)))
        })
        .await
    }

    async fn scan(&self, org: &str, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let org = org.to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT l.seq, l.leaf FROM leaves l WHERE l.org_id = (SELECT id FROM orgs WHERE slug = ?1) \
                 AND l.seq >= ?2 ORDER BY l.seq LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![org, from as i64, limit as i64], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, Vec<u8>>(1)?))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn facets(&self, scope: Scope, filter: Filter, now: Timestamp) -> Result<Facets, StoreError> {
        self.read(move |c| facets_blocking(c, scope, filter, now)).await
    }

    async fn ensure_org(&self, org: Org) -> Result<(), StoreError> {
        self.admin(move |c| {
            c.execute(
                "INSERT INTO orgs (slug, name, created_at) VALUES (?1, ?2, ?3) ON CONFLICT(slug) DO NOTHING",
                params![org.slug, org.name, chrono::Utc::now().timestamp_micros()],
            )?;
            Ok(())
        })
        .await
    }

    async fn orgs(&self) -> Result<Vec<Org>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached("SELECT slug, name FROM orgs ORDER BY slug")?;
            let rows = stmt.query_map([], |r| Ok(Org { slug: r.get(0)?, name: r.get(1)? }))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn create_key(&self, key: NewKey) -> Result<i64, StoreError> {
        self.admin(move |c| accounts::create_key(c, &key)).await
    }

    async fn find_key(&self, hash: [u8; 32]) -> Result<Option<ApiKey>, StoreError> {
        self.read(move |c| accounts::keys(c, "k.hash = ?1", params![&hash[..]]).map(|mut k| k.pop())).await
    }

    async fn list_keys(&self, org: Option<&str>) -> Result<Vec<ApiKey>, StoreError> {
        let org = org.map(str::to_string);
        self.read(move |c| accounts::keys(c, "(?1 IS NULL OR o.slug = ?1)", params![org])).await
    }

    async fn revoke_key(&self, org: Option<&str>, id: i64) -> Result<bool, StoreError> {
        let org = org.map(str::to_string);
        self.admin(move |c| accounts::revoke_key(c, org.as_deref(), id)).await
    }

    async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
        self.admin(move |c| accounts::create_user(c, &user)).await
    }

    async fn user(&self, id: i64) -> Result<Option<User>, StoreError> {
        self.read(move |c| accounts::users(c, "u.id = ?1", params![id]).map(|mut u| u.pop())).await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let email = email.to_string();
        self.read(move |c| accounts::users(c, "u.email = ?1", params![email]).map(|mut u| u.pop())).await
    }

    async fn list_users(&self, org: Option<&str>) -> Result<Vec<User>, StoreError> {
        let org = org.map(str::to_string);
        self.read(move |c| accounts::users(c, "(?1 IS NULL OR o.slug = ?1)", params![org])).await
    }

    async fn update_user(&self, id: i64, change: UserChange) -> Result<Option<User>, StoreError> {
        self.admin(move |c| accounts::update_user(c, id, &change)).await
    }

    async fn create_session(&self, session: Session) -> Result<(), StoreError> {
        self.admin(move |c| accounts::create_session(c, &session)).await
    }

    async fn find_session(&self, hash: [u8; 32], now: i64) -> Result<Option<Session>, StoreError> {
        self.read(move |c| accounts::find_session(c, hash, now)).await
    }

    async fn delete_sessions(&self, hash: [u8; 32], all_of_user: bool) -> Result<(), StoreError> {
        self.admin(move |c| accounts::delete_sessions(c, hash, all_of_user)).await
    }

    async fn login_attempt(&self, keys: Vec<ThrottleKey>, now: i64) -> Result<Option<u64>, StoreError> {
        self.admin(move |c| accounts::login_attempt(c, &keys, now)).await
    }

    async fn login_succeeded(&self, keys: Vec<ThrottleKey>) -> Result<(), StoreError> {
        self.admin(move |c| accounts::login_succeeded(c, &keys)).await
    }

    async fn stored_entries(&self, org: &str, from: u64, to: u64) -> Result<Vec<StoredEntry>, StoreError> {
        // The bytes and the rows are read on two connections at once.
        let (a, b) = (org.to_string(), org.to_string());
        let (leaves, rows) = tokio::try_join!(
            self.read(move |c| audit::leaves_in(c, &a, from, to)),
            self.read(move |c| audit::rows_in(c, &b, from, to))
        )?;
        Ok(audit::merge(leaves, rows))
    }

    async fn tree_nodes(&self, org: &str, level: u32, from: u64, to: u64) -> Result<Vec<(u64, Hash)>, StoreError> {
        let org = org.to_string();
        self.read(move |c| audit::tree_nodes(c, &org, level, from, to)).await
    }

    async fn log_end(&self, org: &str) -> Result<u64, StoreError> {
        let org = org.to_string();
        self.read(move |c| audit::log_end(c, &org)).await
    }

    async fn put_role(&self, role: Role) -> Result<(), StoreError> {
        self.admin(move |c| accounts::put_role(c, &role)).await
    }

    async fn roles(&self, org: &str) -> Result<Vec<Role>, StoreError> {
        let org = org.to_string();
        self.read(move |c| accounts::roles(c, &org)).await
    }

    async fn delete_role(&self, org: &str, name: &str) -> Result<bool, StoreError> {
        let (org, name) = (org.to_string(), name.to_string());
        self.admin(move |c| accounts::delete_role(c, &org, &name)).await
    }

    async fn create_schedule(&self, schedule: Schedule) -> Result<Schedule, StoreError> {
        self.admin(move |c| accounts::create_schedule(c, &schedule)).await
    }

    async fn schedules(&self, org: Option<&str>) -> Result<Vec<Schedule>, StoreError> {
        let org = org.map(str::to_string);
        self.read(move |c| accounts::schedules(c, "(?1 IS NULL OR o.slug = ?1)", params![org])).await
    }

    async fn delete_schedule(&self, org: Option<&str>, id: i64) -> Result<bool, StoreError> {
        let org = org.map(str::to_string);
        self.admin(move |c| {
            let n = c.execute(
                "DELETE FROM schedules WHERE id = ?1 AND (?2 IS NULL OR org_id = (SELECT id FROM orgs WHERE slug = ?2))",
                params![id, org],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn schedule_ran(&self, id: i64, ran_at: i64, next_run: i64) -> Result<(), StoreError> {
        self.admin(move |c| {
            c.execute(
                "UPDATE schedules SET last_run = ?2, next_run = ?3 WHERE id = ?1",
                params![id, ran_at, next_run],
            )?;
            Ok(())
        })
        .await
    }

    async fn checkpoints(&self, org: &str) -> Result<Vec<SignedCheckpoint>, StoreError> {
        let org = org.to_string();
        self.read(move |c| {
            let org_id = known_org(c, &org)?;
            let mut stmt =
                c.prepare_cached("SELECT size, root, note FROM checkpoints WHERE org_id = ?1 ORDER BY size")?;
            let rows = stmt
                .query_map([org_id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, String>(2)?)))?;
            let mut out = Vec::new();
            for row in rows {
                let (size, root, note) = row?;
                out.push(SignedCheckpoint { size: size as u64, root: to_hash(&root)?, note });
            }
            Ok(out)
        })
        .await
    }

    async fn checkpoint(&self, org: &str, size: Option<u64>) -> Result<Option<SignedCheckpoint>, StoreError> {
        let org = org.to_string();
        self.read(move |c| {
            let org_id = known_org(c, &org)?;
            let mut stmt = c.prepare_cached(
                "SELECT size, root, note FROM checkpoints WHERE org_id = ?1 AND (?2 IS NULL OR size = ?2) \
                 ORDER BY size DESC LIMIT 1",
            )?;
            let row = stmt
                .query_row(params![org_id, size.map(|s| s as i64)], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, String>(2)?))
                })
                .optional()?;
            row.map(|(size, root, note)| Ok(SignedCheckpoint { size: size as u64, root: to_hash(&root)?, note }))
                .transpose()
        })
        .await
    }

    async fn inclusion_proof(&self, org: &str, index: u64, size: u64) -> Result<Vec<Hash>, StoreError> {
        let org = org.to_string();
        self.read(move |c| {
            let org_id = known_org(c, &org)?;
            check_size(c, org_id, size, "size")?;
            if index >= size {
                return Err(StoreError::Invalid {
                    field: "index".into(),
                    message: format!("must be below size {size}"),
                });
            }
            merkle::inclusion_proof(&mut Nodes { conn: c, org: org_id }, index, size)
        })
        .await
    }

    async fn consistency_proof(&self, org: &str, from: u64, to: u64) -> Result<Vec<Hash>, StoreError> {
        let org = org.to_string();
        self.read(move |c| {
            let org_id = known_org(c, &org)?;
            check_size(c, org_id, to, "to")?;
            if from > to {
                return Err(StoreError::Invalid {
                    field: "from".into(),
                    message: format!("must not exceed to ({to})"),
                });
            }
            merkle::consistency_proof(&mut Nodes { conn: c, org: org_id }, from, to)
        })
        .await
    }

    fn close(&self) {
        SqliteStore::close(self);
    }

    async fn is_empty(&self) -> Result<bool, StoreError> {
        self.read(|c| Ok(c.query_row("SELECT NOT EXISTS (SELECT 1 FROM events)", [], |r| r.get(0))?)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn fresh() -> (Arc<dyn Store>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("trail.db"), SqliteConfig::default()).unwrap();
        (Arc::new(store), dir)
    }

    crate::conformance_tests!(fresh);

    /// Retention removes archived events from the contentless FTS5 index itself (the
    /// 'delete' command needs the exact indexed document), not only their rows: a stale
    /// entry would match a later event that takes the same position.
    #[tokio::test]
    async fn retention_removes_search_index_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trail.db");
        let store = SqliteStore::open(&path, SqliteConfig::default()).unwrap();
        crate::conformance::seed_org(&store, "acme").await;
        let now = crate::conformance::NOW;
        let evs = (0..20)
            .map(|i| {
                let age = if i % 2 == 0 { 10 } else { 0 };
                let v = serde_json::json!({
                    "action": "service:deploy", "timestamp": Timestamp(now.0 - age * 86_400_000_000 - i).to_rfc3339_micros(),
                    "actor": {"name": "Ann Lee", "email": "ann@acme.com"}, "source_ip": "10.1.2.3",
                    "resource": {"type": "service", "name": format!("svc{i}q")}, "details": {"word": format!("qqq{i}x")},
                });
                (Uuid::now_v7(), trail_core::event::parse_event(v).unwrap())
            })
            .collect();
        store.append(AppendBatch { org: "acme".into(), received_at: now, events: evs }).await.unwrap();
        let arch = crate::archive::Archive::new(dir.path().join("archive"));
        let rules = crate::archive::Retention { default_days: 5, categories: Default::default() };
        let r = crate::archive::run(&store, &arch, &rules, now).await.unwrap();
        assert_eq!(r[0].archived, 10);
        store.close();
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, events_fts, row);").unwrap();
        let docs = |term: &str| -> i64 {
            conn.query_row("SELECT IFNULL(SUM(doc), 0) FROM vocab WHERE term = ?1", [term], |r| r.get(0)).unwrap()
        };
        for i in 0..20 {
            let want = if i % 2 == 0 { 0 } else { 1 };
            assert_eq!(docs(&format!("qqq{i}x")), want, "event {i}");
            assert_eq!(docs(&format!("svc{i}q")), want, "event {i}");
        }
        // No term is indexed for more documents than remain.
        let most: i64 = conn.query_row("SELECT MAX(doc) FROM vocab", [], |r| r.get(0)).unwrap();
        assert_eq!(most, 10);
    }

    /// Commits reach the database file itself soon after, through the checkpointer, long
    /// before the writer's own backstop (32 MiB of WAL) would copy them.
    #[tokio::test]
    async fn the_checkpointer_copies_commits_into_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trail.db");
        let store = SqliteStore::open(&path, SqliteConfig::default()).unwrap();
        crate::conformance::seed_org(&store, "acme").await;
        crate::conformance::append_n(&store, "acme", 20).await;
        // The database file alone, without its WAL, as a copy.
        let in_file = || {
            let copy = dir.path().join("copy.db");
            std::fs::copy(&path, &copy).ok()?;
            let n = Connection::open(&copy).ok()?.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0)).ok();
            let _ = std::fs::remove_file(&copy);
            n
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while in_file() != Some(20i64) {
            assert!(Instant::now() < deadline, "the database file holds {:?} of 20 events", in_file());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        store.close();
    }

    /// A stream names an event whose stored JSON is missing instead of skipping it,
    /// whether the entry is inside a range read or a chunk of its own.
    #[tokio::test]
    async fn streams_report_a_missing_leaf() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trail.db");
        let store = SqliteStore::open(&path, SqliteConfig::default()).unwrap();
        crate::conformance::seed_org(&store, "acme").await;
        crate::conformance::append_n(&store, "acme", 300).await;
        Connection::open(&path).unwrap().execute("DELETE FROM leaves WHERE seq = 150", []).unwrap();
        for chunk in [1000, 1] {
            let q = ListQuery {
                scope: Scope::all(),
                filter: Filter::default(),
                now: crate::conformance::NOW,
                cursor: None,
                limit: 1,
            };
            let mut rx = store.stream(q, chunk).await.unwrap();
            let mut failed = None;
            while let Some(c) = rx.recv().await {
                if let Err(e) = c {
                    failed = Some(e);
                }
            }
            let e = failed.expect("the stream must fail");
            assert!(matches!(&e, StoreError::Corrupt(m) if m.contains("entry 150")), "{e:?}");
        }
    }

    #[tokio::test]
    async fn reopening_keeps_events_and_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trail.db");
        let store = SqliteStore::open(&path, SqliteConfig::default()).unwrap();
        crate::conformance::seed_org(&store, "acme").await;
        let acks = crate::conformance::append_n(&store, "acme", 10).await;
        store.close();
        drop(store);
        let store = SqliteStore::open(&path, SqliteConfig::default()).unwrap();
        assert_eq!(store.scan("acme", 0, 100).await.unwrap().len(), 10);
        let more = crate::conformance::append_n(&store, "acme", 1).await;
        assert_eq!(more[0].seq, acks.len() as u64);
        let c = Connection::open(&path).unwrap();
        let v: u32 = c.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(v, SCHEMA_VERSION);
    }

    fn signer() -> Arc<LogSigner> {
        Arc::new(LogSigner { name: "trail.test".into(), key: SigningKey::from_bytes(&[3; 32]) })
    }

    /// Polls until the organization's newest checkpoint covers `size` entries.
    async fn checkpoint_of(store: &SqliteStore, org: &str, size: u64) -> SignedCheckpoint {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(cp) = store.checkpoint(org, None).await.unwrap() {
                if cp.size == size {
                    return cp;
                }
            }
            assert!(Instant::now() < deadline, "no checkpoint of size {size}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn trees_checkpoints_and_proofs_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trail.db");
        let config = SqliteConfig { signer: Some(signer()), ..SqliteConfig::default() };
        let store = SqliteStore::open(&path, config.clone()).unwrap();
        crate::conformance::seed_org(&store, "acme").await;
        crate::conformance::seed_org(&store, "globex").await;
        crate::conformance::append_n(&store, "acme", 5).await;
        crate::conformance::append_n(&store, "globex", 2).await;
        let first = checkpoint_of(&store, "acme", 5).await;
        crate::conformance::append_n(&store, "acme", 12).await;
        let second = checkpoint_of(&store, "acme", 17).await;
        let vkey = checkpoint::verifier_key("trail.test/acme", &signer().key.verifying_key());
        let cp = checkpoint::verify(&second.note, &vkey).unwrap();
        assert_eq!((cp.size, cp.root), (17, second.root));
        let leaves = store.scan("acme", 0, 100).await.unwrap();
        for (seq, leaf) in &leaves {
            let proof = store.inclusion_proof("acme", *seq, 17).await.unwrap();
            assert!(merkle::verify_inclusion(*seq, 17, &leaf_hash(leaf), &proof, &second.root), "{seq}");
        }
        let c = store.consistency_proof("acme", first.size, second.size).await.unwrap();
        assert!(merkle::verify_consistency(5, 17, &first.root, &second.root, &c));
        let all: Vec<Hash> = leaves.iter().map(|(_, l)| leaf_hash(l)).collect();
        assert_eq!(merkle::root(&all), second.root);
        assert!(matches!(store.inclusion_proof("acme", 17, 17).await, Err(StoreError::Invalid { .. })));
        assert!(matches!(store.inclusion_proof("acme", 0, 18).await, Err(StoreError::Invalid { .. })));
        assert!(matches!(store.consistency_proof("acme", 9, 5).await, Err(StoreError::Invalid { .. })));
        let opts = crate::verify::VerifyOptions { vkey: &vkey, ..Default::default() };
        let report = crate::verify::verify(&store, "acme", opts).await.unwrap();
        assert!(report.ok() && report.entries == 17 && report.checkpoints >= 2, "{report:?}");
        let other = checkpoint::verifier_key("trail.test/acme", &SigningKey::from_bytes(&[4; 32]).verifying_key());
        let opts = crate::verify::VerifyOptions { vkey: &other, ..Default::default() };
        assert!(!crate::verify::verify(&store, "acme", opts).await.unwrap().ok());
        store.close();
        // Reopening continues the same tree.
        let store = SqliteStore::open(&path, config).unwrap();
        crate::conformance::append_n(&store, "acme", 1).await;
        let third = checkpoint_of(&store, "acme", 18).await;
        let c = store.consistency_proof("acme", 17, 18).await.unwrap();
        assert!(merkle::verify_consistency(17, 18, &second.root, &third.root, &c));
    }

    #[tokio::test]
    async fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trail.db");
        Connection::open(&path).unwrap().pragma_update(None, "user_version", 99).unwrap();
        assert!(matches!(
            SqliteStore::open(&path, SqliteConfig::default()),
            Err(StoreError::SchemaTooNew { found: 99, .. })
        ));
    }
}
