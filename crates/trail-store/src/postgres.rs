//! The PostgreSQL backend: several Trail processes on one database.
//!
//! Useful for: more than one `trail serve` behind a load balancer, a database that is
//! already backed up and replicated. Events are range-partitioned by month (partitions
//! are created as events arrive), with B-tree indexes for the filters and a `tsvector`
//! GIN index for `q`.
//!
//! Appends: each batch is one transaction that locks its organization's log head
//! (`SELECT … FOR UPDATE` on `logs`), so that seqs and the Merkle tree stay exact when
//! several processes append to one organization; it inserts the rows, the tree nodes
//! and a signed checkpoint, and commits (acknowledged = committed, `synchronous_commit`
//! on). The batches waiting in one process are written together in one such
//! transaction (group commit); their rows, leaves and search documents are made before
//! the lock is taken.

use std::{net::IpAddr, sync::Arc};

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::{types::ToSql, NoTls, Row};
use trail_core::{
    checkpoint::{self, Checkpoint},
    merkle::{self, leaf_hash, Frontier, Hash},
    Cursor, Event, Filter, NewEvent, SortField, StatusClass, Timestamp,
};
use uuid::Uuid;

use crate::{
    archive::{ArchiveFile, Expired, Retention},
    sqlite::{search_text, LogSigner},
    throttle::{self, ThrottleKey},
    verify::{outcome_code, IndexedCopy, StoredEntry},
    ApiKey, AppendBatch, Appended, Categories, Count, Exclusive, Facets, KeyScope, LeafTemplate, ListQuery, NewKey,
    NewUser, Org, Page, Role, Schedule, Scope, Session, SignedCheckpoint, Store, StoreError, StreamRx, User,
    UserChange,
};
use sha2::Digest;

type Reply = tokio::sync::oneshot::Sender<Result<Vec<Appended>, StoreError>>;

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE orgs (
    id BIGSERIAL PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
-- One row per organization's log: its size, locked by every append to it.
CREATE TABLE logs (
    org_id BIGINT PRIMARY KEY REFERENCES orgs(id),
    size BIGINT NOT NULL DEFAULT 0
);
CREATE SEQUENCE event_pos;
CREATE TABLE events (
    org_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    pos BIGINT NOT NULL,
    id UUID NOT NULL,
    ts BIGINT NOT NULL,
    received BIGINT NOT NULL,
    category TEXT NOT NULL,
    operation TEXT NOT NULL,
    result SMALLINT NOT NULL,
    status_code INTEGER,
    actor_id TEXT,
    actor_name TEXT,
    actor_email TEXT,
    company TEXT,
    request_id TEXT,
    resource_type TEXT,
    resource_id TEXT,
    resource_name TEXT,
    workspace_id TEXT,
    workspace_name TEXT,
    project TEXT,
    cluster TEXT,
    namespace TEXT,
    ip INET,
    doc TSVECTOR NOT NULL,
    leaf BYTEA NOT NULL,
    PRIMARY KEY (org_id, seq, ts)
) PARTITION BY RANGE (ts);
CREATE INDEX events_time ON events (ts DESC, pos DESC);
CREATE INDEX events_org_time ON events (org_id, ts DESC, pos DESC);
CREATE INDEX events_id ON events (id);
CREATE INDEX events_category ON events (lower(category), ts DESC);
CREATE INDEX events_actor_email ON events (lower(actor_email), ts DESC);
CREATE INDEX events_request ON events (request_id);
CREATE INDEX events_resource ON events (lower(resource_name), ts DESC);
CREATE INDEX events_ip ON events (ip);
CREATE INDEX events_doc ON events USING GIN (doc);
-- Idempotency keys, unique per organization (a partitioned table cannot hold the
-- unique index itself).
CREATE TABLE idempotency (
    org_id BIGINT NOT NULL,
    key TEXT NOT NULL,
    id UUID NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (org_id, key)
);
CREATE TABLE tree_nodes (
    org_id BIGINT NOT NULL,
    level INTEGER NOT NULL,
    idx BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    PRIMARY KEY (org_id, level, idx)
);
CREATE TABLE checkpoints (
    org_id BIGINT NOT NULL,
    size BIGINT NOT NULL,
    root BYTEA NOT NULL,
    note TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, size)
);
CREATE TABLE api_keys (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    scope TEXT NOT NULL,
    hash BYTEA NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    user_id BIGINT,
    label TEXT NOT NULL DEFAULT ''
);
CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    password TEXT NOT NULL,
    must_change BOOLEAN NOT NULL DEFAULT false,
    disabled BOOLEAN NOT NULL DEFAULT false,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_email ON users (lower(email));
CREATE TABLE sessions (
    hash BYTEA PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id),
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE TABLE roles (
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    view TEXT NOT NULL,
    export TEXT NOT NULL,
    PRIMARY KEY (org_id, name)
);
CREATE TABLE schedules (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    weekday SMALLINT,
    at_minute INTEGER NOT NULL,
    query TEXT NOT NULL,
    format TEXT NOT NULL,
    recipients TEXT NOT NULL,
    directory TEXT,
    created_by TEXT NOT NULL,
    next_run BIGINT NOT NULL,
    last_run BIGINT
);
"#,
    r#"
-- Archive files written by retention (see `archive`): the manifest as JSON, written in
-- the transaction that deletes the archived events' rows.
CREATE TABLE archives (
    path TEXT PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    day TEXT NOT NULL,
    manifest TEXT NOT NULL
);
CREATE INDEX archives_org_day ON archives (org_id, day);
"#,
    // Events still in progress (PROCESSING, PENDING) are a few percent of a log: found
    // through the time index alone, a page of them meant walking thousands of others.
    // Only those rows enter this index, so appends barely pay for it.
    r#"
CREATE INDEX events_unfinished ON events (ts DESC, pos DESC) WHERE result >= 2;
"#,
    r#"
-- Login attempts counted per account and per address, shared by every server (see
-- `throttle`).
CREATE TABLE login_throttle (
    key TEXT PRIMARY KEY,
    attempts INTEGER NOT NULL DEFAULT 0,
    last BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT NOT NULL DEFAULT 0
);
"#,
    // The Company column is the organization, never the company an event's actor
    // claims: the indexed copy (used to sort) is recomputed once. The events' stored
    // bytes are untouched; this column is derived from them.
    r#"
UPDATE events e SET company = o.slug FROM orgs o WHERE o.id = e.org_id AND e.company IS DISTINCT FROM o.slug;
"#,
];

mod audit;

/// The PostgreSQL store.
pub struct PgStore {
    inner: Arc<Inner>,
}

impl std::ops::Deref for PgStore {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

/// What the store's methods and its group-commit writer task share.
pub struct Inner {
    pool: Pool,
    signer: Option<Arc<LogSigner>>,
    /// Identifies this process in notifications, so that it skips its own.
    origin: String,
    /// Appends committed by other processes, from `LISTEN trail_appends`.
    elsewhere: tokio::sync::broadcast::Sender<crate::AppendedRange>,
    /// The listener stops once the store is gone.
    _alive: Arc<()>,
    /// Batches waiting for the next group commit, and the lock its writer holds.
    waiting: std::sync::Mutex<Vec<(PgBatch, Reply)>>,
    leader: Arc<tokio::sync::Mutex<()>>,
    /// Batches being prepared at once (`prepare_slots`).
    preparing: tokio::sync::Semaphore,
    /// Monthly partitions known to exist.
    partitions: std::sync::Mutex<std::collections::HashSet<String>>,
}

fn pg(e: tokio_postgres::Error) -> StoreError {
    if e.is_closed() || e.as_db_error().is_none() {
        StoreError::Unavailable(e.to_string())
    } else {
        let db = e.as_db_error().map(|d| format!("{}: {}", d.code().code(), d.message())).unwrap_or_default();
        StoreError::Corrupt(format!("postgres: {db}"))
    }
}

fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl PgStore {
    /// Connects (`postgres://user:pass@host:port/db`), applies migrations and returns
    /// the store.
    pub async fn open(url: &str, signer: Option<Arc<LogSigner>>) -> Result<PgStore, StoreError> {
        let config: tokio_postgres::Config =
            url.parse().map_err(|e| StoreError::Invalid { field: "database".into(), message: format!("{e}") })?;
        let mgr = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(mgr)
            .max_size(16)
            .wait_timeout(Some(std::time::Duration::from_secs(5)))
            .create_timeout(Some(std::time::Duration::from_secs(5)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let origin = Uuid::now_v7().to_string();
        let (elsewhere, _) = tokio::sync::broadcast::channel(1024);
        let alive = Arc::new(());
        let watch = Arc::downgrade(&alive);
        let store = Inner {
            pool,
            signer,
            partitions: Default::default(),
            origin: origin.clone(),
            elsewhere,
            _alive: alive,
            waiting: Default::default(),
            preparing: tokio::sync::Semaphore::new(crate::prepare_slots()),
            leader: Default::default(),
        };
        let store = PgStore { inner: Arc::new(store) };
        store.migrate().await?;
        tokio::spawn(listen(url.to_string(), origin, store.elsewhere.clone(), watch));
        Ok(store)
    }

    /// Applies the migrations this build knows, under an advisory lock so that several
    /// processes starting at once do not race.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        tx.execute("SELECT pg_advisory_xact_lock(7236)", &[]).await.map_err(pg)?;
        tx.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)", &[]).await.map_err(pg)?;
        let v: Option<i32> =
            tx.query_opt("SELECT version FROM schema_version", &[]).await.map_err(pg)?.map(|r| r.get(0));
        let v = v.unwrap_or(0) as usize;
        if v > MIGRATIONS.len() {
            return Err(StoreError::SchemaTooNew { found: v as u32, supported: MIGRATIONS.len() as u32 });
        }
        for sql in &MIGRATIONS[v..] {
            tx.batch_execute(sql).await.map_err(pg)?;
        }
        tx.execute("DELETE FROM schema_version", &[]).await.map_err(pg)?;
        tx.execute("INSERT INTO schema_version VALUES ($1)", &[&(MIGRATIONS.len() as i32)]).await.map_err(pg)?;
        tx.commit().await.map_err(pg)
    }
}

/// Relays `trail_appends` notifications of other processes until the store is dropped;
/// reconnects after a second when the connection is lost.
async fn listen(
    url: String,
    origin: String,
    tx: tokio::sync::broadcast::Sender<crate::AppendedRange>,
    alive: std::sync::Weak<()>,
) {
    use futures::StreamExt;
    while alive.strong_count() > 0 {
        if let Ok((client, mut conn)) = tokio_postgres::connect(&url, NoTls).await {
            let (ntx, mut nrx) = tokio::sync::mpsc::unbounded_channel::<String>();
            let driver = tokio::spawn(async move {
                let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
                while let Some(m) = messages.next().await {
                    match m {
                        Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                            if ntx.send(n.payload().to_string()).is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(_) => return,
                    }
                }
            });
            if client.batch_execute("LISTEN trail_appends").await.is_ok() {
                loop {
                    let payload = tokio::select! {
                        p = nrx.recv() => match p { Some(p) => p, None => break },
                        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {
                            if alive.strong_count() == 0 { break } else { continue }
                        }
                    };
                    let Ok(v) = serde_json::from_str::<serde_json::Value>(&payload) else { continue };
                    if v["origin"].as_str() == Some(origin.as_str()) {
                        continue;
                    }
                    let range = crate::AppendedRange {
                        org: v["org"].as_str().unwrap_or_default().to_string(),
                        from: v["from"].as_u64().unwrap_or(0),
                        to: v["to"].as_u64().unwrap_or(0),
                    };
                    let _ = tx.send(range);
                }
            }
            driver.abort();
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

fn month_bounds(ts: i64) -> (i64, i64, String) {
    use chrono::Datelike;
    let dt = Timestamp(ts).to_datetime();
    let start = chrono::NaiveDate::from_ymd_opt(dt.year(), dt.month(), 1).unwrap_or_default();
    let next = if dt.month() == 12 {
        chrono::NaiveDate::from_ymd_opt(dt.year() + 1, 1, 1)
    } else {
        chrono::NaiveDate::from_ymd_opt(dt.year(), dt.month() + 1, 1)
    }
    .unwrap_or_default();
    let us = |d: chrono::NaiveDate| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc().timestamp_micros();
    (us(start), us(next), format!("events_y{:04}m{:02}", dt.year(), dt.month()))
}

/// Longest lexeme a `tsvector` holds (bytes); longer words are not indexed, as
/// `to_tsvector` does.
const MAX_LEXEME: usize = 2047;

/// The words of `text` as `q` matches them: runs of alphanumeric characters, lowercased.
fn search_words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(|w| w.to_lowercase())
}

/// The search document of an event: the distinct words of its search text, sorted by
/// their bytes (the order PostgreSQL keeps lexemes in). Made here rather than by
/// `to_tsvector` in the database, which cost the insert a fifth of its time; the `q`
/// filter splits its terms the same way.
pub fn doc_words(ev: &Event) -> Vec<String> {
    let mut text = String::new();
    search_text(ev, &mut text);
    let mut words: Vec<String> = search_words(&text).filter(|w| w.len() <= MAX_LEXEME).collect();
    words.sort_unstable();
    words.dedup();
    // A tsvector's lexemes must take less than 1 MiB in all: keep well under.
    let mut total = 0;
    words.retain(|w| {
        total += w.len() + 1;
        total < 1 << 19
    });
    words
}

/// A `tsvector` in PostgreSQL's binary form: distinct lexemes in byte order, without
/// positions (`q` matches words and prefixes, and checks phrases on the stored event).
#[derive(Debug)]
struct TsVector(Vec<String>);

impl ToSql for TsVector {
    fn to_sql(
        &self,
        _: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use bytes::BufMut;
        out.put_i32(i32::try_from(self.0.len())?);
        for w in &self.0 {
            out.put_slice(w.as_bytes());
            out.put_u8(0);
            out.put_u16(0);
        }
        Ok(tokio_postgres::types::IsNull::No)
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        ty.name() == "tsvector"
    }

    tokio_postgres::types::to_sql_checked!();
}

async fn org_id(c: &impl deadpool_postgres::GenericClient, slug: &str) -> Result<i64, StoreError> {
    c.query_opt("SELECT id FROM orgs WHERE slug = $1", &[&slug])
        .await
        .map_err(pg)?
        .map(|r| r.get(0))
        .ok_or_else(|| StoreError::UnknownOrg(slug.to_string()))
}

fn to_hash(b: &[u8]) -> Result<Hash, StoreError> {
    b.try_into().map_err(|_| StoreError::Corrupt("a stored hash is not 32 bytes".into()))
}

/// A dynamic SQL condition with its parameters.
#[derive(Default)]
struct Sql {
    clauses: Vec<String>,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
    /// Positions in `clauses` of the `q` conditions.
    search: Vec<usize>,
    /// Whether a `q` term is a phrase of plain words (`image pull`): see `PHRASE_PROBE`.
    word_phrase: bool,
}

impl Sql {
    fn param(&mut self, v: impl ToSql + Sync + Send + 'static) -> String {
        self.params.push(Box::new(v));
        format!("${}", self.params.len())
    }

    fn any_lower(&mut self, cols: &[&str], values: &[String]) {
        if values.is_empty() {
            return;
        }
        let mut ors = Vec::new();
        for v in values {
            let p = self.param(v.to_lowercase());
            for c in cols {
                ors.push(format!("lower({c}) = {p}"));
            }
        }
        self.clauses.push(format!("({})", ors.join(" OR ")));
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect()
    }

    fn where_sql(&self) -> String {
        if self.clauses.is_empty() {
            "true".into()
        } else {
            self.clauses.join(" AND ")
        }
    }
}

async fn where_clause(
    c: &impl deadpool_postgres::GenericClient,
    scope: &Scope,
    f: &Filter,
    now: Timestamp,
    time_only: bool,
) -> Result<Sql, StoreError> {
    let mut sql = Sql::default();
    // Organizations: the scope's, narrowed by the company filter.
    let mut ids: Option<Vec<i64>> = match &scope.org {
        Some(slug) => Some(
            c.query_opt("SELECT id FROM orgs WHERE slug = $1", &[slug])
                .await
                .map_err(pg)?
                .map(|r| r.get(0))
                .into_iter()
                .collect(),
        ),
        None => None,
    };
    if !f.company.is_empty() {
        let mut found = Vec::new();
        for name in &f.company {
            let row = c
                .query_opt("SELECT id FROM orgs WHERE lower(slug) = lower($1) OR lower(name) = lower($1)", &[name])
                .await
                .map_err(pg)?;
            if let Some(r) = row {
                let id: i64 = r.get(0);
                if ids.as_ref().is_none_or(|s| s.contains(&id)) {
                    found.push(id);
                }
            }
        }
        ids = Some(found);
    }
    if let Some(ids) = ids {
        let p = sql.param(ids);
        sql.clauses.push(format!("e.org_id = ANY({p})"));
    }
    match &scope.categories {
        Categories::All => {}
        Categories::Only(list) => {
            let p = sql.param(list.clone());
            sql.clauses.push(format!("lower(e.category) = ANY({p})"));
        }
        Categories::Except(list) => {
            let p = sql.param(list.clone());
            sql.clauses.push(format!("NOT (lower(e.category) = ANY({p}))"));
        }
    }
    let (from, to) = f.time_range(now);
    if let Some(t) = from {
        let p = sql.param(t.0);
        sql.clauses.push(format!("e.ts >= {p}"));
    }
    if let Some(t) = to {
        let p = sql.param(t.0);
        sql.clauses.push(format!("e.ts <= {p}"));
    }
    if time_only {
        return Ok(sql);
    }
    sql.any_lower(&["e.category"], &f.category);
    sql.any_lower(&["e.operation"], &f.operation);
    if !f.action.is_empty() {
        let p = sql.param(f.action.iter().map(|a| a.to_lowercase()).collect::<Vec<_>>());
        sql.clauses.push(format!("lower(e.category || ':' || e.operation) = ANY({p})"));
    }
    if !f.result.is_empty() {
        let p = sql.param(f.result.iter().map(|r| outcome_code(*r) as i16).collect::<Vec<_>>());
        sql.clauses.push(format!("e.result = ANY({p})"));
        // Spelled out so that the planner can use the partial index `events_unfinished`
        // (it cannot see through the parameter).
        if f.result.iter().all(|r| outcome_code(*r) >= 2) {
            sql.clauses.push("e.result >= 2".into());
        }
    }
    if let Some(s) = f.status {
        sql.clauses.push(match s {
            StatusClass::Success => {
                "((e.status_code BETWEEN 200 AND 299) OR (e.status_code IS NULL AND e.result = 0))".into()
            }
            StatusClass::Failure => "((e.status_code >= 400) OR (e.status_code IS NULL AND e.result = 1))".into(),
        });
    }
    if !f.actor.is_empty() {
        let mut ors = Vec::new();
        for v in &f.actor {
            if let Some(prefix) = v.strip_suffix('@') {
                let p = sql.param(format!(
                    "{}@%",
                    prefix.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
                ));
                ors.push(format!("lower(e.actor_email) LIKE {p}"));
            } else {
                let p = sql.param(v.to_lowercase());
                ors.push(format!("lower(e.actor_id) = {p} OR lower(e.actor_name) = {p} OR lower(e.actor_email) = {p}"));
            }
        }
        sql.clauses.push(format!("({})", ors.join(" OR ")));
    }
    if !f.request_id.is_empty() {
        let p = sql.param(f.request_id.clone());
        sql.clauses.push(format!("e.request_id = ANY({p})"));
    }
    sql.any_lower(&["e.resource_name", "e.resource_id"], &f.resource);
    sql.any_lower(&["e.resource_type"], &f.resource_type);
    sql.any_lower(&["e.workspace_id", "e.workspace_name"], &f.workspace);
    sql.any_lower(&["e.project"], &f.project);
    sql.any_lower(&["e.cluster"], &f.cluster);
    sql.any_lower(&["e.namespace"], &f.namespace);
    if !f.ip.is_empty() {
        // Each block as a range of the address index (`<<=` over an array of blocks
        // cannot use it: a block matching nothing walked the whole organization).
        let mut ors = Vec::new();
        for net in &f.ip {
            let (lo, hi) = (sql.param(net.network().to_string()), sql.param(net.broadcast().to_string()));
            let block = sql.param(net.trunc().to_string());
            ors.push(format!(
                "(e.ip >= {lo}::TEXT::INET AND e.ip <= {hi}::TEXT::INET AND e.ip <<= {block}::TEXT::CIDR)"
            ));
        }
        sql.clauses.push(format!("({})", ors.join(" OR ")));
    }
    for term in &f.q {
        let words: Vec<String> = search_words(term).collect();
        if words.is_empty() {
            continue;
        }
        if words.iter().any(|w| w.len() > MAX_LEXEME) {
            // No indexed word is that long, so none starts with it.
            sql.clauses.push("FALSE".into());
            continue;
        }
        // The term's text is then looked for in the stored event: every word but the
        // last is followed by more of the term, so it is a whole word of the text.
        let phrase = words.len() > 1 && !term.chars().any(|c| c == '"' || c == '\\' || c.is_control());
        // Quoted lexemes, as the documents hold them (words have no quote or backslash);
        // whole words match exactly, which lets the index skip through common ones
        // (`req` of every request id) instead of collecting every row they are in.
        let last = words.len() - 1;
        let q = words
            .iter()
            .enumerate()
            .map(|(i, w)| if phrase && i < last { format!("'{w}'") } else { format!("'{w}':*") })
            .collect::<Vec<_>>()
            .join(" & ");
        let p = sql.param(q);
        sql.search.push(sql.clauses.len());
        sql.clauses.push(format!("e.doc @@ {p}::TEXT::TSQUERY"));
        if phrase {
            let p = sql.param(term.to_lowercase());
            sql.search.push(sql.clauses.len());
            sql.clauses.push(format!("position({p} in lower(convert_from(e.leaf, 'UTF8'))) > 0"));
            sql.word_phrase |= words.iter().all(|w| w.chars().all(char::is_alphabetic));
        }
    }
    Ok(sql)
}

fn sort_expr(field: SortField) -> (&'static str, bool) {
    match field {
        SortField::Timestamp => ("e.ts", true),
        SortField::ReceivedAt => ("e.received", true),
        SortField::Seq => ("e.seq", true),
        SortField::SourceIp => ("COALESCE(host(e.ip), '')", false),
        SortField::Performer => ("COALESCE(e.actor_name, e.actor_email, '')", false),
        SortField::Company => ("COALESCE(e.company, '')", false),
        SortField::Email => ("COALESCE(lower(e.actor_email), '')", false),
        SortField::Category => ("e.category", false),
        SortField::Operation => ("e.operation", false),
        SortField::Action => ("e.category || ':' || e.operation", false),
        SortField::Result => ("e.result::BIGINT", true),
        SortField::StatusCode => ("COALESCE(e.status_code, -1)::BIGINT", true),
        SortField::RequestId => ("COALESCE(e.request_id, '')", false),
        SortField::Resource => ("COALESCE(e.resource_name, e.resource_id, '')", false),
    }
}

/// The statement listing a query's events (`ts, pos, sort value, leaf`) in order.
fn list_sql(mut sql: Sql, q: &ListQuery, limit: Option<usize>) -> Result<(String, Sql), StoreError> {
    let sort = q.filter.sort;
    let cursor = q.cursor.as_deref().map(|c| Cursor::decode(c, sort)).transpose()?;
    let (expr, is_int) = sort_expr(sort.field);
    let cmp = if sort.desc { "<" } else { ">" };
    let dir = if sort.desc { "DESC" } else { "ASC" };
    let time = sort.field == SortField::Timestamp;
    if let Some(c) = &cursor {
        if time {
            let (pt, pp) = (sql.param(c.ts), sql.param(c.pos));
            sql.clauses.push(format!("(e.ts, e.pos) {cmp} ({pt}, {pp})"));
        } else {
            let pp = sql.param(c.pos);
            let v = match (&c.value, is_int) {
                (serde_json::Value::Number(n), true) => sql.param(n.as_i64().unwrap_or(0)),
                (serde_json::Value::String(s), false) => sql.param(s.clone()),
                _ => {
                    return Err(StoreError::Invalid {
                        field: "cursor".into(),
                        message: "does not match the sort".into(),
                    })
                }
            };
            sql.clauses.push(format!("({expr}, e.pos) {cmp} ({v}, {pp})"));
        }
    }
    let order = if time { format!("e.ts {dir}, e.pos {dir}") } else { format!("{expr} {dir}, e.pos {dir}") };
    let limit = limit.map_or(String::new(), |l| format!(" LIMIT {l}"));
    let value = if time {
        "NULL::TEXT".to_string()
    } else if is_int {
        format!("({expr})::TEXT")
    } else {
        expr.to_string()
    };
    let text =
        format!("SELECT e.ts, e.pos, {value}, e.leaf FROM events e WHERE {} ORDER BY {order}{limit}", sql.where_sql());
    Ok((text, sql))
}

/// Newest rows a phrase search of plain words first looks through (see `probe_sql`).
const PHRASE_PROBE: usize = 10_000;

/// For a page in time order searching a phrase of plain words: the same page taken from
/// only the first `PHRASE_PROBE` rows (in the page's order) that meet the other
/// conditions. The planner multiplies the words' frequencies as if they were unrelated
/// (`image` and `pull` nearly always come together), so it expects a handful of
/// matches, collects every one of them through the search index and checks the phrase
/// in each stored event: 70-100 ms at 1M events. Common phrases fill a page within the
/// newest rows; when this query returns `limit` rows they are exactly the page's (a
/// filtered prefix of the ordered rows keeps their order), and otherwise the caller
/// runs the full query. `None` when the probe does not apply.
fn probe_sql(sql: &Sql, q: &ListQuery, limit: usize) -> Option<String> {
    if !sql.word_phrase || q.filter.sort.field != SortField::Timestamp {
        return None;
    }
    let order = if q.filter.sort.desc { "e.ts DESC, e.pos DESC" } else { "e.ts ASC, e.pos ASC" };
    let (search, other): (Vec<_>, Vec<_>) = sql.clauses.iter().enumerate().partition(|(i, _)| sql.search.contains(i));
    let and = |c: Vec<(usize, &String)>| c.into_iter().map(|(_, c)| c.as_str()).collect::<Vec<_>>().join(" AND ");
    // `search` holds at least the phrase; `other` may be empty (every organization).
    Some(format!(
        "SELECT e.ts, e.pos, NULL::TEXT, e.leaf FROM (SELECT e.ts, e.pos, e.doc, e.leaf FROM events e WHERE {} \
         ORDER BY {order} LIMIT {PHRASE_PROBE}) e WHERE {} ORDER BY {order} LIMIT {limit}",
        if other.is_empty() { "true".into() } else { and(other) },
        and(search)
    ))
}

fn cursor_value(sort: SortField, v: Option<String>) -> serde_json::Value {
    let (_, is_int) = sort_expr(sort);
    match v {
        None => serde_json::Value::Null,
        Some(s) if is_int => serde_json::Value::from(s.parse::<i64>().unwrap_or(0)),
        Some(s) => serde_json::Value::from(s),
    }
}

fn user_row(r: &Row) -> User {
    User {
        id: r.get("id"),
        org: r.get("slug"),
        email: r.get("email"),
        name: r.get("name"),
        role: r.get("role"),
        password_hash: r.get("password"),
        must_change: r.get("must_change"),
        disabled: r.get("disabled"),
        created_at: r.get("created_at"),
    }
}

const USER_SELECT: &str = "SELECT u.id, o.slug, u.email, u.name, u.role, u.password, u.must_change, u.disabled, \
    u.created_at FROM users u JOIN orgs o ON o.id = u.org_id";

fn key_row(r: &Row) -> Option<ApiKey> {
    Some(ApiKey {
        id: r.get(0),
        org: r.get(1),
        scope: KeyScope::parse(r.get(2))?,
        prefix: r.get(3),
        revoked: r.get::<_, Option<i64>>(4).is_some(),
        user_id: r.get(5),
        label: r.get(6),
        created_at: r.get(7),
    })
}

const KEY_SELECT: &str = "SELECT k.id, o.slug, k.scope, k.prefix, k.revoked_at, k.user_id, k.label, k.created_at \
    FROM api_keys k JOIN orgs o ON o.id = k.org_id";

fn schedule_row(r: &Row) -> Schedule {
    let recipients: String = r.get(7);
    Schedule {
        id: r.get(0),
        org: r.get(1),
        name: r.get(2),
        weekday: r.get::<_, Option<i16>>(3).map(|d| d as u8),
        at_minute: r.get::<_, i32>(4) as u16,
        query: r.get(5),
        format: r.get(6),
        recipients: serde_json::from_str(&recipients).unwrap_or_default(),
        directory: r.get(8),
        created_by: r.get(9),
        next_run: r.get(10),
        last_run: r.get(11),
    }
}

const SCHEDULE_SELECT: &str = "SELECT s.id, o.slug, s.name, s.weekday, s.at_minute, s.query, s.format, s.recipients, \
    s.directory, s.created_by, s.next_run, s.last_run FROM schedules s JOIN orgs o ON o.id = s.org_id";

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Reads complete subtree hashes for proofs.
async fn node(c: &impl deadpool_postgres::GenericClient, org: i64, level: u32, idx: u64) -> Result<Hash, StoreError> {
    let row = c
        .query_opt(
            "SELECT hash FROM tree_nodes WHERE org_id = $1 AND level = $2 AND idx = $3",
            &[&org, &(level as i32), &(idx as i64)],
        )
        .await
        .map_err(pg)?
        .ok_or_else(|| StoreError::Corrupt(format!("tree node {level}/{idx} is missing")))?;
    to_hash(row.get::<_, &[u8]>(0))
}

/// Several tree nodes in one query, in the order asked.
async fn nodes(
    c: &impl deadpool_postgres::GenericClient,
    org: i64,
    want: Vec<(u32, u64)>,
) -> Result<Vec<(u32, Hash)>, StoreError> {
    if want.is_empty() {
        return Ok(Vec::new());
    }
    let levels: Vec<i32> = want.iter().map(|w| w.0 as i32).collect();
    let idxs: Vec<i64> = want.iter().map(|w| w.1 as i64).collect();
    let rows = c
        .query(
            "SELECT n.level, n.idx, n.hash FROM tree_nodes n JOIN UNNEST($2::INT4[], $3::INT8[]) AS w(level, idx) \
             ON n.level = w.level AND n.idx = w.idx WHERE n.org_id = $1",
            &[&org, &levels, &idxs],
        )
        .await
        .map_err(pg)?;
    let mut found = std::collections::HashMap::new();
    for r in rows {
        found.insert((r.get::<_, i32>(0) as u32, r.get::<_, i64>(1) as u64), to_hash(r.get::<_, &[u8]>(2))?);
    }
    want.into_iter()
        .map(|(level, idx)| {
            let h = found.remove(&(level, idx));
            h.map(|h| (level, h)).ok_or_else(|| StoreError::Corrupt(format!("tree node {level}/{idx} is missing")))
        })
        .collect()
}

/// An event's column values (all but organization, seq, position and leaf), made
/// before the group's transaction.
struct PgRow {
    id: Uuid,
    ts: i64,
    received: i64,
    category: String,
    operation: String,
    result: i16,
    status: Option<i32>,
    /// actor id, name, email, company, request id, resource type, id, name, workspace
    /// id, name, project, cluster, namespace.
    text: [Option<String>; 13],
    ip: Option<IpAddr>,
    doc: TsVector,
}

impl PgRow {
    /// The row of an event: its indexed copy (the one form `verify` checks it against)
    /// and its search document.
    fn new(ev: &Event) -> PgRow {
        let c = IndexedCopy::of(ev);
        PgRow {
            id: c.id,
            ts: c.ts,
            received: c.received,
            category: c.category,
            operation: c.operation,
            result: c.result as i16,
            status: c.status_code.map(|s| s as i32),
            text: [
                c.actor_id,
                c.actor_name,
                c.actor_email,
                c.company,
                c.request_id,
                c.resource_type,
                c.resource_id,
                c.resource_name,
                c.workspace_id,
                c.workspace_name,
                c.project,
                c.cluster,
                c.namespace,
            ],
            ip: c.ip.map(|b| IpAddr::V6(std::net::Ipv6Addr::from(b)).to_canonical()),
            doc: TsVector(doc_words(ev)),
        }
    }
}

/// An event made ready outside the group's lock: its row and its leaf but for the seq.
struct PgPrepared {
    row: PgRow,
    idem: Option<String>,
    leaf: LeafTemplate,
}

impl PgPrepared {
    fn new(org: &str, id: Uuid, new: NewEvent, received_at: Timestamp) -> PgPrepared {
        let (ev, leaf) = LeafTemplate::new(org, id, new, received_at);
        PgPrepared { row: PgRow::new(&ev), idem: ev.idempotency_key, leaf }
    }
}

/// A batch whose events were prepared.
struct PgBatch {
    org: String,
    events: Vec<PgPrepared>,
}

/// Inserts event rows `(row, seq, leaf)` (their partitions must exist) in one statement.
async fn insert_events(
    tx: &impl deadpool_postgres::GenericClient,
    org: i64,
    rows: &[(&PgRow, u64, &[u8])],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let n = rows.len();
    let mut seq = Vec::with_capacity(n);
    let mut id = Vec::with_capacity(n);
    let mut ts = Vec::with_capacity(n);
    let mut received = Vec::with_capacity(n);
    let mut category = Vec::with_capacity(n);
    let mut operation = Vec::with_capacity(n);
    let mut result = Vec::with_capacity(n);
    let mut status = Vec::with_capacity(n);
    let mut text: [Vec<Option<&str>>; 13] = Default::default();
    let mut ip = Vec::with_capacity(n);
    let mut doc = Vec::with_capacity(n);
    let mut leaf = Vec::with_capacity(n);
    for (r, s, l) in rows {
        seq.push(*s as i64);
        id.push(r.id);
        ts.push(r.ts);
        received.push(r.received);
        category.push(r.category.as_str());
        operation.push(r.operation.as_str());
        result.push(r.result);
        status.push(r.status);
        for (col, v) in text.iter_mut().zip(&r.text) {
            col.push(v.as_deref());
        }
        ip.push(r.ip);
        doc.push(&r.doc);
        leaf.push(*l);
    }
    let [actor_id, actor_name, actor_email, company, request_id, resource_type, resource_id, resource_name, workspace_id, workspace_name, project, cluster, namespace] =
        &text;
    tx.execute(
        "INSERT INTO events (org_id, seq, pos, id, ts, received, category, operation, result, status_code, \
         actor_id, actor_name, actor_email, company, request_id, resource_type, resource_id, resource_name, \
         workspace_id, workspace_name, project, cluster, namespace, ip, doc, leaf) \
         SELECT $1, u.seq, nextval('event_pos'), u.id, u.ts, u.received, u.category, u.operation, u.result, \
         u.status_code, u.actor_id, u.actor_name, u.actor_email, u.company, u.request_id, u.resource_type, \
         u.resource_id, u.resource_name, u.workspace_id, u.workspace_name, u.project, u.cluster, u.namespace, u.ip, \
         u.doc, u.leaf FROM UNNEST($2::INT8[], $3::UUID[], $4::INT8[], $5::INT8[], \
         $6::TEXT[], $7::TEXT[], $8::INT2[], $9::INT4[], $10::TEXT[], $11::TEXT[], $12::TEXT[], $13::TEXT[], \
         $14::TEXT[], $15::TEXT[], $16::TEXT[], $17::TEXT[], $18::TEXT[], $19::TEXT[], $20::TEXT[], $21::TEXT[], \
         $22::TEXT[], $23::INET[], $24::TSVECTOR[], $25::BYTEA[]) AS u(seq, id, ts, received, category, operation, \
         result, status_code, actor_id, actor_name, actor_email, company, request_id, resource_type, resource_id, \
         resource_name, workspace_id, workspace_name, project, cluster, namespace, ip, doc, leaf) ORDER BY u.seq",
        &[
            &org,
            &seq,
            &id,
            &ts,
            &received,
            &category,
            &operation,
            &result,
            &status,
            actor_id,
            actor_name,
            actor_email,
            company,
            request_id,
            resource_type,
            resource_id,
            resource_name,
            workspace_id,
            workspace_name,
            project,
            cluster,
            namespace,
            &ip,
            &doc,
            &leaf,
        ],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

/// Inserts Merkle nodes in one statement.
async fn insert_nodes(
    tx: &impl deadpool_postgres::GenericClient,
    org: i64,
    nodes: &[(u32, u64, Hash)],
) -> Result<(), StoreError> {
    if nodes.is_empty() {
        return Ok(());
    }
    let level: Vec<i32> = nodes.iter().map(|n| n.0 as i32).collect();
    let idx: Vec<i64> = nodes.iter().map(|n| n.1 as i64).collect();
    let hash: Vec<&[u8]> = nodes.iter().map(|n| &n.2[..]).collect();
    tx.execute(
        "INSERT INTO tree_nodes (org_id, level, idx, hash) SELECT $1, u.l, u.i, u.h FROM UNNEST($2::INT4[], \
         $3::INT8[], $4::BYTEA[]) AS u(l, i, h)",
        &[&org, &level, &idx, &hash],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

/// Subtree hashes fetched ahead: the proof algorithms are synchronous, so the store
/// first records which complete subtrees they ask for, fetches those, then runs again.
struct Recorded {
    wanted: Vec<(u32, u64)>,
    known: std::collections::HashMap<(u32, u64), Hash>,
}

impl merkle::Subtrees for Recorded {
    type Error = StoreError;
    fn subtree(&mut self, start: u64, size: u64) -> Result<Hash, StoreError> {
        merkle::range_hash(start, size, &mut |level, idx| {
            Ok(match self.known.get(&(level, idx)) {
                Some(h) => *h,
                None => {
                    self.wanted.push((level, idx));
                    [0; 32]
                }
            })
        })
    }
}

impl PgStore {
    async fn proof(
        &self,
        org: &str,
        run: impl Fn(&mut Recorded) -> Result<Vec<Hash>, StoreError>,
    ) -> Result<Vec<Hash>, StoreError> {
        let c = self.client().await?;
        let org = org_id(&c, org).await?;
        let mut rec = Recorded { wanted: Vec::new(), known: Default::default() };
        run(&mut rec)?;
        for (level, idx) in std::mem::take(&mut rec.wanted) {
            let h = node(&c, org, level, idx).await?;
            rec.known.insert((level, idx), h);
        }
        run(&mut rec)
    }

    async fn log_size(&self, org: &str) -> Result<u64, StoreError> {
        let c = self.client().await?;
        let id = org_id(&c, org).await?;
        let r = c.query_opt("SELECT size FROM logs WHERE org_id = $1", &[&id]).await.map_err(pg)?;
        Ok(r.map_or(0, |r| r.get::<_, i64>(0) as u64))
    }

    /// Creates the monthly partitions a batch needs, each in its own statement (so
    /// that concurrent appends do not hold the parent's lock for a whole batch).
    /// Appends every batch waiting in this process in one transaction (group commit):
    /// the first caller to find no group in flight writes what has queued up; the
    /// others wait for their answer, or for the lock if their batch is still waiting.
    async fn group_append(&self, batch: PgBatch) -> Result<Vec<Appended>, StoreError> {
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        self.waiting.lock().map_err(|_| StoreError::Closed)?.push((batch, tx));
        loop {
            tokio::select! {
                // An answer first: a caller whose batch was written must not queue for
                // the lock (that made every later group a group of one).
                biased;
                r = &mut rx => return r.map_err(|_| StoreError::Closed)?,
                guard = self.leader.clone().lock_owned() => {
                    let group = std::mem::take(&mut *self.waiting.lock().map_err(|_| StoreError::Closed)?);
                    if group.is_empty() {
                        // Whoever took this batch answered before letting go of the lock.
                        continue;
                    }
                    // A task of its own, so that a caller who goes away mid-write does not
                    // abort the other callers' group; the lock goes with it.
                    let inner = self.inner.clone();
                    let _ = tokio::spawn(async move {
                        inner.write_group(group).await;
                        drop(guard);
                    })
                    .await;
                }
            }
        }
    }
}

impl Inner {
    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(pool_err)
    }

    async fn ensure_partitions(&self, c: &deadpool_postgres::Object, batch: &PgBatch) -> Result<(), StoreError> {
        let mut months = std::collections::BTreeMap::new();
        for e in &batch.events {
            let (lo, hi, name) = month_bounds(e.row.ts);
            months.insert(name, (lo, hi));
        }
        for (name, (lo, hi)) in months {
            if self.partitions.lock().map(|p| p.contains(&name)).unwrap_or(false) {
                continue;
            }
            let sql = format!("CREATE TABLE IF NOT EXISTS {name} PARTITION OF events FOR VALUES FROM ({lo}) TO ({hi})");
            match c.batch_execute(&sql).await {
                Ok(()) => {}
                // Another process made it at the same moment.
                Err(e) if e.code().is_some_and(|c| *c == tokio_postgres::error::SqlState::DUPLICATE_TABLE) => {}
                Err(e) => return Err(pg(e)),
            }
            if let Ok(mut p) = self.partitions.lock() {
                p.insert(name);
            }
        }
        Ok(())
    }

    async fn write_group(&self, group: Vec<(PgBatch, Reply)>) {
        let mut results: Vec<Option<Result<Vec<Appended>, StoreError>>> = group.iter().map(|_| None).collect();
        let mut outcome = self.write_group_tx(&group, &mut results, false).await;
        if group.len() > 1 && matches!(outcome, Err(StoreError::Corrupt(_) | StoreError::Invalid { .. })) {
            // The database refused something in the group: again, each batch on its own,
            // so that only the bad one fails.
            results.iter_mut().for_each(|r| *r = None);
            outcome = self.write_group_tx(&group, &mut results, true).await;
        }
        for ((_, reply), r) in group.into_iter().zip(results) {
            let r = match (&outcome, r) {
                (Err(StoreError::CommitUnknown(e)), Some(Ok(_)) | None) => Err(StoreError::CommitUnknown(e.clone())),
                (Err(e), Some(Ok(_)) | None) => Err(StoreError::Unavailable(e.to_string())),
                (_, Some(r)) => r,
                (Ok(()), None) => Err(StoreError::Closed),
            };
            let _ = reply.send(r);
        }
    }

    /// The group's transaction: one insert per table and organization for the whole
    /// group, or with `isolate` each batch in a savepoint, so that a bad batch fails
    /// alone. Organizations are locked in slug order (the same in every process).
    async fn write_group_tx(
        &self,
        group: &[(PgBatch, Reply)],
        results: &mut [Option<Result<Vec<Appended>, StoreError>>],
        isolate: bool,
    ) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        for (batch, _) in group {
            self.ensure_partitions(&c, batch).await?;
        }
        let tx = c.transaction().await.map_err(pg)?;
        let mut orgs: Vec<&str> = group.iter().map(|(b, _)| b.org.as_str()).collect();
        orgs.sort_unstable();
        orgs.dedup();
        for slug in orgs {
            let org = match org_id(&tx, slug).await {
                Ok(id) => id,
                Err(StoreError::UnknownOrg(_)) => {
                    for (i, (b, _)) in group.iter().enumerate() {
                        if b.org == slug {
                            results[i] = Some(Err(StoreError::UnknownOrg(b.org.clone())));
                        }
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            tx.execute("INSERT INTO logs (org_id) VALUES ($1) ON CONFLICT DO NOTHING", &[&org]).await.map_err(pg)?;
            let size: i64 =
                tx.query_one("SELECT size FROM logs WHERE org_id = $1 FOR UPDATE", &[&org]).await.map_err(pg)?.get(0);
            let mut frontier =
                Frontier { size: size as u64, nodes: nodes(&tx, org, Frontier::shape(size as u64)).await? };
            if !isolate {
                let mine: Vec<usize> = (0..group.len()).filter(|&i| group[i].0.org == slug).collect();
                let batches: Vec<&PgBatch> = mine.iter().map(|&i| &group[i].0).collect();
                let acks = self.append_many(&tx, org, &mut frontier, &batches).await?;
                for (i, acks) in mine.into_iter().zip(acks) {
                    results[i] = Some(Ok(acks));
                }
            }
            for (i, (batch, _)) in group.iter().enumerate() {
                if batch.org != slug || !isolate {
                    continue;
                }
                tx.batch_execute("SAVEPOINT batch").await.map_err(pg)?;
                let before = frontier.clone();
                match self.append_many(&tx, org, &mut frontier, &[batch]).await {
                    Ok(mut acks) => {
                        let acks = acks.pop().unwrap_or_default();
                        tx.batch_execute("RELEASE SAVEPOINT batch").await.map_err(pg)?;
                        results[i] = Some(Ok(acks));
                    }
                    Err(e) => {
                        tx.batch_execute("ROLLBACK TO SAVEPOINT batch").await.map_err(pg)?;
                        frontier = before;
                        results[i] = Some(Err(e));
                    }
                }
            }
            let seq = frontier.size;
            if seq as i64 != size {
                tx.execute("UPDATE logs SET size = $2 WHERE org_id = $1", &[&org, &(seq as i64)]).await.map_err(pg)?;
                // Delivered at commit to every other Trail process (for their live views).
                let note = serde_json::json!({"origin": self.origin, "org": slug, "from": size, "to": seq}).to_string();
                tx.execute("SELECT pg_notify('trail_appends', $1)", &[&note]).await.map_err(pg)?;
                if let Some(signer) = &self.signer {
                    let root = frontier.root();
                    let note =
                        checkpoint::sign(&Checkpoint { origin: signer.origin(slug), size: seq, root }, &signer.key);
                    tx.execute(
                        "INSERT INTO checkpoints (org_id, size, root, note, created_at) VALUES ($1, $2, $3, $4, $5)",
                        &[&org, &(seq as i64), &&root[..], &note, &now_us()],
                    )
                    .await
                    .map_err(pg)?;
                }
            }
        }
        tx.commit().await.map_err(|e| match e.as_db_error() {
            // The server refused the commit: nothing was stored.
            Some(_) => pg(e),
            None => StoreError::CommitUnknown(e.to_string()),
        })
    }

    /// The batches' rows, tree nodes and idempotency keys, extending `frontier`; the
    /// acknowledgements of each batch.
    async fn append_many(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        org: i64,
        frontier: &mut Frontier,
        batches: &[&PgBatch],
    ) -> Result<Vec<Vec<Appended>>, StoreError> {
        let mut seq = frontier.size;
        let mut all_acks = Vec::with_capacity(batches.len());
        // Idempotency keys seen before (or earlier in this group) are acknowledged with
        // the earlier event.
        let keys: Vec<&str> = batches.iter().flat_map(|b| b.events.iter().filter_map(|e| e.idem.as_deref())).collect();
        let mut seen: std::collections::HashMap<String, (Uuid, u64)> = std::collections::HashMap::new();
        if !keys.is_empty() {
            let rows = tx
                .query("SELECT key, id, seq FROM idempotency WHERE org_id = $1 AND key = ANY($2)", &[&org, &keys])
                .await
                .map_err(pg)?;
            for r in rows {
                seen.insert(r.get(0), (r.get(1), r.get::<_, i64>(2) as u64));
            }
        }
        let mut rows = Vec::new();
        let mut nodes = Vec::new();
        let (mut new_keys, mut new_key_ids, mut new_key_seqs) = (Vec::new(), Vec::new(), Vec::new());
        for batch in batches {
            let mut acks = Vec::with_capacity(batch.events.len());
            for p in &batch.events {
                let id = p.row.id;
                if let Some(key) = &p.idem {
                    if let Some((id, s)) = seen.get(key) {
                        acks.push(Appended { id: *id, seq: *s, duplicate: true });
                        continue;
                    }
                    seen.insert(key.clone(), (id, seq));
                    new_keys.push(key.as_str());
                    new_key_ids.push(id);
                    new_key_seqs.push(seq as i64);
                }
                let leaf = p.leaf.leaf(seq);
                nodes.extend(frontier.push(leaf_hash(&leaf)));
                rows.push((&p.row, seq, leaf));
                acks.push(Appended { id, seq, duplicate: false });
                seq += 1;
            }
            all_acks.push(acks);
        }
        let rows: Vec<(&PgRow, u64, &[u8])> = rows.iter().map(|(r, s, l)| (*r, *s, l.as_slice())).collect();
        insert_events(tx, org, &rows).await?;
        insert_nodes(tx, org, &nodes).await?;
        if !new_keys.is_empty() {
            tx.execute(
                "INSERT INTO idempotency (org_id, key, id, seq) SELECT $1, u.k, u.i, u.s FROM UNNEST($2::TEXT[], \
                 $3::UUID[], $4::INT8[]) AS u(k, i, s)",
                &[&org, &new_keys, &new_key_ids, &new_key_seqs],
            )
            .await
            .map_err(pg)?;
        }
        Ok(all_acks)
    }
}

#[async_trait]
impl Store for PgStore {
    fn appended_elsewhere(&self) -> Option<tokio::sync::broadcast::Receiver<crate::AppendedRange>> {
        Some(self.elsewhere.subscribe())
    }

    async fn append(&self, batch: AppendBatch) -> Result<Vec<Appended>, StoreError> {
        // Prepared before queueing, so the group's writer does little beyond the
        // database's own work.
        let (org, events) = crate::prepare_batch(batch, &self.preparing, PgPrepared::new).await?;
        self.group_append(PgBatch { org, events }).await
    }

    async fn expired(
        &self,
        org: &str,
        rules: &Retention,
        as_of: Timestamp,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Expired>, StoreError> {
        let c = self.client().await?;
        let org = org_id(&c, org).await?;
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> =
            vec![Box::new(org), Box::new(after.map_or(-1, |a| a as i64)), Box::new(limit.max(1) as i64)];
        let mut conds = Vec::new();
        let cutoffs = rules.cutoffs(as_of);
        for (cat, cutoff) in cutoffs.categories {
            params.push(Box::new(cat));
            params.push(Box::new(cutoff));
            conds.push(format!("(lower(category) = ${} AND ts < ${})", params.len() - 1, params.len()));
        }
        if let Some((listed, cutoff)) = cutoffs.others {
            params.push(Box::new(listed));
            params.push(Box::new(cutoff));
            conds.push(format!("(NOT (lower(category) = ANY(${})) AND ts < ${})", params.len() - 1, params.len()));
        }
        if conds.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT seq, ts, category, leaf FROM events WHERE org_id = $1 AND seq > $2 AND ({}) ORDER BY seq LIMIT $3",
            conds.join(" OR ")
        );
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
        let rows = c.query(&sql, &refs).await.map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| Expired { seq: r.get::<_, i64>(0) as u64, ts: r.get(1), category: r.get(2), leaf: r.get(3) })
            .collect())
    }

    async fn archived(&self, org: &str, files: Vec<ArchiveFile>, seqs: Vec<u64>) -> Result<u64, StoreError> {
        let mut c = self.client().await?;
        let org = org_id(&c, org).await?;
        let seqs: Vec<i64> = seqs.into_iter().map(|s| s as i64).collect();
        let tx = c.transaction().await.map_err(pg)?;
        let deleted =
            tx.execute("DELETE FROM events WHERE org_id = $1 AND seq = ANY($2)", &[&org, &seqs]).await.map_err(pg)?;
        tx.execute("DELETE FROM idempotency WHERE org_id = $1 AND seq = ANY($2)", &[&org, &seqs]).await.map_err(pg)?;
        for f in &files {
            let manifest = serde_json::to_string(f).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            tx.execute(
                "INSERT INTO archives (path, org_id, day, manifest) VALUES ($1, $2, $3, $4) ON CONFLICT (path) DO \
                 UPDATE SET manifest = EXCLUDED.manifest",
                &[&f.path, &org, &f.day, &manifest],
            )
            .await
            .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)?;
        Ok(deleted)
    }

    async fn archives(&self, org: Option<&str>) -> Result<Vec<ArchiveFile>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT a.manifest FROM archives a JOIN orgs o ON o.id = a.org_id WHERE ($1::TEXT IS NULL OR o.slug = $1) \
                 ORDER BY a.day, a.path",
                &[&org],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| {
                serde_json::from_str(r.get::<_, &str>(0))
                    .map_err(|e| StoreError::Corrupt(format!("archive manifest: {e}")))
            })
            .collect()
    }

    async fn exclusive(&self, name: &str) -> Result<Option<Exclusive>, StoreError> {
        let c = self.client().await?;
        let key = i64::from_le_bytes(sha2::Sha256::digest(name.as_bytes())[..8].try_into().unwrap_or_default());
        let got: bool = c.query_one("SELECT pg_try_advisory_lock($1)", &[&key]).await.map_err(pg)?.get(0);
        if !got {
            return Ok(None);
        }
        // The lock belongs to this session: the connection leaves the pool and closes
        // (releasing the lock) when the guard is dropped.
        let client = deadpool_postgres::Object::take(c);
        Ok(Some(Exclusive(Box::new(client))))
    }

    async fn list(&self, q: ListQuery) -> Result<Page, StoreError> {
        let c = self.client().await?;
        let sql = where_clause(&c, &q.scope, &q.filter, q.now, false).await?;
        let limit = q.limit.clamp(1, 1000);
        let (text, sql) = list_sql(sql, &q, Some(limit + 1))?;
        let mut rows = Vec::new();
        if let Some(probe) = probe_sql(&sql, &q, limit + 1) {
            rows = c.query(&probe, &sql.refs()).await.map_err(pg)?;
        }
        if rows.len() <= limit {
            rows = c.query(&text, &sql.refs()).await.map_err(pg)?;
        }
        let more = rows.len() > limit;
        let mut events = Vec::with_capacity(limit);
        let mut last = None;
        for r in rows.iter().take(limit) {
            events.push(r.get::<_, Vec<u8>>(3));
            last = Some((r.get::<_, i64>(0), r.get::<_, i64>(1), r.get::<_, Option<String>>(2)));
        }
        let sort = q.filter.sort;
        let next_cursor = match (more, last) {
            (true, Some((ts, pos, v))) => {
                Some(Cursor { sort: sort.render(), value: cursor_value(sort.field, v), ts, pos }.encode())
            }
            _ => None,
        };
        Ok(Page { events, next_cursor })
    }

    async fn stream(&self, q: ListQuery, chunk: usize) -> Result<StreamRx, StoreError> {
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let c = self.client().await?;
        tokio::spawn(async move {
            let run = async {
                let sql = where_clause(&c, &q.scope, &q.filter, q.now, false).await?;
                let (text, sql) = list_sql(sql, &ListQuery { cursor: None, ..q.clone() }, None)?;
                let rows = c.query_raw(&text, sql.refs()).await.map_err(pg)?;
                let mut rows = std::pin::pin!(rows);
                let mut out = Vec::with_capacity(chunk);
                use futures::StreamExt;
                while let Some(r) = rows.next().await {
                    out.push(r.map_err(pg)?.get::<_, Vec<u8>>(3));
                    if out.len() == chunk.max(1) && tx.send(Ok(std::mem::take(&mut out))).await.is_err() {
                        return Ok(());
                    }
                }
                if !out.is_empty() {
                    let _ = tx.send(Ok(out)).await;
                }
                Ok::<(), StoreError>(())
            };
            if let Err(e) = run.await {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(rx)
    }

    async fn count(&self, scope: Scope, filter: Filter, now: Timestamp) -> Result<u64, StoreError> {
        let c = self.client().await?;
        let sql = where_clause(&c, &scope, &filter, now, false).await?;
        let text = format!("SELECT COUNT(*) FROM events e WHERE {}", sql.where_sql());
        Ok(c.query_one(&text, &sql.refs()).await.map_err(pg)?.get::<_, i64>(0) as u64)
    }

    async fn get(&self, scope: Scope, id: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT e.leaf, o.slug, e.category FROM events e JOIN orgs o ON o.id = e.org_id WHERE e.id = $1",
                &[&id],
            )
            .await
            .map_err(pg)?;
        Ok(row.and_then(|r| {
            let (org, cat): (String, String) = (r.get(1), r.get(2));
            scope.allows(&org, &cat).then(|| r.get(0))
        }))
    }

    async fn scan(&self, org: &str, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let c = self.client().await?;
        let id = org_id(&c, org).await?;
        let rows = c
            .query(
                "SELECT seq, leaf FROM events WHERE org_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3",
                &[&id, &(from as i64), &(limit.min(i64::MAX as usize) as i64)],
            )
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(|r| (r.get::<_, i64>(0) as u64, r.get(1))).collect())
    }

    async fn facets(&self, scope: Scope, filter: Filter, now: Timestamp) -> Result<Facets, StoreError> {
        let c = self.client().await?;
        let sql = where_clause(&c, &scope, &filter, now, true).await?;
        let w = sql.where_sql();
        let q = |select: &str, group: &str, limit: usize| {
            format!(
                "SELECT {select}, COUNT(*) AS n FROM events e WHERE {w} GROUP BY {group} ORDER BY n DESC LIMIT {limit}"
            )
        };
        let refs = sql.refs();
        let categories: Vec<Count> = c
            .query(&q("e.category, NULL::TEXT", "e.category", 200), &refs)
            .await
            .map_err(pg)?
            .iter()
            .map(|r| Count { value: r.get(0), label: None, count: r.get::<_, i64>(2) as u64 })
            .collect();
        let results = c
            .query(&q("e.result::TEXT, NULL::TEXT", "e.result", 4), &refs)
            .await
            .map_err(pg)?
            .iter()
            .map(|r| {
                let code: i64 = r.get::<_, String>(0).parse().unwrap_or(0);
                let o = trail_core::Outcome::ALL[code.clamp(0, 3) as usize];
                Count { value: o.as_str().into(), label: None, count: r.get::<_, i64>(2) as u64 }
            })
            .collect();
        let users = c
            .query(&q("e.actor_email, MAX(e.actor_name)", "e.actor_email", 200), &refs)
            .await
            .map_err(pg)?
            .iter()
            .filter_map(|r| {
                Some(Count { value: r.get::<_, Option<String>>(0)?, label: r.get(1), count: r.get::<_, i64>(2) as u64 })
            })
            .collect();
        let companies = c
            .query(
                &format!(
                    "SELECT o.slug, o.name, COUNT(*) AS n FROM events e JOIN orgs o ON o.id = e.org_id WHERE {w} \
                     GROUP BY o.slug, o.name ORDER BY n DESC LIMIT 1000"
                ),
                &refs,
            )
            .await
            .map_err(pg)?
            .iter()
            .map(|r| Count { value: r.get(0), label: r.get(1), count: r.get::<_, i64>(2) as u64 })
            .collect();
        let total = categories.iter().map(|c| c.count).sum();
        Ok(Facets { total, categories, results, users, companies })
    }

    async fn ensure_org(&self, org: Org) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO orgs (slug, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (slug) DO NOTHING",
            &[&org.slug, &org.name, &now_us()],
        )
        .await
        .map_err(pg)?;
        Ok(())
    }

    async fn orgs(&self) -> Result<Vec<Org>, StoreError> {
        let c = self.client().await?;
        let rows = c.query("SELECT slug, name FROM orgs ORDER BY slug", &[]).await.map_err(pg)?;
        Ok(rows.iter().map(|r| Org { slug: r.get(0), name: r.get(1) }).collect())
    }

    async fn create_key(&self, key: NewKey) -> Result<i64, StoreError> {
        let c = self.client().await?;
        let org = org_id(&c, &key.org).await?;
        let r = c
            .query_one(
                "INSERT INTO api_keys (org_id, scope, hash, prefix, created_at, user_id, label) VALUES ($1, $2, $3, \
                 $4, $5, $6, $7) RETURNING id",
                &[&org, &key.scope.as_str(), &&key.hash[..], &key.prefix, &now_us(), &key.user_id, &key.label],
            )
            .await
            .map_err(pg)?;
        Ok(r.get(0))
    }

    async fn find_key(&self, hash: [u8; 32]) -> Result<Option<ApiKey>, StoreError> {
        let c = self.client().await?;
        let r = c.query_opt(&format!("{KEY_SELECT} WHERE k.hash = $1"), &[&&hash[..]]).await.map_err(pg)?;
        Ok(r.as_ref().and_then(key_row))
    }

    async fn list_keys(&self, org: Option<&str>) -> Result<Vec<ApiKey>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(&format!("{KEY_SELECT} WHERE ($1::TEXT IS NULL OR o.slug = $1) ORDER BY k.id"), &[&org])
            .await
            .map_err(pg)?;
        Ok(rows.iter().filter_map(key_row).collect())
    }

    async fn revoke_key(&self, org: Option<&str>, id: i64) -> Result<bool, StoreError> {
        let c = self.client().await?;
        let n = c
            .execute(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $3) WHERE id = $1 AND ($2::TEXT IS NULL OR \
                 org_id = (SELECT id FROM orgs WHERE slug = $2))",
                &[&id, &org, &now_us()],
            )
            .await
            .map_err(pg)?;
        Ok(n > 0)
    }

    async fn create_user(&self, u: NewUser) -> Result<User, StoreError> {
        let c = self.client().await?;
        let org = org_id(&c, &u.org).await?;
        let taken = c.query_opt("SELECT 1 FROM users WHERE lower(email) = lower($1)", &[&u.email]).await.map_err(pg)?;
        if taken.is_some() {
            return Err(StoreError::Invalid { field: "email".into(), message: "a user with this email exists".into() });
        }
        let r = c
            .query_one(
                "INSERT INTO users (org_id, email, name, role, password, must_change, created_at) VALUES ($1, $2, $3, \
                 $4, $5, $6, $7) RETURNING id",
                &[&org, &u.email, &u.name, &u.role, &u.password_hash, &u.must_change, &now_us()],
            )
            .await
            .map_err(|e| {
                if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
                    StoreError::Invalid { field: "email".into(), message: "a user with this email exists".into() }
                } else {
                    pg(e)
                }
            })?;
        let id: i64 = r.get(0);
        self.user(id).await?.ok_or_else(|| StoreError::Corrupt("user vanished".into()))
    }

    async fn user(&self, id: i64) -> Result<Option<User>, StoreError> {
        let c = self.client().await?;
        Ok(c.query_opt(&format!("{USER_SELECT} WHERE u.id = $1"), &[&id]).await.map_err(pg)?.as_ref().map(user_row))
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let c = self.client().await?;
        let r = c.query_opt(&format!("{USER_SELECT} WHERE lower(u.email) = lower($1)"), &[&email]).await.map_err(pg)?;
        Ok(r.as_ref().map(user_row))
    }

    async fn list_users(&self, org: Option<&str>) -> Result<Vec<User>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(&format!("{USER_SELECT} WHERE ($1::TEXT IS NULL OR o.slug = $1) ORDER BY u.email"), &[&org])
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(user_row).collect())
    }

    async fn update_user(&self, id: i64, ch: UserChange) -> Result<Option<User>, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        if let Some(role) = &ch.role {
            tx.execute("UPDATE users SET role = $2 WHERE id = $1", &[&id, role]).await.map_err(pg)?;
        }
        if let Some(d) = ch.disabled {
            tx.execute("UPDATE users SET disabled = $2 WHERE id = $1", &[&id, &d]).await.map_err(pg)?;
            if d {
                tx.execute("DELETE FROM sessions WHERE user_id = $1", &[&id]).await.map_err(pg)?;
            }
        }
        if let Some(n) = &ch.name {
            tx.execute("UPDATE users SET name = $2 WHERE id = $1", &[&id, n]).await.map_err(pg)?;
        }
        if let Some((hash, must)) = &ch.password {
            tx.execute("UPDATE users SET password = $2, must_change = $3 WHERE id = $1", &[&id, hash, must])
                .await
                .map_err(pg)?;
            let keep = ch.keep_session.map(|h| h.to_vec());
            tx.execute("DELETE FROM sessions WHERE user_id = $1 AND ($2::bytea IS NULL OR hash <> $2)", &[&id, &keep])
                .await
                .map_err(pg)?;
        }
        let r = tx.query_opt(&format!("{USER_SELECT} WHERE u.id = $1"), &[&id]).await.map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(r.as_ref().map(user_row))
    }

    async fn create_session(&self, s: Session) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute("DELETE FROM sessions WHERE expires_at < $1", &[&s.created_at]).await.map_err(pg)?;
        c.execute(
            "INSERT INTO sessions (hash, user_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
            &[&&s.hash[..], &s.user_id, &s.csrf, &s.created_at, &s.expires_at],
        )
        .await
        .map_err(pg)?;
        Ok(())
    }

    async fn find_session(&self, hash: [u8; 32], now: i64) -> Result<Option<Session>, StoreError> {
        let c = self.client().await?;
        let r = c
            .query_opt(
                "SELECT user_id, csrf, created_at, expires_at FROM sessions WHERE hash = $1 AND expires_at > $2",
                &[&&hash[..], &now],
            )
            .await
            .map_err(pg)?;
        Ok(r.map(|r| Session { hash, user_id: r.get(0), csrf: r.get(1), created_at: r.get(2), expires_at: r.get(3) }))
    }

    async fn delete_sessions(&self, hash: [u8; 32], all_of_user: bool) -> Result<(), StoreError> {
        let c = self.client().await?;
        let sql = if all_of_user {
            "DELETE FROM sessions WHERE user_id = (SELECT user_id FROM sessions WHERE hash = $1)"
        } else {
            "DELETE FROM sessions WHERE hash = $1"
        };
        c.execute(sql, &[&&hash[..]]).await.map_err(pg)?;
        Ok(())
    }

    async fn login_attempt(&self, keys: Vec<ThrottleKey>, now: i64) -> Result<Option<u64>, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        // Rows exist and are locked in key order, so that two servers counting the
        // same keys wait for each other rather than deadlock or both read the old count.
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by(|&a, &b| keys[a].key.cmp(&keys[b].key));
        let mut counts = vec![throttle::Count::default(); keys.len()];
        for i in order {
            let k = &keys[i].key;
            tx.execute("INSERT INTO login_throttle (key) VALUES ($1) ON CONFLICT DO NOTHING", &[k])
                .await
                .map_err(pg)?;
            let r = tx
                .query_one("SELECT attempts, last, locked_until FROM login_throttle WHERE key = $1 FOR UPDATE", &[k])
                .await
                .map_err(pg)?;
            counts[i] = throttle::Count { attempts: r.get::<_, i32>(0) as u32, last: r.get(1), locked_until: r.get(2) };
        }
        let new = match throttle::attempt(&keys, &counts, now) {
            Ok(new) => new,
            Err(wait) => return Ok(Some(wait)),
        };
        for (k, n) in keys.iter().zip(new) {
            tx.execute(
                "UPDATE login_throttle SET attempts = $2, last = $3, locked_until = $4 WHERE key = $1",
                &[&k.key, &(n.attempts as i32), &n.last, &n.locked_until],
            )
            .await
            .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)?;
        // Counts past their window go; rows another server holds are left for later.
        c.execute(
            "DELETE FROM login_throttle WHERE key IN (SELECT key FROM login_throttle \
             WHERE last < $1 AND locked_until <= $2 FOR UPDATE SKIP LOCKED)",
            &[&(now - throttle::WINDOW), &now],
        )
        .await
        .map_err(pg)?;
        Ok(None)
    }

    async fn login_succeeded(&self, keys: Vec<ThrottleKey>) -> Result<(), StoreError> {
        let c = self.client().await?;
        for k in keys {
            if k.forget_on_success {
                c.execute("DELETE FROM login_throttle WHERE key = $1", &[&k.key]).await.map_err(pg)?;
            } else {
                // Taking one attempt back; the lock it may have set is lifted with it.
                c.execute(
                    "UPDATE login_throttle SET attempts = GREATEST(attempts - 1, 0), \
                     locked_until = CASE WHEN attempts = $2 THEN 0 ELSE locked_until END WHERE key = $1",
                    &[&k.key, &(k.limit as i32)],
                )
                .await
                .map_err(pg)?;
            }
        }
        Ok(())
    }

    async fn stored_entries(&self, org: &str, from: u64, to: u64) -> Result<Vec<StoredEntry>, StoreError> {
        self.audit_entries(org, from, to).await
    }

    async fn tree_nodes(&self, org: &str, level: u32, from: u64, to: u64) -> Result<Vec<(u64, Hash)>, StoreError> {
        self.audit_nodes(org, level, from, to).await
    }

    async fn log_end(&self, org: &str) -> Result<u64, StoreError> {
        self.audit_end(org).await
    }

    async fn put_role(&self, role: Role) -> Result<(), StoreError> {
        let c = self.client().await?;
        let org = org_id(&c, &role.org).await?;
        c.execute(
            "INSERT INTO roles (org_id, name, view, export) VALUES ($1, $2, $3, $4) ON CONFLICT (org_id, name) DO \
             UPDATE SET view = excluded.view, export = excluded.export",
            &[&org, &role.name, &role.view.render(), &role.export.render()],
        )
        .await
        .map_err(pg)?;
        Ok(())
    }

    async fn roles(&self, org: &str) -> Result<Vec<Role>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT o.slug, r.name, r.view, r.export FROM roles r JOIN orgs o ON o.id = r.org_id WHERE o.slug = \
                 $1 ORDER BY r.name",
                &[&org],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| {
                let parse = |s: &str| Categories::parse(s).map_err(StoreError::Corrupt);
                Ok(Role { org: r.get(0), name: r.get(1), view: parse(r.get(2))?, export: parse(r.get(3))? })
            })
            .collect()
    }

    async fn delete_role(&self, org: &str, name: &str) -> Result<bool, StoreError> {
        let c = self.client().await?;
        let id = org_id(&c, org).await?;
        Ok(c.execute("DELETE FROM roles WHERE org_id = $1 AND name = $2", &[&id, &name]).await.map_err(pg)? > 0)
    }

    async fn create_schedule(&self, s: Schedule) -> Result<Schedule, StoreError> {
        let c = self.client().await?;
        let org = org_id(&c, &s.org).await?;
        let recipients = serde_json::to_string(&s.recipients).unwrap_or_else(|_| "[]".into());
        let r = c
            .query_one(
                "INSERT INTO schedules (org_id, name, weekday, at_minute, query, format, recipients, directory, \
                 created_by, next_run) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                &[
                    &org,
                    &s.name,
                    &s.weekday.map(i16::from),
                    &i32::from(s.at_minute),
                    &s.query,
                    &s.format,
                    &recipients,
                    &s.directory,
                    &s.created_by,
                    &s.next_run,
                ],
            )
            .await
            .map_err(pg)?;
        let id: i64 = r.get(0);
        let r = c.query_one(&format!("{SCHEDULE_SELECT} WHERE s.id = $1"), &[&id]).await.map_err(pg)?;
        Ok(schedule_row(&r))
    }

    async fn schedules(&self, org: Option<&str>) -> Result<Vec<Schedule>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(&format!("{SCHEDULE_SELECT} WHERE ($1::TEXT IS NULL OR o.slug = $1) ORDER BY s.id"), &[&org])
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(schedule_row).collect())
    }

    async fn delete_schedule(&self, org: Option<&str>, id: i64) -> Result<bool, StoreError> {
        let c = self.client().await?;
        let n = c
            .execute(
                "DELETE FROM schedules WHERE id = $1 AND ($2::TEXT IS NULL OR org_id = (SELECT id FROM orgs WHERE \
                 slug = $2))",
                &[&id, &org],
            )
            .await
            .map_err(pg)?;
        Ok(n > 0)
    }

    async fn schedule_ran(&self, id: i64, ran_at: i64, next_run: i64) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute("UPDATE schedules SET last_run = $2, next_run = $3 WHERE id = $1", &[&id, &ran_at, &next_run])
            .await
            .map_err(pg)?;
        Ok(())
    }

    async fn is_empty(&self) -> Result<bool, StoreError> {
        let c = self.client().await?;
        Ok(c.query_opt("SELECT 1 FROM events LIMIT 1", &[]).await.map_err(pg)?.is_none())
    }

    async fn checkpoint(&self, org: &str, size: Option<u64>) -> Result<Option<SignedCheckpoint>, StoreError> {
        let c = self.client().await?;
        let id = org_id(&c, org).await?;
        let r = c
            .query_opt(
                "SELECT size, root, note FROM checkpoints WHERE org_id = $1 AND ($2::BIGINT IS NULL OR size = $2) \
                 ORDER BY size DESC LIMIT 1",
                &[&id, &size.map(|s| s as i64)],
            )
            .await
            .map_err(pg)?;
        r.map(|r| Ok(SignedCheckpoint { size: r.get::<_, i64>(0) as u64, root: to_hash(r.get(1))?, note: r.get(2) }))
            .transpose()
    }

    async fn checkpoints(&self, org: &str) -> Result<Vec<SignedCheckpoint>, StoreError> {
        let c = self.client().await?;
        let id = org_id(&c, org).await?;
        let rows = c
            .query("SELECT size, root, note FROM checkpoints WHERE org_id = $1 ORDER BY size", &[&id])
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| Ok(SignedCheckpoint { size: r.get::<_, i64>(0) as u64, root: to_hash(r.get(1))?, note: r.get(2) }))
            .collect()
    }

    async fn inclusion_proof(&self, org: &str, index: u64, size: u64) -> Result<Vec<Hash>, StoreError> {
        let have = self.log_size(org).await?;
        if size > have {
            return Err(StoreError::Invalid {
                field: "size".into(),
                message: format!("the log has only {have} entries"),
            });
        }
        if index >= size {
            return Err(StoreError::Invalid { field: "index".into(), message: format!("must be below size {size}") });
        }
        self.proof(org, |r| merkle::inclusion_proof(r, index, size)).await
    }

    async fn consistency_proof(&self, org: &str, from: u64, to: u64) -> Result<Vec<Hash>, StoreError> {
        let have = self.log_size(org).await?;
        if to > have {
            return Err(StoreError::Invalid {
                field: "to".into(),
                message: format!("the log has only {have} entries"),
            });
        }
        if from > to {
            return Err(StoreError::Invalid { field: "from".into(), message: format!("must not exceed to ({to})") });
        }
        self.proof(org, |r| merkle::consistency_proof(r, from, to)).await
    }
}

/// What `import_sqlite` copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    /// Per organization: entries copied and checkpoints whose roots matched.
    pub logs: Vec<(String, u64, u64)>,
    pub users: usize,
    pub keys: usize,
}

impl PgStore {
    /// Copies a whole embedded store into this database, which must hold no events
    /// and no users: organizations, every entry's exact bytes (so ids, seqs and leaf
    /// hashes are unchanged), the Merkle nodes (recomputed) and the signed checkpoints,
    /// whose roots must equal the recomputed ones; users, roles, API keys and
    /// scheduled exports. Sessions are not copied (users log in again). Entries that
    /// retention archived are read from `archive` (their leaf hashes; the files stay
    /// where they are and are recorded here).
    pub async fn import_sqlite(
        &self,
        path: &std::path::Path,
        archive: Option<&crate::archive::Archive>,
    ) -> Result<Imported, StoreError> {
        if !self.is_empty().await? || !self.list_users(None).await?.is_empty() {
            return Err(StoreError::Invalid {
                field: "to".into(),
                message: "the PostgreSQL database already holds events or users; migrate into an empty one".into(),
            });
        }
        let src = crate::sqlite::SqliteStore::open(path, crate::sqlite::SqliteConfig::default())?;
        let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let mut out = Imported::default();
        for org in src.orgs().await? {
            self.ensure_org(org).await?;
        }
        // Users (ids change; keys and sessions refer to them by the new ids).
        let mut user_ids = std::collections::HashMap::new();
        for u in src.list_users(None).await? {
            let new = self
                .create_user(NewUser {
                    org: u.org.clone(),
                    email: u.email.clone(),
                    name: u.name.clone(),
                    role: u.role.clone(),
                    password_hash: u.password_hash.clone(),
                    must_change: u.must_change,
                })
                .await?;
            if u.disabled {
                self.update_user(new.id, UserChange { disabled: Some(true), ..UserChange::default() }).await?;
            }
            user_ids.insert(u.id, new.id);
            out.users += 1;
        }
        for org in src.orgs().await? {
            for r in src.roles(&org.slug).await? {
                self.put_role(r).await?;
            }
            for s in src.schedules(Some(&org.slug)).await? {
                self.create_schedule(s).await?;
            }
        }
        type KeyRow = (String, String, Vec<u8>, String, Option<i64>, Option<i64>, String);
        let keys: Vec<KeyRow> = {
            let mut stmt = conn.prepare(
                "SELECT o.slug, k.scope, k.hash, k.prefix, k.revoked_at, k.user_id, k.label FROM api_keys k \
                 JOIN orgs o ON o.id = k.org_id ORDER BY k.id",
            )?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        for (org, scope, hash, prefix, revoked, user, label) in keys {
            let Some(scope) = KeyScope::parse(&scope) else { continue };
            let hash: [u8; 32] = hash.as_slice().try_into().map_err(|_| StoreError::Corrupt("key hash".into()))?;
            let user_id = user.and_then(|u| user_ids.get(&u).copied());
            let id = self.create_key(NewKey { org: org.clone(), scope, hash, prefix, user_id, label }).await?;
            if revoked.is_some() {
                self.revoke_key(None, id).await?;
            }
            out.keys += 1;
        }
        // The logs, entry by entry, and their checkpoints.
        type CpRow = (String, i64, Vec<u8>, String, i64);
        let checkpoints: Vec<CpRow> = {
            let mut stmt = conn.prepare(
                "SELECT o.slug, c.size, c.root, c.note, c.created_at FROM checkpoints c JOIN orgs o ON o.id = c.org_id \
                 ORDER BY o.slug, c.size",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        for org in src.orgs().await? {
            let cps: Vec<&CpRow> = checkpoints.iter().filter(|c| c.0 == org.slug).collect();
            let mut c = self.client().await?;
            let org_id = org_id(&c, &org.slug).await?;
            let mut tree = Frontier::default();
            let mut matched = 0u64;
            let mut next = 0u64;
            // Archived entries: leaf hashes from the archive files, records copied.
            let files = src.archives(Some(&org.slug)).await?;
            let mut archived = std::collections::BTreeMap::new();
            if !files.is_empty() {
                let a = archive.ok_or_else(|| StoreError::Invalid {
                    field: "archive".into(),
                    message: format!("{} has archived entries: name the archive directory", org.slug),
                })?;
                for f in &files {
                    for leaf in a.read(f)? {
                        let e = Event::from_leaf(&leaf).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                        archived.insert(e.seq, leaf_hash(&leaf));
                    }
                    let manifest = serde_json::to_string(f).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    c.execute(
                        "INSERT INTO archives (path, org_id, day, manifest) VALUES ($1, $2, $3, $4)",
                        &[&f.path, &org_id, &f.day, &manifest],
                    )
                    .await
                    .map_err(pg)?;
                }
            }
            let mut done = false;
            while !done {
                let chunk = src.scan(&org.slug, next, 2000).await?;
                done = chunk.is_empty();
                let events: Vec<(Event, Vec<u8>)> = chunk
                    .into_iter()
                    .map(|(_, leaf)| Event::from_leaf(&leaf).map(|e| (e, leaf)))
                    .collect::<Result<_, _>>()
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let mut months = std::collections::BTreeMap::new();
                for (e, _) in &events {
                    let (lo, hi, name) = month_bounds(e.timestamp.0);
                    months.insert(name, (lo, hi));
                }
                for (name, (lo, hi)) in months {
                    let sql = format!(
                        "CREATE TABLE IF NOT EXISTS {name} PARTITION OF events FOR VALUES FROM ({lo}) TO ({hi})"
                    );
                    c.batch_execute(&sql).await.map_err(pg)?;
                }
                // The entries in log order: archived ones (a hash) between stored ones.
                let mut entries: Vec<(Option<&Stored>, Hash)> = Vec::new();
                let mut at = next;
                for ev in &events {
                    while let Some(h) = archived.remove(&at) {
                        entries.push((None, h));
                        at += 1;
                    }
                    entries.push((Some(ev), leaf_hash(&ev.1)));
                    at += 1;
                }
                if done {
                    while let Some(h) = archived.remove(&at) {
                        entries.push((None, h));
                        at += 1;
                    }
                }
                let tx = c.transaction().await.map_err(pg)?;
                for (stored, hash) in entries {
                    if let Some((e, leaf)) = stored {
                        if e.seq != next || e.org != org.slug {
                            return Err(StoreError::Corrupt(format!("entry {next} of {} is out of place", org.slug)));
                        }
                        insert_events(&tx, org_id, &[(&PgRow::new(e), e.seq, leaf)]).await?;
                        if let Some(k) = &e.idempotency_key {
                            tx.execute(
                                "INSERT INTO idempotency (org_id, key, id, seq) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                                &[&org_id, k, &e.id, &(e.seq as i64)],
                            )
                            .await
                            .map_err(pg)?;
                        }
                    }
                    insert_nodes(&tx, org_id, &tree.push(hash)).await?;
                    next += 1;
                    for cp in cps.iter().filter(|cp| cp.1 as u64 == next) {
                        if cp.2.as_slice() != tree.root() {
                            return Err(StoreError::Corrupt(format!(
                                "{}: the checkpoint of size {next} does not match the copied entries",
                                org.slug
                            )));
                        }
                        tx.execute(
                            "INSERT INTO checkpoints (org_id, size, root, note, created_at) VALUES ($1, $2, $3, $4, $5)",
                            &[&org_id, &cp.1, &cp.2, &cp.3, &cp.4],
                        )
                        .await
                        .map_err(pg)?;
                        matched += 1;
                    }
                }
                tx.execute(
                    "INSERT INTO logs (org_id, size) VALUES ($1, $2) ON CONFLICT (org_id) DO UPDATE SET size = $2",
                    &[&org_id, &(next as i64)],
                )
                .await
                .map_err(pg)?;
                tx.commit().await.map_err(pg)?;
            }
            if !archived.is_empty() {
                return Err(StoreError::Corrupt(format!("{}: archived entries lie beyond the log", org.slug)));
            }
            if cps.iter().any(|cp| cp.1 as u64 > next) {
                return Err(StoreError::Corrupt(format!(
                    "{}: a checkpoint covers more entries than are stored",
                    org.slug
                )));
            }
            out.logs.push((org.slug.clone(), next, matched));
        }
        src.close();
        Ok(out)
    }
}

/// A stored entry being copied: the event and its exact bytes.
type Stored = (Event, Vec<u8>);

/// A throwaway PostgreSQL cluster for tests: `initdb` in a temporary directory (as
/// the `postgres` user when running as root), a server on a free loopback port, and a
/// watchdog that stops it and removes the directory once the test process is gone.
pub mod testing {
    use std::{
        path::PathBuf,
        process::{Command, Stdio},
        sync::OnceLock,
    };

    pub struct Cluster {
        pub port: u16,
        bin: PathBuf,
        dir: PathBuf,
    }

    fn as_postgres(cmd: &str) -> Command {
        let root = std::env::var("USER").map(|u| u == "root").unwrap_or(false) || is_root();
        if root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "sh", "-c", cmd]);
            c
        } else {
            let mut c = Command::new("sh");
            c.args(["-c", cmd]);
            c
        }
    }

    fn is_root() -> bool {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
            .unwrap_or(false)
    }

    impl Cluster {
        /// The cluster of this test process, started on first use.
        pub fn shared() -> &'static Cluster {
            static CLUSTER: OnceLock<Cluster> = OnceLock::new();
            CLUSTER.get_or_init(|| Cluster::start().expect("cannot start a PostgreSQL cluster for the tests"))
        }

        /// Stops the server (as if the database went away).
        pub fn stop(&self) {
            let _ = as_postgres(&format!(
                "{}/pg_ctl -D {}/data -m fast -w stop >/dev/null",
                self.bin.display(),
                self.dir.display()
            ))
            .status();
        }

        /// Starts it again after `stop`.
        pub fn restart(&self) {
            let _ = as_postgres(&format!(
                "{b}/pg_ctl -D {d}/data -w -l {d}/server.log -o \"-p {p} -k {d} -c listen_addresses=127.0.0.1 -c max_connections=200\" start >/dev/null",
                b = self.bin.display(),
                d = self.dir.display(),
                p = self.port
            ))
            .status();
        }

        /// A cluster of its own (for tests that stop it).
        pub fn start() -> Result<Cluster, String> {
            let bin =
                PathBuf::from(std::env::var("TRAIL_PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into()));
            if !bin.join("initdb").exists() {
                return Err(format!("{} has no initdb: install PostgreSQL 15 or set TRAIL_PG_BIN", bin.display()));
            }
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| e.to_string())?
                .port();
            let dir = std::env::temp_dir().join(format!("trail-pg-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            if is_root() {
                let ok = Command::new("chown").arg("postgres").arg(&dir).status().map_err(|e| e.to_string())?;
                if !ok.success() {
                    return Err("chown postgres failed".into());
                }
            }
            let d = dir.display();
            let b = bin.display();
            let init = as_postgres(&format!(
                "{b}/initdb -D {d}/data -A trust -U postgres --no-sync -E UTF8 >{d}/initdb.log 2>&1"
            ))
            .status()
            .map_err(|e| e.to_string())?;
            if !init.success() {
                return Err(format!("initdb failed; see {d}/initdb.log"));
            }
            // Extra server settings (`-c name=value ...`), e.g. for the benchmark's tuned run.
            let extra = std::env::var("TRAIL_PG_SETTINGS").unwrap_or_default();
            if extra.contains(['"', '\\', '$', '`']) {
                return Err("TRAIL_PG_SETTINGS may not hold quotes, backslashes, $ or `".into());
            }
            let start = as_postgres(&format!(
                "{b}/pg_ctl -D {d}/data -w -l {d}/server.log -o \"-p {port} -k {d} -c listen_addresses=127.0.0.1 \
                 -c max_connections=200 {extra}\" start >/dev/null"
            ))
            .status()
            .map_err(|e| e.to_string())?;
            if !start.success() {
                return Err(format!("pg_ctl start failed; see {d}/server.log"));
            }
            // Stop the server and remove its files once this process has ended.
            let pid = std::process::id();
            as_postgres(&format!(
                "while [ -d /proc/{pid} ]; do sleep 1; done; {b}/pg_ctl -D {d}/data -m immediate stop >/dev/null 2>&1; rm -rf {d}"
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
            Ok(Cluster { port, bin, dir })
        }

        /// Creates a new, empty database and returns its URL.
        pub fn database(&self) -> String {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let name = format!("t{}_{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
            let ok = Command::new(self.bin.join("createdb"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", &name])
                .status()
                .expect("createdb");
            assert!(ok.success(), "createdb {name} failed");
            format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    struct Guard;

    async fn fresh() -> (Arc<dyn Store>, Guard) {
        let url = testing::Cluster::shared().database();
        let store = PgStore::open(&url, None).await.unwrap();
        (Arc::new(store), Guard)
    }

    /// A loopback proxy to the test cluster that, once armed, cuts the connection
    /// carrying the next `COMMIT` before the server sees it.
    async fn commit_cutter(port: u16) -> (u16, Arc<std::sync::atomic::AtomicBool>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = listener.local_addr().unwrap().port();
        let trigger = armed.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let trigger = trigger.clone();
                let down = tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n @ 1..) = sr.read(&mut buf).await {
                        if cw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n @ 1..) = cr.read(&mut buf).await {
                        let commit = buf[..n].windows(6).any(|w| w == b"COMMIT");
                        if commit && trigger.swap(false, std::sync::atomic::Ordering::SeqCst) {
                            break;
                        }
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    // Both directions end: the client and the server see the connection go.
                    down.abort();
                });
            }
        });
        (at, armed)
    }

    /// The connection breaking during a commit answers "outcome unknown", and the
    /// retry with the same idempotency keys stores each event once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_commit_cut_off_is_reported_unknown_and_a_retry_stores_once() {
        let cluster = testing::Cluster::shared();
        let url = cluster.database();
        let (port, armed) = commit_cutter(cluster.port).await;
        let proxied = url.replace(&format!(":{}/", cluster.port), &format!(":{port}/"));
        let store = PgStore::open(&proxied, None).await.unwrap();
        crate::conformance::seed_org(&store, "acme").await;
        let batch = || AppendBatch {
            org: "acme".into(),
            received_at: crate::conformance::NOW,
            events: (0..3)
                .map(|i| {
                    let mut e = trail_core::event::parse_event(serde_json::json!({"action": "auth:login"})).unwrap();
                    e.idempotency_key = Some(format!("retry-{i}"));
                    (uuid::Uuid::now_v7(), e)
                })
                .collect(),
        };
        armed.store(true, std::sync::atomic::Ordering::SeqCst);
        let cut = store.append(batch()).await;
        assert!(matches!(cut, Err(StoreError::CommitUnknown(_))), "{cut:?}");
        // The pool replaces the broken connection; the retry lands once.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let acks = loop {
            match store.append(batch()).await {
                Ok(acks) => break acks,
                Err(e) => assert!(std::time::Instant::now() < deadline, "{e}"),
            }
        };
        assert_eq!(acks.iter().map(|a| a.seq).collect::<Vec<_>>(), [0, 1, 2]);
        let again = store.append(batch()).await.unwrap();
        assert!(again.iter().all(|a| a.duplicate), "{again:?}");
        assert_eq!(store.scan("acme", 0, 100).await.unwrap().len(), 3);
    }

    /// One holder of a named lock across processes (here: two stores, two sessions);
    /// dropping the guard releases it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn exclusive_locks_are_held_by_one_session() {
        let url = testing::Cluster::shared().database();
        let (a, b) = (PgStore::open(&url, None).await.unwrap(), PgStore::open(&url, None).await.unwrap());
        let held = a.exclusive("trail-retention").await.unwrap();
        assert!(held.is_some());
        assert!(b.exclusive("trail-retention").await.unwrap().is_none());
        assert!(b.exclusive("something-else").await.unwrap().is_some());
        drop(held);
        let mut again = None;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            again = b.exclusive("trail-retention").await.unwrap();
            if again.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(again.is_some(), "released when the guard is dropped");
    }

    /// `verify` checks every checkpoint, not only the newest: a validly signed but
    /// wrong older checkpoint (a fork) is found.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verification_checks_every_checkpoint() {
        let url = testing::Cluster::shared().database();
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let signer = Arc::new(LogSigner { name: "t".into(), key: key.clone() });
        let store = PgStore::open(&url, Some(signer.clone())).await.unwrap();
        crate::conformance::seed_org(&store, "acme").await;
        crate::conformance::append_n(&store, "acme", 5).await;
        let vkey = checkpoint::verifier_key(&signer.origin("acme"), &key.verifying_key());
        let opts = || crate::verify::VerifyOptions { vkey: &vkey, ..Default::default() };
        let ok = crate::verify::verify(&store, "acme", opts()).await.unwrap();
        assert!(ok.ok(), "{}", ok.problems());
        assert_eq!((ok.entries, ok.newest_checkpoint), (5, 5));
        assert_eq!(store.checkpoints("acme").await.unwrap().len(), 5);
        let forged = Checkpoint { origin: signer.origin("acme"), size: 2, root: [7; 32] };
        let note = checkpoint::sign(&forged, &key);
        let c = store.client().await.unwrap();
        c.execute("UPDATE checkpoints SET root = $1, note = $2 WHERE size = 2", &[&&[7u8; 32][..], &note])
            .await
            .unwrap();
        let err = crate::verify::verify(&store, "acme", opts()).await.unwrap().problems();
        assert!(err.contains("checkpoint of size 2: the recomputed root differs"), "{err}");
    }

    crate::conformance_tests!(fresh);

    #[tokio::test]
    async fn migrations_are_idempotent_and_newer_schemas_refused() {
        let url = testing::Cluster::shared().database();
        let a = PgStore::open(&url, None).await.unwrap();
        PgStore::open(&url, None).await.unwrap();
        let c = a.client().await.unwrap();
        c.execute("UPDATE schema_version SET version = 99", &[]).await.unwrap();
        assert!(matches!(PgStore::open(&url, None).await, Err(StoreError::SchemaTooNew { found: 99, .. })));
    }
}
