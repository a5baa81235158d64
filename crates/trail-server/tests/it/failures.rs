//! Failures end cleanly: a full disk during an export, a damaged archive, a database
//! gone mid-commit. Each answers the documented JSON error and leaves nothing behind.
//!
//! The full-disk test mounts a small tmpfs, which needs root (CI runs as root).

use std::{path::Path, process::Command, sync::Arc, time::Duration};

use reqwest::StatusCode;
use serde_json::{json, Value};
use trail_server::{AppState, ExportConfig, ServerConfig};
use trail_store::{prelude::*, sqlite::SqliteStore, KeyScope};

use crate::support;

struct Server {
    base: String,
    client: reqwest::Client,
    read: String,
    ingest: String,
    state: AppState,
    store: Arc<SqliteStore>,
    _running: support::Running,
}

async fn start(dir: &Path, config: ServerConfig) -> Server {
    let store = support::store(dir, &["acme"], true).await;
    let read = support::key(&*store, "acme", KeyScope::Read).await;
    let ingest = support::key(&*store, "acme", KeyScope::Ingest).await;
    let config = ServerConfig { log: Some(support::log_key()), ..config };
    let state = AppState::new(store.clone(), config, trail_server::system_clock());
    let running = support::serve(state.clone()).await;
    Server { base: running.base.clone(), client: reqwest::Client::new(), read, ingest, state, store, _running: running }
}

/// A tmpfs of `size` mounted at `at`, unmounted when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(at).output();
        let out = out.expect("mount runs");
        assert!(out.status.success(), "mounting a tmpfs needs root: {}", String::from_utf8_lossy(&out.stderr));
        SmallDisk(at.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

async fn fill(s: &Server, n: usize) {
    for batch in 0..n / 1000 {
        let events: Vec<Value> = (0..1000)
            .map(|i| {
                json!({"action": "auth:login", "actor": {"email": format!("user{i}@acme.com"), "name": "Someone with a long name"},
                       "request_id": format!("req-{batch}-{i}"), "details": {"note": "x".repeat(200)}})
            })
            .collect();
        let r = s.client.post(format!("{}/api/v1/events", s.base)).bearer_auth(&s.ingest).json(&events).send().await;
        assert_eq!(r.unwrap().status(), StatusCode::OK);
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    walk(dir).into_iter().map(|p| p.display().to_string()).collect()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn a_full_disk_fails_every_export_with_json_and_leaves_no_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("small");
    let _disk = SmallDisk::mount(&disk, "512k");
    let exports = ExportConfig { dir: disk.join("exports"), sync_rows: 100_000, ..ExportConfig::default() };
    let s = start(dir.path(), ServerConfig { exports, ..ServerConfig::default() }).await;
    fill(&s, 5000).await;
    // Every byte of the small disk taken.
    let filler = disk.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let block = vec![7u8; 64 * 1024];
    while std::io::Write::write_all(&mut f, &block).is_ok() {}
    while std::io::Write::write_all(&mut f, &block[..512]).is_ok() {}
    drop(f);
    // Made in the request (XLSX, PDF) and as background jobs (every format).
    for path in ["/api/v1/export?format=xlsx", "/api/v1/export?format=pdf"] {
        let r = s.client.get(format!("{}{path}", s.base)).bearer_auth(&s.read).send().await.unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{path}: {v}");
        assert_eq!(v["error"]["code"], "insufficient_storage", "{path}: {v}");
    }
    for format in ["csv", "jsonl", "json", "xlsx", "pdf"] {
        let r = s.client.post(format!("{}/api/v1/exports?format={format}", s.base)).bearer_auth(&s.read).send();
        let v: Value = r.await.unwrap().json().await.unwrap();
        let url = format!("{}{}", s.base, v["status_url"].as_str().unwrap());
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        let status = loop {
            let v: Value = s.client.get(&url).bearer_auth(&s.read).send().await.unwrap().json().await.unwrap();
            if v["status"] != "running" {
                break v;
            }
            assert!(std::time::Instant::now() < deadline, "{v}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(status["status"], "failed", "{format}: {status}");
        assert_eq!(status["error"]["code"], "insufficient_storage", "{format}: {status}");
        let r = s.client.get(format!("{url}/file")).bearer_auth(&s.read).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::CONFLICT);
    }
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(files_in(&disk), Vec::<String>::new(), "no partial file is left");
}

#[tokio::test]
async fn the_daily_self_check_records_its_result_and_health_reports_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), ServerConfig::default()).await;
    fill(&s, 1000).await;
    let health = || async {
        let v: Value = s.client.get(format!("{}/healthz", s.base)).send().await.unwrap().json().await.unwrap();
        v
    };
    assert_eq!(health().await["status"], "ok");
    // A clean store: every organization verifies, and that is recorded.
    let checks = trail_server::work::selfcheck::run(&s.state).await.unwrap();
    assert!(checks.iter().all(|c| c.ok), "{checks:?}");
    let h = health().await;
    assert_eq!((h["status"].as_str(), h["verify"]["ok"].as_bool()), (Some("ok"), Some(true)), "{h}");
    // Someone hides an event by moving its indexed time back a year.
    let conn = rusqlite::Connection::open(dir.path().join("trail.db")).unwrap();
    conn.execute("UPDATE events SET ts = ts - 365 * 86400000000 WHERE seq = 10", []).unwrap();
    drop(conn);
    let checks = trail_server::work::selfcheck::run(&s.state).await.unwrap();
    let acme = checks.iter().find(|c| c.org == "acme").unwrap();
    assert!(!acme.ok && acme.problems.contains("entry 10 (id"), "{acme:?}");
    let ready = s.client.get(format!("{}/readyz", s.base)).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let ready: Value = ready.json().await.unwrap();
    assert!(ready["reasons"].to_string().contains("self-check"), "{ready}");
    let h = health().await;
    assert_eq!((h["status"].as_str(), h["verify"]["failed"][0].as_str()), (Some("degraded"), Some("acme")), "{h}");
    assert!(h["verify"]["first_finding"].as_str().unwrap().contains("entry 10"), "{h}");
    // Both runs are in the log, the second failed and names the entry.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let runs = loop {
        let rows = s.store.scan("acme", 0, 1_000_000).await.unwrap();
        let runs: Vec<trail_core::Event> = rows
            .iter()
            .map(|(_, l)| trail_core::Event::from_leaf(l).unwrap())
            .filter(|e| e.action == "system:verify")
            .collect();
        if runs.len() == 2 {
            break runs;
        }
        assert!(std::time::Instant::now() < deadline, "{} runs recorded", runs.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(runs[0].result.as_str(), "DONE");
    assert_eq!(runs[1].result.as_str(), "FAILED");
    assert!(runs[1].error.as_deref().unwrap().contains("entry 10"), "{:?}", runs[1].error);
    assert_eq!(runs[1].details.as_ref().unwrap()["entries"], 1001, "the first run's own event counts");
}
