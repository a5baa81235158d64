//! A throwaway PostgreSQL cluster for tests: `initdb` in a temporary directory (as
//! the `postgres` user when running as root), a server on a free loopback port, and a
//! watchdog that stops it and removes the directory once the test process is gone.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    sync::OnceLock,
};

pub struct Cluster {
    pub port: u16,
    bin: PathBuf,
    dir: PathBuf,
}

fn as_postgres(cmd: &str) -> Command {
    let root = std::env::var("USER").map(|u| u == "root").unwrap_or(false) || is_root();
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "sh", "-c", cmd]);
        c
    } else {
        let mut c = Command::new("sh");
        c.args(["-c", cmd]);
        c
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

impl Cluster {
    /// The cluster of this test process, started on first use.
    pub fn shared() -> &'static Cluster {
        static CLUSTER: OnceLock<Cluster> = OnceLock::new();
        CLUSTER.get_or_init(|| Cluster::start().expect("cannot start a PostgreSQL cluster for the tests"))
    }

    /// Stops the server (as if the database went away).
    pub fn stop(&self) {
        let _ = as_postgres(&format!(
            "{}/pg_ctl -D {}/data -m fast -w stop >/dev/null",
            self.bin.display(),
            self.dir.display()
        ))
        .status();
    }

    /// Starts it again after `stop`.
    pub fn restart(&self) {
        let _ = as_postgres(&format!(
            "{b}/pg_ctl -D {d}/data -w -l {d}/server.log -o \"-p {p} -k {d} -c listen_addresses=127.0.0.1 -c max_connections=200\" start >/dev/null",
            b = self.bin.display(),
            d = self.dir.display(),
            p = self.port
        ))
        .status();
    }

    /// A cluster of its own (for tests that stop it).
    pub fn start() -> Result<Cluster, String> {
        let bin = PathBuf::from(std::env::var("TRAIL_PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into()));
        if !bin.join("initdb").exists() {
            return Err(format!("{} has no initdb: install PostgreSQL 15 or set TRAIL_PG_BIN", bin.display()));
        }
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
        let dir = std::env::temp_dir().join(format!("trail-pg-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        if is_root() {
            let ok = Command::new("chown").arg("postgres").arg(&dir).status().map_err(|e| e.to_string())?;
            if !ok.success() {
                return Err("chown postgres failed".into());
            }
        }
        let d = dir.display();
        let b = bin.display();
        let init =
            as_postgres(&format!("{b}/initdb -D {d}/data -A trust -U postgres --no-sync -E UTF8 >{d}/initdb.log 2>&1"))
                .status()
                .map_err(|e| e.to_string())?;
        if !init.success() {
            return Err(format!("initdb failed; see {d}/initdb.log"));
        }
        // Extra server settings (`-c name=value ...`), e.g. for the benchmark's tuned run.
        let extra = std::env::var("TRAIL_PG_SETTINGS").unwrap_or_default();
        if extra.contains(['"', '\\', '$', '`']) {
            return Err("TRAIL_PG_SETTINGS may not hold quotes, backslashes, $ or `".into());
        }
        let start = as_postgres(&format!(
            "{b}/pg_ctl -D {d}/data -w -l {d}/server.log -o \"-p {port} -k {d} -c listen_addresses=127.0.0.1 \
             -c max_connections=200 {extra}\" start >/dev/null"
        ))
        .status()
        .map_err(|e| e.to_string())?;
        if !start.success() {
            return Err(format!("pg_ctl start failed; see {d}/server.log"));
        }
        // Stop the server and remove its files once this process has ended.
        let pid = std::process::id();
        as_postgres(&format!(
            "while [ -d /proc/{pid} ]; do sleep 1; done; {b}/pg_ctl -D {d}/data -m immediate stop >/dev/null 2>&1; rm -rf {d}"
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
        Ok(Cluster { port, bin, dir })
    }

    /// Creates a new, empty database and returns its URL.
    pub fn database(&self) -> String {
        self.create(None)
    }

    /// Creates a copy of the database at `url` (nothing may be connected to it) and
    /// returns the copy's URL.
    pub fn copy_database(&self, url: &str) -> String {
        let source = url.rsplit('/').next().expect("a database URL");
        self.create(Some(source))
    }

    fn create(&self, template: Option<&str>) -> String {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!("t{}_{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
        let mut cmd = Command::new(self.bin.join("createdb"));
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres"]);
        if let Some(t) = template {
            cmd.args(["-T", t]);
        }
        let ok = cmd.arg(&name).status().expect("createdb");
        assert!(ok.success(), "createdb {name} failed");
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}
