//! Trail's storage: the `Store` trait every backend implements, the embedded SQLite
//! backend, and the conformance suite every backend must pass.
//!
//! Architecture invariants: only this crate knows SQL; events are never UPDATEd; an
//! append is acknowledged only after its transaction is durable.

mod accounts;
pub mod archive;
pub mod conformance;
mod error;
pub mod postgres;
pub mod sqlite;
#[cfg(test)]
mod tamper;
pub mod throttle;
pub mod verify;

use std::sync::Arc;

use async_trait::async_trait;
use trail_core::{merkle::Hash, Filter, NewEvent, Timestamp};
use uuid::Uuid;

pub use accounts::{Categories, NewUser, Role, Schedule, Session, User, UserChange, BUILTIN_ROLES};
pub use error::StoreError;

/// One client request's events, appended all-or-nothing.
#[derive(Debug, Clone)]
pub struct AppendBatch {
    /// Slug of the organization whose log receives the events (from the API key).
    pub org: String,
    /// When the server received the request; also the timestamp of events sent
    /// without one.
    pub received_at: Timestamp,
    /// Validated events with the ids the server gave them, in input order.
    pub events: Vec<(Uuid, NewEvent)>,
}

/// Batches with more events than this are prepared on a blocking thread rather than on
/// the caller's async worker.
const INLINE_PREPARE: usize = 32;

/// How many batches may be prepared at once: one core fewer than the machine has, so
/// a backend's writer, which every append waits for, keeps a core of its own.
pub(crate) fn prepare_slots() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

/// Makes each event of a batch ready for a backend's writer with `prepare`, before it
/// queues: small batches on the caller's task, bigger ones on a blocking thread once
/// `slots` has room. Returns the organization and the prepared events.
pub(crate) async fn prepare_batch<T: Send + 'static>(
    batch: AppendBatch,
    slots: &tokio::sync::Semaphore,
    prepare: fn(&str, Uuid, NewEvent, Timestamp) -> T,
) -> Result<(String, Vec<T>), StoreError> {
    let small = batch.events.len() <= INLINE_PREPARE;
    let run = move || {
        let events =
            batch.events.into_iter().map(|(id, new)| prepare(&batch.org, id, new, batch.received_at)).collect();
        (batch.org, events)
    };
    if small {
        return Ok(run());
    }
    let _slot = slots.acquire().await.map_err(|_| StoreError::Closed)?;
    tokio::task::spawn_blocking(run).await.map_err(|_| StoreError::Closed)
}

/// An event's leaf bytes made before its seq is known (outside a backend's writer):
/// the bytes before and after the seq number.
pub(crate) struct LeafTemplate {
    /// The leaf bytes up to and including `"seq":`.
    head: Vec<u8>,
    /// The leaf bytes after the seq number.
    tail: Vec<u8>,
}

/// Seq written into the leaf while preparing, then cut out; this text appears nowhere
/// before it since only id and org (a slug) precede `seq`.
const SEQ_MARK: &[u8] = b"\"seq\":18446744073709551615";

impl LeafTemplate {
    /// The stored event (with seq `u64::MAX`) and its leaf template.
    pub(crate) fn new(org: &str, id: Uuid, new: NewEvent, received_at: Timestamp) -> (trail_core::Event, LeafTemplate) {
        let ev = trail_core::Event::from_new(new, id, org, u64::MAX, received_at);
        let leaf = ev.to_leaf();
        let at = leaf.windows(SEQ_MARK.len()).position(|w| w == SEQ_MARK).unwrap_or(0);
        let digits = at + SEQ_MARK.len() - "18446744073709551615".len();
        let template = LeafTemplate { head: leaf[..digits].to_vec(), tail: leaf[at + SEQ_MARK.len()..].to_vec() };
        (ev, template)
    }

    /// The leaf bytes for a given seq.
    pub(crate) fn leaf(&self, seq: u64) -> Vec<u8> {
        let digits = seq.to_string();
        let mut leaf = Vec::with_capacity(self.head.len() + digits.len() + self.tail.len());
        leaf.extend_from_slice(&self.head);
        leaf.extend_from_slice(digits.as_bytes());
        leaf.extend_from_slice(&self.tail);
        leaf
    }
}

/// The acknowledgement of one appended event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub id: Uuid,
    pub seq: u64,
    /// The event's idempotency key was seen before: this is the earlier event.
    pub duplicate: bool,
}

/// What a caller may read: which organizations, and within them which categories.
/// Events outside the scope are absent from every result, count and search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// One organization (by slug), or `None` for every organization (platform callers).
    pub org: Option<String>,
    pub categories: Categories,
}

impl Scope {
    /// Every event of every organization.
    pub fn all() -> Scope {
        Scope { org: None, categories: Categories::All }
    }

    /// Every event of one organization.
    pub fn org(slug: impl Into<String>) -> Scope {
        Scope { org: Some(slug.into()), categories: Categories::All }
    }

    pub fn with_categories(self, categories: Categories) -> Scope {
        Scope { categories, ..self }
    }

    /// Whether an event of `org` and `category` is within the scope.
    pub fn allows(&self, org: &str, category: &str) -> bool {
        self.org.as_deref().is_none_or(|o| o == org) && self.categories.allows(category)
    }
}

/// A page request for the list.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub scope: Scope,
    pub filter: Filter,
    /// The current time, against which period presets resolve.
    pub now: Timestamp,
    /// Encoded cursor from a previous page, if any.
    pub cursor: Option<String>,
    pub limit: usize,
}

/// One page of events, newest (or first in sort order) first.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The events' exact stored JSON bytes.
    pub events: Vec<Vec<u8>>,
    pub next_cursor: Option<String>,
}

/// A value with how many events carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    pub value: String,
    /// A human label where the value is an id (the user's name for an email).
    pub label: Option<String>,
    pub count: u64,
}

/// Distinct values of the main columns, for the filter panel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facets {
    pub total: u64,
    pub categories: Vec<Count>,
    pub results: Vec<Count>,
    pub users: Vec<Count>,
    pub companies: Vec<Count>,
}

/// An organization (tenant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    pub slug: String,
    pub name: String,
}

/// What an API key may do; see the design contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyScope {
    Ingest,
    Read,
    Admin,
    Platform,
    /// A user's personal token: acts as that user, with the user's role.
    Personal,
}

impl KeyScope {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyScope::Ingest => "ingest",
            KeyScope::Read => "read",
            KeyScope::Admin => "admin",
            KeyScope::Platform => "platform",
            KeyScope::Personal => "personal",
        }
    }

    pub fn parse(s: &str) -> Option<KeyScope> {
        match s {
            "ingest" => Some(KeyScope::Ingest),
            "read" => Some(KeyScope::Read),
            "admin" => Some(KeyScope::Admin),
            "platform" => Some(KeyScope::Platform),
            "personal" => Some(KeyScope::Personal),
            _ => None,
        }
    }
}

/// A stored API key. The key itself is never stored, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: i64,
    pub org: String,
    pub scope: KeyScope,
    /// The first characters of the key, to recognise it in listings.
    pub prefix: String,
    pub revoked: bool,
    /// The user a personal token belongs to.
    pub user_id: Option<i64>,
    /// What the key is for, as its creator described it.
    pub label: String,
    pub created_at: i64,
}

/// What creating a key needs.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub org: String,
    pub scope: KeyScope,
    pub hash: [u8; 32],
    pub prefix: String,
    pub user_id: Option<i64>,
    pub label: String,
}

/// The storage interface. Implementations must pass `conformance`.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Appends one batch atomically; returns each event's id and seq in input order.
    /// Returns only once the batch is durable. Concurrent calls are committed together
    /// (group commit).
    async fn append(&self, batch: AppendBatch) -> Result<Vec<Appended>, StoreError>;

    /// One page of events matching a filter.
    async fn list(&self, query: ListQuery) -> Result<Page, StoreError>;

    /// Every event matching `query` (its cursor and limit are ignored), in its sort
    /// order, as chunks of up to `chunk` stored events. Memory stays bounded: the reader
    /// waits while chunks are unread, and stops when the receiver is dropped.
    async fn stream(&self, query: ListQuery, chunk: usize) -> Result<StreamRx, StoreError>;

    /// How many events match the filter within the scope.
    async fn count(&self, scope: Scope, filter: Filter, now: Timestamp) -> Result<u64, StoreError>;

    /// One event's stored bytes, if it exists within the scope.
    async fn get(&self, scope: Scope, id: Uuid) -> Result<Option<Vec<u8>>, StoreError>;

    /// Events of one organization with `seq >= from`, in seq order, at most `limit`.
    async fn scan(&self, org: &str, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;

    /// Counts per category, result, user and organization within the scope and the
    /// filter's time range.
    async fn facets(&self, scope: Scope, filter: Filter, now: Timestamp) -> Result<Facets, StoreError>;

    /// Creates an organization if it does not exist yet.
    async fn ensure_org(&self, org: Org) -> Result<(), StoreError>;

    async fn orgs(&self) -> Result<Vec<Org>, StoreError>;

    /// Stores a key's hash; returns its id.
    async fn create_key(&self, key: NewKey) -> Result<i64, StoreError>;

    async fn find_key(&self, hash: [u8; 32]) -> Result<Option<ApiKey>, StoreError>;

    /// Keys of one organization (or of all), oldest first, revoked ones included.
    async fn list_keys(&self, org: Option<&str>) -> Result<Vec<ApiKey>, StoreError>;

    /// Revokes a key of `org` (any organization's if `None`); false if there is no
    /// such key there.
    async fn revoke_key(&self, org: Option<&str>, id: i64) -> Result<bool, StoreError>;

    /// Creates a user; `Invalid` (field `email`) if the email is taken.
    async fn create_user(&self, user: NewUser) -> Result<User, StoreError>;

    /// A user by id.
    async fn user(&self, id: i64) -> Result<Option<User>, StoreError>;

    /// A user by email (case-insensitive).
    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError>;

    /// Users of one organization (or of all), by email.
    async fn list_users(&self, org: Option<&str>) -> Result<Vec<User>, StoreError>;

    /// Changes a user; returns the user as now stored, or `None` if there is no such id.
    async fn update_user(&self, id: i64, change: UserChange) -> Result<Option<User>, StoreError>;

    async fn create_session(&self, session: Session) -> Result<(), StoreError>;

    /// A session that has not expired at `now` (µs).
    async fn find_session(&self, hash: [u8; 32], now: i64) -> Result<Option<Session>, StoreError>;

    /// Ends one session, or with `all_of_user` every session of that session's user.
    async fn delete_sessions(&self, hash: [u8; 32], all_of_user: bool) -> Result<(), StoreError>;

    /// Counts a login attempt against each key before its password is checked, in one
    /// atomic step shared by every process on the store: `Some(seconds to wait)` if any
    /// key is locked at `now` (µs), and then nothing is counted (see `throttle`).
    async fn login_attempt(&self, keys: Vec<throttle::ThrottleKey>, now: i64) -> Result<Option<u64>, StoreError>;

    /// After a successful login: forgets the counts of keys marked so, and takes the
    /// attempt back from the others.
    async fn login_succeeded(&self, keys: Vec<throttle::ThrottleKey>) -> Result<(), StoreError>;

    /// Creates or replaces a custom role.
    async fn put_role(&self, role: Role) -> Result<(), StoreError>;

    async fn roles(&self, org: &str) -> Result<Vec<Role>, StoreError>;

    /// Deletes a custom role; false if there was none.
    async fn delete_role(&self, org: &str, name: &str) -> Result<bool, StoreError>;

    /// Stores a new scheduled export (its `id` is ignored); returns it with its id.
    async fn create_schedule(&self, schedule: Schedule) -> Result<Schedule, StoreError>;

    /// Scheduled exports of one organization (or of all), by id.
    async fn schedules(&self, org: Option<&str>) -> Result<Vec<Schedule>, StoreError>;

    /// Deletes a scheduled export of `org` (any organization's if `None`).
    async fn delete_schedule(&self, org: Option<&str>, id: i64) -> Result<bool, StoreError>;

    /// Records a run and when the next one is due.
    async fn schedule_ran(&self, id: i64, ran_at: i64, next_run: i64) -> Result<(), StoreError>;

    /// Entries appended by other processes sharing the database, as they commit (for
    /// live views across instances); `None` for backends one process owns.
    fn appended_elsewhere(&self) -> Option<tokio::sync::broadcast::Receiver<AppendedRange>> {
        None
    }

    /// Finishes pending writes and releases the backend (the embedded store waits for
    /// its writer's last commit). Further appends fail.
    fn close(&self) {}

    /// Up to `limit` events of `org` past their retention period at `as_of`, in seq
    /// order, after seq `after` (retention; see `archive`).
    async fn expired(
        &self,
        org: &str,
        rules: &archive::Retention,
        as_of: Timestamp,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<archive::Expired>, StoreError> {
        let _ = (org, rules, as_of, after, limit);
        Err(StoreError::Unavailable("retention is not available on this backend".into()))
    }

    /// Records archive files and deletes the archived events' rows (keeping their leaf
    /// hashes) in one transaction; returns the rows deleted.
    async fn archived(&self, org: &str, files: Vec<archive::ArchiveFile>, seqs: Vec<u64>) -> Result<u64, StoreError> {
        let _ = (org, files, seqs);
        Err(StoreError::Unavailable("retention is not available on this backend".into()))
    }

    /// The archive files recorded for an organization (every organization's if `None`),
    /// by day.
    async fn archives(&self, org: Option<&str>) -> Result<Vec<archive::ArchiveFile>, StoreError> {
        let _ = org;
        Ok(Vec::new())
    }

    /// Held while one process runs a job that must not run twice at once across the
    /// processes sharing the store (retention); `None` when another holds it.
    async fn exclusive(&self, name: &str) -> Result<Option<Exclusive>, StoreError> {
        let _ = name;
        Ok(Some(Exclusive(Box::new(()))))
    }

    /// Whether any event is stored (so `--demo` fills only an empty store).
    async fn is_empty(&self) -> Result<bool, StoreError>;

    /// An organization's newest signed checkpoint, or the one of exactly `size`.
    async fn checkpoint(&self, org: &str, size: Option<u64>) -> Result<Option<SignedCheckpoint>, StoreError>;

    /// Every signed checkpoint of an organization, smallest first (for verification;
    /// backends that keep only the newest return that one).
    async fn checkpoints(&self, org: &str) -> Result<Vec<SignedCheckpoint>, StoreError> {
        Ok(self.checkpoint(org, None).await?.into_iter().collect())
    }

    /// What is kept of the entries of `org` with seq in `[from, to)`, in seq order: each
    /// seq that has stored bytes or an indexed row (for `verify`).
    async fn stored_entries(&self, org: &str, from: u64, to: u64) -> Result<Vec<verify::StoredEntry>, StoreError>;

    /// The stored tree nodes of `org` at `level` with index in `[from, to)`, in index
    /// order (for `verify`).
    async fn tree_nodes(&self, org: &str, level: u32, from: u64, to: u64) -> Result<Vec<(u64, Hash)>, StoreError>;

    /// One past the largest seq of `org` that has stored bytes, an indexed row or a
    /// leaf hash (0 for an empty log).
    async fn log_end(&self, org: &str) -> Result<u64, StoreError>;

    /// The inclusion proof of entry `index` in the organization's tree of `size`
    /// entries (RFC 9162).
    async fn inclusion_proof(&self, org: &str, index: u64, size: u64) -> Result<Vec<Hash>, StoreError>;

    /// The consistency proof between the organization's trees of `from` and `to`
    /// entries (RFC 9162).
    async fn consistency_proof(&self, org: &str, from: u64, to: u64) -> Result<Vec<Hash>, StoreError>;
}

/// A signed tree head as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub size: u64,
    pub root: Hash,
    /// The C2SP signed note.
    pub note: String,
}

/// Entries `[from, to)` of an organization's log, appended by another process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendedRange {
    pub org: String,
    pub from: u64,
    pub to: u64,
}

/// A lock from `Store::exclusive`, released when dropped.
pub struct Exclusive(#[allow(dead_code)] Box<dyn std::any::Any + Send>);

/// Chunks of stored events from `Store::stream`.
pub type StreamRx = tokio::sync::mpsc::Receiver<Result<Vec<Vec<u8>>, StoreError>>;

/// Shared handle to a store, as the server holds it.
pub type DynStore = Arc<dyn Store>;
