//! The bucket archive against a real S3 server (SeaweedFS, started by the test): files
//! written once and locked, neither overwritten nor deleted, legal holds, a leftover of
//! an interrupted run taken again, and clear errors at open naming the setting.

use trail_core::Timestamp;

use super::{Archive, BucketConfig, Expired, LockMode};
use crate::{testing::s3::S3Server, StoreError};

fn events(seqs: std::ops::Range<u64>, action: &str) -> Vec<Expired> {
    seqs.map(|s| Expired {
        seq: s,
        ts: 1_700_000_000_000_000 + s as i64,
        category: "auth".into(),
        leaf: trail_core::Event::from_new(
            trail_core::event::parse_event(serde_json::json!({ "action": action })).unwrap(),
            uuid::Uuid::now_v7(),
            "acme",
            s,
            Timestamp(1_700_000_000_000_000 + s as i64),
        )
        .to_leaf(),
    })
    .collect()
}

fn locked(s3: &S3Server, url: &str) -> BucketConfig {
    BucketConfig { object_lock: Some(LockMode::Compliance), retain_years: 1, ..s3.config(url) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_bucket_keeps_each_file_once_and_for_good() {
    let s3 = S3Server::start();
    s3.bucket("trail-archive", true).await;
    let a = Archive::open_bucket(&locked(&s3, "s3://trail-archive/prod")).await.unwrap();
    assert_eq!(a.location(), "s3://trail-archive/prod");
    let evs = events(3..6, "auth:login");
    let f = a.write("acme", "2023-11-14", &evs, Timestamp(0)).await.unwrap();
    assert_eq!(f.path, "acme/2023-11/2023-11-14.3.jsonl.zst");
    assert_eq!(a.read(&f).await.unwrap(), evs.iter().map(|e| e.leaf.clone()).collect::<Vec<_>>());
    assert_eq!(a.on_disk("acme").await.unwrap(), vec![f.path.clone()]);
    // The server keeps the SHA-256 it checked: retention's confirmation is a HEAD.
    let raw = crate::archive::bucket::Bucket::open(&locked(&s3, "s3://trail-archive/prod")).await.unwrap();
    let (sum, len) = raw.stored_checksum(&f.path).await.unwrap();
    let packed = raw.get(&f.path).await.unwrap().unwrap();
    use base64::Engine;
    let want = base64::engine::general_purpose::STANDARD.encode(<sha2::Sha256 as sha2::Digest>::digest(&packed));
    assert_eq!((sum, len), (Some(want), Some(packed.len() as i64)));

    // A file left by an interrupted run is taken again when it holds the same bytes;
    // other bytes for the same day and first seq go to a key of their own.
    let again = a.write("acme", "2023-11-14", &evs, Timestamp(5)).await.unwrap();
    assert_eq!(again, f);
    let other = a.write("acme", "2023-11-14", &events(3..7, "auth:logout"), Timestamp(0)).await.unwrap();
    assert_ne!(other.path, f.path);
    assert!(other.path.starts_with("acme/2023-11/2023-11-14.3.") && other.path.ends_with(".jsonl.zst"));
    assert_eq!(a.read(&other).await.unwrap().len(), 4);

    // The lock: neither the file nor its manifest can be deleted, by Trail or anyone
    // with these credentials; an overwrite is refused by `If-None-Match`.
    assert!(!a.remove(&f.path).await.unwrap(), "a locked object was deleted");
    assert_eq!(a.read(&f).await.unwrap().len(), 3, "the locked file is gone");
    assert!(matches!(raw.put_once(&f.path, b"forged".to_vec(), false, 0).await.unwrap(), super::bucket::Put::Exists));
    assert_eq!(a.read(&f).await.unwrap().len(), 3, "the locked file changed");
    // Hidden behind a newer version (which a lock allows once the current one is a
    // delete marker), the locked version is still what Trail reads.
    raw.put(&f.path, b"forged".to_vec()).await.unwrap();
    assert_eq!(raw.get(&f.path).await.unwrap().unwrap(), b"forged");
    assert_eq!(a.read(&f).await.unwrap().len(), 3, "the locked version was not found");

    // Legal hold on and off.
    assert!(!a.legally_held(&f).await.unwrap());
    assert!(a.legal_hold(&f, true).await.unwrap());
    assert!(a.legally_held(&f).await.unwrap());
    a.legal_hold(&f, false).await.unwrap();
    assert!(!a.legally_held(&f).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_bucket_setting_is_named_at_open() {
    let s3 = S3Server::start();
    s3.bucket("plain", false).await;
    let field = |r: Result<Archive, StoreError>| match r {
        Err(StoreError::Invalid { field, message }) => format!("{field}: {message}"),
        other => panic!("expected a setting error, got {other:?}"),
    };
    let missing = field(Archive::open_bucket(&s3.config("s3://no-such-bucket")).await);
    assert!(missing.starts_with("archive.url") && missing.contains("does not exist"), "{missing}");
    let wrong =
        BucketConfig { credentials: Some(("trail-test-access".into(), "wrong".into())), ..s3.config("s3://plain") };
    let refused = field(Archive::open_bucket(&wrong).await);
    assert!(refused.starts_with("archive.url") && refused.contains("credentials"), "{refused}");
    let unlocked = field(Archive::open_bucket(&locked(&s3, "s3://plain")).await);
    assert!(unlocked.starts_with("archive.object_lock"), "{unlocked}");
    let mut down = S3Server::start();
    let cfg = down.config("s3://plain");
    down.stop();
    let unreachable = field(Archive::open_bucket(&cfg).await);
    assert!(unreachable.starts_with("archive.endpoint"), "{unreachable}");
    // Unlocked buckets work without a lock.
    Archive::open_bucket(&s3.config("s3://plain")).await.unwrap();
}

/// The bucket down during a retention run: the run fails, nothing is deleted online;
/// the next run (the bucket back) archives every expired event exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bucket_down_during_retention_loses_nothing() {
    use crate::{
        sqlite::{SqliteConfig, SqliteStore},
        testing::conformance::{seed_org, NOW},
        AppendBatch, Archives, EventLog,
    };
    let mut s3 = S3Server::start();
    s3.bucket("down", true).await;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("trail.db"), SqliteConfig::default()).unwrap();
    seed_org(&store, "acme").await;
    let evs = (0..40)
        .map(|i: i64| {
            let age = if i % 4 == 0 { 0 } else { 10 + i };
            let v = serde_json::json!({"action": "service:deploy",
                "timestamp": Timestamp(NOW.0 - age * 86_400_000_000 - i).to_rfc3339_micros()});
            (uuid::Uuid::now_v7(), trail_core::event::parse_event(v).unwrap())
        })
        .collect();
    store.append(AppendBatch { org: "acme".into(), received_at: NOW, events: evs }).await.unwrap();
    let a = Archive::open_bucket(&locked(&s3, "s3://down")).await.unwrap();
    let rules = super::Retention { default_days: 5, categories: Default::default(), key_days: None };
    s3.stop();
    let failed = super::run(&store, &a, &rules, NOW).await;
    assert!(matches!(failed, Err(StoreError::Unavailable(_))), "{failed:?}");
    assert_eq!(store.scan("acme", 0, 100).await.unwrap().len(), 40, "nothing was deleted online");
    assert!(store.archives(Some("acme")).await.unwrap().is_empty());
    s3.resume();
    let r = super::run(&store, &a, &rules, NOW).await.unwrap();
    assert_eq!((r[0].archived, r[0].deleted), (30, 30), "{r:?}");
    let mut seqs = Vec::new();
    for f in store.archives(Some("acme")).await.unwrap() {
        for leaf in a.read(&f).await.unwrap() {
            seqs.push(trail_core::Event::from_leaf(&leaf).unwrap().seq);
        }
    }
    seqs.sort();
    let want: Vec<u64> = (0..40).filter(|i| i % 4 != 0).collect();
    assert_eq!(seqs, want, "every expired event archived once");
    assert_eq!(store.scan("acme", 0, 100).await.unwrap().len(), 10);
    store.close();
}
