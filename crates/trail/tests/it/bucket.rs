//! Archives in an S3 bucket with Object Lock, end to end with real processes: SeaweedFS
//! (started by the test), two `trail serve` on one PostgreSQL database, retention by
//! one and downloads, evidence, verification and tiles from the other; legal holds
//! keeping events and locking archive objects; `trail archive move`; and a bad bucket
//! setting named at start.

use crate::support::{self, run_ok, spawn_served, Served};

use std::{path::Path, process::Command};

use chrono::{Duration, NaiveTime, Utc};
use serde_json::{json, Value};
use trail_store::{archive::Archive, testing::s3::S3Server, testing::Cluster, Archives};

/// `trail` with the test's configuration, the database at `db` (if any) and the S3
/// server's credentials in AWS's variables.
fn trail(d: &Path, db: Option<&str>, s3: &S3Server) -> Command {
    let mut c = support::trail(d);
    c.arg("--config").arg(d.join("trail.toml"));
    if let Some(url) = db {
        c.arg("--database").arg(url);
    }
    for (k, v) in s3.env() {
        c.env(k, v);
    }
    c
}

fn config(d: &Path, s3: &S3Server, url: &str) {
    let toml = format!(
        "[retention]\ndays = 90\nonline_days = 0\n\n[archive]\nurl = \"{url}\"\nendpoint = \"{}\"\npath_style = true\n\
         object_lock = \"compliance\"\nretain_years = 1\n",
        s3.endpoint()
    );
    std::fs::write(d.join("trail.toml"), toml).unwrap();
}

/// 120 events over 240 days before `as_of`, every fourth by ann, every tenth by held.
fn ingest(d: &Path, db: Option<&str>, s3: &S3Server, as_of: chrono::DateTime<Utc>) {
    let mut lines = String::new();
    for i in 0..120i64 {
        let ts = as_of - Duration::days(2 * i) - Duration::minutes(5);
        let who = if i % 10 == 0 {
            "held@acme.com"
        } else if i % 4 == 0 {
            "ann@acme.com"
        } else {
            "bob@acme.com"
        };
        let e = json!({"timestamp": ts.format("%Y-%m-%dT%H:%M:%SZ").to_string(), "action": "user:update",
                       "actor": {"id": who, "email": who}, "details": {"n": i}});
        lines.push_str(&format!("{e}\n"));
    }
    std::fs::write(d.join("events.ndjson"), lines).unwrap();
    run_ok(trail(d, db, s3).args(["keys", "create", "--org", "acme", "--scope", "ingest"]));
    run_ok(trail(d, db, s3).args(["ingest", d.join("events.ndjson").to_str().unwrap(), "--org", "acme"]));
}

fn serve(d: &Path, db: &str, s3: &S3Server) -> Served {
    spawn_served(trail(d, Some(db), s3).args(["serve", "--listen", "127.0.0.1:0"]))
}

fn day(t: chrono::DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[test]
fn two_servers_share_a_locked_bucket_and_holds_keep_what_they_cover() {
    let s3 = S3Server::start();
    let db = Cluster::shared().database();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d, &s3, "s3://trail-archive/two");
    let as_of = Utc::now().date_naive().and_time(NaiveTime::MIN).and_utc();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(s3.bucket("trail-archive", true));
    ingest(d, Some(&db), &s3, as_of);
    let read = run_ok(trail(d, Some(&db), &s3).args(["keys", "create", "--org", "acme", "--scope", "read"]));
    let read = read.trim().to_string();
    let hold = run_ok(trail(d, Some(&db), &s3).args([
        "holds",
        "place",
        "--org",
        "acme",
        "--query",
        "actor:held@acme.com",
        "--reason",
        "litigation 2026-17",
    ]));
    // "placed legal hold N on acme (…)"
    let hold_id = hold.split_whitespace().nth(3).unwrap().to_string();
    let a = serve(d, &db, &s3);
    let b = serve(d, &db, &s3);

    // Retention by one process: everything older than 90 days but what the hold covers.
    let report = run_ok(trail(d, Some(&db), &s3).args(["retention", "run", "--as-of", &day(as_of)]));
    let expired = (0..120).filter(|i| 2 * i > 89).count();
    let held = (0..120).filter(|i| 2 * i > 89 && i % 10 == 0).count();
    assert!(report.contains(&format!("acme: archived {} events", expired - held)), "{report}");

    // From the other server: the download of the whole span gives back every event,
    // the archived ones read from the bucket.
    let http = reqwest::Client::new();
    let get = |base: &str, path: &str| {
        rt.block_on(async {
            let r = http.get(format!("{base}{path}")).bearer_auth(&read).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    let from = day(as_of - Duration::days(250));
    let (st, body) = get(&b.base, &format!("/api/v1/download?from={from}&to={}&format=jsonl", day(as_of)));
    assert_eq!(st, 200, "{body}");
    let ns: Vec<i64> =
        body.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()?["details"]["n"].as_i64()).collect();
    assert_eq!(ns.len(), 120, "{body}");
    let (st, evidence) =
        get(&b.base, &format!("/api/v1/export?format=evidence&to={}", day(as_of - Duration::days(100))));
    assert_eq!(st, 200, "{evidence}");
    let ev = d.join("evidence.jsonl");
    std::fs::write(&ev, &evidence).unwrap();
    assert_eq!(evidence.lines().count(), (0..120).filter(|i| 2 * i >= 100).count() + 1);
    assert!(run_ok(trail(d, Some(&db), &s3).args(["verify", ev.to_str().unwrap()])).starts_with("ok"));
    assert!(run_ok(trail(d, Some(&db), &s3).args(["verify", "--org", "acme"])).contains("\nok: acme"));
    // Tiles, entry bundles of archived entries included, mirrored from the other server.
    let vkey = run_ok(trail(d, Some(&db), &s3).args(["keys", "verifier", "--org", "acme"])).trim().to_string();
    let out = run_ok(
        trail(d, Some(&db), &s3)
            .args(["mirror", "--url", &b.base, "--org", "acme", "--verifier-key", &vkey, "--out"])
            .arg(d.join("mirror"))
            .env("TRAIL_API_KEY", &read),
    );
    assert!(out.starts_with("mirrored "), "{out}");
    drop(a);

    // Holds in the bucket: a hold placed on archived events puts an S3 legal hold on
    // their files at the next run; releasing the first hold lets its events go.
    run_ok(
        trail(d, Some(&db), &s3)
            .args(["holds", "place", "--org", "acme", "--query", "actor:ann@acme.com"])
            .args(["--reason", "investigation"]),
    );
    run_ok(
        trail(d, Some(&db), &s3).args(["holds", "release", "--org", "acme", "--id", &hold_id, "--reason", "settled"]),
    );
    let report = run_ok(trail(d, Some(&db), &s3).args(["retention", "run", "--as-of", &day(as_of)]));
    assert!(report.contains(&format!("acme: archived {held} events")), "{report}");
    let (store, archive) = rt.block_on(async {
        let store = trail_store::postgres::PgStore::open_read_only(&db).await.unwrap();
        let archive = Archive::open_bucket(&trail_store::archive::BucketConfig {
            object_lock: Some(trail_store::archive::LockMode::Compliance),
            retain_years: 1,
            ..s3.config("s3://trail-archive/two")
        })
        .await
        .unwrap();
        (store, archive)
    });
    rt.block_on(async {
        let files = store.archives(Some("acme")).await.unwrap();
        let mut locked = 0;
        for f in &files {
            let anns =
                archive.read(f).await.unwrap().iter().any(|l| String::from_utf8_lossy(l).contains("ann@acme.com"));
            assert_eq!(archive.legally_held(f).await.unwrap(), anns, "{}", f.path);
            locked += usize::from(anns);
            // Locked: neither Trail nor anyone with these keys deletes an archive file.
            assert!(!archive.remove(&f.path).await.unwrap());
        }
        assert!(locked > 0);
    });
    // A hold placed through a server puts its S3 legal holds at once (in the
    // background), without waiting for a retention run.
    let admin = run_ok(trail(d, Some(&db), &s3).args(["keys", "create", "--org", "acme", "--scope", "admin"]));
    let placed = rt.block_on(async {
        http.post(format!("{}/api/v1/holds", b.base))
            .bearer_auth(admin.trim())
            .json(&json!({"query": "actor:bob@acme.com", "reason": "second matter"}))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(placed.as_u16(), 201);
    rt.block_on(support::until("every file holding bob's events legally held", async || {
        for f in store.archives(Some("acme")).await.ok()? {
            let bobs = archive.read(&f).await.ok()?.iter().any(|l| String::from_utf8_lossy(l).contains("bob@acme.com"));
            if bobs && !archive.legally_held(&f).await.ok()? {
                return None;
            }
        }
        Some(())
    }));
    // The download still has every event; nothing was archived twice.
    let (st, body) = get(&b.base, &format!("/api/v1/download?from={from}&to={}&format=jsonl", day(as_of)));
    assert_eq!(st, 200);
    assert_eq!(body.lines().filter(|l| l.contains("\"n\":")).count(), 120);
}

#[test]
fn a_directory_archive_moves_into_a_bucket_and_is_read_from_there() {
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let as_of = Utc::now().date_naive().and_time(NaiveTime::MIN).and_utc();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(s3.bucket("moved", true));
    // First a directory archive (the default), with the bucket's endpoint already set.
    let toml = format!(
        "[retention]\ndays = 90\nonline_days = 0\n\n[archive]\nendpoint = \"{}\"\npath_style = true\n\
         object_lock = \"compliance\"\nretain_years = 1\n",
        s3.endpoint()
    );
    std::fs::write(d.join("trail.toml"), &toml).unwrap();
    ingest(d, None, &s3, as_of);
    run_ok(trail(d, None, &s3).args(["retention", "run", "--as-of", &day(as_of)]));
    let local = std::fs::read_dir(d.join("archive/acme")).unwrap().count();
    assert!(local > 0);
    let out = run_ok(trail(d, None, &s3).args(["archive", "move", "--to", "s3://moved/archive"]));
    assert!(out.contains("each read back and verified"), "{out}");
    let left: usize = std::fs::read_dir(d.join("archive/acme"))
        .unwrap()
        .map(|m| std::fs::read_dir(m.unwrap().path()).unwrap().count())
        .sum();
    assert_eq!(left, 0, "the moved files are gone from the directory");
    // Now read from the bucket: verification and the download.
    std::fs::write(d.join("trail.toml"), toml.replace("[archive]\n", "[archive]\nurl = \"s3://moved/archive\"\n"))
        .unwrap();
    assert!(run_ok(trail(d, None, &s3).args(["verify", "--org", "acme"])).contains("\nok: acme"));
    let all = d.join("all.jsonl");
    run_ok(trail(d, None, &s3).args(["download", "--org", "acme", "--format", "jsonl", "--out"]).arg(&all).args([
        "--from",
        &day(as_of - Duration::days(250)),
        "--to",
        &day(as_of),
    ]));
    assert_eq!(std::fs::read_to_string(&all).unwrap().lines().filter(|l| l.contains("\"n\":")).count(), 120);
}

#[test]
fn a_bad_bucket_setting_stops_trail_naming_it() {
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(s3.bucket("exists", false));
    let fails = |cmd: &mut Command| {
        let out = cmd.output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let serve = |d: &Path| trail(d, None, &s3).args(["serve", "--listen", "127.0.0.1:0"]).output().unwrap();
    config(d, &s3, "s3://missing-bucket");
    let out = serve(d);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[archive] url: the bucket 'missing-bucket' does not exist"), "{err}");
    config(d, &s3, "s3://exists");
    let err =
        fails(trail(d, None, &s3).args(["serve", "--listen", "127.0.0.1:0"]).env("AWS_SECRET_ACCESS_KEY", "wrong"));
    assert!(err.contains("[archive] url: the credentials"), "{err}");
    let err = fails(trail(d, None, &s3).args(["serve", "--listen", "127.0.0.1:0"]));
    assert!(err.contains("[archive] object_lock: the bucket 'exists' was not created with Object Lock"), "{err}");
    std::fs::write(d.join("trail.toml"), "[archive]\nurl = \"s3://x\"\n").unwrap();
    let err = fails(trail(d, None, &s3).args(["serve"]));
    assert!(err.contains("[archive] url (TRAIL_ARCHIVE_URL): 'x' is not a bucket name"), "{err}");
    std::fs::write(d.join("trail.toml"), "[archive]\nurl = \"s3://abc\"\nobject_lock = \"forever\"\n").unwrap();
    let err = fails(trail(d, None, &s3).args(["serve"]));
    assert!(
        err.contains("[archive] object_lock (TRAIL_ARCHIVE_OBJECT_LOCK) must be compliance or governance"),
        "{err}"
    );
}

/// `[transparency] publish`: the server writes each log's tiles and checkpoint to a
/// bucket as they complete; a mirror reads them from the bucket alone (the server
/// stopped) and verifies them offline. Entry bundles go only to a bucket marked private.
#[test]
fn the_logs_published_to_a_bucket_are_mirrored_without_a_server() {
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(s3.bucket("tiles", false));
    let toml = |prefix: &str, private: bool| {
        format!(
            "[transparency]\npublish = \"s3://tiles/{prefix}\"\npublish_private = {private}\n\n[archive]\nendpoint = \"{}\"\npath_style = true\n",
            s3.endpoint()
        )
    };
    std::fs::write(d.join("trail.toml"), toml("private", true)).unwrap();
    // 300 events: a full tile and bundle, and partial ones.
    let lines: String =
        (0..300).map(|i| format!("{}\n", json!({"action": "user:update", "details": {"n": i}}))).collect();
    std::fs::write(d.join("events.ndjson"), lines).unwrap();
    run_ok(trail(d, None, &s3).args(["keys", "create", "--org", "acme", "--scope", "ingest"]));
    run_ok(trail(d, None, &s3).args(["ingest", d.join("events.ndjson").to_str().unwrap(), "--org", "acme"]));
    let vkey = run_ok(trail(d, None, &s3).args(["keys", "verifier", "--org", "acme"])).trim().to_string();
    let ikey = run_ok(trail(d, None, &s3).args(["keys", "verifier", "--org", "_installation"])).trim().to_string();
    let bucket = |prefix: &str| rt.block_on(Archive::open_bucket(&s3.config(&format!("s3://tiles/{prefix}")))).unwrap();
    let published = bucket("private");
    let served = spawn_served(trail(d, None, &s3).args(["serve", "--listen", "127.0.0.1:0"]));
    // Published within a second or two: the checkpoint (written last) and its proof.
    rt.block_on(support::until("the published checkpoint and its proof", async || {
        let note = published.get("acme/checkpoint").await.ok()??;
        let size: u64 = String::from_utf8(note).ok()?.lines().nth(1)?.parse().ok()?;
        (size >= 300 && published.get("acme/checkpoint.tlog-proof").await.ok()?.is_some()).then_some(())
    }));
    rt.block_on(support::until("the installation log published", async || {
        published.get("_installation/checkpoint").await.ok()?.map(drop)
    }));
    drop(served);
    let m = d.join("mirror");
    let out = run_ok(
        trail(d, None, &s3)
            .args(["mirror", "--url", "s3://tiles/private", "--org", "acme", "--verifier-key", &vkey, "--out"])
            .arg(&m),
    );
    assert!(out.starts_with("mirrored ") && !out.contains("no checkpoint.tlog-proof"), "{out}");
    let ok = run_ok(trail(d, None, &s3).args(["verify", "--mirror"]).arg(&m).args(["--key", &vkey]));
    assert!(ok.starts_with("ok: "), "{ok}");
    let mi = d.join("mirror-installation");
    run_ok(
        trail(d, None, &s3)
            .args(["mirror", "--url", "s3://tiles/private", "--org", "_installation", "--verifier-key", &ikey, "--out"])
            .arg(&mi),
    );
    assert!(
        run_ok(trail(d, None, &s3).args(["verify", "--mirror"]).arg(&mi).args(["--key", &ikey])).starts_with("ok: ")
    );

    // A bucket not marked private gets the hashes and checkpoints, never the entries.
    std::fs::write(d.join("trail.toml"), toml("public", false)).unwrap();
    let public = bucket("public");
    let served = spawn_served(trail(d, None, &s3).args(["serve", "--listen", "127.0.0.1:0"]));
    rt.block_on(support::until("the public checkpoint", async || public.get("acme/checkpoint").await.ok()?.map(drop)));
    drop(served);
    rt.block_on(async {
        assert!(public.get("acme/tile/0/000").await.unwrap().is_some());
        assert!(public.get("acme/tile/entries/000").await.unwrap().is_none(), "event content in a public bucket");
        assert!(published.get("acme/tile/entries/000").await.unwrap().is_some());
    });
}
