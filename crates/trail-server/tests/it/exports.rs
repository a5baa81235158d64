//! Exports over real HTTP, read back with independent readers: the csv crate, calamine
//! (XLSX), pdftotext (Debian's poppler-utils) and, for scheduled exports, a real SMTP
//! server (Python's aiosmtpd) whose messages Python's email package parses.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicI64, Ordering},
        Arc,
    },
    time::Duration,
};

use calamine::{open_workbook_from_rs, Data, Reader, Xlsx};
use reqwest::StatusCode;
use serde_json::{json, Value};
use trail_core::{Event, Timestamp};
use trail_server::{AppState, ExportConfig, ServerConfig, SmtpConfig};
use trail_store::{prelude::*, sqlite::SqliteStore, KeyScope};

use crate::support;

struct Server {
    base: String,
    client: reqwest::Client,
    store: Arc<SqliteStore>,
    now: Arc<AtomicI64>,
    read: String,
    admin: String,
    state: AppState,
    _running: support::Running,
    dir: tempfile::TempDir,
}

async fn start(sync_rows: u64, smtp_port: Option<u16>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = support::store(dir.path(), &["acme", "globex"], true).await;
    let key = |org: &'static str, scope| {
        let store = store.clone();
        async move { support::key(&*store, org, scope).await }
    };
    let (ingest, read, admin) =
        (key("acme", KeyScope::Ingest).await, key("acme", KeyScope::Read).await, key("acme", KeyScope::Admin).await);
    let g_ingest = key("globex", KeyScope::Ingest).await;
    let (now, clock) = support::manual_clock();
    let exports = ExportConfig {
        dir: dir.path().join("exports"),
        tmp_dir: None,
        sync_rows,
        attach_limit: 10 * 1024 * 1024,
        smtp: smtp_port.map(|port| SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            from: "trail@example.com".into(),
            username: None,
            password: None,
            // The test's sink is a plain local relay.
            tls: trail_server::SmtpTls::None,
            ca_file: None,
        }),
    };
    // Retention as configured in production, but it only runs when a test calls it; no
    // online window, so the other tests' 2024 events stay listable.
    let retention = trail_server::RetentionConfig {
        rules: trail_store::archive::Retention {
            default_days: 30,
            categories: [("auth".to_string(), 0)].into(),
            key_days: None,
        },
        archive: Some(trail_store::archive::Archive::new(dir.path().join("archive"))),
        ..Default::default()
    };
    let server_config = ServerConfig { log: Some(support::log_key()), exports, retention, ..ServerConfig::default() };
    let state = AppState::new(store.clone(), server_config, clock);
    let running = support::serve(state.clone()).await;
    let base = running.base.clone();
    let s = Server { base, client: reqwest::Client::new(), store, now, read, admin, state, _running: running, dir };
    s.ingest(&ingest, (0..300).map(sample).collect()).await;
    s.ingest(&g_ingest, vec![json!({"action": "secret:read", "actor": {"email": "spy@globex.com"}})]).await;
    s
}

/// Varied events: unicode names, formula-looking text, before/after, failures.
fn sample(i: usize) -> Value {
    let actions = ["auth:login", "user:role_change", "service:deploy", "secret:read", "api_key:create"];
    let mut e = json!({
        "action": actions[i % actions.len()],
        "timestamp": format!("2024-03-{:02}T{:02}:{:02}:00Z", 1 + i % 28, i % 24, i % 60),
        "result": if i.is_multiple_of(4) { "FAILED" } else { "DONE" },
        "actor": {"id": format!("u{}", i % 7), "name": if i.is_multiple_of(7) { "Zoë Ünal".to_string() } else { format!("User {}", i % 7) },
                  "email": format!("user{}@acme.com", i % 7)},
        "resource": {"type": "service", "id": format!("svc-{i}"), "name": if i.is_multiple_of(50) { "=cmd|' /C calc'!A0".to_string() } else { format!("svc-{i}") }},
        "source_ip": format!("10.0.{}.{}", i % 3, i % 200),
        "request_id": format!("req-{i}"),
        "details": {"n": i, "note": "comma, \"quote\"\nnewline"},
    });
    if i % 5 == 1 {
        e["before"] = json!({"role": "viewer"});
        e["after"] = json!({"role": "admin"});
    }
    if i.is_multiple_of(4) {
        e["error"] = json!("Permission denied");
        e["status_code"] = json!(403);
    }
    e
}

impl Server {
    async fn ingest(&self, key: &str, events: Vec<Value>) {
        let r = self
            .client
            .post(format!("{}/api/v1/events", self.base))
            .bearer_auth(key)
            .body(Value::Array(events).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }

    async fn get(&self, key: &str, path: &str) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
        let r = self.client.get(format!("{}{path}", self.base)).bearer_auth(key).send().await.unwrap();
        let (status, headers) = (r.status(), r.headers().clone());
        (status, headers, r.bytes().await.unwrap().to_vec())
    }

    /// acme's events matching a filter, newest first, straight from the store.
    async fn expected(&self, query: &str) -> Vec<Event> {
        let filter = trail_core::query::parse(query).unwrap();
        let q = trail_store::ListQuery {
            scope: trail_store::Scope::org("acme"),
            filter,
            now: Timestamp(self.now.load(Ordering::SeqCst)),
            cursor: None,
            limit: 1,
        };
        let mut rx = self.store.stream(q, 100).await.unwrap();
        let mut out = Vec::new();
        while let Some(c) = rx.recv().await {
            out.extend(c.unwrap().iter().map(|l| Event::from_leaf(l).unwrap()));
        }
        out
    }

    /// The `audit:export` events recorded, once `done` holds for them (an export is
    /// recorded when its body ends, which may be just after the client read it).
    async fn exports_recorded(&self, done: impl Fn(&[Event]) -> bool) -> Vec<Event> {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let rows = self.store.scan("acme", 0, 1_000_000).await.unwrap();
            let found: Vec<Event> =
                rows.iter().map(|(_, l)| Event::from_leaf(l).unwrap()).filter(|e| e.action == "audit:export").collect();
            if done(&found) {
                return found;
            }
            assert!(std::time::Instant::now() < deadline, "exports recorded: {found:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn today(s: &Server) -> String {
    Timestamp(s.now.load(Ordering::SeqCst)).to_datetime().format("%Y%m%d").to_string()
}

#[tokio::test]
async fn csv_json_and_jsonl_hold_exactly_the_filtered_events() {
    let s = start(100_000, None).await;
    let want = s.expected("category:auth").await;
    assert_eq!(want.len(), 60);

    let (st, h, body) = s.get(&s.read, "/api/v1/export?format=csv&category=auth").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(h["content-type"], "text/csv; charset=utf-8");
    assert_eq!(h["content-disposition"], format!("attachment; filename=Audit_Log_{}.csv", today(&s)));
    let text = String::from_utf8(body.clone()).unwrap();
    assert!(text.contains("\r\n"), "RFC 4180 line ends");
    let mut r = csv::Reader::from_reader(&body[..]);
    let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        &header[..8],
        ["Date/Time (UTC)", "Source IP", "Performer", "Company", "Email", "Type", "Operation", "Result"]
    );
    assert!(header.contains(&"Details".to_string()) && header.contains(&"Request ID".to_string()));
    let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
    assert_eq!(rows.len(), want.len());
    for (row, e) in rows.iter().zip(&want) {
        assert_eq!(&row[0], e.timestamp.to_rfc3339_micros());
        assert_eq!(&row[1], e.source_ip.as_deref().unwrap_or(""));
        assert_eq!(&row[4], e.actor.as_ref().unwrap().email.as_deref().unwrap());
        assert_eq!((&row[5], &row[6], &row[7]), (e.category(), e.operation(), e.result.as_str()));
        assert_eq!(&row[8], e.id.to_string());
        assert_eq!(&row[9], e.request_id.as_deref().unwrap());
        let details: Value = serde_json::from_str(&row[15]).unwrap();
        assert_eq!(Some(&details), e.details.as_ref());
    }
    // Formula-looking cells are neutralised.
    let (_, _, body) = s.get(&s.read, "/api/v1/export?format=csv&request_id=req-0").await;
    let mut r = csv::Reader::from_reader(&body[..]);
    let row = r.records().next().unwrap().unwrap();
    assert_eq!(&row[12], "'=cmd|' /C calc'!A0");

    // JSON and JSON Lines: every field, the stored bytes.
    let want = s.expected("result:FAILED").await;
    let (_, h, body) = s.get(&s.read, "/api/v1/export?format=json&result=FAILED").await;
    assert_eq!(h["content-type"], "application/json");
    let arr: Vec<Value> = serde_json::from_slice(&body).unwrap();
    assert_eq!(arr.len(), want.len());
    for (v, e) in arr.iter().zip(&want) {
        assert_eq!(serde_json::to_vec(v).unwrap(), e.to_leaf());
    }
    let (_, h, body) = s.get(&s.read, "/api/v1/export?format=jsonl&action=user:role_change").await;
    assert!(h["content-disposition"].to_str().unwrap().ends_with(".jsonl"));
    let lines: Vec<&[u8]> = body.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    let want = s.expected("action:user:role_change").await;
    assert_eq!(lines.len(), want.len());
    assert!(lines.iter().zip(&want).all(|(l, e)| *l == e.to_leaf().as_slice()));
    let with_diff = want.iter().filter(|e| e.before.is_some() && e.after.is_some()).count();
    assert!(with_diff > 0, "before/after are kept");
    // Nothing of globex; an empty result is a valid file.
    let (_, _, body) = s.get(&s.read, "/api/v1/export?format=jsonl").await;
    assert!(!String::from_utf8_lossy(&body).contains("globex"));
    let (_, _, body) = s.get(&s.read, "/api/v1/export?format=json&category=nothing").await;
    assert_eq!(serde_json::from_slice::<Vec<Value>>(&body).unwrap().len(), 0);

    // Each export is recorded with its format, filter and rows.
    let detail = |e: &Event, k: &str| e.details.as_ref().unwrap()[k].clone();
    let recorded = s
        .exports_recorded(|r| {
            r.iter().any(|e| detail(e, "format") == "csv") && r.iter().any(|e| detail(e, "format") == "jsonl")
        })
        .await;
    let csv = recorded.iter().find(|e| e.details.as_ref().unwrap()["format"] == "csv").unwrap();
    assert_eq!(csv.details.as_ref().unwrap()["rows"], 60);
    assert_eq!(csv.details.as_ref().unwrap()["filter"], "category:auth");
    assert!(recorded.iter().any(|e| e.details.as_ref().unwrap()["format"] == "jsonl"));

    // Bad requests name the parameter.
    for (path, field) in [
        ("/api/v1/export", "format"),
        ("/api/v1/export?format=docx", "format"),
        ("/api/v1/export?format=csv&preset=fancy", "preset"),
        ("/api/v1/export?format=csv&colour=red", "colour"),
    ] {
        let (st, _, body) = s.get(&s.read, path).await;
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((st, v["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some(field)), "{path}");
    }
}

#[tokio::test]
async fn xlsx_and_pdf_read_back_with_independent_readers() {
    let s = start(100_000, None).await;
    let want = s.expected("").await;
    let (st, h, body) = s.get(&s.read, "/api/v1/export?format=xlsx").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(h["content-disposition"], format!("attachment; filename=Audit_Log_{}.xlsx", today(&s)));
    let mut book: Xlsx<_> = open_workbook_from_rs(std::io::Cursor::new(body)).unwrap();
    assert_eq!(book.sheet_names(), ["Audit Log", "Summary"]);
    let log = book.worksheet_range("Audit Log").unwrap();
    assert_eq!(log.height(), want.len() + 1);
    for (i, e) in want.iter().enumerate().step_by(37) {
        let row = i + 1;
        match log.get((row, 0)) {
            Some(Data::DateTime(d)) => {
                let secs = ((d.as_f64() - 25_569.0) * 86_400.0).round() as i64;
                assert_eq!(secs, e.timestamp.0 / 1_000_000, "row {row}");
            }
            other => panic!("row {row}: not a date-time: {other:?}"),
        }
        assert_eq!(log.get((row, 8)), Some(&Data::String(e.id.to_string())));
        assert_eq!(log.get((row, 4)).map(|c| c.to_string()), e.actor.as_ref().unwrap().email.clone());
    }
    let summary = book.worksheet_range("Summary").unwrap();
    let lines: Vec<String> =
        summary.rows().map(|r| r.iter().map(|c| c.to_string()).collect::<Vec<_>>().join("|")).collect();
    assert!(lines.contains(&"auth|60".to_string()), "{lines:?}");
    assert!(lines.contains(&"FAILED|75".to_string()), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("Generated at (UTC)|")));

    // PDF, checked with pdftotext.
    let (st, h, body) = s.get(&s.read, "/api/v1/export?format=pdf&preset=compliance").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(h["content-type"], "application/pdf");
    let text = pdftotext(&body, s.dir.path());
    assert!(text.contains("Compliance Report"), "{text}");
    assert!(text.contains("acme") && text.contains("Failed logins"));
    let pages = text.matches("Page ").count();
    assert!(pages >= 2 && text.contains(&format!("Page 1 of {pages}")), "{pages} pages");
    assert!(text.contains("Zoë Ünal"), "unicode survives");
    assert!(!text.contains("service:deploy") && !text.contains("deploy\n"), "the preset leaves deployments out");
    let (_, _, body) = s.get(&s.read, "/api/v1/export?format=pdf&category=auth").await;
    let text = pdftotext(&body, s.dir.path());
    assert!(text.contains("Audit Log Report") && text.contains("category:auth"));
    assert!(text.contains("auth 60") || text.contains("auth\n60") || text.contains("60"), "{text}");
    let detail = |e: &Event, k: &str| e.details.as_ref().unwrap()[k].clone();
    let recorded = s
        .exports_recorded(|r| {
            r.iter().any(|e| detail(e, "format") == "pdf")
                && r.iter().any(|e| detail(e, "format") == "xlsx" && detail(e, "rows") == 300)
        })
        .await;
    assert!(recorded.iter().any(|e| e.details.as_ref().unwrap()["format"] == "pdf"));
}

fn pdftotext(pdf: &[u8], dir: &Path) -> String {
    let path = dir.join(format!("r{}.pdf", rand::random::<u32>()));
    std::fs::write(&path, pdf).unwrap();
    let out = Command::new("pdftotext")
        .arg("-layout")
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext is needed for this test: apt-get install -y poppler-utils (bash .ci/run installs it)");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn large_exports_run_as_jobs_with_progress() {
    let s = start(50, None).await;
    // Over the limit: the GET answers 202 with a job.
    let (st, _, body) = s.get(&s.read, "/api/v1/export?format=xlsx").await;
    assert_eq!(st, StatusCode::ACCEPTED);
    let job: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((job["rows_total"].as_u64(), job["format"].as_str()), (Some(300), Some("xlsx")));
    let url = job["status_url"].as_str().unwrap().to_string();
    let mut status = job.clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        let (_, _, b) = s.get(&s.read, &url).await;
        status = serde_json::from_slice(&b).unwrap();
        if status["status"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(status["status"], "done", "{status}");
    assert_eq!((status["rows"].as_u64(), status["progress"].as_f64()), (Some(300), Some(1.0)));
    let (st, h, body) = s.get(&s.read, status["download_url"].as_str().unwrap()).await;
    assert_eq!(st, StatusCode::OK);
    assert!(h["content-disposition"].to_str().unwrap().contains("Audit_Log_"));
    let mut book: Xlsx<_> = open_workbook_from_rs(std::io::Cursor::new(body)).unwrap();
    assert_eq!(book.worksheet_range("Audit Log").unwrap().height(), 301);
    // POST starts a job for any format; another organization cannot see it.
    let r = s
        .client
        .post(format!("{}/api/v1/exports?format=csv&result=FAILED", s.base))
        .bearer_auth(&s.read)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let job: Value = r.json().await.unwrap();
    let other = trail_server::create_api_key(&*s.store, "globex", KeyScope::Read, "t").await.unwrap().0;
    let (st, _, _) = s.get(&other, job["status_url"].as_str().unwrap()).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _, _) = s.get(&s.read, "/api/v1/exports/not-a-job").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}

/// A real SMTP server (aiosmtpd) saving what it receives.
pub(crate) struct Smtp {
    child: std::process::Child,
    pub(crate) port: u16,
    dir: tempfile::TempDir,
}

impl Smtp {
    pub(crate) fn start() -> Smtp {
        Smtp::start_with(&[])
    }

    /// The sink with options (`--starttls CERT KEY`, `--auth USER PASSWORD`).
    pub(crate) fn start_with(options: &[&str]) -> Smtp {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(dir.path())
            .args(options)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 is needed for the SMTP test");
        let line = BufReader::new(child.stdout.take().unwrap()).lines().next();
        assert!(
            matches!(line, Some(Ok(ref l)) if l == "ready"),
            "the SMTP sink did not start (pip install aiosmtpd; bash .ci/run installs it)"
        );
        Smtp { child, port, dir }
    }

    /// The messages received so far, as parsed by the sink.
    pub(crate) fn messages(&self) -> Vec<(Value, std::path::PathBuf)> {
        let mut out = Vec::new();
        for n in 1.. {
            let p = self.dir.path().join(format!("{n}.json"));
            let Ok(text) = std::fs::read_to_string(&p) else { break };
            out.push((serde_json::from_str(&text).unwrap(), self.dir.path().join(n.to_string())));
        }
        out
    }

    pub(crate) async fn wait_for(&self, n: usize) -> Vec<(Value, std::path::PathBuf)> {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            let m = self.messages();
            if m.len() >= n {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("expected {n} messages, got {}", self.messages().len());
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls a background job until it ends; returns its last status.
async fn finish(s: &Server, key: &str, job: &Value) -> Value {
    let url = job["status_url"].as_str().unwrap().to_string();
    let mut status = job.clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        let (_, _, b) = s.get(key, &url).await;
        status = serde_json::from_slice(&b).unwrap();
        if status["status"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    status
}

#[tokio::test]
async fn downloads_and_evidence_reach_the_archive() {
    let s = start(100, None).await;
    // acme's events in time order, before retention.
    let mut before = s.expected("").await;
    before.sort_by_key(|e| (e.timestamp, e.seq));
    // Retention as of 2024-04-15 (30 days; auth kept): early-March events are archived.
    let as_of = Timestamp::parse_bound("2024-04-15", false).unwrap();
    s.now.store(as_of.0, Ordering::SeqCst);
    let reports = trail_server::work::retention::run(&s.state, as_of).await.unwrap();
    let acme = reports.iter().find(|r| r.org == "acme").unwrap();
    assert!(acme.archived > 50 && !acme.categories.contains_key("auth"), "{acme:?}");
    assert_eq!(acme.archived, acme.deleted);
    let online = s.expected("").await;
    assert_eq!(online.len() as u64, before.len() as u64 + 1 - acme.archived, "one system:retention event added");
    // A download beyond sync_rows is a job with progress; its file merges archive and store.
    let (st, _, body) = s.get(&s.read, "/api/v1/download?from=2024-03-01&to=2024-03-31&format=jsonl").await;
    assert_eq!(st, StatusCode::ACCEPTED);
    let job: Value = serde_json::from_slice(&body).unwrap();
    let status = finish(&s, &s.read, &job).await;
    assert_eq!(status["status"], "done", "{status}");
    let (st, _, body) = s.get(&s.read, status["download_url"].as_str().unwrap()).await;
    assert_eq!(st, StatusCode::OK);
    let got: Vec<Event> =
        String::from_utf8(body).unwrap().lines().map(|l| Event::from_leaf(l.as_bytes()).unwrap()).collect();
    assert_eq!(got, before, "every event of March, archived or not, oldest first");
    // The page's route: POST /exports with download=1.
    let r = s
        .client
        .post(format!("{}/api/v1/exports?download=1&from=2024-03-01&to=2024-03-05&format=csv", s.base))
        .bearer_auth(&s.read)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let status = finish(&s, &s.read, &r.json().await.unwrap()).await;
    let want = before.iter().filter(|e| e.timestamp < Timestamp::parse_bound("2024-03-06", false).unwrap()).count();
    assert_eq!(status["rows"].as_u64(), Some(want as u64), "{status}");
    // A download names csv or jsonl only.
    let (st, _, body) = s.get(&s.read, "/api/v1/download?format=xlsx").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("\"field\":\"format\""));
    // Evidence of an archived period: leaves from the archive, proofs from the kept tree.
    let (st, _, body) = s.get(&s.read, "/api/v1/export?format=evidence&from=2024-03-01&to=2024-03-04").await;
    assert_eq!(st, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let text = String::from_utf8(body).unwrap();
    let report = trail_core::evidence::verify(text.lines(), None).unwrap();
    let archived_days =
        before.iter().filter(|e| e.timestamp < Timestamp::parse_bound("2024-03-05", false).unwrap()).count();
    assert_eq!(text.lines().count(), archived_days + 1);
    let _ = report;
    // The other organization's archive stays out of acme's download.
    assert!(got.iter().all(|e| e.org == "acme"));
}

#[tokio::test]
async fn scheduled_exports_are_mailed_and_written() {
    let smtp = Smtp::start();
    let s = start(100_000, Some(smtp.port)).await;
    // Now is 2024-03-29 05:00 UTC; the events are in March 2024.
    s.now.store(Timestamp::parse_rfc3339("2024-03-29T05:00:00Z").unwrap().0, Ordering::SeqCst);
    let body = json!({"name": "Failed logins", "cadence": "daily", "at": "06:00", "query": "category:auth result:FAILED period:90d",
        "format": "csv", "recipients": ["sec@acme.com", "ciso@acme.com"], "directory": "daily-auth"});
    let r = s
        .client
        .post(format!("{}/api/v1/schedules", s.base))
        .bearer_auth(&s.admin)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let sched: Value = r.json().await.unwrap();
    assert_eq!(sched["next_run"], "2024-03-29T06:00:00Z");
    // Bad schedules name the field.
    for (bad, field) in [
        (json!({"name": "x", "cadence": "hourly", "at": "06:00", "format": "csv", "recipients": ["a@b.c"]}), "cadence"),
        (json!({"name": "x", "cadence": "weekly", "at": "06:00", "format": "csv", "recipients": ["a@b.c"]}), "weekday"),
        (json!({"name": "x", "cadence": "daily", "at": "25:00", "format": "csv", "recipients": ["a@b.c"]}), "at"),
        (json!({"name": "x", "cadence": "daily", "at": "06:00", "format": "doc", "recipients": ["a@b.c"]}), "format"),
        (
            json!({"name": "x", "cadence": "daily", "at": "06:00", "format": "csv", "recipients": ["not mail"]}),
            "recipients",
        ),
        (json!({"name": "x", "cadence": "daily", "at": "06:00", "format": "csv", "directory": "../etc"}), "directory"),
        (
            json!({"name": "x", "cadence": "daily", "at": "06:00", "format": "csv", "query": "colour:red", "recipients": ["a@b.c"]}),
            "query",
        ),
    ] {
        let r = s
            .client
            .post(format!("{}/api/v1/schedules", s.base))
            .bearer_auth(&s.admin)
            .body(bad.to_string())
            .send()
            .await
            .unwrap();
        let st = r.status();
        let v: Value = r.json().await.unwrap();
        assert_eq!((st, v["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some(field)), "{v}");
    }
    let r = s
        .client
        .post(format!("{}/api/v1/schedules", s.base))
        .bearer_auth(&s.read)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "a read key cannot schedule");

    // The scheduler runs it once its time has come (each pass as the timer would).
    assert_eq!(trail_server::work::schedules::run_due(&s.state).await, 0, "not due yet");
    assert!(smtp.messages().is_empty());
    s.now.store(Timestamp::parse_rfc3339("2024-03-29T06:00:30Z").unwrap().0, Ordering::SeqCst);
    assert_eq!(trail_server::work::schedules::run_due(&s.state).await, 1);
    let mails = smtp.wait_for(2).await;
    let want = s.expected("category:auth result:FAILED period:90d").await;
    let mut to: Vec<String> = Vec::new();
    for (info, base) in &mails {
        assert_eq!(info["from"], "trail@example.com");
        assert!(info["subject"].as_str().unwrap().contains("Failed logins"));
        assert!(info["text"].as_str().unwrap().contains(&format!("Events: {}", want.len())));
        assert_eq!(info["attachments"][0]["name"], "Audit_Log_20240329.csv");
        let file = std::fs::read(format!("{}.Audit_Log_20240329.csv", base.display())).unwrap();
        let mut r = csv::Reader::from_reader(&file[..]);
        let ids: Vec<String> = r.records().map(|x| x.unwrap()[8].to_string()).collect();
        assert_eq!(ids, want.iter().map(|e| e.id.to_string()).collect::<Vec<_>>());
        to.extend(info["to"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()));
    }
    to.sort();
    assert_eq!(to, ["ciso@acme.com", "sec@acme.com"]);
    // Written to the directory too, and recorded.
    let written = s.dir.path().join("exports/acme/daily-auth/Audit_Log_20240329.csv");
    assert!(written.exists());
    let recorded =
        s.exports_recorded(|r| r.iter().any(|e| e.details.as_ref().unwrap()["schedule"] == "Failed logins")).await;
    let e = recorded.iter().find(|e| e.details.as_ref().unwrap()["schedule"] == "Failed logins").unwrap();
    assert_eq!(e.details.as_ref().unwrap()["rows"], want.len());
    assert_eq!(e.details.as_ref().unwrap()["emailed"], 2);
    // The next run is tomorrow; it does not run again today.
    assert_eq!(trail_server::work::schedules::run_due(&s.state).await, 0);
    assert_eq!(smtp.messages().len(), 2);
    let (_, _, b) = s.get(&s.admin, "/api/v1/schedules").await;
    let list: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(list["schedules"][0]["next_run"], "2024-03-30T06:00:00Z");
    assert_eq!(list["schedules"][0]["last_run"], "2024-03-29T06:00:30Z");
    // Run on demand, then delete.
    let id = sched["id"].as_i64().unwrap();
    let r = s.client.post(format!("{}/api/v1/schedules/{id}/run", s.base)).bearer_auth(&s.admin).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    smtp.wait_for(4).await;
    let r = s.client.delete(format!("{}/api/v1/schedules/{id}", s.base)).bearer_auth(&s.admin).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}
