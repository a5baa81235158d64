//! Slow and idle clients cannot take the server down: hundreds of half-sent requests
//! are held while a normal request is answered, slow heads and bodies are cut off,
//! the connection cap holds, and live streams are capped per caller.

use std::time::Duration;

use reqwest::StatusCode;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use trail_server::{AppState, ConnectionConfig, ServerConfig};
use trail_store::KeyScope;

use crate::support;

struct Server {
    addr: std::net::SocketAddr,
    read: String,
    ingest: String,
    _running: support::Running,
    _dir: tempfile::TempDir,
}

async fn start(connections: ConnectionConfig) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = support::store(dir.path(), &["acme"], false).await;
    let read = support::key(&*store, "acme", KeyScope::Read).await;
    let ingest = support::key(&*store, "acme", KeyScope::Ingest).await;
    let config = ServerConfig { connections, ..ServerConfig::default() };
    let running = support::serve(AppState::new(store, config, trail_server::system_clock())).await;
    Server { addr: running.addr, read, ingest, _running: running, _dir: dir }
}

/// A connection that sent `bytes` and nothing more.
async fn half_sent(addr: std::net::SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    s
}

/// Reads until the server closes the connection; returns what it sent.
async fn until_closed(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(120), s.read_to_end(&mut out))
        .await
        .expect("the server closes a slow connection")
        .ok();
    String::from_utf8_lossy(&out).into_owned()
}

const HEAD: &[u8] = b"GET /api/v1/events HTTP/1.1\r\nHost: trail\r\nX-Slow: ";

#[tokio::test]
async fn hundreds_of_half_sent_requests_do_not_block_a_normal_one() {
    // Long timeouts: the slow connections stay open throughout (all from this test's
    // own address, which may hold them here).
    let s = start(ConnectionConfig {
        header_timeout: Duration::from_secs(600),
        body_timeout: Duration::from_secs(600),
        max_connections_per_client: 1000,
        ..ConnectionConfig::default()
    })
    .await;
    let mut held = Vec::new();
    for i in 0..600 {
        let bytes: &[u8] = if i % 2 == 0 {
            HEAD
        } else {
            b"POST /api/v1/events HTTP/1.1\r\nHost: trail\r\nContent-Length: 100000\r\n\r\n{\"act"
        };
        held.push(half_sent(s.addr, bytes).await);
    }
    let client = reqwest::Client::new();
    let r = client.get(format!("http://{}/api/v1/events", s.addr)).bearer_auth(&s.read).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = client.get(format!("http://{}/healthz", s.addr)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    drop(held);
}

#[tokio::test]
async fn slow_heads_bodies_and_idle_connections_are_cut_off() {
    let s = start(ConnectionConfig {
        header_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        body_min_rate: 1000,
        ..ConnectionConfig::default()
    })
    .await;
    // A head that never ends: closed without an answer.
    let mut head = half_sent(s.addr, HEAD).await;
    // A body that trickles: 408 with the JSON error, then closed.
    let post = format!(
        "POST /api/v1/events HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\nContent-Length: 100000\r\n\r\n[",
        s.ingest
    );
    let mut body = half_sent(s.addr, post.as_bytes()).await;
    // An idle keep-alive connection after one answered request: closed.
    let mut idle = half_sent(s.addr, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(until_closed(&mut head).await, "");
    let answer = until_closed(&mut body).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"too_slow""#) && answer.contains(r#""field":"body""#), "{answer}");
    let answer = until_closed(&mut idle).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn the_connection_cap_holds_and_frees() {
    let s = start(ConnectionConfig {
        max_connections: 4,
        header_timeout: Duration::from_secs(1),
        ..ConnectionConfig::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(half_sent(s.addr, HEAD).await);
    }
    // Past the cap a connection waits; once the slow ones are cut off it is served.
    let client = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().unwrap();
    let r = client.get(format!("http://{}/healthz", s.addr)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    for mut h in held {
        assert_eq!(until_closed(&mut h).await, "");
    }
}

#[tokio::test]
async fn live_streams_are_capped_per_caller() {
    let s = start(ConnectionConfig { max_streams_per_caller: 2, ..ConnectionConfig::default() }).await;
    let client = reqwest::Client::new();
    let open = || client.get(format!("http://{}/api/v1/events/stream", s.addr)).bearer_auth(&s.read).send();
    let first = open().await.unwrap();
    let second = open().await.unwrap();
    assert_eq!((first.status(), second.status()), (StatusCode::OK, StatusCode::OK));
    let third = open().await.unwrap();
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    let v: serde_json::Value = third.json().await.unwrap();
    assert_eq!(v["error"]["code"], "too_many_attempts");
    // Closing one frees its place (once the server notices the client went).
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let again = open().await.unwrap();
        if again.status() == StatusCode::OK {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "a closed stream's place is never freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(second);
}
