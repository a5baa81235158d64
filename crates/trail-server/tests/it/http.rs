//! The HTTP API, tested over real HTTP against a real server on an ephemeral port with
//! a real SQLite store.

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use rand::{rngs::StdRng, Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{json, Value};
use trail_core::{checkpoint, merkle};
use trail_core::{Limits, Timestamp};
use trail_server::{AppState, ServerConfig};
use trail_store::KeyScope;

use crate::support::{self, key};

struct Server {
    base: String,
    client: reqwest::Client,
    ingest: String,
    read: String,
    platform: String,
    globex_read: String,
    _running: support::Running,
    _dir: tempfile::TempDir,
}

async fn start_with(limits: Limits) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = support::store(dir.path(), &["acme", "globex"], true).await;
    let (ingest, read, platform, globex_read) = (
        key(&*store, "acme", KeyScope::Ingest).await,
        key(&*store, "acme", KeyScope::Read).await,
        key(&*store, "acme", KeyScope::Platform).await,
        key(&*store, "globex", KeyScope::Read).await,
    );
    let config = ServerConfig { limits, log: Some(support::log_key()), ..ServerConfig::default() };
    let running = support::serve(AppState::new(store, config, trail_server::system_clock())).await;
    Server {
        base: running.base.clone(),
        client: reqwest::Client::new(),
        ingest,
        read,
        platform,
        globex_read,
        _running: running,
        _dir: dir,
    }
}

async fn start() -> Server {
    start_with(Limits::default()).await
}

impl Server {
    async fn post(&self, key: Option<&str>, body: impl Into<reqwest::Body>) -> (StatusCode, Value) {
        let mut req = self.client.post(format!("{}/api/v1/events", self.base)).body(body);
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, key: Option<&str>, path: &str) -> (StatusCode, Value) {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Every stored event visible to the platform key, following cursors.
    async fn all(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut path = "/api/v1/events?limit=1000&sort=seq".to_string();
        loop {
            let (s, v) = self.get(Some(&self.platform), &path).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            out.extend(v["events"].as_array().unwrap().iter().cloned());
            match v["next_cursor"].as_str() {
                Some(c) => path = format!("/api/v1/events?limit=1000&sort=seq&cursor={c}"),
                None => return out,
            }
        }
    }
}

fn event(i: usize) -> Value {
    json!({
        "timestamp": Timestamp(1_700_000_000_000_000 + i as i64 * 1_000_000).to_rfc3339(),
        "action": "service.deploy",
        "result": if i.is_multiple_of(4) { "failure" } else { "success" },
        "actor": {"id": "u1", "name": "Sarah Kim", "email": "sarah@acme.com", "type": "user"},
        "resource": {"type": "service", "id": format!("svc-{i}"), "name": "checkout"},
        "source_ip": "192.168.1.50",
        "request_id": format!("req-{i}"),
        "before": {"replicas": 2, "image": "app:v1"},
        "after": {"replicas": 3, "image": "app:v1"},
    })
}

#[tokio::test]
async fn ingest_accepts_object_array_and_ndjson_and_reads_back() {
    let s = start().await;
    let (st, v) = s.post(Some(&s.ingest), event(0).to_string()).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["accepted"], 1);
    assert_eq!(v["events"][0]["seq"], 0);
    let (st, v) = s.post(Some(&s.ingest), json!([event(1), event(2)]).to_string()).await;
    assert_eq!((st, v["events"][1]["seq"].clone()), (StatusCode::OK, json!(2)));
    let nd = format!("{}\n{}\n", event(3), event(4));
    let (st, v) = s.post(Some(&s.ingest), nd).await;
    assert_eq!((st, v["accepted"].clone()), (StatusCode::OK, json!(2)));
    let id = v["events"][1]["id"].as_str().unwrap().to_string();

    let (st, d) = s.get(Some(&s.read), &format!("/api/v1/events/{id}")).await;
    assert_eq!(st, StatusCode::OK);
    let e = &d["event"];
    assert_eq!((e["id"].as_str(), e["org"].as_str(), e["seq"].as_u64()), (Some(id.as_str()), Some("acme"), Some(4)));
    assert_eq!(e["action"], "service:deploy");
    assert_eq!(e["result"], "FAILED");
    assert_eq!(e["request_id"], "req-4");
    assert_eq!(d["company"], "acme");
    assert_eq!(d["diff"], json!([{"path": "replicas", "kind": "changed", "old": 2, "new": 3}]));

    let (st, l) = s.get(Some(&s.read), "/api/v1/events").await;
    assert_eq!(st, StatusCode::OK);
    let seqs: Vec<u64> = l["events"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![4, 3, 2, 1, 0], "newest first");
    assert_eq!(l["next_cursor"], Value::Null);
}

#[tokio::test]
async fn the_organization_is_the_tenant_whatever_the_event_claims() {
    let s = start().await;
    let body = r#"{"action":"auth:login","actor":{"email":"mallory@x.com","company":"globex"}}"#;
    let (st, v) = s.post(Some(&s.ingest), body).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let id = v["events"][0]["id"].as_str().unwrap().to_string();
    let (_, d) = s.get(Some(&s.read), &format!("/api/v1/events/{id}")).await;
    assert_eq!((d["company"].as_str(), d["event"]["org"].as_str()), (Some("acme"), Some("acme")));
    assert_eq!(d["event"]["actor"]["company"], "globex", "the claim is kept as the actor's");
    // The column, the filter, the sort and the facets agree on the tenant.
    let (s, id) = (&s, id.as_str());
    let found = |path: &'static str| async move {
        let (_, v) = s.get(Some(&s.platform), path).await;
        v["events"].as_array().unwrap().iter().any(|e| e["id"] == id)
    };
    assert!(found("/api/v1/events?company=acme").await);
    assert!(!found("/api/v1/events?company=globex").await);
    assert!(found("/api/v1/events?sort=company").await);
    let (_, f) = s.get(Some(&s.platform), "/api/v1/facets").await;
    assert!(f["companies"].as_array().unwrap().iter().all(|c| c["value"] != "globex"), "{f}");
    let csv = s.client.get(format!("{}/api/v1/export?format=csv", s.base)).bearer_auth(&s.read).send().await.unwrap();
    let csv = csv.text().await.unwrap();
    let row = csv.lines().find(|l| l.contains("mallory@x.com")).unwrap();
    assert!(row.contains(",acme,") && !row.contains("globex"), "{row}");
}

#[tokio::test]
async fn free_json_is_kept_exactly_as_given() {
    let s = start().await;
    let body = r#"{"action":"a:b","details":{"big":184467440737095516170000,"e":1E2,"f":1.50,"neg":-0.0,"tiny":1e-400},"response":{"n":12345678901234567890123}}"#;
    let (st, v) = s.post(Some(&s.ingest), body).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let id = v["events"][0]["id"].as_str().unwrap().to_string();
    for path in [format!("/api/v1/events/{id}"), "/api/v1/events".to_string(), "/api/v1/export?format=jsonl".into()] {
        let text = s.client.get(format!("{}{path}", s.base)).bearer_auth(&s.read).send().await.unwrap();
        let text = text.text().await.unwrap();
        for digits in [
            r#""big":184467440737095516170000"#,
            // Every digit as sent; the exponent marker is written `e+` / `e-`.
            r#""e":1e+2"#,
            r#""f":1.50"#,
            r#""neg":-0.0"#,
            r#""tiny":1e-400"#,
            r#""n":12345678901234567890123"#,
        ] {
            assert!(text.contains(digits), "{path}: {digits} in {text}");
        }
    }
}

#[tokio::test]
async fn bad_input_gets_a_4xx_naming_the_field_and_stores_nothing() {
    let s = start_with(Limits { max_event_bytes: 2048, max_request_bytes: 64 * 1024, max_batch_events: 50 }).await;
    let big = json!({"action": "a:b", "details": {"blob": "x".repeat(3000)}}).to_string();
    let many = Value::Array((0..51).map(|_| json!({"action": "a:b"})).collect()).to_string();
    let huge = format!("[{}]", vec![json!({"action": "a:b", "details": "y".repeat(1500)}).to_string(); 60].join(","));
    let cases: Vec<(String, StatusCode, &str)> = vec![
        ("{not json".into(), StatusCode::BAD_REQUEST, "body"),
        ("".into(), StatusCode::BAD_REQUEST, "body"),
        ("42".into(), StatusCode::BAD_REQUEST, "body"),
        ("[]".into(), StatusCode::BAD_REQUEST, "body"),
        (json!({"result": "DONE"}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "action"),
        (json!({"action": 7}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "action"),
        (json!({"action": "login"}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "action"),
        (
            json!({"action": "a:b", "timestamp": "2024-13-01"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "timestamp",
        ),
        (
            json!({"action": "a:b", "actor": {"email": ["x"]}}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "actor.email",
        ),
        (json!({"action": "a:b", "status_code": "500"}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "status_code"),
        (json!({"action": "a:b", "seq": 1}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "seq"),
        (
            json!([{"action": "a:b"}, {"action": "a:b", "result": "meh"}]).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "[1].result",
        ),
        (r#"{"action":"a:b","action":"c:d"}"#.into(), StatusCode::UNPROCESSABLE_ENTITY, "action"),
        (
            r#"[{"action":"a:b"},{"action":"a:b","details":{"k":1,"k":2}}]"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "[1].details.k",
        ),
        (big, StatusCode::PAYLOAD_TOO_LARGE, ""),
        (many, StatusCode::PAYLOAD_TOO_LARGE, "body"),
        (huge, StatusCode::PAYLOAD_TOO_LARGE, "body"),
    ];
    for (body, status, field) in cases {
        let (st, v) = s.post(Some(&s.ingest), body.clone()).await;
        assert_eq!(st, status, "{} -> {v}", &body[..body.len().min(80)]);
        assert_eq!(v["error"]["field"], field, "{v}");
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let get_cases = [
        ("/api/v1/events?colour=red", StatusCode::BAD_REQUEST, "colour"),
        ("/api/v1/events?cursor=nonsense", StatusCode::BAD_REQUEST, "cursor"),
        ("/api/v1/events?limit=0", StatusCode::BAD_REQUEST, "limit"),
        ("/api/v1/events?limit=1001", StatusCode::BAD_REQUEST, "limit"),
        ("/api/v1/events?from=yesterday", StatusCode::BAD_REQUEST, "from"),
        ("/api/v1/events?ip=1.2.3", StatusCode::BAD_REQUEST, "ip"),
        ("/api/v1/events?q=colour:red", StatusCode::BAD_REQUEST, "q"),
        ("/api/v1/events?sort=shoe", StatusCode::BAD_REQUEST, "sort"),
        ("/api/v1/events/not-a-uuid", StatusCode::BAD_REQUEST, "id"),
    ];
    for (path, status, field) in get_cases {
        let (st, v) = s.get(Some(&s.read), path).await;
        assert_eq!((st, v["error"]["field"].as_str()), (status, Some(field)), "{path}: {v}");
    }
    assert!(s.all().await.is_empty(), "nothing may be stored");
}

#[tokio::test]
async fn keys_decide_who_may_read_and_write() {
    let s = start().await;
    let (st, v) = s.post(None, event(0).to_string()).await;
    assert_eq!((st, v["error"]["field"].as_str()), (StatusCode::UNAUTHORIZED, Some("authorization")));
    let (st, _) = s.post(Some("trail_in_wrong"), event(0).to_string()).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = s.post(Some(&s.read), event(0).to_string()).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "a read key cannot write");
    let (st, v) = s.post(Some(&s.ingest), event(0).to_string()).await;
    assert_eq!(st, StatusCode::OK);
    let id = v["events"][0]["id"].as_str().unwrap().to_string();
    let (st, _) = s.get(Some(&s.ingest), "/api/v1/events").await;
    assert_eq!(st, StatusCode::FORBIDDEN, "an ingest key cannot read");
    let (st, _) = s.get(None, "/api/v1/events").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = s.get(Some(&s.globex_read), &format!("/api/v1/events/{id}")).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "another organization's event is not found");
    let (_, l) = s.get(Some(&s.globex_read), "/api/v1/events").await;
    assert_eq!(l["events"], json!([]));
    let (_, f) = s.get(Some(&s.globex_read), "/api/v1/facets").await;
    assert_eq!(f["total"], 0);
    let (st, _) = s.get(Some(&s.platform), &format!("/api/v1/events/{id}")).await;
    assert_eq!(st, StatusCode::OK);
}

#[tokio::test]
async fn idempotency_keys_acknowledge_without_storing_twice() {
    let s = start().await;
    let mut e = event(1);
    e["idempotency_key"] = json!("deploy-77");
    let (_, a) = s.post(Some(&s.ingest), e.to_string()).await;
    let (_, b) = s.post(Some(&s.ingest), e.to_string()).await;
    assert_eq!(a["events"][0]["id"], b["events"][0]["id"]);
    assert_eq!(b["events"][0]["duplicate"], true);
    assert_eq!(s.all().await.len(), 1);
}

#[tokio::test]
async fn filters_sorting_and_cursors_work_over_http() {
    let s = start().await;
    let batch: Vec<Value> = (0..120).map(event).collect();
    let (st, _) = s.post(Some(&s.ingest), Value::Array(batch).to_string()).await;
    assert_eq!(st, StatusCode::OK);
    let (_, v) = s.get(Some(&s.read), "/api/v1/events?result=FAILED&limit=1000").await;
    assert_eq!(v["events"].as_array().unwrap().len(), 30);
    let (_, v) = s.get(Some(&s.read), "/api/v1/events?q=result:FAILED%20actor:sarah@&limit=1000").await;
    assert_eq!(v["events"].as_array().unwrap().len(), 30);
    let (_, v) = s.get(Some(&s.read), "/api/v1/events?request_id=req-17").await;
    assert_eq!(v["events"][0]["resource"]["id"], "svc-17");
    let (_, v) = s.get(Some(&s.read), "/api/v1/events?resource=svc-3&ip=192.168.0.0/16&category=service").await;
    assert_eq!(v["events"].as_array().unwrap().len(), 1);
    // Walk every page of an ascending sort.
    let mut seen = Vec::new();
    let mut path = "/api/v1/events?sort=timestamp&limit=7".to_string();
    loop {
        let (st, v) = s.get(Some(&s.read), &path).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        seen.extend(v["events"].as_array().unwrap().iter().map(|e| e["request_id"].as_str().unwrap().to_string()));
        match v["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/events?sort=timestamp&limit=7&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, (0..120).map(|i| format!("req-{i}")).collect::<Vec<_>>());
    let (_, f) = s.get(Some(&s.read), "/api/v1/facets").await;
    assert_eq!(f["total"], 120);
    assert_eq!(f["results"], json!([{"value": "DONE", "count": 90}, {"value": "FAILED", "count": 30}]));
    assert_eq!(f["users"][0]["value"], "sarah@acme.com");
}

#[tokio::test]
async fn concurrent_clients_all_get_durable_contiguous_seqs() {
    let s = Arc::new(start().await);
    let mut tasks = Vec::new();
    for c in 0..32 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for r in 0..10 {
                let body: Vec<Value> = (0..(1 + (c + r) % 4)).map(|i| event(c * 1000 + r * 10 + i)).collect();
                let (st, v) = s.post(Some(&s.ingest), Value::Array(body).to_string()).await;
                assert_eq!(st, StatusCode::OK, "{v}");
                ids.extend(v["events"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()));
            }
            ids
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    let stored = s.all().await;
    let seqs: Vec<u64> = stored.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (0..acked.len() as u64).collect::<Vec<_>>());
    let ids: std::collections::HashSet<String> = stored.iter().map(|e| e["id"].as_str().unwrap().to_string()).collect();
    assert!(acked.iter().all(|id| ids.contains(id)));
}

/// Posts thousands of malformed bodies: every answer must be a 4xx or a success, the
/// server must stay up, and the store must hold exactly the accepted events, intact.
#[tokio::test]
async fn fuzzed_bodies_never_break_the_server_or_the_store() {
    let s = start().await;
    let mut rng = StdRng::seed_from_u64(99);
    let seeds: Vec<String> = vec![
        event(1).to_string(),
        json!([event(2), event(3)]).to_string(),
        format!("{}\n{}", event(4), event(5)),
        json!({"action": "auth:login", "actor": {"email": "a@b"}, "context": {"workspace": {"id": "w"}}}).to_string(),
    ];
    let mut accepted: Vec<(String, Value)> = Vec::new();
    for i in 0..3000 {
        let mut body = seeds[i % seeds.len()].clone().into_bytes();
        for _ in 0..rng.random_range(1..6) {
            let len = body.len();
            match rng.random_range(0..6) {
                0 if len > 1 => body.truncate(rng.random_range(0..len)),
                1 if len > 0 => body[rng.random_range(0..len)] = rng.random(),
                2 => body.insert(rng.random_range(0..=len), b"{}[]\":,0-9aeE\\\n\x00\xff"[rng.random_range(0..17)]),
                3 if len > 2 => {
                    let a = rng.random_range(0..len);
                    let b = rng.random_range(a..len);
                    body.drain(a..b);
                }
                4 => {
                    let (k, v) =
                        [("\"action\"", "\"x\""), ("\"timestamp\"", "1"), ("\"result\"", "null"), ("\"actor\"", "[]")]
                            [rng.random_range(0..4)];
                    let text = String::from_utf8_lossy(&body).replacen(k, &format!("{k}:{v},\"_{i}\""), 1);
                    body = text.into_bytes();
                }
                _ => {}
            }
        }
        let (st, v) = s.post(Some(&s.ingest), body.clone()).await;
        assert!(st == StatusCode::OK || st.is_client_error(), "status {st} for {:?}", String::from_utf8_lossy(&body));
        if st == StatusCode::OK {
            let parsed = trail_core::event::parse_batch(&body, &Limits::default()).unwrap();
            for (ack, ev) in v["events"].as_array().unwrap().iter().zip(parsed) {
                accepted.push((ack["id"].as_str().unwrap().to_string(), json!(ev.request_id)));
            }
        } else {
            assert!(v["error"]["code"].is_string(), "{v}");
        }
    }
    let (st, _) = s.get(None, "/healthz").await;
    assert_eq!(st, StatusCode::OK);
    let stored = s.all().await;
    assert_eq!(stored.len(), accepted.len());
    let seqs: Vec<u64> = stored.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (0..accepted.len() as u64).collect::<Vec<_>>());
    for (e, (id, req)) in stored.iter().zip(&accepted) {
        assert_eq!(e["id"].as_str(), Some(id.as_str()));
        assert_eq!(e.get("request_id").cloned().unwrap_or(Value::Null), *req);
    }
}

#[tokio::test]
async fn health_and_unknown_routes_answer_json() {
    let s = start().await;
    let (st, v) = s.get(None, "/healthz").await;
    assert_eq!((st, v["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (st, v) = s.get(None, "/readyz").await;
    assert_eq!((st, v["status"].as_str()), (StatusCode::OK, Some("ready")), "{v}");
    let (st, v) = s.get(None, "/api/v1/nothing").await;
    assert_eq!((st, v["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
}

#[tokio::test]
async fn every_error_is_json_and_event_data_is_never_cached_or_sniffed() {
    let s = start().await;
    s.post(Some(&s.ingest), r#"{"action":"auth:login"}"#).await;
    // Errors axum makes itself: a method the route does not take, a body over the
    // management endpoints' limit.
    let put = s.client.put(format!("{}/api/v1/events", s.base)).bearer_auth(&s.read).send().await.unwrap();
    assert_eq!(put.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(put.headers()["allow"].to_str().unwrap().contains("GET"));
    let v: Value = put.json().await.unwrap();
    assert_eq!(v["error"]["code"], "method_not_allowed", "{v}");
    // The message names the methods the endpoint takes.
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("GET") && message.contains("POST"), "{v}");
    let big = vec![b'x'; 3 * 1024 * 1024];
    let r = s.client.post(format!("{}/api/v1/roles", s.base)).bearer_auth(&s.platform).body(big.clone()).send();
    let r = r.await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let r = s.client.put(format!("{}/api/v1/roles/big", s.base)).bearer_auth(&s.platform).body(big).send();
    let r = r.await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["error"]["code"].as_str(), v["error"]["field"].as_str()), (Some("too_large"), Some("body")));
    // A role named like a built-in one but for case would pass for it.
    for name in ["Platform_Admin", "AUDITOR", "viewer"] {
        let r = s.client.put(format!("{}/api/v1/roles/{name}", s.base)).bearer_auth(&s.platform);
        let r = r.body(r#"{"view":"*","export":"*"}"#).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{name}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["field"], "name");
    }
    // Responses that carry events are neither cached nor sniffed; the page also
    // turns the browser's powerful features off.
    for path in ["/api/v1/events", "/api/v1/export?format=csv", "/api/v1/facets", "/api/v1/nothing"] {
        let r = s.client.get(format!("{}{path}", s.base)).bearer_auth(&s.read).send().await.unwrap();
        assert_eq!(r.headers()["cache-control"], "no-store", "{path}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
    }
    let r = s.client.get(format!("{}/audit", s.base)).send().await.unwrap();
    assert!(r.headers()["permissions-policy"].to_str().unwrap().contains("camera=()"));
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
}

fn unb64(v: &Value) -> Vec<merkle::Hash> {
    use base64::Engine;
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| base64::engine::general_purpose::STANDARD.decode(h.as_str().unwrap()).unwrap().try_into().unwrap())
        .collect()
}

/// Polls the checkpoint endpoint until it covers `size` entries.
async fn checkpoint_text(s: &Server, key: &str, size: u64) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let r = s.client.get(format!("{}/api/v1/checkpoint", s.base)).bearer_auth(key).send().await.unwrap();
        if r.status() == StatusCode::OK {
            assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
            let text = r.text().await.unwrap();
            if text.lines().nth(1) == Some(&size.to_string()) {
                return text;
            }
        }
        assert!(std::time::Instant::now() < deadline, "no checkpoint of size {size}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn checkpoints_and_proofs_verify_with_sha256_and_ed25519_alone() {
    let s = start().await;
    let (_, v) = s.post(Some(&s.ingest), Value::Array((0..5).map(event).collect()).to_string()).await;
    let first_note = checkpoint_text(&s, &s.read, 5).await;
    let (_, v2) = s.post(Some(&s.ingest), Value::Array((5..13).map(event).collect()).to_string()).await;
    let note = checkpoint_text(&s, &s.read, 13).await;
    let vkey = checkpoint::verifier_key("trail.test/acme", &SigningKey::from_bytes(&[5; 32]).verifying_key());
    let cp = checkpoint::verify(&note, &vkey).unwrap();
    let old = checkpoint::verify(&first_note, &vkey).unwrap();
    assert_eq!((cp.origin.as_str(), cp.size), ("trail.test/acme", 13));

    // Inclusion by id, against the latest checkpoint, checked from the event's bytes.
    let id = v2["events"][2]["id"].as_str().unwrap().to_string();
    let (st, d) = s.get(Some(&s.read), &format!("/api/v1/events/{id}")).await;
    assert_eq!(st, StatusCode::OK);
    let leaf = d["event"].to_string();
    let (st, p) = s.get(Some(&s.read), &format!("/api/v1/proof/inclusion?id={id}")).await;
    assert_eq!(st, StatusCode::OK, "{p}");
    assert_eq!((p["index"].as_u64(), p["size"].as_u64()), (Some(7), Some(13)));
    assert!(merkle::verify_inclusion(7, 13, &merkle::leaf_hash(leaf.as_bytes()), &unb64(&p["proof"]), &cp.root));
    // The detail carries the same proof and the checkpoint it is in.
    assert_eq!(d["proof"]["proof"], p["proof"]);
    assert_eq!(d["proof"]["checkpoint"].as_str(), Some(note.as_str()));
    // By index, at an older size.
    let first_id = v["events"][0]["id"].as_str().unwrap();
    let (_, d0) = s.get(Some(&s.read), &format!("/api/v1/events/{first_id}")).await;
    let (_, p0) = s.get(Some(&s.read), "/api/v1/proof/inclusion?index=0&size=5").await;
    let leaf0 = merkle::leaf_hash(d0["event"].to_string().as_bytes());
    assert!(merkle::verify_inclusion(0, 5, &leaf0, &unb64(&p0["proof"]), &old.root));
    // Consistency between the two checkpoints.
    let (_, c) = s.get(Some(&s.read), "/api/v1/proof/consistency?from=5").await;
    assert_eq!((c["from"].as_u64(), c["to"].as_u64()), (Some(5), Some(13)));
    assert!(merkle::verify_consistency(5, 13, &old.root, &cp.root, &unb64(&c["proof"])));

    // Bad requests name the parameter; other organizations' logs are not found.
    for (path, status, field) in [
        ("/api/v1/proof/inclusion?index=13", StatusCode::BAD_REQUEST, Some("index")),
        ("/api/v1/proof/inclusion?index=0&size=99", StatusCode::BAD_REQUEST, Some("size")),
        ("/api/v1/proof/inclusion?index=x", StatusCode::BAD_REQUEST, Some("index")),
        ("/api/v1/proof/inclusion", StatusCode::BAD_REQUEST, Some("index")),
        ("/api/v1/proof/consistency?from=9&to=5", StatusCode::BAD_REQUEST, Some("from")),
        ("/api/v1/proof/consistency", StatusCode::BAD_REQUEST, Some("from")),
        ("/api/v1/proof/consistency?from=1&colour=red", StatusCode::BAD_REQUEST, Some("colour")),
        ("/api/v1/checkpoint?size=4", StatusCode::NOT_FOUND, None),
        ("/api/v1/checkpoint?org=globex", StatusCode::NOT_FOUND, None),
    ] {
        let (st, e) = s.get(Some(&s.read), path).await;
        assert_eq!((st, e["error"]["field"].as_str()), (status, field), "{path}: {e}");
    }
    let (st, _) = s.get(Some(&s.globex_read), &format!("/api/v1/proof/inclusion?id={id}")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = s.get(Some(&s.ingest), "/api/v1/checkpoint").await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // Evidence: every line proves into the newest checkpoint, checked offline.
    let r = s
        .client
        .get(format!("{}/api/v1/export?format=evidence&request_id=req-7", s.base))
        .bearer_auth(&s.read)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-disposition"].to_str().unwrap().starts_with("attachment; filename=Audit_Log_"));
    let text = r.text().await.unwrap();
    let report = trail_core::evidence::verify(text.lines(), Some(&vkey)).unwrap();
    assert_eq!((report.entries, report.checkpoint.size), (1, 13));
    let r =
        s.client.get(format!("{}/api/v1/export?format=evidence", s.base)).bearer_auth(&s.read).send().await.unwrap();
    let text = r.text().await.unwrap();
    // Every entry of the newest checkpoint (which may already hold the first export's
    // own audit:export event).
    let report = trail_core::evidence::verify(text.lines(), Some(&vkey)).unwrap();
    assert!(report.entries >= 13 && report.entries == report.checkpoint.size, "{report:?}");
    let (st, e) = s.get(Some(&s.read), "/api/v1/export?format=docx").await;
    assert_eq!((st, e["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("format")));
    // A platform key may name the organization.
    let (st, _) = s.get(Some(&s.platform), "/api/v1/proof/inclusion?org=acme&index=0&size=5").await;
    assert_eq!(st, StatusCode::OK);
}
