//! An auditor's copy of a log: `trail mirror` fetches a running server's tiles with a
//! read key, `trail verify --mirror` checks the copy offline against the published
//! verifier key, and finds a changed byte; an `audit` key mirrors no entries.

use crate::{
    cli::run_err,
    support::{run_ok, spawn_served, trail, until},
};

#[tokio::test]
async fn an_auditor_mirrors_a_log_and_verifies_it_offline() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lines: String =
        (0..300).map(|i| format!("{{\"action\":\"service:deploy\",\"request_id\":\"r{i}\"}}\n")).collect();
    let file = d.join("events.ndjson");
    std::fs::write(&file, lines).unwrap();
    let key =
        |scope: &str| run_ok(trail(d).args(["keys", "create", "--org", "acme", "--scope", scope])).trim().to_string();
    let (read, audit) = (key("read"), key("audit"));
    run_ok(trail(d).args(["ingest", file.to_str().unwrap(), "--org", "acme"]));
    let vkey = run_ok(trail(d).args(["keys", "verifier", "--org", "acme"])).trim().to_string();
    let installation = run_ok(trail(d).args(["keys", "verifier", "--installation"]));
    assert!(installation.starts_with("trail.local/checkpoints+"), "{installation}");
    let taken = run_err(trail(d).args(["keys", "create", "--org", "checkpoints", "--scope", "read"]));
    assert!(taken.contains("installation's own log"), "{taken}");
    let server = spawn_served(trail(d).args(["serve", "--listen", "127.0.0.1:0"]));
    // The log grew by the keys' creation: wait for a checkpoint over all of it.
    let client = reqwest::Client::new();
    until("a checkpoint over the whole log", async || {
        let r = client.get(format!("{}/log/acme/checkpoint", server.base)).bearer_auth(&read).send().await.unwrap();
        let size = r.text().await.unwrap().lines().nth(1).and_then(|l| l.parse::<u64>().ok()).unwrap_or(0);
        (size >= 302).then_some(())
    })
    .await;
    let m = d.join("mirror");
    let mirror = |api_key: &str| {
        let mut c = trail(d);
        c.args(["mirror", "--url", &server.base, "--org", "acme", "--verifier-key", &vkey, "--out"])
            .arg(&m)
            .env("TRAIL_API_KEY", api_key);
        c
    };
    let out = run_ok(&mut mirror(&read));
    assert!(out.starts_with("mirrored ") && out.contains("0 already there"), "{out}");
    assert!(m.join("checkpoint").is_file() && m.join("tile/0/000").is_file() && m.join("tile/entries/000").is_file());
    let ok = run_ok(trail(d).args(["verify", "--mirror"]).arg(&m).args(["--key", &vkey]));
    assert!(ok.starts_with("ok: ") && ok.contains("entries of trail.local/acme"), "{ok}");
    // Again: what is there is checked, not fetched.
    let again = run_ok(&mut mirror(&read));
    assert!(!again.contains(" 0 already there"), "{again}");
    // One event's proof as a C2SP tlog-proof file, checked offline.
    let url = format!("{}/api/v1/proof/inclusion?index=5&format=tlog-proof", server.base);
    let proof = client.get(url).bearer_auth(&read).send().await.unwrap().text().await.unwrap();
    assert!(proof.starts_with("c2sp.org/tlog-proof@v1\nextra "), "{proof}");
    let file = d.join("entry5.tlog-proof");
    std::fs::write(&file, &proof).unwrap();
    let ok = run_ok(trail(d).arg("verify").arg(&file).args(["--key", &vkey]));
    assert!(ok.starts_with("ok: entry 5 (event ") && ok.contains("trail.local/acme"), "{ok}");
    std::fs::write(&file, proof.replacen("index 5", "index 6", 1)).unwrap();
    assert!(run_err(trail(d).arg("verify").arg(&file).args(["--key", &vkey])).contains("not proved"));
    assert!(run_err(trail(d).arg("verify").arg(&file)).contains("--key"));
    std::fs::write(&file, &proof).unwrap();
    // The same checkpoint, proved into the installation log: both files checked together.
    let size: u64 = proof.split("\n\n").nth(1).and_then(|cp| cp.lines().nth(1)?.parse().ok()).unwrap();
    let url = format!("{}/api/v1/checkpoint?size={size}&format=tlog-proof", server.base);
    let cp_proof = until("the checkpoint in the installation log", async || {
        let r = client.get(&url).bearer_auth(&read).send().await.unwrap();
        if r.status() == 200 {
            Some(r.text().await.unwrap())
        } else {
            None
        }
    })
    .await;
    let cp_file = d.join("checkpoint.tlog-proof");
    std::fs::write(&cp_file, &cp_proof).unwrap();
    let ikey = run_ok(trail(d).args(["keys", "verifier", "--org", "_installation"])).trim().to_string();
    assert_eq!(ikey, installation.trim());
    let both =
        run_ok(trail(d).arg("verify").arg(&file).arg(&cp_file).args(["--key", &vkey, "--installation-key", &ikey]));
    assert!(both.contains(&format!("checkpoint trail.local/acme of size {size} is entry ")), "{both}");
    assert!(run_err(trail(d).arg("verify").arg(&cp_file).args(["--key", &vkey])).contains("--installation-key"));
    let wrong = run_err(trail(d).arg("verify").arg(&cp_file).args(["--installation-key", &vkey]));
    assert!(wrong.contains("checkpoint.tlog-proof"), "{wrong}");
    // An event proof of another checkpoint does not go with it.
    let url = format!("{}/api/v1/proof/inclusion?index=5&size={}&format=tlog-proof", server.base, size - 1);
    let older = client.get(url).bearer_auth(&read).send().await.unwrap().text().await.unwrap();
    if older.starts_with("c2sp.org/tlog-proof@v1") {
        std::fs::write(&file, older).unwrap();
        let apart = run_err(trail(d).arg("verify").arg(&file).arg(&cp_file).args([
            "--key",
            &vkey,
            "--installation-key",
            &ikey,
        ]));
        assert!(apart.contains("not the one proved"), "{apart}");
    }
    // An audit key reads the tree but not the entries.
    let refused = run_err(&mut mirror(&audit));
    assert!(refused.contains("403"), "{refused}");
    // A changed byte is found offline.
    let tile = m.join("tile/0/000");
    let mut bytes = std::fs::read(&tile).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&tile, bytes).unwrap();
    let err = run_err(trail(d).args(["verify", "--mirror"]).arg(&m).args(["--key", &vkey]));
    assert!(err.contains("root"), "{err}");
}
