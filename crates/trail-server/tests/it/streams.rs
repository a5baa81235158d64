//! Streams against a real HTTP receiver started here. The receiver checks every
//! batch's Standard Webhooks signature, its `Trail-First-Seq` / `Trail-Last-Seq`
//! against the lines, the signed checkpoint it carries, and that the copy it keeps
//! continues the log with no gap, edit or reordering (repeats are allowed: at least
//! once). It goes down (503) and comes back, Trail restarts in between, archived days
//! are replayed, and two servers on one PostgreSQL database hand a stream over.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{body::Bytes, extract::State, http::HeaderMap, routing::post, Router};
use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};
use trail_server::{AlertConfig, AppState, ServerConfig, StreamConfig};
use trail_store::{prelude::*, KeyScope, Org};

use crate::support::{self, until, Api};

/// A batch that arrives before the test has told the receiver its stream's secret is
/// answered 503 (and sent again).
const NOT_YET: &str = "no secret yet";

/// What arrived on one path.
#[derive(Default)]
pub(crate) struct Copy {
    /// The lines kept, in seq order (an unfiltered stream: line n is seq n).
    pub lines: Vec<String>,
    /// Seqs of a filtered stream, in the order received.
    pub seqs: Vec<u64>,
    /// The checkpoint note of each batch, with the batch's last seq.
    pub checkpoints: Vec<(u64, String)>,
    pub repeats: usize,
    pub problems: Vec<String>,
    pub headers: Vec<HeaderMap>,
}

#[derive(Default)]
pub(crate) struct Receiver {
    pub secret: Mutex<HashMap<String, String>>,
    pub status: Mutex<u16>,
    pub copies: Mutex<HashMap<String, Copy>>,
}

impl Receiver {
    pub fn copy<T>(&self, path: &str, f: impl FnOnce(&Copy) -> T) -> T {
        let copies = self.copies.lock().unwrap();
        f(copies.get(path).unwrap_or(&Copy::default()))
    }

    fn check(&self, path: &str, headers: &HeaderMap, body: &Bytes) -> Result<(), String> {
        let secret = self.secret.lock().unwrap().get(path).cloned().ok_or(NOT_YET)?;
        standardwebhooks::Webhook::new(&secret)
            .unwrap()
            .verify(body, headers)
            .map_err(|e| format!("signature: {e:?}"))?;
        let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
        let first: u64 = header("trail-first-seq").and_then(|v| v.parse().ok()).ok_or("no Trail-First-Seq")?;
        let last: u64 = header("trail-last-seq").and_then(|v| v.parse().ok()).ok_or("no Trail-Last-Seq")?;
        let note = header("trail-checkpoint").ok_or("no Trail-Checkpoint")?;
        let note = base64::engine::general_purpose::STANDARD.decode(note).map_err(|e| e.to_string())?;
        let note = String::from_utf8(note).map_err(|e| e.to_string())?;
        let cp = trail_core::checkpoint::verify(&note, &vkey()).map_err(|e| format!("checkpoint: {e}"))?;
        if cp.size <= last {
            return Err(format!("checkpoint of size {} does not cover seq {last}", cp.size));
        }
        let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
        let lines: Vec<&str> = text.lines().collect();
        let seqs: Vec<u64> = lines
            .iter()
            .map(|l| trail_core::Event::from_leaf(l.as_bytes()).map(|e| e.seq))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        if seqs.first() != Some(&first) || seqs.last() != Some(&last) || seqs.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!("seqs {seqs:?} do not match the headers {first}..={last} or are out of order"));
        }
        let mut copies = self.copies.lock().unwrap();
        let copy = copies.entry(path.to_string()).or_default();
        copy.headers.push(headers.clone());
        copy.checkpoints.push((last, note));
        if path.starts_with("/all") {
            let next = copy.lines.len() as u64;
            if first > next {
                return Err(format!("a gap: seqs {next}..{first} never arrived"));
            }
            for (seq, line) in seqs.iter().zip(&lines) {
                match copy.lines.get(*seq as usize) {
                    Some(kept) if kept == line => copy.repeats += 1,
                    Some(_) => return Err(format!("seq {seq} arrived again with other bytes")),
                    None if *seq == copy.lines.len() as u64 => copy.lines.push(line.to_string()),
                    None => return Err(format!("seq {seq} arrived before seq {}", copy.lines.len())),
                }
            }
        } else {
            copy.seqs.extend(&seqs);
        }
        Ok(())
    }
}

async fn receive(
    State(rx): State<Arc<Receiver>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::http::StatusCode {
    let path = uri.path().to_string();
    if path == "/gone" {
        return axum::http::StatusCode::GONE;
    }
    let status = *rx.status.lock().unwrap();
    if status != 200 || path == "/down" {
        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
    }
    if path.starts_with("/raw") || path.starts_with("/alerts") {
        let mut copies = rx.copies.lock().unwrap();
        let copy = copies.entry(path).or_default();
        copy.lines.extend(String::from_utf8_lossy(&body).lines().map(str::to_string));
        copy.headers.push(headers);
        return axum::http::StatusCode::NO_CONTENT;
    }
    if let Err(e) = rx.check(&path, &headers, &body) {
        if e == NOT_YET {
            return axum::http::StatusCode::SERVICE_UNAVAILABLE;
        }
        rx.copies.lock().unwrap().entry(path).or_default().problems.push(e);
        return axum::http::StatusCode::BAD_REQUEST;
    }
    axum::http::StatusCode::NO_CONTENT
}

pub(crate) async fn receiver() -> (Arc<Receiver>, SocketAddr) {
    let rx = Arc::new(Receiver { status: Mutex::new(200), ..Receiver::default() });
    let app = Router::new().route("/{*path}", post(receive)).with_state(rx.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (rx, addr)
}

/// The verifier key of the tests' `acme` log.
pub(crate) fn vkey() -> String {
    trail_core::checkpoint::verifier_key(
        &format!("{}/acme", support::LOG_NAME),
        &support::signing_key().verifying_key(),
    )
}

pub(crate) fn config(archive: Option<PathBuf>) -> ServerConfig {
    let mut c = ServerConfig {
        log: Some(support::log_key()),
        public_url: Some("https://trail.example".into()),
        streams: StreamConfig {
            enabled: true,
            allow_private_destinations: true,
            // Small batches: a checkpoint often covers more than one.
            batch_size: 7,
            batch_wait: Duration::ZERO,
            retry_base: Duration::from_millis(20),
            retry_max: Duration::from_millis(200),
            timeout: Duration::from_secs(5),
            alert_after: Duration::from_millis(300),
            lease: Duration::from_secs(1),
            ca_pem: None,
        },
        alerts: AlertConfig {
            enabled: true,
            allow_private_destinations: true,
            retry_base: Duration::from_millis(50),
            timeout: Duration::from_secs(5),
        },
        ..ServerConfig::default()
    };
    c.retention.archive = archive.map(trail_store::archive::Archive::new);
    c.retention.rules.default_days = 30;
    c
}

fn events(n: usize, tag: &str) -> Value {
    let list: Vec<Value> = (0..n)
        .map(|i| json!({"action": "cluster:scale", "actor": {"email": "ops@acme.com"}, "resource": {"name": format!("{tag}-{i}")}}))
        .collect();
    Value::Array(list)
}

async fn stream(api: &Api, rx: &Receiver, body: Value, path: &str) -> i64 {
    let (code, v) = api.call(Method::POST, "/api/v1/streams", Some(body)).await;
    assert_eq!(code, 201, "{v}");
    if let Some(secret) = v["secret"].as_str() {
        rx.secret.lock().unwrap().insert(path.to_string(), secret.to_string());
    }
    v["id"].as_i64().unwrap()
}

/// Waits until the copy on `path` holds the whole log and its newest checkpoint is
/// exactly that size; returns the copy's lines and that checkpoint.
async fn complete(store: &dyn Store, rx: &Receiver, path: &str) -> (Vec<String>, String) {
    until(&format!("the whole log on {path}"), async || {
        let end = store.log_end("acme").await.unwrap();
        rx.copy(path, |c| {
            assert!(c.problems.is_empty(), "{:?}", c.problems);
            let newest = c.checkpoints.iter().map(|(_, n)| n.clone()).max_by_key(|n| note_size(n))?;
            (c.lines.len() as u64 == end && note_size(&newest) == end).then(|| (c.lines.clone(), newest))
        })
    })
    .await
}

fn note_size(note: &str) -> u64 {
    note.lines().nth(1).and_then(|l| l.parse().ok()).unwrap_or(0)
}

/// The copy survives the receiver's outage and a restart of Trail in between, and
/// proves against the checkpoint it received.
#[test]
fn http_copy_is_complete_in_order_and_provable_across_an_outage_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let receiver_rt = tokio::runtime::Runtime::new().unwrap();
    let (rx, addr) = receiver_rt.block_on(receiver());
    let first = tokio::runtime::Runtime::new().unwrap();
    let id = first.block_on(async {
        let store = support::store(dir.path(), &["acme"], true).await;
        let admin = support::key(&*store, "acme", KeyScope::Admin).await;
        std::fs::write(dir.path().join("key"), &admin).unwrap();
        let server = support::serve(AppState::new(store.clone(), config(None), trail_server::system_clock())).await;
        let api = Api::new(&server.base, &admin);
        api.ingest(events(10, "a")).await;
        for i in 0..10 {
            api.ingest(json!({"action": "auth:login", "actor": {"email": format!("u{i}@acme.com")}})).await;
        }
        let body = json!({"name": "siem", "kind": "http", "url": format!("http://{addr}/all"), "format": "jsonl",
                          "start": "beginning", "headers": {"Authorization": "Bearer siem-token"}});
        let id = stream(&api, &rx, body, "/all").await;
        complete(&*store, &rx, "/all").await;
        rx.copy("/all", |c| assert!(c.headers.iter().all(|h| h["authorization"] == "Bearer siem-token")));
        // The receiver goes down; events keep coming; the stream fails and waits.
        *rx.status.lock().unwrap() = 503;
        api.ingest(events(15, "b")).await;
        let v = until("the stream failing", async || {
            let (_, v) = api.call(Method::GET, &format!("/api/v1/streams/{id}"), None).await;
            (v["status"] == "failing" && v["failed"].as_u64() >= Some(1)).then_some(v)
        })
        .await;
        assert!(v["last_error"].as_str().unwrap().contains("503"), "{v}");
        assert!(v["lag_events"].as_u64() >= Some(15), "{v}");
        store.close();
        id
    });
    drop(first); // every task of the first Trail stops here, mid-retry
    *rx.status.lock().unwrap() = 200;
    let second = tokio::runtime::Runtime::new().unwrap();
    second.block_on(async {
        let store = support::store(dir.path(), &["acme"], true).await;
        let admin = std::fs::read_to_string(dir.path().join("key")).unwrap();
        let server = support::serve(AppState::new(store.clone(), config(None), trail_server::system_clock())).await;
        let api = Api::new(&server.base, &admin);
        api.ingest(events(5, "c")).await;
        let (lines, note) = complete(&*store, &rx, "/all").await;
        // The copy proves: no gap, edit or reordering up to the checkpoint.
        let report = trail_core::received::verify_copy(lines.iter().map(String::as_str), &note, &vkey()).unwrap();
        assert_eq!((report.proven, report.beyond), (lines.len() as u64, 0));
        // The same check as `trail verify --received` runs, on a copy with one byte changed.
        let mut edited = lines.clone();
        edited[3] = edited[3].replace("u", "v");
        assert!(trail_core::received::verify_copy(edited.iter().map(String::as_str), &note, &vkey()).is_err());
        let v = until("the stream healthy and caught up", async || {
            let (_, v) = api.call(Method::GET, &format!("/api/v1/streams/{id}"), None).await;
            (v["status"] == "active" && v["lag_events"] == 0).then_some(v)
        })
        .await;
        assert_eq!(v["last_seq"].as_u64(), Some(lines.len() as u64 - 1), "{v}");
        assert!(v["sent"].as_u64() >= Some(lines.len() as u64) && v["last_error"].is_null(), "{v}");
        store.close();
    });
    drop(receiver_rt);
}

/// Filters, replays from a seq and a time, archived days, pause and resume, a receiver
/// that is gone (410), and a stream failing long enough to alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_replays_archives_pauses_and_failures() {
    let dir = tempfile::tempdir().unwrap();
    let store = support::store(dir.path(), &["acme"], true).await;
    let admin = support::key(&*store, "acme", KeyScope::Admin).await;
    let state = AppState::new(store.clone(), config(Some(dir.path().join("archive"))), trail_server::system_clock());
    let services = state.services.clone();
    let server = support::serve(state).await;
    let api = Api::new(&server.base, &admin);
    let (rx, addr) = receiver().await;
    // Ten events of a hundred days ago are archived and deleted by retention.
    let old = trail_core::Timestamp(trail_core::Timestamp::from_datetime(chrono::Utc::now()).0 - 100 * 86_400_000_000);
    let list: Vec<Value> =
        (0..10).map(|i| json!({"action": "cluster:create", "timestamp": old.to_rfc3339(), "resource": {"name": format!("old-{i}")}})).collect();
    api.ingest(Value::Array(list)).await;
    for i in 0..5 {
        api.ingest(json!({"action": "auth:login", "actor": {"email": format!("u{i}@acme.com")}})).await;
        api.ingest(json!({"action": "service:restart", "resource": {"name": format!("svc-{i}")}})).await;
    }
    let reports =
        trail_server::work::retention::run(&services, trail_core::Timestamp::from_datetime(chrono::Utc::now()))
            .await
            .unwrap();
    assert_eq!(reports.iter().map(|r| r.deleted).sum::<u64>(), 10, "{reports:?}");
    assert_eq!(store.scan("acme", 0, 100).await.unwrap().first().map(|r| r.0), Some(10));

    // From the beginning: the archived events first, then the online ones, in order.
    let all = stream(&api, &rx, json!({"name": "all", "kind": "http", "url": format!("http://{addr}/all"), "format": "jsonl", "start": "beginning"}), "/all").await;
    let (lines, _) = complete(&*store, &rx, "/all").await;
    assert!(lines[..10].iter().all(|l| l.contains("cluster:create")), "{lines:?}");
    // A filtered stream gets only what its query matches, in order.
    let body = json!({"name": "auth", "kind": "http", "url": format!("http://{addr}/auth"), "format": "jsonl", "query": "category:auth", "start": "beginning"});
    stream(&api, &rx, body, "/auth").await;
    let auth_seqs: Vec<u64> = lines
        .iter()
        .map(|l| trail_core::Event::from_leaf(l.as_bytes()).unwrap())
        .filter(|e| e.category() == "auth")
        .map(|e| e.seq)
        .collect();
    assert_eq!(auth_seqs.len(), 5);
    until("the auth events", async || rx.copy("/auth", |c| (c.seqs == auth_seqs).then_some(()))).await;

    // Replay from a seq: those events come again (repeats, never a gap).
    let held = rx.copy("/all", |c| c.lines.len());
    let body = Some(json!({"from": {"seq": 3}}));
    let (code, v) = api.call(Method::POST, &format!("/api/v1/streams/{all}/replay"), body).await;
    assert_eq!((code, v["cursor"].as_u64()), (200, Some(3)), "{v}");
    until("the replayed events", async || {
        rx.copy("/all", |c| {
            assert!(c.problems.is_empty(), "{:?}", c.problems);
            (c.repeats >= held - 3).then_some(())
        })
    })
    .await;
    // Replay from a time: the first event received at or after it.
    let at = trail_core::Event::from_leaf(lines[12].as_bytes()).unwrap().received_at;
    let (code, v) = api
        .call(
            Method::POST,
            &format!("/api/v1/streams/{all}/replay"),
            Some(json!({"from": {"time": at.to_rfc3339_micros()}})),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert!(v["cursor"].as_u64().unwrap() <= 12, "{v}");

    // Pause and resume: it picks up where it stopped.
    let (code, v) = api.call(Method::POST, &format!("/api/v1/streams/{all}/pause"), None).await;
    assert_eq!((code, v["status"].as_str()), (200, Some("paused")), "{v}");
    api.ingest(events(4, "while-paused")).await;
    let (_, v) = api.call(Method::GET, &format!("/api/v1/streams/{all}"), None).await;
    assert_eq!(v["status"], "paused");
    let (code, v) = api.call(Method::POST, &format!("/api/v1/streams/{all}/resume"), None).await;
    assert_eq!((code, v["status"].as_str()), (200, Some("active")), "{v}");
    complete(&*store, &rx, "/all").await;

    // A receiver that is gone disables the stream; that is recorded.
    let gone = stream(&api, &rx, json!({"name": "gone", "kind": "http", "url": format!("http://{addr}/gone"), "format": "jsonl", "start": "beginning"}), "/gone").await;
    let v = until("the stream disabled", async || {
        let (_, v) = api.call(Method::GET, &format!("/api/v1/streams/{gone}"), None).await;
        (v["status"] == "disabled").then_some(v)
    })
    .await;
    assert!(v["last_error"].as_str().unwrap().contains("410"), "{v}");

    // A stream failing past `alert_after` is recorded once and alerted.
    let (code, hook) = api
        .call(
            Method::POST,
            "/api/v1/alerts/destinations",
            Some(json!({"name": "ops", "kind": "webhook", "url": format!("http://{addr}/alerts")})),
        )
        .await;
    assert_eq!(code, 201, "{hook}");
    until("the evaluator to start", async || store.evaluation("acme").await.unwrap()).await;
    let down = stream(&api, &rx, json!({"name": "down", "kind": "http", "url": format!("http://{addr}/down"), "format": "jsonl", "start": "beginning"}), "/down").await;
    let alert = until("the stream_failing alert", async || {
        rx.copy("/alerts", |c| {
            c.lines.iter().map(|l| serde_json::from_str::<Value>(l).unwrap()).find(|v| v["rule"] == "stream_failing")
        })
    })
    .await;
    assert_eq!(alert["org"], "acme", "{alert}");
    let recorded = |action: &'static str| {
        let api = &api;
        async move {
            let (_, v) = api.call(Method::GET, &format!("/api/v1/events?action={action}"), None).await;
            v["events"].as_array().cloned().unwrap_or_default()
        }
    };
    let failing = recorded("stream:failing").await;
    assert_eq!(failing.len(), 1, "{failing:?}");
    assert_eq!(failing[0]["resource"]["id"], down.to_string());
    assert_eq!(recorded("stream:disabled").await.len(), 1);
    for action in ["stream:create", "stream:replay", "stream:pause", "stream:resume"] {
        assert!(!recorded(action).await.is_empty(), "{action} is recorded");
    }
    let (code, _) = api.call(Method::DELETE, &format!("/api/v1/streams/{down}"), None).await;
    assert_eq!(code, 204);
    assert_eq!(recorded("stream:delete").await.len(), 1);
}

/// Bad input names its field; other organizations' streams do not exist; reading and
/// changing need the right role; internal receivers are refused unless allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_checks_its_input_and_its_callers() {
    let dir = tempfile::tempdir().unwrap();
    let store = support::store(dir.path(), &["acme", "globex"], true).await;
    let admin = support::key(&*store, "acme", KeyScope::Admin).await;
    let reader = support::key(&*store, "acme", KeyScope::Read).await;
    let other = support::key(&*store, "globex", KeyScope::Admin).await;
    let server = support::serve(AppState::new(store.clone(), config(None), trail_server::system_clock())).await;
    let api = Api::new(&server.base, &admin);
    let url = "http://127.0.0.1:9/in";
    for (body, field) in [
        (json!({"name": "x", "kind": "ftp", "format": "jsonl"}), "kind"),
        (json!({"name": "x", "kind": "http", "format": "jsonl"}), "url"),
        (json!({"name": "x", "kind": "http", "url": "ftp://example.com/", "format": "jsonl"}), "url"),
        (json!({"name": "x", "kind": "http", "url": url, "format": "cef"}), "format"),
        (json!({"name": "x", "kind": "syslog", "address": "127.0.0.1:514", "format": "splunk_hec"}), "format"),
        (json!({"name": "x", "kind": "syslog", "address": "no-port", "format": "cef"}), "address"),
        (
            json!({"name": "x", "kind": "http", "url": url, "format": "jsonl", "query": "created:>=yesterday-ish"}),
            "query",
        ),
        (
            json!({"name": "x", "kind": "http", "url": url, "format": "jsonl", "headers": {"Trail-First-Seq": "1"}}),
            "headers",
        ),
        (json!({"name": "x", "kind": "http", "url": url, "format": "jsonl", "start": {"seq": 1_000_000}}), "start"),
        (json!({"name": "x", "kind": "http", "url": url, "format": "jsonl", "start": "yesterday"}), "start"),
        (json!({"name": "", "kind": "http", "url": url, "format": "jsonl"}), "name"),
        (json!({"kind": "http", "url": url, "format": "jsonl"}), "name"),
    ] {
        let (code, v) = api.call(Method::POST, "/api/v1/streams", Some(body.clone())).await;
        assert_eq!((code, v["error"]["field"].as_str()), (400, Some(field)), "{body}: {v}");
    }
    let (code, v) = api
        .call(
            Method::POST,
            "/api/v1/streams",
            Some(json!({"name": "x", "kind": "http", "url": url, "format": "jsonl", "color": "red"})),
        )
        .await;
    assert_eq!(code, 400, "{v}");
    // Internal addresses are refused unless the configuration allows them.
    let strict =
        support::serve(AppState::new(store.clone(), ServerConfig::default(), trail_server::system_clock())).await;
    let (code, v) = Api::new(&strict.base, &admin)
        .call(
            Method::POST,
            "/api/v1/streams",
            Some(json!({"name": "x", "kind": "http", "url": url, "format": "jsonl"})),
        )
        .await;
    assert_eq!((code, v["error"]["field"].as_str()), (400, Some("url")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("[streams] allow_private_destinations"), "{v}");

    let (code, v) = api
        .call(
            Method::POST,
            "/api/v1/streams",
            Some(json!({"name": "siem", "kind": "http", "url": "http://ann:hunter2@127.0.0.1:9/in", "format": "ocsf"})),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    assert!(v["secret"].as_str().unwrap().starts_with("whsec_"));
    let id = v["id"].as_i64().unwrap();
    // A reader sees streams and their health; only an administrator changes them.
    let read = Api::new(&server.base, &reader);
    let (code, v) = read.call(Method::GET, "/api/v1/streams", None).await;
    assert_eq!((code, v["streams"][0]["name"].as_str()), (200, Some("siem")), "{v}");
    // The URL's credentials are not shown to anyone, nor recorded in the log.
    assert_eq!(v["streams"][0]["url"], "http://127.0.0.1:9/…9/in", "{v}");
    assert!(!v.to_string().contains("hunter2"), "{v}");
    let (_, made) = api.call(Method::GET, "/api/v1/events?category=stream&operation=create", None).await;
    assert!(made["events"].as_array().is_some_and(|e| !e.is_empty()), "{made}");
    assert!(!made.to_string().contains("hunter2"), "{made}");
    assert_eq!(v["streams"][0]["format"], "ocsf");
    for (m, p) in
        [(Method::POST, format!("/api/v1/streams/{id}/pause")), (Method::DELETE, format!("/api/v1/streams/{id}"))]
    {
        let (code, _) = read.call(m, &p, None).await;
        assert_eq!(code, 403, "{p}");
    }
    // Another organization's administrator finds no such stream.
    let globex = Api::new(&server.base, &other);
    for (m, p) in [
        (Method::GET, format!("/api/v1/streams/{id}")),
        (Method::POST, format!("/api/v1/streams/{id}/pause")),
        (Method::DELETE, format!("/api/v1/streams/{id}")),
    ] {
        let (code, _) = globex.call(m, &p, None).await;
        assert_eq!(code, 404, "{p}");
    }
    let (_, v) = globex.call(Method::GET, "/api/v1/streams", None).await;
    assert_eq!(v["streams"], json!([]));
    // Changes keep the position; a start is moved by a replay only.
    let (code, v) = api
        .call(
            Method::PATCH,
            &format!("/api/v1/streams/{id}"),
            Some(json!({"name": "siem-2", "query": "category:auth"})),
        )
        .await;
    assert_eq!((code, v["name"].as_str(), v["query"].as_str()), (200, Some("siem-2"), Some("category:auth")), "{v}");
    let (code, v) =
        api.call(Method::PATCH, &format!("/api/v1/streams/{id}"), Some(json!({"start": "beginning"}))).await;
    assert_eq!((code, v["error"]["field"].as_str()), (400, Some("start")), "{v}");
    let (code, v) =
        api.call(Method::POST, &format!("/api/v1/streams/{id}/replay"), Some(json!({"from": {"seq": 99_999}}))).await;
    assert_eq!((code, v["error"]["field"].as_str()), (400, Some("from")), "{v}");
    let (code, _) = api.call(Method::GET, "/api/v1/streams/999999", None).await;
    assert_eq!(code, 404);
}

/// Two servers on one PostgreSQL database: the stream is driven by the one holding its
/// lease; when that server stops, the other takes it over and the copy stays whole.
#[test]
fn a_stream_is_taken_over_when_its_postgresql_server_stops() {
    use trail_store::postgres::PgStore;
    let url = trail_store::testing::Cluster::shared().database();
    let signer =
        || Some(Arc::new(trail_store::LogSigner { name: support::LOG_NAME.into(), key: support::signing_key() }));
    let main = tokio::runtime::Runtime::new().unwrap();
    let (rx, addr) = main.block_on(receiver());
    let first = tokio::runtime::Runtime::new().unwrap();
    let (a, admin, id) = first.block_on(async {
        let a: Arc<dyn Store> = Arc::new(PgStore::open(&url, signer()).await.unwrap());
        a.ensure_org(Org { slug: "acme".into(), name: "Acme".into() }).await.unwrap();
        let admin = support::key(&*a, "acme", KeyScope::Admin).await;
        let server = support::serve(AppState::new(a.clone(), config(None), trail_server::system_clock())).await;
        let api = Api::new(&server.base, &admin);
        api.ingest(events(12, "a")).await;
        let id = stream(&api, &rx, json!({"name": "siem", "kind": "http", "url": format!("http://{addr}/all"), "format": "jsonl", "start": "beginning"}), "/all").await;
        complete(&*a, &rx, "/all").await;
        std::mem::forget(server); // stops with its runtime
        (a, admin, id)
    });
    let owner_a = first.block_on(async { a.get_stream("acme", id).await.unwrap().unwrap().owner });
    assert!(owner_a.is_some());
    let b: Arc<dyn Store> = main.block_on(async { Arc::new(PgStore::open(&url, signer()).await.unwrap()) });
    // The state is made within the runtime that runs its background work.
    let server = main
        .block_on(async { support::serve(AppState::new(b.clone(), config(None), trail_server::system_clock())).await });
    let api = Api::new(&server.base, &admin);
    main.block_on(async {
        // Appends through the second server reach the first one's driver.
        api.ingest(events(9, "b")).await;
        complete(&*b, &rx, "/all").await;
        assert_eq!(b.get_stream("acme", id).await.unwrap().unwrap().owner, owner_a, "the first server still drives it");
    });
    drop(first); // the first server stops; its lease runs out
    main.block_on(async {
        api.ingest(events(11, "c")).await;
        let (lines, note) = complete(&*b, &rx, "/all").await;
        assert_ne!(b.get_stream("acme", id).await.unwrap().unwrap().owner, owner_a, "the second server took it over");
        trail_core::received::verify_copy(lines.iter().map(String::as_str), &note, &vkey()).unwrap();
    });
}
