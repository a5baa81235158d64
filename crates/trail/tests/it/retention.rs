//! Retention end to end with real processes and an injected clock (`--as-of`): events
//! over 400 days, a run killed between archiving and deleting, the next run, then the
//! store, the archive, downloads (CLI and HTTP), verification and evidence.

use crate::support::{self, run_ok, spawn_served, Served};

use std::{
    collections::{BTreeMap, HashSet},
    path::Path,
    process::Command,
};

use chrono::{Duration, NaiveTime, Utc};
use serde_json::{json, Value};

/// `trail` with the test's own configuration file.
fn trail(data: &Path) -> Command {
    let mut c = support::trail(data);
    c.arg("--config").arg(data.join("trail.toml"));
    c
}

/// Lines of a JSON Lines file.
fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap().lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
}

fn field(line: &str, name: &str) -> Value {
    serde_json::from_str::<Value>(line).unwrap()[name].clone()
}

/// (timestamp in µs, seq) of a stored event line: its time order.
fn order(line: &str) -> (i64, u64) {
    let v: Value = serde_json::from_str(line).unwrap();
    let t = chrono::DateTime::parse_from_rfc3339(v["timestamp"].as_str().unwrap()).unwrap();
    (t.timestamp_micros(), v["seq"].as_u64().unwrap())
}

/// Every archived leaf under `dir/org` (decompressed).
fn archived(dir: &Path, org: &str) -> Vec<String> {
    let mut out = Vec::new();
    let root = dir.join(org);
    if !root.exists() {
        return out;
    }
    for month in std::fs::read_dir(root).unwrap() {
        for f in std::fs::read_dir(month.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            if p.to_string_lossy().ends_with(".jsonl.zst") {
                let plain = zstd::decode_all(std::fs::File::open(&p).unwrap()).unwrap();
                out.extend(String::from_utf8(plain).unwrap().lines().map(str::to_string));
            }
        }
    }
    out
}

fn serve(data: &Path) -> Served {
    spawn_served(trail(data).args(["serve", "--listen", "127.0.0.1:0"]))
}

#[test]
fn retention_archives_then_deletes_and_everything_still_adds_up() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("trail.toml"),
        "[retention]\ndays = 90\nonline_days = 90\n[retention.categories]\nauth = 365\nvpn = 0\n",
    )
    .unwrap();
    // The injected clock: today at 00:00 UTC; events over the 400 days before it.
    let as_of = Utc::now().date_naive().and_time(NaiveTime::MIN).and_utc();
    let as_of_text = as_of.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let as_of_us = as_of.timestamp_micros();
    let cats = ["auth", "service", "user", "vpn", "secret"];
    let mut events = Vec::new();
    for day in 0..400i64 {
        for k in 0..3i64 {
            let i = day * 3 + k;
            let ts = as_of - Duration::days(day) - Duration::minutes(1 + 7 * k + (day % 50));
            events.push(json!({
                "timestamp": ts.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
                "action": format!("{}:update", cats[(i % 5) as usize]),
                "actor": {"id": format!("u{}", i % 7), "email": format!("user{}@acme.com", i % 7)},
                "details": {"token": format!("tok{i}x")},
                "before": {"n": i}, "after": {"n": i + 1},
            }));
        }
    }
    // Not in time order, as real senders deliver them.
    events.reverse();
    events.swap(10, 900);
    let file = d.join("events.ndjson");
    std::fs::write(&file, events.iter().map(|e| e.to_string() + "\n").collect::<String>()).unwrap();
    run_ok(trail(d).args(["keys", "create", "--org", "acme", "--scope", "read"]));
    run_ok(trail(d).args(["ingest", file.to_str().unwrap(), "--org", "acme"]));
    // globex: every event expires, so the newest rows go too.
    let old = (as_of - Duration::days(200)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    std::fs::write(
        d.join("globex.ndjson"),
        format!("{}\n", json!({"timestamp": old, "action": "service:deploy"})).repeat(5),
    )
    .unwrap();
    run_ok(trail(d).args(["keys", "create", "--org", "globex", "--scope", "read"]));
    run_ok(trail(d).args(["ingest", d.join("globex.ndjson").to_str().unwrap(), "--org", "globex"]));

    let before_path = d.join("before.jsonl");
    run_ok(trail(d).args(["export", "--format", "jsonl", "--org", "acme", "--out", before_path.to_str().unwrap()]));
    // The ingested events (self-audit events of the commands above are newer than as_of).
    let mut original: Vec<String> = lines(&before_path).into_iter().filter(|l| order(l).0 < as_of_us).collect();
    original.sort_by_key(|l| order(l));
    assert_eq!(original.len(), 1200);
    let expired_at = |l: &str| {
        let days = match field(l, "action").as_str().unwrap().split(':').next().unwrap() {
            "auth" => 365,
            "vpn" => return false,
            _ => 90,
        };
        order(l).0 < (as_of - Duration::days(days)).timestamp_micros()
    };
    let expired: HashSet<String> = original.iter().filter(|l| expired_at(l)).cloned().collect();
    assert!(expired.len() > 500 && expired.len() < 700, "{}", expired.len());

    // (e) A run killed between writing the archive and deleting the rows.
    let out = trail(d)
        .args(["retention", "run", "--as-of", &as_of_text])
        .env("TRAIL_FAILPOINT", "after-archive")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let archive = d.join("archive");
    assert!(!archived(&archive, "acme").is_empty(), "the archive was written before the crash");
    let online = d.join("online.jsonl");
    run_ok(trail(d).args(["export", "--format", "jsonl", "--org", "acme", "--out", online.to_str().unwrap()]));
    let still: HashSet<String> = lines(&online).into_iter().collect();
    assert!(original.iter().all(|l| still.contains(l)), "nothing was deleted by the killed run");

    // The next run cleans up and finishes the job.
    let report = run_ok(trail(d).args(["retention", "run", "--as-of", &as_of_text]));
    assert!(report.contains(&format!("acme: archived {} events", expired.len())), "{report}");
    assert!(report.contains("removed"), "{report}");
    assert!(report.contains("globex: archived 5 events"), "{report}");

    // (a) The expired rows are gone from the store; the rest is intact.
    run_ok(trail(d).args(["export", "--format", "jsonl", "--org", "acme", "--out", online.to_str().unwrap()]));
    let now_online: HashSet<String> = lines(&online).into_iter().filter(|l| order(l).0 < as_of_us).collect();
    let kept: HashSet<String> = original.iter().filter(|l| !expired.contains(*l)).cloned().collect();
    assert_eq!(now_online, kept);
    // ...and from the search index: an archived event's word finds nothing, a kept one's still does.
    let gone = expired.iter().next().unwrap();
    let kept_one = kept.iter().next().unwrap();
    let token = |l: &str| field(l, "details")["token"].as_str().unwrap().to_string();
    let found = |t: &str| run_ok(trail(d).args(["query", t, "--org", "acme", "--format", "jsonl"])).lines().count();
    assert_eq!(found(&token(gone)), 0);
    assert_eq!(found(&token(kept_one)), 1);

    // (b) The archive holds exactly the expired events, once each, with manifests.
    let in_archive = archived(&archive, "acme");
    assert_eq!(in_archive.len(), expired.len(), "no duplicates");
    assert_eq!(in_archive.iter().cloned().collect::<HashSet<_>>(), expired);
    let mut manifests = 0;
    for month in std::fs::read_dir(archive.join("acme")).unwrap() {
        for f in std::fs::read_dir(month.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            if p.to_string_lossy().ends_with(".manifest.json") {
                let m: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
                assert_eq!(m["format"], "trail-archive/1");
                assert!(m["count"].as_u64().unwrap() > 0);
                manifests += 1;
            }
        }
    }
    assert!(manifests >= 275, "one file per day at least: {manifests}");

    // (c) Downloading the whole span gives back the original events, byte for byte, in time order.
    let all = d.join("all.jsonl");
    let from = (as_of - Duration::days(401)).format("%Y-%m-%d").to_string();
    run_ok(trail(d).args([
        "download",
        "--org",
        "acme",
        "--format",
        "jsonl",
        "--from",
        &from,
        "--to",
        &as_of_text,
        "--out",
        all.to_str().unwrap(),
    ]));
    let downloaded: Vec<String> = lines(&all).into_iter().filter(|l| order(l).0 < as_of_us).collect();
    assert_eq!(downloaded, original);

    let out = trail(d).args(["download", "--format", "xlsx", "--out", all.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("csv or jsonl"));

    // (d) The organization's log verifies (archived entries from the archive)...
    assert!(run_ok(trail(d).args(["verify", "--org", "acme"])).contains("\nok: acme"));
    assert!(run_ok(trail(d).args(["verify", "--org", "globex"])).contains("\nok: globex"));
    // ...and so does an evidence file of archived events.
    let evidence = d.join("evidence.jsonl");
    let old_end = (as_of - Duration::days(100)).format("%Y-%m-%d").to_string();
    run_ok(trail(d).args([
        "export",
        "--format",
        "evidence",
        "--org",
        "acme",
        "--out",
        evidence.to_str().unwrap(),
        &format!("created:<={old_end}"),
    ]));
    let ev_lines = lines(&evidence);
    let old_end_us = (as_of - Duration::days(99)).timestamp_micros();
    let archived_then = original.iter().filter(|l| order(l).0 < old_end_us).count();
    assert_eq!(ev_lines.len(), archived_then + 1);
    assert!(run_ok(trail(d).args(["verify", evidence.to_str().unwrap()])).starts_with("ok"));

    // New events still get the next seq, even where every row was archived.
    std::fs::write(d.join("one.ndjson"), "{\"action\":\"service:deploy\"}\n").unwrap();
    run_ok(trail(d).args(["ingest", d.join("one.ndjson").to_str().unwrap(), "--org", "globex"]));
    let g = d.join("g.jsonl");
    run_ok(trail(d).args(["export", "--format", "jsonl", "--org", "globex", "--out", g.to_str().unwrap()]));
    let deploys: Vec<u64> =
        lines(&g).iter().filter(|l| field(l, "action") == "service:deploy").map(|l| order(l).1).collect();
    assert_eq!(deploys.len(), 1);
    assert!(deploys[0] > 5, "a new seq, not a reused one: {deploys:?}");
    assert!(run_ok(trail(d).args(["verify", "--org", "globex"])).contains("\nok: globex"));

    // Over HTTP: the window refuses old periods with a pointer to the download; the
    // download gives the same bytes as the command line; the run was recorded.
    let key = run_ok(trail(d).args(["keys", "create", "--org", "acme", "--scope", "read"])).trim().to_string();
    let server = serve(d);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = reqwest::Client::new();
    let get = |path: String| {
        let (http, key, base) = (http.clone(), key.clone(), server.base.clone());
        rt.block_on(async move {
            let r = http.get(format!("{base}{path}")).bearer_auth(&key).send().await.unwrap();
            let status = r.status().as_u16();
            let disposition =
                r.headers().get("content-disposition").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
            (status, disposition, r.text().await.unwrap())
        })
    };
    let (_, _, me) = get("/api/v1/auth/me".to_string());
    assert_eq!(serde_json::from_str::<Value>(&me).unwrap()["online_days"], 90, "{me}");
    let (status, _, text) = get(format!("/api/v1/events?from={from}"));
    assert_eq!(status, 400);
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["field"], "from");
    assert_eq!(body["error"]["code"], "beyond_online_window");
    assert!(body["error"]["message"].as_str().unwrap().contains("/api/v1/download"), "{body}");
    let (status, disposition, text) = get(format!("/api/v1/download?from={from}&to={as_of_text}&format=jsonl"));
    assert_eq!(status, 200, "{text}");
    assert!(disposition.contains("Audit_Log_"), "{disposition}");
    let over_http: Vec<&str> = text.lines().filter(|l| order(l).0 < as_of_us).collect();
    assert_eq!(over_http, original.iter().map(String::as_str).collect::<Vec<_>>());
    // Archived entries keep their proofs: by index, into the latest signed checkpoint.
    let archived = original[0].as_str();
    let seq0 = order(archived).1;
    let (status, _, text) = get(format!("/api/v1/proof/inclusion?index={seq0}"));
    assert_eq!(status, 200, "{text}");
    let p: Value = serde_json::from_str(&text).unwrap();
    let (_, _, cp) = get("/api/v1/checkpoint".to_string());
    let note = serde_json::from_str::<Value>(&cp).ok().and_then(|v| v["checkpoint"].as_str().map(String::from));
    let note = note.unwrap_or(cp);
    let root_line = note.lines().nth(2).unwrap();
    let b64 = |s: &str| base64::Engine::decode(&base64::engine::general_purpose::STANDARD, s).unwrap();
    let root: [u8; 32] = b64(root_line).try_into().unwrap();
    let proof: Vec<[u8; 32]> =
        p["proof"].as_array().unwrap().iter().map(|h| b64(h.as_str().unwrap()).try_into().unwrap()).collect();
    let size = p["size"].as_u64().unwrap();
    assert_eq!(note.lines().nth(1), Some(size.to_string().as_str()), "{note}");
    let leaf = trail_core::merkle::leaf_hash(archived.as_bytes());
    assert!(trail_core::merkle::verify_inclusion(seq0, size, &leaf, &proof, &root), "{text}");
    // CSV download: the header, then archived rows too.
    let (status, _, csv) = get(format!("/api/v1/download?from={from}&to={as_of_text}"));
    assert_eq!(status, 200);
    assert!(csv.starts_with("Date/Time (UTC),"), "{}", &csv[..80.min(csv.len())]);
    assert!(csv.contains(&token(gone)));
    let (_, _, text) = get("/api/v1/events?action=system:retention".to_string());
    let list: Value = serde_json::from_str(&text).unwrap();
    let runs = list["events"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{list}");
    assert_eq!(runs[0]["details"]["archived"], json!(expired.len()));
    let cats: BTreeMap<String, u64> = serde_json::from_value(runs[0]["details"]["categories"].clone()).unwrap();
    assert!(!cats.contains_key("vpn") && cats["auth"] > 0 && cats["service"] > 0, "{cats:?}");
    drop(server);

    // A changed archive byte is caught by verification.
    let any_file = std::fs::read_dir(archive.join("acme"))
        .unwrap()
        .flat_map(|m| std::fs::read_dir(m.unwrap().path()).unwrap())
        .map(|f| f.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".jsonl.zst"))
        .unwrap();
    let mut bytes = std::fs::read(&any_file).unwrap();
    let n = bytes.len() / 2;
    bytes[n] ^= 0x20;
    std::fs::write(&any_file, bytes).unwrap();
    let out = trail(d).args(["verify", "--org", "acme"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("archive"), "{}", String::from_utf8_lossy(&out.stderr));
    // A download that reaches the damaged file fails before sending a byte, with the
    // JSON error naming the file.
    let server = serve(d);
    let download = |base: String| {
        let (http, key, from, to) = (reqwest::Client::new(), key.clone(), from.clone(), as_of_text.clone());
        rt.block_on(async move {
            let r = http.get(format!("{base}/api/v1/download?from={from}&to={to}&format=jsonl"));
            let r = r.bearer_auth(&key).send().await.unwrap();
            let kind = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
            (r.status().as_u16(), kind, r.text().await.unwrap())
        })
    };
    let (status, kind, body) = download(server.base.clone());
    assert_eq!((status, kind.as_str()), (500, "application/json"), "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "damaged", "{body}");
    let name = any_file.strip_prefix(&archive).unwrap().to_string_lossy().to_string();
    assert!(body["error"]["message"].as_str().unwrap().contains(&name), "{body} names {name}");
    drop(server);

    // A forger who rewrites a file and its manifest consistently (here and in the
    // store) is caught by the leaf hashes the log recorded.
    let conn = rusqlite::Connection::open(d.join("trail.db")).unwrap();
    let manifest: String =
        conn.query_row("SELECT manifest FROM archives WHERE path = ?1", [&name], |r| r.get(0)).unwrap();
    let file: trail_store::archive::ArchiveFile = serde_json::from_str(&manifest).unwrap();
    // The file itself was damaged above: its events come from the export made before.
    let leaves: Vec<Vec<u8>> = original
        .iter()
        .filter(|l| expired.contains(*l) && field(l, "timestamp").as_str().unwrap().starts_with(&file.day))
        .filter(|l| (file.first_seq..=file.last_seq).contains(&field(l, "seq").as_u64().unwrap()))
        .map(|l| l.as_bytes().to_vec())
        .collect();
    assert_eq!(leaves.len() as u64, file.count);
    let forged: Vec<trail_store::archive::Expired> = leaves
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let e = trail_core::Event::from_leaf(l).unwrap();
            let mut text = String::from_utf8(l.clone()).unwrap();
            if i == 0 {
                text = text.replacen("\"action\":\"", "\"action\":\"x", 1);
            }
            trail_store::archive::Expired {
                seq: e.seq,
                ts: e.timestamp.0,
                category: e.category().into(),
                leaf: text.into_bytes(),
            }
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let rewritten = rt
        .block_on(trail_store::archive::Archive::new(&archive).write(
            "acme",
            &file.day,
            &forged,
            trail_core::Timestamp(0),
        ))
        .unwrap();
    assert_eq!(rewritten.path, file.path);
    conn.execute(
        "UPDATE archives SET manifest = ?1 WHERE path = ?2",
        [&serde_json::to_string(&rewritten).unwrap(), &name],
    )
    .unwrap();
    drop(conn);
    let server = serve(d);
    let (status, _, body) = download(server.base.clone());
    assert_eq!(status, 500, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("leaf hash"), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains(&name), "{body}");
    drop(server);
}

/// `trail holds`: placed on an organization with a reason, listed, kept by `trail
/// retention run`, released with a reason; bad input refused with the field named.
#[test]
fn legal_holds_from_the_command_line_keep_events_past_retention() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("trail.toml"), "[retention]\ndays = 90\n").unwrap();
    let old = (Utc::now() - chrono::Duration::days(200)).to_rfc3339();
    let events: Vec<Value> =
        (0..4).map(|i| json!({"action": "doc:update", "timestamp": old, "request_id": format!("r{i}")})).collect();
    let file = d.join("old.json");
    std::fs::write(&file, Value::Array(events).to_string()).unwrap();
    run_ok(trail(d).args(["keys", "create", "--org", "acme", "--scope", "ingest"]));
    run_ok(trail(d).args(["ingest", file.to_str().unwrap(), "--org", "acme"]));
    let placed = run_ok(trail(d).args(["holds", "place", "--org", "acme", "--reason", "subpoena 7"]));
    assert!(placed.starts_with("placed legal hold 1 on acme (every event)"), "{placed}");
    let err = crate::cli::run_err(trail(d).args(["holds", "place", "--org", "acme", "--reason", " "]));
    assert!(err.contains("reason"), "{err}");
    let err = crate::cli::run_err(trail(d).args([
        "holds",
        "place",
        "--org",
        "acme",
        "--query",
        "created:>=x",
        "--reason",
        "r",
    ]));
    assert!(err.contains("query"), "{err}");
    let err = crate::cli::run_err(trail(d).args(["holds", "place", "--org", "nobody", "--reason", "r"]));
    assert!(err.contains("nobody"), "{err}");
    let list = run_ok(trail(d).args(["holds", "list", "--org", "acme"]));
    assert!(list.contains("every event") && list.contains("subpoena 7") && list.contains("[active]"), "{list}");
    let kept = run_ok(trail(d).args(["retention", "run"]));
    assert!(!kept.contains("acme: archived 4"), "{kept}");
    let q = run_ok(trail(d).args(["query", "--org", "acme", "--format", "jsonl", "action:doc:update"]));
    assert_eq!(q.lines().count(), 4, "held events stay online: {q}");
    run_ok(trail(d).args(["holds", "release", "--org", "acme", "--id", "1", "--reason", "case closed"]));
    let err =
        crate::cli::run_err(trail(d).args(["holds", "release", "--org", "acme", "--id", "1", "--reason", "again"]));
    assert!(err.contains("no active legal hold 1"), "{err}");
    let list = run_ok(trail(d).args(["holds", "list", "--org", "acme"]));
    assert!(list.contains("released") && list.contains("case closed"), "{list}");
    run_ok(trail(d).args(["retention", "run"]));
    let q = run_ok(trail(d).args(["query", "--org", "acme", "--format", "jsonl", "action:doc:update"]));
    assert_eq!(q.lines().count(), 0, "released: archived and deleted: {q}");
    let placed = run_ok(trail(d).args(["query", "--org", "acme", "--format", "jsonl", "action:hold:place"]));
    let released = run_ok(trail(d).args(["query", "--org", "acme", "--format", "jsonl", "action:hold:release"]));
    assert!(placed.contains("subpoena 7") && released.contains("case closed"), "{placed} {released}");
}
