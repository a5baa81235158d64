//! The OpenAPI document: served at `/api/v1/openapi.json`, equal to the golden copy in
//! the repository, valid for an independent validator (`openapi-spec-validator`), and
//! what the server really answers fits the schemas it names.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use trail_server::{AppState, ServerConfig};
use trail_store::KeyScope;

use crate::support;

struct Server {
    base: String,
    client: reqwest::Client,
    ingest: String,
    read: String,
    admin: String,
    _running: support::Running,
    _dir: tempfile::TempDir,
}

async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = support::store(dir.path(), &["acme"], true).await;
    let ingest = support::key(&*store, "acme", KeyScope::Ingest).await;
    let read = support::key(&*store, "acme", KeyScope::Read).await;
    let admin = support::key(&*store, "acme", KeyScope::Admin).await;
    let config = ServerConfig { log: Some(support::log_key()), ..ServerConfig::default() };
    let running = support::serve(AppState::new(store, config, trail_server::system_clock())).await;
    Server {
        base: running.base.clone(),
        client: reqwest::Client::new(),
        ingest,
        read,
        admin,
        _running: running,
        _dir: dir,
    }
}

impl Server {
    async fn call(&self, method: Method, key: Option<&str>, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}

fn golden() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json")).unwrap()
}

#[tokio::test]
async fn the_document_is_served_current_and_valid() {
    let s = start().await;
    let resp = s.client.get(format!("{}/api/v1/openapi.json", s.base)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let served = resp.text().await.unwrap();
    assert!(served == golden(), "the served document differs from crates/trail-server/openapi.json");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &served).unwrap();
    let out = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(file.path())
        .output()
        .expect("python3 runs (bash .ci/run installs openapi-spec-validator)");
    assert!(
        out.status.success(),
        "openapi-spec-validator refuses the document:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Checks `value` against the document's schema `name`.
fn check(doc: &Value, name: &str, value: &Value) {
    let schema = json!({"$ref": format!("#/components/schemas/{name}"), "components": doc["components"]});
    let validator = jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("schema {name}: {e}"));
    let errors: Vec<String> = validator.iter_errors(value).map(|e| format!("{} at {}", e, e.instance_path)).collect();
    assert!(errors.is_empty(), "{name} does not fit {value}:\n{}", errors.join("\n"));
}

/// The schema an operation names for a status.
fn answer_schema(doc: &Value, path: &str, method: &str, status: &str) -> String {
    let content = &doc["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"];
    let r = content["$ref"].as_str().unwrap_or_else(|| panic!("{method} {path} {status}: {content}"));
    r.trim_start_matches("#/components/schemas/").to_string()
}

#[tokio::test]
async fn answers_fit_the_schemas_the_document_names() {
    let s = start().await;
    let doc: Value = serde_json::from_str(&golden()).unwrap();
    let fits = |path: &str, method: &str, status: StatusCode, v: &Value| {
        check(&doc, &answer_schema(&doc, path, method, status.as_str()), v);
    };
    let events = json!([
        {"action": "user.login", "actor": {"id": "u1", "email": "sarah@acme.com", "type": "user"},
         "source_ip": "10.0.0.7", "details": {"method": "sso", "n": 1.5}},
        {"action": "role.update", "result": "failure", "status_code": 403, "error": "denied",
         "resource": {"type": "role", "id": "r1", "parent": {"type": "org", "name": "acme"}},
         "context": {"workspace": {"id": "w1"}, "cluster": "prod"},
         "before": {"view": "*"}, "after": {"view": "auth"}, "idempotency_key": "k-1"}
    ]);
    let (st, v) = s.call(Method::POST, Some(&s.ingest), "/api/v1/events", Some(events)).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    fits("/api/v1/events", "post", st, &v);
    let id = v["events"][1]["id"].as_str().unwrap().to_string();

    let (st, v) = s.call(Method::GET, Some(&s.read), "/api/v1/events?limit=1", None).await;
    fits("/api/v1/events", "get", st, &v);
    assert!(v["next_cursor"].is_string(), "{v}");
    // The detail carries its proof once a checkpoint covers the event.
    let deadline = Instant::now() + Duration::from_secs(30);
    let detail = loop {
        let (st, v) = s.call(Method::GET, Some(&s.read), &format!("/api/v1/events/{id}"), None).await;
        fits("/api/v1/events/{id}", "get", st, &v);
        if !v["proof"].is_null() {
            break v;
        }
        assert!(Instant::now() < deadline, "no checkpoint covers the event: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(detail["diff"][0]["path"], "view", "{detail}");
    let (st, v) = s.call(Method::GET, Some(&s.read), "/api/v1/facets", None).await;
    fits("/api/v1/facets", "get", st, &v);
    for path in ["/api/v1/alerts/rules", "/api/v1/alerts/destinations", "/api/v1/alerts/deliveries"] {
        let (st, v) = s.call(Method::GET, Some(&s.read), path, None).await;
        assert_eq!(st, StatusCode::OK, "{path}: {v}");
        fits(path, "get", st, &v);
    }
    let bad = json!({"name": "x", "kind": "pager"});
    let (st, v) = s.call(Method::POST, Some(&s.admin), "/api/v1/alerts/destinations", Some(bad)).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    fits("/api/v1/alerts/destinations", "post", st, &v);
    // Internal addresses are refused unless the configuration allows them.
    let inner = json!({"name": "x", "kind": "webhook", "url": "http://127.0.0.1:9/hook"});
    let (st, v) = s.call(Method::POST, Some(&s.admin), "/api/v1/alerts/destinations", Some(inner)).await;
    assert_eq!((st, v["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("url")), "{v}");
    let (st, v) =
        s.call(Method::PUT, Some(&s.admin), "/api/v1/alerts/rules/large_export", Some(json!({"threshold": 500}))).await;
    fits("/api/v1/alerts/rules/{name}", "put", st, &v);
    assert_eq!((st, v["threshold"].as_u64()), (StatusCode::OK, Some(500)), "{v}");
    let (st, v) =
        s.call(Method::PUT, Some(&s.read), "/api/v1/alerts/rules/large_export", Some(json!({"threshold": 5}))).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "a read key cannot change rules: {v}");
    let (st, v) = s.call(Method::GET, Some(&s.read), "/api/v1/streams", None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    fits("/api/v1/streams", "get", st, &v);
    let bad = json!({"name": "x", "kind": "http", "url": "http://127.0.0.1:9/in", "format": "jsonl"});
    let (st, v) = s.call(Method::POST, Some(&s.admin), "/api/v1/streams", Some(bad)).await;
    assert_eq!((st, v["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("url")), "{v}");
    fits("/api/v1/streams", "post", st, &v);
    let (st, v) = s.call(Method::GET, Some(&s.read), "/api/v1/timeline?period=7d", None).await;
    fits("/api/v1/timeline", "get", st, &v);
    assert_eq!(v["bucket"], "day", "{v}");
    let (st, v) = s.call(Method::GET, Some(&s.read), "/api/v1/timeline?from=2026-02-01&to=2026-01-01", None).await;
    fits("/api/v1/timeline", "get", st, &v);
    assert_eq!((st, &v["error"]["field"]), (StatusCode::BAD_REQUEST, &json!("to")), "{v}");
    let (st, v) = s.call(Method::GET, Some(&s.read), "/api/v1/proof/inclusion?index=0&size=2", None).await;
    fits("/api/v1/proof/inclusion", "get", st, &v);
    let (st, v) = s.call(Method::GET, Some(&s.read), "/api/v1/proof/consistency?from=1&to=2", None).await;
    fits("/api/v1/proof/consistency", "get", st, &v);
    let (st, v) = s.call(Method::GET, Some(&s.read), "/api/v1/auth/me", None).await;
    fits("/api/v1/auth/me", "get", st, &v);
    let (st, v) = s.call(Method::GET, None, "/api/v1/auth/me", None).await;
    fits("/api/v1/auth/me", "get", st, &v);
    let (st, v) = s.call(Method::GET, None, "/healthz", None).await;
    fits("/healthz", "get", st, &v);

    let body = json!({"email": "ana@acme.com", "name": "Ana", "role": "auditor"});
    let (st, v) = s.call(Method::POST, Some(&s.admin), "/api/v1/users", Some(body)).await;
    fits("/api/v1/users", "post", st, &v);
    let (st, v) = s.call(Method::GET, Some(&s.admin), "/api/v1/users", None).await;
    fits("/api/v1/users", "get", st, &v);
    let (st, v) = s.call(Method::PUT, Some(&s.admin), "/api/v1/roles/ops", Some(json!({"view": "auth,user"}))).await;
    fits("/api/v1/roles/{name}", "put", st, &v);
    let (st, v) = s.call(Method::GET, Some(&s.admin), "/api/v1/roles", None).await;
    fits("/api/v1/roles", "get", st, &v);
    let (st, v) = s.call(Method::POST, Some(&s.admin), "/api/v1/keys", Some(json!({"scope": "read"}))).await;
    fits("/api/v1/keys", "post", st, &v);
    let (st, v) = s.call(Method::GET, Some(&s.admin), "/api/v1/keys", None).await;
    fits("/api/v1/keys", "get", st, &v);
    let schedule = json!({"name": "weekly", "cadence": "weekly", "weekday": "monday", "at": "06:00",
                          "format": "csv", "directory": "weekly"});
    let (st, v) = s.call(Method::POST, Some(&s.admin), "/api/v1/schedules", Some(schedule)).await;
    fits("/api/v1/schedules", "post", st, &v);
    let (st, v) = s.call(Method::GET, Some(&s.admin), "/api/v1/schedules", None).await;
    fits("/api/v1/schedules", "get", st, &v);
    let (st, v) = s.call(Method::POST, Some(&s.read), "/api/v1/exports?format=csv", None).await;
    fits("/api/v1/exports", "post", st, &v);

    // Errors: every one is the documented error body.
    for (method, key, path) in [
        (Method::GET, Some(&s.read), "/api/v1/events?limit=0"),
        (Method::GET, None, "/api/v1/events"),
        (Method::GET, Some(&s.ingest), "/api/v1/events"),
        (Method::GET, Some(&s.read), "/api/v1/events/00000000-0000-0000-0000-000000000000"),
        (Method::DELETE, Some(&s.read), "/api/v1/events"),
    ] {
        let (st, v) = s.call(method.clone(), key.map(|k| k.as_str()), path, None).await;
        assert!(st.is_client_error(), "{method} {path}: {st}");
        check(&doc, "ErrorBody", &v);
    }
}
