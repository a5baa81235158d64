//! README's shell blocks run as written. A `trail serve --demo` is started in a fresh
//! directory, and every ```sh block of README.md (but those marked `<!-- README test:
//! not run (why) -->`) runs in order in one `bash -Eeuo pipefail`, as a reader would
//! paste them: `trail` on the PATH, the demo's URL, read key and one-time password put
//! where README says to, `curl` failing on an HTTP error. An undefined variable, a
//! failing command or a refused request fails the test, naming the block's line.
//!
//! Hosts outside this machine (`https://hooks.example.com/…`, `siem.example.com:6514`)
//! are pointed at a local sink, and the server is told to allow private destinations
//! for it; nothing else of README is changed.

use std::{
    io::{BufRead, BufReader, Read, Write},
    path::Path,
    process::{Command, Stdio},
};

/// The ```sh blocks of `text` to run, with the line each starts on.
fn shell_blocks(text: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == "```sh" {
            let skipped = i > 0 && lines[i - 1].starts_with("<!-- README test: not run");
            let start = i + 1;
            let mut end = start;
            while end < lines.len() && lines[end].trim() != "```" {
                end += 1;
            }
            if !skipped {
                out.push((start + 1, lines[start..end].join("\n")));
            }
            i = end;
        }
        i += 1;
    }
    out
}

/// README's block with this run's values put where README asks the reader to.
fn fill(block: &str, base: &str, read: &str, otp: &str, sink: &str) -> String {
    let mut out = Vec::new();
    for line in block.lines() {
        let line = line.replace("http://127.0.0.1:8080", base);
        let line = if line.starts_with("KEY=trail_rd_…") {
            format!("KEY={read}")
        } else if line.starts_with("OTP=…") {
            format!("OTP={otp}")
        } else {
            line
        };
        out.push(outside_to(&line, sink));
    }
    out.join("\n")
}

/// Every `https://host[:port]` and `"address":"host:port"` of a host outside this
/// machine, pointed at `sink` (`127.0.0.1:PORT`).
fn outside_to(line: &str, sink: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(at) = rest.find("https://") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "https://".len()..];
        let host_end = after.find(['/', '"', '\'', ' ']).unwrap_or(after.len());
        out.push_str(&format!("http://{sink}"));
        rest = &after[host_end..];
    }
    out.push_str(rest);
    match out.find("\"address\":\"") {
        Some(at) => {
            let start = at + "\"address\":\"".len();
            let end = start + out[start..].find('"').unwrap_or(0);
            format!("{}{sink}{}", &out[..start], &out[end..])
        }
        None => out,
    }
}

/// A peer for webhooks, chat and SIEM streams: answers every request 200.
fn sink() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn every_shell_block_of_the_readme_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let blocks = shell_blocks(&readme);
    assert!(blocks.len() >= 8, "README's shell blocks: {}", blocks.len());
    let dir = tempfile::tempdir().unwrap();
    let (work, bin) = (dir.path().join("work"), dir.path().join("bin"));
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_trail"), bin.join("trail")).unwrap();
    std::fs::write(
        work.join("trail.toml"),
        "[alerts]\nallow_private_destinations = true\n[streams]\nallow_private_destinations = true\n",
    )
    .unwrap();
    let sink = sink();
    let mut server = Command::new(env!("CARGO_BIN_EXE_trail"))
        .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
        .current_dir(&work)
        .env("TRAIL_LOG", "warn")
        .env_remove("TRAIL_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let served = Served(&mut server);
    let mut lines = BufReader::new(served.0.stdout.take().unwrap()).lines().map_while(Result::ok);
    let (mut base, mut read, mut otp) = (String::new(), String::new(), String::new());
    for line in lines.by_ref() {
        let last = line.rsplit(' ').next().unwrap_or_default().to_string();
        if let Some(url) = line.strip_prefix("Trail is running at ") {
            base = url.to_string();
        } else if line.starts_with("read key") {
            read = last;
        } else if line.starts_with("one-time password") {
            otp = last;
            break;
        }
    }
    assert!(!base.is_empty() && !read.is_empty() && !otp.is_empty(), "the demo printed its URL, key and password");
    std::thread::spawn(move || lines.for_each(drop));
    // README's proofs are of demo events: wait (with a deadline) for the first
    // checkpoint, signed about a second after the server starts.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let r = reqwest::Client::new().get(format!("{base}/api/v1/checkpoint")).bearer_auth(&read).send().await;
            if r.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "no checkpoint of the demo within 120 s");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    });

    let mut script = String::from(
        "set -Eeuo pipefail\n\
         curl() { command curl --fail-with-body --silent --show-error --max-time 120 \"$@\"; }\n\
         trap 'echo \"README block at line $README_LINE failed (exit $?)\" >&2' ERR\n",
    );
    for (line, block) in &blocks {
        let filled = fill(block, &base, &read, &otp, &sink);
        for (i, l) in filled.lines().enumerate() {
            let code = l.split(" #").next().unwrap_or_default();
            assert!(
                !code.contains('…') || l.trim_start().starts_with('#'),
                "README line {}: a placeholder left: {l}",
                line + i
            );
        }
        script.push_str(&format!("README_LINE={line}\n{filled}\necho\n"));
    }
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(&work)
        .env("PATH", path)
        .env("TRAIL_LOG", "warn")
        .env_remove("TRAIL_CONFIG")
        .output()
        .expect("bash runs README's blocks");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let tail: String = stdout.chars().rev().take(3000).collect::<Vec<_>>().into_iter().rev().collect();
    assert!(out.status.success(), "{stderr}\n--- the last output:\n{tail}");
    // What the blocks did is there: an export, a verified log, a changed password.
    assert!(stdout.contains("ok: acme:"), "trail verify --org acme ran: {tail}");
    assert!(std::fs::read_dir(&work).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".pdf")));
    drop(served);
}

/// Stops the server however the test ends.
struct Served<'a>(&'a mut std::process::Child);

impl Drop for Served<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn placeholders_and_outside_hosts_are_filled() {
    let block = "KEY=trail_rd_…   # the read key\nOTP=…\ncurl http://127.0.0.1:8080/x -d '{\"url\":\"https://hooks.example.com/t\",\"address\":\"siem.example.com:6514\"}'";
    let filled = fill(block, "http://127.0.0.1:9", "trail_rd_k", "pw", "127.0.0.1:7");
    assert_eq!(
        filled,
        "KEY=trail_rd_k\nOTP=pw\ncurl http://127.0.0.1:9/x -d '{\"url\":\"http://127.0.0.1:7/t\",\"address\":\"127.0.0.1:7\"}'"
    );
}

/// The shipped binary keeps line tables, not full debug info (213 MB before); the
/// `profiling` profile keeps what `perf` needs.
#[test]
fn the_release_profile_ships_line_tables_only() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let manifest: toml::Value = toml::from_str(&std::fs::read_to_string(root.join("Cargo.toml")).unwrap()).unwrap();
    let profile = &manifest["profile"];
    assert_eq!(profile["release"]["debug"].as_str(), Some("line-tables-only"));
    assert_eq!(profile["release"]["split-debuginfo"].as_str(), Some("packed"));
    assert_eq!(profile["profiling"]["inherits"].as_str(), Some("release"));
    assert_eq!(profile["profiling"]["debug"].as_integer(), Some(1));
}
