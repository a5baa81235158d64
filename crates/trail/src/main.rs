//! The `trail` binary: parses arguments, resolves configuration, sets up logging and
//! signals, and runs one command.

mod accounts;
mod alerts;
mod archive;
mod config;
mod export;
mod holds;
mod import;
mod keys;
mod log;
mod offline;
mod retention;
mod serve;
mod store;
mod streams;
mod verify;
mod witness;

use accounts::*;
use export::*;
use log::*;
use retention::*;
use serve::*;
use store::*;

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};
use config::Flags;
use trail_core::Timestamp;

/// Trail: a self-hostable, tamper-evident audit log.
#[derive(Parser)]
#[command(name = "trail", version, about)]
struct Cli {
    /// Directory of the embedded store.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Database URL (default: the embedded store in the data dir), e.g. sqlite:PATH.
    #[arg(long, global = true)]
    database: Option<String>,
    /// Config file (default: ./trail.toml when present).
    #[arg(long, global = true, env = "TRAIL_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (API and web UI).
    Serve {
        /// Address to listen on.
        #[arg(long)]
        listen: Option<String>,
        /// Fill an empty store with realistic demo events and print keys to try them.
        #[arg(long)]
        demo: bool,
    },
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Apply the store's schema migrations and exit (servers also apply them on start).
    Migrate,
    /// Copy a whole embedded store into an empty PostgreSQL database, checking that
    /// every signed checkpoint's root matches the copied entries.
    MigrateStore {
        /// The embedded store, `sqlite:PATH`.
        #[arg(long)]
        from: String,
        /// The PostgreSQL database, `postgres://USER@HOST:PORT/DB`.
        #[arg(long)]
        to: String,
    },
    /// Manage users (people who log in to the page and the API).
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Alert rules, destinations and deliveries of an organization.
    Alerts {
        #[command(subcommand)]
        command: AlertsCommand,
    },
    /// Streams of an organization's events to SIEMs: list, create, pause, resume,
    /// replay, delete.
    Streams {
        #[command(subcommand)]
        command: StreamsCommand,
    },
    /// Legal holds: what retention keeps past its period (an organization, or a query's
    /// events), placed and released with a reason.
    Holds {
        #[command(subcommand)]
        command: holds::HoldsCommand,
    },
    /// A C2SP witness of one's own: `keys` prints its verifier key, `serve` cosigns the
    /// checkpoints of the logs a policy file names (no Trail store needed).
    Witness {
        #[command(subcommand)]
        command: witness::WitnessCommand,
    },
    /// Import other systems' audit records (plain or .gz, JSON Lines or documents, read
    /// as they stream) in one of the formats of --format: AWS CloudTrail, Kubernetes
    /// audit events, GCP Cloud Audit Logs, Okta System Log, GitHub audit log, or the
    /// shapes of KIOPS, KubeVision, ops0, Dify and GPU cloud. Prints the records
    /// skipped and why, then `imported N, duplicates D, skipped S`.
    Import {
        /// cloudtrail, k8s, gcp, okta, github, kiops, kubevision, ops0, dify or gpucloud.
        #[arg(long)]
        format: String,
        /// Organization whose log receives the events.
        #[arg(long)]
        org: String,
        /// Most MiB a `.gz` file may expand to (a file that expands further is refused
        /// before any of it is stored).
        #[arg(long, default_value_t = 256)]
        max_expanded_mib: u64,
        #[arg(required = true)]
        files: Vec<String>,
    },
    /// Append events from a file (JSON object, array or NDJSON; `-` for stdin).
    Ingest {
        file: String,
        /// Organization whose log receives the events.
        #[arg(long)]
        org: String,
    },
    /// Copy one organization's log from a Trail server as C2SP tiles into a directory,
    /// checking every tile against the checkpoint signed by --verifier-key before
    /// writing it; run it again to bring the copy up to date (full tiles already there
    /// are checked, not fetched). `trail verify --mirror DIR` checks the copy offline.
    Mirror {
        /// The server, e.g. https://trail.example.com, or the bucket the logs are
        /// published to (`s3://bucket/prefix`, with `[archive]`'s endpoint).
        #[arg(long)]
        url: String,
        #[arg(long)]
        org: String,
        /// The log's published verifier key (`trail keys verifier --org ORG`).
        #[arg(long)]
        verifier_key: String,
        /// Where the tiles go (`checkpoint`, `tile/…`, as the server serves them).
        #[arg(long)]
        out: PathBuf,
        /// An API key: `read` (the entries too, recorded as viewed) or, for the tree
        /// only, `audit`. Better given in the environment than on the command line.
        #[arg(long, env = "TRAIL_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
    },
    /// Check an evidence file offline, or (with --org) recompute an organization's whole
    /// stored log against its signed checkpoints.
    Verify {
        /// Evidence files (JSON Lines) or C2SP tlog-proof files (`-` for stdin). An
        /// event's proof and its checkpoint's proof into the installation log (`GET
        /// /api/v1/checkpoint?format=tlog-proof`) given together must be of the same
        /// checkpoint.
        files: Vec<String>,
        /// Organization whose stored log to recompute.
        #[arg(long, conflicts_with = "files")]
        org: Option<String>,
        /// Verifier key the checkpoints must be signed by (default: for a file, the key
        /// it names; for --org, this installation's).
        #[arg(long)]
        key: Option<String>,
        /// The installation log's verifier key (`trail keys verifier --org
        /// _installation`): checks a file's proof that its checkpoint is in the
        /// installation log.
        #[arg(long)]
        installation_key: Option<String>,
        /// A C2SP tlog-policy file: an installation checkpoint counts only with the
        /// cosignatures its quorum needs, from the witnesses it names, under its `log`
        /// key; every organization checkpoint must be proved into such a one.
        #[arg(long, conflicts_with = "installation_key")]
        policy: Option<PathBuf>,
        /// With --org: a signed checkpoint saved outside Trail (the text of
        /// `GET /api/v1/checkpoint`); the log must be consistent with it, which catches
        /// a log cut short together with its own checkpoints. With --received: the
        /// checkpoint received with the copy (a batch's `Trail-Checkpoint`, decoded).
        #[arg(long)]
        checkpoint: Option<String>,
        /// A stream's copy kept by its receiver (JSON Lines of the stored bytes, an
        /// unfiltered stream from the beginning): proves it has no gap, edit or
        /// reordering up to --checkpoint, signed by --key.
        #[arg(long, conflicts_with_all = ["files", "org"], requires_all = ["checkpoint", "key"])]
        received: Option<String>,
        /// A directory `trail mirror` wrote: checks the whole log in it offline against
        /// --key (the checkpoint's signature, every tile, every entry).
        #[arg(long, conflicts_with_all = ["files", "org", "received"])]
        mirror: Option<PathBuf>,
        /// With --org: seconds an entry may go without a signed checkpoint before it
        /// counts as unproven (a checkpoint normally follows within a second).
        #[arg(long, default_value_t = 60)]
        grace: u64,
    },
    /// Export the events matching a query: csv, xlsx, json, jsonl, pdf or evidence (with
    /// inclusion proofs). Shows a progress bar on a terminal.
    Export {
        /// csv, xlsx, json, jsonl, pdf or evidence.
        #[arg(long)]
        format: String,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Only this organization (default: all; evidence needs one).
        #[arg(long)]
        org: Option<String>,
        /// `compliance` for the SOC 2 / GDPR style report (access changes, security
        /// events, data exports).
        #[arg(long, default_value = "standard")]
        preset: String,
        /// Query-language terms selecting the events.
        query: Vec<String>,
    },
    /// Download any period as one CSV or JSON Lines file: archived and online events
    /// merged in time order (the page's "Download log").
    Download {
        /// Start of the period (a date or RFC 3339 time; default: the beginning).
        #[arg(long)]
        from: Option<String>,
        /// End of the period, inclusive (default: now).
        #[arg(long)]
        to: Option<String>,
        /// csv or jsonl.
        #[arg(long, default_value = "csv")]
        format: String,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Only this organization (default: all).
        #[arg(long)]
        org: Option<String>,
    },
    /// Rebuild what is derived from an organization's stored events (rows, search
    /// index, search words, per-day counts, idempotency keys) from their verified bytes;
    /// refused when the events, their tree or their checkpoints fail verification.
    Repair {
        #[arg(long)]
        org: String,
    },
    /// Retention: archive and delete what has expired.
    Retention {
        #[command(subcommand)]
        command: RetentionCommand,
    },
    /// The archive: move it into a bucket.
    Archive {
        #[command(subcommand)]
        command: ArchiveCommand,
    },
    /// List events matching filters in the query language, e.g. `category:auth result:FAILED`.
    Query {
        /// Query-language terms.
        query: Vec<String>,
        /// Only this organization (default: all).
        #[arg(long)]
        org: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// `table` or `jsonl` (the stored event bytes, one per line).
        #[arg(long, default_value = "table")]
        format: String,
    },
}

#[derive(Subcommand)]
enum RetentionCommand {
    /// Archive every organization's expired events, then delete their rows (what the
    /// nightly job does).
    Run {
        /// Run as of this date or time instead of now (e.g. 2026-01-31).
        #[arg(long)]
        as_of: Option<String>,
    },
}

#[derive(Subcommand)]
enum ArchiveCommand {
    /// Move the archive directory's files into an S3-compatible bucket, each written
    /// once (locked as `[archive]` says), read back and verified; then set
    /// `[archive] url` to the bucket.
    Move {
        /// The bucket, `s3://bucket/prefix` (endpoint, region and lock from `[archive]`).
        #[arg(long)]
        to: String,
        /// Keep the directory's copies.
        #[arg(long)]
        keep: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print the checkpoint verifier key of an organization's log.
    Verifier {
        /// The organization (`_installation` for the installation log).
        #[arg(long, required_unless_present = "installation")]
        org: Option<String>,
        /// The installation log's key instead (`<name>/checkpoints`: every
        /// organization's checkpoints, served at `/log/_installation/`).
        #[arg(long, conflicts_with = "org")]
        installation: bool,
    },
    /// Create an API key and print it (only its hash is stored).
    Create {
        #[arg(long)]
        org: String,
        /// ingest, read, admin, platform or audit (checkpoints and hash tiles only, for outside auditors).
        #[arg(long)]
        scope: String,
        /// What the key is for.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List API keys (never the keys themselves: their first characters).
    List {
        /// Only this organization's.
        #[arg(long)]
        org: Option<String>,
    },
    /// Revoke a key by its id (from `keys list`).
    Revoke { id: i64 },
}

#[derive(Subcommand)]
enum AlertsCommand {
    /// The rules: built-in ones (with their settings) and custom ones.
    Rules {
        #[arg(long)]
        org: String,
    },
    /// Turn a rule on or off, or change its threshold.
    SetRule {
        #[arg(long)]
        org: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        enabled: Option<bool>,
        #[arg(long)]
        threshold: Option<u32>,
    },
    /// Destinations (secrets are never shown).
    Destinations {
        #[arg(long)]
        org: String,
    },
    /// The newest deliveries with their status.
    Deliveries {
        #[arg(long)]
        org: String,
    },
}

impl AlertsCommand {
    fn org(&self) -> &str {
        match self {
            AlertsCommand::Rules { org }
            | AlertsCommand::SetRule { org, .. }
            | AlertsCommand::Destinations { org }
            | AlertsCommand::Deliveries { org } => org,
        }
    }
}

impl StreamsCommand {
    fn org(&self) -> &str {
        match self {
            StreamsCommand::List { org }
            | StreamsCommand::Create { org, .. }
            | StreamsCommand::Pause { org, .. }
            | StreamsCommand::Resume { org, .. }
            | StreamsCommand::Replay { org, .. }
            | StreamsCommand::Delete { org, .. } => org,
        }
    }
}

#[derive(Subcommand)]
pub(crate) enum StreamsCommand {
    /// The streams with their health.
    List {
        #[arg(long)]
        org: String,
    },
    /// Make a stream; it starts now unless --start says otherwise.
    Create {
        #[arg(long)]
        org: String,
        #[arg(long)]
        name: String,
        /// `http` or `syslog`.
        #[arg(long)]
        kind: String,
        /// HTTP streams: where batches are posted.
        #[arg(long)]
        url: Option<String>,
        /// Syslog streams: `host:port`.
        #[arg(long)]
        address: Option<String>,
        /// Syslog streams: over TLS.
        #[arg(long)]
        tls: bool,
        /// `jsonl`, `ocsf`, `splunk_hec` (HTTP) or `cef` (syslog).
        #[arg(long, default_value = "jsonl")]
        format: String,
        /// Only events matching this query.
        #[arg(long)]
        query: Option<String>,
        /// `now`, `beginning`, a seq, or an RFC 3339 time.
        #[arg(long, default_value = "now")]
        start: String,
        /// HTTP streams: `Name: value`, repeatable.
        #[arg(long = "header")]
        headers: Vec<String>,
    },
    Pause {
        #[arg(long)]
        org: String,
        id: i64,
    },
    /// Resume a paused or disabled stream where it stopped.
    Resume {
        #[arg(long)]
        org: String,
        id: i64,
    },
    /// Send again from `beginning`, a seq, or an RFC 3339 time (archived periods too).
    Replay {
        #[arg(long)]
        org: String,
        id: i64,
        #[arg(long)]
        from: String,
    },
    Delete {
        #[arg(long)]
        org: String,
        id: i64,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Create a user and print a one-time password (to be changed at first login).
    Create {
        #[arg(long)]
        org: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// platform_admin, org_admin, auditor, viewer or a custom role of the organization.
        #[arg(long)]
        role: String,
    },
    /// List users.
    List {
        /// Only this organization's.
        #[arg(long)]
        org: Option<String>,
    },
    /// Change a user's role.
    SetRole {
        #[arg(long)]
        email: String,
        #[arg(long)]
        role: String,
        /// The user's organization, when the email has accounts in several.
        #[arg(long)]
        org: Option<String>,
    },
}

/// mimalloc: the ingest path allocates many small objects on several threads, where
/// glibc's allocator showed up as a fifth of the profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRAIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: a log written to a file or a pipe stays plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("trail: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(cli)) {
        eprintln!("trail: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    if let Command::Witness { command } = cli.command {
        return witness::witness_cmd(command).await;
    }
    let listen = match &cli.command {
        Command::Serve { listen, .. } => listen.clone(),
        _ => None,
    };
    let flags = Flags { data_dir: cli.data_dir.clone(), database: cli.database.clone(), listen };
    let file = config::load_file(cli.config.as_deref())?;
    let config = config::resolve(file, &|k| std::env::var(k).ok(), &flags)?;
    match cli.command {
        Command::Serve { demo, .. } => serve(config, demo).await,
        Command::Keys { command } => keys::keys_cmd(&config, command).await,
        Command::Users { command } => users_cmd(&config, command).await,
        Command::Alerts { command } => alerts::alerts_cmd(&config, command).await,
        Command::Streams { command } => streams::streams_cmd(&config, command).await,
        Command::Witness { .. } => unreachable!("run answers it first"),
        Command::Holds { command } => holds::holds_cmd(&config, command).await,
        Command::Migrate => {
            let store = open_store(&config).await?;
            store.close();
            println!("the store's schema is up to date");
            Ok(())
        }
        Command::MigrateStore { from, to } => migrate_store(&config, &from, &to).await,
        Command::Ingest { file, org } => ingest(&config, &file, &org).await,
        Command::Import { format, org, files, max_expanded_mib } => {
            import::import_cmd(&config, &format, &org, &files, max_expanded_mib.saturating_mul(1 << 20)).await
        }
        Command::Mirror { url, org, verifier_key, out, api_key } => {
            verify::mirror(&config, &url, &org, &verifier_key, &out, api_key).await
        }
        Command::Verify { mirror: Some(dir), key, policy, .. } => {
            verify::verify_mirror(&dir, key.as_deref(), policy.as_deref())
        }
        Command::Verify { received: Some(copy), key: Some(key), checkpoint: Some(note), .. } => {
            verify::verify_received(&copy, &note, &key)
        }
        Command::Verify { checkpoint: Some(_), org: None, .. } => {
            bail!("--checkpoint goes with --org ORG or --received FILE")
        }
        Command::Verify { files, org: None, key, installation_key, policy, .. } if !files.is_empty() => {
            let policy = policy.map(|p| trail_witness::read_policy(&p)).transpose()?;
            offline::verify_files(&files, key.as_deref(), installation_key.as_deref(), policy.as_ref())
        }
        Command::Verify { org: None, .. } => bail!("give an evidence or tlog-proof FILE, or --org ORG"),
        Command::Export { format, out, org, preset, query } => {
            export(&config, &format, &out, org.as_deref(), &preset, &query.join(" "), false).await
        }
        Command::Download { from, to, format, out, org } => {
            if !matches!(format.as_str(), "csv" | "jsonl") {
                bail!("--format must be csv or jsonl, not '{format}'");
            }
            let mut terms = Vec::new();
            for (name, v) in [("from", from), ("to", to)] {
                if let Some(v) = v {
                    Timestamp::parse_bound(&v, name == "to").map_err(|e| anyhow::anyhow!("--{name}: {e}"))?;
                    terms.push(format!("created:{}{v}", if name == "from" { ">=" } else { "<=" }));
                }
            }
            export(&config, &format, &out, org.as_deref(), "standard", &terms.join(" "), true).await
        }
        Command::Repair { org } => verify::repair_org(&config, &org).await,
        Command::Archive { command: ArchiveCommand::Move { to, keep } } => archive::move_to(&config, &to, keep).await,
        Command::Retention { command: RetentionCommand::Run { as_of } } => {
            retention_run(&config, as_of.as_deref()).await
        }
        Command::Verify { org: Some(org), key, checkpoint, grace, .. } => {
            verify::verify_org(&config, &org, key, checkpoint.as_deref(), grace).await
        }
        Command::Query { query, org, limit, format } => query_cmd(&config, &query.join(" "), org, limit, &format).await,
    }
}
