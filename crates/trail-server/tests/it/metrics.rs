//! `GET /metrics`: off unless configured; on the main listener only with its token;
//! counts what ingest stored and refused by organization and reason, times requests by
//! route, reads the store's writer and the checkpoint lag when scraped; and its text is
//! what Prometheus's own checker (`promtool check metrics`, Debian's `prometheus`)
//! accepts.

use std::io::Write;

use serde_json::json;
use trail_server::{AppState, MetricsConfig, ServerConfig};
use trail_store::KeyScope;

use crate::support;

const TOKEN: &str = "metrics-token-0123456789";

async fn scrape(base: &str, token: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new().get(format!("{base}/metrics"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The value of the first sample line starting with `prefix`.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(prefix))?.rsplit(' ').next()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_ingest_and_pass_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let store = support::store(dir.path(), &["acme", "globex"], true).await;
    let ingest = support::key(&*store, "acme", KeyScope::Ingest).await;
    // Off by default: nothing is served (or counted).
    let off = AppState::new(
        store.clone(),
        ServerConfig { log: Some(support::log_key()), ..ServerConfig::default() },
        trail_server::system_clock(),
    );
    assert!(off.metrics.is_none());
    let running = support::serve(off).await;
    assert_eq!(scrape(&running.base, Some(TOKEN)).await.0, 404);
    drop(running);
    let config = ServerConfig {
        log: Some(support::log_key()),
        metrics: MetricsConfig { listen: None, token: Some(TOKEN.into()) },
        ..ServerConfig::default()
    };
    let state = AppState::new(store.clone(), config, trail_server::system_clock());
    let running = support::serve(state).await;
    let base = running.base.clone();
    assert_eq!(scrape(&base, None).await.0, 401);
    assert_eq!(scrape(&base, Some("wrong-token-0123456789")).await.0, 401);
    let api = support::Api::new(&base, &ingest);
    api.ingest(json!([{"action": "user:login"}, {"action": "user:logout"}, {"action": "user:update"}])).await;
    let bad = reqwest::Client::new()
        .post(format!("{base}/api/v1/events"))
        .bearer_auth(&ingest)
        .json(&json!({"action": "no colon"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    // An import through the API counts as ingest too.
    let trail = json!({"Records": [{"eventTime": "2026-11-26T09:00:00Z", "eventSource": "iam.amazonaws.com",
        "eventName": "CreateAccessKey", "eventID": "ct-1", "userIdentity": {"type": "IAMUser", "userName": "bob"}}]});
    let (code, v) = api.call(reqwest::Method::POST, "/api/v1/import/cloudtrail", Some(trail)).await;
    assert_eq!(code, 200, "{v}");
    let (status, text) = scrape(&base, Some(TOKEN)).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(sample(&text, "trail_events_ingested_total{org=\"acme\"}"), Some(4.0), "{text}");
    assert!(text.contains("trail_events_refused_total{org=\"acme\",reason=\"invalid_field\"} 1"), "{text}");
    assert!(
        text.contains("trail_http_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/events\"} 2"),
        "{text}"
    );
    assert!(sample(&text, "trail_store_committed_events_total").is_some_and(|n| n >= 3.0), "{text}");
    assert!(sample(&text, "trail_process_resident_memory_bytes").is_some_and(|n| n > 1e6), "{text}");
    assert!(text.contains("trail_unsigned_entries{org=\"acme\"}"), "{text}");
    assert!(!text.contains("# EOF"), "classic text unless OpenMetrics is asked for");
    let open = reqwest::Client::new()
        .get(format!("{base}/metrics"))
        .bearer_auth(TOKEN)
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .unwrap();
    assert!(open.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    assert!(open.text().await.unwrap().ends_with("# EOF\n"));
    // Prometheus's own checker accepts the text.
    let (ok, said) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .output_with_stdin(text.as_bytes());
    assert!(ok, "promtool check metrics: {said}\n{text}");
}

/// `Command::output` with bytes on stdin: (success, stdout + stderr).
trait WithStdin {
    fn output_with_stdin(&mut self, input: &[u8]) -> (bool, String);
}

impl WithStdin for std::process::Command {
    fn output_with_stdin(&mut self, input: &[u8]) -> (bool, String) {
        let mut child = self
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("promtool (Debian's prometheus package) must be installed for this test");
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    }
}
