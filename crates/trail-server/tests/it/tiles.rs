//! Each organization's log as C2SP tiles over real HTTP, read and checked by code no one
//! here wrote: Cloudflare's `signed_note` verifies every checkpoint, `tlog_tiles`
//! authenticates the tiles against it, proves 1,000 random entries of the entry
//! bundles included, and each checkpoint consistent with the one before. On SQLite and
//! on PostgreSQL, with a retention run between two reads (archived entries are still
//! served, byte for byte). And who may read what.

use std::sync::Arc;

use rand::{rngs::StdRng, Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{json, Value};
use signed_note::{Note, StandardVerifier, VerifierList};
use tlog_tiles::{
    check_record, check_tree, prove_record, prove_tree, record_hash, Checkpoint, Hash, Tile, TileHashReader, TileReader,
};
use trail_core::Timestamp;
use trail_server::{work::mirror, AppState, RetentionConfig, ServerConfig};
use trail_store::{archive::Retention, KeyScope, Org, Store};

use crate::support;

/// Reads tiles from Trail over HTTP (the reader `tlog_tiles` asks, synchronously) of
/// the log `log` (`acme`, or `_installation`).
struct Http {
    log: &'static str,
    base: String,
    key: String,
    client: reqwest::Client,
}

impl Http {
    async fn get(&self, path: &str) -> (StatusCode, Vec<u8>) {
        let r = self.client.get(format!("{}{path}", self.base)).bearer_auth(&self.key).send().await.unwrap();
        (r.status(), r.bytes().await.unwrap().to_vec())
    }
}

impl TileReader for Http {
    fn height(&self) -> u8 {
        8
    }

    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
        tiles
            .iter()
            .map(|t| {
                // `tile/8/L/N…` in the Go layout is `L/N…` under C2SP's `tile/`.
                let path = t.path().strip_prefix("tile/8/").unwrap().to_string();
                let (code, body) = tokio::task::block_in_place(|| {
                    tokio::runtime::Handle::current().block_on(self.get(&format!("/log/{}/tile/{path}", self.log)))
                });
                assert_eq!(code, 200, "tile {path}: {}", String::from_utf8_lossy(&body));
                Ok(body)
            })
            .collect()
    }

    fn save_tiles(&self, _: &[Tile], _: &[Vec<u8>]) {}
}

/// The log's verifier key, as `trail keys` publishes it.
fn vkey() -> String {
    trail_core::checkpoint::verifier_key(
        &format!("{}/acme", support::LOG_NAME),
        &support::signing_key().verifying_key(),
    )
}

/// A checkpoint read over HTTP, its signature verified by `signed_note`.
async fn checkpoint(http: &Http) -> Checkpoint {
    let (code, body) = http.get("/log/acme/checkpoint").await;
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let note = Note::from_bytes(&body).unwrap();
    let known = VerifierList::new(vec![Box::new(StandardVerifier::new(&vkey()).unwrap())]);
    note.verify(&known).expect("the checkpoint is signed by the log's key");
    Checkpoint::from_bytes(note.text()).unwrap()
}

/// Waits until the log's checkpoint covers `size` entries.
async fn covering(http: &Http, size: u64) -> Checkpoint {
    support::until("a checkpoint covering every entry", async || {
        let cp = checkpoint(http).await;
        (cp.size() == size).then_some(cp)
    })
    .await
}

/// Every entry of the log of `size`, from its entry bundles.
async fn entries(http: &Http, size: u64) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for n in 0..size.div_ceil(256) {
        let w = (size - n * 256).min(256);
        let path = trail_core::tiles::Tile {
            kind: trail_core::tiles::TileKind::Entries,
            index: n,
            partial: (w < 256).then_some(w as u16),
        }
        .path();
        let (code, body) = http.get(&format!("/log/acme/tile/{path}")).await;
        assert_eq!(code, 200, "bundle {path}: {}", String::from_utf8_lossy(&body));
        let bundle = trail_core::tiles::unbundle(&body).expect("a well-formed bundle");
        assert_eq!(bundle.len() as u64, w);
        out.extend(bundle.into_iter().map(<[u8]>::to_vec));
    }
    out
}

fn events(n: usize, old: bool) -> Value {
    let now = Timestamp::from_datetime(chrono::Utc::now());
    let evs: Vec<Value> = (0..n)
        .map(|i| {
            let ts = if old { Timestamp(now.0 - 400 * 86_400_000_000 - i as i64) } else { now };
            json!({"action": "service:deploy", "timestamp": ts.to_rfc3339_micros(), "details": {"i": i}})
        })
        .collect();
    json!(evs)
}

async fn ingest(http: &Http, key: &str, events: Value) {
    let r = http.client.post(format!("{}/api/v1/events", http.base)).bearer_auth(key).json(&events).send().await;
    assert!(r.unwrap().status().is_success());
}

/// The whole check on one store.
async fn tiles_are_read_and_checked_by_independent_code(store: Arc<dyn Store>, archive: &std::path::Path) {
    store.ensure_org(Org { slug: "acme".into(), name: "Acme".into() }).await.unwrap();
    store.ensure_org(Org { slug: "globex".into(), name: "Globex".into() }).await.unwrap();
    let read = support::key(&*store, "acme", KeyScope::Read).await;
    let audit = support::key(&*store, "acme", KeyScope::Audit).await;
    let ingest_key = support::key(&*store, "acme", KeyScope::Ingest).await;
    let other = support::key(&*store, "globex", KeyScope::Read).await;
    let retention = RetentionConfig {
        rules: Retention { default_days: 365, ..Retention::default() },
        archive: Some(trail_store::archive::Archive::new(archive)),
        ..RetentionConfig::default()
    };
    let config = ServerConfig { log: Some(support::log_key()), retention, ..ServerConfig::default() };
    let state = AppState::new(store.clone(), config, trail_server::system_clock());
    let server = support::serve(state.clone()).await;
    let http = Http { base: server.base.clone(), key: read, client: reqwest::Client::new(), log: "acme" };

    // Old events first (retention archives them below), then checkpoints as the log grows.
    let mut checkpoints = Vec::new();
    let mut size = 0;
    for (n, old) in [(300, true), (1, false), (255, false), (300, false)] {
        ingest(&http, &ingest_key, events(n, old)).await;
        size += n as u64;
        checkpoints.push(covering(&http, size).await);
    }
    let last = checkpoints.last().unwrap();
    let (n, th) = (last.size(), *last.hash());

    // Tiles authenticated against the checkpoint; entries proved into it.
    let leaves = entries(&http, n).await;
    let reader = TileHashReader::new(n, th, &http);
    let mut rng = StdRng::seed_from_u64(34);
    for _ in 0..1000 {
        let i = rng.random_range(0..n);
        let proof = prove_record(n, i, &reader).unwrap();
        check_record(&proof, n, th, i, record_hash(&leaves[i as usize])).expect("the entry is in the log");
    }
    // Each checkpoint consistent with the one before.
    for w in checkpoints.windows(2) {
        let (old, new) = (&w[0], &w[1]);
        let reader = TileHashReader::new(new.size(), *new.hash(), &http);
        let proof = prove_tree(new.size(), old.size(), &reader).unwrap();
        check_tree(&proof, new.size(), *new.hash(), old.size(), *old.hash()).expect("consistent checkpoints");
    }
    // A changed entry is not in the log.
    let proof = prove_record(n, 3, &reader).unwrap();
    assert!(check_record(&proof, n, th, 3, record_hash(b"{}")).is_err());
    assert!(check_record(&proof, n, Hash([0; 32]), 3, record_hash(&leaves[3])).is_err());

    // Full tiles are immutable and say so; the bytes are Trail's stored events.
    let r = http.client.get(format!("{}/log/acme/tile/0/000", http.base)).bearer_auth(&http.key).send().await.unwrap();
    assert_eq!(r.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    assert!(r.headers().contains_key("etag"));
    assert_eq!(r.bytes().await.unwrap().len(), 8192);
    let first = trail_core::Event::from_leaf(&leaves[0]).unwrap();
    assert_eq!((first.org.as_str(), first.seq), ("acme", 0));

    // The installation log holds every checkpoint of acme's above, as hashes.
    installation_log_binds_the_checkpoints(&http, &checkpoints).await;

    // An auditor's mirror, checked offline.
    let mirror_dir = archive.with_file_name("mirror");
    let src = mirror::Source { url: http.base.clone(), org: "acme".into(), key: Some(http.key.clone()), bucket: None };
    let first_mirror = mirror::mirror(&src, &vkey(), &mirror_dir).await.unwrap();
    assert!(first_mirror.size >= n && first_mirror.kept == 0, "{first_mirror:?}");
    let report = mirror::verify_mirror(&mirror_dir, &vkey()).unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert_eq!(report.entries, first_mirror.size);

    // Retention archives the 300 old events; their bundles are served from the archive.
    let reports =
        trail_server::work::retention::run(&state, Timestamp::from_datetime(chrono::Utc::now())).await.unwrap();
    assert_eq!(reports.iter().map(|r| r.archived).sum::<u64>(), 300, "{reports:?}");
    assert_eq!(store.scan("acme", 0, 1).await.unwrap()[0].0, 300, "the old events left the store");
    let after = entries(&http, n).await;
    assert!(after == leaves, "archived entries are served as they were");
    // Reading the bundles (twice, a tile at a time) was recorded once, as one view.
    let views = async || {
        let all = store.scan("acme", 0, 10_000).await.unwrap();
        let tiles = |l: &Vec<u8>| {
            let e = trail_core::Event::from_leaf(l).unwrap();
            e.action == "audit:view" && e.details.as_ref().is_some_and(|d| d["view"] == "tiles")
        };
        all.iter().filter(|(_, l)| tiles(l)).count()
    };
    support::until("the bundles' view recorded", async || (views().await > 0).then_some(())).await;
    assert_eq!(views().await, 1);

    // The mirror brought up to date after retention: what it had is checked, not fetched.
    ingest(&http, &ingest_key, events(10, false)).await;
    let grown = checkpoint(&http).await.size();
    let second = mirror::mirror(&src, &vkey(), &mirror_dir).await.unwrap();
    assert!(second.size >= grown && second.kept >= 6, "{second:?}");
    let report = mirror::verify_mirror(&mirror_dir, &vkey()).unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert_eq!(report.entries, second.size);
    // A changed byte in the copy is found; a wrong key is refused.
    let bundle0 = mirror_dir.join("tile/entries/000");
    let mut bytes = std::fs::read(&bundle0).unwrap();
    bytes[40] ^= 1;
    std::fs::write(&bundle0, bytes).unwrap();
    let report = mirror::verify_mirror(&mirror_dir, &vkey()).unwrap();
    assert!(report.findings.iter().any(|f| f.contains("entries/000")), "{:?}", report.findings);
    let other_key = trail_core::checkpoint::verifier_key(
        "trail.test/acme",
        &ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key(),
    );
    assert!(mirror::verify_mirror(&mirror_dir, &other_key).is_err());

    // Who may read what.
    let as_key =
        |key: &str| Http { key: key.into(), base: http.base.clone(), client: http.client.clone(), log: "acme" };
    let auditor = as_key(&audit);
    assert_eq!(auditor.get("/log/acme/checkpoint").await.0, 200);
    assert_eq!(auditor.get("/log/acme/tile/0/000").await.0, 200);
    assert_eq!(auditor.get("/log/acme/tile/entries/000").await.0, 403, "bundles hold events");
    assert_eq!(auditor.get("/api/v1/events").await.0, 403, "an audit key reads no events");
    assert_eq!(as_key(&ingest_key).get("/log/acme/checkpoint").await.0, 403);
    assert_eq!(as_key(&other).get("/log/acme/checkpoint").await.0, 404, "another organization's log");
    assert_eq!(as_key("nope").get("/log/acme/tile/0/000").await.0, 401);
    let (code, body) = http.get("/log/acme/tile/0/0").await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((code, v["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("tile")), "{v}");
    assert_eq!(http.get("/log/acme/tile/0/009").await.0, 404, "beyond the checkpoint");
    assert_eq!(http.get("/log/acme/tile/0/004.p/5").await.0, 404, "a partial tile beyond the checkpoint");
}

/// The installation log read as tiles by `tlog_tiles` and `signed_note`: its checkpoint
/// signed by the installation's key under `<name>/checkpoints`, each of `seen` (acme's
/// checkpoints) in it as the SHA-256 of its note body, proved by Trail's own proof and
/// by one computed from the tiles.
async fn installation_log_binds_the_checkpoints(http: &Http, seen: &[Checkpoint]) {
    let vkey = trail_core::checkpoint::verifier_key(
        &format!("{}/checkpoints", support::LOG_NAME),
        &support::signing_key().verifying_key(),
    );
    let known = VerifierList::new(vec![Box::new(StandardVerifier::new(&vkey).unwrap())]);
    let last = seen.last().unwrap().size();
    // Appended within about a second of each signing.
    let (cp, installed) = support::until("the installation log covering acme's checkpoints", async || {
        let (code, proof) = http.get(&format!("/api/v1/proof/inclusion?index=0&size={last}")).await;
        let v: Value = serde_json::from_slice(&proof).ok()?;
        let inst = v.get("installation")?.clone();
        let (code2, body) = http.get("/log/_installation/checkpoint").await;
        (code == 200 && code2 == 200).then_some((body, inst))
    })
    .await;
    let note = Note::from_bytes(&cp).unwrap();
    note.verify(&known).expect("the installation checkpoint is signed by the installation's key");
    let icp = Checkpoint::from_bytes(note.text()).unwrap();
    assert_eq!(icp.origin(), format!("{}/checkpoints", support::LOG_NAME));
    let (n, th) = (icp.size(), *icp.hash());
    // Its entries: 32-byte hashes of organization checkpoints' note bodies.
    let mut entries = Vec::new();
    for b in 0..n.div_ceil(256) {
        let w = (n - b * 256).min(256);
        let t = trail_core::tiles::Tile {
            kind: trail_core::tiles::TileKind::Entries,
            index: b,
            partial: (w < 256).then_some(w as u16),
        };
        let (code, body) = http.get(&format!("/log/_installation/tile/{}", t.path())).await;
        assert_eq!(code, 200);
        entries.extend(trail_core::tiles::unbundle(&body).unwrap().into_iter().map(<[u8]>::to_vec));
    }
    let reader =
        Http { log: "_installation", base: http.base.clone(), key: http.key.clone(), client: http.client.clone() };
    let hashes = TileHashReader::new(n, th, &reader);
    for cp in seen {
        let (code, body) = http.get(&format!("/api/v1/checkpoint?size={}", cp.size())).await;
        assert_eq!(code, 200);
        let entry = trail_store::installation::entry_of(std::str::from_utf8(&body).unwrap());
        let i = entries.iter().position(|e| e[..] == entry[..]).expect("every checkpoint is in the installation log")
            as u64;
        let proof = prove_record(n, i, &hashes).unwrap();
        check_record(&proof, n, th, i, record_hash(&entry)).expect("proved from the tiles");
    }
    // Trail's own proof of acme's last checkpoint verifies the same way.
    let index = installed["index"].as_u64().unwrap();
    let isize = installed["size"].as_u64().unwrap();
    let iproof: Vec<trail_core::merkle::Hash> = installed["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, h.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        })
        .collect();
    let icheck = trail_core::checkpoint::verify(installed["checkpoint"].as_str().unwrap(), &vkey).unwrap();
    assert_eq!(icheck.size, isize);
    let (_, body) = http.get(&format!("/api/v1/checkpoint?size={last}")).await;
    let leaf = trail_core::merkle::leaf_hash(&trail_store::installation::entry_of(std::str::from_utf8(&body).unwrap()));
    assert!(trail_core::merkle::verify_inclusion(index, isize, &leaf, &iproof, &icheck.root));
    // The same as a C2SP tlog-proof of the checkpoint, and in the evidence export's header.
    let (code, text) = http.get(&format!("/api/v1/checkpoint?size={last}&format=tlog-proof")).await;
    assert_eq!(code, 200);
    let p = trail_core::tlog_proof::TlogProof::parse(std::str::from_utf8(&text).unwrap()).unwrap();
    assert_eq!(p.extra.as_deref(), Some(&body[..]), "the proof carries the signed checkpoint");
    let got = p.verify_checkpoint(&vkey, None).unwrap();
    assert_eq!(got.org.size, last);
    // Each export records itself (a new checkpoint, appended within about a second):
    // export once the newest checkpoint is in the installation log.
    let (r, file) = support::until("an evidence file whose checkpoint is in the installation log", async || {
        let (_, note) = http.get("/api/v1/checkpoint").await;
        let size = std::str::from_utf8(&note).ok()?.lines().nth(1)?.to_string();
        let (installed, _) = http.get(&format!("/api/v1/checkpoint?size={size}&format=tlog-proof")).await;
        if installed != 200 {
            return None;
        }
        let (_, file) = http.get("/api/v1/export?format=evidence").await;
        let file = String::from_utf8(file).ok()?;
        Some((trail_core::evidence::verify_with(file.lines(), None, Some(&vkey)).ok()?, file))
    })
    .await;
    assert!(r.installation.is_some() && r.carries_installation);
    let other = trail_core::checkpoint::verifier_key("x/checkpoints", &support::signing_key().verifying_key());
    assert!(trail_core::evidence::verify_with(file.lines(), None, Some(&other)).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_tiles_are_read_and_checked_by_independent_code() {
    let dir = tempfile::tempdir().unwrap();
    let store = support::store(dir.path(), &[], true).await;
    tiles_are_read_and_checked_by_independent_code(store, &dir.path().join("archive")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tiles_are_read_and_checked_by_independent_code() {
    let dir = tempfile::tempdir().unwrap();
    let url = trail_store::testing::Cluster::shared().database();
    let signer = Some(Arc::new(trail_store::LogSigner { name: support::LOG_NAME.into(), key: support::signing_key() }));
    let store = Arc::new(trail_store::postgres::PgStore::open(&url, signer).await.unwrap());
    tiles_are_read_and_checked_by_independent_code(store, &dir.path().join("archive")).await;
}

#[tokio::test]
async fn tiles_are_public_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let store = support::store(dir.path(), &["acme"], true).await;
    let ingest_key = support::key(&*store, "acme", KeyScope::Ingest).await;
    let config = ServerConfig { transparency_public: true, ..ServerConfig::default() };
    let server = support::serve(AppState::new(store.clone(), config, trail_server::system_clock())).await;
    let http = Http { base: server.base.clone(), key: String::new(), client: reqwest::Client::new(), log: "acme" };
    ingest(&http, &ingest_key, events(3, false)).await;
    let anyone = |path: &str| {
        let url = format!("{}{path}", server.base);
        async move { reqwest::get(url).await.unwrap().status() }
    };
    support::until("the first checkpoint", async || (anyone("/log/acme/checkpoint").await == 200).then_some(())).await;
    assert_eq!(anyone("/log/acme/tile/0/000.p/3").await, 200);
    assert_eq!(anyone("/log/acme/tile/entries/000.p/3").await, 401, "bundles are never public");
}
