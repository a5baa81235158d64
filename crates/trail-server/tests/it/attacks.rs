//! What an attacker found in the new surfaces (issue 31), each closed and held here:
//! searches that would exhaust memory, credentials that outlive their streams, rights
//! that were only checked when granted, tenants seen through the log of views, users
//! enumerated across tenants.

use reqwest::Method;
use serde_json::json;
use trail_server::{AppState, ServerConfig};
use trail_store::KeyScope;

use crate::support::{self, key, Api};

/// A search of thousands of words held thousands of index cursors at once: every
/// operation that takes a filter refuses one over the bounds, naming `q`, at once.
#[tokio::test]
async fn a_search_over_the_bounds_is_refused_naming_q() {
    let dir = tempfile::tempdir().unwrap();
    let store = support::store(dir.path(), &["acme"], true).await;
    let read = key(&*store, "acme", KeyScope::Read).await;
    let ingest = key(&*store, "acme", KeyScope::Ingest).await;
    let running = support::serve(AppState::new(store, ServerConfig::default(), trail_server::system_clock())).await;
    let api = Api::new(&running.base, &read);
    Api::new(&running.base, &ingest).ingest(json!({"action": "auth:login", "actor": {"email": "ann@acme.com"}})).await;
    let words = vec!["a"; 2000].join("+");
    for path in [
        format!("/api/v1/events?q={words}"),
        format!("/api/v1/timeline?q={words}"),
        format!("/api/v1/facets?q={words}"),
        format!("/api/v1/export?format=csv&q={words}"),
        format!("/api/v1/download?format=csv&from=2024-01-01&to=2024-01-02&q={words}"),
        format!("/api/v1/events/stream?q={words}"),
    ] {
        let (code, v) = api.call(Method::GET, &path, None).await;
        assert_eq!((code, v["error"]["field"].as_str()), (400, Some("q")), "{}: {v}", &path[..40]);
    }
    let (code, v) = api.call(Method::POST, &format!("/api/v1/exports?format=csv&q={words}"), None).await;
    assert_eq!((code, v["error"]["field"].as_str()), (400, Some("q")), "{v}");
    // Within the bounds, the same search is answered.
    let (code, v) = api.call(Method::GET, &format!("/api/v1/events?q={}", vec!["a"; 16].join("+")), None).await;
    assert_eq!(code, 200, "{v}");
}

/// A prefix that begins more indexed words than are expanded is read by the index as
/// one merged list held in memory: at most two of them in one search.
#[tokio::test]
async fn at_most_two_open_prefixes_in_one_search() {
    let dir = tempfile::tempdir().unwrap();
    let store = support::store(dir.path(), &["acme"], true).await;
    let read = key(&*store, "acme", KeyScope::Read).await;
    let ingest = key(&*store, "acme", KeyScope::Ingest).await;
    let running = support::serve(AppState::new(store, ServerConfig::default(), trail_server::system_clock())).await;
    let api = Api::new(&running.base, &read);
    let mut words = Vec::new();
    for p in ["za", "zb", "zc"] {
        for a in 'a'..='c' {
            for b in 'a'..='z' {
                words.push(format!("{p}{a}{b}"));
            }
        }
    }
    Api::new(&running.base, &ingest)
        .ingest(json!({"action": "note:write", "details": {"text": words.join(" ")}}))
        .await;
    support::until("the words indexed", async || {
        let (code, v) = api.call(Method::GET, "/api/v1/events?q=zaab", None).await;
        (code == 200 && v["events"].as_array().is_some_and(|e| e.len() == 1)).then_some(())
    })
    .await;
    let (code, v) = api.call(Method::GET, "/api/v1/events?q=za+zb", None).await;
    assert_eq!((code, v["events"].as_array().map(Vec::len)), (200, Some(1)), "{v}");
    for path in [
        "/api/v1/events?q=za+zb+zc",
        "/api/v1/timeline?q=za+zb+zc",
        "/api/v1/export?format=csv&q=za+zb+zc",
        "/api/v1/export?format=jsonl&q=za+zb+zc",
        "/api/v1/download?format=csv&from=2020-01-01&to=2030-01-01&q=za+zb+zc",
    ] {
        let (code, v) = api.call(Method::GET, path, None).await;
        assert_eq!((code, v["error"]["field"].as_str()), (400, Some("q")), "{path}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("za, zb, zc"), "{v}");
    }
}
