//! Alerts against real peers started here: an HTTP receiver that checks every
//! Standard Webhooks signature and timestamp and can go down (503) or away (410),
//! Slack- and Discord-shaped receivers, the SMTP sink, a restart of Trail between a
//! firing and its delivery, and two servers on one PostgreSQL database (one firing,
//! not two).

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{body::Bytes, extract::State, http::HeaderMap, routing::post, Router};
use serde_json::{json, Value};
use trail_server::{AlertConfig, AppState, ServerConfig, SmtpConfig};
use trail_store::{prelude::*, KeyScope, Org};

use crate::{
    exports::Smtp,
    support::{self, until},
};

/// What the receiver got, per path: verified bodies; and how it answers.
#[derive(Default)]
struct Inbox {
    secret: Mutex<Option<String>>,
    got: Mutex<Vec<(String, Value)>>,
    bad: Mutex<Vec<String>>,
    status: Mutex<u16>,
}

async fn receive(
    State(inbox): State<Arc<Inbox>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::http::StatusCode {
    let path = uri.path().to_string();
    let status = *inbox.status.lock().unwrap();
    if path == "/gone" {
        return axum::http::StatusCode::GONE;
    }
    if status != 200 {
        return axum::http::StatusCode::from_u16(status).unwrap();
    }
    if path == "/hook" {
        let secret = inbox.secret.lock().unwrap().clone().unwrap_or_default();
        // The reference implementation checks the signature and that the timestamp is
        // within five minutes.
        if let Err(e) = standardwebhooks::Webhook::new(&secret).unwrap().verify(&body, &headers) {
            inbox.bad.lock().unwrap().push(format!("{e:?}"));
            return axum::http::StatusCode::UNAUTHORIZED;
        }
    }
    inbox.got.lock().unwrap().push((path, serde_json::from_slice(&body).unwrap_or(Value::Null)));
    axum::http::StatusCode::NO_CONTENT
}

async fn receiver() -> (Arc<Inbox>, SocketAddr) {
    let inbox = Arc::new(Inbox { status: Mutex::new(200), ..Inbox::default() });
    let app = Router::new().route("/{*path}", post(receive)).with_state(inbox.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (inbox, addr)
}

impl Inbox {
    fn on(&self, path: &str) -> Vec<Value> {
        self.got.lock().unwrap().iter().filter(|(p, _)| p == path).map(|(_, v)| v.clone()).collect()
    }
}

fn config(smtp: Option<u16>) -> ServerConfig {
    let mut c = ServerConfig {
        public_url: Some("https://trail.example".into()),
        alerts: AlertConfig {
            enabled: true,
            allow_private_destinations: true,
            retry_base: Duration::from_millis(50),
            timeout: Duration::from_secs(5),
        },
        ..ServerConfig::default()
    };
    c.exports.smtp = smtp.map(|port| SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        from: "trail@example.com".into(),
        username: None,
        password: None,
        // The test's sink is a plain local relay.
        tls: trail_server::SmtpTls::None,
        ca_file: None,
    });
    c
}

struct Client {
    base: String,
    admin: String,
    http: reqwest::Client,
}

impl Client {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.admin);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let code = r.status().as_u16();
        (code, r.json().await.unwrap_or(Value::Null))
    }

    async fn ingest(&self, events: Value) {
        let (code, v) = self.call(reqwest::Method::POST, "/api/v1/events", Some(events)).await;
        assert!(code < 300, "{v}");
    }

    async fn deliveries(&self) -> Vec<Value> {
        let (_, v) = self.call(reqwest::Method::GET, "/api/v1/alerts/deliveries", None).await;
        v["deliveries"].as_array().cloned().unwrap_or_default()
    }
}

fn failed_login(who: &str) -> Value {
    json!({"action": "auth:login", "result": "FAILED", "actor": {"email": who}, "source_ip": "203.0.113.7"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firings_reach_webhooks_chat_and_mail_signed_retried_and_linked() {
    let dir = tempfile::tempdir().unwrap();
    let store = support::store(dir.path(), &["acme"], false).await;
    let admin = support::key(&*store, "acme", KeyScope::Admin).await;
    let smtp = Smtp::start();
    let state = AppState::new(store.clone(), config(Some(smtp.port)), trail_server::system_clock());
    let server = support::serve(state).await;
    let c = Client { base: server.base.clone(), admin, http: reqwest::Client::new() };
    let (inbox, addr) = receiver().await;
    // Destinations: a signed webhook (its secret shown once), Slack, Discord, mail.
    let (code, hook) = c
        .call(
            reqwest::Method::POST,
            "/api/v1/alerts/destinations",
            Some(json!({"name": "hook", "kind": "webhook", "url": format!("http://{addr}/hook")})),
        )
        .await;
    assert_eq!(code, 201, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    *inbox.secret.lock().unwrap() = Some(secret);
    for (kind, path) in [("slack", "slack"), ("discord", "discord")] {
        let body = json!({"name": kind, "kind": kind, "url": format!("http://{addr}/{path}")});
        assert_eq!(c.call(reqwest::Method::POST, "/api/v1/alerts/destinations", Some(body)).await.0, 201);
    }
    let mail = json!({"name": "oncall", "kind": "email", "recipients": ["oncall@acme.test"]});
    assert_eq!(c.call(reqwest::Method::POST, "/api/v1/alerts/destinations", Some(mail)).await.0, 201);
    // A webhook URL's token (its path) is never shown or recorded again.
    let tokened =
        json!({"name": "tokened", "kind": "slack", "url": format!("http://{addr}/services/T0/B0/S3CR3TT0K3N")});
    let (code, made) = c.call(reqwest::Method::POST, "/api/v1/alerts/destinations", Some(tokened)).await;
    assert_eq!(code, 201, "{made}");
    let (_, listed) = c.call(reqwest::Method::GET, "/api/v1/alerts/destinations", None).await;
    assert!(listed.to_string().find("whsec_").is_none(), "secrets are not shown again: {listed}");
    assert!(!listed.to_string().contains("S3CR3TT0K3N"), "a URL's token is not shown: {listed}");
    assert!(listed.to_string().contains(&format!("http://{addr}/…0K3N")), "{listed}");
    let recorded = until("the destination's creation recorded", async || {
        let (_, v) =
            c.call(reqwest::Method::GET, "/api/v1/events?category=alert&operation=destination_create", None).await;
        v["events"].as_array().filter(|e| !e.is_empty()).map(|_| v.clone())
    })
    .await;
    assert!(!recorded.to_string().contains("S3CR3TT0K3N"), "a URL's token is not recorded: {recorded}");
    let path = format!("/api/v1/alerts/destinations/{}", made["id"]);
    assert_eq!(c.call(reqwest::Method::DELETE, &path, None).await.0, 204);
    // Bad input is refused, naming the field.
    for (body, field) in [
        (json!({"name": "x", "kind": "pager"}), "kind"),
        (json!({"name": "x", "kind": "webhook", "url": "ftp://x"}), "url"),
        (json!({"name": "x", "kind": "email", "recipients": ["not mail"]}), "recipients"),
    ] {
        let (code, e) = c.call(reqwest::Method::POST, "/api/v1/alerts/destinations", Some(body)).await;
        assert_eq!((code, e["error"]["field"].as_str()), (400, Some(field)), "{e}");
    }
    let (code, e) =
        c.call(reqwest::Method::PUT, "/api/v1/alerts/rules/failed_logins", Some(json!({"window": "ten"}))).await;
    assert_eq!((code, e["error"]["field"].as_str()), (400, Some("window")), "{e}");
    // A unit of two bytes used to panic the parser (and drop the connection).
    for bad in ["1é", "é", "9999999999999999999d"] {
        let (code, e) =
            c.call(reqwest::Method::PUT, "/api/v1/alerts/rules/failed_logins", Some(json!({"quiet": bad}))).await;
        assert_eq!((code, e["error"]["field"].as_str()), (400, Some("quiet")), "{bad}: {e}");
    }
    // The evaluator starts at the end of the log: wait until it has (history does not alert).
    until("the evaluator to start", async || store.evaluation("acme").await.unwrap()).await;
    // Five failed logins of one actor within ten minutes: one firing, everywhere.
    let burst: Vec<Value> = (0..5).map(|_| failed_login("mallory@acme.com")).collect();
    c.ingest(Value::Array(burst)).await;
    let hook =
        until("the webhook", async || inbox.on("/hook").into_iter().find(|v| v["rule"] == "failed_logins")).await;
    assert_eq!(hook["org"], "acme");
    assert_eq!(hook["count"], 5);
    assert_eq!(hook["window"], "10m");
    assert_eq!(hook["events"].as_array().unwrap().len(), 5);
    assert_eq!(hook["group"], json!({"by": "actor", "value": "mallory@acme.com"}));
    let last = hook["last_event"]["id"].as_str().unwrap();
    let link = hook["link"].as_str().unwrap();
    assert!(link.starts_with("https://trail.example/audit?") && link.contains(&format!("event={last}")), "{link}");
    assert!(inbox.bad.lock().unwrap().is_empty(), "{:?}", inbox.bad.lock().unwrap());
    let slack = until("slack", async || inbox.on("/slack").into_iter().next()).await;
    assert!(slack["text"].as_str().unwrap().contains("failed_logins") && slack["blocks"].is_array(), "{slack}");
    let discord = until("discord", async || inbox.on("/discord").into_iter().next()).await;
    assert!(discord["content"].as_str().unwrap().contains("failed_logins"), "{discord}");
    assert_eq!(discord["embeds"][0]["url"].as_str(), Some(link));
    let mails = smtp.wait_for(1).await;
    assert!(mails[0].0["subject"].as_str().unwrap().contains("failed_logins"), "{}", mails[0].0);
    assert!(mails[0].0["text"].as_str().unwrap().contains(link), "{}", mails[0].0);
    // The link opens the page on exactly these events.
    // (`event` selects the row in the page; the API lists.)
    let query: Vec<&str> = link.split_once('?').unwrap().1.split('&').filter(|p| !p.starts_with("event=")).collect();
    let query = query.join("&");
    let page: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/events?{query}", server.base))
        .bearer_auth(&c.admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["events"].as_array().map(Vec::len), Some(5), "{page}");
    // The firing is in the log; so is the making of the destinations.
    let log = until("monitoring:alert in the log", async || {
        let (_, v) = c.call(reqwest::Method::GET, "/api/v1/events?q=action:monitoring:alert", None).await;
        v["events"].as_array().filter(|e| !e.is_empty()).cloned()
    })
    .await;
    assert_eq!(log[0]["details"]["rule"], "failed_logins");
    assert_eq!(log[0]["details"]["count"], 5);
    let (_, made) = c.call(reqwest::Method::GET, "/api/v1/events?q=action:alert:destination_create", None).await;
    assert_eq!(made["events"].as_array().unwrap().len(), 5, "four kept and the tokened one");
    // The receiver goes down: the delivery is retried until it comes back.
    *inbox.status.lock().unwrap() = 503;
    c.ingest(json!({"action": "api_key:create", "actor": {"email": "dev@acme.com"}})).await;
    let failing = until("a failed attempt", async || {
        c.deliveries().await.into_iter().find(|d| {
            d["rule"] == "api_token_created"
                && d["destination"] == hook_id(&listed)
                && d["attempts"].as_u64() >= Some(2)
        })
    })
    .await;
    assert_eq!((failing["status"].as_str(), failing["last_code"].as_i64()), (Some("pending"), Some(503)), "{failing}");
    *inbox.status.lock().unwrap() = 200;
    until("the retried webhook", async || inbox.on("/hook").into_iter().find(|v| v["rule"] == "api_token_created"))
        .await;
    // A destination answering 410 is disabled, its delivery failed; a test message
    // to a working one is delivered.
    let (_, gone) = c
        .call(
            reqwest::Method::POST,
            "/api/v1/alerts/destinations",
            Some(json!({"name": "gone", "kind": "slack", "url": format!("http://{addr}/gone")})),
        )
        .await;
    let gone_id = gone["id"].as_i64().unwrap();
    let (code, test) =
        c.call(reqwest::Method::POST, &format!("/api/v1/alerts/destinations/{gone_id}/test"), None).await;
    assert_eq!(code, 202, "{test}");
    let failed = until("the 410", async || {
        c.deliveries().await.into_iter().find(|d| d["id"] == test["id"] && d["status"] == "failed")
    })
    .await;
    assert_eq!(failed["last_code"], 410);
    let (_, dests) = c.call(reqwest::Method::GET, "/api/v1/alerts/destinations", None).await;
    let d = dests["destinations"].as_array().unwrap().iter().find(|d| d["id"] == gone_id).unwrap().clone();
    assert_eq!(d["enabled"], false, "{d}");
    let (code, _) =
        c.call(reqwest::Method::POST, &format!("/api/v1/alerts/destinations/{}/test", hook_id(&listed)), None).await;
    assert_eq!(code, 202);
    until("the test message", async || inbox.on("/hook").into_iter().find(|v| v["rule"] == "test")).await;
    // A failed delivery can be sent again (its destination back on); still gone, it fails again.
    let (code, again) =
        c.call(reqwest::Method::POST, &format!("/api/v1/alerts/deliveries/{}/retry", test["id"]), None).await;
    assert_eq!((code, again["status"].as_str()), (200, Some("pending")), "{again}");
    until("the retried 410", async || {
        c.deliveries()
            .await
            .into_iter()
            .find(|d| d["id"] == test["id"] && d["status"] == "failed" && d["attempts"] == 2)
    })
    .await;
    let (code, e) = c.call(reqwest::Method::POST, "/api/v1/alerts/deliveries/999999/retry", None).await;
    assert_eq!(code, 404, "{e}");
    // Rotation: both secrets sign until the next rotation, so receivers switch at leisure.
    let hook = hook_id(&listed);
    let (code, rotated) =
        c.call(reqwest::Method::POST, &format!("/api/v1/alerts/destinations/{hook}/rotate"), None).await;
    assert_eq!(code, 200, "{rotated}");
    let before = inbox.on("/hook").len();
    c.call(reqwest::Method::POST, &format!("/api/v1/alerts/destinations/{hook}/test"), None).await;
    until("a message the old secret verifies", async || (inbox.on("/hook").len() > before).then_some(())).await;
    *inbox.secret.lock().unwrap() = Some(rotated["secret"].as_str().unwrap().to_string());
    let before = inbox.on("/hook").len();
    c.call(reqwest::Method::POST, &format!("/api/v1/alerts/destinations/{hook}/test"), None).await;
    until("a message the new secret verifies", async || (inbox.on("/hook").len() > before).then_some(())).await;
    assert!(inbox.bad.lock().unwrap().is_empty(), "{:?}", inbox.bad.lock().unwrap());
    // A custom rule: every failed deploy of a resource, grouped by resource.
    let rule = json!({"name": "deploy-failures", "query": "action:service:deploy result:FAILED", "threshold": 2, "window": "5m", "group_by": "resource", "destinations": [hook_id(&listed)]});
    let (code, made) = c.call(reqwest::Method::POST, "/api/v1/alerts/rules", Some(rule)).await;
    assert_eq!(code, 201, "{made}");
    let deploy =
        json!({"action": "service:deploy", "result": "FAILED", "resource": {"type": "service", "name": "checkout"}});
    c.ingest(json!([deploy.clone(), deploy])).await;
    let custom =
        until("the custom rule", async || inbox.on("/hook").into_iter().find(|v| v["rule"] == "deploy-failures")).await;
    assert_eq!((custom["count"].as_u64(), custom["group"]["value"].as_str()), (Some(2), Some("checkout")));
    assert!(
        inbox.on("/slack").iter().all(|v| !v["text"].as_str().unwrap_or_default().contains("deploy-failures")),
        "only its destination"
    );
}

fn hook_id(listed: &Value) -> Value {
    listed["destinations"].as_array().unwrap().iter().find(|d| d["kind"] == "webhook").unwrap()["id"].clone()
}

/// A firing whose delivery could not be made before Trail stopped is delivered by the
/// next Trail on the same store.
#[test]
fn deliveries_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (inbox, addr) = rt.block_on(receiver());
    // The receiver runs on a runtime of its own, so that it outlives the first Trail.
    let receiver_rt = rt;
    let first = tokio::runtime::Runtime::new().unwrap();
    first.block_on(async {
        let store = support::store(dir.path(), &["acme"], false).await;
        let admin = support::key(&*store, "acme", KeyScope::Admin).await;
        std::fs::write(dir.path().join("key"), &admin).unwrap();
        let server = support::serve(AppState::new(store.clone(), config(None), trail_server::system_clock())).await;
        let c = Client { base: server.base.clone(), admin, http: reqwest::Client::new() };
        let (_, hook) = c
            .call(
                reqwest::Method::POST,
                "/api/v1/alerts/destinations",
                Some(json!({"name": "hook", "kind": "webhook", "url": format!("http://{addr}/hook")})),
            )
            .await;
        *inbox.secret.lock().unwrap() = Some(hook["secret"].as_str().unwrap().to_string());
        *inbox.status.lock().unwrap() = 503;
        until("the evaluator to start", async || store.evaluation("acme").await.unwrap()).await;
        c.ingest(json!({"action": "api_key:create"})).await;
        until("a failed attempt", async || {
            c.deliveries().await.into_iter().find(|d| d["attempts"].as_u64() >= Some(1))
        })
        .await;
        store.close();
    });
    drop(first); // every task of the first Trail stops here
    *inbox.status.lock().unwrap() = 200;
    let second = tokio::runtime::Runtime::new().unwrap();
    second.block_on(async {
        let store = support::store(dir.path(), &["acme"], false).await;
        let _server = support::serve(AppState::new(store.clone(), config(None), trail_server::system_clock())).await;
        until("the delivery after the restart", async || {
            inbox.on("/hook").into_iter().find(|v| v["rule"] == "api_token_created")
        })
        .await;
        // The outcome is stored once the receiver has answered.
        let all = until("the delivery stored as delivered", async || {
            let all = store.deliveries("acme", 10).await.unwrap();
            all.iter().any(|d| d.status == trail_store::alerts::DeliveryStatus::Delivered).then_some(all)
        })
        .await;
        assert_eq!(all.len(), 1);
    });
    drop(receiver_rt);
}

/// Two servers on one PostgreSQL database, each receiving part of a burst: the rule
/// fires once, and the receiver gets one message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_postgresql_fire_once() {
    use trail_store::postgres::PgStore;
    let url = trail_store::testing::Cluster::shared().database();
    let a: Arc<dyn Store> = Arc::new(PgStore::open(&url, None).await.unwrap());
    let b: Arc<dyn Store> = Arc::new(PgStore::open(&url, None).await.unwrap());
    a.ensure_org(Org { slug: "acme".into(), name: "Acme".into() }).await.unwrap();
    let admin = support::key(&*a, "acme", KeyScope::Admin).await;
    let sa = support::serve(AppState::new(a.clone(), config(None), trail_server::system_clock())).await;
    let sb = support::serve(AppState::new(b.clone(), config(None), trail_server::system_clock())).await;
    let ca = Client { base: sa.base.clone(), admin: admin.clone(), http: reqwest::Client::new() };
    let cb = Client { base: sb.base.clone(), admin, http: reqwest::Client::new() };
    let (inbox, addr) = receiver().await;
    let (_, hook) = ca
        .call(
            reqwest::Method::POST,
            "/api/v1/alerts/destinations",
            Some(json!({"name": "hook", "kind": "webhook", "url": format!("http://{addr}/hook")})),
        )
        .await;
    *inbox.secret.lock().unwrap() = Some(hook["secret"].as_str().unwrap().to_string());
    until("the evaluator to start", async || a.evaluation("acme").await.unwrap()).await;
    for i in 0..6 {
        let c = if i % 2 == 0 { &ca } else { &cb };
        c.ingest(failed_login("eve@acme.com")).await;
    }
    until("the webhook", async || inbox.on("/hook").into_iter().find(|v| v["rule"] == "failed_logins")).await;
    // Both evaluators have read every event (none is left to fire again)...
    until("both evaluators at the end of the log", async || {
        let end = a.log_end("acme").await.unwrap();
        let at = a.evaluation("acme").await.unwrap().unwrap().cursor;
        (at == end).then_some(())
    })
    .await;
    // ...and there was one firing, one delivery, one message.
    let fired: Vec<_> =
        a.deliveries("acme", 50).await.unwrap().into_iter().filter(|d| d.rule == "failed_logins").collect();
    assert_eq!(fired.len(), 1, "{fired:?}");
    until("the delivery settled", async || {
        let d = a.delivery("acme", fired[0].id).await.unwrap().unwrap();
        (d.status == trail_store::alerts::DeliveryStatus::Delivered).then_some(())
    })
    .await;
    assert_eq!(inbox.on("/hook").iter().filter(|v| v["rule"] == "failed_logins").count(), 1);
}
