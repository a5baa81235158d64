//! Trail's storage: the traits every backend implements (`EventLog`, `Proofs`,
//! `Accounts`, `Jobs`, `Archives`; together `Store`), the embedded SQLite backend and
//! the PostgreSQL backend (siblings that never import each other), and the middle both
//! use: `prepare` (events made ready before they queue), `search_doc` (the text `q`
//! searches), `query_plan` (a list query resolved before a backend renders it),
//! `rollup` (per-day counts), `signer`, `verify` (the one verifier), `copy` (any store into a `Restore` target) and
//! `archive`. The conformance suite and test clusters are in `testing` (feature
//! `testing`).
//!
//! Architecture invariants: only this crate knows SQL; events are never UPDATEd; an
//! append is acknowledged only after its transaction is durable.

mod accounts;
pub mod alerts;
pub mod archive;
pub mod copy;
mod error;
pub mod holds;
pub mod installation;
mod named;
pub mod postgres;
mod prepare;
mod query_plan;
pub mod repair;
pub mod rollup;
pub mod row;
pub mod seal;
mod search_doc;
pub mod signer;
pub mod sqlite;
pub mod streams;
#[cfg(test)]
mod tamper;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod throttle;
pub mod verify;
pub mod witnesses;

use std::sync::Arc;

use async_trait::async_trait;
use trail_core::{merkle::Hash, Filter, NewEvent, Timestamp};
use uuid::Uuid;

pub use accounts::{Categories, NewUser, Role, Schedule, Session, User, UserChange, BUILTIN_ROLES};
pub use error::StoreError;
pub use signer::LogSigner;

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
    /// Reads checkpoints and hash tiles only (no event content): for outside auditors
    /// and mirrors.
    Audit,
}

impl KeyScope {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyScope::Ingest => "ingest",
            KeyScope::Read => "read",
            KeyScope::Admin => "admin",
            KeyScope::Platform => "platform",
            KeyScope::Personal => "personal",
            KeyScope::Audit => "audit",
        }
    }

    pub fn parse(s: &str) -> Option<KeyScope> {
        match s {
            "ingest" => Some(KeyScope::Ingest),
            "read" => Some(KeyScope::Read),
            "admin" => Some(KeyScope::Admin),
            "platform" => Some(KeyScope::Platform),
            "personal" => Some(KeyScope::Personal),
            "audit" => Some(KeyScope::Audit),
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
    /// The SHA-256 of the key (so that a store can be copied with its keys).
    pub hash: [u8; 32],
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

/// The log itself: appends, and every read of the events (lists, streams, counts,
/// single events, scans, facets).
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
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

    /// Matching events per hour or day of the filter's period, by result, and their
    /// total (exact, or at least `rollup::TIMELINE_BOUND`).
    async fn timeline(&self, scope: Scope, filter: Filter, now: Timestamp) -> Result<rollup::Timeline, StoreError>;

    /// Whether any event is stored (so `--demo` fills only an empty store).
    async fn is_empty(&self) -> Result<bool, StoreError>;

    /// The writer's queue, commits and connection pool, for metrics.
    fn stats(&self) -> StoreStats {
        StoreStats::default()
    }

    /// Whether appends can be written now (readiness): `Err` says why not (the store
    /// closed or opened read-only, the disk nearly full, the database a read-only
    /// replica or unreachable).
    async fn writable(&self) -> Result<(), StoreError>;

    /// Entries appended by other processes sharing the database, as they commit (for
    /// live views across instances); `None` for a backend one process owns.
    fn appended_elsewhere(&self) -> Option<tokio::sync::broadcast::Receiver<AppendedRange>>;

    /// Finishes pending writes and releases the backend (the embedded store waits for
    /// its writer's last commit). Further appends fail.
    fn close(&self);
}

/// What a store says of its own work, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Appends waiting for the writer.
    pub queue_depth: u64,
    /// Group commits of appends so far, and the events they wrote.
    pub commits: u64,
    pub committed_events: u64,
    /// The connection pool: its size and idle connections.
    pub pool: Option<(u64, u64)>,
}

/// What proves the log: signed checkpoints, inclusion and consistency proofs, and what
/// the verifier reads (stored entries, tree nodes).
#[async_trait]
pub trait Proofs: Send + Sync + 'static {
    /// An organization's newest signed checkpoint, or the one of exactly `size`.
    async fn checkpoint(&self, org: &str, size: Option<u64>) -> Result<Option<SignedCheckpoint>, StoreError>;

    /// Every signed checkpoint of an organization, smallest first.
    async fn checkpoints(&self, org: &str) -> Result<Vec<SignedCheckpoint>, StoreError>;

    /// The inclusion proof of entry `index` in the organization's tree of `size`
    /// entries (RFC 9162).
    async fn inclusion_proof(&self, org: &str, index: u64, size: u64) -> Result<Vec<Hash>, StoreError>;

    /// The consistency proof between the organization's trees of `from` and `to`
    /// entries (RFC 9162).
    async fn consistency_proof(&self, org: &str, from: u64, to: u64) -> Result<Vec<Hash>, StoreError>;

    /// What is kept of the entries of `org` with seq in `[from, to)`, in seq order: each
    /// seq that has stored bytes or an indexed row (for `verify`).
    async fn stored_entries(&self, org: &str, from: u64, to: u64) -> Result<Vec<verify::StoredEntry>, StoreError>;

    /// The fast path of `verify` over the entries `[from, to)`, for a backend that can
    /// compare each entry's bytes with its row where it reads them
    /// (`verify::quick_check`): `Some` only when every entry in the range is kept once,
    /// with its row, and found right; `None` makes `verify` read the range with
    /// `stored_entries` and name what differs.
    async fn quick_entries(&self, _org: &str, _from: u64, _to: u64) -> Result<Option<verify::QuickChunk>, StoreError> {
        Ok(None)
    }

    /// The stored tree nodes of `org` at `level` with index in `[from, to)`, in index
    /// order (for `verify`).
    async fn tree_nodes(&self, org: &str, level: u32, from: u64, to: u64) -> Result<Vec<(u64, Hash)>, StoreError>;

    /// `tree_nodes` for several `(level, from, to)` ranges at once, in their order (a
    /// backend may read them in one go).
    async fn tree_nodes_many(
        &self,
        org: &str,
        ranges: Vec<(u32, u64, u64)>,
    ) -> Result<Vec<Vec<(u64, Hash)>>, StoreError> {
        let mut out = Vec::with_capacity(ranges.len());
        for (level, from, to) in ranges {
            out.push(self.tree_nodes(org, level, from, to).await?);
        }
        Ok(out)
    }

    /// One past the largest seq of `org` that has stored bytes, an indexed row or a
    /// leaf hash (0 for an empty log).
    async fn log_end(&self, org: &str) -> Result<u64, StoreError>;

    /// Rows of `org` that lie outside its log of `end` entries (a seq or index below 0
    /// or from `end` on) or that share a seq or id with another row, each said as a
    /// finding (for `verify`).
    async fn stray_rows(&self, org: &str, end: u64) -> Result<Vec<String>, StoreError>;

    /// The per-day counts stored for `org` (for `verify`, which recounts them).
    async fn stored_rollups(&self, org: &str) -> Result<rollup::StoredRollups, StoreError>;

    /// Findings in what the backend derives from `org`'s events beyond their rows and
    /// the per-day counts (SQLite: the full-text index, the search words, the
    /// idempotency keys; PostgreSQL: the idempotency keys), each said as a finding.
    async fn derived_findings(&self, org: &str) -> Result<Vec<String>, StoreError>;

    /// Rebuilds what is derived from `org`'s stored bytes (see `repair`, which calls
    /// it only after the bytes, tree and checkpoints verified).
    async fn rebuild_derived(&self, org: &str) -> Result<repair::Rebuilt, StoreError>;

    /// The organizations this store's signer refuses to sign (their stored tree does
    /// not agree with their leaves; see `seal`), and why.
    fn refusals(&self) -> Vec<seal::Refusal>;
}

/// Who may do what: organizations, API keys, users, sessions, login throttling and
/// custom roles.
#[async_trait]
pub trait Accounts: Send + Sync + 'static {
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

    /// The users with this email (case-insensitive), one per organization at most:
    /// an email is unique within an organization only.
    async fn users_by_email(&self, email: &str) -> Result<Vec<User>, StoreError>;

    /// Users of one organization (or of all), by email.
    async fn list_users(&self, org: Option<&str>) -> Result<Vec<User>, StoreError>;

    /// Changes a user; returns the user as now stored, or `None` if there is no such id.
    async fn update_user(&self, id: i64, change: UserChange) -> Result<Option<User>, StoreError>;

    async fn create_session(&self, session: Session) -> Result<(), StoreError>;

    /// A session that has not expired at `now` (µs).
    async fn find_session(&self, hash: [u8; 32], now: Timestamp) -> Result<Option<Session>, StoreError>;

    /// Ends one session, or with `all_of_user` every session of that session's user.
    async fn delete_sessions(&self, hash: [u8; 32], all_of_user: bool) -> Result<(), StoreError>;

    /// Counts a login attempt against each key before its password is checked, in one
    /// atomic step shared by every process on the store: `Some(seconds to wait)` if any
    /// key is locked at `now` (µs), and then nothing is counted (see `throttle`).
    async fn login_attempt(&self, keys: Vec<throttle::ThrottleKey>, now: Timestamp) -> Result<Option<u64>, StoreError>;

    /// After a successful login: forgets the counts of keys marked so, and takes the
    /// attempt back from the others.
    async fn login_succeeded(&self, keys: Vec<throttle::ThrottleKey>) -> Result<(), StoreError>;

    /// Creates or replaces a custom role.
    async fn put_role(&self, role: Role) -> Result<(), StoreError>;

    async fn roles(&self, org: &str) -> Result<Vec<Role>, StoreError>;

    /// Deletes a custom role; false if there was none.
    async fn delete_role(&self, org: &str, name: &str) -> Result<bool, StoreError>;
}

/// Work that runs later or elsewhere: scheduled exports, and the lock that keeps a job
/// from running twice at once across the processes sharing the store.
#[async_trait]
pub trait Jobs: Send + Sync + 'static {
    /// Stores a new scheduled export (its `id` is ignored); returns it with its id.
    async fn create_schedule(&self, schedule: Schedule) -> Result<Schedule, StoreError>;

    /// Scheduled exports of one organization (or of all), by id.
    async fn schedules(&self, org: Option<&str>) -> Result<Vec<Schedule>, StoreError>;

    /// Deletes a scheduled export of `org` (any organization's if `None`).
    async fn delete_schedule(&self, org: Option<&str>, id: i64) -> Result<bool, StoreError>;

    /// Records a run and when the next one is due.
    async fn schedule_ran(&self, id: i64, ran_at: Timestamp, next_run: Timestamp) -> Result<(), StoreError>;

    /// Held while one process runs a job that must not run twice at once across the
    /// processes sharing the store (retention); `None` when another holds it.
    async fn exclusive(&self, name: &str) -> Result<Option<Exclusive>, StoreError>;
}

/// Alerting's side of the store (see `alerts`): rules, destinations, the evaluator's
/// position per organization, and deliveries.
#[async_trait]
pub trait Alerting: Send + Sync + 'static {
    /// Stored rule settings of one organization (built-in rules never changed have none).
    async fn alert_rules(&self, org: &str) -> Result<Vec<alerts::AlertRule>, StoreError>;

    /// Stores a rule's settings (by organization and name).
    async fn put_alert_rule(&self, rule: alerts::AlertRule) -> Result<(), StoreError>;

    async fn delete_alert_rule(&self, org: &str, name: &str) -> Result<bool, StoreError>;

    async fn destinations(&self, org: &str) -> Result<Vec<alerts::Destination>, StoreError>;

    /// Stores a new destination (its `id` is ignored); returns it with its id.
    async fn create_destination(&self, d: alerts::Destination) -> Result<alerts::Destination, StoreError>;

    /// Changes a destination's name, url, recipients, secrets and whether it is on.
    async fn update_destination(&self, d: alerts::Destination) -> Result<bool, StoreError>;

    async fn delete_destination(&self, org: &str, id: i64) -> Result<bool, StoreError>;

    /// Where the evaluator of an organization stands (`None`: it never ran).
    async fn evaluation(&self, org: &str) -> Result<Option<alerts::Evaluation>, StoreError>;

    /// Moves the evaluator from `from` (`None`: from nowhere) to `to` and stores the
    /// deliveries it fired, in one transaction; `false` (and nothing stored) when the
    /// evaluator no longer stands at `from` (another server moved it first).
    async fn commit_evaluation(
        &self,
        org: &str,
        from: Option<u64>,
        to: alerts::Evaluation,
        deliveries: Vec<alerts::NewDelivery>,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// The organization's newest deliveries first.
    async fn deliveries(&self, org: &str, limit: usize) -> Result<Vec<alerts::Delivery>, StoreError>;

    async fn delivery(&self, org: &str, id: i64) -> Result<Option<alerts::Delivery>, StoreError>;

    /// Pending deliveries due at `now`, leased until `until`: no other worker takes them
    /// before then.
    async fn claim_deliveries(
        &self,
        now: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<alerts::Delivery>, StoreError>;

    /// Stores an attempt's outcome (status, attempts, next time, last error and code).
    async fn update_delivery(&self, d: &alerts::Delivery) -> Result<(), StoreError>;

    /// A delivery outside an evaluation (a test message); returns its id.
    async fn add_delivery(&self, org: &str, d: alerts::NewDelivery, now: Timestamp) -> Result<i64, StoreError>;
}

/// Streaming's side of the store (see `streams`): streams, their cursors and health,
/// and the leases that make one server at a time drive each.
#[async_trait]
pub trait Streaming: Send + Sync + 'static {
    /// Stores a new stream; returns it with its id.
    async fn create_stream(&self, s: streams::Stream) -> Result<streams::Stream, StoreError>;

    /// The streams of one organization, or of all (`None`), by id.
    async fn streams(&self, org: Option<&str>) -> Result<Vec<streams::Stream>, StoreError>;

    /// One stream of an organization.
    async fn get_stream(&self, org: &str, id: i64) -> Result<Option<streams::Stream>, StoreError>;

    /// An administrator's change: the settings and state of `s`, its failing health
    /// as in `s` (cleared on resume and replay), and with `replay` the cursor moved
    /// there. False if there is no such stream.
    async fn change_stream(&self, s: &streams::Stream, replay: Option<u64>) -> Result<bool, StoreError>;

    async fn delete_stream(&self, org: &str, id: i64) -> Result<bool, StoreError>;

    /// Leases to `owner` until `until` every active stream that is free, already its,
    /// or whose lease ran out by `now`; returns the active streams it holds.
    async fn lease_streams(
        &self,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Vec<streams::Stream>, StoreError>;

    /// Stores one step of a stream's driver if the stream is still leased to `owner`
    /// and its cursor still at `from`. False otherwise (nothing stored).
    async fn stream_progress(&self, id: i64, owner: &str, from: u64, p: &streams::Progress)
        -> Result<bool, StoreError>;
}

/// Retention's side of the store: which events are due, and the archive files that
/// replace their rows (see `archive`).
#[async_trait]
pub trait Archives: Send + Sync + 'static {
    /// Up to `limit` events of `org` past their retention period at `as_of`, in seq
    /// order, after seq `after`.
    async fn expired(
        &self,
        org: &str,
        rules: &archive::Retention,
        as_of: Timestamp,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<archive::Expired>, StoreError>;

    /// Records archive files and deletes the archived events' rows (keeping their leaf
    /// hashes) in one transaction; returns the rows deleted.
    async fn archived(&self, org: &str, files: Vec<archive::ArchiveFile>, seqs: Vec<u64>) -> Result<u64, StoreError>;

    /// Forgets the idempotency keys of `org` whose events were received before
    /// `received_before` (µs); returns how many. Keys outlive their events' rows
    /// until then, so a resend of an archived event is still recognised.
    async fn forget_keys(&self, org: &str, received_before: Timestamp) -> Result<u64, StoreError>;

    /// The archive files recorded for an organization (every organization's if `None`),
    /// by day.
    async fn archives(&self, org: Option<&str>) -> Result<Vec<archive::ArchiveFile>, StoreError>;
}

/// A whole store: every concern above. Implementations must pass the conformance
/// suite (`testing::conformance`, behind the `testing` feature).
pub trait Store:
    EventLog + Proofs + Accounts + Jobs + Archives + Alerting + Streaming + Installation + Witnessing + Holds
{
}

impl<T: EventLog + Proofs + Accounts + Jobs + Archives + Alerting + Streaming + Installation + Witnessing + Holds> Store
    for T
{
}

/// Legal holds (see `holds`).
#[async_trait]
pub trait Holds: Send + Sync {
    /// Places a hold; answers it.
    async fn place_hold(&self, hold: holds::NewHold) -> Result<holds::LegalHold, StoreError>;

    /// Releases `org`'s active hold `id` (`None` when there is no such active hold).
    async fn release_hold(
        &self,
        org: &str,
        id: i64,
        by: &str,
        reason: &str,
        at: Timestamp,
    ) -> Result<Option<holds::LegalHold>, StoreError>;

    /// Holds of `org` (every organization's with `None`), active and released, newest
    /// first.
    async fn holds(&self, org: Option<&str>) -> Result<Vec<holds::LegalHold>, StoreError>;
}

/// The installation log's witnesses (see `witnesses`): their state, the lease on
/// submitting to each, and the cosignatures they gave.
#[async_trait]
pub trait Witnessing: Send + Sync {
    /// Every witness submitted to so far.
    async fn witness_states(&self) -> Result<Vec<witnesses::WitnessState>, StoreError>;

    /// Takes the lease on submitting to `name` until `until` unless another holder's
    /// lease is still running at `now`; answers the witness's state when taken (a new
    /// witness starts `Pending` at size 0).
    async fn lease_witness(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Option<witnesses::WitnessState>, StoreError>;

    /// Records a witness's answer (and its cosignature, if any) and releases the lease.
    async fn witness_answered(&self, answer: witnesses::WitnessAnswer) -> Result<(), StoreError>;

    /// The cosignature lines of the installation checkpoint of `size`, by witness.
    async fn cosignatures(&self, size: u64) -> Result<Vec<(String, String)>, StoreError>;

    /// The newest cosigned sizes with their witnesses, newest first (at most `limit`).
    async fn cosigned_sizes(&self, limit: usize) -> Result<Vec<(u64, Vec<String>)>, StoreError>;
}

/// The installation log (see `installation`): every organization checkpoint, appended
/// after it is signed, under the installation's own signed checkpoints.
#[async_trait]
pub trait Installation: Send + Sync {
    /// Appends the organization checkpoints not yet in the installation log (at most
    /// `limit`, oldest first) and signs its new checkpoint, in one transaction (one
    /// server at a time); answers how many. Without a signer nothing is appended.
    async fn extend_installation(&self, limit: usize) -> Result<u64, StoreError>;

    /// The installation log's newest signed checkpoint, or the one of exactly `size`.
    async fn installation_checkpoint(&self, size: Option<u64>) -> Result<Option<SignedCheckpoint>, StoreError>;

    /// Its stored tree nodes at `level` with index in `[from, to)`, in index order.
    async fn installation_nodes(&self, level: u32, from: u64, to: u64) -> Result<Vec<(u64, Hash)>, StoreError>;

    /// Its entries with index in `[from, to)`, in index order.
    async fn installation_entries(
        &self,
        from: u64,
        to: u64,
    ) -> Result<Vec<installation::InstallationEntry>, StoreError>;

    /// Where `org`'s checkpoint of `size` is in the installation log, once appended.
    async fn installation_index(&self, org: &str, size: u64) -> Result<Option<u64>, StoreError>;
}

/// One entry copied into a store with its seq (see `copy`).
#[derive(Debug, Clone)]
pub struct RestoredEntry {
    /// The entry's stored bytes, or `None` for an entry that retention archived (only
    /// its leaf hash is kept in the log).
    pub leaf: Option<Vec<u8>>,
    pub hash: Hash,
}

/// A store that can be the target of `copy`: it takes entries with the seqs they had.
#[async_trait]
pub trait Restore: Store {
    /// Appends entries `from..` of `org`'s log as they were, and the signed checkpoints
    /// whose sizes lie within `from..=from + entries.len()`, in one transaction. Each
    /// checkpoint's root must equal the tree's at its size (`Corrupt` otherwise).
    async fn restore(
        &self,
        org: &str,
        from: u64,
        entries: Vec<RestoredEntry>,
        checkpoints: Vec<SignedCheckpoint>,
    ) -> Result<(), StoreError>;
}

/// The store's traits, for callers that use a `DynStore`'s methods.
pub mod prelude {
    pub use crate::{Accounts, Alerting, Archives, EventLog, Installation, Jobs, Proofs, Store, Streaming};
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
pub struct Exclusive(#[allow(dead_code)] pub(crate) Box<dyn std::any::Any + Send>);

/// Chunks of stored events from `Store::stream`.
pub type StreamRx = tokio::sync::mpsc::Receiver<Result<Vec<Vec<u8>>, StoreError>>;

/// Shared handle to a store, as the server holds it.
pub type DynStore = Arc<dyn Store>;

#[cfg(test)]
mod invariants {
    /// The code (not the comments) of every `.rs` file under `src/<dir>`.
    fn code(dir: &str) -> Vec<(String, String)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(dir);
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&root).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                let code: Vec<&str> = text.lines().filter(|l| !l.trim_start().starts_with("//")).collect();
                out.push((path.display().to_string(), code.join("\n")));
            }
        }
        out
    }

    /// The two backends are siblings: neither imports the other.
    #[test]
    fn backends_never_import_each_other() {
        for (dir, other) in [("sqlite", "postgres"), ("postgres", "sqlite")] {
            for (file, text) in code(dir) {
                for needle in [format!("crate::{other}"), format!("super::super::{other}"), format!("{other}::")] {
                    assert!(!text.contains(&needle), "{file} uses {needle}");
                }
            }
        }
    }
}
