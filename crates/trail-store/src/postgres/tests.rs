//! Tests of the PostgreSQL backend: the conformance suite on a throwaway cluster, and
//! what is its own (commits cut off, advisory locks, migrations).

use std::sync::Arc;

use trail_core::checkpoint::{self, Checkpoint};

use super::*;
use crate::{prelude::*, AppendBatch};

struct Guard;

async fn fresh() -> (Arc<dyn Store>, Guard) {
    let url = crate::testing::Cluster::shared().database();
    let store = PgStore::open(&url, None).await.unwrap();
    (Arc::new(store), Guard)
}

/// A loopback proxy to the test cluster that, once armed, cuts the connection
/// carrying the next `COMMIT` before the server sees it.
async fn commit_cutter(port: u16) -> (u16, Arc<std::sync::atomic::AtomicBool>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = listener.local_addr().unwrap().port();
    let trigger = armed.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let trigger = trigger.clone();
            let down = tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n @ 1..) = sr.read(&mut buf).await {
                    if cw.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n @ 1..) = cr.read(&mut buf).await {
                    let commit = buf[..n].windows(6).any(|w| w == b"COMMIT");
                    if commit && trigger.swap(false, std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    if sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                // Both directions end: the client and the server see the connection go.
                down.abort();
            });
        }
    });
    (at, armed)
}

/// The connection breaking during a commit answers "outcome unknown", and the
/// retry with the same idempotency keys stores each event once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_cut_off_is_reported_unknown_and_a_retry_stores_once() {
    let cluster = crate::testing::Cluster::shared();
    let url = cluster.database();
    let (port, armed) = commit_cutter(cluster.port).await;
    let proxied = url.replace(&format!(":{}/", cluster.port), &format!(":{port}/"));
    let store = PgStore::open(&proxied, None).await.unwrap();
    crate::testing::conformance::seed_org(&store, "acme").await;
    let batch = || AppendBatch {
        org: "acme".into(),
        received_at: crate::testing::conformance::NOW,
        events: (0..3)
            .map(|i| {
                let mut e = trail_core::event::parse_event(serde_json::json!({"action": "auth:login"})).unwrap();
                e.idempotency_key = Some(format!("retry-{i}"));
                (uuid::Uuid::now_v7(), e)
            })
            .collect(),
    };
    armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let cut = store.append(batch()).await;
    assert!(matches!(cut, Err(StoreError::CommitUnknown(_))), "{cut:?}");
    // The pool replaces the broken connection; the retry lands once.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let acks = loop {
        match store.append(batch()).await {
            Ok(acks) => break acks,
            Err(e) => assert!(std::time::Instant::now() < deadline, "{e}"),
        }
    };
    assert_eq!(acks.iter().map(|a| a.seq).collect::<Vec<_>>(), [0, 1, 2]);
    let again = store.append(batch()).await.unwrap();
    assert!(again.iter().all(|a| a.duplicate), "{again:?}");
    assert_eq!(store.scan("acme", 0, 100).await.unwrap().len(), 3);
}

/// One holder of a named lock across processes (here: two stores, two sessions);
/// dropping the guard releases it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_locks_are_held_by_one_session() {
    let url = crate::testing::Cluster::shared().database();
    let (a, b) = (PgStore::open(&url, None).await.unwrap(), PgStore::open(&url, None).await.unwrap());
    let held = a.exclusive("trail-retention").await.unwrap();
    assert!(held.is_some());
    assert!(b.exclusive("trail-retention").await.unwrap().is_none());
    assert!(b.exclusive("something-else").await.unwrap().is_some());
    drop(held);
    let mut again = None;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        again = b.exclusive("trail-retention").await.unwrap();
        if again.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "released when the guard is dropped");
}

/// `verify` checks every checkpoint, not only the newest: a validly signed but
/// wrong older checkpoint (a fork) is found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_checks_every_checkpoint() {
    let url = crate::testing::Cluster::shared().database();
    let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    let signer = Arc::new(LogSigner { name: "t".into(), key: key.clone() });
    let store = PgStore::open(&url, Some(signer.clone())).await.unwrap();
    crate::testing::conformance::seed_org(&store, "acme").await;
    crate::testing::conformance::append_n(&store, "acme", 5).await;
    let vkey = checkpoint::verifier_key(&signer.origin("acme"), &key.verifying_key());
    let opts = || crate::verify::VerifyOptions { vkey: &vkey, ..Default::default() };
    let ok = crate::verify::verify(&store, "acme", opts()).await.unwrap();
    assert!(ok.ok(), "{}", ok.problems());
    assert_eq!((ok.entries, ok.newest_checkpoint), (5, 5));
    assert_eq!(store.checkpoints("acme").await.unwrap().len(), 5);
    let forged = Checkpoint { origin: signer.origin("acme"), size: 2, root: [7; 32] };
    let note = checkpoint::sign(&forged, &key);
    let c = store.client().await.unwrap();
    c.execute("UPDATE checkpoints SET root = $1, note = $2 WHERE size = 2", &[&&[7u8; 32][..], &note]).await.unwrap();
    let err = crate::verify::verify(&store, "acme", opts()).await.unwrap().problems();
    assert!(err.contains("checkpoint of size 2: the recomputed root differs"), "{err}");
}

crate::conformance_tests!(fresh);

#[tokio::test]
async fn migrations_are_idempotent_and_newer_schemas_refused() {
    let url = crate::testing::Cluster::shared().database();
    let a = PgStore::open(&url, None).await.unwrap();
    PgStore::open(&url, None).await.unwrap();
    let c = a.client().await.unwrap();
    c.execute("UPDATE schema_version SET version = 99", &[]).await.unwrap();
    assert!(matches!(PgStore::open(&url, None).await, Err(StoreError::SchemaTooNew { found: 99, .. })));
}

/// A unique value taken is a typed conflict (a 409 over HTTP), not a database failure.
#[tokio::test]
async fn a_unique_violation_is_a_conflict() {
    let url = crate::testing::Cluster::shared().database();
    let store = PgStore::open(&url, None).await.unwrap();
    crate::testing::conformance::seed_org(&store, "acme").await;
    let key = || crate::NewKey {
        org: "acme".into(),
        scope: crate::KeyScope::Read,
        hash: [3; 32],
        prefix: "trail_rd_x".into(),
        user_id: None,
        label: String::new(),
    };
    store.create_key(key()).await.unwrap();
    let err = store.create_key(key()).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    assert!(std::error::Error::source(&err).is_some());
}

/// A database made before the rollups (schema 5) gets them filled from its events.
#[tokio::test]
async fn the_rollup_migration_fills_from_stored_events() {
    use crate::testing::conformance::{counts_after_backfill, counts_before_backfill};
    let url = crate::testing::Cluster::shared().database();
    let store = PgStore::open(&url, None).await.unwrap();
    let before = counts_before_backfill(&store).await;
    let c = store.client().await.unwrap();
    c.batch_execute(
        "DROP TABLE day_counts; DROP TABLE day_actors; DROP INDEX events_email_sort; DROP TABLE alert_rules; \
         DROP TABLE alert_destinations; DROP TABLE alert_evaluations; DROP TABLE alert_deliveries; DROP TABLE streams; \
         ALTER TABLE idempotency DROP COLUMN received; \
         DROP TABLE witnesses; DROP TABLE cosignatures; DROP TABLE legal_holds; \
         DROP TABLE installation_nodes; DROP TABLE installation_checkpoints; DROP TABLE installation_lock; \
         ALTER TABLE checkpoints DROP COLUMN installation_idx; \
         UPDATE schema_version SET version = 5;",
    )
    .await
    .unwrap();
    drop(c);
    store.close();
    let store = PgStore::open(&url, None).await.unwrap();
    counts_after_backfill(&store, before).await;
}

/// A database made at every earlier schema version, holding events as that version's
/// binary stored them (the company the actor claimed before schema 5, per-day counts
/// from schema 6 on), opens with this binary, is signed and verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_of_every_earlier_schema_upgrades_and_verifies() {
    let signer =
        Arc::new(crate::LogSigner { name: "trail.test".into(), key: ed25519_dalek::SigningKey::from_bytes(&[5; 32]) });
    for version in 1..schema::MIGRATIONS.len() {
        let url = crate::testing::Cluster::shared().database();
        {
            // A pool on the database, nothing migrated yet.
            let bare = PgStore::connect(url.parse().unwrap(), None).unwrap();
            let mut client = bare.client().await.unwrap();
            let tx = client.transaction().await.unwrap();
            for sql in &schema::MIGRATIONS[..version] {
                tx.batch_execute(sql).await.unwrap();
            }
            tx.batch_execute(&format!(
                "CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES ({version});
                 INSERT INTO orgs (id, slug, name, created_at) VALUES (1, 'acme', 'Acme', 0);
                 INSERT INTO logs (org_id, size) VALUES (1, 3);"
            ))
            .await
            .unwrap();
            let mut tree = trail_core::merkle::Frontier::default();
            for seq in 0..3u64 {
                let new = trail_core::event::parse_event(serde_json::json!({
                    "action": "auth:login", "timestamp": format!("2024-03-0{}T10:00:00Z", seq + 1),
                    "actor": {"email": "ann@acme.com", "company": "globex"}
                }))
                .unwrap();
                let received = trail_core::Timestamp(1_710_000_000_000_000);
                let ev = trail_core::Event::from_new(new, uuid::Uuid::now_v7(), "acme", seq, received);
                let leaf = ev.to_leaf();
                let (lo, hi, name) = schema::month_bounds(ev.timestamp.0);
                tx.batch_execute(&format!(
                    "CREATE TABLE IF NOT EXISTS {name} PARTITION OF events FOR VALUES FROM ({lo}) TO ({hi})"
                ))
                .await
                .unwrap();
                let row = writer::PgRow::new(&ev);
                writer::insert_events(&tx, 1, &[(&row, seq, leaf.as_slice())]).await.unwrap();
                for (level, idx, hash) in tree.push(trail_core::merkle::leaf_hash(&leaf)) {
                    tx.execute(
                        "INSERT INTO tree_nodes (org_id, level, idx, hash) VALUES (1, $1, $2, $3)",
                        &[&(level as i32), &(idx as i64), &&hash[..]],
                    )
                    .await
                    .unwrap();
                }
            }
            if version < 5 {
                tx.batch_execute("UPDATE events SET company = 'globex'").await.unwrap();
            }
            if version >= 6 {
                let sql = include_str!("../../migrations/postgres/0006_day_counts.sql");
                tx.batch_execute(&sql[sql.find("INSERT INTO day_counts").unwrap()..]).await.unwrap();
            }
            tx.commit().await.unwrap();
        }
        let store = PgStore::open(&url, Some(signer.clone())).await.unwrap();
        // The first append signs the established tree.
        let more = trail_core::event::parse_event(serde_json::json!({"action": "auth:logout"})).unwrap();
        let batch = AppendBatch {
            org: "acme".into(),
            received_at: trail_core::Timestamp(1_710_000_000_000_000),
            events: vec![(uuid::Uuid::now_v7(), more)],
        };
        assert_eq!(store.append(batch).await.unwrap()[0].seq, 3, "schema {version}");
        let vkey = checkpoint::verifier_key("trail.test/acme", &signer.key.verifying_key());
        let report =
            crate::verify::verify(&store, "acme", crate::verify::VerifyOptions { vkey: &vkey, ..Default::default() })
                .await
                .unwrap();
        assert!(report.ok(), "schema {version}: {}", report.problems());
        assert_eq!((report.entries, report.newest_checkpoint), (4, 4), "schema {version}");
        store.close();
    }
}
