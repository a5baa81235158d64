//! Tampering with the stored log, case by case and on both backends, must be found by
//! `verify` and named: each case edits one table of a signed 21-entry log directly in
//! the database, as someone with access to the files would.

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use serde_json::json;
use trail_core::{checkpoint, event::parse_event, Timestamp};

use crate::{
    signer::LogSigner,
    testing::tamper_cases::{signed_log, CASES},
    verify::{verify, VerifyOptions},
    AppendBatch, Store,
};

fn signer() -> Arc<LogSigner> {
    Arc::new(LogSigner { name: "trail.test".into(), key: SigningKey::from_bytes(&[9; 32]) })
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
        let leaf: Vec<u8> = conn.query_row("SELECT leaf FROM leaves WHERE seq = 8", [], |r| r.get(0)).unwrap();
        let leaf = String::from_utf8(leaf).unwrap().replace("deploy", "deplOy");
        conn.execute("UPDATE leaves SET leaf = ?1 WHERE seq = 8", [leaf.as_bytes()]).unwrap();
        crate::testing::tamper_cases::rehash_sqlite_tree(&conn, "acme");
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
