//! The PostgreSQL backend: several Trail processes on one database.
//!
//! Useful for: more than one `trail serve` behind a load balancer, a database that is
//! already backed up and replicated. Events are range-partitioned by month (partitions
//! are created as events arrive), with B-tree indexes for the filters and a `tsvector`
//! GIN index for `q`. Not useful for: one process on one machine with nothing to
//! install (the embedded SQLite store is simpler and faster there).
//!
//! Appends: each batch is one transaction that locks its organization's log head
//! (`SELECT … FOR UPDATE` on `logs`), so that seqs and the Merkle tree stay exact when
//! several processes append to one organization; it inserts the rows, the tree nodes
//! and a signed checkpoint, and commits (acknowledged = committed, `synchronous_commit`
//! on). The batches waiting in one process are written together in one such
//! transaction (group commit); their rows, leaves and search documents are made before
//! the lock is taken.
//!
//! Rooms, as in `sqlite`: `schema` (migrations, partitions), `writer` (group commit),
//! `listen` (appends of other processes), `index` (search documents), `query`, `rollup`
//! (per-day counts), `tree`,
//! `retention`, `accounts`, `audit` (what the verifier reads), `restore` (entries copied
//! in with their seqs).

use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use trail_core::merkle::Hash;
use uuid::Uuid;

use crate::{seal::Seal, signer::LogSigner, StoreError};

mod accounts;
mod alerts;
mod audit;
mod holds;
mod index;
mod installation;
mod listen;
mod query;
mod repair;
mod restore;
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

pub use index::doc_words;

use writer::{PgBatch, Reply};

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
    /// What the signer trusts, and the organizations it refuses to sign.
    seal: Seal,
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

/// A driver error as a typed store error (see `StoreError`'s `From`).
fn pg(e: tokio_postgres::Error) -> StoreError {
    e.into()
}

fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

async fn org_id(c: &impl deadpool_postgres::GenericClient, slug: &str) -> Result<i64, StoreError> {
    c.query_opt("SELECT id FROM orgs WHERE slug = $1", &[&slug])
        .await
        .map_err(pg)?
        .map(|r| r.get(0))
        .ok_or_else(|| StoreError::UnknownOrg(slug.to_string()))
}

/// A named enum read back from a text column.
fn named<T: crate::named::Named>(r: &tokio_postgres::Row, i: usize) -> Result<T, StoreError> {
    crate::named::read(r.try_get::<_, &str>(i).map_err(pg)?)
}

fn to_hash(b: &[u8]) -> Result<Hash, StoreError> {
    b.try_into().map_err(|_| StoreError::Corrupt("a stored hash is not 32 bytes".into()))
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

impl PgStore {
    /// Connects (`postgres://user:pass@host:port/db`), applies migrations and returns
    /// the store.
    /// Connects for reading only (`trail verify`): every transaction is read-only, no
    /// migration runs and nothing is signed or listened to. The schema must be this
    /// binary's.
    pub async fn open_read_only(url: &str) -> Result<PgStore, StoreError> {
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|e| StoreError::Invalid { field: "database".into(), message: format!("{e}") })?;
        config.options("-c default_transaction_read_only=on");
        let store = PgStore::connect(config, None)?;
        store.check_schema().await?;
        Ok(store)
    }

    pub async fn open(url: &str, signer: Option<Arc<LogSigner>>) -> Result<PgStore, StoreError> {
        let config: tokio_postgres::Config =
            url.parse().map_err(|e| StoreError::Invalid { field: "database".into(), message: format!("{e}") })?;
        let store = PgStore::connect(config, signer)?;
        let watch = Arc::downgrade(&store._alive);
        store.migrate().await?;
        store.establish_all().await?;
        tokio::spawn(listen::listen(url.to_string(), store.origin.clone(), store.elsewhere.clone(), watch));
        Ok(store)
    }

    /// The pool and the shared state, before anything is read.
    fn connect(config: tokio_postgres::Config, signer: Option<Arc<LogSigner>>) -> Result<PgStore, StoreError> {
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
        let store = Inner {
            pool,
            signer,
            seal: Seal::default(),
            partitions: Default::default(),
            origin: origin.clone(),
            elsewhere,
            _alive: alive,
            waiting: Default::default(),
            preparing: tokio::sync::Semaphore::new(crate::prepare::prepare_slots()),
            leader: Default::default(),
        };
        Ok(PgStore { inner: Arc::new(store) })
    }
}

impl Inner {
    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(pool_err)
    }
}
