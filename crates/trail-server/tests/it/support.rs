//! What the server's tests share: a signed SQLite store with its organizations, API
//! keys, a clock the tests move, and a server on an ephemeral loopback port.

use std::{
    net::SocketAddr,
    path::Path,
    sync::{
        atomic::{AtomicI64, Ordering},
        Arc,
    },
};

use ed25519_dalek::SigningKey;
use tokio::sync::oneshot;
use trail_core::Timestamp;
use trail_server::{AppState, Clock, LogKey};
use trail_store::{
    prelude::*,
    sqlite::{SqliteConfig, SqliteStore},
    KeyScope, LogSigner, Org, Store,
};

/// The installation name the tests' logs are signed under.
pub const LOG_NAME: &str = "trail.test";

/// The tests' checkpoint signing key.
pub fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[5; 32])
}

/// The public half, as the server is told it (for evidence files).
pub fn log_key() -> LogKey {
    LogKey { name: LOG_NAME.into(), public: signing_key().verifying_key() }
}

/// A store at `dir/trail.db` holding `orgs`; its checkpoints are signed with `signed`.
pub async fn store(dir: &Path, orgs: &[&str], signed: bool) -> Arc<SqliteStore> {
    let signer = signed.then(|| Arc::new(LogSigner { name: LOG_NAME.into(), key: signing_key() }));
    let config = SqliteConfig { signer, ..SqliteConfig::default() };
    let store = Arc::new(SqliteStore::open(&dir.join("trail.db"), config).unwrap());
    for slug in orgs {
        store.ensure_org(Org { slug: slug.to_string(), name: slug.to_string() }).await.unwrap();
    }
    store
}

/// A new API key of `scope` for `org`.
pub async fn key(store: &dyn Store, org: &str, scope: KeyScope) -> String {
    trail_server::create_api_key(store, org, scope, "test").await.unwrap().0
}

/// A clock that starts at the real time and moves only when a test moves it (µs).
pub fn manual_clock() -> (Arc<AtomicI64>, Clock) {
    let now = Arc::new(AtomicI64::new(Timestamp::from_datetime(chrono::Utc::now()).0));
    let read = now.clone();
    (now, Arc::new(move || Timestamp(read.load(Ordering::SeqCst))))
}

/// A server running on a loopback port until this is dropped.
pub struct Running {
    pub addr: SocketAddr,
    pub base: String,
    _shutdown: oneshot::Sender<()>,
}

/// Serves `state` on `127.0.0.1:0`.
pub async fn serve(state: AppState) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(trail_server::serve(listener, state, async move {
        let _ = rx.await;
    }));
    Running { addr, base: format!("http://{addr}"), _shutdown: tx }
}

/// Polls `f` every 20 ms until it gives a value; fails after a minute.
pub async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// An API caller with one key.
pub struct Api {
    pub base: String,
    pub key: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str, key: &str) -> Api {
        Api { base: base.to_string(), key: key.to_string(), http: reqwest::Client::new() }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut r = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.key);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let code = r.status().as_u16();
        (code, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn ingest(&self, events: serde_json::Value) {
        let (code, v) = self.call(reqwest::Method::POST, "/api/v1/events", Some(events)).await;
        assert!(code < 300, "{v}");
    }
}
