//! Every case of the store's tamper table, run through `trail verify` as an auditor
//! would: it exits non-zero naming the finding, and leaves every file of the data
//! directory byte-identical, creating none.

use std::sync::Arc;

use trail_store::{
    sqlite::{SqliteConfig, SqliteStore},
    testing::tamper_cases::{signed_log, CASES},
    LogSigner,
};

use crate::support::{snapshot, trail};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tamper_case_fails_verify_and_changes_nothing() {
    // The signed log, made with the key the data directory holds.
    let seed = [9u8; 32];
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let vkey = trail_core::checkpoint::verifier_key("trail.local/acme", &key.verifying_key());
    let base = tempfile::tempdir().unwrap();
    let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(base.path().join("signing.key"), format!("{hex}\n")).unwrap();
    let signer = Arc::new(LogSigner { name: "trail.local".into(), key });
    let store =
        SqliteStore::open(&base.path().join("trail.db"), SqliteConfig { signer: Some(signer), ..Default::default() })
            .unwrap();
    let saved = signed_log(&store).await;
    store.close();
    drop(store);
    std::fs::write(base.path().join("saved.checkpoint"), &saved).unwrap();
    let clean = trail(base.path()).args(["verify", "--org", "acme", "--key", &vkey]).output().unwrap();
    assert!(clean.status.success(), "{}", String::from_utf8_lossy(&clean.stderr));
    for case in CASES {
        let Some(sql) = case.sqlite else { continue };
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in snapshot(base.path()) {
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        let conn = rusqlite::Connection::open(dir.path().join("trail.db")).unwrap();
        conn.execute_batch(sql).unwrap();
        drop(conn);
        let before = snapshot(dir.path());
        let mut cmd = trail(dir.path());
        cmd.args(["verify", "--org", "acme", "--key", &vkey]);
        if case.with_saved_checkpoint {
            cmd.arg("--checkpoint").arg(dir.path().join("saved.checkpoint"));
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{}: verify passed", case.name);
        assert!(err.contains(case.expect), "{}: expected '{}' in:\n{err}", case.name, case.expect);
        assert!(snapshot(dir.path()) == before, "{}: verify changed or created a file", case.name);
    }
}
