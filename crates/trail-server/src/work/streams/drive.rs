//! The drivers. A supervisor leases this server's share of the active streams (a lease
//! runs out when its server stops, and another server takes the stream over) and runs
//! one driver per leased stream. A driver reads from the stream's cursor the events a
//! signed checkpoint covers (archived periods included), keeps those its query
//! matches, sends a batch, and moves the cursor from where it started, only while it
//! holds the lease: at least once, in seq order, never skipping. Failures are retried
//! with backoff; a stream failing for `[streams] alert_after` is recorded as
//! `stream:failing`, and a stream its receiver refuses for good (410) is disabled and
//! recorded as `stream:disabled`; the built-in alert rule `stream_failing` sends on
//! both.

use std::time::Duration;

use serde_json::json;
use trail_core::{Event, Filter, Timestamp};
use trail_store::streams::{Progress, Stream, StreamState};

use super::{
    format::{Item, Origin},
    send::{self, Batch, Outcome},
};
use crate::work::{selfaudit, Services, WorkError};

/// The longest a driver sleeps without looking (a covering checkpoint may lag an
/// append by about a second).
const IDLE: Duration = Duration::from_millis(250);
/// Batches sent per step at most.
const STEP_BATCHES: usize = 8;

pub async fn supervise(st: Services, spawner: crate::work::Spawner) {
    let lease = st.config.streams.lease;
    let mut changes = st.streams.changes();
    loop {
        changes.borrow_and_update();
        let now = (st.clock)().0;
        match st.store.lease_streams(&st.streams.owner, Timestamp(now), Timestamp(now + lease.as_micros() as i64)).await
        {
            Ok(held) => {
                let mut running = st.streams.running.lock().unwrap_or_else(|e| e.into_inner());
                running.retain(|_, h| !h.is_finished());
                for s in held {
                    if !running.contains_key(&s.id) {
                        let st2 = st.clone();
                        running.insert(s.id, spawner.spawn(async move { drive(st2, s.org, s.id).await }));
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot lease streams"),
        }
        let _ = tokio::time::timeout(lease / 3, changes.changed()).await;
    }
}

/// The wait before attempt `n + 1` after `n` failed ones: doubled per attempt up to
/// `max`, times a random factor in [0.5, 1.5).
pub fn backoff(base: Duration, max: Duration, attempts: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempts.saturating_sub(1).min(20)).min(max);
    exp.mul_f64(0.5 + rand::random::<f64>())
}

fn origin(st: &Services) -> Origin {
    let host = st.config.log.as_ref().map(|l| l.name.clone()).unwrap_or_else(|| "trail".into());
    Origin { host, version: env!("CARGO_PKG_VERSION") }
}

/// What one read found.
enum Step {
    /// Nothing new is covered by a checkpoint yet.
    Idle,
    /// Events were looked at: the batch of those that match (maybe none), up to
    /// `next`.
    Batch { items: Vec<Item>, next: u64, checkpoint: String },
    /// Seqs that are neither online nor archived (never skipped: the stream fails).
    Missing(String),
}

async fn read(st: &Services, s: &Stream, filter: Option<&Filter>) -> Result<Step, WorkError> {
    let Some(cp) = st.store.checkpoint(&s.org, None).await? else { return Ok(Step::Idle) };
    if s.cursor >= cp.size {
        return Ok(Step::Idle);
    }
    // A step reads several batches' worth, so that a stream that is behind catches up
    // with one read and one stored position per step.
    let size = st.config.streams.batch_size.max(1) * STEP_BATCHES;
    let want = size.min((cp.size - s.cursor) as usize);
    let rows = trail_store::archive::scan_merged(&*st.store, st.archive.as_deref(), &s.org, s.cursor, want).await?;
    let mut expect = s.cursor;
    let mut items = Vec::new();
    let now = (st.clock)();
    for (seq, leaf) in rows {
        if seq >= cp.size || items.len() >= size {
            break;
        }
        if seq != expect {
            break;
        }
        expect += 1;
        // Only a query needs the whole event; the formats read what they need.
        let wanted = match filter {
            None => true,
            Some(f) => f.matches(
                &Event::from_leaf(&leaf).map_err(|e| WorkError::Internal(format!("seq {seq} is unreadable: {e}")))?,
                now,
            ),
        };
        if wanted {
            items.push(Item { seq, leaf });
        }
    }
    if expect == s.cursor {
        return Ok(Step::Missing(format!(
            "seq {} is neither stored nor archived (the archive directory may be missing); the stream waits there",
            s.cursor
        )));
    }
    Ok(Step::Batch { items, next: expect, checkpoint: cp.note })
}

/// Drives one stream while this server holds it.
async fn drive(st: Services, org: String, id: i64) {
    let owner = st.streams.owner.clone();
    let mut wake = st.streams.watch();
    let origin = origin(&st);
    let mut client = send::Client::default();
    let mut attempts = 0u32;
    loop {
        let s = match st.store.get_stream(&org, id).await {
            Ok(Some(s)) if s.state == StreamState::Active && s.owner.as_deref() == Some(owner.as_str()) => s,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, id, "cannot read a stream");
                tokio::time::sleep(IDLE).await;
                continue;
            }
        };
        let filter = match s.query.as_deref().map(trail_core::query::parse).transpose() {
            Ok(f) => f,
            Err(e) => {
                fail(&st, &s, &owner, format!("the query is invalid: {}", e.message), false).await;
                return;
            }
        };
        let step = match read(&st, &s, filter.as_ref()).await {
            Ok(x) => x,
            Err(e) => Step::Missing(e.to_string()),
        };
        match step {
            Step::Idle => {
                wake.borrow_and_update();
                let _ = tokio::time::timeout(IDLE, wake.changed()).await;
            }
            Step::Missing(error) => {
                attempts += 1;
                fail(&st, &s, &owner, error, false).await;
                pause(&st, attempts).await;
            }
            Step::Batch { items, next, .. } if items.is_empty() => {
                let p = healthy(next, None, 0, (st.clock)().0);
                progressed(&st, &s, &owner, p).await;
            }
            Step::Batch { items, next, checkpoint } => {
                let size = st.config.streams.batch_size.max(1);
                // A batch that is not full waits a little for more.
                if items.len() < size && attempts == 0 {
                    let young = items.first().and_then(|i| trail_core::LeafView::read(&i.leaf).ok()).is_some_and(|v| {
                        (st.clock)().0 - v.received().unwrap_or(0) < st.config.streams.batch_wait.as_micros() as i64
                    });
                    if young {
                        tokio::time::sleep(st.config.streams.batch_wait.min(IDLE)).await;
                        continue;
                    }
                }
                // Owned batches (moved, not copied, to the renderer), with where each begins.
                let total = items.len();
                let starts: Vec<u64> = items.iter().step_by(size).map(|i| i.seq).collect();
                let mut last_seq = None;
                let mut delivered = 0;
                let mut outcome = Outcome::Delivered;
                let checkpoint: std::sync::Arc<str> = checkpoint.into();
                let mut rest = items.into_iter().peekable();
                while rest.peek().is_some() {
                    let chunk: Vec<Item> = rest.by_ref().take(size).collect();
                    let (n, last) = (chunk.len(), chunk.last().map(|i| i.seq));
                    let batch = Batch { items: chunk, checkpoint: checkpoint.clone() };
                    outcome = send::attempt(&st, &s, batch, &origin, &mut client).await;
                    if outcome != Outcome::Delivered {
                        break;
                    }
                    delivered += n;
                    last_seq = last;
                }
                let mut s = s;
                if delivered > 0 {
                    // The position moves past what was delivered (and what the query
                    // skipped before it), up to the first batch that was not.
                    let upto = if delivered == total { next } else { starts[delivered / size] };
                    let p = healthy(upto, last_seq, delivered as u64, (st.clock)().0);
                    if !progressed(&st, &s, &owner, p).await {
                        continue;
                    }
                    s = Stream { cursor: upto, failing_since: None, alerted: false, last_error: None, ..s };
                }
                match outcome {
                    Outcome::Delivered => attempts = 0,
                    Outcome::Failed(error) => {
                        attempts += 1;
                        fail(&st, &s, &owner, error, false).await;
                        pause(&st, attempts).await;
                    }
                    Outcome::Gone(error) => {
                        fail(&st, &s, &owner, error, true).await;
                        return;
                    }
                }
            }
        }
    }
}

/// Waits out a retry's delay (a change to the stream ends it early).
async fn pause(st: &Services, attempts: u32) {
    let c = &st.config.streams;
    let mut changes = st.streams.changes();
    let _ = tokio::time::timeout(backoff(c.retry_base, c.retry_max, attempts), changes.changed()).await;
}

/// A step that moved the cursor: failing health is cleared.
fn healthy(next: u64, last: Option<u64>, sent: u64, at: i64) -> Progress {
    Progress { cursor: next, last_seq: last, sent, at, ..Progress::default() }
}

/// Stores a successful step (false: the stream moved or changed hands meanwhile, and
/// nothing was stored); a stream that was failing (and was alerted) records that it
/// recovered.
async fn progressed(st: &Services, s: &Stream, owner: &str, p: Progress) -> bool {
    match st.store.stream_progress(s.id, owner, s.cursor, &p).await {
        Ok(true) => {
            if s.alerted {
                let details = json!({"stream": s.id, "cursor": p.cursor, "failed_since": s.failing_since});
                record(st, s, "stream:recovered", true, details, None).await;
            }
            true
        }
        Ok(false) => false,
        Err(e) => {
            tracing::warn!(error = %e, id = s.id, "cannot store a stream's progress");
            tokio::time::sleep(IDLE).await;
            false
        }
    }
}

/// Stores a failed attempt (the cursor stays). Past `alert_after` of failing, the
/// failure is recorded once as `stream:failing`; `disable` stops the stream until an
/// administrator resumes it, recorded as `stream:disabled`.
async fn fail(st: &Services, s: &Stream, owner: &str, error: String, disable: bool) {
    let now = (st.clock)().0;
    let since = s.failing_since.unwrap_or(now);
    let alert = !s.alerted && !disable && now - since >= st.config.streams.alert_after.as_micros() as i64;
    let p = Progress {
        cursor: s.cursor,
        failed: 1,
        last_error: Some(error.clone()),
        failing_since: Some(since),
        alerted: s.alerted || alert || disable,
        disable,
        at: now,
        ..Progress::default()
    };
    tracing::warn!(id = s.id, org = s.org, error, "a stream's attempt failed");
    match st.store.stream_progress(s.id, owner, s.cursor, &p).await {
        Ok(true) => {
            if alert {
                let details = json!({
                    "stream": s.id, "cursor": s.cursor, "last_seq": s.last_seq,
                    "failing_since": trail_core::Timestamp(since).to_rfc3339(),
                });
                record(st, s, "stream:failing", false, details, Some(error.clone())).await;
            }
            if disable {
                let details = json!({"stream": s.id, "cursor": s.cursor});
                record(st, s, "stream:disabled", false, details, Some(error)).await;
            }
        }
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, id = s.id, "cannot store a stream's failure"),
    }
}

async fn record(
    st: &Services,
    s: &Stream,
    action: &'static str,
    ok: bool,
    details: serde_json::Value,
    error: Option<String>,
) {
    let r = selfaudit::Record {
        org: s.org.clone(),
        action,
        ok,
        actor: json!({"id": "trail-streams", "name": "Trail streams", "type": "system"}),
        resource: Some(json!({"type": "stream", "id": s.id.to_string(), "name": s.name})),
        details: Some(details),
        error,
        ip: None,
        user_agent: None,
    };
    selfaudit::record(st, r).await;
}
