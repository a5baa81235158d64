//! The writer thread: group commit of prepared batches, the Merkle tree's new nodes and
//! the signed checkpoints, in one transaction per group.

use std::sync::atomic::{AtomicU64, Ordering};
use std::{
    collections::{HashMap, HashSet},
    sync::{mpsc, Arc},
    time::{Duration, Instant},
};

use rusqlite::{params, types::Value as SqlValue, Connection, OptionalExtension};
use tokio::sync::oneshot;
use trail_core::{
    merkle::{leaf_hash, Frontier},
    Event, NewEvent, Timestamp,
};
use uuid::Uuid;

use super::{
    index::{load_words, merge_step, org_token, plain_words, terms, Words},
    seal::established,
    tree::{load_frontier, tree_size, unsigned_orgs, write_checkpoint},
    SqliteStore, SLOTS,
};
use crate::{
    prepare::LeafTemplate,
    rollup::{Facts, Tally},
    row::IndexedCopy,
    seal::Seal,
    search_doc::search_text,
    signer::LogSigner,
    AppendBatch, Appended, StoreError,
};

/// Columns inserted per event, in order (everything but `pos`).
pub const INSERT_SQL: &str = "INSERT INTO events (pos, org_id, seq, id, ts, received, category, operation, \
    result, status_code, actor_id, actor_name, actor_email, company, request_id, resource_type, resource_id, \
    resource_name, workspace_id, workspace_name, project, cluster, namespace, ip, idem) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, \
    ?22, ?23, ?24, ?25)";
pub const INSERT_LEAF_SQL: &str = "INSERT INTO leaves (org_id, seq, leaf) VALUES (?1, ?2, ?3)";
pub const INSERT_FTS_SQL: &str = "INSERT INTO events_fts (rowid, doc) VALUES (?1, ?2)";

pub(super) type Reply = oneshot::Sender<BatchOutcome>;

/// What the writer thread is asked to do: commit a batch (grouped with others), or run
/// a small write of its own on the write connection between group commits (so that it
/// never waits on the database lock behind a busy stream of appends).
pub(super) enum Job {
    Append(PreparedBatch, Reply),
    Run(Box<dyn FnOnce(&mut Connection) + Send>),
}

/// What one batch of a group commit came to.
pub(super) type BatchOutcome = Result<Vec<Appended>, StoreError>;

/// Checkpoints are signed at most this often per organization under load; the writer
/// signs the rest as soon as it is idle.
pub(super) const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// What the writer thread remembers across transactions.
pub(super) struct Writer {
    conn: Connection,
    max_events: usize,
    signer: Option<Arc<LogSigner>>,
    /// What the signer trusts: each organization's tree as recomputed from its leaves.
    seal: Arc<Seal>,
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
pub(super) struct TxState {
    next_seq: HashMap<i64, u64>,
    /// The highest stored position.
    high: i64,
    /// The right edge of each touched organization's tree.
    trees: HashMap<i64, Frontier>,
    /// Words added to `search_words` by this transaction.
    new_words: Vec<String>,
    /// Organizations whose tree in `trees` grew from the established one (`seal`), and
    /// so may be signed.
    sealed: HashSet<i64>,
}

/// Nice value of the writer thread. Every append waits for this one thread, and on a
/// small machine it shared the cores with HTTP parsing and validation, waiting on the
/// run queue about 10 % of the time; with the higher priority, batches of 1,000 ingested
/// at a median 0.77 of the bare loop instead of 0.70 (BENCHMARKS.md, sixth pass).
pub(super) const WRITER_NICE: i32 = -10;

/// Gives the calling (writer) thread `WRITER_NICE` where allowed (root or
/// CAP_SYS_NICE); elsewhere it keeps the default priority.
pub(super) fn raise_priority() {
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), WRITER_NICE) {
        tracing::debug!(error = %e, "writer thread keeps the default priority");
    }
}

/// The writer's queue and commits, as metrics read them.
#[derive(Debug, Default)]
pub(super) struct WriterStats {
    pub(super) queued: AtomicU64,
    pub(super) commits: AtomicU64,
    pub(super) committed: AtomicU64,
}

pub(super) fn writer_loop(
    conn: Connection,
    rx: mpsc::Receiver<Job>,
    checkpoint: mpsc::SyncSender<()>,
    max_events: usize,
    signer: Option<Arc<LogSigner>>,
    seal: Arc<Seal>,
    stats: Arc<WriterStats>,
) {
    raise_priority();
    let words = load_words(&conn);
    let mut w = Writer {
        conn,
        max_events,
        signer,
        seal,
        orgs: HashMap::new(),
        slugs: HashMap::new(),
        words,
        signed_at: HashMap::new(),
        unsigned: HashSet::new(),
    };
    // Every log's tree established before anything is signed, and the logs that grew
    // while no checkpoint was signed (say, a crash within the second) signed now.
    if w.signer.is_some() {
        w.establish_all();
        match unsigned_orgs(&w.conn) {
            Ok(orgs) => w.unsigned = orgs,
            Err(e) => tracing::error!(error = %e, "cannot read checkpoints"),
        }
        w.sign_pending(false);
    }
    let mut merged = true;
    loop {
        let first = match rx.recv_timeout(IDLE) {
            Ok(Job::Append(b, r)) => {
                stats.queued.fetch_sub(1, Ordering::Relaxed);
                (b, r)
            }
            Ok(Job::Run(f)) => {
                f(&mut w.conn);
                continue;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // Signing and merging write too: their pages go the way of a commit's.
                let wrote = !merged || !w.unsigned.is_empty();
                w.sign_pending(false);
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
        let mut runs = Vec::new();
        while n < w.max_events {
            match rx.try_recv() {
                Ok(Job::Append(b, r)) => {
                    stats.queued.fetch_sub(1, Ordering::Relaxed);
                    n += b.events.len();
                    group.push((b, r));
                }
                Ok(Job::Run(f)) => runs.push(f),
                Err(_) => break,
            }
        }
        let (batches, replies): (Vec<_>, Vec<_>) = group.into_iter().unzip();
        let started = Instant::now();
        let result = w.commit_group(batches);
        tracing::debug!(events = n, elapsed_ms = started.elapsed().as_millis() as u64, "group commit");
        match result {
            Ok(results) => {
                stats.commits.fetch_add(1, Ordering::Relaxed);
                stats.committed.fetch_add(n as u64, Ordering::Relaxed);
                for (reply, r) in replies.into_iter().zip(results) {
                    let _ = reply.send(r);
                }
                // Logs left unsigned by earlier groups are signed once due, even while
                // other organizations keep the writer busy.
                w.sign_pending(true);
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
        for f in runs {
            f(&mut w.conn);
        }
    }
    w.sign_pending(false);
}

/// How long the writer waits for work before using the time to merge the search index.
pub(super) const IDLE: Duration = Duration::from_millis(100);

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
        let mut st = TxState {
            next_seq: HashMap::new(),
            high,
            trees: HashMap::new(),
            new_words: Vec::new(),
            sealed: HashSet::new(),
        };
        let seal = self.signer.as_ref().map(|s| (&**s, &*self.seal));
        let mut out = Vec::with_capacity(batches.len());
        for batch in batches {
            if !isolate {
                match append_batch(&tx, &mut self.orgs, &mut self.slugs, &self.words, &mut st, seal, batch) {
                    Ok(acks) => out.push(Ok(acks)),
                    Err(_) => return Ok(None), // dropping `tx` rolls everything back
                }
                continue;
            }
            let sp = tx.savepoint()?;
            let saved = st.clone();
            match append_batch(&sp, &mut self.orgs, &mut self.slugs, &self.words, &mut st, seal, batch) {
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
        // organization and only where the tree grew from the established one; the
        // others are signed when due or when the writer is next idle.
        let mut signed = Vec::new();
        if let Some(signer) = &self.signer {
            for (org, tree) in &st.trees {
                let due = self.signed_at.get(org).is_none_or(|t| t.elapsed() >= CHECKPOINT_EVERY);
                let slug = self.slugs.get(org).cloned().unwrap_or_default();
                if due && st.sealed.contains(org) {
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
        for org in &st.sealed {
            if let (Some(slug), Some(tree)) = (self.slugs.get(org), st.trees.get(org)) {
                self.seal.set_trusted(slug, tree.clone());
            }
        }
        for org in signed {
            self.signed_at.insert(org, Instant::now());
            self.unsigned.remove(&org);
        }
        Ok(Some(out))
    }

    /// Signs checkpoints for every organization whose newest entries none covers (with
    /// `only_due`, those not signed within `CHECKPOINT_EVERY`), each over its tree as
    /// established from the leaves; a refused organization is dropped from the list.
    fn sign_pending(&mut self, only_due: bool) {
        let Some(signer) = self.signer.clone() else { return };
        let due =
            |w: &Writer, org: &i64| !only_due || w.signed_at.get(org).is_none_or(|t| t.elapsed() >= CHECKPOINT_EVERY);
        let orgs: Vec<i64> = self.unsigned.iter().copied().filter(|o| due(self, o)).collect();
        for org in orgs {
            self.unsigned.remove(&org);
            let seal = self.seal.clone();
            let result = (|| -> Result<bool, StoreError> {
                let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let slug: String = tx.query_row("SELECT slug FROM orgs WHERE id = ?1", [org], |r| r.get(0))?;
                let size = tree_size(&tx, org)?;
                let Some(tree) = established(&tx, &signer, &seal, org, &slug, size)? else { return Ok(false) };
                write_checkpoint(&tx, &signer, org, &slug, &tree)?;
                tx.commit()?;
                Ok(true)
            })();
            match result {
                Ok(true) => {
                    self.signed_at.insert(org, Instant::now());
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(error = %e, org, "cannot sign checkpoint");
                    self.unsigned.insert(org);
                }
            }
        }
    }

    /// Establishes every organization's tree (at start, before anything is signed).
    fn establish_all(&mut self) {
        let Some(signer) = self.signer.clone() else { return };
        let result = (|| -> Result<(), StoreError> {
            let tx = self.conn.transaction()?;
            let orgs: Vec<(i64, String)> = {
                let mut stmt = tx.prepare("SELECT id, slug FROM orgs ORDER BY slug")?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<Result<_, _>>()?
            };
            for (org, slug) in orgs {
                let size = tree_size(&tx, org)?;
                established(&tx, &signer, &self.seal, org, &slug, size)?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            tracing::error!(error = %e, "cannot establish the logs' trees; nothing is signed until it can");
        }
    }
}

pub(super) fn org_id(
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

pub(super) fn append_batch(
    conn: &Connection,
    orgs: &mut HashMap<String, i64>,
    slugs: &mut HashMap<i64, String>,
    words: &Words,
    st: &mut TxState,
    seal: Option<(&LogSigner, &Seal)>,
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
        None => {
            // The established tree, where there is one, so that what is signed grew
            // from the leaves; otherwise the stored nodes (appends never wait on trust).
            let slug = slugs.get(&org).cloned().unwrap_or_default();
            match seal.map(|(signer, seal)| established(conn, signer, seal, org, &slug, seq)).transpose()?.flatten() {
                Some(t) => {
                    st.sealed.insert(org);
                    t
                }
                None => load_frontier(conn, org, seq)?,
            }
        }
    };
    let mut insert = conn.prepare_cached(INSERT_SQL)?;
    let mut insert_leaf = conn.prepare_cached(INSERT_LEAF_SQL)?;
    let mut fts = conn.prepare_cached(INSERT_FTS_SQL)?;
    let mut node = conn.prepare_cached("INSERT INTO tree_nodes (org_id, level, idx, hash) VALUES (?1, ?2, ?3, ?4)")?;
    let mut max_in = conn.prepare_cached("SELECT MAX(pos) FROM events WHERE pos >= ?1 AND pos < ?2")?;
    let mut find_idem = conn.prepare_cached("SELECT id, seq FROM idempotency WHERE org_id = ?1 AND key = ?2")?;
    let mut add_idem =
        conn.prepare_cached("INSERT INTO idempotency (org_id, key, id, seq, received) VALUES (?1, ?2, ?3, ?4, ?5)")?;
    let mut add_word = conn.prepare_cached("INSERT OR IGNORE INTO search_words (word) VALUES (?1)")?;
    let mut seen: HashMap<&str, Appended> = HashMap::new();
    let mut acks = Vec::with_capacity(batch.events.len());
    let mut tally = Tally::default();
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
        tally.add(org, p.facts(), 1);
        for w in &p.words {
            if !words.contains(w) && !st.new_words.contains(w) {
                add_word.execute([w])?;
                st.new_words.push(w.clone());
            }
        }
        let ack = Appended { id: p.id, seq, duplicate: false };
        if let Some(key) = p.idem.as_deref() {
            seen.insert(key, ack);
            add_idem.execute(params![org, key, p.id.as_bytes().as_slice(), seq as i64, p.received])?;
        }
        acks.push(ack);
        seq += 1;
    }
    super::rollup::apply(conn, &tally)?;
    st.next_seq.insert(org, seq);
    st.trees.insert(org, tree);
    Ok(acks)
}

/// A batch whose events were prepared outside the writer thread.
pub(super) struct PreparedBatch {
    org: String,
    events: Vec<Prepared>,
}

/// An event made ready for insertion outside the writer thread: everything except what
/// depends on the log's state (org id, seq, position), so the single writer thread does
/// little more than SQLite's own work.
pub struct Prepared {
    id: Uuid,
    ts: i64,
    received: i64,
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
        Prepared {
            id,
            ts: ev.timestamp.0,
            received: ev.received_at.0,
            idem: ev.idempotency_key.clone(),
            leaf,
            cols: columns(&ev),
            doc,
            words,
        }
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

    /// The plain words of the event's free text (for `search_words`).
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// The full FTS document for `INSERT_FTS_SQL`.
    pub fn doc(&self, org_id: i64) -> String {
        format!("{} {}", org_token(org_id), self.doc)
    }

    pub fn ts(&self) -> i64 {
        self.ts
    }

    /// What the per-day counts count the event by (read from its columns).
    fn facts(&self) -> Facts<'_> {
        let text = |i: usize| match &self.cols[i] {
            SqlValue::Text(t) => Some(t.as_str()),
            _ => None,
        };
        Facts {
            ts: self.ts,
            category: text(COL_CATEGORY).unwrap_or_default(),
            operation: text(COL_OPERATION).unwrap_or_default(),
            result: match self.cols[COL_RESULT] {
                SqlValue::Integer(r) => r,
                _ => 0,
            },
            email: text(COL_ACTOR_EMAIL),
            name: text(COL_ACTOR_NAME),
        }
    }
}

/// Indexes into `columns`' values.
const COL_CATEGORY: usize = 3;
const COL_OPERATION: usize = 4;
const COL_RESULT: usize = 5;
const COL_ACTOR_NAME: usize = 8;
const COL_ACTOR_EMAIL: usize = 9;

/// Columns 4.. of `INSERT_SQL` for an event: the copies of its fields that filters
/// check and sorts order by (its indexed copy, the one form `verify` checks it against).
pub(super) fn columns(ev: &Event) -> Vec<SqlValue> {
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
        text(c.idem),
    ]
}

/// The first free position for an event at `ts` (microseconds).
pub(super) fn free_pos(max_in: &mut rusqlite::CachedStatement<'_>, ts: i64) -> Result<i64, StoreError> {
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

impl SqliteStore {
    /// Prepares a batch and queues it for the writer; answers once it is committed.
    pub(super) async fn enqueue(&self, batch: AppendBatch) -> Result<Vec<Appended>, StoreError> {
        let (org, events) = crate::prepare::prepare_batch(batch, &self.preparing, Prepared::new).await?;
        let batch = PreparedBatch { org, events };
        let (tx, rx) = oneshot::channel();
        {
            let guard = self.writer.lock().map_err(|_| StoreError::Closed)?;
            let sender = guard.as_ref().ok_or(StoreError::Closed)?;
            self.stats.queued.fetch_add(1, Ordering::Relaxed);
            if sender.send(Job::Append(batch, tx)).is_err() {
                self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                return Err(StoreError::Closed);
            }
        }
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs a small write on the writer thread's connection, between group commits.
    pub(super) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        {
            let guard = self.writer.lock().map_err(|_| StoreError::Closed)?;
            let sender = guard.as_ref().ok_or(StoreError::Closed)?;
            let job = Job::Run(Box::new(move |c: &mut Connection| {
                let _ = tx.send(f(c));
            }));
            sender.send(job).map_err(|_| StoreError::Closed)?;
        }
        rx.await.map_err(|_| StoreError::Closed)?
    }
}
