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
    let site = Site::start().await;
    let api = site.api(&key(&*site.store, "acme", KeyScope::Read).await);
    site.api(&site.ingest).ingest(json!({"action": "auth:login", "actor": {"email": "ann@acme.com"}})).await;
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
    let site = Site::start().await;
    let api = site.api(&key(&*site.store, "acme", KeyScope::Read).await);
    let mut words = Vec::new();
    for p in ["za", "zb", "zc"] {
        for a in 'a'..='c' {
            for b in 'a'..='z' {
                words.push(format!("{p}{a}{b}"));
            }
        }
    }
    site.api(&site.ingest).ingest(json!({"action": "note:write", "details": {"text": words.join(" ")}})).await;
    // `views=hide`: each search is itself recorded (with its words), and would match
    // the next one.
    support::until("the words indexed", async || {
        let (code, v) = api.call(Method::GET, "/api/v1/events?q=zaab&views=hide", None).await;
        (code == 200 && v["events"].as_array().is_some_and(|e| e.len() == 1)).then_some(())
    })
    .await;
    let (code, v) = api.call(Method::GET, "/api/v1/events?q=za+zb&views=hide", None).await;
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

/// A server with one organization, its keys, and users made through the API.
struct Site {
    base: String,
    http: reqwest::Client,
    store: std::sync::Arc<trail_store::sqlite::SqliteStore>,
    admin: String,
    ingest: String,
    running: Option<support::Running>,
    _dir: tempfile::TempDir,
}

/// A logged-in browser.
struct Login {
    cookie: String,
    csrf: String,
}

impl Site {
    async fn start() -> Site {
        Site::start_with(trail_server::ConnectionConfig::default()).await
    }

    async fn start_with(connections: trail_server::ConnectionConfig) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let store = support::store(dir.path(), &["acme", "globex"], true).await;
        let admin = key(&*store, "acme", KeyScope::Admin).await;
        let ingest = key(&*store, "acme", KeyScope::Ingest).await;
        let config = ServerConfig { insecure_cookies: true, audit_reads: true, connections, ..ServerConfig::default() };
        let running = support::serve(AppState::new(store.clone(), config, trail_server::system_clock())).await;
        Site {
            base: running.base.clone(),
            http: reqwest::Client::new(),
            store,
            admin,
            ingest,
            running: Some(running),
            _dir: dir,
        }
    }

    fn api(&self, key: &str) -> Api {
        Api::new(&self.base, key)
    }

    /// A user of `role` in acme, logged in with a password of its own.
    async fn user(&self, email: &str, role: &str) -> (i64, Login) {
        let body = json!({"email": email, "name": "Someone", "role": role});
        let (code, v) = self.api(&self.admin).call(Method::POST, "/api/v1/users", Some(body)).await;
        assert_eq!(code, 201, "{v}");
        let (id, otp) = (v["user"]["id"].as_i64().unwrap(), v["one_time_password"].as_str().unwrap().to_string());
        let login = |password: String| {
            self.http
                .post(format!("{}/api/v1/auth/login", self.base))
                .body(json!({"email": email, "password": password}).to_string())
                .send()
        };
        let r = login(otp.clone()).await.unwrap();
        let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
        let v: serde_json::Value = r.json().await.unwrap();
        let me = Login { cookie, csrf: v["csrf_token"].as_str().unwrap().to_string() };
        let change = json!({"current_password": otp, "new_password": "correct horse battery"});
        let code = self.session(&me, Method::POST, "/api/v1/auth/password", Some(change)).await.0;
        assert_eq!(code, 204);
        (id, me)
    }

    async fn session(
        &self,
        s: &Login,
        m: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut r = self
            .http
            .request(m, format!("{}{path}", self.base))
            .header("cookie", &s.cookie)
            .header("x-csrf-token", &s.csrf);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or_default())
    }

    /// Opens a live stream with a key or a session.
    async fn stream(&self, key: Option<&str>, s: Option<&Login>) -> reqwest::Response {
        let mut r = self.http.get(format!("{}/api/v1/events/stream", self.base));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        if let Some(s) = s {
            r = r.header("cookie", &s.cookie);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 200);
        r
    }
}

/// Reads a stream until `marker` arrives (`true`) or the stream ends (`false`), within a
/// minute.
async fn read_until(r: &mut reqwest::Response, marker: &str) -> bool {
    let mut text = String::new();
    let read = async {
        while let Some(c) = r.chunk().await.unwrap_or(None) {
            text.push_str(&String::from_utf8_lossy(&c));
            if text.contains(marker) {
                return true;
            }
        }
        false
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), read).await.expect("the stream answers within a minute")
}

/// An open stream ends with its credential: a revoked key (here, and in the store by
/// another process), a disabled user, a session logged out, a role changed.
#[tokio::test]
async fn a_credential_ends_and_its_open_streams_end_with_it() {
    let site = Site::start().await;
    let events = site.api(&site.ingest);
    let send = |marker: &'static str| events.ingest(json!({"action": "auth:login", "request_id": marker}));
    // A read key revoked through the API.
    let (code, made) =
        site.api(&site.admin).call(Method::POST, "/api/v1/keys", Some(json!({"scope": "read", "label": "siem"}))).await;
    assert_eq!(code, 201, "{made}");
    let (read, read_id) = (made["key"].as_str().unwrap().to_string(), made["id"].as_i64().unwrap());
    let mut by_key = site.stream(Some(&read), None).await;
    // A read key revoked in the store directly (as another server would).
    let (other, other_id) = trail_server::create_api_key(&*site.store, "acme", KeyScope::Read, "t").await.unwrap();
    let mut by_other = site.stream(Some(&other), None).await;
    // Users: one to disable, one to log out, one whose role changes.
    let (ann_id, ann) = site.user("ann@acme.com", "auditor").await;
    let (_, bob) = site.user("bob@acme.com", "auditor").await;
    let (cid, cat) = site.user("cat@acme.com", "auditor").await;
    let mut streams = vec![
        site.stream(None, Some(&ann)).await,
        site.stream(None, Some(&bob)).await,
        site.stream(None, Some(&cat)).await,
    ];
    send("before").await;
    assert!(read_until(&mut by_key, "before").await && read_until(&mut by_other, "before").await);
    for s in &mut streams {
        assert!(read_until(s, "before").await, "each stream delivers at first");
    }
    let admin = site.api(&site.admin);
    assert_eq!(admin.call(Method::DELETE, &format!("/api/v1/keys/{read_id}"), None).await.0, 204);
    use trail_store::prelude::*;
    assert!(site.store.revoke_key(None, other_id).await.unwrap());
    assert_eq!(
        admin.call(Method::PATCH, &format!("/api/v1/users/{ann_id}"), Some(json!({"disabled": true}))).await.0,
        200
    );
    assert_eq!(site.session(&bob, Method::POST, "/api/v1/auth/logout", None).await.0, 204);
    let role = json!({"view": "*,-auth"});
    assert_eq!(admin.call(Method::PUT, "/api/v1/roles/no-auth", Some(role)).await.0, 200);
    let (code, v) = admin.call(Method::PATCH, &format!("/api/v1/users/{cid}"), Some(json!({"role": "no-auth"}))).await;
    assert_eq!(code, 200, "{v}");
    // Each stream ends (the key revoked elsewhere at the next check, within 5 s) and
    // delivers nothing sent after.
    send("after").await;
    assert!(!read_until(&mut by_key, "after").await, "the revoked key's stream ended");
    assert!(!read_until(&mut by_other, "after").await, "the key revoked in the store ended its stream");
    for (s, who) in streams.iter_mut().zip(["disabled", "logged out", "role changed"]) {
        assert!(!read_until(s, "after").await, "the {who} user's stream ended");
    }
    // Nothing in this process tells of a revocation in the store: the next check
    // (within 5 s) finds it.
    let (third, third_id) = trail_server::create_api_key(&*site.store, "acme", KeyScope::Read, "t").await.unwrap();
    let mut quiet = site.stream(Some(&third), None).await;
    send("third").await;
    assert!(read_until(&mut quiet, "third").await);
    assert!(site.store.revoke_key(None, third_id).await.unwrap());
    assert!(!read_until(&mut quiet, "never").await, "the stream ended at its next check");
    // Shutting down ends a stream at once, so that shutdown is prompt.
    let mut open = site.stream(Some(&site.admin), None).await;
    let running = { site }.running.take();
    let stopped = async {
        drop(running);
        read_until(&mut open, "never").await
    };
    assert!(!tokio::time::timeout(std::time::Duration::from_secs(10), stopped)
        .await
        .expect("the stream ends at shutdown"));
}

/// Rights are those of each read: a user whose role lost a category no longer reads the
/// export file they made with it, and a schedule whose maker no longer administers
/// does not run.
#[tokio::test]
async fn rights_are_checked_when_used_not_only_when_granted() {
    let site = Site::start().await;
    site.api(&site.ingest).ingest(json!({"action": "secret:read", "request_id": "vault"})).await;
    let admin = site.api(&site.admin);
    assert_eq!(
        admin.call(Method::PUT, "/api/v1/roles/everything", Some(json!({"view": "*", "export": "*"}))).await.0,
        200
    );
    assert_eq!(
        admin
            .call(Method::PUT, "/api/v1/roles/no-secrets", Some(json!({"view": "*,-secret", "export": "*,-secret"})))
            .await
            .0,
        200
    );
    let (id, dee) = site.user("dee@acme.com", "everything").await;
    let (code, job) = site.session(&dee, Method::POST, "/api/v1/exports?format=csv", None).await;
    assert_eq!(code, 202, "{job}");
    let status = format!("/api/v1/exports/{}", job["id"].as_str().unwrap());
    support::until("the export finished", async || {
        let (code, v) = site.session(&dee, Method::GET, &status, None).await;
        (code == 200 && v["download_url"].is_string()).then_some(())
    })
    .await;
    let file = format!("{status}/file");
    let r = site.http.get(format!("{}{file}", site.base)).header("cookie", &dee.cookie).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("vault"), "the file holds the secret row");
    let (code, v) =
        admin.call(Method::PATCH, &format!("/api/v1/users/{id}"), Some(json!({"role": "no-secrets"}))).await;
    assert_eq!(code, 200, "{v}");
    let r = site.http.get(format!("{}{file}", site.base)).header("cookie", &dee.cookie).send().await.unwrap();
    assert_eq!(r.status(), 404, "the file made with a category since lost is not read");
    assert_eq!(site.session(&dee, Method::GET, &status, None).await.0, 404);
    // A schedule made by an administrator who is one no longer does not run.
    let (eve_id, eve) = site.user("eve@acme.com", "org_admin").await;
    let body = json!({"name": "daily", "cadence": "daily", "format": "csv", "directory": "daily", "at": "06:00"});
    let (code, made) = site.session(&eve, Method::POST, "/api/v1/schedules", Some(body)).await;
    assert_eq!(code, 201, "{made}");
    let run = format!("/api/v1/schedules/{}/run", made["id"]);
    assert_eq!(admin.call(Method::POST, &run, None).await.0, 200, "it runs while its maker administers");
    let (code, v) =
        admin.call(Method::PATCH, &format!("/api/v1/users/{eve_id}"), Some(json!({"role": "auditor"}))).await;
    assert_eq!(code, 200, "{v}");
    let (code, v) = admin.call(Method::POST, &run, None).await;
    assert!(code >= 400 && v.to_string().contains("may no longer export"), "{code} {v}");
}

/// A platform caller's views and exports of an organization are recorded in that
/// organization's log; those spanning several, in the platform's own log; never in
/// the caller's home organization, whose members would read another tenant's searches.
#[tokio::test]
async fn views_are_recorded_in_the_organization_viewed() {
    use trail_store::prelude::*;
    let site = Site::start().await;
    let platform = site.api(&key(&*site.store, "acme", KeyScope::Platform).await);
    let g_ingest = key(&*site.store, "globex", KeyScope::Ingest).await;
    site.api(&g_ingest).ingest(json!({"action": "auth:login", "request_id": "globex-only"})).await;
    let (code, v) = platform.call(Method::GET, "/api/v1/events?company=globex&q=initech-merger", None).await;
    assert_eq!(code, 200, "{v}");
    let (code, v) = platform.call(Method::GET, "/api/v1/events?q=acquisition-target", None).await;
    assert_eq!(code, 200, "{v}");
    let (code, _) = platform.call(Method::GET, "/api/v1/export?format=csv&org=globex&q=secret-deal", None).await;
    assert_eq!(code, 200);
    let logged = |org: &'static str| {
        let store = site.store.clone();
        async move {
            let rows = store.scan(org, 0, 1_000_000).await.unwrap_or_default();
            rows.iter().map(|(_, l)| String::from_utf8_lossy(l).into_owned()).collect::<Vec<_>>().join("\n")
        }
    };
    let (globex, platform_log) = support::until("the views recorded", async || {
        let (g, p) = (logged("globex").await, logged("trail-platform").await);
        (g.contains("initech-merger") && g.contains("secret-deal") && p.contains("acquisition-target"))
            .then_some((g, p))
    })
    .await;
    assert!(!globex.contains("acquisition-target"), "{globex}");
    assert!(!platform_log.contains("initech-merger"), "{platform_log}");
    let acme = logged("acme").await;
    for term in ["initech-merger", "acquisition-target", "secret-deal"] {
        assert!(!acme.contains(term), "the platform caller's home organization reads nothing of it: {acme}");
    }
}

/// 5,000 idle connections from one address (more than the server serves at once) do
/// not keep another address's requests waiting: past its own cap, an address's new
/// connections are closed at once.
#[tokio::test]
async fn one_client_cannot_slow_down_everyone() {
    // Idle connections are not closed for their missing request head while this runs.
    let limits = trail_server::ConnectionConfig {
        header_timeout: std::time::Duration::from_secs(120),
        ..trail_server::ConnectionConfig::default()
    };
    let site = Site::start_with(limits).await;
    let addr: std::net::SocketAddr = site.base.trim_start_matches("http://").parse().unwrap();
    let mut held = Vec::new();
    for _ in 0..5000 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        // A connection the kernel's queue has no room for waits for a retry: stop there.
        match tokio::time::timeout(std::time::Duration::from_secs(2), socket.connect(addr)).await {
            Ok(Ok(s)) => held.push(s),
            _ => break,
        }
    }
    // Requests from 127.0.0.1 are answered while those are held (a generous deadline:
    // before the cap, each waited until the idle ones' header deadline closed them).
    let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(8)).build().unwrap();
    for _ in 0..20 {
        let r =
            http.get(format!("{}/healthz", site.base)).send().await.expect("answered while one address holds 5,000");
        assert!(r.status().is_success());
    }
    drop(held);
}

/// Behind a trusted proxy, one client cannot take everyone's turn either: the proxy's
/// connections are not capped per address, its clients' requests in flight are, by the
/// address the proxy forwards, and that address is what self-audit records. From any
/// other peer, `X-Forwarded-For` is ignored.
#[tokio::test]
async fn behind_a_proxy_each_forwarded_client_is_capped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use trail_store::prelude::*;
    let limits = trail_server::ConnectionConfig {
        max_connections_per_client: 4,
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        body_timeout: std::time::Duration::from_secs(120),
        ..trail_server::ConnectionConfig::default()
    };
    let site = Site::start_with(limits).await;
    let addr: std::net::SocketAddr = site.base.trim_start_matches("http://").parse().unwrap();
    // Ten requests from one client through the proxy, each holding its body back.
    let head = format!(
        "POST /api/v1/events HTTP/1.1\r\nhost: trail\r\nx-forwarded-for: 192.0.2.1, 203.0.113.9\r\n\
         authorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{",
        site.ingest
    );
    let mut answers = tokio::task::JoinSet::new();
    let mut writers = Vec::new();
    for _ in 0..10 {
        let (mut read, mut write) = tokio::net::TcpStream::connect(addr).await.unwrap().into_split();
        write.write_all(head.as_bytes()).await.unwrap();
        writers.push(write);
        answers.spawn(async move {
            let mut buf = [0u8; 12];
            read.read_exact(&mut buf).await.map(|_| String::from_utf8_lossy(&buf).into_owned())
        });
    }
    // Six of them are turned away at once; four stay in flight.
    let mut refused = 0;
    while refused < 6 {
        let answer = tokio::time::timeout(std::time::Duration::from_secs(30), answers.join_next())
            .await
            .expect("the requests past the cap are answered at once");
        assert_eq!(answer.unwrap().unwrap().unwrap(), "HTTP/1.1 429");
        refused += 1;
    }
    let through = |client: &str| {
        let (http, base, key, client) = (site.http.clone(), site.base.clone(), site.admin.clone(), client.to_string());
        async move {
            http.get(format!("{base}/api/v1/events?q=seen-{}", client.replace('.', "-")))
                .bearer_auth(key)
                .header("x-forwarded-for", client)
                .send()
                .await
                .unwrap()
        }
    };
    let r = through("203.0.113.9").await;
    assert_eq!(r.status(), 429);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("in flight from this address"), "{v}");
    // Another client through the same proxy is served, and recorded by its address.
    assert_eq!(through("198.51.100.7").await.status(), 200);
    // A peer that is not a trusted proxy is recorded as itself, whatever it forwards.
    let direct = reqwest::Client::builder().local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap()).build();
    let r = direct
        .unwrap()
        .get(format!("{}/api/v1/events?q=seen-spoofed", site.base))
        .bearer_auth(&site.admin)
        .header("x-forwarded-for", "198.51.100.8")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let store = site.store.clone();
    let log = support::until("the views recorded", async || {
        let rows = store.scan("acme", 0, 1_000_000).await.unwrap_or_default();
        let log: Vec<String> = rows.iter().map(|(_, l)| String::from_utf8_lossy(l).into_owned()).collect();
        (log.iter().any(|l| l.contains("seen-198-51-100-7")) && log.iter().any(|l| l.contains("seen-spoofed")))
            .then_some(log)
    })
    .await;
    let line = |term: &str| log.iter().find(|l| l.contains(term)).unwrap().clone();
    assert!(line("seen-198-51-100-7").contains("\"198.51.100.7\""), "{}", line("seen-198-51-100-7"));
    let spoofed = line("seen-spoofed");
    assert!(spoofed.contains("\"127.0.0.2\"") && !spoofed.contains("198.51.100.8"), "{spoofed}");
    // Once the held requests end, the client is served again.
    drop(writers);
    answers.abort_all();
    support::until("the client served again", async || (through("203.0.113.9").await.status() == 200).then_some(()))
        .await;
}

/// Mail credentials never travel in clear: STARTTLS is required by default and the
/// server's certificate verified (here against a private CA given as `ca_file`); a
/// server that does not offer STARTTLS, or whose certificate is not trusted, gets
/// nothing; only `tls = "none"`, set explicitly, sends in clear.
#[tokio::test]
async fn mail_credentials_never_travel_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let (cert_pem, key_pem) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_pem, cert.cert.pem()).unwrap();
    std::fs::write(&key_pem, cert.signing_key.serialize_pem()).unwrap();
    let (c, k) = (cert_pem.to_str().unwrap(), key_pem.to_str().unwrap());
    let secure = crate::exports::Smtp::start_with(&["--starttls", c, k, "--auth", "trail", "s3cret"]);
    let plain = crate::exports::Smtp::start_with(&[]);
    // One server per case, each mailing a scheduled export run now.
    async fn run(port: u16, tls: trail_server::SmtpTls, ca: Option<&std::path::Path>) -> serde_json::Value {
        let dir = tempfile::tempdir().unwrap();
        let store = support::store(dir.path(), &["acme"], true).await;
        let admin = key(&*store, "acme", KeyScope::Admin).await;
        let mut config = ServerConfig::default();
        config.exports.dir = dir.path().join("exports");
        config.exports.smtp = Some(trail_server::SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            from: "trail@example.com".into(),
            username: Some("trail".into()),
            password: Some("s3cret".into()),
            tls,
            ca_file: ca.map(Into::into),
        });
        let running = support::serve(AppState::new(store, config, trail_server::system_clock())).await;
        let api = Api::new(&running.base, &admin);
        let body = json!({"name": "daily", "cadence": "daily", "at": "06:00", "format": "csv", "recipients": ["audit@acme.test"]});
        let (code, made) = api.call(Method::POST, "/api/v1/schedules", Some(body)).await;
        assert_eq!(code, 201, "{made}");
        let (code, ran) = api.call(Method::POST, &format!("/api/v1/schedules/{}/run", made["id"]), None).await;
        assert_eq!(code, 200, "{ran}");
        ran
    }
    use trail_server::SmtpTls;
    let ran = run(secure.port, SmtpTls::StartTls, Some(&cert_pem)).await;
    assert_eq!(ran["emailed"], 1, "{ran}");
    let got = secure.messages();
    assert_eq!((got.len(), got[0].0["auth"].as_str(), got[0].0["tls"].as_bool()), (1, Some("trail"), Some(true)));
    // The same server without its CA: the certificate is not trusted, nothing is sent.
    let ran = run(secure.port, SmtpTls::StartTls, None).await;
    assert_eq!(ran["emailed"], 0, "{ran}");
    assert!(ran["mail_error"].as_str().is_some_and(|e| !e.is_empty()), "{ran}");
    // A server that does not offer STARTTLS gets nothing (credentials included).
    let ran = run(plain.port, SmtpTls::StartTls, None).await;
    assert_eq!(ran["emailed"], 0, "{ran}");
    assert!(plain.messages().is_empty());
    assert_eq!(secure.messages().len(), 1);
}

/// One organization's administrator learns nothing of another's users: adding an
/// address that has an account elsewhere answers as for any new address (emails are
/// unique within an organization); login picks the account whose password matches.
#[tokio::test]
async fn no_user_enumeration_across_tenants() {
    let site = Site::start().await;
    let globex = site.api(&key(&*site.store, "globex", KeyScope::Admin).await);
    let body = |email: &str| json!({"email": email, "name": "Someone", "role": "auditor"});
    let (code, gil) = globex.call(Method::POST, "/api/v1/users", Some(body("gil@globex.com"))).await;
    assert_eq!(code, 201, "{gil}");
    let acme = site.api(&site.admin);
    let (fresh, a) = acme.call(Method::POST, "/api/v1/users", Some(body("new@acme.com"))).await;
    let (taken_elsewhere, b) = acme.call(Method::POST, "/api/v1/users", Some(body("gil@globex.com"))).await;
    assert_eq!((fresh, taken_elsewhere), (201, 201), "{a} {b}");
    let shape = |v: &serde_json::Value| {
        let mut keys: Vec<String> = v["user"].as_object().unwrap().keys().cloned().collect();
        keys.sort();
        (keys, v["one_time_password"].is_string())
    };
    assert_eq!(shape(&a), shape(&b), "the same answer whether or not the address exists elsewhere");
    assert_eq!(b["user"]["org"], "acme");
    // Within the organization, a second account with the same address is refused.
    let (code, v) = acme.call(Method::POST, "/api/v1/users", Some(body("GIL@globex.com"))).await;
    assert_eq!((code, v["error"]["field"].as_str()), (400, Some("email")), "{v}");
    // Each account logs in with its own password, into its own organization.
    let login = |password: &str, org: Option<&str>| {
        let mut b = json!({"email": "gil@globex.com", "password": password});
        if let Some(o) = org {
            b["org"] = json!(o);
        }
        site.http.post(format!("{}/api/v1/auth/login", site.base)).body(b.to_string()).send()
    };
    let (g_otp, a_otp) = (gil["one_time_password"].as_str().unwrap(), b["one_time_password"].as_str().unwrap());
    let r = login(g_otp, None).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["user"]["org"], "globex");
    let r = login(a_otp, None).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["user"]["org"], "acme");
    assert_eq!(login("not the password", None).await.unwrap().status(), 401);
    assert_eq!(
        login(g_otp, Some("acme")).await.unwrap().status(),
        401,
        "globex's password does not open acme's account"
    );
    // The same password on both accounts: the person (who knows it) is asked to name one.
    for (otp, org) in [(g_otp, "globex"), (a_otp, "acme")] {
        let r = login(otp, Some(org)).await.unwrap();
        let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
        let csrf = r.json::<serde_json::Value>().await.unwrap()["csrf_token"].as_str().unwrap().to_string();
        let change = json!({"current_password": otp, "new_password": "one password for both"});
        let s = Login { cookie, csrf };
        assert_eq!(site.session(&s, Method::POST, "/api/v1/auth/password", Some(change)).await.0, 204);
    }
    let r = login("one password for both", None).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["error"]["field"], "org");
    let r = login("one password for both", Some("globex")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["user"]["org"], "globex");
}
