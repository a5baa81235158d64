//! The access model over real HTTP: users, sessions, CSRF, roles, key scopes, login
//! throttling; the server the access tests share (`start`, `Server`, `Auth`), which
//! `isolation.rs` uses too.

use std::sync::{
    atomic::{AtomicI64, Ordering},
    Arc,
};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use trail_server::{AppState, ServerConfig};
use trail_store::{prelude::*, sqlite::SqliteStore, KeyScope};

use crate::support;

pub(crate) struct Server {
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
    pub(crate) store: Arc<SqliteStore>,
    /// The server's clock (µs), moved by tests.
    pub(crate) now: Arc<AtomicI64>,
    pub(crate) acme_ingest: String,
    pub(crate) acme_read: String,
    pub(crate) acme_admin: String,
    pub(crate) globex_admin: String,
    pub(crate) globex_read: String,
    pub(crate) platform: String,
    pub(crate) _running: support::Running,
    pub(crate) _dir: tempfile::TempDir,
}

/// A logged-in browser: the session cookie and its CSRF token.
#[derive(Clone)]
pub(crate) struct Session {
    pub(crate) cookie: String,
    pub(crate) csrf: String,
}

#[derive(Clone, Copy)]
pub(crate) enum Auth<'a> {
    Key(&'a str),
    Session(&'a Session),
    /// The cookie without the CSRF header.
    CookieOnly(&'a Session),
    None,
}

pub(crate) async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = support::store(dir.path(), &["acme", "globex"], true).await;
    let key = |org: &'static str, scope| {
        let store = store.clone();
        async move { support::key(&*store, org, scope).await }
    };
    let (acme_ingest, acme_read, acme_admin) =
        (key("acme", KeyScope::Ingest).await, key("acme", KeyScope::Read).await, key("acme", KeyScope::Admin).await);
    let (globex_admin, globex_read, platform) = (
        key("globex", KeyScope::Admin).await,
        key("globex", KeyScope::Read).await,
        key("acme", KeyScope::Platform).await,
    );
    let (now, clock) = support::manual_clock();
    let server_config = ServerConfig {
        log: Some(support::log_key()),
        insecure_cookies: true,
        system_org: Some("acme".into()),
        audit_reads: true,
        ..ServerConfig::default()
    };
    let running = support::serve(AppState::new(store.clone(), server_config, clock)).await;
    Server {
        base: running.base.clone(),
        client: reqwest::Client::new(),
        store,
        now,
        acme_ingest,
        acme_read,
        acme_admin,
        globex_admin,
        globex_read,
        platform,
        _running: running,
        _dir: dir,
    }
}

impl Server {
    pub(crate) async fn call(
        &self,
        method: Method,
        auth: Auth<'_>,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        req = match auth {
            Auth::Key(k) => req.bearer_auth(k),
            Auth::Session(s) => req.header("cookie", &s.cookie).header("x-csrf-token", &s.csrf),
            Auth::CookieOnly(s) => req.header("cookie", &s.cookie),
            Auth::None => req,
        };
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub(crate) async fn get(&self, auth: Auth<'_>, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, auth, path, None).await
    }

    pub(crate) async fn post(&self, auth: Auth<'_>, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, auth, path, Some(body)).await
    }

    pub(crate) async fn ingest(&self, key: &str, events: Value) -> Vec<String> {
        let (st, v) = self.post(Auth::Key(key), "/api/v1/events", events).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        v["events"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect()
    }

    /// Logs in; returns the status, the session (on success) and the body.
    pub(crate) async fn login(&self, email: &str, password: &str) -> (StatusCode, Option<Session>, Value) {
        let resp = self
            .client
            .post(format!("{}/api/v1/auth/login", self.base))
            .header("user-agent", "access-test/1.0")
            .body(json!({"email": email, "password": password}).to_string())
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let cookie =
            resp.headers().get("set-cookie").map(|c| c.to_str().unwrap().split(';').next().unwrap().to_string());
        let set_cookie = resp.headers().get("set-cookie").map(|c| c.to_str().unwrap().to_string());
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if let Some(sc) = set_cookie {
            assert!(sc.contains("HttpOnly") && sc.contains("SameSite=Strict"), "{sc}");
        }
        let session = cookie
            .filter(|_| status == StatusCode::OK)
            .map(|cookie| Session { cookie, csrf: body["csrf_token"].as_str().unwrap().to_string() });
        (status, session, body)
    }

    /// Creates a user through the API with `admin` and logs in with a password of its
    /// own (changing the one-time password first).
    pub(crate) async fn user(&self, admin: &str, org: &str, email: &str, role: &str) -> Session {
        let body = json!({"email": email, "name": email.split('@').next().unwrap(), "role": role, "org": org});
        let (st, v) = self.post(Auth::Key(admin), "/api/v1/users", body).await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        let otp = v["one_time_password"].as_str().unwrap().to_string();
        let (st, session, body) = self.login(email, &otp).await;
        assert_eq!(st, StatusCode::OK, "{body}");
        assert_eq!(body["user"]["must_change_password"], true);
        let s = session.unwrap();
        // Nothing but the password change works until the password is changed: not even
        // a personal token (which would outlive the one-time password).
        let (st, _) = self.get(Auth::Session(&s), "/api/v1/events").await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        let (st, v) = self.post(Auth::Session(&s), "/api/v1/keys", json!({"scope": "personal", "label": "mine"})).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
        let change = json!({"current_password": otp, "new_password": "correct horse battery"});
        let (st, v) = self.post(Auth::Session(&s), "/api/v1/auth/password", change).await;
        assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
        s
    }

    /// Every event stored in `org`, read directly from the store.
    pub(crate) async fn stored(&self, org: &str) -> Vec<trail_core::Event> {
        let rows = self.store.scan(org, 0, 1_000_000).await.unwrap();
        rows.iter().map(|(_, l)| trail_core::Event::from_leaf(l).unwrap()).collect()
    }

    /// Waits until a checkpoint covers `org`'s whole log.
    pub(crate) async fn settle(&self, org: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            let size = self.store.scan(org, 0, 1_000_000).await.unwrap().len() as u64;
            if self.store.checkpoint(org, None).await.unwrap().is_some_and(|c| c.size == size) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("no checkpoint covers {org}");
    }
}

pub(crate) fn ev(action: &str, email: &str, resource: &str) -> Value {
    json!({"action": action, "actor": {"email": email, "name": "Someone"}, "resource": {"name": resource},
           "request_id": format!("req-{resource}")})
}

#[tokio::test]
async fn login_sessions_csrf_password_and_logout() {
    let s = start().await;
    let ann = s.user(&s.acme_admin, "acme", "ann@acme.com", "auditor").await;
    // A GET needs no CSRF token; a state-changing request does.
    let (st, me) = s.get(Auth::CookieOnly(&ann), "/api/v1/auth/me").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!((me["user"]["email"].as_str(), me["org"].as_str()), (Some("ann@acme.com"), Some("acme")));
    assert_eq!(me["permissions"]["export"], "*");
    let (st, e) = s.call(Method::POST, Auth::CookieOnly(&ann), "/api/v1/auth/logout", None).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{e}");
    let wrong = Session { csrf: "nope".into(), ..ann.clone() };
    let (st, _) = s.call(Method::POST, Auth::Session(&wrong), "/api/v1/auth/logout", None).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // Wrong current password, short new password.
    let bad = json!({"current_password": "not it at all", "new_password": "another long one"});
    let (st, e) = s.post(Auth::Session(&ann), "/api/v1/auth/password", bad).await;
    assert_eq!((st, e["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("current_password")));
    let short = json!({"current_password": "correct horse battery", "new_password": "short"});
    let (st, e) = s.post(Auth::Session(&ann), "/api/v1/auth/password", short).await;
    assert_eq!((st, e["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("new_password")));
    // Bad login bodies name the field.
    for (body, field) in [
        (json!({"email": "ann@acme.com"}), "password"),
        (json!({"password": "x"}), "email"),
        (json!({"email": "a@b", "password": "x", "extra": 1}), "extra"),
        (json!([1]), "body"),
    ] {
        let (st, e) = s.post(Auth::None, "/api/v1/auth/login", body).await;
        assert_eq!((st, e["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some(field)), "{e}");
    }
    // Logout ends the session.
    let (st, _) = s.call(Method::POST, Auth::Session(&ann), "/api/v1/auth/logout", None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, me) = s.get(Auth::CookieOnly(&ann), "/api/v1/auth/me").await;
    assert_eq!((st, &me["authenticated"]), (StatusCode::OK, &json!(false)));
    let (st, _) = s.get(Auth::CookieOnly(&ann), "/api/v1/events").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // Sessions expire.
    let (_, again, _) = s.login("ann@acme.com", "correct horse battery").await;
    let again = again.unwrap();
    s.now.fetch_add(13 * 3600 * 1_000_000, Ordering::SeqCst);
    let (st, _) = s.get(Auth::CookieOnly(&again), "/api/v1/events").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    // All of it is in the log, with address and user agent.
    let log = s.stored("acme").await;
    let actions: Vec<(String, String)> =
        log.iter().map(|e| (e.action.clone(), e.result.as_str().to_string())).collect();
    for want in [
        ("user:create", "DONE"),
        ("auth:login", "DONE"),
        ("user:password_change", "DONE"),
        ("user:password_change", "FAILED"),
        ("auth:logout", "DONE"),
    ] {
        assert!(actions.contains(&(want.0.to_string(), want.1.to_string())), "{want:?} in {actions:?}");
    }
    let login = log.iter().find(|e| e.action == "auth:login").unwrap();
    assert_eq!(login.source_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(login.user_agent.as_deref(), Some("access-test/1.0"));
    assert_eq!(login.actor.as_ref().and_then(|a| a.email.as_deref()), Some("ann@acme.com"));
}

#[tokio::test]
async fn failed_logins_are_throttled_and_recorded() {
    let s = start().await;
    s.user(&s.acme_admin, "acme", "bob@acme.com", "viewer").await;
    for _ in 0..5 {
        let (st, _, _) = s.login("bob@acme.com", "guess guess guess").await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
    }
    // Locked now: even the right password is refused, with Retry-After.
    let resp = s
        .client
        .post(format!("{}/api/v1/auth/login", s.base))
        .body(json!({"email": "bob@acme.com", "password": "correct horse battery"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "60");
    // Unknown accounts fail the same way (and count against the address).
    let (st, _, e) = s.login("nobody@acme.com", "whatever it is").await;
    assert_eq!((st, e["error"]["message"].as_str()), (StatusCode::UNAUTHORIZED, Some("wrong email or password")));
    // After the lock, the right password works and clears the count.
    s.now.fetch_add(61 * 1_000_000, Ordering::SeqCst);
    let (st, _, _) = s.login("bob@acme.com", "correct horse battery").await;
    assert_eq!(st, StatusCode::OK);
    // Many accounts from one address lock the address.
    for i in 0..20 {
        let (st, _, _) = s.login(&format!("spray{i}@acme.com"), "password123").await;
        assert!(st == StatusCode::UNAUTHORIZED || st == StatusCode::TOO_MANY_REQUESTS);
    }
    let (st, _, _) = s.login("bob@acme.com", "correct horse battery").await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS);

    let log = s.stored("acme").await;
    let failed: Vec<_> = log.iter().filter(|e| e.action == "auth:login" && e.result.as_str() == "FAILED").collect();
    assert!(failed.len() >= 27, "every failure recorded, got {}", failed.len());
    assert!(failed.iter().any(|e| e.error.as_deref() == Some("too many failed logins: throttled")));
    assert!(failed.iter().any(|e| e.actor.as_ref().and_then(|a| a.email.as_deref()) == Some("nobody@acme.com")));
}

#[tokio::test]
async fn parallel_guesses_stop_at_the_limit_and_new_passwords_end_other_sessions() {
    let s = start().await;
    s.user(&s.acme_admin, "acme", "carl@acme.com", "viewer").await;
    // 50 wrong passwords at once: five are checked, the rest refused unchecked.
    let guesses = (0..50).map(|i| s.login("carl@acme.com", if i == 49 { "correct horse battery" } else { "a guess!" }));
    let answers: Vec<StatusCode> = futures::future::join_all(guesses).await.into_iter().map(|(st, _, _)| st).collect();
    let checked = answers.iter().filter(|st| **st != StatusCode::TOO_MANY_REQUESTS).count();
    // With the right password among the first five, its success forgets the account's
    // count, so up to five more wrong ones may be checked after it.
    let most = if answers[49] == StatusCode::OK { 10 } else { 5 };
    assert!((5..=most).contains(&checked), "{answers:?}");
    // Locked now, unless the right password was among the five checked: a success
    // forgets the account's count (by design), so the account stays open.
    let (st, _, _) = s.login("carl@acme.com", "correct horse battery").await;
    let want = if answers[49] == StatusCode::OK { StatusCode::OK } else { StatusCode::TOO_MANY_REQUESTS };
    assert_eq!(st, want, "{answers:?}");

    // A password change ends every other session of the user; an admin reset all.
    let first = s.user(&s.acme_admin, "acme", "dora@acme.com", "viewer").await;
    let (_, second, _) = s.login("dora@acme.com", "correct horse battery").await;
    let second = second.unwrap();
    let (st, _) = s.get(Auth::Session(&second), "/api/v1/events").await;
    assert_eq!(st, StatusCode::OK);
    let change = json!({"current_password": "correct horse battery", "new_password": "a brand new password"});
    let (st, v) = s.post(Auth::Session(&first), "/api/v1/auth/password", change).await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
    let (st, _) = s.get(Auth::Session(&second), "/api/v1/events").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "the other session ended");
    let (st, _) = s.get(Auth::Session(&first), "/api/v1/events").await;
    assert_eq!(st, StatusCode::OK, "the session that changed it stays");
    let (_, users) = s.get(Auth::Key(&s.acme_admin), "/api/v1/users").await;
    let id = users["users"].as_array().unwrap().iter().find(|u| u["email"] == "dora@acme.com").unwrap()["id"].clone();
    let reset = Some(json!({"reset_password": true}));
    let (st, _) = s.call(Method::PATCH, Auth::Key(&s.acme_admin), &format!("/api/v1/users/{id}"), reset).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s.get(Auth::Session(&first), "/api/v1/events").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "a reset ends every session");
}

#[tokio::test]
async fn key_scopes_hold() {
    let s = start().await;
    s.ingest(&s.acme_ingest, json!([ev("auth:login", "a@acme.com", "x")])).await;
    // An ingest key cannot read anything.
    for path in
        ["/api/v1/events", "/api/v1/facets", "/api/v1/timeline", "/api/v1/checkpoint", "/api/v1/export?format=evidence"]
    {
        let (st, _) = s.get(Auth::Key(&s.acme_ingest), path).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{path}");
    }
    // A read key cannot write or manage.
    let (st, _) = s.post(Auth::Key(&s.acme_read), "/api/v1/events", ev("auth:login", "a@acme.com", "x")).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    for (method, path, body) in [
        (Method::GET, "/api/v1/users", None),
        (Method::POST, "/api/v1/users", Some(json!({"email": "x@acme.com", "name": "X", "role": "viewer"}))),
        (Method::GET, "/api/v1/keys", None),
        (Method::POST, "/api/v1/keys", Some(json!({"scope": "read"}))),
        (Method::DELETE, "/api/v1/keys/1", None),
        (Method::PUT, "/api/v1/roles/r1", Some(json!({"view": "*"}))),
        (Method::GET, "/api/v1/roles", None),
    ] {
        let (st, e) = s.call(method.clone(), Auth::Key(&s.acme_read), path, body).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{method} {path}: {e}");
    }
    // A viewer sees but cannot export.
    let viewer = s.user(&s.acme_admin, "acme", "vic@acme.com", "viewer").await;
    let (st, _) = s.get(Auth::Session(&viewer), "/api/v1/events").await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s.get(Auth::Session(&viewer), "/api/v1/export?format=evidence").await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // Only a platform administrator makes platform administrators or platform keys.
    let body = json!({"email": "p@acme.com", "name": "P", "role": "platform_admin"});
    let (st, _) = s.post(Auth::Key(&s.acme_admin), "/api/v1/users", body).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = s.post(Auth::Key(&s.acme_admin), "/api/v1/keys", json!({"scope": "platform"})).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // Keys: created, listed, revoked.
    let (st, k) = s.post(Auth::Key(&s.acme_admin), "/api/v1/keys", json!({"scope": "read", "label": "siem"})).await;
    assert_eq!(st, StatusCode::CREATED, "{k}");
    let new_key = k["key"].as_str().unwrap().to_string();
    let (st, _) = s.get(Auth::Key(&new_key), "/api/v1/events").await;
    assert_eq!(st, StatusCode::OK);
    let (_, list) = s.get(Auth::Key(&s.acme_admin), "/api/v1/keys").await;
    assert!(list["keys"].as_array().unwrap().iter().all(|k| k["org"] == "acme"));
    assert!(list["keys"].as_array().unwrap().iter().any(|x| x["label"] == "siem" && x["id"] == k["id"]));
    let (st, _) = s.call(Method::DELETE, Auth::Key(&s.acme_admin), &format!("/api/v1/keys/{}", k["id"]), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = s.get(Auth::Key(&new_key), "/api/v1/events").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // A personal token acts as its user.
    let (st, t) = s.post(Auth::Session(&viewer), "/api/v1/keys", json!({"scope": "personal"})).await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    let token = t["key"].as_str().unwrap();
    let (_, me) = s.get(Auth::Key(token), "/api/v1/auth/me").await;
    assert_eq!(me["user"]["email"], "vic@acme.com");
    let (st, _) = s.get(Auth::Key(token), "/api/v1/export?format=evidence").await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (_, mine) = s.get(Auth::Session(&viewer), "/api/v1/keys").await;
    assert_eq!(mine["keys"].as_array().unwrap().len(), 1);
    // Disabling the user ends its sessions and its tokens.
    let (_, users) = s.get(Auth::Key(&s.acme_admin), "/api/v1/users").await;
    let vic = users["users"].as_array().unwrap().iter().find(|u| u["email"] == "vic@acme.com").unwrap()["id"].clone();
    let (st, _) = s
        .call(Method::PATCH, Auth::Key(&s.acme_admin), &format!("/api/v1/users/{vic}"), Some(json!({"disabled": true})))
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s.get(Auth::Session(&viewer), "/api/v1/events").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = s.get(Auth::Key(token), "/api/v1/events").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let log = s.stored("acme").await;
    for a in ["api_key:create", "api_key:revoke", "user:update", "audit:view"] {
        assert!(log.iter().any(|e| e.action == a), "{a} recorded");
    }
}

/// A list view is recorded as the caller asked it: the online window (which names the
/// time of each request) is applied to the query but is not part of the recorded
/// filter, so that opening the same list again is folded into one `audit:view`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_views_are_recorded_as_asked() {
    let dir = tempfile::tempdir().unwrap();
    let store = support::store(dir.path(), &["acme"], true).await;
    let read = support::key(&*store, "acme", KeyScope::Read).await;
    let retention = trail_server::RetentionConfig { online_days: 90, ..Default::default() };
    let config = ServerConfig { audit_reads: true, retention, ..ServerConfig::default() };
    let server = support::serve(AppState::new(store.clone(), config, trail_server::system_clock())).await;
    let api = support::Api::new(&server.base, &read);
    for _ in 0..2 {
        let (code, _) = api.call(reqwest::Method::GET, "/api/v1/events?category=auth", None).await;
        assert_eq!(code, 200);
    }
    let views = support::until("the view recorded", async || {
        let leaves = store.scan("acme", 0, 100).await.ok()?;
        let views: Vec<serde_json::Value> = leaves
            .iter()
            .filter_map(|(_, l)| serde_json::from_slice::<serde_json::Value>(l).ok())
            .filter(|e| e["action"] == "audit:view")
            .collect();
        (!views.is_empty()).then_some(views)
    })
    .await;
    assert_eq!(views[0]["details"]["filter"], "category:auth", "{views:?}");
}
