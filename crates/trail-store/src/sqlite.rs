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
    collections::HashMap,
    net::IpAddr,
    path::{Path, PathBuf},
    sync::{mpsc, Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use rusqlite::{params, types::Value as SqlValue, Connection, OpenFlags, OptionalExtension};
use serde_json::Value;
use tokio::sync::oneshot;
use trail_core::{Cursor, Event, Filter, Outcome, SortField, StatusClass, Timestamp};
use uuid::Uuid;

use crate::{
    ApiKey, AppendBatch, Appended, Count, Facets, KeyScope, ListQuery, Org, Page, Scope, Store, StoreError,
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
}

impl Default for SqliteConfig {
    fn default() -> Self {
        SqliteConfig { max_commit_events: 20_000, writer_cache_mib: 64, reader_cache_mib: 16 }
    }
}

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[r#"
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
-- One row per event. `leaf` holds the exact stored JSON (the Merkle leaf); the other
-- columns are copies of its fields that the filters and sorts need. Text columns
-- compare case-insensitively (ASCII) so filters are forgiving.
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
    idem TEXT,
    leaf BLOB NOT NULL
);
CREATE UNIQUE INDEX events_seq ON events(org_id, seq);
CREATE UNIQUE INDEX events_id ON events(id);
CREATE UNIQUE INDEX events_idem ON events(org_id, idem) WHERE idem IS NOT NULL;
CREATE INDEX events_ts ON events(org_id, ts);
CREATE INDEX events_ts_all ON events(ts);
CREATE INDEX events_category ON events(org_id, category, ts);
CREATE INDEX events_operation ON events(org_id, operation, ts);
CREATE INDEX events_result ON events(org_id, result, ts);
CREATE INDEX events_status ON events(org_id, status_code, ts) WHERE status_code IS NOT NULL;
CREATE INDEX events_actor_id ON events(org_id, actor_id, ts) WHERE actor_id IS NOT NULL;
CREATE INDEX events_actor_name ON events(org_id, actor_name, ts) WHERE actor_name IS NOT NULL;
CREATE INDEX events_actor_email ON events(org_id, actor_email, ts) WHERE actor_email IS NOT NULL;
CREATE INDEX events_request ON events(org_id, request_id) WHERE request_id IS NOT NULL;
CREATE INDEX events_resource_id ON events(org_id, resource_id, ts) WHERE resource_id IS NOT NULL;
CREATE INDEX events_resource_name ON events(org_id, resource_name, ts) WHERE resource_name IS NOT NULL;
CREATE INDEX events_resource_type ON events(org_id, resource_type, ts) WHERE resource_type IS NOT NULL;
CREATE INDEX events_workspace_id ON events(org_id, workspace_id, ts) WHERE workspace_id IS NOT NULL;
CREATE INDEX events_workspace_name ON events(org_id, workspace_name, ts) WHERE workspace_name IS NOT NULL;
CREATE INDEX events_project ON events(org_id, project, ts) WHERE project IS NOT NULL;
CREATE INDEX events_cluster ON events(org_id, cluster, ts) WHERE cluster IS NOT NULL;
CREATE INDEX events_namespace ON events(org_id, namespace, ts) WHERE namespace IS NOT NULL;
CREATE INDEX events_ip ON events(org_id, ip, ts) WHERE ip IS NOT NULL;
-- Full-text index for `q`; contentless (the text lives in `leaf`), rowid = events.pos.
CREATE VIRTUAL TABLE events_fts USING fts5(
    body, content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 2'
);
"#];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Columns inserted per event, in order (everything but `pos`).
pub const INSERT_SQL: &str = "INSERT INTO events (org_id, seq, id, ts, received, category, operation, result, \
    status_code, actor_id, actor_name, actor_email, company, request_id, resource_type, resource_id, \
    resource_name, workspace_id, workspace_name, project, cluster, namespace, ip, idem, leaf) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, \
    ?22, ?23, ?24, ?25)";

type Reply = oneshot::Sender<Result<Vec<Appended>, StoreError>>;

/// The SQLite store. Cheap to share: hold it in an `Arc`.
pub struct SqliteStore {
    path: PathBuf,
    config: SqliteConfig,
    /// Queue to the writer thread; `None` once closed.
    writer: Mutex<Option<mpsc::Sender<(AppendBatch, Reply)>>>,
    /// The writer thread, joined on close so the last commit finishes.
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Idle read-only connections.
    readers: Arc<Mutex<Vec<Connection>>>,
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the store at `path` and starts its
    /// writer thread.
    pub fn open(path: &Path, config: SqliteConfig) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut conn = open_conn(path, false, config.writer_cache_mib)?;
        migrate(&mut conn)?;
        let (tx, rx) = mpsc::channel();
        let max = config.max_commit_events;
        let thread = std::thread::Builder::new()
            .name("trail-sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx, max))?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            config,
            writer: Mutex::new(Some(tx)),
            writer_thread: Mutex::new(Some(thread)),
            readers: Arc::new(Mutex::new(Vec::new())),
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

pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew { found: version, supported: SCHEMA_VERSION });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as u32 + 1)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "applied sqlite migration");
    }
    Ok(())
}

fn writer_loop(mut conn: Connection, rx: mpsc::Receiver<(AppendBatch, Reply)>, max_events: usize) {
    let mut orgs: HashMap<String, i64> = HashMap::new();
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        let mut n = group[0].0.events.len();
        while n < max_events {
            match rx.try_recv() {
                Ok(item) => {
                    n += item.0.events.len();
                    group.push(item);
                }
                Err(_) => break,
            }
        }
        let (batches, replies): (Vec<_>, Vec<_>) = group.into_iter().unzip();
        match commit_group(&mut conn, &mut orgs, batches) {
            Ok(results) => {
                for (reply, r) in replies.into_iter().zip(results) {
                    let _ = reply.send(r);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "group commit failed");
                let msg = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Unavailable(msg.clone())));
                }
            }
        }
    }
}

/// Writes every batch in one transaction; returns each batch's own outcome. The outer
/// error means the transaction as a whole failed and nothing was stored.
fn commit_group(
    conn: &mut Connection,
    orgs: &mut HashMap<String, i64>,
    batches: Vec<AppendBatch>,
) -> Result<Vec<Result<Vec<Appended>, StoreError>>, StoreError> {
    let mut tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut next_seq: HashMap<i64, u64> = HashMap::new();
    let mut out = Vec::with_capacity(batches.len());
    for batch in batches {
        let sp = tx.savepoint()?;
        let saved = next_seq.clone();
        match append_batch(&sp, orgs, &mut next_seq, batch) {
            Ok(acks) => {
                sp.commit()?;
                out.push(Ok(acks));
            }
            Err(e) => {
                drop(sp); // rolls back to the savepoint
                next_seq = saved;
                out.push(Err(e));
            }
        }
    }
    tx.set_drop_behavior(rusqlite::DropBehavior::Rollback);
    tx.commit()?;
    Ok(out)
}

fn org_id(conn: &Connection, cache: &mut HashMap<String, i64>, slug: &str) -> Result<i64, StoreError> {
    if let Some(id) = cache.get(slug) {
        return Ok(*id);
    }
    let id: Option<i64> =
        conn.query_row("SELECT id FROM orgs WHERE slug = ?1", [slug], |r| r.get(0)).optional()?;
    let id = id.ok_or_else(|| StoreError::UnknownOrg(slug.to_string()))?;
    cache.insert(slug.to_string(), id);
    Ok(id)
}

fn append_batch(
    conn: &Connection,
    orgs: &mut HashMap<String, i64>,
    next_seq: &mut HashMap<i64, u64>,
    batch: AppendBatch,
) -> Result<Vec<Appended>, StoreError> {
    let org = org_id(conn, orgs, &batch.org)?;
    let mut seq = match next_seq.get(&org) {
        Some(s) => *s,
        None => conn.query_row("SELECT IFNULL(MAX(seq) + 1, 0) FROM events WHERE org_id = ?1", [org], |r| {
            r.get::<_, i64>(0).map(|v| v as u64)
        })?,
    };
    let mut insert = conn.prepare_cached(INSERT_SQL)?;
    let mut fts = conn.prepare_cached("INSERT INTO events_fts (rowid, body) VALUES (?1, ?2)")?;
    let mut find_idem = conn.prepare_cached("SELECT id, seq FROM events WHERE org_id = ?1 AND idem = ?2")?;
    let mut seen: HashMap<String, Appended> = HashMap::new();
    let mut acks = Vec::with_capacity(batch.events.len());
    let mut body = String::new();
    for (id, new) in batch.events {
        if let Some(key) = &new.idempotency_key {
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
        let ev = Event::from_new(new, id, &batch.org, seq, batch.received_at);
        let leaf = ev.to_leaf();
        insert.execute(rusqlite::params_from_iter(row_values(org, &ev, leaf)))?;
        let pos = conn.last_insert_rowid();
        body.clear();
        search_text(&ev, &mut body);
        fts.execute(params![pos, &body])?;
        let ack = Appended { id: ev.id, seq, duplicate: false };
        if let Some(key) = ev.idempotency_key {
            seen.insert(key, ack);
        }
        acks.push(ack);
        seq += 1;
    }
    next_seq.insert(org, seq);
    Ok(acks)
}

/// The values of one `events` row (in `INSERT_SQL` order) for an event and its leaf.
/// Public so that the benchmark's bare-SQLite reference inserts exactly the same rows.
pub fn row_values(org_id: i64, ev: &Event, leaf: Vec<u8>) -> [SqlValue; 25] {
    let text = |s: Option<&String>| s.map_or(SqlValue::Null, |s| SqlValue::Text(s.clone()));
    let actor = ev.actor.as_ref();
    let res = ev.resource.as_ref();
    let ctx = ev.context.as_ref();
    let ws = ctx.and_then(|c| c.workspace.as_ref());
    let ip = ev.source_ip.as_deref().and_then(|s| s.parse::<IpAddr>().ok()).map(ip_key);
    [
        SqlValue::Integer(org_id),
        SqlValue::Integer(ev.seq as i64),
        SqlValue::Blob(ev.id.as_bytes().to_vec()),
        SqlValue::Integer(ev.timestamp.0),
        SqlValue::Integer(ev.received_at.0),
        SqlValue::Text(ev.category().to_string()),
        SqlValue::Text(ev.operation().to_string()),
        SqlValue::Integer(outcome_code(ev.result)),
        ev.status_code.map_or(SqlValue::Null, |c| SqlValue::Integer(c.into())),
        text(actor.and_then(|a| a.id.as_ref())),
        text(actor.and_then(|a| a.name.as_ref())),
        text(actor.and_then(|a| a.email.as_ref())),
        SqlValue::Text(ev.company().to_string()),
        text(ev.request_id.as_ref()),
        text(res.and_then(|r| r.kind.as_ref())),
        text(res.and_then(|r| r.id.as_ref())),
        text(res.and_then(|r| r.name.as_ref())),
        text(ws.and_then(|w| w.id.as_ref())),
        text(ws.and_then(|w| w.name.as_ref())),
        text(ctx.and_then(|c| c.project.as_ref())),
        text(ctx.and_then(|c| c.cluster.as_ref())),
        text(ctx.and_then(|c| c.namespace.as_ref())),
        ip.map_or(SqlValue::Null, |k| SqlValue::Blob(k.to_vec())),
        text(ev.idempotency_key.as_ref()),
        SqlValue::Blob(leaf),
    ]
}

/// Longest piece of `details`/`response` text indexed for search per event.
const MAX_SEARCH_JSON: usize = 4096;

/// The text `q` searches: action, result, actor, resource (and parent), context,
/// request id, error and the string values of details and response.
pub fn search_text(ev: &Event, out: &mut String) {
    let mut push = |s: Option<&str>| {
        if let Some(s) = s {
            out.push_str(s);
            out.push(' ');
        }
    };
    push(Some(&ev.action));
    push(Some(ev.result.as_str()));
    if let Some(a) = &ev.actor {
        push(a.id.as_deref());
        push(a.name.as_deref());
        push(a.email.as_deref());
        push(a.company.as_deref());
    }
    if let Some(r) = &ev.resource {
        push(r.kind.as_deref());
        push(r.id.as_deref());
        push(r.name.as_deref());
        if let Some(p) = &r.parent {
            push(p.kind.as_deref());
            push(p.id.as_deref());
            push(p.name.as_deref());
        }
    }
    if let Some(c) = &ev.context {
        if let Some(w) = &c.workspace {
            push(w.id.as_deref());
            push(w.name.as_deref());
        }
        push(c.project.as_deref());
        push(c.cluster.as_deref());
        push(c.namespace.as_deref());
    }
    push(ev.request_id.as_deref());
    push(ev.source_ip.as_deref());
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

fn outcome_code(o: Outcome) -> i64 {
    match o {
        Outcome::Done => 0,
        Outcome::Failed => 1,
        Outcome::Processing => 2,
        Outcome::Pending => 3,
    }
}

/// 16-byte sortable form of an address (IPv4 mapped into IPv6), so CIDR blocks become
/// byte ranges.
fn ip_key(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// A WHERE clause under construction with its parameters.
#[derive(Default)]
struct Sql {
    clauses: Vec<String>,
    params: Vec<SqlValue>,
}

impl Sql {
    fn param(&mut self, v: impl Into<SqlValue>) -> String {
        self.params.push(v.into());
        format!("?{}", self.params.len())
    }

    /// `(col1 = ? OR col2 = ? ...)` for every value and column.
    fn any_eq(&mut self, cols: &[&str], values: &[String]) {
        if values.is_empty() {
            return;
        }
        let mut ors = Vec::new();
        for v in values {
            for c in cols {
                let p = self.param(v.clone());
                ors.push(format!("{c} = {p}"));
            }
        }
        self.clauses.push(format!("({})", ors.join(" OR ")));
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
    let scoped = match scope {
        Scope::All => None,
        Scope::Org(slug) => Some(lookup(slug)?.into_iter().collect::<Vec<_>>()),
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

fn where_clause(conn: &Connection, scope: &Scope, f: &Filter, now: Timestamp, with_time_only: bool) -> Result<Sql, StoreError> {
    let mut sql = Sql::default();
    if let Some(ids) = org_ids(conn, scope, &f.company)? {
        if ids.is_empty() {
            sql.clauses.push("0".into());
        } else if ids.len() == 1 {
            let p = sql.param(ids[0]);
            sql.clauses.push(format!("org_id = {p}"));
        } else {
            let ps: Vec<String> = ids.iter().map(|i| sql.param(*i)).collect();
            sql.clauses.push(format!("org_id IN ({})", ps.join(",")));
        }
    }
    let (from, to) = f.time_range(now);
    if let Some(t) = from {
        let p = sql.param(t.0);
        sql.clauses.push(format!("ts >= {p}"));
    }
    if let Some(t) = to {
        let p = sql.param(t.0);
        sql.clauses.push(format!("ts <= {p}"));
    }
    if with_time_only {
        return Ok(sql);
    }
    sql.any_eq(&["category"], &f.category);
    sql.any_eq(&["operation"], &f.operation);
    if !f.action.is_empty() {
        let mut ors = Vec::new();
        for a in &f.action {
            let (c, o) = a.split_once(':').unwrap_or((a, ""));
            let (pc, po) = (sql.param(c.to_string()), sql.param(o.to_string()));
            ors.push(format!("(category = {pc} AND operation = {po})"));
        }
        sql.clauses.push(format!("({})", ors.join(" OR ")));
    }
    if !f.result.is_empty() {
        let ps: Vec<String> = f.result.iter().map(|r| sql.param(outcome_code(*r))).collect();
        sql.clauses.push(format!("result IN ({})", ps.join(",")));
    }
    match f.status {
        Some(StatusClass::Success) => sql.clauses.push(
            "((status_code BETWEEN 200 AND 299) OR (status_code IS NULL AND result = 0))".into(),
        ),
        Some(StatusClass::Failure) => {
            sql.clauses.push("((status_code >= 400) OR (status_code IS NULL AND result = 1))".into())
        }
        None => {}
    }
    if !f.actor.is_empty() {
        let mut ors = Vec::new();
        for v in &f.actor {
            if v.ends_with('@') {
                let lo = sql.param(v.clone());
                let hi = sql.param(format!("{v}\u{10FFFF}"));
                ors.push(format!("(actor_email >= {lo} AND actor_email < {hi})"));
            } else {
                for c in ["actor_id", "actor_name", "actor_email"] {
                    let p = sql.param(v.clone());
                    ors.push(format!("{c} = {p}"));
                }
            }
        }
        sql.clauses.push(format!("({})", ors.join(" OR ")));
    }
    sql.any_eq(&["request_id"], &f.request_id);
    sql.any_eq(&["resource_name", "resource_id"], &f.resource);
    sql.any_eq(&["resource_type"], &f.resource_type);
    sql.any_eq(&["workspace_id", "workspace_name"], &f.workspace);
    sql.any_eq(&["project"], &f.project);
    sql.any_eq(&["cluster"], &f.cluster);
    sql.any_eq(&["namespace"], &f.namespace);
    if !f.ip.is_empty() {
        let mut ors = Vec::new();
        for net in &f.ip {
            let (lo, hi) = match net {
                ipnet::IpNet::V4(n) => (ip_key(n.network().into()), ip_key(n.broadcast().into())),
                ipnet::IpNet::V6(n) => (ip_key(n.network().into()), ip_key(n.broadcast().into())),
            };
            let (plo, phi) = (sql.param(lo.to_vec()), sql.param(hi.to_vec()));
            ors.push(format!("(ip BETWEEN {plo} AND {phi})"));
        }
        sql.clauses.push(format!("({})", ors.join(" OR ")));
    }
    if let Some(m) = fts_query(&f.q) {
        let p = sql.param(m);
        sql.clauses.push(format!("pos IN (SELECT rowid FROM events_fts WHERE events_fts MATCH {p})"));
    }
    Ok(sql)
}

/// Turns search terms into an FTS5 expression: every term must match, as a phrase, with
/// its last word as a prefix. Terms without any letter or digit are ignored.
fn fts_query(terms: &[String]) -> Option<String> {
    let parts: Vec<String> = terms
        .iter()
        .filter(|t| t.chars().any(char::is_alphanumeric))
        .map(|t| format!("\"{}\"*", t.replace('"', "\"\"")))
        .collect();
    (!parts.is_empty()).then(|| parts.join(" AND "))
}

/// The SQL expression a sort orders by (NULLs folded to a value so keyset comparisons
/// work), and whether it is an integer.
fn sort_expr(field: SortField) -> (&'static str, bool) {
    match field {
        SortField::Timestamp => ("ts", true),
        SortField::ReceivedAt => ("received", true),
        SortField::Seq => ("seq", true),
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

fn list_blocking(conn: &Connection, q: ListQuery) -> Result<Page, StoreError> {
    let sort = q.filter.sort;
    let cursor = q.cursor.as_deref().map(|c| Cursor::decode(c, sort)).transpose()?;
    let mut sql = where_clause(conn, &q.scope, &q.filter, q.now, false)?;
    let (expr, is_int) = sort_expr(sort.field);
    let cmp = if sort.desc { "<" } else { ">" };
    let dir = if sort.desc { "DESC" } else { "ASC" };
    let time_sort = sort.field == SortField::Timestamp;
    if let Some(c) = &cursor {
        if time_sort {
            let (a, b) = (sql.param(c.ts), sql.param(c.pos));
            sql.clauses.push(format!("(ts, pos) {cmp} ({a}, {b})"));
        } else {
            let v = match &c.value {
                Value::String(s) if sort.field == SortField::SourceIp => SqlValue::Blob(decode_hex(s)),
                Value::String(s) => SqlValue::Text(s.clone()),
                Value::Number(n) if is_int => SqlValue::Integer(n.as_i64().unwrap_or(0)),
                _ => return Err(StoreError::Invalid { field: "cursor".into(), message: "does not match the sort".into() }),
            };
            let (pv, a, b) = (sql.param(v), sql.param(c.ts), sql.param(c.pos));
            sql.clauses.push(format!("({expr}, ts, pos) {cmp} ({pv}, {a}, {b})"));
        }
    }
    let limit = q.limit.clamp(1, 1000);
    let where_sql = if sql.clauses.is_empty() { "1".to_string() } else { sql.clauses.join(" AND ") };
    let order = if time_sort {
        format!("ts {dir}, pos {dir}")
    } else {
        format!("{expr} {dir}, ts {dir}, pos {dir}")
    };
    let text = format!(
        "SELECT pos, ts, {expr}, leaf FROM events WHERE {where_sql} ORDER BY {order} LIMIT {}",
        limit + 1
    );
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
        (true, Some((value, ts, pos))) => {
            let value = if time_sort { Value::Null } else { value };
            Some(Cursor { sort: sort.render(), value, ts, pos }.encode())
        }
        _ => None,
    };
    Ok(Page { events, next_cursor })
}

fn encode_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn decode_hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()).collect()
}

fn facets_blocking(conn: &Connection, scope: Scope, f: Filter, now: Timestamp) -> Result<Facets, StoreError> {
    let sql = where_clause(conn, &scope, &f, now, true)?;
    let where_sql = if sql.clauses.is_empty() { "1".to_string() } else { sql.clauses.join(" AND ") };
    let group = |select: &str, group: &str, limit: usize| -> Result<Vec<(Value, Option<String>, u64)>, StoreError> {
        let text = format!(
            "SELECT {select}, COUNT(*) AS n FROM events WHERE {where_sql} GROUP BY {group} ORDER BY n DESC LIMIT {limit}"
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
    let companies = group("(SELECT slug FROM orgs WHERE orgs.id = org_id), (SELECT name FROM orgs WHERE orgs.id = org_id)", "org_id", 1000)?
        .into_iter()
        .map(|(v, label, count)| Count { value: text(&v), label, count })
        .collect();
    let total = categories.iter().map(|c| c.count).sum();
    Ok(Facets { total, categories, results, users, companies })
}

#[async_trait]
impl Store for SqliteStore {
    async fn append(&self, batch: AppendBatch) -> Result<Vec<Appended>, StoreError> {
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

    async fn get(&self, scope: Scope, id: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(move |c| {
            let row: Option<(Vec<u8>, String)> = c
                .prepare_cached(
                    "SELECT e.leaf, o.slug FROM events e JOIN orgs o ON o.id = e.org_id WHERE e.id = ?1",
                )?
                .query_row([&id.as_bytes()[..]], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            Ok(row.and_then(|(leaf, org)| match &scope {
                Scope::All => Some(leaf),
                Scope::Org(s) if *s == org => Some(leaf),
                Scope::Org(_) => None,
            }))
        })
        .await
    }

    async fn scan(&self, org: &str, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let org = org.to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT e.seq, e.leaf FROM events e WHERE e.org_id = (SELECT id FROM orgs WHERE slug = ?1) \
                 AND e.seq >= ?2 ORDER BY e.seq LIMIT ?3",
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

    async fn create_key(&self, org: &str, scope: KeyScope, hash: [u8; 32], prefix: &str) -> Result<i64, StoreError> {
        let (org, prefix) = (org.to_string(), prefix.to_string());
        self.admin(move |c| {
            let org_id: i64 = c
                .query_row("SELECT id FROM orgs WHERE slug = ?1", [&org], |r| r.get(0))
                .optional()?
                .ok_or_else(|| StoreError::UnknownOrg(org.clone()))?;
            c.execute(
                "INSERT INTO api_keys (org_id, scope, hash, prefix, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![org_id, scope.as_str(), &hash[..], prefix, chrono::Utc::now().timestamp_micros()],
            )?;
            Ok(c.last_insert_rowid())
        })
        .await
    }

    async fn find_key(&self, hash: [u8; 32]) -> Result<Option<ApiKey>, StoreError> {
        self.read(move |c| {
            let row = c
                .prepare_cached(
                    "SELECT k.id, o.slug, k.scope, k.prefix, k.revoked_at IS NOT NULL FROM api_keys k \
                     JOIN orgs o ON o.id = k.org_id WHERE k.hash = ?1",
                )?
                .query_row([&hash[..]], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get(3)?, r.get(4)?))
                })
                .optional()?;
            Ok(row.and_then(|(id, org, scope, prefix, revoked)| {
                Some(ApiKey { id, org, scope: KeyScope::parse(&scope)?, prefix, revoked })
            }))
        })
        .await
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
