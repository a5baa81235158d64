//! The client and the layer against a real Trail server started here: events buffered
//! while the server is away are all stored once it is back (no loss, no duplicates),
//! the counters say so, and an axum app's mutating requests are recorded.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{extract::Request, middleware::Next, routing::post, Router};
use serde_json::json;
use trail_client::{Actor, AuditLayer, Client, Config};
use trail_store::{prelude::*, sqlite::SqliteStore, KeyScope, Org};

struct Trail {
    store: Arc<SqliteStore>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Trail {
    async fn start(store: Arc<SqliteStore>, addr: SocketAddr) -> Trail {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let state = trail_server::AppState::new(
            store.clone(),
            trail_server::ServerConfig::default(),
            trail_server::system_clock(),
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(trail_server::serve(listener, state, async move {
            let _ = rx.await;
        }));
        Trail { store, stop: Some(tx), done: Some(done) }
    }

    async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(d) = self.done.take() {
            let _ = d.await;
        }
    }

    async fn stored(&self) -> Vec<trail_core::Event> {
        let rows = self.store.scan("acme", 0, 100_000).await.unwrap();
        rows.iter().map(|(_, l)| trail_core::Event::from_leaf(l).unwrap()).collect()
    }
}

async fn setup() -> (tempfile::TempDir, Arc<SqliteStore>, String, SocketAddr) {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("trail.db"), Default::default()).unwrap());
    store.ensure_org(Org { slug: "acme".into(), name: "Acme".into() }).await.unwrap();
    let key = trail_server::create_api_key(&*store, "acme", KeyScope::Ingest, "client").await.unwrap().0;
    // A free port, for a server that stops and comes back on it.
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    (dir, store, key, addr)
}

fn config(addr: SocketAddr, key: &str) -> Config {
    let mut c = Config::new(format!("http://{addr}"), key);
    c.batch_size = 20;
    c.batch_age = Duration::from_millis(50);
    c.retry_base = Duration::from_millis(20);
    c.retry_max = Duration::from_millis(200);
    c.timeout = Duration::from_secs(5);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_while_trail_is_away_and_nothing_is_stored_twice() {
    let (_dir, store, key, addr) = setup().await;
    let mut trail = Trail::start(store.clone(), addr).await;
    let client = Client::new(config(addr, &key));
    for i in 0..100 {
        assert!(client.record(json!({"action": "invoice:create", "request_id": format!("a{i}")})));
    }
    assert!(client.flush(Duration::from_secs(60)).await);
    assert_eq!(trail.stored().await.len(), 100);
    // Trail stops; the app goes on recording; one event is invalid.
    trail.stop().await;
    for i in 0..50 {
        client.record(json!({"action": "invoice:void", "request_id": format!("b{i}")}));
    }
    client.record(json!({"action": "no category"}));
    let flushing = tokio::spawn({
        let c = client.clone();
        async move { c.flush(Duration::from_secs(120)).await }
    });
    // The flush waits for Trail: it is retrying.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while client.stats().retries == 0 {
        assert!(std::time::Instant::now() < deadline, "no retry while Trail was away");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!flushing.is_finished());
    let trail = Trail::start(store.clone(), addr).await;
    assert!(flushing.await.unwrap());
    let stored = trail.stored().await;
    assert_eq!(stored.len(), 150, "every event once");
    let mut keys: Vec<_> = stored.iter().filter_map(|e| e.idempotency_key.clone()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 150, "each with its own idempotency key");
    let s = client.stats();
    assert_eq!((s.sent, s.dropped_full, s.dropped_invalid, s.rejected), (150, 0, 1, 0), "{s:?}");
    assert!(s.retries >= 1);
    assert!(client.shutdown(Duration::from_secs(60)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_records_mutating_requests_of_an_axum_app() {
    let (_dir, store, key, addr) = setup().await;
    let trail = Trail::start(store.clone(), addr).await;
    let client = Client::new(config(addr, &key));
    // The app's own authentication puts the actor in the request's extensions.
    async fn auth(mut req: Request, next: Next) -> axum::response::Response {
        let user = req.headers().get("x-user").and_then(|v| v.to_str().ok()).map(str::to_string);
        if let Some(user) = user {
            req.extensions_mut().insert(Actor { email: Some(user), ..Actor::default() });
        }
        next.run(req).await
    }
    let app = Router::new()
        .route(
            "/orders/{id}",
            post(|| async { "ok" })
                .get(|| async { "order" })
                .delete(|| async { (axum::http::StatusCode::FORBIDDEN, "no") }),
        )
        .layer(AuditLayer::new(client.clone()).category("shop"))
        .layer(axum::middleware::from_fn(auth));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await });
    let http = reqwest::Client::new();
    let base = format!("http://{app_addr}");
    http.post(format!("{base}/orders/7"))
        .header("x-user", "ann@example.com")
        .header("x-request-id", "req-7")
        .send()
        .await
        .unwrap();
    http.get(format!("{base}/orders/7")).send().await.unwrap();
    http.delete(format!("{base}/orders/8")).header("x-user", "bob@example.com").send().await.unwrap();
    assert!(client.flush(Duration::from_secs(60)).await);
    let stored = trail.stored().await;
    assert_eq!(stored.len(), 2, "reads are not recorded: {stored:?}");
    let created = &stored[0];
    assert_eq!(created.action, "shop:post /orders/{id}");
    assert_eq!((created.status_code, created.request_id.as_deref()), (Some(200), Some("req-7")));
    assert_eq!(created.actor.as_ref().and_then(|a| a.email.as_deref()), Some("ann@example.com"));
    assert_eq!(created.source_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(created.details.as_ref().unwrap()["path"], "/orders/7", "the actual path beside the route");
    let refused = &stored[1];
    assert_eq!((refused.action.as_str(), refused.result), ("shop:delete /orders/{id}", trail_core::Outcome::Failed));
    assert_eq!(refused.status_code, Some(403));

    // Reads when asked; behind a trusted proxy, the address it forwarded.
    let layer = AuditLayer::new(client.clone()).with_reads(true).record_paths(false);
    let app = Router::new()
        .route("/reports/{who}", axum::routing::get(|| async { "[]" }))
        .layer(layer.trusted_proxies(["127.0.0.1".parse().unwrap()]));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxied = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await });
    http.get(format!("http://{proxied}/reports/ann@example.com"))
        .header("x-forwarded-for", "192.0.2.1, 198.51.100.7, 127.0.0.1")
        .send()
        .await
        .unwrap();
    assert!(client.flush(Duration::from_secs(60)).await);
    let stored = trail.stored().await;
    let read = stored.last().unwrap();
    assert_eq!(read.action, "api:get /reports/{who}");
    assert!(read.details.is_none(), "paths not recorded when turned off: {:?}", read.details);
    assert_eq!(read.source_ip.as_deref(), Some("198.51.100.7"), "the last address the trusted proxy did not add");
}

/// A key Trail refuses (unknown: 401; of another scope: 403) is not retried: the
/// client stops sending, counts the events as rejected, says why, and logs one error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_stops_the_client_and_says_so() {
    let (_dir, store, _key, addr) = setup().await;
    let trail = Trail::start(store.clone(), addr).await;
    let read = trail_server::create_api_key(&*store, "acme", KeyScope::Read, "client").await.unwrap().0;
    for (key, status) in [("trail_in_notakey", "HTTP 401"), (read.as_str(), "HTTP 403")] {
        let client = Client::new(config(addr, key));
        for i in 0..30 {
            client.record(json!({"action": "invoice:create", "request_id": format!("r{i}")}));
        }
        assert!(client.flush(Duration::from_secs(60)).await, "settled, not retried forever");
        for i in 0..15 {
            client.record(json!({"action": "invoice:create", "request_id": format!("s{i}")}));
        }
        assert!(client.flush(Duration::from_secs(60)).await);
        let s = client.stats();
        assert_eq!((s.sent, s.rejected, s.retries), (0, 45, 0), "{s:?}");
        assert!(client.refusal().unwrap().starts_with(status), "{:?}", client.refusal());
        assert!(client.shutdown(Duration::from_secs(60)).await);
    }
    let text = logs().text();
    assert_eq!(text.matches("Trail refused the audit client's key").count(), 2, "one error per client: {text}");
    assert!(text.contains("HTTP 401") && text.contains("HTTP 403"), "{text}");
    assert!(trail.stored().await.iter().all(|e| e.action.starts_with("api_key:")), "nothing stored");
}

/// With Trail away, `flush` and `shutdown` return when their deadline passes instead
/// of waiting for ever (Ctrl-C in an app must not hang).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_and_shutdown_keep_their_deadline() {
    let (_dir, _store, key, addr) = setup().await;
    let client = Client::new(config(addr, &key));
    client.record(json!({"action": "invoice:create"}));
    assert!(!client.flush(Duration::from_millis(300)).await, "Trail is away: not delivered");
    assert_eq!(client.stats().sent, 0);
    assert!(!client.shutdown(Duration::from_millis(300)).await);
}

/// The log of this test binary (a global subscriber: one set per thread would miss
/// the client's own tasks), read back by the test that expects an error in it.
fn logs() -> &'static Logs {
    static LOGS: std::sync::OnceLock<Logs> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let subscriber = tracing_subscriber::fmt().with_writer(logs.clone()).with_ansi(false).finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        logs
    })
}

/// A log writer the test reads back.
#[derive(Clone, Default)]
struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}
