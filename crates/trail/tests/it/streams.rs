//! `trail streams` and `trail verify --received` as a user runs them: a stream made
//! from the command line, driven by `trail serve` to a syslog listener started here,
//! and the copy that listener kept proved against the checkpoint it received.

use std::{
    io::Read,
    net::TcpListener,
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use base64::Engine;

use crate::{
    cli::{run_err, signed_log},
    support::{run_ok, spawn_served, trail},
};

/// One message: its MSGID, structured data parameters and MSG.
type Message = (String, Vec<(String, String)>, String);

/// A syslog listener: every frame (octet-counted) parsed as RFC 5424, in the order
/// received.
fn listener() -> (Arc<Mutex<Vec<Message>>>, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let got: Arc<Mutex<Vec<Message>>> = Arc::default();
    let g = got.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let mut bytes = Vec::new();
            if conn.and_then(|mut c| c.read_to_end(&mut bytes)).is_err() {
                continue;
            }
            let mut rest = &bytes[..];
            while let Some(space) = rest.iter().position(|b| *b == b' ') {
                let len: usize = std::str::from_utf8(&rest[..space]).unwrap().parse().unwrap();
                let text = std::str::from_utf8(&rest[space + 1..space + 1 + len]).unwrap();
                rest = &rest[space + 1 + len..];
                let m = syslog_loose::parse_message(text, syslog_loose::Variant::RFC5424);
                let params = m
                    .structured_data
                    .iter()
                    .flat_map(|e| e.params().map(|(k, v)| (k.to_string(), v.to_string())))
                    .collect();
                g.lock().unwrap().push((m.msgid.unwrap_or_default().to_string(), params, m.msg.to_string()));
            }
        }
    });
    (got, port)
}

fn config(dir: &Path) -> String {
    let file = dir.join("trail.toml");
    std::fs::write(&file, "[streams]\nallow_private_destinations = true\nlease = \"1s\"\n").unwrap();
    file.to_str().unwrap().to_string()
}

#[test]
fn streams_from_the_command_line_and_a_received_copy_verified() {
    let (dir, vkey) = signed_log();
    let d = dir.path();
    let cfg = config(d);
    let (got, port) = listener();
    let address = format!("127.0.0.1:{port}");
    // Bad input is refused with the option named; internal addresses need the setting.
    let err = run_err(trail(d).args(["streams", "create", "--org", "acme", "--name", "x", "--kind", "ftp"]));
    assert!(err.contains("--kind"), "{err}");
    let err = run_err(trail(d).args([
        "streams",
        "create",
        "--org",
        "acme",
        "--name",
        "x",
        "--kind",
        "syslog",
        "--address",
        &address,
    ]));
    assert!(err.contains("allow_private_destinations"), "{err}");
    let out = run_ok(trail(d).args(["--config", &cfg, "streams", "create", "--org", "acme", "--name", "siem"]).args([
        "--kind",
        "syslog",
        "--address",
        &address,
        "--format",
        "jsonl",
        "--start",
        "beginning",
    ]));
    assert!(out.starts_with("stream 1 created; it starts at seq 0"), "{out}");
    let _server = spawn_served(trail(d).args(["--config", &cfg, "serve", "--listen", "127.0.0.1:0"]));
    // Every event arrives; the copy and its newest checkpoint prove it whole.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (lines, checkpoint) = loop {
        let end = run_ok(trail(d).args(["query", "--format", "jsonl", "--limit", "1000"])).lines().count();
        let msgs = got.lock().unwrap().clone();
        let lines: Vec<String> = msgs.iter().filter(|m| m.0 != "trail.batch").map(|m| m.2.clone()).collect();
        let newest = msgs.iter().rev().find(|m| m.0 == "trail.batch").and_then(|m| {
            let b64 = m.1.iter().find(|(k, _)| k == "checkpoint")?.1.clone();
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).ok()?).ok()
        });
        let covered = newest.as_deref().and_then(|n| n.lines().nth(1)?.parse::<usize>().ok());
        if end > 0 && lines.len() == end && covered == Some(end) {
            break (lines, newest.unwrap());
        }
        assert!(Instant::now() < deadline, "the stream did not deliver: {} of {end}", lines.len());
        std::thread::sleep(Duration::from_millis(50));
    };
    let copy = d.join("received.jsonl");
    std::fs::write(&copy, lines.join("\n")).unwrap();
    let saved = d.join("checkpoint.txt");
    std::fs::write(&saved, &checkpoint).unwrap();
    let args = |copy: &Path| {
        vec![
            "verify".to_string(),
            "--received".into(),
            copy.to_str().unwrap().into(),
            "--checkpoint".into(),
            saved.to_str().unwrap().into(),
            "--key".into(),
            vkey.clone(),
        ]
    };
    let ok = run_ok(trail(d).args(args(&copy)));
    assert!(ok.starts_with("ok: acme: seqs 0..") && ok.contains("complete, unaltered and in order"), "{ok}");
    let edited = d.join("edited.jsonl");
    std::fs::write(&edited, lines.join("\n").replacen("service:deploy", "service:delete", 1)).unwrap();
    let err = run_err(trail(d).args(args(&edited)));
    assert!(err.contains("edited, removed or reordered"), "{err}");
    // Pause, replay and delete, as the list shows them.
    let out = run_ok(trail(d).args(["streams", "pause", "--org", "acme", "1"]));
    assert_eq!(out.trim(), "stream 1 is paused");
    let list = run_ok(trail(d).args(["streams", "list", "--org", "acme"]));
    assert!(list.lines().nth(1).is_some_and(|l| l.contains("siem") && l.contains("paused")), "{list}");
    let out = run_ok(trail(d).args(["streams", "replay", "--org", "acme", "1", "--from", "3"]));
    assert_eq!(out.trim(), "stream 1 sends again from seq 3");
    let err = run_err(trail(d).args(["streams", "replay", "--org", "acme", "1", "--from", "yesterday"]));
    assert!(err.contains("--from"), "{err}");
    run_ok(trail(d).args(["streams", "delete", "--org", "acme", "1"]));
    let err = run_err(trail(d).args(["streams", "pause", "--org", "acme", "1"]));
    assert!(err.contains("no stream 1"), "{err}");
    let actions = run_ok(trail(d).args(["query", "--format", "jsonl", "category:stream"]));
    for a in ["stream:create", "stream:pause", "stream:replay", "stream:delete"] {
        assert!(actions.contains(a), "{a} is recorded: {actions}");
    }
}
