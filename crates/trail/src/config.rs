//! Configuration: `trail.toml`, overridden by `TRAIL_*` environment variables,
//! overridden by flags, resolved once into typed settings.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use trail_core::Limits;
use trail_store::sqlite::SqliteConfig;

/// The file's shape. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The installation's name: checkpoint origins are `<name>/<org>`.
    pub name: Option<String>,
    /// The Ed25519 key that signs checkpoints (default: `signing.key` in the data dir).
    pub signing_key: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub database: Option<String>,
    #[serde(default)]
    pub server: FileServer,
    #[serde(default)]
    pub limits: FileLimits,
    #[serde(default)]
    pub store: FileStore,
    #[serde(default)]
    pub exports: FileExports,
    #[serde(default)]
    pub retention: FileRetention,
    #[serde(default)]
    pub verify: FileVerify,
    #[serde(default)]
    pub alerts: FileAlerts,
    #[serde(default)]
    pub streams: FileStreams,
    #[serde(default)]
    pub transparency: FileTransparency,
    #[serde(default)]
    pub witness: FileWitness,
    #[serde(default)]
    pub archive: crate::archive::FileArchive,
    #[serde(default)]
    pub metrics: FileMetrics,
}

/// `[metrics]`: `GET /metrics` for Prometheus.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileMetrics {
    /// An address of its own for `/metrics` (no token), e.g. `127.0.0.1:9464`.
    pub listen: Option<String>,
    /// A file holding the bearer token `/metrics` asks for on the main listener.
    pub token_file: Option<PathBuf>,
}

/// `[witness]`: witnesses that cosign the installation log (C2SP tlog-witness).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileWitness {
    /// A C2SP tlog-policy file: its `log` line is the installation log's verifier key,
    /// its `witness NAME VKEY URL` lines where Trail submits, its quorum the rule.
    pub policy: Option<PathBuf>,
    /// Longest wait for one witness's answer (default `10s`).
    pub timeout: Option<String>,
    /// The witnessed checkpoint lagging the signed one this long fires
    /// `witness_lagging` (default `5m`).
    pub lagging_after: Option<String>,
}

/// `[transparency]`: the logs as C2SP tiles at `/log/{org}/…`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTransparency {
    /// Anyone may read checkpoints and hash tiles, which hold no event content
    /// (default false: an `audit` key or a read key).
    pub public: Option<bool>,
    /// `s3://bucket/prefix` (or `archive`: the archive's bucket): each log's tiles and
    /// newest checkpoint are written there as they complete.
    pub publish: Option<String>,
    /// The publish bucket is private: entry bundles (event content) go there too.
    pub publish_private: Option<bool>,
}

/// `[streams]`: streams of events to SIEMs.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileStreams {
    /// Drive streams (default true).
    pub enabled: Option<bool>,
    /// Allow receivers on loopback and private networks (default false).
    pub allow_private_destinations: Option<bool>,
    /// Events per batch at most (default 1000).
    pub batch_size: Option<usize>,
    /// A stream failing this long is recorded and alerted (default `10m`).
    pub alert_after: Option<String>,
    /// How long a server holds a stream without renewing its lease (default `15s`).
    pub lease: Option<String>,
    /// Extra certificate authorities (PEM) for syslog over TLS.
    pub ca_file: Option<PathBuf>,
}

/// `[alerts]`: rule evaluation and deliveries.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAlerts {
    /// Evaluate rules and deliver (default true).
    pub enabled: Option<bool>,
    /// Allow destinations on loopback and private networks (default false).
    pub allow_private_destinations: Option<bool>,
}

/// `[verify]`: the daily self-check of every organization's stored log.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileVerify {
    /// UTC time of the daily check, `HH:MM` (default `03:00`), or `off`.
    pub run_at: Option<String>,
}

/// `[retention]`: how long events stay in the store, where they are archived, and how
/// far back online queries reach.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRetention {
    /// Days every category stays in the store (default 90; 0 keeps events forever).
    pub days: Option<u32>,
    /// Days per category, e.g. `auth = 365` (0 keeps that category forever).
    #[serde(default)]
    pub categories: std::collections::BTreeMap<String, u32>,
    /// Days online queries reach back (default 90; 0: no limit).
    pub online_days: Option<u32>,
    /// UTC time of the daily job, `HH:MM` (default `02:00`).
    pub run_at: Option<String>,
    /// Where archives go (default `<data dir>/archive`).
    pub archive_dir: Option<PathBuf>,
    /// Days an idempotency key is remembered after its event arrived, archived or not
    /// (default: the longest retention period; forever if anything is kept forever).
    pub idempotency_days: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileExports {
    /// Where export jobs and scheduled exports are written (default: `<data dir>/exports`).
    pub dir: Option<PathBuf>,
    /// Temporary files of exports (default: `<exports dir>/tmp`).
    pub tmp_dir: Option<PathBuf>,
    /// XLSX exports above this many rows run as background jobs.
    pub sync_rows: Option<u64>,
    /// Larger scheduled exports are not attached to the mail (bytes).
    pub attach_limit: Option<u64>,
    pub smtp: Option<FileSmtp>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSmtp {
    pub host: String,
    #[serde(default = "smtp_port")]
    pub port: u16,
    pub from: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// `starttls` (the default), `tls` or `none`.
    pub tls: Option<String>,
    /// A PEM file of a private CA that signed the server's certificate.
    pub ca_file: Option<PathBuf>,
}

fn smtp_port() -> u16 {
    25
}

/// `TRAIL_TRUSTED_PROXIES` (comma-separated) or `[server] trusted_proxies`: each an
/// address or a CIDR block.
fn trusted_proxies(fs: &FileServer, env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<ipnet::IpNet>> {
    let (from, list): (&str, Vec<String>) = match env("TRAIL_TRUSTED_PROXIES") {
        Some(v) => {
            ("TRAIL_TRUSTED_PROXIES", v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
        }
        None => ("[server] trusted_proxies", fs.trusted_proxies.clone().unwrap_or_default()),
    };
    list.iter()
        .map(|p| {
            p.parse::<ipnet::IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| anyhow::anyhow!("{from}: '{p}' is not an address or a CIDR block"))
        })
        .collect()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileServer {
    pub listen: Option<String>,
    /// Leave `Secure` off the session cookie (plain HTTP on a non-localhost address).
    pub insecure_cookies: Option<bool>,
    /// Connections served at once.
    pub max_connections: Option<usize>,
    /// Connections one client address may hold open (behind a trusted proxy:
    /// requests in flight).
    pub max_connections_per_client: Option<usize>,
    /// Proxies (addresses or CIDR blocks) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Option<Vec<String>>,
    /// Seconds a request head may take; also how long an idle keep-alive connection
    /// stays open.
    pub header_timeout_secs: Option<usize>,
    /// Seconds a request body may take, plus its bytes at `body_min_rate`.
    pub body_timeout_secs: Option<usize>,
    /// Bytes per second a request body must keep up.
    pub body_min_rate: Option<usize>,
    /// Live streams one user or key may hold open.
    pub max_streams_per_caller: Option<usize>,
    /// Seconds the requests in flight may take after SIGTERM before the process exits.
    pub shutdown_timeout_secs: Option<usize>,
    /// Where people reach this server (`https://trail.example.com`), for links in alerts.
    pub public_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLimits {
    pub max_event_bytes: Option<usize>,
    pub max_request_bytes: Option<usize>,
    pub max_batch_events: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileStore {
    pub max_commit_events: Option<usize>,
}

/// What flags can set (the highest precedence).
#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub data_dir: Option<PathBuf>,
    pub database: Option<String>,
    pub listen: Option<String>,
}

/// Which storage backend to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite(PathBuf),
    /// A `postgres://` URL.
    Postgres(String),
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub name: String,
    pub signing_key: PathBuf,
    pub data_dir: PathBuf,
    pub database: Database,
    pub listen: SocketAddr,
    pub limits: Limits,
    pub sqlite: SqliteConfig,
    pub insecure_cookies: bool,
    pub exports: trail_server::ExportConfig,
    pub retention: trail_server::RetentionConfig,
    pub connections: trail_server::ConnectionConfig,
    /// Minute of the UTC day of the self-check; `None`: off.
    pub verify_at_minute: Option<u16>,
    /// Origin of links in alerts (`[server] public_url`, `TRAIL_PUBLIC_URL`).
    pub public_url: Option<String>,
    pub alerts: trail_server::AlertConfig,
    pub streams: trail_server::StreamConfig,
    /// `[transparency] public`, `TRAIL_TRANSPARENCY_PUBLIC`.
    pub transparency_public: bool,
    /// `[witness]`, `TRAIL_WITNESS_POLICY`.
    pub witness: Option<trail_server::WitnessConfig>,
    /// Where archives are kept (`[archive]`, else `[retention] archive_dir`); opened by
    /// the commands that use it (`crate::archive::open`).
    pub archive: crate::archive::Place,
    /// The archive directory (`trail archive move` reads it).
    pub archive_dir: PathBuf,
    /// `[archive]`'s bucket settings without the URL (`trail archive move`'s).
    pub archive_settings: trail_store::archive::BucketConfig,
    /// `[metrics]`.
    pub metrics: trail_server::MetricsConfig,
    /// `[transparency] publish` (the bucket) and `publish_private`.
    pub publish: Option<(trail_store::archive::BucketConfig, bool)>,
}

/// The largest event accepted: 60 KiB, so that with the fields Trail adds (its id,
/// organization, seq, time received) every stored event fits a C2SP entry bundle's
/// uint16-prefixed entry (65,535 bytes).
const MAX_EVENT_BYTES: usize = 61_440;

/// A duration such as `30s`, `10m` or `2h`.
fn seconds(name: &str, text: Option<&str>) -> Result<Option<std::time::Duration>> {
    let Some(t) = text.map(str::trim) else { return Ok(None) };
    match trail_core::duration::parse_seconds(t, "smh", 366 * 86_400) {
        Ok(n) if n > 0 => Ok(Some(std::time::Duration::from_secs(n))),
        Ok(_) => bail!("{name} must be longer than 0s, not '{t}'"),
        Err(e) => bail!("{name} {e}"),
    }
}

/// Minutes after midnight of `HH:MM`.
fn minute_of_day(text: &str) -> Option<u16> {
    text.split_once(':')
        .and_then(|(h, m)| Some((h.parse::<u16>().ok()?, m.parse::<u16>().ok()?)))
        .filter(|(h, m)| *h < 24 && *m < 60 && text.len() == 5)
        .map(|(h, m)| h * 60 + m)
}

/// Reads the config file if one is named (it must exist) or `trail.toml` if present.
pub fn load_file(path: Option<&std::path::Path>) -> Result<FileConfig> {
    let (path, required) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from("trail.toml"), false),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display())),
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => Ok(FileConfig::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read config file {}", path.display())),
    }
}

/// Merges file < environment < flags over the defaults.
pub fn resolve(file: FileConfig, env: &dyn Fn(&str) -> Option<String>, flags: &Flags) -> Result<Config> {
    let num = |name: &str, file: Option<usize>, default: usize| -> Result<usize> {
        match env(name) {
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .with_context(|| format!("{name} must be a positive integer, not '{v}'")),
            None => Ok(file.unwrap_or(default)),
        }
    };
    let data_dir = flags
        .data_dir
        .clone()
        .or_else(|| env("TRAIL_DATA_DIR").map(PathBuf::from))
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from("./trail-data"));
    let database = match flags.database.clone().or_else(|| env("TRAIL_DATABASE")).or(file.database) {
        None => Database::Sqlite(data_dir.join("trail.db")),
        Some(url) => parse_database(&url)?,
    };
    let listen_text = flags
        .listen
        .clone()
        .or_else(|| env("TRAIL_LISTEN"))
        .or(file.server.listen.clone())
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let listen = listen_text
        .parse::<SocketAddr>()
        .with_context(|| format!("listen address must be IP:PORT, e.g. 127.0.0.1:8080, not '{listen_text}'"))?;
    let d = Limits::default();
    let limits = Limits {
        max_event_bytes: num("TRAIL_MAX_EVENT_BYTES", file.limits.max_event_bytes, d.max_event_bytes)?,
        max_request_bytes: num("TRAIL_MAX_REQUEST_BYTES", file.limits.max_request_bytes, d.max_request_bytes)?,
        max_batch_events: num("TRAIL_MAX_BATCH_EVENTS", file.limits.max_batch_events, d.max_batch_events)?,
    };
    let s = SqliteConfig::default();
    let sqlite = SqliteConfig {
        max_commit_events: num("TRAIL_MAX_COMMIT_EVENTS", file.store.max_commit_events, s.max_commit_events)?,
        ..s
    };
    let name = env("TRAIL_NAME").or(file.name).unwrap_or_else(|| "trail.local".into());
    if name.is_empty() || name.contains(char::is_whitespace) || name.contains('+') {
        bail!("the installation name must be non-empty, without spaces or '+', not '{name}'");
    }
    let signing_key = env("TRAIL_SIGNING_KEY")
        .map(PathBuf::from)
        .or(file.signing_key)
        .unwrap_or_else(|| data_dir.join("signing.key"));
    let insecure_cookies = boolean(env, "TRAIL_INSECURE_COOKIES", file.server.insecure_cookies)?;
    let transparency_public = boolean(env, "TRAIL_TRANSPARENCY_PUBLIC", file.transparency.public)?;
    let publish_private = boolean(env, "TRAIL_PUBLISH_PRIVATE", file.transparency.publish_private)?;
    let metrics = metrics_config(&file.metrics, env)?;
    let publish = env("TRAIL_PUBLISH").or(file.transparency.publish.clone());
    if limits.max_event_bytes > MAX_EVENT_BYTES {
        bail!(
            "max_event_bytes is at most {MAX_EVENT_BYTES}: a stored event (the event and the fields Trail adds) \
             must fit the 65,535 bytes of a C2SP entry bundle's entry"
        );
    }
    let c = trail_server::ConnectionConfig::default();
    let secs = |d: std::time::Duration| d.as_secs() as usize;
    let fs = &file.server;
    let connections = trail_server::ConnectionConfig {
        max_connections: num("TRAIL_MAX_CONNECTIONS", fs.max_connections, c.max_connections)?,
        max_connections_per_client: num(
            "TRAIL_MAX_CONNECTIONS_PER_CLIENT",
            fs.max_connections_per_client,
            c.max_connections_per_client,
        )?,
        header_timeout: std::time::Duration::from_secs(num(
            "TRAIL_HEADER_TIMEOUT_SECS",
            fs.header_timeout_secs,
            secs(c.header_timeout),
        )? as u64),
        body_timeout: std::time::Duration::from_secs(num(
            "TRAIL_BODY_TIMEOUT_SECS",
            fs.body_timeout_secs,
            secs(c.body_timeout),
        )? as u64),
        body_min_rate: num("TRAIL_BODY_MIN_RATE", fs.body_min_rate, c.body_min_rate as usize)? as u64,
        max_streams_per_caller: num(
            "TRAIL_MAX_STREAMS_PER_CALLER",
            fs.max_streams_per_caller,
            c.max_streams_per_caller,
        )?,
        trusted_proxies: trusted_proxies(fs, env)?,
        shutdown_timeout: std::time::Duration::from_secs(num(
            "TRAIL_SHUTDOWN_TIMEOUT_SECS",
            fs.shutdown_timeout_secs,
            secs(c.shutdown_timeout),
        )? as u64),
    };
    let d = trail_server::ExportConfig::default();
    let tls = |v: Option<String>| -> Result<trail_server::SmtpTls> {
        match v.or_else(|| env("TRAIL_SMTP_TLS")) {
            None => Ok(trail_server::SmtpTls::default()),
            Some(t) => trail_server::SmtpTls::parse(&t).context("[exports.smtp] tls must be starttls, tls or none"),
        }
    };
    let mut smtp = match file.exports.smtp {
        Some(s) => Some(trail_server::SmtpConfig {
            host: s.host,
            port: s.port,
            from: s.from,
            username: s.username,
            password: s.password,
            tls: tls(s.tls)?,
            ca_file: s.ca_file,
        }),
        None => None,
    };
    if let Some(url) = env("TRAIL_SMTP") {
        // host:port,from
        let (addr, from) = url.split_once(',').context("TRAIL_SMTP must be HOST:PORT,FROM-ADDRESS")?;
        let (host, port) = addr.rsplit_once(':').context("TRAIL_SMTP must be HOST:PORT,FROM-ADDRESS")?;
        let port = port.parse().ok().context("TRAIL_SMTP: the port must be a number")?;
        smtp = Some(trail_server::SmtpConfig {
            host: host.into(),
            port,
            from: from.into(),
            username: None,
            password: None,
            tls: tls(None)?,
            ca_file: None,
        });
    }
    let exports = trail_server::ExportConfig {
        dir: env("TRAIL_EXPORT_DIR")
            .map(PathBuf::from)
            .or(file.exports.dir)
            .unwrap_or_else(|| data_dir.join("exports")),
        tmp_dir: env("TRAIL_EXPORT_TMP_DIR").map(PathBuf::from).or(file.exports.tmp_dir),
        sync_rows: file.exports.sync_rows.unwrap_or(d.sync_rows),
        attach_limit: file.exports.attach_limit.unwrap_or(d.attach_limit),
        smtp,
    };
    let days = |name: &str, file: Option<u32>| -> Result<u32> {
        match env(name) {
            Some(v) => v
                .parse::<u32>()
                .with_context(|| format!("{name} must be a number of days (0 to turn it off), not '{v}'")),
            None => Ok(file.unwrap_or(90)),
        }
    };
    let r = file.retention;
    let mut categories = std::collections::BTreeMap::new();
    for (cat, d) in r.categories {
        if cat.is_empty() || !cat.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            bail!("[retention.categories]: '{cat}' is not a category name");
        }
        categories.insert(cat.to_ascii_lowercase(), d);
    }
    let run_at = r.run_at.unwrap_or_else(|| "02:00".into());
    let run_at_minute = minute_of_day(&run_at)
        .with_context(|| format!("[retention] run_at must be a UTC time HH:MM, e.g. 02:00, not '{run_at}'"))?;
    let verify_at = env("TRAIL_VERIFY_AT").or(file.verify.run_at).unwrap_or_else(|| "03:00".into());
    let verify_at_minute = match verify_at.as_str() {
        "off" => None,
        t => Some(minute_of_day(t).with_context(|| {
            format!("[verify] run_at (TRAIL_VERIFY_AT) must be a UTC time HH:MM or off, not '{verify_at}'")
        })?),
    };
    let retention = trail_server::RetentionConfig {
        rules: trail_store::archive::Retention {
            default_days: days("TRAIL_RETENTION_DAYS", r.days)?,
            categories,
            key_days: r.idempotency_days,
        },
        online_days: days("TRAIL_ONLINE_DAYS", r.online_days)?,
        run_at_minute,
        archive: None,
    };
    let archive_dir = env("TRAIL_ARCHIVE_DIR")
        .map(PathBuf::from)
        .or(r.archive_dir.clone())
        .unwrap_or_else(|| data_dir.join("archive"));
    let (archive, archive_settings) = crate::archive::place(file.archive, env, Some(archive_dir.clone()), &data_dir)?;
    let publish = crate::archive::publish_place(publish, &archive, &archive_settings)?.map(|b| (b, publish_private));
    let public_url = env("TRAIL_PUBLIC_URL").or(file.server.public_url.clone());
    if let Some(u) = &public_url {
        let ok = is_http_url(u);
        if !ok {
            bail!("[server] public_url (TRAIL_PUBLIC_URL) must be an http(s) URL such as https://trail.example.com, not '{u}'");
        }
    }
    let alerts = trail_server::AlertConfig {
        enabled: file.alerts.enabled.unwrap_or(true),
        allow_private_destinations: file.alerts.allow_private_destinations.unwrap_or(false),
        ..trail_server::AlertConfig::default()
    };
    let f = &file.streams;
    let defaults = trail_server::StreamConfig::default();
    let streams = trail_server::StreamConfig {
        enabled: f.enabled.unwrap_or(true),
        allow_private_destinations: f.allow_private_destinations.unwrap_or(false),
        batch_size: match f.batch_size {
            Some(n) if !(1..=10_000).contains(&n) => bail!("[streams] batch_size must be 1 to 10000, not {n}"),
            Some(n) => n,
            None => defaults.batch_size,
        },
        alert_after: seconds("[streams] alert_after", f.alert_after.as_deref())?.unwrap_or(defaults.alert_after),
        lease: seconds("[streams] lease", f.lease.as_deref())?.unwrap_or(defaults.lease),
        ca_pem: match &f.ca_file {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .with_context(|| format!("[streams] ca_file {} cannot be read", p.display()))?,
            ),
            None => None,
        },
        ..defaults
    };
    let witness = match env("TRAIL_WITNESS_POLICY").map(PathBuf::from).or(file.witness.policy) {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("[witness] policy: cannot read {}", path.display()))?;
            let policy = trail_core::policy::Policy::parse(&text)
                .map_err(|e| anyhow::anyhow!("[witness] policy {}: {e}", path.display()))?;
            let d = trail_server::WitnessConfig::new(policy);
            Some(trail_server::WitnessConfig {
                timeout: seconds("[witness] timeout", file.witness.timeout.as_deref())?.unwrap_or(d.timeout),
                lagging_after: seconds("[witness] lagging_after", file.witness.lagging_after.as_deref())?
                    .unwrap_or(d.lagging_after),
                ..d
            })
        }
    };
    Ok(Config {
        witness,
        public_url,
        alerts,
        streams,
        name,
        signing_key,
        data_dir,
        database,
        listen,
        limits,
        sqlite,
        insecure_cookies,
        exports,
        retention,
        connections,
        verify_at_minute,
        transparency_public,
        archive,
        archive_dir,
        archive_settings,
        publish,
        metrics,
    })
}

/// `[metrics]` (and `TRAIL_METRICS_LISTEN`, `TRAIL_METRICS_TOKEN_FILE`); the token read
/// from its file now.
fn metrics_config(m: &FileMetrics, env: &dyn Fn(&str) -> Option<String>) -> Result<trail_server::MetricsConfig> {
    let listen = match env("TRAIL_METRICS_LISTEN").or(m.listen.clone()) {
        None => None,
        Some(a) => Some(a.parse::<SocketAddr>().with_context(|| {
            format!("[metrics] listen (TRAIL_METRICS_LISTEN) must be an address such as 127.0.0.1:9464, not '{a}'")
        })?),
    };
    let token = match env("TRAIL_METRICS_TOKEN_FILE").map(PathBuf::from).or(m.token_file.clone()) {
        None => None,
        Some(p) => {
            let t = std::fs::read_to_string(&p)
                .with_context(|| format!("[metrics] token_file: cannot read {}", p.display()))?
                .trim()
                .to_string();
            if t.len() < 16 {
                bail!("[metrics] token_file: {} must hold a token of at least 16 characters", p.display());
            }
            Some(t)
        }
    };
    Ok(trail_server::MetricsConfig { listen, token })
}

/// A true/false setting: the environment variable, else the file, else false.
fn boolean(env: &dyn Fn(&str) -> Option<String>, var: &str, file: Option<bool>) -> Result<bool> {
    match env(var) {
        Some(v) => match v.as_str() {
            "1" | "true" => Ok(true),
            "0" | "false" => Ok(false),
            _ => bail!("{var} must be true or false, not '{v}'"),
        },
        None => Ok(file.unwrap_or(false)),
    }
}

/// `http://` or `https://` and a host.
fn is_http_url(u: &str) -> bool {
    let rest = u.strip_prefix("https://").or_else(|| u.strip_prefix("http://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/') && !r.contains(char::is_whitespace))
}

fn parse_database(url: &str) -> Result<Database> {
    if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        if path.is_empty() {
            bail!("database URL 'sqlite:' needs a file path, e.g. sqlite:./trail-data/trail.db");
        }
        return Ok(Database::Sqlite(PathBuf::from(path)));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Database::Postgres(url.to_string()));
    }
    bail!("unsupported database URL '{url}': use sqlite:PATH or postgres://USER@HOST:PORT/DB")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn check(file: &str, env: &[(&str, &str)], flags: Flags) -> Result<Config> {
        let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        resolve(toml::from_str(file)?, &|k| env.get(k).cloned(), &flags)
    }

    #[test]
    fn defaults() {
        let c = check("", &[], Flags::default()).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("./trail-data"));
        assert_eq!(c.database, Database::Sqlite(PathBuf::from("./trail-data/trail.db")));
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.limits, Limits::default());
        assert_eq!((c.retention.rules.default_days, c.retention.online_days, c.retention.run_at_minute), (90, 90, 120));
        assert_eq!(c.archive, crate::archive::Place::Dir(PathBuf::from("./trail-data/archive")));
    }

    #[test]
    fn retention_per_category() {
        let file = "[retention]\ndays = 30\nrun_at = \"03:15\"\n[retention.categories]\nAuth = 365\nvpn = 0\n";
        let c = check(file, &[("TRAIL_ONLINE_DAYS", "0")], Flags::default()).unwrap();
        let r = &c.retention.rules;
        assert_eq!((r.days("auth"), r.days("vpn"), r.days("service")), (365, 0, 30));
        assert_eq!((c.retention.online_days, c.retention.run_at_minute), (0, 195));
    }

    #[test]
    fn flags_beat_env_beat_file() {
        let file = "data_dir = \"/f\"\n[server]\nlisten = \"127.0.0.1:1\"\n[limits]\nmax_batch_events = 5\n";
        let c = check(file, &[], Flags::default()).unwrap();
        assert_eq!((c.data_dir.to_str(), c.listen.port(), c.limits.max_batch_events), (Some("/f"), 1, 5));
        let env = [("TRAIL_DATA_DIR", "/e"), ("TRAIL_LISTEN", "127.0.0.1:2"), ("TRAIL_MAX_BATCH_EVENTS", "6")];
        let c = check(file, &env, Flags::default()).unwrap();
        assert_eq!((c.data_dir.to_str(), c.listen.port(), c.limits.max_batch_events), (Some("/e"), 2, 6));
        let flags = Flags { data_dir: Some("/g".into()), listen: Some("127.0.0.1:3".into()), database: None };
        let c = check(file, &env, flags).unwrap();
        assert_eq!((c.data_dir.to_str(), c.listen.port()), (Some("/g"), 3));
    }

    #[test]
    fn smtp_encryption_defaults_to_starttls() {
        let file = "[exports.smtp]\nhost = \"mail\"\nfrom = \"t@x\"\n";
        let smtp = check(file, &[], Flags::default()).unwrap().exports.smtp.unwrap();
        assert_eq!((smtp.tls, smtp.ca_file), (trail_server::SmtpTls::StartTls, None));
        let file = "[exports.smtp]\nhost = \"mail\"\nfrom = \"t@x\"\ntls = \"none\"\nca_file = \"/ca.pem\"\n";
        let smtp = check(file, &[], Flags::default()).unwrap().exports.smtp.unwrap();
        assert_eq!((smtp.tls, smtp.ca_file), (trail_server::SmtpTls::None, Some(PathBuf::from("/ca.pem"))));
        let smtp = check("", &[("TRAIL_SMTP", "m:587,t@x"), ("TRAIL_SMTP_TLS", "tls")], Flags::default()).unwrap();
        assert_eq!(smtp.exports.smtp.unwrap().tls, trail_server::SmtpTls::Tls);
        let bad = check("", &[("TRAIL_SMTP", "m:587,t@x"), ("TRAIL_SMTP_TLS", "sometimes")], Flags::default());
        assert!(bad.unwrap_err().to_string().contains("starttls, tls or none"));
    }

    #[test]
    fn connection_limits() {
        let c = check("", &[], Flags::default()).unwrap().connections;
        assert_eq!((c.max_connections, c.header_timeout.as_secs(), c.max_streams_per_caller), (4096, 10, 8));
        let file = "[server]\nmax_connections = 100\nheader_timeout_secs = 3\nbody_min_rate = 1000\n";
        let c = check(file, &[("TRAIL_MAX_CONNECTIONS", "200"), ("TRAIL_BODY_TIMEOUT_SECS", "7")], Flags::default());
        let c = c.unwrap().connections;
        assert_eq!((c.max_connections, c.header_timeout.as_secs(), c.body_timeout.as_secs()), (200, 3, 7));
        assert_eq!(c.body_min_rate, 1000);
        assert!(check("", &[("TRAIL_MAX_CONNECTIONS", "0")], Flags::default()).is_err());
        let file = "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n";
        let c = check(file, &[], Flags::default()).unwrap().connections;
        assert_eq!(c.trusted_proxies.iter().map(ToString::to_string).collect::<Vec<_>>(), ["10.0.0.0/8", "::1/128"]);
        let c = check(file, &[("TRAIL_TRUSTED_PROXIES", "127.0.0.1, 192.168.0.0/16")], Flags::default()).unwrap();
        assert_eq!(c.connections.trusted_proxies.len(), 2);
        let bad = check("", &[("TRAIL_TRUSTED_PROXIES", "10.0.0.0/33")], Flags::default()).unwrap_err();
        assert!(bad.to_string().contains("TRAIL_TRUSTED_PROXIES: '10.0.0.0/33'"), "{bad}");
    }

    #[test]
    fn export_directories() {
        let c = check("", &[], Flags::default()).unwrap();
        assert_eq!(c.exports.tmp(), PathBuf::from("./trail-data/exports/tmp"));
        let c = check("[exports]\ntmp_dir = \"/f\"\n", &[], Flags::default()).unwrap();
        assert_eq!(c.exports.tmp(), PathBuf::from("/f"));
        let c = check("[exports]\ntmp_dir = \"/f\"\n", &[("TRAIL_EXPORT_TMP_DIR", "/dev/shm/t")], Flags::default());
        assert_eq!(c.unwrap().exports.tmp(), PathBuf::from("/dev/shm/t"));
    }

    #[test]
    fn bad_values_are_explained() {
        let msg = |r: Result<Config>| format!("{:#}", r.unwrap_err());
        assert!(
            msg(check("", &[("TRAIL_MAX_EVENT_BYTES", "lots")], Flags::default())).contains("TRAIL_MAX_EVENT_BYTES")
        );
        assert!(msg(check("", &[("TRAIL_LISTEN", "8080")], Flags::default())).contains("IP:PORT"));
        assert!(msg(check("", &[("TRAIL_DATABASE", "mysql://x")], Flags::default())).contains("unsupported"));
        assert!(check("colour = 1", &[], Flags::default()).is_err());
        assert!(msg(check("[retention]\nrun_at = \"2am\"", &[], Flags::default())).contains("HH:MM"));
        // Durations: a character of two bytes, and a number that overflows, are errors.
        assert!(msg(check("[streams]\nlease = \"1é\"", &[], Flags::default())).contains("[streams] lease"));
        let huge = format!("[streams]\nalert_after = \"{}h\"", u64::MAX / 2);
        assert!(msg(check(&huge, &[], Flags::default())).contains("at most"));
        assert!(msg(check("[verify]\nrun_at = \"25:00\"", &[], Flags::default())).contains("TRAIL_VERIFY_AT"));
        assert_eq!(check("", &[], Flags::default()).unwrap().verify_at_minute, Some(180));
        assert_eq!(check("[verify]\nrun_at = \"04:30\"", &[], Flags::default()).unwrap().verify_at_minute, Some(270));
        assert_eq!(check("", &[("TRAIL_VERIFY_AT", "off")], Flags::default()).unwrap().verify_at_minute, None);
        assert!(msg(check("", &[("TRAIL_RETENTION_DAYS", "-1")], Flags::default())).contains("TRAIL_RETENTION_DAYS"));
        let c = check("", &[("TRAIL_DATABASE", "sqlite:/tmp/x.db")], Flags::default()).unwrap();
        assert_eq!(c.database, Database::Sqlite("/tmp/x.db".into()));
        // Stored events must fit a C2SP entry bundle's entry; tiles are public only when asked.
        assert_eq!(c.limits.max_event_bytes, 61_440);
        assert!(!c.transparency_public);
        let big = msg(check("[limits]\nmax_event_bytes = 65536", &[], Flags::default()));
        assert!(big.contains("at most 61440"), "{big}");
        assert!(check("[transparency]\npublic = true", &[], Flags::default()).unwrap().transparency_public);
        let bad = msg(check("", &[("TRAIL_TRANSPARENCY_PUBLIC", "yes")], Flags::default()));
        assert!(bad.contains("TRAIL_TRANSPARENCY_PUBLIC"), "{bad}");
    }
}
