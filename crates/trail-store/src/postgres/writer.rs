//! Group commit in PostgreSQL: prepared rows of every waiting batch written in one
//! transaction per group, under each organization's log lock, with the tree's new
//! nodes and a signed checkpoint.

use std::net::IpAddr;

use trail_core::{
    checkpoint::{self, Checkpoint},
    merkle::{leaf_hash, Frontier, Hash},
    Event, NewEvent, Timestamp,
};
use uuid::Uuid;

use super::{index::doc_words, index::TsVector, now_us, org_id, pg, tree::nodes, Inner, PgStore};
use crate::{
    prepare::LeafTemplate,
    rollup::{Facts, Tally},
    row::IndexedCopy,
    Appended, StoreError,
};

pub(super) type Reply = tokio::sync::oneshot::Sender<Result<Vec<Appended>, StoreError>>;

/// An event's column values (all but organization, seq, position and leaf), made
/// before the group's transaction.
pub(super) struct PgRow {
    pub(super) id: Uuid,
    pub(super) ts: i64,
    pub(super) received: i64,
    pub(super) category: String,
    pub(super) operation: String,
    pub(super) result: i16,
    pub(super) status: Option<i32>,
    /// actor id, name, email, company, request id, resource type, id, name, workspace
    /// id, name, project, cluster, namespace.
    pub(super) text: [Option<String>; 13],
    pub(super) ip: Option<IpAddr>,
    pub(super) doc: TsVector,
}

impl PgRow {
    /// The row of an event: its indexed copy (the one form `verify` checks it against)
    /// and its search document.
    pub(super) fn new(ev: &Event) -> PgRow {
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

/// What rows add to the per-day counts.
pub(super) fn tally<'a>(org: i64, rows: impl Iterator<Item = &'a PgRow>) -> Tally {
    let mut t = Tally::default();
    for r in rows {
        t.add(org, r.facts(), 1);
    }
    t
}

impl PgRow {
    /// What the per-day counts count the row by.
    pub(super) fn facts(&self) -> Facts<'_> {
        Facts {
            ts: self.ts,
            category: &self.category,
            operation: &self.operation,
            result: self.result as i64,
            email: self.text[2].as_deref(),
            name: self.text[1].as_deref(),
        }
    }
}

/// An event made ready outside the group's lock: its row and its leaf but for the seq.
pub(super) struct PgPrepared {
    pub(super) row: PgRow,
    idem: Option<String>,
    leaf: LeafTemplate,
}

impl PgPrepared {
    pub(super) fn new(org: &str, id: Uuid, new: NewEvent, received_at: Timestamp) -> PgPrepared {
        let (ev, leaf) = LeafTemplate::new(org, id, new, received_at);
        PgPrepared { row: PgRow::new(&ev), idem: ev.idempotency_key, leaf }
    }
}

/// A batch whose events were prepared.
pub(super) struct PgBatch {
    pub(super) org: String,
    pub(super) events: Vec<PgPrepared>,
}

/// Inserts event rows `(row, seq, leaf)` (their partitions must exist) in one statement.
pub(super) async fn insert_events(
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
pub(super) async fn insert_nodes(
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

impl PgStore {
    /// Creates the monthly partitions a batch needs, each in its own statement (so
    /// that concurrent appends do not hold the parent's lock for a whole batch).
    /// Appends every batch waiting in this process in one transaction (group commit):
    /// the first caller to find no group in flight writes what has queued up; the
    /// others wait for their answer, or for the lock if their batch is still waiting.
    pub(super) async fn group_append(&self, batch: PgBatch) -> Result<Vec<Appended>, StoreError> {
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
    async fn write_group(&self, group: Vec<(PgBatch, Reply)>) {
        let mut results: Vec<Option<Result<Vec<Appended>, StoreError>>> = group.iter().map(|_| None).collect();
        let mut outcome = self.write_group_tx(&group, &mut results, false).await;
        if group.len() > 1
            && matches!(
                outcome,
                Err(StoreError::Database(_)
                    | StoreError::Conflict { .. }
                    | StoreError::Corrupt(_)
                    | StoreError::Invalid { .. })
            )
        {
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
        let mut grown: Vec<(&str, Frontier)> = Vec::new();
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
            // The tree established from the leaves (see `seal`), so that what is signed
            // grew from them; without it the stored nodes, and nothing is signed.
            let trusted = match &self.signer {
                Some(_) => self.established(&tx, org, slug, size as u64).await?,
                None => None,
            };
            let sealed = trusted.is_some();
            let mut frontier = match trusted {
                Some(t) => t,
                None => Frontier { size: size as u64, nodes: nodes(&tx, org, Frontier::shape(size as u64)).await? },
            };
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
                if let (Some(signer), true) = (&self.signer, sealed) {
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
            if sealed {
                grown.push((slug, frontier));
            }
        }
        tx.commit().await.map_err(|e| match e.as_db_error() {
            // The server refused the commit: nothing was stored.
            Some(_) => pg(e),
            None => StoreError::CommitUnknown(e.to_string()),
        })?;
        for (slug, tree) in grown {
            self.seal.set_trusted(slug, tree);
        }
        Ok(())
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
        let (mut new_keys, mut new_key_ids, mut new_key_seqs, mut new_key_received) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
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
                    new_key_received.push(p.row.received);
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
        super::rollup::apply(tx, &tally(org, rows.iter().map(|(r, _, _)| *r))).await?;
        insert_nodes(tx, org, &nodes).await?;
        if !new_keys.is_empty() {
            tx.execute(
                "INSERT INTO idempotency (org_id, key, id, seq, received) SELECT $1, u.k, u.i, u.s, u.r \
                 FROM UNNEST($2::TEXT[], $3::UUID[], $4::INT8[], $5::INT8[]) AS u(k, i, s, r)",
                &[&org, &new_keys, &new_key_ids, &new_key_seqs, &new_key_received],
            )
            .await
            .map_err(pg)?;
        }
        Ok(all_acks)
    }
}
