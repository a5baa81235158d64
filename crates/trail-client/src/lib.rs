//! Send audit events to Trail, the self-hostable tamper-evident audit log, from a Rust
//! service.
//!
//! [`Client`] buffers events (a bounded queue: a full queue drops the event and counts
//! it, never blocks the caller), sends them in batches by size and age to
//! `POST /api/v1/events`, retries with exponential backoff while Trail is unreachable or
//! answers 5xx/429 (every event carries an idempotency key, so a retried batch is
//! stored once), and on [`Client::flush`] or [`Client::shutdown`] delivers what is
//! buffered, within a deadline. A key Trail refuses (401, 403) is not retried: the
//! client stops sending, logs one `tracing` error, counts the events as
//! [`Stats::rejected`] and says why in [`Client::refusal`]. [`Client::stats`] counts
//! what was sent, retried and dropped.
//!
//! [`AuditLayer`] is a tower layer for axum that records every mutating request
//! (method and matched route as the action, the actual path in `details.path` unless
//! turned off, status as the result, the [`Actor`] the app puts in the request's
//! extensions, the request id header, the client address from the connection or
//! trusted proxies); reads are recorded only when asked.
//!
//! ```no_run
//! # async fn demo() -> Result<(), trail_client::ConfigError> {
//! use std::time::Duration;
//! use trail_client::{Client, Config};
//! // TRAIL_URL (e.g. https://trail.example.com) and TRAIL_KEY (an ingest key)
//! let client = Client::new(Config::from_env()?);
//! client.record(serde_json::json!({"action": "invoice:void", "actor": {"email": "ann@example.com"}}));
//! let watch = client.clone();
//! if !client.shutdown(Duration::from_secs(5)).await {
//!     eprintln!("audit events left undelivered; so far: {:?}", watch.stats());
//! }
//! # Ok(())
//! # }
//! ```

#![cfg_attr(docsrs, feature(doc_auto_cfg))]
#![warn(missing_docs)]

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

mod layer;

/// The README's example compiles.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExample;

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
    /// The longest delay between two attempts.
    pub retry_max: Duration,
    /// How long one request may take.
    pub timeout: Duration,
}

/// What is missing from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Trail's base URL and an ingest key, with the defaults for everything else.
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

    /// [`Config::new`] from `TRAIL_URL` and `TRAIL_KEY`; an error names the one that
    /// is missing or empty.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let var = |name: &str| match get(name) {
            Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
            _ => Err(ConfigError(format!("{name} is not set (Trail's URL in TRAIL_URL, an ingest key in TRAIL_KEY)"))),
        };
        Ok(Config::new(var("TRAIL_URL")?, var("TRAIL_KEY")?))
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
    /// Events not delivered because Trail refused the key (401 or 403): after the
    /// first refusal nothing more is sent (see [`Client::refusal`]).
    pub rejected: u64,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    retries: AtomicU64,
    dropped_full: AtomicU64,
    dropped_invalid: AtomicU64,
    rejected: AtomicU64,
    /// Why Trail refused the key, once it did.
    refusal: Mutex<Option<String>>,
    refused: AtomicBool,
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

    /// Waits, at most `within`, until every event recorded before this call is
    /// delivered (retried as often as the time allows) or settled otherwise (dropped
    /// as invalid, or rejected with the key). `true` when they all were; `false` when
    /// the time ran out first (Trail away), the events still buffered and retried.
    pub async fn flush(&self, within: Duration) -> bool {
        let (tx, rx) = oneshot::channel();
        tokio::time::timeout(within, async { self.tx.send(Msg::Flush(tx)).await.is_ok() && rx.await.is_ok() })
            .await
            .unwrap_or(false)
    }

    /// Delivers what is buffered within `within` (see [`Client::flush`]), then stops
    /// this clone's use of the sender. `false` when some events were not delivered in
    /// time: [`Client::stats`] of another clone, taken before, says how many were sent.
    pub async fn shutdown(self, within: Duration) -> bool {
        self.flush(within).await
    }

    /// What the client did so far.
    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            sent: c.sent.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            dropped_full: c.dropped_full.load(Ordering::Relaxed),
            dropped_invalid: c.dropped_invalid.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
        }
    }

    /// Why Trail refused the key (its status and message), once it did; from then on
    /// nothing is sent and every event counts as [`Stats::rejected`].
    pub fn refusal(&self) -> Option<String> {
        self.counters.refusal.lock().ok().and_then(|r| r.clone())
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

/// Sends one batch until Trail takes it: network errors, 5xx and 429 are retried with
/// backoff; an invalid event (422 naming `events[N]`) is dropped and the rest sent
/// again; a refused key (401, 403) is permanent: the batch, and every later one, is
/// rejected without being sent, and one error logged.
async fn send(http: &reqwest::Client, config: &Config, counters: &Counters, mut batch: Vec<Value>) {
    let mut attempt = 0u32;
    while !batch.is_empty() {
        if counters.refused.load(Ordering::Relaxed) {
            counters.rejected.fetch_add(batch.len() as u64, Ordering::Relaxed);
            return;
        }
        let r = http.post(format!("{}/api/v1/events", config.url)).bearer_auth(&config.key).json(&batch).send().await;
        let retry = match r {
            Ok(r) if r.status().is_success() => {
                counters.sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
                return;
            }
            Ok(r) if r.status().as_u16() == 401 || r.status().as_u16() == 403 => {
                let status = r.status();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                let why =
                    format!("HTTP {status}: {}", body["error"]["message"].as_str().unwrap_or("the key is refused"));
                tracing::error!(
                    error = %why,
                    "Trail refused the audit client's key; no audit events will be sent (check TRAIL_KEY: an ingest key of the organization)"
                );
                if let Ok(mut r) = counters.refusal.lock() {
                    *r = Some(why);
                }
                counters.refused.store(true, Ordering::Relaxed);
                continue;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_comes_from_trail_url_and_trail_key() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        let c = Config::from_lookup(env(&[("TRAIL_URL", "http://127.0.0.1:8080/"), ("TRAIL_KEY", "trail_in_x")]));
        let c = c.unwrap();
        assert_eq!((c.url.as_str(), c.key.as_str()), ("http://127.0.0.1:8080", "trail_in_x"));
        let missing = Config::from_lookup(env(&[("TRAIL_KEY", "trail_in_x")])).unwrap_err();
        assert!(missing.to_string().starts_with("TRAIL_URL is not set"), "{missing}");
        let empty = Config::from_lookup(env(&[("TRAIL_URL", "http://t"), ("TRAIL_KEY", " ")])).unwrap_err();
        assert!(empty.to_string().starts_with("TRAIL_KEY is not set"), "{empty}");
    }
}
