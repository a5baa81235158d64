//! Trail on PostgreSQL as it is deployed: real `trail serve` processes sharing one
//! database of a throwaway PostgreSQL 15 cluster (started by the test as the
//! `postgres` user, in a temporary directory, on a loopback port, and stopped after).

use crate::support::{self, run_ok, spawn_served, Served};

use std::{
    path::Path,
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use trail_store::{testing::Cluster, EventLog};

/// `trail` on the PostgreSQL database at `url`.
fn trail(data: &Path, url: &str) -> Command {
    let mut c = support::trail(data);
    c.arg("--database").arg(url);
    c
}

fn serve(data: &Path, url: &str) -> Served {
    // The migrated events are from 2024: no online window.
    spawn_served(trail(data, url).args(["serve", "--listen", "127.0.0.1:0"]).env("TRAIL_ONLINE_DAYS", "0"))
}

/// Two servers, eight clients ingesting into two organizations through both, one
/// server killed and restarted mid-ingest: every acknowledged event is stored once,
/// the logs verify, and the live view of one server shows what the other ingested.
#[test]
fn two_servers_share_one_database() {
    let url = Cluster::shared().database();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = |org: &str, scope: &str| {
        run_ok(trail(d, &url).args(["keys", "create", "--org", org, "--scope", scope])).trim().to_string()
    };
    let (acme, globex, platform) = (key("acme", "ingest"), key("globex", "ingest"), key("acme", "platform"));
    let a = serve(d, &url);
    let b = serve(d, &url);
    let bases = Arc::new(Mutex::new(vec![a.base.clone(), b.base.clone()]));
    let a = Arc::new(Mutex::new(a));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let acked: Arc<Mutex<Vec<(String, u64, String)>>> = Arc::default();
    rt.block_on(async {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap();
        // Live view across instances: a viewer on B sees an event ingested through A.
        let mut sse = client
            .get(format!("{}/api/v1/events/stream?request_id=cross-1", b.base))
            .bearer_auth(&platform)
            .send()
            .await
            .unwrap();
        // B subscribed before it sent the response head, and listens to the database
        // since it started.
        assert_eq!(sse.status(), 200);
        let r = client
            .post(format!("{}/api/v1/events", a.lock().unwrap().base))
            .bearer_auth(&acme)
            .json(&json!({"action": "service:deploy", "request_id": "cross-1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let got = tokio::time::timeout(Duration::from_secs(60), async {
            let mut text = String::new();
            while let Some(chunk) = sse.chunk().await.unwrap() {
                text.push_str(&String::from_utf8_lossy(&chunk));
                if text.contains("cross-1") {
                    return text;
                }
            }
            text
        })
        .await
        .expect("the event ingested through A reached B's live view");
        assert!(got.contains("event: event") && got.contains("cross-1"), "{got}");
        drop(sse);

        let mut tasks = Vec::new();
        for c in 0..8usize {
            let (client, bases, acked) = (client.clone(), bases.clone(), acked.clone());
            let (org, key) = if c % 2 == 0 { ("acme", acme.clone()) } else { ("globex", globex.clone()) };
            tasks.push(tokio::spawn(async move {
                for r in 0..25usize {
                    let base = bases.lock().unwrap()[(c / 2) % 2].clone();
                    let body: Vec<Value> = (0..(1 + (c + r) % 12))
                        .map(|i| json!({"action": "service:deploy", "request_id": format!("c{c}-r{r}-i{i}")}))
                        .collect();
                    let resp = client.post(format!("{base}/api/v1/events")).bearer_auth(&key).json(&body).send().await;
                    let Ok(resp) = resp else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    if resp.status() != 200 {
                        continue;
                    }
                    let v: Value = resp.json().await.unwrap();
                    for e in v["events"].as_array().unwrap() {
                        acked.lock().unwrap().push((
                            org.to_string(),
                            e["seq"].as_u64().unwrap(),
                            e["id"].as_str().unwrap().to_string(),
                        ));
                    }
                }
            }));
        }
        // Kill A mid-ingest (once some appends are acknowledged) and start it again on a
        // new port.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while acked.lock().unwrap().len() < 40 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        {
            let mut a = a.lock().unwrap();
            let _ = a.child.kill();
            let _ = a.child.wait();
        }
        let restarted = serve(d, &url);
        bases.lock().unwrap()[0] = restarted.base.clone();
        *a.lock().unwrap() = restarted;
        for t in tasks {
            t.await.unwrap();
        }
    });
    drop(a);
    drop(b);
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 300, "{} events acknowledged", acked.len());
    // Every acknowledged event is stored, once, at its seq; the logs verify.
    let stored = rt.block_on(async {
        let store = trail_store::postgres::PgStore::open(&url, None).await.unwrap();
        let mut out = std::collections::HashMap::new();
        for org in ["acme", "globex"] {
            let rows = store.scan(org, 0, 1_000_000).await.unwrap();
            for (seq, leaf) in rows {
                let e = trail_core::Event::from_leaf(&leaf).unwrap();
                assert!(out.insert(e.id.to_string(), (org.to_string(), seq)).is_none(), "stored twice");
            }
        }
        out
    });
    for (org, seq, id) in &acked {
        assert_eq!(stored.get(id), Some(&(org.clone(), *seq)), "acknowledged event {id} is stored at {org}/{seq}");
    }
    for org in ["acme", "globex"] {
        let out = run_ok(trail(d, &url).args(["verify", "--org", org]));
        assert!(out.contains(&format!("\nok: {org}:")), "{out}");
    }
}

/// When the database goes away, requests get 503 (not a hang, not a panic); when it
/// comes back, the same server works again.
#[test]
fn database_loss_is_503_and_recovers() {
    let cluster = Cluster::start().unwrap();
    let url = cluster.database();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = run_ok(trail(d, &url).args(["keys", "create", "--org", "acme", "--scope", "admin"])).trim().to_string();
    let server = serve(d, &url);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _guard = rt.enter();
    // A hang would end in the client's timeout, an error rather than a status.
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let post = |i: usize| {
        let start = Instant::now();
        let r = rt.block_on(
            client
                .post(format!("{}/api/v1/events", server.base))
                .bearer_auth(&key)
                .json(&json!({"action": "service:deploy", "request_id": format!("r{i}")}))
                .send(),
        );
        (r.map(|r| r.status().as_u16().to_string()).unwrap_or_else(|e| e.to_string()), start.elapsed())
    };
    assert_eq!(post(0).0, "200");
    cluster.stop();
    let (status, _) = post(1);
    assert_eq!(status, "503", "a lost database is a 503");
    cluster.restart();
    let mut ok = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut i = 10;
    while Instant::now() < deadline {
        i += 1;
        if post(i).0 == "200" {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(ok, "the server recovers when the database is back");
    drop(server);
}

/// `trail migrate-store` copies an embedded store into PostgreSQL: the same entries
/// (byte for byte), checkpoints whose roots match, users and keys that still work.
#[test]
fn an_embedded_store_moves_to_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sqlite = format!("sqlite:{}", d.join("trail.db").display());
    let local = |args: &[&str]| run_ok(trail(d, &sqlite).args(args));
    let read = local(&["keys", "create", "--org", "acme", "--scope", "read"]).trim().to_string();
    let file = d.join("events.ndjson");
    let lines: Vec<String> = (0..300)
        .map(|i| {
            json!({"action": "service:deploy", "request_id": format!("r{i}"), "details": {"n": i},
            "timestamp": format!("2024-{:02}-10T10:00:00Z", 1 + i % 12)})
            .to_string()
        })
        .collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    local(&["ingest", file.to_str().unwrap(), "--org", "acme"]);
    local(&["users", "create", "--org", "acme", "--email", "ann@acme.com", "--name", "Ann", "--role", "auditor"]);
    // Alerting and streaming settings, which the copy carries too.
    local(&["alerts", "set-rule", "--org", "acme", "--name", "failed_logins", "--threshold", "7"]);
    // A stream to a loopback port (allowed by this config), paused so that no server
    // drives it.
    let config = d.join("streams.toml");
    std::fs::write(&config, "[streams]\nallow_private_destinations = true\n").unwrap();
    let stream = ["--name", "siem", "--kind", "syslog", "--address", "127.0.0.1:9"];
    local(&[&["streams", "create", "--org", "acme", "--config", config.to_str().unwrap()][..], &stream].concat());
    local(&["streams", "pause", "--org", "acme", "1"]);
    // Retention as of 2024-09-01 (90 days): January to May go to the archive.
    let out = local(&["retention", "run", "--as-of", "2024-09-01"]);
    assert!(out.contains("acme: archived 125 events"), "{out}");
    let download = |db: &str| {
        let out = d.join("download.jsonl");
        run_ok(trail(d, db).args(["download", "--format", "jsonl", "--org", "acme", "--out", out.to_str().unwrap()]));
        std::fs::read_to_string(&out).unwrap()
    };
    let everything = download(&sqlite);
    assert_eq!(everything.lines().filter(|l| l.contains("service:deploy")).count(), 300);
    let before = local(&["query", "--format", "jsonl", "--limit", "1000"]);

    let url = Cluster::shared().database();
    let out = run_ok(trail(d, &sqlite).args(["migrate-store", "--from", &sqlite, "--to", &url]));
    assert!(out.contains("acme: 307 entries"), "{out}");
    assert!(out.contains("copied 1 users and 1 API keys, 1 alert rules, 0 alert destinations and 1 streams"), "{out}");
    let pg = |args: &[&str]| run_ok(trail(d, &url).args(args));
    assert_eq!(pg(&["query", "--format", "jsonl", "--limit", "1000"]), before, "the same entries, byte for byte");
    assert!(pg(&["verify", "--org", "acme"]).contains("\nok: acme:"));
    // Archived entries came along (as leaf hashes and archive records): the download from
    // PostgreSQL merges the same archive with the copied rows.
    let deploys = |text: &str| -> Vec<String> {
        text.lines().filter(|l| l.contains("service:deploy")).map(String::from).collect()
    };
    assert_eq!(deploys(&download(&url)), deploys(&everything));
    // Retention on PostgreSQL: June and July expire as of 2024-10-15.
    let out = pg(&["retention", "run", "--as-of", "2024-10-15"]);
    assert!(out.contains("acme: archived 50 events"), "{out}");
    assert!(pg(&["verify", "--org", "acme"]).contains("\nok: acme:"));
    assert_eq!(deploys(&download(&url)), deploys(&everything), "archive and store still hold every event once");
    assert!(pg(&["users", "list"]).contains("ann@acme.com"));
    let rules = pg(&["alerts", "rules", "--org", "acme"]);
    assert!(rules.lines().any(|l| l.starts_with("failed_logins") && l.contains(" 7 ")), "{rules}");
    let streams = pg(&["streams", "list", "--org", "acme"]);
    assert!(streams.contains("siem") && streams.contains("127.0.0.1:9") && streams.contains("paused"), "{streams}");
    // The copied key works against a server on PostgreSQL.
    let server = serve(d, &url);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let total = rt.block_on(async {
        let r = reqwest::Client::new()
            .get(format!("{}/api/v1/events?request_id=r7", server.base))
            .bearer_auth(&read)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()["events"].as_array().unwrap().len()
    });
    assert_eq!(total, 1);
    // A second copy into a database that already holds events is refused.
    let out = trail(d, &sqlite).args(["migrate-store", "--from", &sqlite, "--to", &url]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("empty"));
}
