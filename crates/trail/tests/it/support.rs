//! Helpers the `trail` binary's tests share: the binary on a data directory, running a
//! command that must succeed, and a `trail serve` process on an ephemeral port.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
};

/// The `trail` binary on the data directory `data`, with quiet logs and no
/// configuration or failpoint from the environment.
pub fn trail(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_trail"));
    c.arg("--data-dir").arg(data).env("TRAIL_LOG", "warn").env_remove("TRAIL_CONFIG").env_remove("TRAIL_FAILPOINT");
    c
}

/// Runs a command that must succeed; returns its standard output.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A running `trail serve`, killed when dropped.
pub struct Served {
    pub child: Child,
    pub base: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cmd` (a `trail … serve --listen 127.0.0.1:0` command) and waits for the URL
/// it prints; its output is drained so that it never blocks on a full pipe.
pub fn spawn_served(cmd: &mut Command) -> Served {
    let err = if std::env::var_os("TRAIL_TEST_STDERR").is_some() { Stdio::inherit() } else { Stdio::null() };
    let mut child = cmd.stdout(Stdio::piped()).stderr(err).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let base = first.strip_prefix("Trail is running at ").expect(&first).to_string();
    std::thread::spawn(move || for _ in lines.by_ref() {});
    Served { child, base }
}

/// Every file of a directory and its bytes (to show a command wrote nothing).
pub fn snapshot(d: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

/// Asks `f` again until it gives a value (every 20 ms); fails after a minute, naming
/// `what` it waited for.
pub async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
