//! The `trail` binary as a user runs it: real processes, a real store on disk, real
//! HTTP; including a crash test that kills the server with SIGKILL mid-ingest.

use crate::support::{run_ok, snapshot, spawn_served, trail, Served};

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::{json, Value};

pub(crate) fn run_err(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "expected failure: {}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("trail: ") || err.starts_with("error:"), "{err}");
    err
}

fn new_key(data: &Path, org: &str, scope: &str) -> String {
    run_ok(trail(data).args(["keys", "create", "--org", org, "--scope", scope])).trim().to_string()
}

/// A running `trail serve` on an ephemeral port.
fn serve(data: &Path, extra: &[&str]) -> Served {
    spawn_served(trail(data).args(["serve", "--listen", "127.0.0.1:0"]).args(extra))
}

#[test]
fn keys_ingest_and_query_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = new_key(d, "acme", "ingest");
    assert!(key.starts_with("trail_in_"), "{key}");
    let file = d.join("events.ndjson");
    std::fs::write(
        &file,
        "{\"action\":\"auth.login\",\"result\":\"failure\",\"actor\":{\"name\":\"John\",\"email\":\"john@acme.com\"},\"source_ip\":\"10.0.0.9\"}\n\
         {\"action\":\"service:deploy\",\"actor\":{\"email\":\"sarah@acme.com\"}}\n",
    )
    .unwrap();
    let out = run_ok(trail(d).args(["ingest", file.to_str().unwrap(), "--org", "acme"]));
    assert!(out.contains("ingested 2 events into acme"), "{out}");
    let table = run_ok(trail(d).args(["query", "category:auth", "result:FAILED"]));
    assert!(table.contains("Date/Time") && table.contains("john@acme.com") && table.contains("FAILED"), "{table}");
    assert!(!table.contains("sarah@"), "{table}");
    let jsonl = run_ok(trail(d).args(["query", "--format", "jsonl", "actor:sarah@"]));
    let ev: Value = serde_json::from_str(jsonl.trim()).unwrap();
    // seq 0 is the key's creation, recorded by `keys create`.
    assert_eq!((ev["action"].as_str(), ev["seq"].as_u64()), (Some("service:deploy"), Some(2)));

    assert!(run_err(trail(d).args(["keys", "create", "--org", "acme", "--scope", "root"])).contains("--scope"));
    assert!(run_err(trail(d).args(["keys", "create", "--org", "Bad Org", "--scope", "read"])).contains("--org"));
    assert!(run_err(trail(d).args(["query", "colour:red"])).contains("unknown filter"));
    assert!(run_err(trail(d).args(["ingest", "/nonexistent.json", "--org", "acme"])).contains("cannot read"));
    std::fs::write(&file, "{\"action\":\"nope\"}").unwrap();
    assert!(run_err(trail(d).args(["ingest", file.to_str().unwrap(), "--org", "acme"])).contains("action"));
    assert!(run_err(trail(d).args(["ingest", "-", "--org", "acme"]).stdin(Stdio::null())).contains("body"));
    assert!(run_err(trail(d).args(["--database", "mysql://x", "query"])).contains("unsupported"));
}

/// Commands say what they did: an unknown organization is named and fails every
/// command that takes one; a log written to a pipe has no colour codes; `import
/// --help` names every format.
#[test]
fn commands_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    new_key(d, "acme", "read");
    let out = tempfile::NamedTempFile::new().unwrap();
    let out = out.path().to_str().unwrap();
    for cmd in [
        &["query", "--org", "nope"][..],
        &["query", "--org", "nope", "--format", "jsonl", "category:auth"],
        &["alerts", "rules", "--org", "nope"],
        &["alerts", "destinations", "--org", "nope"],
        &["alerts", "deliveries", "--org", "nope"],
        &["streams", "list", "--org", "nope"],
        &["users", "list", "--org", "nope"],
        &["keys", "list", "--org", "nope"],
        &["export", "--org", "nope", "--format", "csv", "--out", out],
        &["verify", "--org", "nope"],
        &["repair", "--org", "nope"],
        &["download", "--org", "nope", "--out", out],
        &["import", "--format", "k8s", "--org", "nope", out],
        &["ingest", "-", "--org", "nope"],
    ] {
        let err = run_err(trail(d).args(cmd).stdin(Stdio::null()));
        assert!(err.contains("'nope'"), "{cmd:?}: {err}");
    }
    // A log to a pipe is plain text.
    let fresh = tempfile::tempdir().unwrap();
    let logged = trail(fresh.path()).args(["keys", "list"]).env("TRAIL_LOG", "info").output().unwrap();
    let log = String::from_utf8(logged.stderr).unwrap();
    assert!(log.contains("applied sqlite migration"), "{log}");
    assert!(!log.contains('\u{1b}'), "no ANSI codes in a piped log: {log:?}");
    let help = run_ok(trail(d).args(["import", "--help"]));
    for format in trail_server::work::import::Format::NAMES {
        assert!(help.contains(format), "import --help names {format}: {help}");
    }
}

#[test]
fn serve_demo_prints_a_working_read_key() {
    let dir = tempfile::tempdir().unwrap();
    // A demo server, its URL, and the last word of each line it prints after that.
    let demo = || {
        let mut child = trail(dir.path())
            .args(["serve", "--listen", "127.0.0.1:0", "--demo"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines().map(Result::unwrap);
        let base = lines.next().unwrap().replace("Trail is running at ", "");
        (child, base, lines)
    };
    let last_word = |line: Option<String>| line.unwrap().rsplit(' ').next().unwrap().to_string();
    let (mut child, base, mut lines) = demo();
    let read = last_word(lines.next());
    let platform = last_word(lines.next());
    let client = reqwest::blocking_get(&base, &read, "/api/v1/facets");
    assert!(client["total"].as_u64().unwrap() > 10_000, "{client}");
    let all = reqwest::blocking_get(&base, &platform, "/api/v1/facets");
    assert!(all["total"].as_u64().unwrap() >= 20_000);
    assert_eq!(all["companies"].as_array().unwrap().len(), 3);
    let cats: Vec<&str> = all["categories"].as_array().unwrap().iter().map(|c| c["value"].as_str().unwrap()).collect();
    for c in ["auth", "service", "device", "secret", "db_backup", "webhook"] {
        assert!(cats.contains(&c), "{c}");
    }
    assert_eq!(all["results"].as_array().unwrap().len(), 4);
    let failed = reqwest::blocking_get(&base, &read, "/api/v1/events?category=auth&result=FAILED&period=90d&limit=5");
    assert_eq!(failed["events"].as_array().unwrap().len(), 5);
    let _ = child.kill();
    let _ = child.wait();
    // A second start prints fresh keys and revokes the first ones.
    let (mut child, base, mut lines) = demo();
    let again = last_word(lines.next());
    lines.next();
    assert_eq!(lines.next().as_deref(), Some("(the 2 keys printed by the previous demo start are revoked)"));
    assert!(reqwest::blocking_get(&base, &again, "/api/v1/facets")["total"].as_u64().unwrap() > 10_000);
    assert_eq!(reqwest::blocking_status(&base, &read, "/api/v1/facets"), 401);
    assert_eq!(reqwest::blocking_status(&base, &platform, "/api/v1/facets"), 401);
    let _ = child.kill();
    let _ = child.wait();
}

/// Tiny blocking helpers over reqwest's async client, for tests that drive processes.
mod reqwest {
    pub use ::reqwest::*;

    pub fn blocking_get(base: &str, key: &str, path: &str) -> serde_json::Value {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let r = Client::new().get(format!("{base}{path}")).bearer_auth(key).send().await.unwrap();
            assert!(r.status().is_success(), "{path}: {}", r.status());
            r.json().await.unwrap()
        })
    }

    pub fn blocking_status(base: &str, key: &str, path: &str) -> u16 {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            Client::new().get(format!("{base}{path}")).bearer_auth(key).send().await.unwrap().status().as_u16()
        })
    }
}

/// Kills a real server with SIGKILL while 8 clients ingest, restarts it, and checks
/// that every acknowledged event is present and intact, with contiguous seqs.
#[test]
fn acknowledged_events_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ingest = new_key(d, "acme", "ingest");
    let read = new_key(d, "acme", "read");
    let mut server = serve(d, &[]);
    let acked: Arc<Mutex<Vec<(String, u64, String)>>> = Arc::default();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let client = ::reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
        let mut tasks = Vec::new();
        for c in 0..8 {
            let (client, base, key, acked) = (client.clone(), server.base.clone(), ingest.clone(), acked.clone());
            tasks.push(tokio::spawn(async move {
                for r in 0.. {
                    let body: Vec<Value> = (0..(1 + (c + r) % 20))
                        .map(|i| {
                            json!({"action": "service:deploy", "request_id": format!("c{c}-r{r}-i{i}"),
                            "details": {"client": c, "round": r, "pad": "x".repeat(300)}})
                        })
                        .collect();
                    let resp = client.post(format!("{base}/api/v1/events")).bearer_auth(&key).json(&body).send().await;
                    let Ok(resp) = resp else { return };
                    if !resp.status().is_success() {
                        return;
                    }
                    let Ok(v) = resp.json::<Value>().await else { return };
                    let mut a = acked.lock().unwrap();
                    for (e, ev) in v["events"].as_array().unwrap().iter().zip(&body) {
                        a.push((
                            e["id"].as_str().unwrap().into(),
                            e["seq"].as_u64().unwrap(),
                            ev["request_id"].as_str().unwrap().into(),
                        ));
                    }
                }
            }));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked.lock().unwrap().len() < 3000 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.child.kill().unwrap(); // SIGKILL
        server.child.wait().unwrap();
        for t in tasks {
            let _ = t.await;
        }
    });
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 3000, "only {} events acknowledged", acked.len());
    drop(server);

    let server = serve(d, &[]);
    let stored: Vec<Value> = rt.block_on(async {
        let client = ::reqwest::Client::new();
        let mut out = Vec::new();
        let mut path = "/api/v1/events?sort=seq&limit=1000".to_string();
        loop {
            let v: Value = client
                .get(format!("{}{path}", server.base))
                .bearer_auth(&read)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            out.extend(v["events"].as_array().unwrap().iter().cloned());
            match v["next_cursor"].as_str() {
                Some(c) => path = format!("/api/v1/events?sort=seq&limit=1000&cursor={c}"),
                None => return out,
            }
        }
    });
    let seqs: Vec<u64> = stored.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (0..stored.len() as u64).collect::<Vec<_>>(), "seqs must be contiguous");
    assert!(stored.len() >= acked.len());
    for (id, seq, req) in &acked {
        let e = &stored[*seq as usize];
        assert_eq!(e["id"].as_str(), Some(id.as_str()), "acknowledged event at seq {seq} lost");
        assert_eq!(e["request_id"].as_str(), Some(req.as_str()));
        assert_eq!(e["details"]["pad"].as_str().map(str::len), Some(300));
    }
}

/// Makes a data dir whose `acme` log holds 21 signed entries (the ingest key's creation,
/// then 20 deployments), checks it verifies, and
/// returns it with the verifier key printed by `trail keys verifier`.
pub(crate) fn signed_log() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    new_key(d, "acme", "ingest");
    let file = d.join("events.ndjson");
    let lines: Vec<String> = (0..20)
        .map(|i| json!({"action": "service:deploy", "request_id": format!("r{i}"), "details": {"n": i}}).to_string())
        .collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    run_ok(trail(d).args(["ingest", file.to_str().unwrap(), "--org", "acme"]));
    let vkey = run_ok(trail(d).args(["keys", "verifier", "--org", "acme"])).trim().to_string();
    assert!(vkey.starts_with("trail.local/acme+"), "{vkey}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("signing.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the signing key must be private");
    }
    let ok = run_ok(trail(d).args(["verify", "--org", "acme"]));
    assert!(ok.contains("21 entries"), "{ok}");
    (dir, vkey)
}

fn tamper(edit: &str, want: &str) {
    let (dir, vkey) = signed_log();
    let conn = rusqlite::Connection::open(dir.path().join("trail.db")).unwrap();
    conn.execute_batch(edit).unwrap();
    drop(conn);
    let err = run_err(trail(dir.path()).args(["verify", "--org", "acme", "--key", &vkey]));
    assert!(err.contains(want), "after {edit:?}: {err}");
}

#[test]
fn verify_names_the_first_tampered_entry() {
    tamper(
        "UPDATE leaves SET leaf = CAST(replace(CAST(leaf AS TEXT), 'deploy', 'deplOy') AS BLOB) WHERE seq = 7",
        "entry 7 (id",
    );
    tamper("DELETE FROM leaves WHERE seq = 4", "entry 4 (id");
    tamper("DELETE FROM events WHERE seq = 6", "entry 6 (id");
    tamper(
        "CREATE TEMP TABLE t AS SELECT seq, leaf FROM leaves WHERE seq IN (2, 3);
         UPDATE leaves SET leaf = (SELECT leaf FROM t WHERE t.seq = 5 - leaves.seq) WHERE seq IN (2, 3);",
        "entry 2 (id",
    );
    tamper("DELETE FROM leaves WHERE seq >= 15", "entry 15 (id");
    tamper(
        "DELETE FROM events WHERE seq >= 15; DELETE FROM leaves WHERE seq >= 15;
         DELETE FROM tree_nodes WHERE level = 0 AND idx >= 15;",
        "covers 21 entries: entries from 15 on are missing",
    );
    // Only the size line: the root and signature may contain the same digits.
    tamper(
        "UPDATE checkpoints SET note = replace(note, char(10) || '21' || char(10), char(10) || '22' || char(10))",
        "checkpoint of size 21",
    );
}

/// A log cut short together with its tree nodes and checkpoints looks whole from the
/// inside; a checkpoint saved outside Trail catches it.
#[test]
fn a_saved_checkpoint_catches_a_cut_log() {
    let (dir, vkey) = signed_log();
    let d = dir.path();
    let conn = rusqlite::Connection::open(d.join("trail.db")).unwrap();
    let note: String =
        conn.query_row("SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1", [], |r| r.get(0)).unwrap();
    let saved = d.join("auditor.checkpoint");
    std::fs::write(&saved, &note).unwrap();
    let ok = run_ok(trail(d).args(["verify", "--org", "acme", "--checkpoint", saved.to_str().unwrap()]));
    assert!(ok.contains("\nok: acme: 21 entries"), "{ok}");
    assert!(ok.contains("own key trail.local/acme+"), "the ok line names the key: {ok}");
    let named = format!("and the saved checkpoint {} (size 21)", saved.display());
    assert!(ok.contains(&named), "the ok line names the checkpoint: {ok}");
    conn.execute_batch(
        "DELETE FROM events WHERE seq >= 15; DELETE FROM leaves WHERE seq >= 15;
         DELETE FROM tree_nodes WHERE ((idx + 1) << level) > 15; DELETE FROM checkpoints WHERE size > 15;",
    )
    .unwrap();
    drop(conn);
    // Verify signs nothing. The cut left traces in what is derived from the rows (the
    // search index and the per-day counts still hold the removed events), and after
    // the grace period the entries past the first checkpoint are unproven.
    let err = run_err(trail(d).args(["verify", "--org", "acme", "--key", &vkey, "--grace", "0"]));
    assert!(err.contains("the search index holds a document of acme"), "{err}");
    assert!(err.contains("stored 20, the events say 14"), "{err}");
    assert!(err.contains("entries 1 to 14 are covered by no signed checkpoint"), "{err}");
    // A careful insider rebuilds those (the cut log itself is consistent, so repair
    // runs), and opening the store signs the cut log: from the inside it is whole.
    run_ok(trail(d).args(["repair", "--org", "acme"]));
    let ok = run_ok(trail(d).args(["verify", "--org", "acme", "--key", &vkey]));
    assert!(ok.contains("checked against the key trail.local/acme+"), "the ok line names the key: {ok}");
    let err =
        run_err(trail(d).args(["verify", "--org", "acme", "--key", &vkey, "--checkpoint", saved.to_str().unwrap()]));
    assert!(err.contains("the saved checkpoint covers 21 entries but the log has 16"), "{err}");
    let err = run_err(trail(d).args(["verify", "--org", "acme", "--checkpoint", "/nonexistent"]));
    assert!(err.contains("cannot read checkpoint"), "{err}");
}

/// An attacker who rewrites an entry and its recorded leaf hash is caught by the
/// signed tree head.
#[test]
fn verify_catches_a_rewritten_leaf_hash() {
    let (dir, vkey) = signed_log();
    let conn = rusqlite::Connection::open(dir.path().join("trail.db")).unwrap();
    let leaf: Vec<u8> = conn.query_row("SELECT leaf FROM leaves WHERE seq = 9", [], |r| r.get(0)).unwrap();
    let forged = String::from_utf8(leaf).unwrap().replace("\"n\":8", "\"n\":99").into_bytes();
    let hash = trail_core::merkle::leaf_hash(&forged);
    conn.execute("UPDATE leaves SET leaf = ?1 WHERE seq = 9", [&forged]).unwrap();
    conn.execute("UPDATE tree_nodes SET hash = ?1 WHERE level = 0 AND idx = 9", [&hash[..]]).unwrap();
    drop(conn);
    let err = run_err(trail(dir.path()).args(["verify", "--org", "acme", "--key", &vkey]));
    assert!(err.contains("recomputed root differs"), "{err}");
}

/// Replacing the signing key (and re-signing) does not fool a verifier holding the
/// published key.
#[test]
fn verify_catches_a_replaced_signing_key() {
    let (dir, vkey) = signed_log();
    let d = dir.path();
    std::fs::write(d.join("signing.key"), format!("{}\n", "ab".repeat(32))).unwrap();
    let conn = rusqlite::Connection::open(d.join("trail.db")).unwrap();
    conn.execute("DELETE FROM checkpoints", []).unwrap();
    drop(conn);
    let file = d.join("more.ndjson");
    std::fs::write(&file, json!({"action": "auth:login"}).to_string()).unwrap();
    run_ok(trail(d).args(["ingest", file.to_str().unwrap(), "--org", "acme"]));
    // With the new key, everything looks fine...
    run_ok(trail(d).args(["verify", "--org", "acme"]));
    // ...but not with the key published before.
    let err = run_err(trail(d).args(["verify", "--org", "acme", "--key", &vkey]));
    assert!(err.contains("no signature by key"), "{err}");
}

#[test]
fn evidence_files_verify_offline_and_edits_fail() {
    let (dir, vkey) = signed_log();
    let d = dir.path();
    let out = d.join("evidence.jsonl");
    let msg = run_ok(trail(d).args([
        "export",
        "--format",
        "evidence",
        "--out",
        out.to_str().unwrap(),
        "--org",
        "acme",
        "request_id:r3",
    ]));
    assert!(msg.contains("wrote 1 entries"), "{msg}");
    run_ok(trail(d).args(["export", "--format", "evidence", "--out", out.to_str().unwrap(), "--org", "acme"]));
    let text = std::fs::read_to_string(&out).unwrap();
    // 21 entries, the first export's audit:export event, and the header.
    assert_eq!(text.lines().count(), 23);
    let ok = run_ok(trail(d).args(["verify", out.to_str().unwrap(), "--key", &vkey]));
    assert!(ok.contains("22 entries prove into checkpoint trail.local/acme of size 22"), "{ok}");
    let edited = text.replacen("\\\"n\\\":5}", "\\\"n\\\":6}", 1);
    assert_ne!(edited, text);
    std::fs::write(&out, edited).unwrap();
    let err = run_err(trail(d).args(["verify", out.to_str().unwrap(), "--key", &vkey]));
    assert!(err.contains("line 8: entry 6 does not prove"), "{err}");
    assert!(run_err(trail(d).args(["verify", "/nonexistent"])).contains("cannot read"));
    assert!(run_err(trail(d).args(["export", "--format", "docx", "--out", "x", "--org", "acme"])).contains("--format"));
    assert!(run_err(trail(d).args(["export", "--format", "evidence", "--out", "x"])).contains("--org"));
    // The other formats, with the filter applied.
    let csv = d.join("out.csv");
    let msg = run_ok(trail(d).args(["export", "--format", "csv", "--out", csv.to_str().unwrap(), "request_id:r3"]));
    assert!(msg.contains("wrote 1 entries"), "{msg}");
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.starts_with("Date/Time (UTC),") && text.contains("r3") && text.lines().count() == 2, "{text}");
    let pdf = d.join("out.pdf");
    run_ok(trail(d).args(["export", "--format", "pdf", "--preset", "compliance", "--out", pdf.to_str().unwrap()]));
    assert!(std::fs::read(&pdf).unwrap().starts_with(b"%PDF-"));
}

/// First start prints a platform administrator's one-time password; it logs in, must
/// change it, and users and keys are then managed from the command line.
#[test]
fn first_start_bootstraps_an_admin_and_users_and_keys_are_managed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut child = trail(d)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("TRAIL_INSECURE_COOKIES", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = lines.next().unwrap().unwrap().replace("Trail is running at ", "");
    let admin = lines.next().unwrap().unwrap();
    assert!(admin.contains("admin@trail.local") && admin.contains("organization main"), "{admin}");
    let otp = lines.next().unwrap().unwrap().rsplit(' ').next().unwrap().to_string();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let c = ::reqwest::Client::new();
        let login = |pw: String| {
            let c = c.clone();
            let url = format!("{base}/api/v1/auth/login");
            async move { c.post(url).json(&json!({"email": "admin@trail.local", "password": pw})).send().await.unwrap() }
        };
        let r = login(otp.clone()).await;
        assert_eq!(r.status(), 200);
        let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
        let body: Value = r.json().await.unwrap();
        let csrf = body["csrf_token"].as_str().unwrap().to_string();
        assert_eq!(body["user"]["role"], "platform_admin");
        let r = c
            .post(format!("{base}/api/v1/auth/password"))
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .json(&json!({"current_password": otp, "new_password": "a much better password"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        let r = c.get(format!("{base}/api/v1/facets")).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(r.status(), 200);
        // The one-time password is spent.
        assert_eq!(login(otp.clone()).await.status(), 401);
    });
    let _ = child.kill();
    let _ = child.wait();
    // A second start prints no password.
    let again = serve(d, &[]);
    drop(again);

    let out = run_ok(trail(d).args([
        "users",
        "create",
        "--org",
        "main",
        "--email",
        "Ann@Main.com",
        "--name",
        "Ann",
        "--role",
        "auditor",
    ]));
    assert!(out.contains("created ann@main.com (auditor) in main") && out.contains("one-time password"), "{out}");
    let list = run_ok(trail(d).args(["users", "list"]));
    assert!(
        list.contains("admin@trail.local") && list.contains("ann@main.com") && list.contains("must change password"),
        "{list}"
    );
    let out = run_ok(trail(d).args(["users", "set-role", "--email", "ann@main.com", "--role", "viewer"]));
    assert!(out.contains("ann@main.com is now viewer"), "{out}");
    assert!(run_ok(trail(d).args(["users", "list", "--org", "main"])).contains("viewer"));
    assert!(
        run_err(trail(d).args(["users", "set-role", "--email", "ann@main.com", "--role", "god"])).contains("--role")
    );
    assert!(run_err(trail(d).args(["users", "set-role", "--email", "nobody@main.com", "--role", "viewer"]))
        .contains("no user"));
    let dup = ["users", "create", "--org", "main", "--email", "ann@main.com", "--name", "A", "--role", "viewer"];
    assert!(run_err(trail(d).args(dup)).contains("email"));
    let bad_org = ["users", "create", "--org", "nope", "--email", "x@y.z", "--name", "X", "--role", "viewer"];
    assert!(run_err(trail(d).args(bad_org)).contains("unknown organization"));

    let key = run_ok(trail(d).args(["keys", "create", "--org", "main", "--scope", "read", "--label", "siem"]));
    assert!(key.starts_with("trail_rd_"));
    let keys = run_ok(trail(d).args(["keys", "list"]));
    let line = keys.lines().find(|l| l.contains("siem")).unwrap().to_string();
    let id = line.split_whitespace().next().unwrap().to_string();
    assert!(line.contains(" no "), "{line}");
    let out = run_ok(trail(d).args(["keys", "revoke", &id]));
    assert!(out.contains(&format!("revoked key {id}")), "{out}");
    assert!(run_ok(trail(d).args(["keys", "list", "--org", "main"]))
        .lines()
        .any(|l| l.contains("siem") && l.contains(" yes ")));
    assert!(run_err(trail(d).args(["keys", "revoke", "99999"])).contains("no key"));
    // Every change is in the log.
    let log = run_ok(trail(d).args(["query", "--format", "jsonl", "--limit", "100"]));
    for action in
        ["user:create", "user:role_change", "api_key:create", "api_key:revoke", "auth:login", "user:password_change"]
    {
        assert!(log.contains(&format!("\"action\":\"{action}\"")), "{action}: {log}");
    }
}

#[test]
fn alert_rules_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    new_key(d, "acme", "read");
    let rules = run_ok(trail(d).args(["alerts", "rules", "--org", "acme"]));
    for name in
        ["failed_logins", "mass_deletion", "permission_escalation", "api_token_created", "new_admin_ip", "large_export"]
    {
        assert!(rules.contains(name), "{rules}");
    }
    let bad = trail(d)
        .args(["alerts", "set-rule", "--org", "acme", "--name", "failed_logins", "--threshold", "0"])
        .output()
        .unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("--threshold"));
    let unknown = trail(d)
        .args(["alerts", "set-rule", "--org", "acme", "--name", "nope", "--enabled", "false"])
        .output()
        .unwrap();
    assert!(!unknown.status.success() && String::from_utf8_lossy(&unknown.stderr).contains("no rule 'nope'"));
    run_ok(trail(d).args(["alerts", "set-rule", "--org", "acme", "--name", "failed_logins", "--threshold", "3"]));
    let rules = run_ok(trail(d).args(["alerts", "rules", "--org", "acme"]));
    let line = rules.lines().find(|l| l.starts_with("failed_logins")).unwrap();
    assert!(line.split_whitespace().nth(2) == Some("3"), "{line}");
    assert!(run_ok(trail(d).args(["alerts", "deliveries", "--org", "acme"])).trim().is_empty());
}

/// `trail verify` reads only: without a key it fails and creates none; on a tampered
/// store it fails and leaves every file byte-identical, creating none.
#[test]
fn verify_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    new_key(d, "acme", "ingest");
    std::fs::remove_file(d.join("signing.key")).unwrap();
    let before = snapshot(d);
    let err = run_err(trail(d).args(["verify", "--org", "acme"]));
    assert!(err.contains("there is no signing key") && err.contains("--key"), "{err}");
    assert_eq!(snapshot(d), before, "verify without a key created or changed a file");

    let (dir, vkey) = signed_log();
    let d = dir.path();
    let conn = rusqlite::Connection::open(d.join("trail.db")).unwrap();
    conn.execute_batch("DELETE FROM checkpoints").unwrap();
    drop(conn);
    let before = snapshot(d);
    for _ in 0..2 {
        let err = run_err(trail(d).args(["verify", "--org", "acme", "--key", &vkey]));
        assert!(err.contains("no signed checkpoint covers the log's 21 entries"), "{err}");
        let err = run_err(trail(d).args(["verify", "--org", "acme"]));
        assert!(err.contains("no signed checkpoint covers"), "{err}");
    }
    assert_eq!(snapshot(d), before, "verify created or changed a file");
}

/// `trail serve` on a store whose edited entry was hidden by recomputing its leaf hash
/// and tree and deleting the checkpoints over it signs nothing, and says why in
/// `/healthz`, to administrators and in a `system:verify` event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_store_is_served_but_not_signed() {
    let (dir, vkey) = signed_log();
    let d = dir.path();
    let admin = new_key(d, "acme", "admin");
    let conn = rusqlite::Connection::open(d.join("trail.db")).unwrap();
    // The first entries rewritten (here: said to be received ten years earlier).
    conn.execute(
        "UPDATE leaves SET leaf = CAST(replace(CAST(leaf AS TEXT), '\"received_at\":\"202', '\"received_at\":\"201') AS BLOB) WHERE seq < 3",
        [],
    )
    .unwrap();
    trail_store::testing::tamper_cases::rehash_sqlite_tree(&conn, "acme");
    conn.execute("DELETE FROM checkpoints", []).unwrap();
    drop(conn);
    let server = spawn_served(trail(d).args(["serve", "--listen", "127.0.0.1:0"]));
    let http = reqwest::Client::new();
    let get = |path: &str| {
        let req = http.get(format!("{}{path}", server.base)).bearer_auth(&admin);
        async move { req.send().await.unwrap().json::<serde_json::Value>().await.unwrap() }
    };
    let health = get("/healthz").await;
    assert_eq!(health["status"], "degraded", "{health}");
    // Live, but not ready: a load balancer takes it out.
    let ready = http.get(format!("{}/readyz", server.base)).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert!(
        ready["reasons"][0].as_str().unwrap_or_default().contains("the log of acme is not being signed"),
        "{ready}"
    );
    let reason = health["not_signed"][0]["reason"].as_str().unwrap_or_default().to_string();
    assert!(reason.contains("checkpoints were removed"), "{health}");
    let me = get("/api/v1/auth/me").await;
    assert_eq!(me["integrity"][0]["org"], "acme", "{me}");
    // The refusal is recorded as a FAILED system:verify event (waited for: the watch
    // records it after the start).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let list = get("/api/v1/events?category=system&operation=verify&result=FAILED").await;
        if list["events"].as_array().is_some_and(|e| !e.is_empty()) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no system:verify FAILED: {list}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(server);
    assert!(run_err(trail(d).args(["verify", "--org", "acme", "--key", &vkey])).contains("checkpoints were removed"));
}

/// `trail repair` rebuilds what is derived from the verified bytes, records it, and
/// refuses when the bytes themselves were changed.
#[test]
fn repair_rebuilds_derived_structures_and_refuses_a_changed_log() {
    let (dir, vkey) = signed_log();
    let d = dir.path();
    let conn = rusqlite::Connection::open(d.join("trail.db")).unwrap();
    conn.execute_batch(
        "UPDATE day_counts SET n = n + 1000 WHERE category = 'service'; DELETE FROM search_words;
         UPDATE events SET category = 'other' WHERE seq = 3;
         CREATE TEMP TABLE x AS SELECT * FROM events WHERE seq = 5;
         UPDATE x SET seq = -1, pos = (SELECT MAX(pos) FROM events) + 1, id = randomblob(16);
         DROP INDEX events_idem; INSERT INTO events SELECT * FROM x;",
    )
    .unwrap();
    drop(conn);
    let err = run_err(trail(d).args(["verify", "--org", "acme", "--key", &vkey]));
    for want in ["stored 1020, the events say 20", "the search words lack", "category: stored 'other'", "at seq -1"] {
        assert!(err.contains(want), "{want}: {err}");
    }
    let out = run_ok(trail(d).args(["repair", "--org", "acme"]));
    assert!(out.contains("\nok: acme: "), "{out}");
    run_ok(trail(d).args(["verify", "--org", "acme", "--key", &vkey]));
    let q =
        run_ok(trail(d).args(["query", "--org", "acme", "--format", "jsonl", "category:system", "operation:repair"]));
    assert!(q.contains("\"system:repair\"") && q.contains("\"rebuilt\""), "{q}");
    // Filters and search find the events again.
    let q = run_ok(trail(d).args(["query", "--org", "acme", "--format", "jsonl", "category:service", "r3"]));
    assert!(q.contains("\"r3\""), "{q}");
    // A changed event: refused, nothing touched.
    let conn = rusqlite::Connection::open(d.join("trail.db")).unwrap();
    conn.execute_batch(
        "UPDATE leaves SET leaf = CAST(replace(CAST(leaf AS TEXT), 'deploy', 'deplOy') AS BLOB) WHERE seq = 7",
    )
    .unwrap();
    drop(conn);
    let err = run_err(trail(d).args(["repair", "--org", "acme"]));
    assert!(err.contains("not repaired") && err.contains("entry 7 (id"), "{err}");
    assert!(run_err(trail(d).args(["repair", "--org", "nobody"])).contains("no organization 'nobody'"));
}
