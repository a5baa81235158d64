//! `POST /api/v1/import/{format}` as a Kubernetes API server's audit webhook backend
//! posts to it (an `EventList`), and with a CloudTrail log file: stored once however
//! often it is sent, stages and bad records skipped with reasons, the caller's key
//! deciding the organization.

use reqwest::Method;
use serde_json::{json, Value};
use trail_server::{AppState, ServerConfig};
use trail_store::{prelude::*, KeyScope};

use crate::support::{self, Api};

fn event(id: &str, stage: &str, verb: &str, code: u16) -> Value {
    json!({"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": id, "stage": stage,
           "requestURI": "/apis/apps/v1/namespaces/prod/deployments/web", "verb": verb,
           "user": {"username": "alice@example.com", "groups": ["system:authenticated"]},
           "sourceIPs": ["203.0.113.4", "10.0.0.8"], "userAgent": "kubectl/v1.30",
           "objectRef": {"resource": "deployments", "namespace": "prod", "name": "web", "apiGroup": "apps", "apiVersion": "v1"},
           "responseStatus": {"metadata": {}, "code": code},
           "requestReceivedTimestamp": "2026-11-26T10:00:00.000000Z", "stageTimestamp": "2026-11-26T10:00:00.020000Z"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubernetes_webhook_backend_and_cloudtrail_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = support::store(dir.path(), &["acme", "globex"], false).await;
    let ingest = support::key(&*store, "acme", KeyScope::Ingest).await;
    let read = support::key(&*store, "acme", KeyScope::Read).await;
    let server =
        support::serve(AppState::new(store.clone(), ServerConfig::default(), trail_server::system_clock())).await;
    let api = Api::new(&server.base, &ingest);
    // What kube-apiserver posts: an EventList of every stage its policy records.
    let list = json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": [
        event("a-1", "RequestReceived", "patch", 0),
        event("a-1", "ResponseComplete", "patch", 200),
        event("a-2", "ResponseComplete", "delete", 403),
    ]});
    let (code, v) = api.call(Method::POST, "/api/v1/import/k8s", Some(list.clone())).await;
    assert_eq!((code, v["accepted"].as_u64()), (200, Some(2)), "{v}");
    assert_eq!(v["skipped"][0]["line"], 1, "{v}");
    assert!(v["skipped"][0]["reason"].as_str().unwrap().contains("RequestReceived"), "{v}");
    // The API server retries: nothing is stored twice.
    let (code, again) = api.call(Method::POST, "/api/v1/import/k8s", Some(list)).await;
    assert_eq!((code, again["duplicates"].as_u64()), (200, Some(2)), "{again}");
    assert_eq!(again["events"][0]["id"], v["events"][0]["id"]);
    let stored: Vec<trail_core::Event> = store
        .scan("acme", 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|(_, l)| trail_core::Event::from_leaf(l).unwrap())
        .collect();
    assert_eq!(stored.len(), 2);
    let denied = &stored[1];
    assert_eq!((denied.action.as_str(), denied.status_code), ("deployments:delete", Some(403)));
    assert_eq!(denied.source_ip.as_deref(), Some("10.0.0.8"));
    assert_eq!(denied.context.as_ref().and_then(|c| c.namespace.as_deref()), Some("prod"));
    assert_eq!(denied.org, "acme", "the organization is the key's");
    // A CloudTrail log file.
    let file = json!({"Records": [
        {"eventTime": "2026-11-26T09:00:00Z", "eventSource": "iam.amazonaws.com", "eventName": "CreateAccessKey",
         "eventID": "ct-1", "sourceIPAddress": "198.51.100.2", "userIdentity": {"type": "IAMUser", "userName": "bob"}},
        {"eventSource": "iam.amazonaws.com", "eventID": "ct-2"}
    ]});
    let (code, v) = api.call(Method::POST, "/api/v1/import/cloudtrail", Some(file)).await;
    let skipped = (v["skipped"][0]["line"].as_u64(), v["skipped"][0]["record"].as_u64());
    assert_eq!((code, v["accepted"].as_u64(), skipped), (200, Some(1), (Some(1), Some(2))), "{v}");
    // Unknown formats, and keys that may not ingest, are refused.
    let (code, v) = api.call(Method::POST, "/api/v1/import/splunk", Some(json!({}))).await;
    assert_eq!((code, v["error"]["field"].as_str()), (400, Some("format")), "{v}");
    let (code, _) = Api::new(&server.base, &read).call(Method::POST, "/api/v1/import/k8s", Some(json!({}))).await;
    assert_eq!(code, 403);
}

/// The product documents' query parameters work on the list: `start`, `end`,
/// `status=failed`, `offset`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_query_parameters_are_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let store = support::store(dir.path(), &["acme"], false).await;
    let key = support::key(&*store, "acme", KeyScope::Admin).await;
    let server =
        support::serve(AppState::new(store.clone(), ServerConfig::default(), trail_server::system_clock())).await;
    let api = Api::new(&server.base, &key);
    let events: Vec<Value> = (0..30)
        .map(|i| {
            json!({"action": "service:deploy", "timestamp": format!("2026-03-{:02}T10:00:00Z", i % 28 + 1),
                   "result": if i % 3 == 0 { "FAILED" } else { "DONE" }, "request_id": format!("r{i:02}")})
        })
        .collect();
    api.ingest(Value::Array(events)).await;
    let ids = |v: &Value| -> Vec<String> {
        v["events"].as_array().unwrap().iter().map(|e| e["request_id"].as_str().unwrap().to_string()).collect()
    };
    let (_, a) =
        api.call(Method::GET, "/api/v1/events?start=2026-03-05&end=2026-03-10&status=failed&limit=100", None).await;
    let (_, b) =
        api.call(Method::GET, "/api/v1/events?from=2026-03-05&to=2026-03-10&result=FAILED&limit=100", None).await;
    assert!(!ids(&a).is_empty());
    assert_eq!(ids(&a), ids(&b));
    // offset: the same rows as the second page by cursor.
    let (_, first) = api.call(Method::GET, "/api/v1/events?limit=7", None).await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = api.call(Method::GET, &format!("/api/v1/events?limit=7&cursor={cursor}"), None).await;
    let (code, by_offset) = api.call(Method::GET, "/api/v1/events?limit=7&offset=7", None).await;
    assert_eq!(code, 200, "{by_offset}");
    assert_eq!(ids(&by_offset), ids(&second));
    let (_, past) = api.call(Method::GET, "/api/v1/events?offset=500", None).await;
    assert_eq!(past["events"], json!([]));
    for q in ["offset=10001", "offset=-1", &format!("offset=3&cursor={cursor}")] {
        let (code, v) = api.call(Method::GET, &format!("/api/v1/events?{q}"), None).await;
        assert_eq!((code, v["error"]["field"].as_str()), (400, Some("offset")), "{q}: {v}");
    }
}
