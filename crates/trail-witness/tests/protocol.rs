//! The witness over real HTTP on a loopback port, against every answer C2SP
//! `tlog-witness` names: cosignatures checked with ring (not the ed25519-dalek that
//! made them), 409 with the size it knows, 422 for a bad proof and for a second root at
//! one size, 404 for a log it does not follow, 403 for a signature it does not trust,
//! 400 for a malformed body, and its memory kept across a restart.

use std::{path::Path, sync::Arc};

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use ed25519_dalek::SigningKey;
use trail_core::{
    checkpoint::{self, Checkpoint},
    cosignature::{self, AddCheckpoint},
    merkle::{self, Hash},
    policy::Policy,
};

const ORIGIN: &str = "trail.test/checkpoints";

fn log_key() -> SigningKey {
    SigningKey::from_bytes(&[11; 32])
}

fn policy() -> Policy {
    let lkey = checkpoint::verifier_key(ORIGIN, &log_key().verifying_key());
    Policy::parse(&format!("log {lkey}\nquorum none\n")).unwrap()
}

/// A log of `n` entries `prefix-i`: its leaves and signed checkpoint.
fn log(prefix: &str, n: u64) -> (Vec<Hash>, String) {
    let leaves: Vec<Hash> = (0..n).map(|i| merkle::leaf_hash(format!("{prefix}-{i}").as_bytes())).collect();
    let cp = Checkpoint { origin: ORIGIN.into(), size: n, root: merkle::root(&leaves) };
    (leaves, checkpoint::sign(&cp, &log_key()))
}

fn request(leaves: &[Hash], old: u64, note: &str) -> String {
    let n = leaves.len() as u64;
    let proof =
        if old == 0 || old == n { vec![] } else { merkle::consistency_proof(&mut &leaves[..], old, n).unwrap() };
    AddCheckpoint { old, proof, checkpoint: note.to_string() }.to_text()
}

struct Running {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(dir: &Path) -> (Running, Arc<trail_witness::Witness>) {
    let w = Arc::new(trail_witness::open(dir, &policy()).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn({
        let w = w.clone();
        async move {
            trail_witness::serve(listener, w, async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
        }
    });
    (Running { base, stop: Some(tx), task }, w)
}

impl Running {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap();
    }
}

async fn post(base: &str, body: String) -> (u16, String, String) {
    let r = reqwest::Client::new().post(format!("{base}/add-checkpoint")).body(body).send().await.unwrap();
    let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (r.status().as_u16(), ct, r.text().await.unwrap())
}

/// Checks a cosignature line with ring over the spec's signed message; answers its time.
fn ring_check(line: &str, name: &str, public: &[u8; 32], body: &str) -> u64 {
    let (n, b64) = line.trim_end().strip_prefix("\u{2014} ").unwrap().split_once(' ').unwrap();
    assert_eq!(n, name);
    let blob = B64.decode(b64).unwrap();
    assert_eq!(blob.len(), 76);
    let t = u64::from_be_bytes(blob[4..12].try_into().unwrap());
    let msg = format!("cosignature/v1\ntime {t}\n{body}");
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public)
        .verify(msg.as_bytes(), &blob[12..])
        .expect("ring verifies the cosignature");
    t
}

#[tokio::test]
async fn the_witness_answers_as_the_spec_says() {
    let dir = tempfile::tempdir().unwrap();
    let (running, w) = start(dir.path()).await;
    let base = running.base.clone();
    let (name, public) = cosignature::parse_verifier_key(&w.verifier_key()).unwrap();
    let (leaves, note) = log("a", 10);

    // First sight: old 0, no proof.
    let (st, _, cosig) = post(&base, request(&leaves[..10], 0, &note)).await;
    assert_eq!(st, 200, "{cosig}");
    let body = cosignature::note_body(&note).unwrap();
    let t = ring_check(&cosig, &name, public.as_bytes(), body);
    assert!(t > 1_600_000_000, "a real timestamp");
    assert_eq!(cosignature::find(&format!("{note}{cosig}"), &name, &public).unwrap(), Some(t));

    // Growth with a consistency proof.
    let (leaves20, note20) = log("a", 20);
    let (st, _, cosig20) = post(&base, request(&leaves20, 10, &note20)).await;
    assert_eq!(st, 200, "{cosig20}");
    ring_check(&cosig20, &name, public.as_bytes(), cosignature::note_body(&note20).unwrap());

    // A stale old size: 409 with the size it knows, as text/x.tlog.size.
    let (leaves30, note30) = log("a", 30);
    let (st, ct, size) = post(&base, request(&leaves30, 10, &note30)).await;
    assert_eq!((st, ct.as_str(), size.as_str()), (409, "text/x.tlog.size", "20\n"));
    let (st, _, size) = post(&base, request(&leaves30, 0, &note30)).await;
    assert_eq!((st, size.as_str()), (409, "20\n"), "old 0 learns the size");

    // A bad proof, and a fork of the same size: 422, and nothing kept.
    let (forked, fork_note) = log("b", 30);
    let (st, _, why) = post(&base, request(&forked, 20, &fork_note)).await;
    assert_eq!(st, 422, "{why}");
    let (forked20, fork20) = log("b", 20);
    let (st, _, why) = post(&base, request(&forked20, 20, &fork20)).await;
    assert_eq!(st, 422, "same size, another root: {why}");
    let mut bad = AddCheckpoint::parse(&request(&leaves30, 20, &note30)).unwrap();
    bad.proof[0][0] ^= 1;
    assert_eq!(post(&base, bad.to_text()).await.0, 422);
    assert_eq!(w.size(ORIGIN), Some(20));
    assert_eq!(w.refusals(ORIGIN), 3, "each 422 is kept as evidence");

    // Not a log it follows; a signature it does not trust; a forged one; bad bodies.
    let stranger =
        checkpoint::sign(&Checkpoint { origin: "elsewhere/log".into(), size: 1, root: leaves[0] }, &log_key());
    assert_eq!(post(&base, format!("old 0\n\n{stranger}")).await.0, 404);
    let other = SigningKey::from_bytes(&[12; 32]);
    let wrong =
        checkpoint::sign(&Checkpoint { origin: ORIGIN.into(), size: 30, root: merkle::root(&leaves30) }, &other);
    assert_eq!(post(&base, request(&leaves30, 20, &wrong)).await.0, 403);
    let sig_line = note30.lines().last().unwrap();
    let blob = B64.decode(sig_line.rsplit(' ').next().unwrap()).unwrap();
    let mut flipped = blob.clone();
    flipped[10] ^= 1;
    let forged = note30.replace(&B64.encode(&blob), &B64.encode(&flipped));
    assert_eq!(post(&base, request(&leaves30, 20, &forged)).await.0, 403);
    assert_eq!(post(&base, format!("old 21\n\n{note20}")).await.0, 400, "old beyond the size");
    assert_eq!(post(&base, "size 3\n\nx".into()).await.0, 400);

    // The monitoring read.
    let hash = hex_sha(ORIGIN);
    let r = reqwest::get(format!("{base}/{hash}/checkpoint")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), format!("{note20}{cosig20}"));
    assert_eq!(reqwest::get(format!("{base}/{}/checkpoint", hex_sha("x"))).await.unwrap().status(), 404);

    // A restart keeps its memory: no rollback by restarting the witness.
    running.stop().await;
    drop(w);
    let (running, w) = start(dir.path()).await;
    assert_eq!(w.size(ORIGIN), Some(20));
    let (st, _, size) = post(&running.base, request(&leaves[..10], 0, &note)).await;
    assert_eq!((st, size.as_str()), (409, "20\n"));
    assert_eq!(post(&running.base, request(&leaves30, 20, &note30)).await.0, 200);
    running.stop().await;
}

fn hex_sha(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

#[test]
fn the_key_and_name_are_kept_and_rotate() {
    let dir = tempfile::tempdir().unwrap();
    let (name, key) = trail_witness::keys::load_or_create(dir.path(), Some("w1.test")).unwrap();
    assert_eq!(name, "w1.test");
    let (again, key2) = trail_witness::keys::load_or_create(dir.path(), None).unwrap();
    assert_eq!((again.as_str(), key2.to_bytes()), ("w1.test", key.to_bytes()));
    assert!(trail_witness::keys::load_or_create(dir.path(), Some("w2.test")).is_err());
    let rotated = trail_witness::keys::rotate(dir.path()).unwrap();
    assert_ne!(rotated.to_bytes(), key.to_bytes());
    assert_eq!(trail_witness::keys::load_or_create(dir.path(), None).unwrap().1.to_bytes(), rotated.to_bytes());
}

/// The request body example of `tlog-witness.md`, byte for byte, taken by the witness:
/// parsed (not 400), then 404 while it does not follow that log, and 403 when it
/// follows it under a key that did not sign it (the spec's log key is not published).
#[tokio::test]
async fn the_spec_request_example_is_read() {
    const SPEC_REQUEST: &str = include_str!("../../trail-core/testdata/tlog-witness-add-checkpoint.txt");
    let dir = tempfile::tempdir().unwrap();
    let (running, _) = start(dir.path()).await;
    assert_eq!(post(&running.base, SPEC_REQUEST.into()).await.0, 404);
    running.stop().await;
    let sofa =
        checkpoint::verifier_key("example.com/behind-the-sofa", &SigningKey::from_bytes(&[13; 32]).verifying_key());
    let w = trail_witness::Witness::new(
        "w.test".into(),
        SigningKey::from_bytes(&[14; 32]),
        &Policy::parse(&format!("log {sofa}\nquorum none\n")).unwrap(),
        trail_witness::state::State::open(&dir.path().join("sofa.db")).unwrap(),
    );
    assert_eq!(w.add_checkpoint(SPEC_REQUEST, 1_700_000_000).unwrap_err().status, 403);
}
