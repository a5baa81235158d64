//! Witnessed checkpoints end to end, on both backends: real `trail witness serve`
//! processes on loopback ports, each with its own data directory, and `trail serve`
//! submitting the installation log's checkpoints to them under a C2SP tlog-policy.
//! The quorum reached and checked offline (`trail verify --policy`, files and mirrors),
//! one witness down of 2-of-3 and two down (lagging, health degraded, nothing lost,
//! caught up on their return), a rotated witness key; and the attacks the witnesses
//! stop: a log cut short after a witnessed checkpoint, and two servers with copies of
//! the store and key that diverge.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use serde_json::{json, Value};
use trail_core::policy::Policy;
use trail_store::testing::Cluster;

use crate::support::{self, run_ok, spawn_served, until, Served};

/// Where a Trail server keeps its store.
#[derive(Clone)]
enum Db {
    Sqlite,
    Pg(String),
}

fn trail(d: &Path, db: &Db) -> Command {
    let mut c = support::trail(d);
    if let Db::Pg(url) = db {
        c.arg("--database").arg(url);
    }
    c
}

/// A `trail witness serve`, killed when dropped.
pub(crate) struct WitnessProc {
    child: Child,
    dir: PathBuf,
    pub(crate) addr: String,
}

impl WitnessProc {
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for WitnessProc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the witness of `dir` on `listen`, following the logs of `policy`.
pub(crate) fn witness(dir: &Path, listen: &str, policy: &Path) -> WitnessProc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_trail"))
        .args(["witness", "serve", "--data-dir"])
        .arg(dir)
        .args(["--listen", listen, "--policy"])
        .arg(policy)
        .env("TRAIL_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first.split(" listening on http://").nth(1).and_then(|r| r.split(',').next()).expect(&first);
    let addr = addr.to_string();
    std::thread::spawn(move || for _ in lines.by_ref() {});
    WitnessProc { child, dir: dir.to_path_buf(), addr }
}

pub(crate) fn witness_key(dir: &Path, name: &str) -> String {
    let out = run_ok(
        Command::new(env!("CARGO_BIN_EXE_trail"))
            .args(["witness", "keys", "--data-dir"])
            .arg(dir)
            .args(["--name", name]),
    );
    out.trim().to_string()
}

/// Three witnesses and the policy Trail and verifiers use (2 of 3).
struct Setup {
    d: PathBuf,
    db: Db,
    policy: PathBuf,
    ikey: String,
    okey: String,
    ingest: String,
    read: String,
    witnesses: Vec<Option<WitnessProc>>,
    vkeys: Vec<String>,
}

fn policy_text(ikey: &str, vkeys: &[String], addrs: &[String]) -> String {
    let mut t = format!("# Trail's installation log and its witnesses\nlog {ikey}\n");
    for (i, (v, a)) in vkeys.iter().zip(addrs).enumerate() {
        t.push_str(&format!("witness w{} {v} http://{a}\n", i + 1));
    }
    t.push_str("group three 2 w1 w2 w3\nquorum three\n");
    t
}

fn setup(root: &Path, db: Db) -> Setup {
    let d = root.join("trail");
    std::fs::create_dir_all(&d).unwrap();
    let key = |scope: &str| run_ok(trail(&d, &db).args(["keys", "create", "--org", "acme", "--scope", scope]));
    let (ingest, read) = (key("ingest").trim().to_string(), key("read").trim().to_string());
    let ikey = run_ok(trail(&d, &db).args(["keys", "verifier", "--org", "_installation"])).trim().to_string();
    let okey = run_ok(trail(&d, &db).args(["keys", "verifier", "--org", "acme"])).trim().to_string();
    // The witnesses follow the installation log only.
    let follow = root.join("follow.policy");
    std::fs::write(&follow, format!("log {ikey}\nquorum none\n")).unwrap();
    let mut witnesses = Vec::new();
    let mut vkeys = Vec::new();
    for i in 1..=3 {
        let wd = root.join(format!("w{i}"));
        vkeys.push(witness_key(&wd, &format!("w{i}.witness.test")));
        witnesses.push(Some(witness(&wd, "127.0.0.1:0", &follow)));
    }
    let addrs: Vec<String> = witnesses.iter().map(|w| w.as_ref().unwrap().addr.clone()).collect();
    let policy = root.join("trail.policy");
    std::fs::write(&policy, policy_text(&ikey, &vkeys, &addrs)).unwrap();
    std::fs::write(
        d.join("trail.toml"),
        format!("[witness]\npolicy = \"{}\"\nlagging_after = \"2s\"\ntimeout = \"2s\"\n", policy.display()),
    )
    .unwrap();
    Setup { d, db, policy, ikey, okey, ingest, read, witnesses, vkeys }
}

impl Setup {
    fn serve(&self) -> Served {
        let mut c = trail(&self.d, &self.db);
        c.current_dir(&self.d).args(["serve", "--listen", "127.0.0.1:0"]);
        spawn_served(&mut c)
    }

    fn follow(&self) -> PathBuf {
        self.d.parent().unwrap().join("follow.policy")
    }

    fn restart_witness(&mut self, i: usize) {
        let w = self.witnesses[i].take().expect("a witness of the setup");
        let (dir, addr) = (w.dir.clone(), w.addr.clone());
        drop(w);
        let follow = self.follow();
        self.witnesses[i] = Some(witness(&dir, &addr, &follow));
    }
}

/// Ingests `n` events; answers the last one's seq.
async fn ingest(base: &str, key: &str, tag: &str, n: usize) -> u64 {
    let events: Vec<Value> = (0..n)
        .map(|i| json!({"action": "doc:update", "actor": {"id": format!("u{i}")}, "request_id": format!("{tag}-{i}")}))
        .collect();
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/events"))
        .bearer_auth(key)
        .json(&events)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["events"].as_array().unwrap().last().unwrap()["seq"].as_u64().unwrap()
}

async fn health(base: &str) -> Value {
    reqwest::get(format!("{base}/healthz")).await.unwrap().json().await.unwrap()
}

/// Waits until the newest signed installation checkpoint is witnessed (and at least
/// `at_least`), answering the health then.
async fn witnessed(base: &str, at_least: u64) -> Value {
    until("the newest installation checkpoint witnessed", async || {
        let h = health(base).await;
        let w = &h["witness"];
        let (signed, witnessed) = (w["newest_signed"].as_u64()?, w["newest_witnessed"].as_u64()?);
        (signed >= at_least && witnessed == signed && signed > 0).then_some(h)
    })
    .await
}

async fn get_text(base: &str, key: &str, path: &str) -> (u16, String) {
    let r = reqwest::Client::new().get(format!("{base}{path}")).bearer_auth(key).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The newest acme checkpoint's size whose proof into a witnessed installation
/// checkpoint is served (one covering entry `seq` at least), with that proof and an
/// event's proof into it.
async fn proofs(s: &Setup, base: &str, seq: u64) -> (u64, String, String) {
    until("proofs into a witnessed installation checkpoint", async || {
        let (_, note) = get_text(base, &s.read, "/api/v1/checkpoint").await;
        let size: u64 = note.lines().nth(1)?.parse().ok().filter(|size| *size > seq)?;
        let (st, cp) = get_text(base, &s.read, &format!("/api/v1/checkpoint?size={size}&format=tlog-proof")).await;
        let policy = Policy::parse(&std::fs::read_to_string(&s.policy).unwrap()).unwrap();
        let p = trail_core::tlog_proof::TlogProof::parse(&cp).ok()?;
        if st != 200 || !policy.check(&p.checkpoint).ok()?.quorum {
            return None;
        }
        let (st, ev) =
            get_text(base, &s.read, &format!("/api/v1/proof/inclusion?index=0&size={size}&format=tlog-proof")).await;
        (st == 200).then_some((size, ev, cp))
    })
    .await
}

fn verify(s: &Setup, files: &[&Path], policy: &Path) -> std::process::Output {
    let mut c = support::trail(&s.d);
    c.arg("verify").args(files).args(["--key", &s.okey, "--policy"]).arg(policy);
    c.output().unwrap()
}

/// Checks one cosignature line with ring, not the ed25519-dalek that made it.
fn ring_verifies(line: &str, vkey: &str, body: &str) -> bool {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let public = b64.decode(vkey.splitn(3, '+').nth(2).unwrap()).unwrap();
    let blob = b64.decode(line.trim_end().rsplit(' ').next().unwrap()).unwrap();
    let t = u64::from_be_bytes(blob[4..12].try_into().unwrap());
    let msg = format!("cosignature/v1\ntime {t}\n{body}");
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &public[1..])
        .verify(msg.as_bytes(), &blob[12..])
        .is_ok()
}

async fn witnessed_checkpoints(db: Db) {
    let root = tempfile::tempdir().unwrap();
    let mut s = setup(root.path(), db);
    let server = s.serve();
    let base = server.base.clone();
    ingest(&base, &s.ingest, "a", 20).await;
    let h = witnessed(&base, 1).await;
    assert_eq!(h["status"], "ok", "{h}");
    let names: Vec<&str> =
        h["witness"]["witnesses"].as_array().unwrap().iter().map(|w| w["status"].as_str().unwrap()).collect();
    assert!(names.iter().filter(|s| **s == "cosigned").count() >= 2, "{h}");
    assert_eq!(h["witness"]["quorum"], "2 of (w1, w2, w3)");

    // The installation checkpoint is served with the cosignatures as extra lines,
    // checked here with ring.
    let (_, note) = get_text(&base, &s.read, "/log/_installation/checkpoint").await;
    let body = trail_core::cosignature::note_body(&note).unwrap().to_string();
    let cosigned: Vec<&str> = note.lines().filter(|l| l.contains(".witness.test ")).collect();
    assert!(!cosigned.is_empty(), "{note}");
    for line in &cosigned {
        let i: usize = line.split(".witness.test").next().unwrap().trim_start_matches("\u{2014} w").parse().unwrap();
        assert!(ring_verifies(line, &s.vkeys[i - 1], &body), "{line}");
    }

    // Offline, under the policy: an event's proof with its checkpoint's.
    let (size, ev, cp) = proofs(&s, &base, 0).await;
    let (evf, cpf) = (s.d.join("event.tlog-proof"), s.d.join("checkpoint.tlog-proof"));
    std::fs::write(&evf, &ev).unwrap();
    std::fs::write(&cpf, &cp).unwrap();
    let out = verify(&s, &[&evf, &cpf], &s.policy);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said} {}", String::from_utf8_lossy(&out.stderr));
    assert!(
        said.contains(&format!("trail.local/acme of size {size} is entry")) && said.contains("witnessed by w"),
        "{said}"
    );
    let alone = verify(&s, &[&evf], &s.policy);
    assert!(!alone.status.success() && String::from_utf8_lossy(&alone.stderr).contains("witnessed installation log"));
    // The evidence export carries the same.
    let evidence_file = s.d.join("evidence.jsonl");
    until("an evidence file proved into a witnessed checkpoint", async || {
        let (_, evidence) = get_text(&base, &s.read, "/api/v1/export?format=evidence").await;
        std::fs::write(&evidence_file, &evidence).unwrap();
        verify(&s, &[&evidence_file], &s.policy).status.success().then_some(())
    })
    .await;

    // Mirrors: the installation log's own, and acme's with its checkpoint's proof.
    let m = s.d.join("inst-mirror");
    let ok = until("a mirror of the installation log at a witnessed checkpoint", async || {
        let mut mirror = support::trail(&s.d);
        mirror.args(["mirror", "--url", &base, "--org", "_installation", "--verifier-key", &s.ikey, "--out"]);
        run_ok(mirror.arg(&m).env("TRAIL_API_KEY", &s.read));
        let out =
            support::trail(&s.d).args(["verify", "--mirror"]).arg(&m).arg("--policy").arg(&s.policy).output().unwrap();
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).to_string())
    })
    .await;
    assert!(ok.contains("witnessed by w"), "{ok}");
    let am = s.d.join("acme-mirror");
    until("an acme mirror with a witnessed checkpoint proof", async || {
        run_ok(
            support::trail(&s.d)
                .args(["mirror", "--url", &base, "--org", "acme", "--verifier-key", &s.okey, "--out"])
                .arg(&am)
                .env("TRAIL_API_KEY", &s.read),
        );
        let out = support::trail(&s.d)
            .args(["verify", "--mirror"])
            .arg(&am)
            .args(["--key", &s.okey, "--policy"])
            .arg(&s.policy)
            .output()
            .unwrap();
        out.status.success().then_some(())
    })
    .await;

    // One witness down of 2-of-3: still witnessed.
    s.witnesses[2].as_mut().unwrap().stop();
    ingest(&base, &s.ingest, "b", 5).await;
    let signed = health(&base).await["witness"]["newest_signed"].as_u64().unwrap();
    witnessed(&base, signed + 1).await;

    // Two down: not witnessed, health says so, `witness:lagging` recorded; nothing lost.
    s.witnesses[1].as_mut().unwrap().stop();
    ingest(&base, &s.ingest, "c", 5).await;
    let h = until("health degraded by the lag", async || {
        let h = health(&base).await;
        (h["status"] == "degraded" && h["witness"]["lagging"] == true).then_some(h)
    })
    .await;
    assert!(h["witness"]["newest_witnessed"].as_u64() < h["witness"]["newest_signed"].as_u64(), "{h}");
    until("witness:lagging recorded", async || {
        let (_, list) = get_text(&base, &s.read, "/api/v1/events?action=witness:lagging").await;
        list.contains("witness:lagging").then_some(())
    })
    .await;
    let (_, c) = get_text(&base, &s.read, "/api/v1/events?request_id=c-4").await;
    assert!(c.contains("c-4"), "ingest never waits for witnesses");

    // They come back: witnessed again, health ok.
    s.restart_witness(1);
    s.restart_witness(2);
    let signed = health(&base).await["witness"]["newest_signed"].as_u64().unwrap();
    witnessed(&base, signed).await;
    until("health ok again", async || (health(&base).await["status"] == "ok").then_some(())).await;

    // Rotation: w1's key rotated and the policy changed; its new cosignatures count
    // under the new policy, not the old.
    drop(server);
    let old_policy = root.path().join("old.policy");
    std::fs::copy(&s.policy, &old_policy).unwrap();
    let w1 = s.witnesses[0].take().unwrap();
    let (w1dir, w1addr) = (w1.dir.clone(), w1.addr.clone());
    drop(w1);
    let rotated = run_ok(
        Command::new(env!("CARGO_BIN_EXE_trail")).args(["witness", "keys", "--rotate", "--data-dir"]).arg(&w1dir),
    )
    .trim()
    .to_string();
    assert_ne!(rotated, s.vkeys[0]);
    s.vkeys[0] = rotated;
    let addrs: Vec<String> =
        s.witnesses.iter().map(|w| w.as_ref().map_or(w1addr.clone(), |w| w.addr.clone())).collect();
    std::fs::write(&s.policy, policy_text(&s.ikey, &s.vkeys, &addrs)).unwrap();
    s.witnesses[0] = Some(witness(&w1dir, &w1addr, &s.follow()));
    let server = s.serve();
    let base = server.base.clone();
    ingest(&base, &s.ingest, "d", 5).await;
    until("w1 cosigning with its new key", async || {
        let (_, note) = get_text(&base, &s.read, "/log/_installation/checkpoint").await;
        let new = Policy::parse(&std::fs::read_to_string(&s.policy).unwrap()).unwrap().check(&note).ok()?;
        let old = Policy::parse(&std::fs::read_to_string(&old_policy).unwrap()).unwrap().check(&note).ok()?;
        (new.cosigners.contains(&"w1".to_string()) && !old.cosigners.contains(&"w1".to_string())).then_some(())
    })
    .await;
    drop(server);
}

async fn attacks_are_stopped(db: Db) {
    let root = tempfile::tempdir().unwrap();

    let s = setup(root.path(), db.clone());
    let server = s.serve();
    let base = server.base.clone();
    // Witnessed up to a checkpoint covering these events.
    let a = ingest(&base, &s.ingest, "a", 10).await;
    proofs(&s, &base, a).await;
    drop(server);

    // A copy of the store and key as it is now (the insider's).
    let copy_dir = root.path().join("copy");
    std::fs::create_dir_all(&copy_dir).unwrap();
    for f in std::fs::read_dir(&s.d).unwrap() {
        let p = f.unwrap().path();
        // Not SQLite's shared-memory index of the WAL: it is rebuilt from the WAL.
        if p.is_file() && !p.to_string_lossy().ends_with("-shm") {
            std::fs::copy(&p, copy_dir.join(p.file_name().unwrap())).unwrap();
        }
    }
    let copy_db = match &db {
        Db::Sqlite => Db::Sqlite,
        Db::Pg(url) => Db::Pg(Cluster::shared().copy_database(url)),
    };

    // The log goes on and is witnessed further.
    let server = s.serve();
    let base = server.base.clone();
    let b = ingest(&base, &s.ingest, "b", 10).await;
    proofs(&s, &base, b).await;
    drop(server);

    // Fork, or the tail cut: the copy (an older state, same key) serves and grows
    // differently. The witnesses that saw the first history refuse it.
    let forked = Setup { d: copy_dir.clone(), db: copy_db, ..setup_view(&s) };
    let server = forked.serve();
    let base = server.base.clone();
    ingest(&base, &forked.ingest, "evil", 3).await;
    let h = until("the witnesses refusing the other history", async || {
        let h = health(&base).await;
        let refused = h["witness"]["witnesses"].as_array()?.iter().filter(|w| w["status"] == "refused").count();
        (refused >= 2).then_some(h)
    })
    .await;
    assert_eq!(h["status"], "degraded", "{h}");
    assert!(h["witness"]["newest_witnessed"].as_u64() < h["witness"]["newest_signed"].as_u64(), "{h}");
    until("witness:refused recorded", async || {
        let (_, list) = get_text(&base, &forked.read, "/api/v1/events?action=witness:refused").await;
        list.contains("witness:refused").then_some(())
    })
    .await;
    // Its newest checkpoint cannot be accepted under the policy, and the message names
    // what the witnesses have cosigned.
    let (_, note) = get_text(&base, &forked.read, "/api/v1/checkpoint").await;
    let size: u64 = note.lines().nth(1).unwrap().parse().unwrap();
    let cp = until("the forked checkpoint in its installation log", async || {
        let (st, cp) =
            get_text(&base, &forked.read, &format!("/api/v1/checkpoint?size={size}&format=tlog-proof")).await;
        (st == 200).then_some(cp)
    })
    .await;
    let cpf = copy_dir.join("forked.tlog-proof");
    std::fs::write(&cpf, cp).unwrap();
    let out = verify(&forked, &[&cpf], &forked.policy);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("is not witnessed"), "{err}");
    assert!(err.contains("the witnesses' newest cosigned sizes: w1 "), "{err}");
    drop(server);
}

/// The same keys and witnesses, another store.
fn setup_view(s: &Setup) -> Setup {
    Setup {
        d: s.d.clone(),
        db: s.db.clone(),
        policy: s.policy.clone(),
        ikey: s.ikey.clone(),
        okey: s.okey.clone(),
        ingest: s.ingest.clone(),
        read: s.read.clone(),
        witnesses: vec![],
        vkeys: s.vkeys.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_checkpoints_are_witnessed() {
    witnessed_checkpoints(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_checkpoints_are_witnessed() {
    witnessed_checkpoints(Db::Pg(Cluster::shared().database())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_witnesses_stop_a_cut_and_a_fork() {
    attacks_are_stopped(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_witnesses_stop_a_cut_and_a_fork() {
    attacks_are_stopped(Db::Pg(Cluster::shared().database())).await;
}

/// A witness that does not follow this installation's log answers 404: a configuration
/// error, shown in health (degraded) and never retried into a quorum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misconfigured_witness_is_shown_in_health() {
    let root = tempfile::tempdir().unwrap();
    let s = setup(root.path(), Db::Sqlite);
    // A fourth witness, following some other log, named alone in the policy.
    let other = trail_core::checkpoint::verifier_key(
        "elsewhere/checkpoints",
        &ed25519_dalek::SigningKey::from_bytes(&[5; 32]).verifying_key(),
    );
    let follow = root.path().join("other.policy");
    std::fs::write(&follow, format!("log {other}\nquorum none\n")).unwrap();
    let wd = root.path().join("w4");
    let vkey = witness_key(&wd, "w4.witness.test");
    let w4 = witness(&wd, "127.0.0.1:0", &follow);
    let admin =
        run_ok(trail(&s.d, &s.db).args(["keys", "create", "--org", "acme", "--scope", "admin"])).trim().to_string();
    std::fs::write(&s.policy, format!("log {}\nwitness w4 {vkey} http://{}\nquorum w4\n", s.ikey, w4.addr)).unwrap();
    let server = s.serve();
    ingest(&server.base, &s.ingest, "a", 3).await;
    let h = until("the witness shown misconfigured", async || {
        let h = health(&server.base).await;
        (h["witness"]["witnesses"][0]["status"] == "misconfigured").then_some(h)
    })
    .await;
    assert_eq!(h["status"], "degraded", "{h}");
    assert!(h["witness"]["witnesses"][0]["detail"].as_str().unwrap().starts_with("404"), "{h}");
    assert_eq!(h["witness"]["newest_witnessed"], 0);
    // Administrators get it with who they are (the page's banner); readers do not.
    let me = |key: String| {
        let base = server.base.clone();
        async move {
            let r = reqwest::Client::new().get(format!("{base}/api/v1/auth/me")).bearer_auth(key).send().await.unwrap();
            r.json::<Value>().await.unwrap()
        }
    };
    let shown = me(admin).await;
    assert_eq!(shown["witness"]["witnesses"][0]["status"], "misconfigured", "{shown}");
    assert!(me(s.read.clone()).await.get("witness").is_none());
    drop(server);
}

/// A policy that does not parse, or whose `log` line is not this installation's log,
/// stops `trail serve` at once with a message naming what is wrong.
#[test]
fn a_wrong_policy_stops_the_server_with_its_reason() {
    let root = tempfile::tempdir().unwrap();
    let d = root.path();
    let run = |policy: &str| {
        std::fs::write(d.join("trail.policy"), policy).unwrap();
        std::fs::write(d.join("trail.toml"), format!("[witness]\npolicy = \"{}\"\n", d.join("trail.policy").display()))
            .unwrap();
        let out = support::trail(d)
            .arg("--config")
            .arg(d.join("trail.toml"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let err = run("log nonsense\nquorum none\n");
    assert!(err.contains("[witness] policy") && err.contains("line 1"), "{err}");
    let other = trail_core::checkpoint::verifier_key(
        "elsewhere/checkpoints",
        &ed25519_dalek::SigningKey::from_bytes(&[5; 32]).verifying_key(),
    );
    let w = trail_core::cosignature::verifier_key(
        "w.test",
        &ed25519_dalek::SigningKey::from_bytes(&[6; 32]).verifying_key(),
    );
    let err = run(&format!("log {other}\nwitness w {w} http://127.0.0.1:9\nquorum w\n"));
    assert!(err.contains("no `log` line names this installation's log"), "{err}");
}
