//! Send audit events to [Trail](https://github.com/) from a Rust service.
//!
//! [`Client`] buffers events (a bounded queue: a full queue drops the event and counts
//! it, never blocks the caller), sends them in batches by size and age to
//! `POST /api/v1/events`, retries with exponential backoff while Trail is unreachable or
//! answers 5xx/429 (every event carries an idempotency key, so a retried batch is
//! stored once), and on [`Client::flush`] or [`Client::shutdown`] delivers what is
//! buffered. [`Client::stats`] counts what was sent, retried and dropped.
//!
//! [`AuditLayer`] is a tower layer for axum that records every mutating request
//! (method and matched route as the action, status as the result, the [`Actor`] the
//! app puts in the request's extensions, the request id header, the client address
//! from the connection or trusted proxies); reads are recorded only when asked.
//!
//! ```no_run
//! # async fn demo() {
//! use trail_client::{Client, Config};
//! let client = Client::new(Config::new("https://trail.example.com", "trail_ingest_…"));
//! client.record(serde_json::json!({"action": "invoice:void", "actor": {"email": "ann@example.com"}}));
//! client.shutdown().await; // delivers what is buffered
//! # }
//! ```

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

mod layer;

pub use layer::{Actor, AuditLayer, AuditService};

/// Where and how events are sent.
#[derive(Debug, Clone)]
pub struct Config {
    /// Trail's base URL, e.g. `https://trail.example.com`.
    pub url: String,
    /// An ingest API key.
    pub key: String,
    /// Events held while Trail is slow or away; beyond it `record` drops (and counts).
    pub buffer: usize,
    /// Events per request at most.
    pub batch_size: usize,
    /// How long an event may wait for its batch to fill.
    pub batch_age: Duration,
    /// The first retry's delay; doubled per attempt up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// How long one request may take.
    pub timeout: Duration,
}

impl Config {
    pub fn new(url: impl Into<String>, key: impl Into<String>) -> Config {
        Config {
            url: url.into().trim_end_matches('/').to_string(),
            key: key.into(),
            buffer: 10_000,
            batch_size: 500,
            batch_age: Duration::from_millis(500),
            retry_base: Duration::from_millis(200),
            retry_max: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
        }
    }
}

/// What the client did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events Trail acknowledged (including ones it already had).
    pub sent: u64,
    /// Requests sent again after a failure.
    pub retries: u64,
    /// Events dropped because the buffer was full.
    pub dropped_full: u64,
    /// Events Trail refused as invalid (422), dropped with a warning.
    pub dropped_invalid: u64,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    retries: AtomicU64,
    dropped_full: AtomicU64,
    dropped_invalid: AtomicU64,
}

enum Msg {
    Event(Value),
    /// Answered once everything queued before it is delivered.
    Flush(oneshot::Sender<()>),
}

/// A buffered, batching, retrying client. Cheap to clone; clones share the buffer.
#[derive(Clone)]
pub struct Client {
    tx: mpsc::Sender<Msg>,
    counters: Arc<Counters>,
}

impl Client {
    /// Starts the sender on the current tokio runtime.
    pub fn new(config: Config) -> Client {
        let (tx, rx) = mpsc::channel(config.buffer.max(1));
        let counters = Arc::new(Counters::default());
        tokio::spawn(run(config, rx, counters.clone()));
        Client { tx, counters }
    }

    /// Queues one event (a JSON object with Trail's event fields). An idempotency key
    /// is added unless it has one. Never waits: with the buffer full the event is
    /// dropped, counted in [`Stats::dropped_full`], and `false` returned.
    pub fn record(&self, mut event: Value) -> bool {
        if let Some(m) = event.as_object_mut() {
            m.entry("idempotency_key").or_insert_with(|| Value::from(uuid::Uuid::new_v4().to_string()));
        }
        match self.tx.try_send(Msg::Event(event)) {
            Ok(()) => true,
            Err(_) => {
                self.counters.dropped_full.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Waits until every event recorded before this call is delivered (retrying as
    /// long as it takes).
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Delivers what is buffered, then stops this clone's use of the sender.
    pub async fn shutdown(self) {
        self.flush().await;
    }

    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            sent: c.sent.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            dropped_full: c.dropped_full.load(Ordering::Relaxed),
            dropped_invalid: c.dropped_invalid.load(Ordering::Relaxed),
        }
    }
}

/// The sender: fills a batch until it is full, old enough, or a flush asks; sends it
/// until Trail takes it.
async fn run(config: Config, mut rx: mpsc::Receiver<Msg>, counters: Arc<Counters>) {
    let http = match reqwest::Client::builder().timeout(config.timeout).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "trail-client cannot make an HTTP client");
            return;
        }
    };
    let mut batch: Vec<Value> = Vec::new();
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        let msg = if batch.is_empty() {
            rx.recv().await
        } else {
            match tokio::time::timeout(config.batch_age, rx.recv()).await {
                Ok(m) => m,
                Err(_) => {
                    send(&http, &config, &counters, std::mem::take(&mut batch)).await;
                    continue;
                }
            }
        };
        match msg {
            Some(Msg::Event(e)) => {
                batch.push(e);
                if batch.len() >= config.batch_size {
                    send(&http, &config, &counters, std::mem::take(&mut batch)).await;
                }
            }
            Some(Msg::Flush(done)) => {
                waiting.push(done);
                send(&http, &config, &counters, std::mem::take(&mut batch)).await;
                for w in waiting.drain(..) {
                    let _ = w.send(());
                }
            }
            None => {
                // Every client is gone: deliver what is left.
                send(&http, &config, &counters, std::mem::take(&mut batch)).await;
                return;
            }
        }
    }
}

/// Sends one batch until Trail takes it: network errors, 5xx, 429 and 401/403 are
/// retried with backoff; an invalid event (422 naming `events[N]`) is dropped and the
/// rest sent again.
async fn send(http: &reqwest::Client, config: &Config, counters: &Counters, mut batch: Vec<Value>) {
    let mut attempt = 0u32;
    while !batch.is_empty() {
        let r = http.post(format!("{}/api/v1/events", config.url)).bearer_auth(&config.key).json(&batch).send().await;
        let retry = match r {
            Ok(r) if r.status().is_success() => {
                counters.sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
                return;
            }
            Ok(r) if r.status().as_u16() == 422 || r.status().as_u16() == 400 => {
                let body: Value = r.json().await.unwrap_or(Value::Null);
                let field = body["error"]["field"].as_str().unwrap_or_default();
                let index = field
                    .strip_prefix("events[")
                    .and_then(|s| s.split(']').next())
                    .and_then(|n| n.parse::<usize>().ok())
                    .filter(|i| *i < batch.len());
                let dropped = match index {
                    Some(i) => vec![batch.remove(i)],
                    None if batch.len() == 1 => std::mem::take(&mut batch),
                    // Unknown which one: send one at a time to find it.
                    None => {
                        for e in std::mem::take(&mut batch) {
                            Box::pin(send(http, config, counters, vec![e])).await;
                        }
                        return;
                    }
                };
                counters.dropped_invalid.fetch_add(dropped.len() as u64, Ordering::Relaxed);
                tracing::warn!(error = %body["error"], "Trail refused an audit event; it is dropped");
                continue;
            }
            Ok(r) => format!("HTTP {}", r.status()),
            Err(e) => e.to_string(),
        };
        attempt += 1;
        counters.retries.fetch_add(1, Ordering::Relaxed);
        let delay = config.retry_base.saturating_mul(1 << attempt.min(16)).min(config.retry_max);
        tracing::warn!(error = retry, ?delay, "Trail did not take a batch of audit events; sending it again");
        tokio::time::sleep(delay).await;
    }
}
