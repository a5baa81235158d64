//! What the server and its background work are told, resolved by the `trail` binary:
//! plain data, no HTTP types, read by both the HTTP layer (`api`) and the work layer
//! (`work`).

use std::{sync::Arc, time::Duration};

use trail_core::{Limits, Timestamp};
use trail_store::archive::Retention;

/// What the server needs to know, resolved by the `trail` binary.
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    /// Ingest size limits.
    pub limits: Limits,
    /// The installation's log name and checkpoint verifying key, for evidence files.
    pub log: Option<LogKey>,
    /// Leave `Secure` off the session cookie (only for plain-HTTP setups that are not
    /// on localhost; browsers keep Secure cookies on http://localhost).
    pub insecure_cookies: bool,
    /// The organization that records logins of unknown emails (default: the first).
    pub system_org: Option<String>,
    /// Where exports are made and kept, and how they are mailed.
    pub exports: ExportConfig,
    /// Record `audit:view` when a caller opens a list or an event (`trail serve`
    /// always does; exports, logins and changes are recorded regardless).
    pub audit_reads: bool,
    /// Retention, the archive and the online query window.
    pub retention: RetentionConfig,
    /// Limits on connections, request heads and bodies, and live streams.
    pub connections: ConnectionConfig,
    /// The minute of the UTC day the daily self-check verifies every log (`None`: off).
    pub verify_at_minute: Option<u16>,
    /// Where people reach this server (`[server] public_url`), for links in alerts;
    /// `None`: `http://localhost:8080`.
    pub public_url: Option<String>,
    /// Alert rules, destinations and deliveries.
    pub alerts: AlertConfig,
    /// Streams of events to SIEMs.
    pub streams: StreamConfig,
    /// Run scheduled exports, retention, the daily self-check and the signer's refusal
    /// watch in the background (`trail serve` turns it on; embedded servers in tests
    /// run them when they ask).
    pub housekeeping: bool,
    /// `[transparency] public`: anyone may read every organization's checkpoints and
    /// hash tiles (never entry bundles, which hold events).
    pub transparency_public: bool,
    /// Leave the installation log unextended (only for benchmarks measuring what it
    /// costs; every real server extends it).
    pub without_installation_log: bool,
    /// `[witness]`: the witnesses asked to cosign the installation log, and the quorum
    /// (`None`: no witnesses).
    pub witness: Option<WitnessConfig>,
    /// `[transparency] publish`: the logs' tiles and checkpoints written to a bucket.
    pub publish: Option<crate::work::publish::PublishConfig>,
    /// `[metrics]`: `GET /metrics` with a token on this listener, or on its own.
    pub metrics: MetricsConfig,
}

/// Where `GET /metrics` is served; with neither, metrics are off (not even counted).
#[derive(Debug, Clone, Default)]
pub struct MetricsConfig {
    /// A listener of its own (`[metrics] listen`), serving `/metrics` without a token.
    pub listen: Option<std::net::SocketAddr>,
    /// The bearer token `/metrics` asks for on the main listener (`[metrics] token_file`).
    pub token: Option<String>,
}

impl MetricsConfig {
    pub fn enabled(&self) -> bool {
        self.listen.is_some() || self.token.is_some()
    }
}

/// `[witness]`: a C2SP tlog-policy naming the witnesses (with their URLs) and the
/// quorum, and how patient to be with them.
#[derive(Debug, Clone)]
pub struct WitnessConfig {
    pub policy: Arc<trail_core::policy::Policy>,
    /// Longest wait for one witness's answer (`[witness] timeout`, default 10 s).
    pub timeout: Duration,
    /// The first retry's delay after a witness failed; doubled each time up to 5 min.
    pub retry_base: Duration,
    /// The newest witnessed checkpoint lagging the newest signed one this long counts
    /// as lagging: health says so and `witness_lagging` fires (default 5 min).
    pub lagging_after: Duration,
}

impl WitnessConfig {
    /// A policy with the defaults.
    pub fn new(policy: trail_core::policy::Policy) -> WitnessConfig {
        WitnessConfig {
            policy: Arc::new(policy),
            timeout: Duration::from_secs(10),
            retry_base: Duration::from_secs(1),
            lagging_after: Duration::from_secs(300),
        }
    }
}

impl ServerConfig {
    /// The origin of links in alerts: `public_url`, or `http://localhost:8080`.
    pub fn public_base(&self) -> String {
        self.public_url.as_deref().unwrap_or("http://localhost:8080").trim_end_matches('/').to_string()
    }
}

/// Alerting settings.
#[derive(Debug, Clone)]
pub struct AlertConfig {
    /// Evaluate rules and deliver (`trail serve` turns it on; embedded servers in
    /// tests opt in).
    pub enabled: bool,
    /// Allow destinations on loopback and private addresses (off: such URLs are
    /// refused, so that alerts cannot be aimed at internal services).
    pub allow_private_destinations: bool,
    /// The first retry's delay; each next one doubles (with jitter), up to an hour,
    /// for 24 hours in all.
    pub retry_base: Duration,
    /// How long an attempt may take.
    pub timeout: Duration,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            enabled: false,
            allow_private_destinations: false,
            retry_base: Duration::from_secs(10),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Streaming settings.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Drive streams (`trail serve` turns it on; embedded servers in tests opt in).
    pub enabled: bool,
    /// Allow receivers on loopback and private addresses.
    pub allow_private_destinations: bool,
    /// Events per batch at most.
    pub batch_size: usize,
    /// How long a batch that is not full may wait for more events.
    pub batch_wait: Duration,
    /// The first retry's delay; each next one doubles (with jitter), up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// How long an attempt may take.
    pub timeout: Duration,
    /// A stream failing this long is recorded (`stream:failing`) and alerted.
    pub alert_after: Duration,
    /// How long a server holds a stream without renewing its lease; another server
    /// takes the stream over after that.
    pub lease: Duration,
    /// Extra certificate authorities (PEM text, read by the `trail` binary from
    /// `[streams] ca_file`) trusted for syslog over TLS, besides the public ones.
    pub ca_pem: Option<String>,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            enabled: false,
            allow_private_destinations: false,
            batch_size: 1000,
            batch_wait: Duration::from_millis(200),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            alert_after: Duration::from_secs(600),
            lease: Duration::from_secs(15),
            ca_pem: None,
        }
    }
}

/// Export settings.
#[derive(Debug, Clone)]
pub struct ExportConfig {
    /// Background jobs, scheduled exports (under `<org>/<directory>/`) and temporary
    /// files live here.
    pub dir: std::path::PathBuf,
    /// Where XLSX workbooks keep their rows until they are zipped (about 1 KB per row
    /// while a job runs), and where PDF and XLSX files made in the request are built;
    /// `<dir>/tmp` when not set. A RAM-backed directory (tmpfs) spares the disk that
    /// traffic.
    pub tmp_dir: Option<std::path::PathBuf>,
    /// XLSX exports of more rows than this (PDF: also at most 10,000) run as background
    /// jobs instead of in the request.
    pub sync_rows: u64,
    /// Scheduled exports larger than this many bytes are not attached to the mail.
    pub attach_limit: u64,
    pub smtp: Option<SmtpConfig>,
}

impl ExportConfig {
    /// The directory for temporary files (`tmp_dir`, or `<dir>/tmp`).
    pub fn tmp(&self) -> std::path::PathBuf {
        self.tmp_dir.clone().unwrap_or_else(|| self.dir.join("tmp"))
    }
}

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig {
            dir: std::env::temp_dir().join("trail-exports"),
            tmp_dir: None,
            sync_rows: 100_000,
            attach_limit: 10 * 1024 * 1024,
            smtp: None,
        }
    }
}

/// The SMTP server scheduled exports and alert mail go through (optional AUTH).
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub from: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// How the connection is encrypted; credentials never travel over one that is not.
    pub tls: SmtpTls,
    /// A PEM file of the CA that signed the server's certificate (a private CA), trusted
    /// besides the public roots.
    pub ca_file: Option<std::path::PathBuf>,
}

/// How the SMTP connection is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which the server must offer (the
    /// default): nothing, credentials included, is sent before it.
    #[default]
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption, set explicitly (a local relay); a warning is logged each time
    /// credentials would be sent this way.
    None,
}

impl SmtpTls {
    pub fn parse(s: &str) -> Option<SmtpTls> {
        match s.to_ascii_lowercase().as_str() {
            "starttls" => Some(SmtpTls::StartTls),
            "tls" => Some(SmtpTls::Tls),
            "none" => Some(SmtpTls::None),
            _ => None,
        }
    }
}

/// The public half of the checkpoint signer.
#[derive(Debug, Clone)]
pub struct LogKey {
    pub name: String,
    pub public: ed25519_dalek::VerifyingKey,
}

impl LogKey {
    /// The verifier key of one organization's log.
    pub fn verifier_key(&self, org: &str) -> String {
        trail_core::checkpoint::verifier_key(&format!("{}/{org}", self.name), &self.public)
    }
}

/// The clock, injected so that tests (and retention later) can control "now".
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| Timestamp::from_datetime(chrono::Utc::now()))
}

/// How connections and requests are bounded.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// Connections served at once. Past it, the address holding the most gives up its
    /// newest connection if it holds more than its share; otherwise new ones wait.
    pub max_connections: usize,
    /// Connections one client address may hold open; a new one past it is closed at
    /// once (so one client cannot slow down everyone).
    pub max_connections_per_client: usize,
    /// Proxies whose `X-Forwarded-For` is believed. Their connections are not capped
    /// per address; each client behind them may have `max_connections_per_client`
    /// requests in flight, and is the address self-audit records.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// A request's head must arrive within this time of the connection opening or of
    /// the previous response (so it is also how long an idle keep-alive connection
    /// stays open).
    pub header_timeout: Duration,
    /// A request body may take this long, plus the time its bytes need at `body_min_rate`.
    pub body_timeout: Duration,
    /// Bytes per second a body must keep up beyond `body_timeout`.
    pub body_min_rate: u64,
    /// Live streams one caller (a user or a key) may hold open at once.
    pub max_streams_per_caller: usize,
    /// After a shutdown signal, how long the requests in flight may take before the
    /// process exits anyway.
    pub shutdown_timeout: Duration,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            max_connections: 4096,
            max_connections_per_client: 256,
            trusted_proxies: Vec::new(),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            body_min_rate: 64 * 1024,
            max_streams_per_caller: 8,
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// Retention settings.
#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// How long events stay in the store before they are archived and deleted.
    pub rules: Retention,
    /// How many days back lists, facets and exports reach (0: no limit); older events
    /// are downloaded (`GET /api/v1/download`).
    pub online_days: u32,
    /// The minute of the UTC day the job runs (default 120: 02:00).
    pub run_at_minute: u16,
    /// Where archives are written and read (a directory or a bucket, opened);
    /// `None`: no archive (retention cannot run).
    pub archive: Option<trail_store::archive::Archive>,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig { rules: Retention::default(), online_days: 0, run_at_minute: 120, archive: None }
    }
}
