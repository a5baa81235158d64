//! A `trail serve`'s life as an operator's supervisor sees it: ready once started; on
//! SIGTERM it stops accepting, ends live streams, keeps every acknowledged event, and
//! exits within `[server] shutdown_timeout_secs`.

use crate::support::{self, run_ok, spawn_served};

use std::time::Duration;

#[test]
fn sigterm_ends_streams_keeps_what_was_acknowledged_and_exits_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = run_ok(support::trail(d).args(["keys", "create", "--org", "acme", "--scope", "platform"]));
    let key = key.trim().to_string();
    let mut served = spawn_served(
        support::trail(d).args(["serve", "--listen", "127.0.0.1:0"]).env("TRAIL_SHUTDOWN_TIMEOUT_SECS", "5"),
    );
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let http = reqwest::Client::new();
    rt.block_on(async {
        let r = http.get(format!("{}/readyz", served.base)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        // A live stream open, and events acknowledged.
        let mut live =
            http.get(format!("{}/api/v1/events/stream", served.base)).bearer_auth(&key).send().await.unwrap();
        assert_eq!(live.status(), 200);
        let body: String =
            (0..200).map(|i| format!("{{\"action\":\"user:update\",\"details\":{{\"n\":{i}}}}}\n")).collect();
        let r = http.post(format!("{}/api/v1/events", served.base)).bearer_auth(&key).body(body).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let pid = served.child.id();
        assert!(std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
        // The live stream ends (rather than holding the shutdown open).
        let ended =
            tokio::time::timeout(Duration::from_secs(10), async { while let Ok(Some(_)) = live.chunk().await {} })
                .await;
        assert!(ended.is_ok(), "the live stream was not ended by the shutdown");
    });
    // The exit, waited for on the process itself with a deadline (the test's own
    // timeout is 5 s, the margin is the slow machine's).
    let pid = served.child.id();
    let status = std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel();
        let child = &mut served.child;
        s.spawn(move || tx.send(child.wait().unwrap()));
        match rx.recv_timeout(Duration::from_secs(15)) {
            Ok(status) => status,
            Err(_) => {
                let _ = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status();
                panic!("trail serve did not exit within 15 s of SIGTERM");
            }
        }
    });
    assert!(status.success(), "{status}");
    // Every acknowledged event is stored.
    let out = run_ok(support::trail(d).args([
        "query",
        "category:user",
        "--org",
        "acme",
        "--limit",
        "1000",
        "--format",
        "jsonl",
    ]));
    assert_eq!(out.lines().filter(|l| l.contains("\"action\":\"user:update\"")).count(), 200, "{out}");
}
