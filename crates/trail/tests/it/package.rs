//! The Debian package, as an operator installs it: built with `cargo deb` (pinned in
//! `.ci/run`) from this build's binary, installed with `dpkg -i`, run as the `trail`
//! user against the installed configuration (ready at `/readyz`), upgraded to a second
//! build with the data and the signing key kept, then removed and purged (the data
//! directory stays: it is the operator's). `systemd-analyze verify` checks the unit.
//! Runs as root; one package test at a time on the machine (a lock file).

use crate::support::spawn_served;

use std::{
    path::Path,
    process::{Command, Stdio},
};

const MARKER: &str = "/var/lib/trail/.trail-package-test";

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `cargo deb` of this build's `trail` (the test profile's binary) at `version`.
fn build(out: &Path, version: &str) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let said = sh(Command::new(env!("CARGO"))
        .current_dir(&root)
        .args(["deb", "-p", "trail", "--no-build", "--profile", "dev", "--deb-version", version, "-o"])
        .arg(out)
        .env_remove("CARGO_TARGET_DIR"));
    let deb = said.lines().rev().find(|l| l.ends_with(".deb")).expect("cargo deb names its package").trim();
    Path::new(deb).to_path_buf()
}

/// The installed `trail`, as the `trail` user, on the installed configuration.
fn as_trail(args: &[&str]) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", "trail", "--", "/usr/bin/trail", "--config", "/etc/trail/trail.toml"])
        .args(args)
        .env("TRAIL_LOG", "warn")
        .env_remove("TRAIL_CONFIG")
        .env_remove("TRAIL_DATA_DIR")
        .current_dir("/");
    c
}

fn ready_and_count(key: &str) -> usize {
    let served = spawn_served(&mut as_trail(&["serve", "--listen", "127.0.0.1:0"]));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let ready = http.get(format!("{}/readyz", served.base)).send().await.unwrap();
        assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap());
        let r = http
            .post(format!("{}/api/v1/events", served.base))
            .bearer_auth(key)
            .body("{\"action\":\"package:test\"}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let list: serde_json::Value = http
            .get(format!("{}/api/v1/events?category=package&limit=1000", served.base))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list["events"].as_array().unwrap().len()
    })
}

#[test]
fn the_debian_package_installs_runs_upgrades_and_removes() {
    let lock = std::fs::File::create(std::env::temp_dir().join("trail-package-test.lock")).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    // Never over a real installation's data.
    let data = Path::new("/var/lib/trail");
    assert!(
        !data.exists() || Path::new(MARKER).exists(),
        "/var/lib/trail exists and is not this test's: refusing to install over it"
    );
    let _ = Command::new("dpkg").args(["--purge", "trail"]).stdout(Stdio::null()).status();
    let _ = std::fs::remove_dir_all(data);
    let dir = tempfile::tempdir().unwrap();
    let first = build(dir.path(), "0.1.0-1");
    sh(Command::new("dpkg").arg("-i").arg(&first));
    std::fs::write(MARKER, "").unwrap();
    // What the package made: the user, the directories, the configuration, the unit.
    assert!(sh(Command::new("getent").args(["passwd", "trail"])).contains("/var/lib/trail"));
    let toml = std::fs::read_to_string("/etc/trail/trail.toml").unwrap();
    assert!(toml.contains("data_dir = \"/var/lib/trail\"") && toml.contains("# object_lock"));
    let unit = std::fs::read_to_string("/lib/systemd/system/trail.service").unwrap();
    for hardening in ["ProtectSystem=strict", "NoNewPrivileges=yes", "ReadWritePaths=/var/lib/trail", "User=trail"] {
        assert!(unit.contains(hardening), "{hardening}");
    }
    if Command::new("systemd-analyze").arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success()) {
        sh(Command::new("systemd-analyze").args(["verify", "/lib/systemd/system/trail.service"]));
    }
    // Run as the trail user: a key, then ready, an event stored.
    let key = sh(&mut as_trail(&["keys", "create", "--org", "acme", "--scope", "platform"])).trim().to_string();
    assert_eq!(ready_and_count(&key), 1);
    let signing = std::fs::read("/var/lib/trail/signing.key").unwrap();
    // The upgrade keeps the data, the key and the configuration's changes.
    std::fs::write("/etc/trail/trail.toml", format!("{toml}\n# changed by the operator\n")).unwrap();
    let second = build(dir.path(), "0.1.1-1");
    sh(Command::new("dpkg").args(["-i", "--force-confold"]).arg(&second));
    assert!(sh(Command::new("dpkg-query").args(["-W", "trail"])).contains("0.1.1-1"));
    assert_eq!(std::fs::read("/var/lib/trail/signing.key").unwrap(), signing, "the signing key survived");
    assert!(std::fs::read_to_string("/etc/trail/trail.toml").unwrap().contains("changed by the operator"));
    assert_eq!(ready_and_count(&key), 2, "the events survived the upgrade");
    // Removed, then purged: the binary and the configuration go, the data stays.
    sh(Command::new("dpkg").args(["-r", "trail"]));
    assert!(!Path::new("/usr/bin/trail").exists());
    sh(Command::new("dpkg").args(["--purge", "trail"]));
    assert!(!Path::new("/etc/trail/trail.toml").exists());
    assert!(data.join("signing.key").exists() && data.join("trail.db").exists(), "purge kept the audit log");
    std::fs::remove_dir_all(data).unwrap();
}
