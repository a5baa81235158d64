//! Tampering with the stored log, case by case and on both backends, must be found by
//! `verify` and named: each case edits one table of a signed 21-entry log directly in
//! the database, as someone with access to the files would.

use std::{sync::Arc, time::Duration};

use ed25519_dalek::SigningKey;
use serde_json::json;
use trail_core::{checkpoint, event::parse_event, Timestamp};

use crate::{
    signer::LogSigner,
    verify::{verify, VerifyOptions},
    AppendBatch, Org, Store,
};

/// One edit: its SQL for each backend (`None`: the backend has nothing to edit there),
/// and what the report must say.
struct Case {
    name: &'static str,
    sqlite: Option<&'static str>,
    postgres: Option<&'static str>,
    expect: &'static str,
    /// Verify against the checkpoint of the whole log, saved before the edit.
    with_saved_checkpoint: bool,
}

const DELETE_TAIL_SQLITE: &str = "DELETE FROM events WHERE seq >= 15; DELETE FROM leaves WHERE seq >= 15; \
    DELETE FROM tree_nodes WHERE ((idx + 1) << level) > 15; DELETE FROM checkpoints WHERE size > 15;";
const DELETE_TAIL_PG: &str = "DELETE FROM events WHERE seq >= 15; DELETE FROM idempotency WHERE seq >= 15; \
    DELETE FROM tree_nodes WHERE ((idx + 1) << level) > 15; DELETE FROM checkpoints WHERE size > 15; \
    UPDATE logs SET size = 15;";

const CASES: &[Case] = &[
    Case {
        name: "a row and its bytes added outside the log, at seq -1",
        sqlite: Some(
            "CREATE TEMP TABLE x AS SELECT * FROM events WHERE seq = 5;
             UPDATE x SET seq = -1, pos = pos + 1, id = randomblob(16), idem = NULL;
             INSERT INTO events SELECT * FROM x;
             INSERT INTO leaves (org_id, seq, leaf) SELECT org_id, -1, leaf FROM leaves WHERE seq = 5;",
        ),
        postgres: Some(
            "CREATE TEMP TABLE x AS SELECT * FROM events WHERE seq = 5;
             UPDATE x SET seq = -1, id = gen_random_uuid();
             INSERT INTO events SELECT * FROM x;",
        ),
        expect: "at seq -1",
        with_saved_checkpoint: false,
    },
    Case {
        name: "a second row claiming an entry's seq",
        sqlite: Some(
            "DROP INDEX events_seq;
             CREATE TEMP TABLE x AS SELECT * FROM events WHERE seq = 5;
             UPDATE x SET pos = pos + 1, id = randomblob(16), idem = NULL;
             INSERT INTO events SELECT * FROM x;",
        ),
        postgres: None,
        expect: "more than one indexed row at seq 5: a seq or id is claimed twice",
        with_saved_checkpoint: false,
    },
    Case {
        name: "an event's stored bytes",
        sqlite: Some("UPDATE leaves SET leaf = CAST(replace(CAST(leaf AS TEXT), 'deploy', 'deplOy') AS BLOB) WHERE seq = 7"),
        postgres: Some("UPDATE events SET leaf = convert_to(replace(convert_from(leaf, 'UTF8'), 'deploy', 'deplOy'), 'UTF8') WHERE seq = 7"),
        expect: "entry 7 (id",
        with_saved_checkpoint: false,
    },
    Case {
        name: "the indexed category",
        sqlite: Some("UPDATE events SET category = 'other' WHERE seq = 3"),
        postgres: Some("UPDATE events SET category = 'other' WHERE seq = 3"),
        expect: "its indexed copy differs: category: stored 'other', the event says 'service'",
        with_saved_checkpoint: false,
    },
    Case {
        name: "the indexed time, moved back",
        sqlite: Some("UPDATE events SET ts = ts - 400 * 86400000000 WHERE seq = 4"),
        // Within the month: PostgreSQL has no partition 400 days back.
        postgres: Some("UPDATE events SET ts = ts - 86400000000 WHERE seq = 4"),
        expect: "entry 4 (id",
        with_saved_checkpoint: false,
    },
    Case {
        name: "the indexed email",
        sqlite: Some("UPDATE events SET actor_email = 'someone@else.com' WHERE seq = 5"),
        postgres: Some("UPDATE events SET actor_email = 'someone@else.com' WHERE seq = 5"),
        expect: "actor.email: stored 'someone@else.com'",
        with_saved_checkpoint: false,
    },
    Case {
        name: "two rows' time and position swapped",
        sqlite: Some(
            "CREATE TEMP TABLE p AS SELECT seq, pos, ts FROM events WHERE seq IN (8, 9);
             UPDATE events SET pos = -pos WHERE seq IN (8, 9);
             UPDATE events SET pos = (SELECT pos FROM p WHERE p.seq = 17 - events.seq),
                               ts = (SELECT ts FROM p WHERE p.seq = 17 - events.seq) WHERE seq IN (8, 9);",
        ),
        postgres: Some(
            "CREATE TEMP TABLE p AS SELECT seq, pos, ts FROM events WHERE seq IN (8, 9);
             UPDATE events SET pos = (SELECT pos FROM p WHERE p.seq = 17 - events.seq),
                               ts = (SELECT ts FROM p WHERE p.seq = 17 - events.seq) WHERE seq IN (8, 9);",
        ),
        expect: "entry 8 (id",
        with_saved_checkpoint: false,
    },
    Case {
        name: "an indexed row deleted",
        sqlite: Some("DELETE FROM events WHERE seq = 6"),
        postgres: Some("DELETE FROM events WHERE seq = 6"),
        expect: "entry 6",
        with_saved_checkpoint: false,
    },
    Case {
        name: "an event's bytes deleted",
        sqlite: Some("DELETE FROM leaves WHERE seq = 4"),
        postgres: None,
        expect: "entry 4 (id",
        with_saved_checkpoint: false,
    },
    Case {
        name: "the search entries",
        sqlite: None,
        postgres: Some("UPDATE events SET doc = to_tsvector('simple', 'nothing here') WHERE seq = 10"),
        expect: "its search entries differ",
        with_saved_checkpoint: false,
    },
    Case {
        name: "an interior tree node",
        sqlite: Some("UPDATE tree_nodes SET hash = zeroblob(32) WHERE level = 2 AND idx = 1"),
        postgres: Some("UPDATE tree_nodes SET hash = decode(repeat('00', 32), 'hex') WHERE level = 2 AND idx = 1"),
        expect: "tree node level 2 index 1 (entries 4 to 7) differs",
        with_saved_checkpoint: false,
    },
    Case {
        name: "a leaf hash",
        sqlite: Some("UPDATE tree_nodes SET hash = zeroblob(32) WHERE level = 0 AND idx = 12"),
        postgres: Some("UPDATE tree_nodes SET hash = decode(repeat('00', 32), 'hex') WHERE level = 0 AND idx = 12"),
        expect: "entry 12 (id",
        with_saved_checkpoint: false,
    },
    Case {
        name: "every checkpoint deleted",
        sqlite: Some("DELETE FROM checkpoints"),
        postgres: Some("DELETE FROM checkpoints"),
        expect: "no signed checkpoint covers the log's 21 entries",
        with_saved_checkpoint: false,
    },
    Case {
        name: "the search index emptied",
        sqlite: Some("INSERT INTO events_fts(events_fts) VALUES('delete-all')"),
        postgres: None,
        expect: "entry 0: it is missing from the search index",
        with_saved_checkpoint: false,
    },
    Case {
        name: "1,000 added to a day's counts",
        sqlite: Some("UPDATE day_counts SET n = n + 1000"),
        postgres: Some("UPDATE day_counts SET n = n + 1000"),
        expect: "category 'service', result 0, view false: stored 1021, the events say 21",
        with_saved_checkpoint: false,
    },
    Case {
        name: "an actor's day count",
        sqlite: Some("UPDATE day_actors SET n = 7 WHERE actor_email = 'user3@acme.com'"),
        postgres: Some("UPDATE day_actors SET n = 7 WHERE actor_email = 'user3@acme.com'"),
        expect: "actor user3@acme.com: stored 7, the events say 1",
        with_saved_checkpoint: false,
    },
    Case {
        name: "the search words emptied",
        sqlite: Some("DELETE FROM search_words"),
        postgres: None,
        expect: "the search words lack words the index holds",
        with_saved_checkpoint: false,
    },
    Case {
        name: "an event's indexed idempotency key",
        sqlite: Some("UPDATE events SET idem = 'other' WHERE seq = 3"),
        postgres: Some("UPDATE idempotency SET key = 'other' WHERE seq = 3"),
        expect: "idempotency_key: stored 'other', the event says 'k3'",
        with_saved_checkpoint: false,
    },
    Case {
        name: "an idempotency key record deleted",
        sqlite: Some("DELETE FROM idempotency WHERE seq = 4"),
        postgres: Some("DELETE FROM idempotency WHERE seq = 4"),
        expect: "entry 4",
        with_saved_checkpoint: false,
    },
    Case {
        name: "the checkpoints of the newest entries deleted",
        sqlite: Some("DELETE FROM checkpoints WHERE size > 7"),
        postgres: Some("DELETE FROM checkpoints WHERE size > 7"),
        expect: "with no signed checkpoint among them: checkpoints were removed",
        with_saved_checkpoint: false,
    },
    Case {
        name: "a checkpoint's note",
        sqlite: Some("UPDATE checkpoints SET note = replace(note, char(10) || '21' || char(10), char(10) || '22' || char(10))"),
        postgres: Some("UPDATE checkpoints SET note = replace(note, chr(10) || '21' || chr(10), chr(10) || '22' || chr(10))"),
        expect: "checkpoint of size 21",
        with_saved_checkpoint: false,
    },
    Case {
        name: "the newest entries deleted with their tree nodes and checkpoints",
        sqlite: Some(DELETE_TAIL_SQLITE),
        postgres: Some(DELETE_TAIL_PG),
        expect: "the saved checkpoint covers 21 entries but the log has 15: entries from 15 on were removed",
        with_saved_checkpoint: true,
    },
];

fn signer() -> Arc<LogSigner> {
    Arc::new(LogSigner { name: "trail.test".into(), key: SigningKey::from_bytes(&[9; 32]) })
}

/// Appends 21 events (a minute apart) in three requests received ten minutes apart,
/// each covered by a checkpoint before the next; returns the note of the checkpoint of
/// all 21.
async fn signed_log(store: &dyn Store) -> String {
    store.ensure_org(Org { slug: "acme".into(), name: "acme".into() }).await.unwrap();
    let start = Timestamp::parse_rfc3339("2024-03-09T10:00:00Z").unwrap().0;
    let mut note = String::new();
    for part in 0..3i64 {
        let events = (part * 7..part * 7 + 7)
            .map(|i| {
                let ts = Timestamp(start + i * 60_000_000).to_rfc3339();
                let ev = json!({"action": "service:deploy", "timestamp": ts, "request_id": format!("r{i}"),
                                "actor": {"email": format!("user{i}@acme.com"), "name": "Someone"},
                                "source_ip": "10.0.0.7", "details": {"n": i}, "idempotency_key": format!("k{i}")});
                (uuid::Uuid::now_v7(), parse_event(ev).unwrap())
            })
            .collect();
        let received_at = Timestamp(start + part * 600_000_000);
        store.append(AppendBatch { org: "acme".into(), received_at, events }).await.unwrap();
        note = covered(store, (part as u64 + 1) * 7).await;
    }
    note
}

/// Waits until a checkpoint covers `size` entries; returns its note.
async fn covered(store: &dyn Store, size: u64) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(cp) = store.checkpoint("acme", None).await.unwrap().filter(|c| c.size == size) {
            return cp.note;
        }
        assert!(std::time::Instant::now() < deadline, "no checkpoint covers {size} entries");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs every case on fresh stores from `fresh` (a store and where its database is),
/// editing the database with `edit`.
async fn check<F, E>(backend: &str, fresh: impl Fn() -> F, edit: impl Fn(String, &'static str) -> E)
where
    F: std::future::Future<Output = (Arc<dyn Store>, String)>,
    E: std::future::Future<Output = ()>,
{
    let vkey = checkpoint::verifier_key("trail.test/acme", &signer().key.verifying_key());
    for case in CASES {
        let sql = match backend {
            "sqlite" => case.sqlite,
            _ => case.postgres,
        };
        let Some(sql) = sql else { continue };
        let (store, at) = fresh().await;
        let saved = signed_log(&*store).await;
        let clean =
            verify(&*store, "acme", VerifyOptions { vkey: &vkey, external: Some(&saved), ..Default::default() })
                .await
                .unwrap();
        assert!(clean.ok(), "{backend}, before {}: {}", case.name, clean.problems());
        assert_eq!((clean.entries, clean.newest_checkpoint), (21, 21));
        edit(at, sql).await;
        let external = case.with_saved_checkpoint.then_some(saved.as_str());
        let report =
            verify(&*store, "acme", VerifyOptions { vkey: &vkey, external, ..Default::default() }).await.unwrap();
        assert!(!report.ok(), "{backend}: {} went unnoticed", case.name);
        let text = report.problems();
        assert!(text.contains(case.expect), "{backend}: {}: expected '{}' in:\n{text}", case.name, case.expect);
        // Repair rebuilds what is derived from the bytes, and refuses when the bytes,
        // the tree or the checkpoints are what differ.
        let opts = VerifyOptions { vkey: &vkey, external, ..Default::default() };
        match crate::repair::repair(&*store, "acme", opts).await.unwrap() {
            crate::repair::Repair::Done { after, rebuilt, .. } => {
                assert!(report.leaves_ok(), "{backend}: {}: repaired over a changed log:\n{text}", case.name);
                assert!(
                    after.ok(),
                    "{backend}: {}: still wrong after repair ({rebuilt:?}):\n{}",
                    case.name,
                    after.problems()
                );
            }
            crate::repair::Repair::Refused(r) => {
                assert!(!r.leaves_ok(), "{backend}: {}: repair refused a derived-only finding:\n{text}", case.name)
            }
        }
        store.close();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_edit_of_a_sqlite_store_is_found() {
    let dirs = std::sync::Mutex::new(Vec::new());
    check(
        "sqlite",
        || {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("trail.db");
            dirs.lock().unwrap().push(dir);
            let config = crate::sqlite::SqliteConfig { signer: Some(signer()), ..Default::default() };
            let store: Arc<dyn Store> = Arc::new(crate::sqlite::SqliteStore::open(&path, config).unwrap());
            async move { (store, path.display().to_string()) }
        },
        |path, sql| async move {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(sql).unwrap();
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_edit_of_a_postgres_store_is_found() {
    check(
        "postgres",
        || async {
            let url = crate::testing::Cluster::shared().database();
            let store: Arc<dyn Store> = Arc::new(crate::postgres::PgStore::open(&url, Some(signer())).await.unwrap());
            (store, url)
        },
        |url, sql| async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            client.batch_execute(sql).await.unwrap();
        },
    )
    .await;
}

/// What an insider without the key can do with the database: rewrite entry 8's bytes,
/// recompute its leaf hash and every tree node above it, and delete the checkpoints
/// that cover it. `leaves` are the stored bytes in seq order; returns the new bytes
/// and the tree nodes to store in place of the old ones.
fn forge(mut leaves: Vec<Vec<u8>>) -> (Vec<u8>, Vec<(u32, u64, trail_core::merkle::Hash)>) {
    let text = String::from_utf8(leaves[8].clone()).unwrap().replace("deploy", "deplOy");
    leaves[8] = text.into_bytes();
    let mut tree = trail_core::merkle::Frontier::default();
    let nodes = leaves.iter().flat_map(|l| tree.push(trail_core::merkle::leaf_hash(l))).collect();
    (leaves[8].clone(), nodes)
}

/// The next process to open a forged store signs nothing, says why, and verify names
/// the deleted checkpoints.
async fn forged_store_is_not_signed<O, F>(backend: &str, open: impl Fn() -> O, edit: impl FnOnce() -> F)
where
    O: std::future::Future<Output = Arc<dyn Store>>,
    F: std::future::Future<Output = ()>,
{
    let store = open().await;
    signed_log(&*store).await;
    store.close();
    drop(store);
    edit().await;
    let store = open().await;
    // The writer establishes each tree as it starts; appends are still stored.
    let ev = json!({"action": "service:deploy", "request_id": "after"});
    let batch = AppendBatch {
        org: "acme".into(),
        received_at: Timestamp::parse_rfc3339("2024-03-09T11:00:00Z").unwrap(),
        events: vec![(uuid::Uuid::now_v7(), parse_event(ev).unwrap())],
    };
    let acks = store.append(batch).await.unwrap();
    assert_eq!(acks[0].seq, 21, "{backend}");
    let refusals = store.refusals();
    assert_eq!(refusals.len(), 1, "{backend}: {refusals:?}");
    assert!(refusals[0].reason.contains("checkpoints were removed"), "{backend}: {}", refusals[0].reason);
    let newest = store.checkpoint("acme", None).await.unwrap().unwrap();
    assert_eq!(newest.size, 7, "{backend}: a checkpoint was signed over the forged tree");
    let vkey = checkpoint::verifier_key("trail.test/acme", &signer().key.verifying_key());
    let report = verify(&*store, "acme", VerifyOptions { vkey: &vkey, ..Default::default() }).await.unwrap();
    assert!(report.problems().contains("entries 7 to 21 were received from"), "{backend}: {}", report.problems());
    store.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_sqlite_store_is_not_signed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trail.db");
    let open = || {
        let config = crate::sqlite::SqliteConfig { signer: Some(signer()), ..Default::default() };
        let store: Arc<dyn Store> = Arc::new(crate::sqlite::SqliteStore::open(&path, config).unwrap());
        async move { store }
    };
    let edit = || async {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let leaves: Vec<Vec<u8>> = conn
            .prepare("SELECT leaf FROM leaves ORDER BY seq")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let (leaf, nodes) = forge(leaves);
        conn.execute("UPDATE leaves SET leaf = ?1 WHERE seq = 8", [&leaf]).unwrap();
        conn.execute("DELETE FROM tree_nodes", []).unwrap();
        for (level, idx, hash) in nodes {
            conn.execute(
                "INSERT INTO tree_nodes (org_id, level, idx, hash) SELECT id, ?1, ?2, ?3 FROM orgs WHERE slug = 'acme'",
                rusqlite::params![level, idx as i64, &hash[..]],
            )
            .unwrap();
        }
        conn.execute("DELETE FROM checkpoints WHERE size > 7", []).unwrap();
    };
    forged_store_is_not_signed("sqlite", open, edit).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_postgres_store_is_not_signed() {
    let url = crate::testing::Cluster::shared().database();
    let open = || async {
        let store: Arc<dyn Store> = Arc::new(crate::postgres::PgStore::open(&url, Some(signer())).await.unwrap());
        store
    };
    let edit = || async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        let rows = client.query("SELECT leaf FROM events ORDER BY seq", &[]).await.unwrap();
        let leaves: Vec<Vec<u8>> = rows.iter().map(|r| r.get(0)).collect();
        let (leaf, nodes) = forge(leaves);
        client.execute("UPDATE events SET leaf = $1 WHERE seq = 8", &[&leaf]).await.unwrap();
        client.execute("DELETE FROM tree_nodes", &[]).await.unwrap();
        for (level, idx, hash) in nodes {
            client
                .execute(
                    "INSERT INTO tree_nodes (org_id, level, idx, hash) SELECT id, $1, $2, $3 FROM orgs WHERE slug = 'acme'",
                    &[&(level as i32), &(idx as i64), &&hash[..]],
                )
                .await
                .unwrap();
        }
        client.execute("DELETE FROM checkpoints WHERE size > 7", &[]).await.unwrap();
    };
    forged_store_is_not_signed("postgres", open, edit).await;
}
