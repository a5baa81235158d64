//! The access model over real HTTP: users, sessions, CSRF, roles, category scopes,
//! organization isolation, login throttling, self-audit and injection attempts.

use std::sync::{
    atomic::{AtomicI64, Ordering},
    Arc,
};

use ed25519_dalek::SigningKey;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use trail_server::{AppState, ServerConfig};
use trail_store::{prelude::*, sqlite::SqliteStore, KeyScope};

use crate::support;

struct Server {
    base: String,
    client: reqwest::Client,
    store: Arc<SqliteStore>,
    /// The server's clock (µs), moved by tests.
    now: Arc<AtomicI64>,
    acme_ingest: String,
    acme_read: String,
    acme_admin: String,
    globex_admin: String,
    globex_read: String,
    platform: String,
    _running: support::Running,
    _dir: tempfile::TempDir,
}

/// A logged-in browser: the session cookie and its CSRF token.
#[derive(Clone)]
struct Session {
    cookie: String,
    csrf: String,
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    Key(&'a str),
    Session(&'a Session),
    /// The cookie without the CSRF header.
    CookieOnly(&'a Session),
    None,
}

async fn start() -> Server {
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
    async fn call(&self, method: Method, auth: Auth<'_>, path: &str, body: Option<Value>) -> (StatusCode, Value) {
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

    async fn get(&self, auth: Auth<'_>, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, auth, path, None).await
    }

    async fn post(&self, auth: Auth<'_>, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, auth, path, Some(body)).await
    }

    async fn ingest(&self, key: &str, events: Value) -> Vec<String> {
        let (st, v) = self.post(Auth::Key(key), "/api/v1/events", events).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        v["events"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect()
    }

    /// Logs in; returns the status, the session (on success) and the body.
    async fn login(&self, email: &str, password: &str) -> (StatusCode, Option<Session>, Value) {
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
    async fn user(&self, admin: &str, org: &str, email: &str, role: &str) -> Session {
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
    async fn stored(&self, org: &str) -> Vec<trail_core::Event> {
        let rows = self.store.scan(org, 0, 1_000_000).await.unwrap();
        rows.iter().map(|(_, l)| trail_core::Event::from_leaf(l).unwrap()).collect()
    }

    /// Waits until a checkpoint covers `org`'s whole log.
    async fn settle(&self, org: &str) {
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

fn ev(action: &str, email: &str, resource: &str) -> Value {
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

#[tokio::test]
async fn one_organization_sees_nothing_of_another() {
    let s = start().await;
    let a_ids = s.ingest(&s.acme_ingest, json!([ev("auth:login", "ann@acme.com", "acme-db")])).await;
    let g_key = trail_server::create_api_key(&*s.store, "globex", KeyScope::Ingest, "t").await.unwrap().0;
    let g_ids = s.ingest(&g_key, json!([ev("secret:read", "gil@globex.com", "globex-vault")])).await;
    s.settle("globex").await;
    s.settle("acme").await;
    let gid = &g_ids[0];
    let g_user = s.user(&s.globex_admin, "globex", "gil@globex.com", "viewer").await;
    let (_, gu) = s.get(Auth::Key(&s.globex_admin), "/api/v1/users").await;
    let gil_id = gu["users"][0]["id"].clone();
    let (_, gk) = s.get(Auth::Key(&s.globex_admin), "/api/v1/keys").await;
    let g_key_id = gk["keys"][0]["id"].clone();
    drop(g_user);
    let acme_auditor = s.user(&s.acme_admin, "acme", "aud@acme.com", "auditor").await;
    for who in [Auth::Key(&s.acme_read), Auth::Key(&s.acme_admin), Auth::Session(&acme_auditor)] {
        // 404, not 403, for B's ids.
        for path in [
            format!("/api/v1/events/{gid}"),
            format!("/api/v1/proof/inclusion?id={gid}"),
            "/api/v1/proof/inclusion?org=globex&index=0".into(),
            "/api/v1/proof/consistency?org=globex&from=1".into(),
            "/api/v1/checkpoint?org=globex".into(),
            "/api/v1/export?format=evidence&org=globex".into(),
        ] {
            let (st, e) = s.get(who, &path).await;
            assert_eq!(st, StatusCode::NOT_FOUND, "{path}: {e}");
        }
        // Lists, facets and search show nothing of B, even when B is named.
        for path in [
            "/api/v1/events",
            "/api/v1/events?company=globex",
            "/api/v1/events?q=globex-vault",
            "/api/v1/events?actor=gil@globex.com",
        ] {
            let (st, v) = s.get(who, path).await;
            assert_eq!(st, StatusCode::OK);
            assert!(v["events"].as_array().unwrap().iter().all(|e| e["org"] == "acme"), "{path}: {v}");
        }
        let (_, f) = s.get(who, "/api/v1/facets").await;
        assert!(f["companies"].as_array().unwrap().iter().all(|c| c["value"] == "acme"), "{f}");
        assert!(f["users"].as_array().unwrap().iter().all(|u| u["value"] != "gil@globex.com"));
        // The timeline counts none of B's events, even when B is named.
        let (st, t) = s.get(who, "/api/v1/timeline?company=globex").await;
        assert_eq!(st, StatusCode::OK, "{t}");
        assert_eq!(t["total"], 0, "{t}");
        // The evidence export of A holds only A's events. (A's own log may name B's
        // resource: the `audit:view` events of the searches above record their filter,
        // so the check is on each entry's organization, not on the text.)
        let (st, text) = s.get(who, "/api/v1/export?format=evidence").await;
        assert_eq!(st, StatusCode::OK, "{text}");
        let text = text.as_str().map(str::to_string).unwrap_or_else(|| text.to_string());
        let entries: Vec<trail_core::evidence::Entry> =
            text.lines().skip(1).map(|l| serde_json::from_str(l).unwrap()).collect();
        assert!(!entries.is_empty());
        for e in entries {
            let event = trail_core::Event::from_leaf(e.leaf.as_bytes()).unwrap();
            assert!(event.org == "acme" && event.id.to_string() != *gid, "{}", e.leaf);
        }
    }
    // Admin endpoints: B's users, keys and roles are not found from A.
    for (method, path, body) in [
        (Method::PATCH, format!("/api/v1/users/{gil_id}"), Some(json!({"role": "auditor"}))),
        (Method::DELETE, format!("/api/v1/keys/{g_key_id}"), None),
        (Method::GET, "/api/v1/users?org=globex".to_string(), None),
        (Method::GET, "/api/v1/keys?org=globex".to_string(), None),
        (Method::GET, "/api/v1/roles?org=globex".to_string(), None),
        (
            Method::POST,
            "/api/v1/users".to_string(),
            Some(json!({"email": "z@z.z", "name": "Z", "role": "viewer", "org": "globex"})),
        ),
        (Method::POST, "/api/v1/keys".to_string(), Some(json!({"scope": "read", "org": "globex"}))),
    ] {
        let (st, e) = s.call(method.clone(), Auth::Key(&s.acme_admin), &path, body).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{method} {path}: {e}");
    }
    assert!(!s.store.find_key(trail_server::hash_key(&s.globex_read)).await.unwrap().unwrap().revoked);
    assert_eq!(s.store.users_by_email("gil@globex.com").await.unwrap()[0].role, "viewer");
    // The platform key sees both.
    let (_, v) = s.get(Auth::Key(&s.platform), &format!("/api/v1/events/{gid}")).await;
    assert_eq!(v["event"]["org"], "globex");
    let (_, v) = s.get(Auth::Key(&s.globex_read), &format!("/api/v1/events/{}", a_ids[0])).await;
    assert_eq!(v["error"]["code"], "not_found");
}

#[tokio::test]
async fn category_restrictions_hold_everywhere() {
    let s = start().await;
    let ids = s
        .ingest(
            &s.acme_ingest,
            json!([
                ev("secret:read", "eve@acme.com", "prod-db-password"),
                ev("auth:login", "ann@acme.com", "console"),
                ev("vpn:connect", "ann@acme.com", "prod-db-password"),
            ]),
        )
        .await;
    s.settle("acme").await;
    let role = json!({"view": "*,-secret", "export": "auth"});
    let (st, v) = s.call(Method::PUT, Auth::Key(&s.acme_admin), "/api/v1/roles/no-secrets", Some(role)).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let bad = json!({"view": "*,secret"});
    let (st, e) = s.call(Method::PUT, Auth::Key(&s.acme_admin), "/api/v1/roles/bad", Some(bad)).await;
    assert_eq!((st, e["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("view")));
    let (st, e) = s
        .post(
            Auth::Key(&s.acme_admin),
            "/api/v1/users",
            json!({"email": "x@acme.com", "name": "X", "role": "nonexistent"}),
        )
        .await;
    assert_eq!((st, e["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("role")));
    let u = s.user(&s.acme_admin, "acme", "res@acme.com", "no-secrets").await;
    let (_, me) = s.get(Auth::Session(&u), "/api/v1/auth/me").await;
    assert_eq!(
        (me["permissions"]["view"].as_str(), me["permissions"]["export"].as_str()),
        (Some("*,-secret"), Some("auth"))
    );
    for q in [
        "",
        "?q=prod-db-password",
        "?q=secret",
        "?q=eve",
        "?category=secret",
        "?action=secret:read",
        "?actor=eve@acme.com",
        "?request_id=req-prod-db-password",
        "?resource=prod-db-password",
        "?sort=category",
    ] {
        let (st, v) = s.get(Auth::Session(&u), &format!("/api/v1/events{q}")).await;
        assert_eq!(st, StatusCode::OK, "{q}: {v}");
        let evs = v["events"].as_array().unwrap();
        assert!(evs.iter().all(|e| !e["action"].as_str().unwrap().starts_with("secret")), "{q}: {v}");
    }
    let (_, v) = s.get(Auth::Session(&u), "/api/v1/events?q=prod-db-password").await;
    let found: Vec<&str> = v["events"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(found.contains(&"vpn:connect"), "the vpn event is still found: {found:?}");
    let (st, _) = s.get(Auth::Session(&u), &format!("/api/v1/events/{}", ids[0])).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = s.get(Auth::Session(&u), &format!("/api/v1/proof/inclusion?id={}", ids[0])).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = s.get(Auth::Session(&u), "/api/v1/proof/inclusion?index=0").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = s.get(Auth::Session(&u), "/api/v1/proof/inclusion?index=1").await;
    assert_eq!(st, StatusCode::OK);
    let (_, f) = s.get(Auth::Session(&u), "/api/v1/facets").await;
    assert!(f["categories"].as_array().unwrap().iter().all(|c| c["value"] != "secret"), "{f}");
    assert!(f["users"].as_array().unwrap().iter().all(|c| c["value"] != "eve@acme.com"), "{f}");
    // Alert deliveries name events of every category: not for this role.
    let (st, e) = s.get(Auth::Session(&u), "/api/v1/alerts/deliveries").await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{e}");
    // Nor streams, which send every category.
    let (st, e) = s.get(Auth::Session(&u), "/api/v1/streams").await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{e}");
    for path in ["/api/v1/timeline?category=secret", "/api/v1/timeline?category=secret&q=prod-db-password"] {
        let (st, t) = s.get(Auth::Session(&u), path).await;
        assert_eq!((st, &t["total"]), (StatusCode::OK, &json!(0)), "{path}: {t}");
    }
    // Export: only what the role may export (auth), and never secrets.
    let (st, text) = s.get(Auth::Session(&u), "/api/v1/export?format=evidence").await;
    assert_eq!(st, StatusCode::OK);
    let text = text.as_str().unwrap().to_string();
    assert!(text.contains("auth:login") && !text.contains("vpn:connect") && !text.contains("secret:read"));
    let log = s.stored("acme").await;
    let export = log.iter().find(|e| e.action == "audit:export").expect("export recorded");
    assert_eq!(export.actor.as_ref().and_then(|a| a.email.as_deref()), Some("res@acme.com"));
    assert_eq!(export.source_ip.as_deref(), Some("127.0.0.1"), "who exported is recorded with the address");
    let view = log
        .iter()
        .find(|e| e.action == "audit:view" && e.details.as_ref().is_some_and(|d| d["filter"] == "prod-db-password"));
    assert!(view.is_some(), "who opened which filter is recorded");

    // An admin resets the user's password: the old one stops working, the one-time one
    // must be changed first. Deleting the role leaves its holders without access.
    let (_, users) = s.get(Auth::Key(&s.acme_admin), "/api/v1/users").await;
    let id = users["users"].as_array().unwrap().iter().find(|u| u["email"] == "res@acme.com").unwrap()["id"].clone();
    let path = format!("/api/v1/users/{id}");
    let (st, v) = s.call(Method::PATCH, Auth::Key(&s.acme_admin), &path, Some(json!({"reset_password": true}))).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let otp = v["one_time_password"].as_str().unwrap().to_string();
    assert_eq!(s.login("res@acme.com", "correct horse battery").await.0, StatusCode::UNAUTHORIZED);
    let (st, again, body) = s.login("res@acme.com", &otp).await;
    assert_eq!((st, &body["user"]["must_change_password"]), (StatusCode::OK, &json!(true)));
    let (st, _) = s.call(Method::DELETE, Auth::Key(&s.acme_admin), "/api/v1/roles/no-secrets", None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let again = again.unwrap();
    let change = json!({"current_password": otp, "new_password": "another fine password"});
    let (st, _) = s.post(Auth::Session(&again), "/api/v1/auth/password", change).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = s.get(Auth::Session(&again), "/api/v1/events").await;
    assert_eq!(st, StatusCode::FORBIDDEN, "a deleted custom role grants nothing");
}

#[tokio::test]
async fn injection_attempts_fail_cleanly_and_change_nothing() {
    let s = start().await;
    let ids = s
        .ingest(&s.acme_ingest, json!([ev("auth:login", "ann@acme.com", "db"), ev("user:delete", "bob@acme.com", "x")]))
        .await;
    let before = s.stored("acme").await;
    let attacks = [
        "' OR 1=1 --",
        "\" OR \"\"=\"",
        "x'; DROP TABLE events; --",
        "1) OR (1=1",
        "%' OR '%'='",
        "acme' UNION SELECT leaf FROM leaves --",
        "NEAR(a b)",
        "* OR *",
        "\\\"",
        "a\u{0}b",
    ];
    // Every filter the API knows, and the paging parameters.
    let keys: Vec<&str> = trail_core::filter::FILTER_KEYS.iter().copied().chain(["cursor", "limit"]).collect();
    for key in keys.iter().copied() {
        for a in attacks {
            let url = reqwest::Url::parse_with_params(&format!("{}/api/v1/events", s.base), &[(key, a)]).unwrap();
            let resp = s.client.get(url).bearer_auth(&s.acme_read).send().await.unwrap();
            let st = resp.status();
            let v: Value = resp.json().await.unwrap();
            assert!(st == StatusCode::OK || st == StatusCode::BAD_REQUEST, "{key}={a}: {st} {v}");
            if st == StatusCode::OK {
                assert!(v["events"].as_array().unwrap().len() <= before.len() + 400, "{key}={a}");
                assert!(v["events"].as_array().unwrap().iter().all(|e| e["org"] == "acme"));
            } else {
                assert!(v["error"]["field"].is_string(), "{key}={a}: {v}");
            }
        }
    }
    // Injection through the management API too.
    for a in attacks {
        let body = json!({"email": format!("{a}@acme.com"), "name": a, "role": a});
        let (st, _) = s.post(Auth::Key(&s.acme_admin), "/api/v1/users", body).await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        let (st, _, _) = s.login(a, a).await;
        assert!(st == StatusCode::UNAUTHORIZED || st == StatusCode::BAD_REQUEST || st == StatusCode::TOO_MANY_REQUESTS);
    }
    // Still intact: the same events, every table readable, the log verifies.
    s.settle("acme").await;
    let after = s.stored("acme").await;
    assert_eq!(&after[..before.len()], &before[..], "what was stored is unchanged");
    assert!(ids.iter().all(|id| after.iter().any(|e| e.id.to_string() == *id)));
    assert!(s.store.list_users(None).await.unwrap().is_empty(), "no user was created");
    let vkey =
        trail_core::checkpoint::verifier_key("trail.test/acme", &SigningKey::from_bytes(&[5; 32]).verifying_key());
    s.settle("acme").await;
    let opts = trail_store::verify::VerifyOptions { vkey: &vkey, ..Default::default() };
    let report = trail_store::verify::verify(&*s.store, "acme", opts).await.unwrap();
    assert!(report.ok(), "{}", report.problems());
    assert!(report.entries >= after.len() as u64);
}

/// The live stream shows a caller only its own organization's events, and never a
/// category its role hides.
#[tokio::test]
async fn the_live_stream_respects_organizations_and_categories() {
    let s = start().await;
    let role = json!({"view": "*,-secret"});
    let (st, _) = s.call(Method::PUT, Auth::Key(&s.acme_admin), "/api/v1/roles/no-secrets", Some(role)).await;
    assert_eq!(st, StatusCode::OK);
    let viewer = s.user(&s.acme_admin, "acme", "liv@acme.com", "no-secrets").await;
    let open = |auth: Auth<'_>| {
        let req = s.client.get(format!("{}/api/v1/events/stream", s.base));
        match auth {
            Auth::Key(k) => req.bearer_auth(k),
            Auth::Session(x) => req.header("cookie", &x.cookie),
            _ => req,
        }
        .send()
    };
    let mut acme = open(Auth::Key(&s.acme_read)).await.unwrap();
    let mut limited = open(Auth::Session(&viewer)).await.unwrap();
    let mut globex = open(Auth::Key(&s.globex_read)).await.unwrap();
    assert_eq!((acme.status(), limited.status(), globex.status()), (StatusCode::OK, StatusCode::OK, StatusCode::OK));
    let (st, _) = s.get(Auth::Key(&s.acme_ingest), "/api/v1/events/stream").await;
    assert_eq!(st, StatusCode::FORBIDDEN, "an ingest key cannot follow the log");
    // Each stream subscribed before its response head was sent: nothing to wait for.
    s.ingest(
        &s.acme_ingest,
        json!([ev("secret:read", "eve@acme.com", "vault-1"), ev("auth:login", "ann@acme.com", "console-1")]),
    )
    .await;
    let g_key = trail_server::create_api_key(&*s.store, "globex", KeyScope::Ingest, "t").await.unwrap().0;
    s.ingest(&g_key, json!([ev("auth:login", "gil@globex.com", "globex-console")])).await;
    s.ingest(&s.acme_ingest, json!([ev("service:deploy", "ann@acme.com", "marker-end")])).await;
    s.ingest(&g_key, json!([ev("service:deploy", "gil@globex.com", "marker-end")])).await;
    // Read each stream up to the end marker.
    async fn until_marker(r: &mut reqwest::Response) -> String {
        let mut text = String::new();
        let read = async {
            while let Some(c) = r.chunk().await.unwrap() {
                text.push_str(&String::from_utf8_lossy(&c));
                if text.contains("marker-end") {
                    break;
                }
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(60), read).await.expect("the stream delivers");
        text
    }
    let a = until_marker(&mut acme).await;
    assert!(a.contains("vault-1") && a.contains("console-1") && !a.contains("globex-console"), "{a}");
    let l = until_marker(&mut limited).await;
    assert!(l.contains("console-1") && !l.contains("vault-1") && !l.contains("globex"), "{l}");
    let g = until_marker(&mut globex).await;
    assert!(g.contains("globex-console") && !g.contains("console-1") && !g.contains("vault-1"), "{g}");
}

#[tokio::test]
async fn export_jobs_are_served_only_to_whom_may_export_every_row_they_could_hold() {
    let s = start().await;
    s.ingest(
        &s.acme_ingest,
        json!([
            ev("secret:read", "eve@acme.com", "vault"),
            ev("auth:login", "ann@acme.com", "console"),
            ev("vpn:connect", "ann@acme.com", "gw")
        ]),
    )
    .await;
    for (name, rule) in [("auth-only", "auth"), ("no-secrets", "*,-secret")] {
        let role = json!({"view": rule, "export": rule});
        let (st, v) = s.call(Method::PUT, Auth::Key(&s.acme_admin), &format!("/api/v1/roles/{name}"), Some(role)).await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    let auth_only = s.user(&s.acme_admin, "acme", "auth@acme.com", "auth-only").await;
    let no_secrets = s.user(&s.acme_admin, "acme", "nosec@acme.com", "no-secrets").await;
    let auditor = s.user(&s.acme_admin, "acme", "aud@acme.com", "auditor").await;
    // Who may fetch a job (its status and its file), by who started it and with what.
    let (read_key, globex, platform) = (s.acme_read.as_str(), s.globex_admin.as_str(), s.platform.as_str());
    let (auth_only, no_secrets, auditor) = (&auth_only, &no_secrets, &auditor);
    let everything = finished_job(&s, Auth::Key(read_key), "").await;
    let auth_rows = finished_job(&s, Auth::Key(read_key), "&category=auth").await;
    let all_but_secrets = finished_job(&s, Auth::Session(no_secrets), "").await;
    let cases: [(&str, Auth, &str, bool); 14] = [
        ("everything", Auth::Key(read_key), &everything, true),
        ("everything", Auth::Session(auditor), &everything, true),
        ("everything", Auth::Key(platform), &everything, true),
        ("everything", Auth::Session(auth_only), &everything, false),
        ("everything", Auth::Session(no_secrets), &everything, false),
        ("everything", Auth::Key(globex), &everything, false),
        ("auth rows", Auth::Session(auth_only), &auth_rows, true),
        ("auth rows", Auth::Session(no_secrets), &auth_rows, true),
        ("auth rows", Auth::Key(globex), &auth_rows, false),
        ("all but secrets", Auth::Session(no_secrets), &all_but_secrets, true),
        ("all but secrets", Auth::Session(auditor), &all_but_secrets, true),
        ("all but secrets", Auth::Session(auth_only), &all_but_secrets, false),
        ("all but secrets", Auth::Key(globex), &all_but_secrets, false),
        ("all but secrets", Auth::None, &all_but_secrets, false),
    ];
    for (name, auth, path, allowed) in cases {
        for p in [path.to_string(), format!("{path}/file")] {
            let (st, v) = s.get(auth, &p).await;
            let want = match (allowed, auth) {
                (true, _) => StatusCode::OK,
                (false, Auth::None) => StatusCode::UNAUTHORIZED,
                (false, _) => StatusCode::NOT_FOUND,
            };
            assert_eq!(st, want, "{name} {p}: {v}");
            if allowed && p.ends_with("/file") {
                let text = v.as_str().unwrap();
                assert!(!text.contains("secret:read") || name == "everything", "{name}: {text}");
            }
        }
    }
}

/// Starts an export job and waits until its file is ready; returns the job's path.
async fn finished_job(s: &Server, auth: Auth<'_>, query: &str) -> String {
    let (st, v) = s.post(auth, &format!("/api/v1/exports?format=csv{query}"), json!(null)).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let path = v["status_url"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, v) = s.get(auth, &path).await;
        if v["status"] == "done" {
            return path;
        }
        assert!(v["status"] == "running" && std::time::Instant::now() < deadline, "{v}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
