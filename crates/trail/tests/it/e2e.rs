//! The `/audit` page end to end: a real `trail serve` with demo data, users made with
//! the command line, and `e2e/audit.test.mjs` driving Debian's Chromium through
//! playwright-core (login, filters, search, sort, detail and diff, deep links, live
//! view, export, a restricted viewer). Screenshots go to `target/screenshots/`, or to
//! `TRAIL_SCREENSHOTS` when set: `cargo run -p trail-bench -- --screenshots` sets it
//! to `docs/` to refresh the README's pictures on purpose.
//!
//! Needs `/usr/bin/chromium` and `e2e/node_modules` (`bash .ci/run` installs both).

use crate::support::{run_ok, spawn_served, trail};
use trail_store::prelude::*;

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
};

use serde_json::{json, Value};
use trail_store::{sqlite::SqliteStore, KeyScope};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Creates a user from the command line; returns its one-time password.
fn user(data: &Path, email: &str, role: &str) -> String {
    let out = run_ok(
        trail(data).args(["users", "create", "--org", "acme", "--email", email, "--name", "E2E", "--role", role]),
    );
    out.lines().find(|l| l.starts_with("one-time password")).unwrap().rsplit(' ').next().unwrap().to_string()
}

#[test]
fn the_audit_page_in_chromium() {
    let root = root();
    let modules = root.join("e2e/node_modules/playwright-core");
    assert!(
        modules.exists(),
        "e2e/node_modules is missing: run `npm ci --prefix e2e` (bash .ci/run does), and install Debian's chromium"
    );
    assert!(Path::new("/usr/bin/chromium").exists(), "install Debian's chromium (apt-get install -y chromium)");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Demo data, a deployment with a known before/after, and a custom role without
    // secrets, written straight into the store before the server starts.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (deploy_id, ingest, read, admin) = rt.block_on(async {
        let store = Arc::new(SqliteStore::open(&d.join("trail.db"), Default::default()).unwrap());
        let now = trail_core::Timestamp::from_datetime(chrono::Utc::now());
        trail_server::work::demo::fill(&*store, now, 3000).await.unwrap();
        let key = |scope| {
            let store = store.clone();
            async move { trail_server::create_api_key(&*store, "acme", scope, "e2e").await.unwrap().0 }
        };
        let (ingest, read, admin) =
            (key(KeyScope::Ingest).await, key(KeyScope::Read).await, key(KeyScope::Admin).await);
        let new = trail_core::event::parse_event(json!({
            "action": "service:deploy", "request_id": "req-deploy-e2e",
            "actor": {"name": "Dana Deploy", "email": "dana@acme.com"},
            "resource": {"type": "service", "name": "checkout-api", "id": "svc-checkout"},
            "before": {"image": "shop/checkout:v1.4.2", "replicas": 3},
            "after": {"image": "shop/checkout:v1.5.0", "replicas": 3},
        }))
        .unwrap();
        let batch = trail_store::AppendBatch {
            org: "acme".into(),
            received_at: now,
            events: vec![(uuid::Uuid::now_v7(), new)],
        };
        let acks = store.append(batch).await.unwrap();
        store
            .put_role(trail_store::Role {
                org: "acme".into(),
                name: "no-secrets".into(),
                view: trail_store::Categories::Except(vec!["secret".into()]),
                export: trail_store::Categories::Only(vec![]),
            })
            .await
            .unwrap();
        store.close();
        (acks[0].id.to_string(), ingest, read, admin)
    });
    let _ = admin;
    // The nightly retention job, by hand: demo events older than 90 days go to the
    // archive (the page reaches them through "Download log").
    let report = run_ok(trail(d).args(["retention", "run"]));
    assert!(report.contains("acme: archived"), "{report}");
    let admin_otp = user(d, "admin@acme.test", "org_admin");
    let viewer_otp = user(d, "viewer@acme.test", "no-secrets");
    // The browser step streams to a receiver of its own on loopback.
    // Two witnesses up of a 2-of-3 policy: the detail shows the checkpoint witnessed.
    let ikey = run_ok(trail(d).args(["keys", "verifier", "--org", "_installation"])).trim().to_string();
    let follow = d.join("follow.policy");
    std::fs::write(&follow, format!("log {ikey}\nquorum none\n")).unwrap();
    let mut policy = format!("log {ikey}\n");
    let mut witnesses = Vec::new();
    for i in 1..=3 {
        let wd = d.join(format!("w{i}"));
        let vkey = crate::witness::witness_key(&wd, &format!("w{i}.witness.test"));
        let addr = if i < 3 {
            let w = crate::witness::witness(&wd, "127.0.0.1:0", &follow);
            let a = w.addr.clone();
            witnesses.push(w);
            a
        } else {
            "127.0.0.1:9".to_string() // down
        };
        policy.push_str(&format!("witness w{i} {vkey} http://{addr}\n"));
    }
    policy.push_str("group all3 2 w1 w2 w3\nquorum all3\n");
    std::fs::write(d.join("trail.policy"), policy).unwrap();
    let config = d.join("trail.toml");
    let toml = format!(
        "[streams]\nallow_private_destinations = true\n[witness]\npolicy = \"{}\"\ntimeout = \"2s\"\n",
        d.join("trail.policy").display()
    );
    std::fs::write(&config, toml).unwrap();
    let server = spawn_served(
        trail(d)
            .arg("--config")
            .arg(&config)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("TRAIL_INSECURE_COOKIES", "true"),
    );
    let base = server.base.clone();
    let shots =
        std::env::var_os("TRAIL_SCREENSHOTS").map(PathBuf::from).unwrap_or_else(|| root.join("target/screenshots"));
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("node")
        .arg(root.join("e2e/audit.test.mjs"))
        .current_dir(root.join("e2e"))
        .env("BASE", &base)
        .env("ADMIN_EMAIL", "admin@acme.test")
        .env("ADMIN_OTP", &admin_otp)
        .env("VIEWER_EMAIL", "viewer@acme.test")
        .env("VIEWER_OTP", &viewer_otp)
        .env("INGEST_KEY", &ingest)
        .env("READ_KEY", &read)
        .env("DEPLOY_ID", &deploy_id)
        .env("DEPLOY_REQUEST", "req-deploy-e2e")
        .env("SCREENSHOTS", &shots)
        .output()
        .expect("node is needed for the browser test");
    drop(server);
    drop(witnesses);
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(out.status.success(), "browser test failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let results: Value =
        stdout.lines().find_map(|l| l.strip_prefix("RESULTS ")).map(|j| serde_json::from_str(j).unwrap()).unwrap();
    assert!(results["rows_visible_ms"].is_number());
}

/// The page's own proof check (`ui/proof.js`, run by Node as the browser runs it) takes
/// exactly the valid inclusion proofs of the shared RFC 6962 / RFC 9162 vectors.
#[test]
fn the_pages_proof_check_passes_the_shared_vectors() {
    let root = root();
    let vectors = root.join("../shared/vectors/merkle");
    assert!(vectors.is_dir(), "the shared proof vectors are missing: {}", vectors.display());
    let out = Command::new("node").arg(root.join("e2e/proof-vectors.mjs")).arg(&vectors).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(" passed, 0 failed"), "{text}");
}
