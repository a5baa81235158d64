//! Trail's storage: the `Store` trait every backend implements, the embedded SQLite
//! backend, and the conformance suite every backend must pass.
//!
//! Architecture invariants: only this crate knows SQL; events are never UPDATEd; an
//! append is acknowledged only after its transaction is durable.

pub mod conformance;
mod error;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use trail_core::{merkle::Hash, Filter, NewEvent, Timestamp};
use uuid::Uuid;

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

/// The acknowledgement of one appended event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub id: Uuid,
    pub seq: u64,
    /// The event's idempotency key was seen before: this is the earlier event.
    pub duplicate: bool,
}

/// Which organizations a caller may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every organization (platform callers).
    All,
    /// One organization, by slug.
    Org(String),
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
}

impl KeyScope {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyScope::Ingest => "ingest",
            KeyScope::Read => "read",
            KeyScope::Admin => "admin",
            KeyScope::Platform => "platform",
        }
    }

    pub fn parse(s: &str) -> Option<KeyScope> {
        match s {
            "ingest" => Some(KeyScope::Ingest),
            "read" => Some(KeyScope::Read),
            "admin" => Some(KeyScope::Admin),
            "platform" => Some(KeyScope::Platform),
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
    async fn create_key(&self, org: &str, scope: KeyScope, hash: [u8; 32], prefix: &str) -> Result<i64, StoreError>;

    async fn find_key(&self, hash: [u8; 32]) -> Result<Option<ApiKey>, StoreError>;

    /// Whether any event is stored (so `--demo` fills only an empty store).
    async fn is_empty(&self) -> Result<bool, StoreError>;

    /// An organization's newest signed checkpoint, or the one of exactly `size`.
    async fn checkpoint(&self, org: &str, size: Option<u64>) -> Result<Option<SignedCheckpoint>, StoreError>;

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

/// Shared handle to a store, as the server holds it.
pub type DynStore = Arc<dyn Store>;
