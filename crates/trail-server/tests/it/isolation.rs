//! Isolation over real HTTP: one organization sees nothing of another, category
//! restrictions hold on every object that carries events (lists, counts, live
//! streams, export jobs), and injection attempts fail cleanly and change nothing.

use ed25519_dalek::SigningKey;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use trail_store::{prelude::*, KeyScope};

use crate::access::{ev, start, Auth, Server};

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
    crate::support::until("the export job's file", async || {
        let (_, v) = s.get(auth, &path).await;
        assert!(v["status"] == "running" || v["status"] == "done", "{v}");
        (v["status"] == "done").then_some(())
    })
    .await;
    path
}
