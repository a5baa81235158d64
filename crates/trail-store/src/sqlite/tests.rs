//! Tests of the SQLite backend: the conformance suite, and what is its own.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use ed25519_dalek::SigningKey;
use rusqlite::Connection;
use trail_core::{
    checkpoint,
    merkle::{self, leaf_hash},
    Filter, Timestamp,
};
use uuid::Uuid;

use super::*;
use crate::{prelude::*, AppendBatch, ListQuery, Scope, SignedCheckpoint};

async fn fresh() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("trail.db"), SqliteConfig::default()).unwrap();
    (Arc::new(store), dir)
}

crate::conformance_tests!(fresh);

/// Retention removes archived events from the contentless FTS5 index itself (the
/// 'delete' command needs the exact indexed document), not only their rows: a stale
/// entry would match a later event that takes the same position.
#[tokio::test]
async fn retention_removes_search_index_entries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trail.db");
    let store = SqliteStore::open(&path, SqliteConfig::default()).unwrap();
    crate::testing::conformance::seed_org(&store, "acme").await;
    let now = crate::testing::conformance::NOW;
    let evs = (0..20)
        .map(|i| {
            let age = if i % 2 == 0 { 10 } else { 0 };
            let v = serde_json::json!({
                "action": "service:deploy", "timestamp": Timestamp(now.0 - age * 86_400_000_000 - i).to_rfc3339_micros(),
                "actor": {"name": "Ann Lee", "email": "ann@acme.com"}, "source_ip": "10.1.2.3",
                "resource": {"type": "service", "name": format!("svc{i}q")}, "details": {"word": format!("qqq{i}x")},
            });
            (Uuid::now_v7(), trail_core::event::parse_event(v).unwrap())
        })
        .collect();
    store.append(AppendBatch { org: "acme".into(), received_at: now, events: evs }).await.unwrap();
    let arch = crate::archive::Archive::new(dir.path().join("archive"));
    let rules = crate::archive::Retention { default_days: 5, categories: Default::default(), key_days: None };
    let r = crate::archive::run(&store, &arch, &rules, now).await.unwrap();
    assert_eq!(r[0].archived, 10);
    store.close();
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, events_fts, row);").unwrap();
    let docs = |term: &str| -> i64 {
        conn.query_row("SELECT IFNULL(SUM(doc), 0) FROM vocab WHERE term = ?1", [term], |r| r.get(0)).unwrap()
    };
    for i in 0..20 {
        let want = if i % 2 == 0 { 0 } else { 1 };
        assert_eq!(docs(&format!("qqq{i}x")), want, "event {i}");
        assert_eq!(docs(&format!("svc{i}q")), want, "event {i}");
    }
    // No term is indexed for more documents than remain.
    let most: i64 = conn.query_row("SELECT MAX(doc) FROM vocab", [], |r| r.get(0)).unwrap();
    assert_eq!(most, 10);
}

/// Commits reach the database file itself soon after, through the checkpointer, long
/// before the writer's own backstop (32 MiB of WAL) would copy them.
#[tokio::test]
async fn the_checkpointer_copies_commits_into_the_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trail.db");
    let store = SqliteStore::open(&path, SqliteConfig::default()).unwrap();
    crate::testing::conformance::seed_org(&store, "acme").await;
    crate::testing::conformance::append_n(&store, "acme", 20).await;
    // The database file alone, without its WAL, as a copy.
    let in_file = || {
        let copy = dir.path().join("copy.db");
        std::fs::copy(&path, &copy).ok()?;
        let n = Connection::open(&copy).ok()?.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0)).ok();
        let _ = std::fs::remove_file(&copy);
        n
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while in_file() != Some(20i64) {
        assert!(Instant::now() < deadline, "the database file holds {:?} of 20 events", in_file());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    store.close();
}

/// A stream names an event whose stored JSON is missing instead of skipping it,
/// whether the entry is inside a range read or a chunk of its own.
#[tokio::test]
async fn streams_report_a_missing_leaf() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trail.db");
    let store = SqliteStore::open(&path, SqliteConfig::default()).unwrap();
    crate::testing::conformance::seed_org(&store, "acme").await;
    crate::testing::conformance::append_n(&store, "acme", 300).await;
    Connection::open(&path).unwrap().execute("DELETE FROM leaves WHERE seq = 150", []).unwrap();
    for chunk in [1000, 1] {
        let q = ListQuery {
            scope: Scope::all(),
            filter: Filter::default(),
            now: crate::testing::conformance::NOW,
            cursor: None,
            limit: 1,
        };
        let mut rx = store.stream(q, chunk).await.unwrap();
        let mut failed = None;
        while let Some(c) = rx.recv().await {
            if let Err(e) = c {
                failed = Some(e);
            }
        }
        let e = failed.expect("the stream must fail");
        assert!(matches!(&e, StoreError::Corrupt(m) if m.contains("entry 150")), "{e:?}");
    }
}

#[tokio::test]
async fn reopening_keeps_events_and_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trail.db");
    let store = SqliteStore::open(&path, SqliteConfig::default()).unwrap();
    crate::testing::conformance::seed_org(&store, "acme").await;
    let acks = crate::testing::conformance::append_n(&store, "acme", 10).await;
    store.close();
    drop(store);
    let store = SqliteStore::open(&path, SqliteConfig::default()).unwrap();
    assert_eq!(store.scan("acme", 0, 100).await.unwrap().len(), 10);
    let more = crate::testing::conformance::append_n(&store, "acme", 1).await;
    assert_eq!(more[0].seq, acks.len() as u64);
    let c = Connection::open(&path).unwrap();
    let v: u32 = c.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(v, SCHEMA_VERSION);
}

fn signer() -> Arc<LogSigner> {
    Arc::new(LogSigner { name: "trail.test".into(), key: SigningKey::from_bytes(&[3; 32]) })
}

/// Polls until the organization's newest checkpoint covers `size` entries.
async fn checkpoint_of(store: &SqliteStore, org: &str, size: u64) -> SignedCheckpoint {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(cp) = store.checkpoint(org, None).await.unwrap() {
            if cp.size == size {
                return cp;
            }
        }
        assert!(Instant::now() < deadline, "no checkpoint of size {size}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn trees_checkpoints_and_proofs_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trail.db");
    let config = SqliteConfig { signer: Some(signer()), ..SqliteConfig::default() };
    let store = SqliteStore::open(&path, config.clone()).unwrap();
    crate::testing::conformance::seed_org(&store, "acme").await;
    crate::testing::conformance::seed_org(&store, "globex").await;
    crate::testing::conformance::append_n(&store, "acme", 5).await;
    crate::testing::conformance::append_n(&store, "globex", 2).await;
    let first = checkpoint_of(&store, "acme", 5).await;
    crate::testing::conformance::append_n(&store, "acme", 12).await;
    let second = checkpoint_of(&store, "acme", 17).await;
    let vkey = checkpoint::verifier_key("trail.test/acme", &signer().key.verifying_key());
    let cp = checkpoint::verify(&second.note, &vkey).unwrap();
    assert_eq!((cp.size, cp.root), (17, second.root));
    let leaves = store.scan("acme", 0, 100).await.unwrap();
    for (seq, leaf) in &leaves {
        let proof = store.inclusion_proof("acme", *seq, 17).await.unwrap();
        assert!(merkle::verify_inclusion(*seq, 17, &leaf_hash(leaf), &proof, &second.root), "{seq}");
    }
    let c = store.consistency_proof("acme", first.size, second.size).await.unwrap();
    assert!(merkle::verify_consistency(5, 17, &first.root, &second.root, &c));
    let all: Vec<Hash> = leaves.iter().map(|(_, l)| leaf_hash(l)).collect();
    assert_eq!(merkle::root(&all), second.root);
    assert!(matches!(store.inclusion_proof("acme", 17, 17).await, Err(StoreError::Invalid { .. })));
    assert!(matches!(store.inclusion_proof("acme", 0, 18).await, Err(StoreError::Invalid { .. })));
    assert!(matches!(store.consistency_proof("acme", 9, 5).await, Err(StoreError::Invalid { .. })));
    let opts = crate::verify::VerifyOptions { vkey: &vkey, ..Default::default() };
    let report = crate::verify::verify(&store, "acme", opts).await.unwrap();
    assert!(report.ok() && report.entries == 17 && report.checkpoints >= 2, "{report:?}");
    let other = checkpoint::verifier_key("trail.test/acme", &SigningKey::from_bytes(&[4; 32]).verifying_key());
    let opts = crate::verify::VerifyOptions { vkey: &other, ..Default::default() };
    assert!(!crate::verify::verify(&store, "acme", opts).await.unwrap().ok());
    store.close();
    // Reopening continues the same tree.
    let store = SqliteStore::open(&path, config).unwrap();
    crate::testing::conformance::append_n(&store, "acme", 1).await;
    let third = checkpoint_of(&store, "acme", 18).await;
    let c = store.consistency_proof("acme", 17, 18).await.unwrap();
    assert!(merkle::verify_consistency(17, 18, &second.root, &third.root, &c));
}

#[tokio::test]
async fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trail.db");
    Connection::open(&path).unwrap().pragma_update(None, "user_version", 99).unwrap();
    assert!(matches!(
        SqliteStore::open(&path, SqliteConfig::default()),
        Err(StoreError::SchemaTooNew { found: 99, .. })
    ));
}

/// A store made before the rollups (schema 8) gets them filled from its events.
#[tokio::test]
async fn the_rollup_migration_fills_from_stored_events() {
    use crate::testing::conformance::{counts_after_backfill, counts_before_backfill};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trail.db");
    let store = SqliteStore::open(&path, SqliteConfig::default()).unwrap();
    let before = counts_before_backfill(&store).await;
    store.close();
    drop(store);
    let c = Connection::open(&path).unwrap();
    c.execute_batch(
        "DROP TABLE day_counts; DROP TABLE day_actors; DROP TABLE alert_rules; DROP TABLE alert_destinations; \
         DROP TABLE alert_evaluations; DROP TABLE alert_deliveries; DROP TABLE streams; DROP TABLE idempotency; \
         DROP TABLE witnesses; DROP TABLE cosignatures; DROP TABLE legal_holds; \
         DROP TABLE installation_nodes; DROP TABLE installation_checkpoints; DROP INDEX checkpoints_installation; \
         DROP INDEX checkpoints_not_installed; ALTER TABLE checkpoints DROP COLUMN installation_idx; \
         PRAGMA user_version = 8;",
    )
    .unwrap();
    drop(c);
    let store = SqliteStore::open(&path, SqliteConfig::default()).unwrap();
    counts_after_backfill(&store, before).await;
}

/// Retention's lock is real on SQLite too: a second holder (another open file, in this
/// process or another) is refused until the first lets go.
#[tokio::test]
async fn the_exclusive_lock_is_held_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trail.db");
    let a = SqliteStore::open(&path, SqliteConfig::default()).unwrap();
    let b = SqliteStore::open(&path, SqliteConfig::default()).unwrap();
    let held = a.exclusive("trail-retention").await.unwrap();
    assert!(held.is_some());
    assert!(a.exclusive("trail-retention").await.unwrap().is_none());
    assert!(b.exclusive("trail-retention").await.unwrap().is_none());
    assert!(b.exclusive("something-else").await.unwrap().is_some());
    drop(held);
    assert!(b.exclusive("trail-retention").await.unwrap().is_some());
}

/// A store made at every earlier schema version, holding events as that version's
/// binary stored them (the indexed company the actor claimed, before schema 7), opens
/// with this binary, is signed and verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_of_every_earlier_schema_upgrades_and_verifies() {
    for version in 1..SCHEMA_VERSION {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trail.db");
        {
            let mut conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "journal_mode", "WAL").unwrap();
            schema::migrate_to(&mut conn, version).unwrap();
            conn.execute("INSERT INTO orgs (id, slug, name, created_at) VALUES (1, 'acme', 'Acme', 0)", []).unwrap();
            let mut tree = trail_core::merkle::Frontier::default();
            for seq in 0..3u64 {
                let new = trail_core::event::parse_event(serde_json::json!({
                    "action": "auth:login", "timestamp": format!("2024-03-0{}T10:00:00Z", seq + 1),
                    "actor": {"email": "ann@acme.com", "company": "globex"}
                }))
                .unwrap();
                let p = writer::Prepared::new("acme", Uuid::now_v7(), new, Timestamp(1_710_000_000_000_000));
                let pos = p.ts() * SLOTS;
                let row = p.row(pos, 1, seq);
                conn.execute(INSERT_SQL, rusqlite::params_from_iter(row.iter())).unwrap();
                let leaf = p.leaf(seq);
                conn.execute(INSERT_LEAF_SQL, rusqlite::params![1, seq as i64, &leaf]).unwrap();
                conn.execute(INSERT_FTS_SQL, rusqlite::params![pos, p.doc(1)]).unwrap();
                for w in p.words() {
                    conn.execute("INSERT OR IGNORE INTO search_words (word) VALUES (?1)", [w]).unwrap();
                }
                let nodes = tree.push(trail_core::merkle::leaf_hash(&leaf));
                if version >= 2 {
                    for (level, idx, hash) in nodes {
                        conn.execute(
                            "INSERT INTO tree_nodes (org_id, level, idx, hash) VALUES (1, ?1, ?2, ?3)",
                            rusqlite::params![level, idx as i64, &hash[..]],
                        )
                        .unwrap();
                    }
                }
            }
            if version >= 9 {
                // Those binaries kept the per-day counts as they appended.
                let sql = include_str!("../../migrations/sqlite/0009_day_counts.sql");
                conn.execute_batch(&sql[sql.find("INSERT INTO day_counts").unwrap()..]).unwrap();
            }
            if version < 12 {
                // What binaries before the fix kept: the company the actor claimed.
                conn.execute("UPDATE events SET company = 'globex'", []).unwrap();
            }
        }
        let config = SqliteConfig { signer: Some(signer()), ..Default::default() };
        let store = SqliteStore::open(&path, config).unwrap();
        checkpoint_of(&store, "acme", 3).await;
        let vkey = trail_core::checkpoint::verifier_key("trail.test/acme", &signer().key.verifying_key());
        let report =
            crate::verify::verify(&store, "acme", crate::verify::VerifyOptions { vkey: &vkey, ..Default::default() })
                .await
                .unwrap();
        assert!(report.ok(), "schema {version}: {}", report.problems());
        assert_eq!(report.entries, 3);
        store.close();
    }
}

/// An event taken out of the contentless search index (with its exact document, as an
/// insider can compute it) is named by verify: it would vanish from its own filters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_removed_from_the_search_index_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trail.db");
    let config = SqliteConfig { signer: Some(signer()), ..Default::default() };
    let store = SqliteStore::open(&path, config).unwrap();
    store.ensure_org(crate::Org { slug: "acme".into(), name: "Acme".into() }).await.unwrap();
    let events = (0..5)
        .map(|i| {
            let v = serde_json::json!({"action": "auth:login", "request_id": format!("req-{i}"), "details": {"w": "naïve José"}});
            (Uuid::now_v7(), trail_core::event::parse_event(v).unwrap())
        })
        .collect();
    store
        .append(AppendBatch { org: "acme".into(), received_at: Timestamp(1_710_000_000_000_000), events })
        .await
        .unwrap();
    checkpoint_of(&store, "acme", 5).await;
    let vkey = trail_core::checkpoint::verifier_key("trail.test/acme", &signer().key.verifying_key());
    let opts = || crate::verify::VerifyOptions { vkey: &vkey, ..Default::default() };
    // Words the index folds ("naive", "jose") are not taken for missing search words.
    let clean = crate::verify::verify(&store, "acme", opts()).await.unwrap();
    assert!(clean.ok(), "{}", clean.problems());
    let conn = Connection::open(&path).unwrap();
    let (pos, org_id, leaf): (i64, i64, Vec<u8>) = conn
        .query_row(
            "SELECT e.pos, e.org_id, l.leaf FROM events e JOIN leaves l ON l.org_id = e.org_id AND l.seq = e.seq WHERE e.seq = 2",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let doc = index::fts_doc(org_id, &trail_core::Event::from_leaf(&leaf).unwrap());
    conn.execute(
        "INSERT INTO events_fts (events_fts, rowid, doc) VALUES ('delete', ?1, ?2)",
        rusqlite::params![pos, doc],
    )
    .unwrap();
    let report = crate::verify::verify(&store, "acme", opts()).await.unwrap();
    assert!(report.problems().contains("entry 2: it is missing from the search index"), "{}", report.problems());
    assert!(report.leaves_ok(), "only a derived structure differs");
    store.close();
}

/// Two retention runs at once on one store (the nightly job and `trail retention run`,
/// two processes' stores on one file): one runs, the other is refused; every expired
/// event is archived once, and the log verifies with its archive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_retention_runs_at_once_archive_everything_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trail.db");
    let config = SqliteConfig { signer: Some(signer()), ..Default::default() };
    let a = SqliteStore::open(&path, config.clone()).unwrap();
    let b = SqliteStore::open(&path, config).unwrap();
    crate::testing::conformance::seed_org(&a, "acme").await;
    let now = crate::testing::conformance::NOW;
    let evs = (0..3000)
        .map(|i| {
            let ts = Timestamp(now.0 - (i % 30) * 86_400_000_000 - i).to_rfc3339_micros();
            let v = serde_json::json!({"action": "service:deploy", "timestamp": ts, "request_id": format!("r{i}")});
            (Uuid::now_v7(), trail_core::event::parse_event(v).unwrap())
        })
        .collect();
    a.append(AppendBatch { org: "acme".into(), received_at: now, events: evs }).await.unwrap();
    checkpoint_of(&a, "acme", 3000).await;
    let arch = crate::archive::Archive::new(dir.path().join("archive"));
    let rules = crate::archive::Retention { default_days: 5, categories: Default::default(), key_days: None };
    // While one run holds the lock, the other is refused.
    let held = a.exclusive("trail-retention").await.unwrap().unwrap();
    let refused = crate::archive::run(&b, &arch, &rules, now).await;
    assert!(matches!(refused, Err(StoreError::Unavailable(ref m)) if m.contains("running retention")), "{refused:?}");
    drop(held);
    // Both at once: each either runs or is refused; together they archive each once.
    let (ra, rb) =
        tokio::join!(crate::archive::run(&a, &arch, &rules, now), crate::archive::run(&b, &arch, &rules, now));
    let archived: u64 = [ra, rb]
        .into_iter()
        .filter_map(|r| match r {
            Ok(reports) => Some(reports.iter().map(|r| r.archived).sum::<u64>()),
            Err(StoreError::Unavailable(_)) => None,
            Err(e) => panic!("{e}"),
        })
        .sum();
    // Ages 5 to 29 days (less a few µs) have expired: 25 of every 30.
    assert_eq!(archived, 2500);
    let vkey = trail_core::checkpoint::verifier_key("trail.test/acme", &signer().key.verifying_key());
    let opts = crate::verify::VerifyOptions { vkey: &vkey, archive: Some(&arch), ..Default::default() };
    let report = crate::verify::verify(&a, "acme", opts).await.unwrap();
    assert!(report.ok(), "{}", report.problems());
    assert_eq!(report.entries, 3000);
    a.close();
    b.close();
}

/// The fast path answers for a range only when every entry in it is right, and then
/// with the same leaf hashes the tree holds; one changed row makes it give way.
#[tokio::test]
async fn the_fast_path_of_verify_gives_way_to_any_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trail.db");
    let store = SqliteStore::open(&path, SqliteConfig { signer: Some(signer()), ..Default::default() }).unwrap();
    crate::testing::tamper_cases::signed_log(&store).await;
    let quick = store.quick_entries("acme", 0, 21).await.unwrap().expect("a clean log is read by the fast path");
    assert_eq!(quick.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), (0..21).collect::<Vec<_>>());
    let leaves = store.tree_nodes("acme", 0, 0, 21).await.unwrap();
    assert!(quick.entries.iter().zip(&leaves).all(|(q, (i, h))| q.seq == *i && q.hash == *h));
    let conn = Connection::open(&path).unwrap();
    conn.execute("UPDATE events SET actor_name = 'someone' WHERE seq = 12", []).unwrap();
    assert!(store.quick_entries("acme", 0, 21).await.unwrap().is_none());
    assert!(store.quick_entries("acme", 0, 12).await.unwrap().is_some(), "ranges without it still pass");
    conn.execute("UPDATE events SET actor_name = 'Someone' WHERE seq = 12", []).unwrap();
    conn.execute("UPDATE events SET pos = pos + 5000000000 WHERE seq = 3", []).unwrap();
    assert!(store.quick_entries("acme", 0, 12).await.unwrap().is_none(), "a row out of place");
    conn.execute("DELETE FROM events WHERE seq = 3", []).unwrap();
    assert!(store.quick_entries("acme", 0, 12).await.unwrap().is_none(), "a missing row");
}
