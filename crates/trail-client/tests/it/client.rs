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
    client.flush().await;
    assert_eq!(trail.stored().await.len(), 100);
    // Trail stops; the app goes on recording; one event is invalid.
    trail.stop().await;
    for i in 0..50 {
        client.record(json!({"action": "invoice:void", "request_id": format!("b{i}")}));
    }
    client.record(json!({"action": "no category"}));
    let flushing = tokio::spawn({
        let c = client.clone();
        async move { c.flush().await }
    });
    // The flush waits for Trail: it is retrying.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while client.stats().retries == 0 {
        assert!(std::time::Instant::now() < deadline, "no retry while Trail was away");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!flushing.is_finished());
    let trail = Trail::start(store.clone(), addr).await;
    flushing.await.unwrap();
    let stored = trail.stored().await;
    assert_eq!(stored.len(), 150, "every event once");
    let mut keys: Vec<_> = stored.iter().filter_map(|e| e.idempotency_key.clone()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 150, "each with its own idempotency key");
    let s = client.stats();
    assert_eq!((s.sent, s.dropped_full, s.dropped_invalid), (150, 0, 1), "{s:?}");
    assert!(s.retries >= 1);
    client.shutdown().await;
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
    client.flush().await;
    let stored = trail.stored().await;
    assert_eq!(stored.len(), 2, "reads are not recorded: {stored:?}");
    let created = &stored[0];
    assert_eq!(created.action, "shop:post /orders/{id}");
    assert_eq!((created.status_code, created.request_id.as_deref()), (Some(200), Some("req-7")));
    assert_eq!(created.actor.as_ref().and_then(|a| a.email.as_deref()), Some("ann@example.com"));
    assert_eq!(created.source_ip.as_deref(), Some("127.0.0.1"));
    let refused = &stored[1];
    assert_eq!((refused.action.as_str(), refused.result), ("shop:delete /orders/{id}", trail_core::Outcome::Failed));
    assert_eq!(refused.status_code, Some(403));

    // Reads when asked; behind a trusted proxy, the address it forwarded.
    let app = Router::new()
        .route("/reports", axum::routing::get(|| async { "[]" }))
        .layer(AuditLayer::new(client.clone()).with_reads(true).trusted_proxies(["127.0.0.1".parse().unwrap()]));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxied = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await });
    http.get(format!("http://{proxied}/reports"))
        .header("x-forwarded-for", "192.0.2.1, 198.51.100.7, 127.0.0.1")
        .send()
        .await
        .unwrap();
    client.flush().await;
    let stored = trail.stored().await;
    let read = stored.last().unwrap();
    assert_eq!(read.action, "api:get /reports");
    assert_eq!(read.source_ip.as_deref(), Some("198.51.100.7"), "the last address the trusted proxy did not add");
}
