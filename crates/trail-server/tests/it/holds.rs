//! Legal holds over HTTP: placed by an organization's administrator (or a platform
//! administrator for any organization) on the organization or on a query, with a
//! reason; refused without one, with a query that does not parse, to readers and for
//! other organizations; retention keeping what an active hold covers; released with a
//! reason; both changes recorded in the held organization's log.

use reqwest::Method;
use serde_json::{json, Value};
use trail_core::Timestamp;
use trail_server::{AppState, ServerConfig};
use trail_store::{
    archive::{self, Archive, Retention},
    EventLog, KeyScope,
};

use crate::support::{self, Api};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legal_holds_are_placed_kept_and_released() {
    let dir = tempfile::tempdir().unwrap();
    let store = support::store(dir.path(), &["acme", "globex"], true).await;
    let admin = support::key(&*store, "acme", KeyScope::Admin).await;
    let read = support::key(&*store, "acme", KeyScope::Read).await;
    let globex = support::key(&*store, "globex", KeyScope::Admin).await;
    let platform = support::key(&*store, "acme", KeyScope::Platform).await;
    let ingest = support::key(&*store, "acme", KeyScope::Ingest).await;
    let state = AppState::new(store.clone(), ServerConfig::default(), trail_server::system_clock());
    let server = support::serve(state).await;
    let (a, r, g, p) = (
        Api::new(&server.base, &admin),
        Api::new(&server.base, &read),
        Api::new(&server.base, &globex),
        Api::new(&server.base, &platform),
    );
    // Old events of two people.
    let old = Timestamp(Timestamp::from_datetime(chrono::Utc::now()).0 - 400 * 86_400_000_000).to_rfc3339();
    let events: Vec<Value> = (0..9)
        .map(|i| {
            let who = if i % 3 == 0 { "ann@acme.com" } else { "bob@acme.com" };
            json!({"action": "doc:update", "timestamp": old, "actor": {"email": who}})
        })
        .collect();
    Api::new(&server.base, &ingest).ingest(Value::Array(events)).await;

    let a = &a;
    let place = |body: Value| async move { a.call(Method::POST, "/api/v1/holds", Some(body)).await };
    let (code, all) = place(json!({"reason": "litigation 2024-17"})).await;
    assert_eq!((code, all["org"].as_str(), all["active"].as_bool()), (201, Some("acme"), Some(true)), "{all}");
    assert!(all["query"].is_null());
    let (code, ann) = place(json!({"query": "actor:ann@acme.com", "reason": "Ann's case"})).await;
    assert_eq!(code, 201, "{ann}");
    for (body, field) in [
        (json!({"reason": "  "}), "reason"),
        (json!({"query": "created:>=not-a-date", "reason": "x"}), "query"),
        (json!({"reason": "x", "colour": "red"}), "colour"),
    ] {
        let (code, e) = place(body.clone()).await;
        assert_eq!(code, 400, "{body}: {e}");
        assert_eq!(e["error"]["field"].as_str(), Some(field), "{body}: {e}");
    }
    let (code, _) = r.call(Method::POST, "/api/v1/holds", Some(json!({"reason": "x"}))).await;
    assert_eq!(code, 403, "a read key places no hold");
    let (code, _) = g.call(Method::POST, "/api/v1/holds", Some(json!({"org": "acme", "reason": "x"}))).await;
    assert_eq!(code, 404, "another organization's administrator");
    let (code, h) = p.call(Method::POST, "/api/v1/holds", Some(json!({"org": "globex", "reason": "platform"}))).await;
    assert_eq!((code, h["org"].as_str()), (201, Some("globex")));
    let (_, list) = a.call(Method::GET, "/api/v1/holds", None).await;
    let ids: Vec<i64> = list["holds"].as_array().unwrap().iter().map(|h| h["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [ann["id"].as_i64().unwrap(), all["id"].as_i64().unwrap()], "{list}");

    // Retention keeps everything while the organization is held.
    let arch = Archive::new(dir.path().join("archive"));
    let rules = Retention { default_days: 90, categories: Default::default(), key_days: None };
    let now = Timestamp::from_datetime(chrono::Utc::now());
    let acme = |r: Vec<archive::OrgReport>| r.into_iter().find(|r| r.org == "acme").unwrap();
    let first = acme(archive::run(&*store, &arch, &rules, now).await.unwrap());
    assert_eq!((first.archived, first.held), (0, 9), "{first:?}");

    // Released with a reason; only Ann's events stay after the next run.
    let release = |id: i64, reason: &str| {
        let body = json!({"reason": reason});
        async move { a.call(Method::POST, &format!("/api/v1/holds/{id}/release"), Some(body)).await }
    };
    let (code, rel) = release(all["id"].as_i64().unwrap(), "case closed").await;
    assert_eq!(
        (code, rel["active"].as_bool(), rel["release_reason"].as_str()),
        (200, Some(false), Some("case closed"))
    );
    assert_eq!(release(all["id"].as_i64().unwrap(), "again").await.0, 404);
    assert_eq!(release(ann["id"].as_i64().unwrap(), "").await.0, 400);
    let second = acme(archive::run(&*store, &arch, &rules, now).await.unwrap());
    assert_eq!((second.archived, second.held), (6, 3), "{second:?}");
    let online: Vec<u64> = store.scan("acme", 0, 100).await.unwrap().iter().map(|(s, _)| *s).collect();
    let ann_seqs: Vec<u64> = online.iter().copied().filter(|s| *s < 9).collect();
    assert_eq!(ann_seqs.len(), 3, "Ann's three events are still online: {online:?}");

    // Both changes are in acme's log, with their reasons.
    support::until("hold:place and hold:release recorded", async || {
        let (_, v) = a.call(Method::GET, "/api/v1/events?q=hold&limit=50", None).await;
        let evs = v["events"].as_array()?.clone();
        let has = |action: &str, reason: &str| {
            evs.iter().any(|e| e["action"] == action && e["details"]["reason"].as_str() == Some(reason))
        };
        (has("hold:place", "litigation 2024-17") && has("hold:release", "case closed")).then_some(())
    })
    .await;
}
