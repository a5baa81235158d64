//! Failures end cleanly: a full disk during an export, a damaged archive, a database
//! gone mid-commit. Each answers the documented JSON error and leaves nothing behind.
//!
//! The full-disk test mounts a small tmpfs, which needs root (CI runs as root).

use std::{path::Path, process::Command, sync::Arc, time::Duration};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use trail_server::{AppState, ExportConfig, ServerConfig};
use trail_store::{
    sqlite::{SqliteConfig, SqliteStore},
    KeyScope, Org, Store,
};

struct Server {
    base: String,
    client: reqwest::Client,
    read: String,
    ingest: String,
    _shutdown: oneshot::Sender<()>,
}

async fn start(dir: &Path, config: ServerConfig) -> Server {
    let store = Arc::new(SqliteStore::open(&dir.join("trail.db"), SqliteConfig::default()).unwrap());
    store.ensure_org(Org { slug: "acme".into(), name: "acme".into() }).await.unwrap();
    let read = trail_server::create_api_key(&*store, "acme", KeyScope::Read, "t").await.unwrap().0;
    let ingest = trail_server::create_api_key(&*store, "acme", KeyScope::Ingest, "t").await.unwrap().0;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    let state = AppState::new(store, config, trail_server::system_clock());
    tokio::spawn(trail_server::serve(listener, state, async move {
        let _ = rx.await;
    }));
    Server { base, client: reqwest::Client::new(), read, ingest, _shutdown: tx }
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
