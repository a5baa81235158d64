//! The `trail` binary: parses arguments, resolves configuration, sets up logging and
//! signals, and runs one command.

mod config;
mod verify;

use std::{io::Read, path::PathBuf, sync::Arc};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use config::{Config, Database, Flags};
use trail_core::{event::parse_batch, Event, Limits, Timestamp};
use trail_server::{work::demo, AppState, ServerConfig, Services};
use trail_store::{
    sqlite::SqliteStore, AppendBatch, DynStore, KeyScope, ListQuery, NewUser, Org, Scope, Store, UserChange,
    BUILTIN_ROLES,
};

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
    /// Append events from a file (JSON object, array or NDJSON; `-` for stdin).
    Ingest {
        file: String,
        /// Organization whose log receives the events.
        #[arg(long)]
        org: String,
    },
    /// Check an evidence file offline, or (with --org) recompute an organization's whole
    /// stored log against its signed checkpoints.
    Verify {
        /// Evidence file (JSON Lines, `-` for stdin).
        file: Option<String>,
        /// Organization whose stored log to recompute.
        #[arg(long, conflicts_with = "file")]
        org: Option<String>,
        /// Verifier key the checkpoints must be signed by (default: for a file, the key
        /// it names; for --org, this installation's).
        #[arg(long)]
        key: Option<String>,
        /// With --org: a signed checkpoint saved outside Trail (the text of
        /// `GET /api/v1/checkpoint`); the log must be consistent with it, which catches
        /// a log cut short together with its own checkpoints.
        #[arg(long, requires = "org")]
        checkpoint: Option<String>,
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
    /// Retention: archive and delete what has expired.
    Retention {
        #[command(subcommand)]
        command: RetentionCommand,
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
enum KeysCommand {
    /// Print the checkpoint verifier key of an organization's log.
    Verifier {
        #[arg(long)]
        org: String,
    },
    /// Create an API key and print it (only its hash is stored).
    Create {
        #[arg(long)]
        org: String,
        /// ingest, read, admin or platform.
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
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
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
    let listen = match &cli.command {
        Command::Serve { listen, .. } => listen.clone(),
        _ => None,
    };
    let flags = Flags { data_dir: cli.data_dir.clone(), database: cli.database.clone(), listen };
    let file = config::load_file(cli.config.as_deref())?;
    let config = config::resolve(file, &|k| std::env::var(k).ok(), &flags)?;
    match cli.command {
        Command::Serve { demo, .. } => serve(config, demo).await,
        Command::Keys { command: KeysCommand::Create { org, scope, label } } => {
            let scope = KeyScope::parse(&scope)
                .filter(|s| *s != KeyScope::Personal)
                .with_context(|| format!("--scope must be ingest, read, admin or platform, not '{scope}'"))?;
            check_slug(&org)?;
            let store = open_store(&config).await?;
            store.ensure_org(Org { slug: org.clone(), name: org.clone() }).await?;
            let key = new_key(&*store, &org, scope, &label).await?;
            let state = cli_state(store.clone());
            let resource = serde_json::json!({"type": "api_key", "id": key.1.to_string(), "name": key_prefix(&key.0)});
            let details = serde_json::json!({"scope": scope.as_str(), "label": label});
            trail_server::work::selfaudit::record_system(&state, &org, "api_key:create", resource, details).await;
            store.close();
            println!("{}", key.0);
            Ok(())
        }
        Command::Keys { command: KeysCommand::List { org } } => {
            let store = open_store(&config).await?;
            println!(
                "{:<6} {:<12} {:<9} {:<14} {:<8} {:<26} Label",
                "Id", "Org", "Scope", "Prefix", "Revoked", "Created"
            );
            for k in store.list_keys(org.as_deref()).await? {
                println!(
                    "{:<6} {:<12} {:<9} {:<14} {:<8} {:<26} {}",
                    k.id,
                    cut(&k.org, 12),
                    k.scope.as_str(),
                    k.prefix,
                    if k.revoked { "yes" } else { "no" },
                    Timestamp(k.created_at).to_rfc3339(),
                    k.label
                );
            }
            Ok(())
        }
        Command::Keys { command: KeysCommand::Revoke { id } } => {
            let store = open_store(&config).await?;
            let key = store.list_keys(None).await?.into_iter().find(|k| k.id == id);
            let Some(key) = key else { bail!("no key with id {id} (see `trail keys list`)") };
            store.revoke_key(None, id).await?;
            let state = cli_state(store.clone());
            let resource = serde_json::json!({"type": "api_key", "id": id.to_string(), "name": key.prefix});
            trail_server::work::selfaudit::record_system(
                &state,
                &key.org,
                "api_key:revoke",
                resource,
                serde_json::json!({}),
            )
            .await;
            store.close();
            println!("revoked key {id} ({})", key.prefix);
            Ok(())
        }
        Command::Users { command } => users_cmd(&config, command).await,
        Command::Migrate => {
            let store = open_store(&config).await?;
            store.close();
            println!("the store's schema is up to date");
            Ok(())
        }
        Command::MigrateStore { from, to } => migrate_store(&config, &from, &to).await,
        Command::Ingest { file, org } => ingest(&config, &file, &org).await,
        Command::Keys { command: KeysCommand::Verifier { org } } => {
            check_slug(&org)?;
            let key = signing_key(&config, false)?;
            println!(
                "{}",
                trail_core::checkpoint::verifier_key(&format!("{}/{org}", config.name), &key.verifying_key())
            );
            Ok(())
        }
        Command::Verify { file: Some(file), key, .. } => verify_file(&file, key.as_deref()),
        Command::Verify { file: None, org: None, .. } => bail!("give an evidence FILE or --org ORG"),
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
        Command::Retention { command: RetentionCommand::Run { as_of } } => {
            retention_run(&config, as_of.as_deref()).await
        }
        Command::Verify { file: None, org: Some(org), key, checkpoint } => {
            verify::verify_org(&config, &org, key, checkpoint.as_deref()).await
        }
        Command::Query { query, org, limit, format } => query_cmd(&config, &query.join(" "), org, limit, &format).await,
    }
}

/// The archive retention writes to (and downloads and verification read).
fn archive(config: &Config) -> Option<Arc<trail_store::archive::Archive>> {
    config.retention.archive_dir.as_ref().map(|d| Arc::new(trail_store::archive::Archive::new(d)))
}

/// `trail retention run`: the nightly job, by hand.
async fn retention_run(config: &Config, as_of: Option<&str>) -> Result<()> {
    let as_of = match as_of {
        Some(s) => Timestamp::parse_bound(s, false).map_err(|e| anyhow::anyhow!("--as-of: {e}"))?,
        None => now(),
    };
    if !config.retention.rules.enabled() {
        println!("retention is off ([retention] days = 0 and no category with days > 0): nothing to do");
        return Ok(());
    }
    let store = open_store(config).await?;
    let server_config = ServerConfig { retention: config.retention.clone(), ..ServerConfig::default() };
    let services = Services::new(store.clone(), server_config, trail_server::system_clock());
    let reports =
        trail_server::work::retention::run(&services, as_of).await.map_err(|e| anyhow::anyhow!("{}", work_message(e)));
    store.close();
    let reports = reports?;
    for r in &reports {
        let cats: Vec<String> = r.categories.iter().map(|(c, n)| format!("{c} {n}")).collect();
        println!(
            "{}: archived {} events in {} files, deleted {} rows{}{}",
            r.org,
            r.archived,
            r.files,
            r.deleted,
            if cats.is_empty() { String::new() } else { format!(" ({})", cats.join(", ")) },
            if r.leftovers_removed > 0 {
                format!("; removed {} files of an interrupted run", r.leftovers_removed)
            } else {
                String::new()
            }
        );
    }
    println!(
        "retention as of {}: archived {} events",
        as_of.to_rfc3339(),
        reports.iter().map(|r| r.archived).sum::<u64>()
    );
    Ok(())
}

/// The work layer's services for commands that record self-audit events.
fn cli_state(store: DynStore) -> Services {
    Services::new(store, ServerConfig::default(), trail_server::system_clock())
}

fn key_prefix(key: &str) -> String {
    trail_server::work::credentials::key_prefix(key)
}

/// Creates a key; returns it and its id.
async fn new_key(store: &dyn Store, org: &str, scope: KeyScope, label: &str) -> Result<(String, i64)> {
    Ok(trail_server::create_api_key(store, org, scope, label).await?)
}

async fn users_cmd(config: &Config, command: UsersCommand) -> Result<()> {
    let store = open_store(config).await?;
    let state = cli_state(store.clone());
    let check_role = |org: &str, role: &str| {
        let store = store.clone();
        let (org, role) = (org.to_string(), role.to_string());
        async move {
            let custom = store.roles(&org).await?;
            if !BUILTIN_ROLES.contains(&role.as_str()) && !custom.iter().any(|r| r.name.eq_ignore_ascii_case(&role)) {
                bail!("--role must be one of {} or a custom role of {org}, not '{role}'", BUILTIN_ROLES.join(", "));
            }
            Ok(())
        }
    };
    match command {
        UsersCommand::Create { org, email, name, role } => {
            check_slug(&org)?;
            if !store.orgs().await?.iter().any(|o| o.slug == org) {
                bail!("unknown organization '{org}'");
            }
            if !email.contains('@') || email.trim().len() != email.len() {
                bail!("--email must be an email address, not '{email}'");
            }
            check_role(&org, &role).await?;
            let password = trail_server::one_time_password();
            let hash = trail_server::hash_password(&password).map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let user = store
                .create_user(NewUser {
                    org: org.clone(),
                    email: email.to_ascii_lowercase(),
                    name,
                    role: role.clone(),
                    password_hash: hash,
                    must_change: true,
                })
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let resource = serde_json::json!({"type": "user", "id": user.id.to_string(), "name": user.email});
            trail_server::work::selfaudit::record_system(
                &state,
                &org,
                "user:create",
                resource,
                serde_json::json!({"role": role}),
            )
            .await;
            println!("created {} ({}) in {org}", user.email, user.role);
            println!("one-time password (change it at first login): {password}");
        }
        UsersCommand::List { org } => {
            println!("{:<6} {:<12} {:<32} {:<24} {:<16} State", "Id", "Org", "Email", "Name", "Role");
            for u in store.list_users(org.as_deref()).await? {
                let state = if u.disabled {
                    "disabled"
                } else if u.must_change {
                    "must change password"
                } else {
                    "active"
                };
                println!(
                    "{:<6} {:<12} {:<32} {:<24} {:<16} {state}",
                    u.id,
                    cut(&u.org, 12),
                    cut(&u.email, 32),
                    cut(&u.name, 24),
                    u.role
                );
            }
        }
        UsersCommand::SetRole { email, role } => {
            let user = store.user_by_email(&email).await?.with_context(|| format!("no user '{email}'"))?;
            check_role(&user.org, &role).await?;
            store.update_user(user.id, UserChange { role: Some(role.clone()), ..UserChange::default() }).await?;
            let resource = serde_json::json!({"type": "user", "id": user.id.to_string(), "name": user.email});
            let details = serde_json::json!({"role": role, "previous_role": user.role});
            trail_server::work::selfaudit::record_system(&state, &user.org, "user:role_change", resource, details)
                .await;
            println!("{} is now {role}", user.email);
        }
    }
    store.close();
    Ok(())
}

fn verify_file(file: &str, key: Option<&str>) -> Result<()> {
    let text = if file == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("cannot read standard input")?;
        s
    } else {
        std::fs::read_to_string(file).with_context(|| format!("cannot read {file}"))?
    };
    let report = trail_core::evidence::verify(text.lines(), key).map_err(|p| anyhow::anyhow!("{file}: {p}"))?;
    let trust =
        if key.is_some() { "" } else { " (signed by the key the file names; pass --key to check who signed it)" };
    println!(
        "ok: {} entries prove into checkpoint {} of size {}{trust}",
        report.entries, report.checkpoint.origin, report.checkpoint.size
    );
    Ok(())
}

async fn export(
    config: &Config,
    format: &str,
    out: &std::path::Path,
    org: Option<&str>,
    preset: &str,
    query: &str,
    download: bool,
) -> Result<()> {
    use trail_export::{Format, Preset};
    let format = Format::parse(format)
        .with_context(|| format!("--format must be csv, xlsx, json, jsonl, pdf or evidence, not '{format}'"))?;
    let preset =
        Preset::parse(preset).with_context(|| format!("--preset must be standard or compliance, not '{preset}'"))?;
    let mut filter = trail_core::query::parse(query).map_err(|e| anyhow::anyhow!("query: {}", e.message))?;
    if preset == Preset::Compliance && filter.category.is_empty() && filter.action.is_empty() {
        filter.category = Preset::COMPLIANCE_CATEGORIES.iter().map(|c| c.to_string()).collect();
    }
    if format == Format::Evidence && org.is_none() {
        bail!("--org is required for evidence (it covers one organization's log)");
    }
    let store = open_store(config).await?;
    if let Some(o) = org {
        if !store.orgs().await?.iter().any(|x| x.slug == o) {
            bail!("unknown organization '{o}'");
        }
    }
    let verifier_key = org.map(|o| {
        signing_key(config, false)
            .map(|k| trail_core::checkpoint::verifier_key(&format!("{}/{o}", config.name), &k.verifying_key()))
    });
    let verifier_key = verifier_key.transpose()?;
    let scope = match org {
        Some(o) => Scope::org(o),
        None => Scope::all(),
    };
    let audit_org = match org {
        Some(o) => o.to_string(),
        None => store.orgs().await?.first().map(|o| o.slug.clone()).context("the store has no organization")?,
    };
    let req = trail_server::work::export::ExportRequest {
        format,
        preset,
        scope: scope.clone(),
        filter: filter.clone(),
        audit_org,
        actor: serde_json::json!({"id": "trail-cli", "name": "trail command line", "type": "system"}),
        ip: None,
        user_agent: None,
        generated_by: "trail command line".into(),
        verifier_key,
        archive: if download || format == Format::Evidence { archive(config) } else { None },
        download,
    };
    let dyn_store: DynStore = store.clone();
    let mut total = dyn_store.count(scope, filter, now()).await?;
    if req.archive.is_some() {
        total += dyn_store.archives(org).await?.iter().map(|f| f.count).sum::<u64>();
    }
    let progress = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} events {per_sec} eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let (bar2, p2) = (bar.clone(), progress.clone());
        tokio::spawn(async move {
            loop {
                bar2.set_position(p2.load(std::sync::atomic::Ordering::Relaxed));
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        });
        Some(bar)
    } else {
        None
    };
    let tmp = config.exports.tmp();
    let rows = trail_server::work::export::to_file(&dyn_store, &req, out, &tmp, now(), progress)
        .await
        .map_err(|e| anyhow::anyhow!("{}", work_message(e)))?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let state = cli_state(store.clone());
    let details = serde_json::json!({"format": format.as_str(), "filter": trail_core::query::render(&req.filter),
        "rows": rows, "org": org.unwrap_or("*"), "file": out.display().to_string(), "download": download});
    trail_server::work::selfaudit::record_system(
        &state,
        &req.audit_org,
        "audit:export",
        serde_json::json!({}),
        details,
    )
    .await;
    store.close();
    println!("wrote {rows} entries to {}", out.display());
    Ok(())
}

/// The message of a failed piece of work, for the command line.
fn work_message(e: trail_server::WorkError) -> String {
    match e {
        trail_server::WorkError::Field(f) => format!("{}: {}", f.field, f.message),
        other => other.to_string(),
    }
}

fn check_slug(org: &str) -> Result<()> {
    let ok = !org.is_empty()
        && org.len() <= 64
        && org.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        bail!("--org must be 1-64 characters of a-z, 0-9, - or _, not '{org}'");
    }
    Ok(())
}

/// Loads the checkpoint signing key, creating it (mode 0600) when `create` is set.
fn signing_key(config: &Config, create: bool) -> Result<ed25519_dalek::SigningKey> {
    let path = &config.signing_key;
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let bytes: Vec<u8> = (0..text.trim().len() / 2)
                .filter_map(|i| u8::from_str_radix(text.trim().get(2 * i..2 * i + 2)?, 16).ok())
                .collect();
            let seed: [u8; 32] = bytes
                .try_into()
                .map_err(|_| anyhow::anyhow!("{} is not a signing key (64 hex digits)", path.display()))?;
            Ok(ed25519_dalek::SigningKey::from_bytes(&seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            let key = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let hex: String = key.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            use std::io::Write;
            let mut f = options.open(path).with_context(|| format!("cannot create {}", path.display()))?;
            writeln!(f, "{hex}")?;
            f.sync_all()?;
            tracing::info!(path = %path.display(), "created the checkpoint signing key");
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read the signing key {}", path.display())),
    }
}

async fn open_store(config: &Config) -> Result<DynStore> {
    let key = signing_key(config, true)?;
    let signer = Arc::new(trail_store::LogSigner { name: config.name.clone(), key });
    match &config.database {
        Database::Sqlite(path) => {
            let sqlite = trail_store::sqlite::SqliteConfig { signer: Some(signer), ..config.sqlite.clone() };
            let store = SqliteStore::open(path, sqlite)
                .with_context(|| format!("cannot open the store at {}", path.display()))?;
            Ok(Arc::new(store))
        }
        Database::Postgres(url) => {
            let store = trail_store::postgres::PgStore::open(url, Some(signer))
                .await
                .with_context(|| format!("cannot open the PostgreSQL store at {}", redact(url)))?;
            Ok(Arc::new(store))
        }
    }
}

async fn migrate_store(config: &Config, from: &str, to: &str) -> Result<()> {
    let path = match from.strip_prefix("sqlite://").or_else(|| from.strip_prefix("sqlite:")) {
        Some(p) if !p.is_empty() => std::path::PathBuf::from(p),
        _ => bail!("--from must be sqlite:PATH, not '{from}'"),
    };
    if !path.exists() {
        bail!("--from: {} does not exist", path.display());
    }
    if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
        bail!("--to must be a postgres:// URL");
    }
    let key = signing_key(config, true)?;
    let signer = Arc::new(trail_store::LogSigner { name: config.name.clone(), key: key.clone() });
    let pg = trail_store::postgres::PgStore::open(to, Some(signer))
        .await
        .with_context(|| format!("cannot open the PostgreSQL store at {}", redact(to)))?;
    let src = trail_store::sqlite::SqliteStore::open(&path, trail_store::sqlite::SqliteConfig::default())
        .with_context(|| format!("cannot open {}", path.display()))?;
    let report =
        trail_store::copy::copy(&src, &pg, archive(config).as_deref()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    src.close();
    for (org, entries, checkpoints) in &report.logs {
        let vkey = trail_core::checkpoint::verifier_key(&format!("{}/{org}", config.name), &key.verifying_key());
        let archive = archive(config);
        let opts = trail_store::verify::VerifyOptions { vkey: &vkey, archive: archive.as_deref(), external: None };
        let report = trail_store::verify::verify(&pg, org, opts).await?;
        if *entries == 0 {
            continue;
        }
        if !report.ok() {
            bail!("{org}: copied, but the copy does not verify:\n{}", report.problems());
        }
        println!("{org}: {entries} entries, {checkpoints} checkpoints copied; {}", report.summary());
    }
    println!("copied {} users and {} API keys", report.users, report.keys);
    Ok(())
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(a), Some(b)) if b > a => {
            let userinfo = &url[a + 3..b];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..a + 3], &url[b..])
        }
        _ => url.to_string(),
    }
}

fn now() -> Timestamp {
    Timestamp::from_datetime(chrono::Utc::now())
}

/// Raises the open-file limit to its maximum, so that the connection cap, not the
/// process's descriptors, is what bounds open connections; warns if the cap is above it.
fn raise_file_limit(max_connections: usize) {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if let Some(max) = limit.maximum {
        limit.current = Some(max);
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
        }
    }
    let now = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    if (max_connections as u64).saturating_add(256) > now {
        tracing::warn!(max_connections, open_files = now, "max_connections is above what the open-file limit allows");
    }
}

async fn serve(config: Config, demo: bool) -> Result<()> {
    raise_file_limit(config.connections.max_connections);
    let sqlite = open_store(&config).await?;
    let store: DynStore = sqlite.clone();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(data_dir = %config.data_dir.display(), database = ?config.database, "store opened");
    if demo {
        if store.is_empty().await? {
            eprintln!("filling the empty store with demo events...");
            let n = demo::fill(&*store, now(), 30_000).await?;
            eprintln!("stored {n} demo events for {} organizations", demo::ORGS.len());
        }
        let read = new_key(&*store, "acme", KeyScope::Read, "demo").await?.0;
        let platform = new_key(&*store, "acme", KeyScope::Platform, "demo").await?.0;
        println!("Trail is running at http://{addr}");
        println!("read key (organization acme): {read}");
        println!("platform key (every organization): {platform}");
        println!("try: curl -H 'Authorization: Bearer {read}' 'http://{addr}/api/v1/events?category=auth&result=FAILED&limit=5'");
    } else {
        println!("Trail is running at http://{addr}");
    }
    let log = trail_server::LogKey { name: config.name.clone(), public: signing_key(&config, false)?.verifying_key() };
    let server_config = ServerConfig {
        limits: config.limits,
        log: Some(log),
        insecure_cookies: config.insecure_cookies,
        system_org: None,
        audit_reads: true,
        exports: config.exports.clone(),
        retention: config.retention.clone(),
        connections: config.connections.clone(),
        verify_at_minute: config.verify_at_minute,
    };
    let state = AppState::new(store, server_config, trail_server::system_clock());
    trail_server::work::schedules::spawn_scheduler(state.services.clone(), std::time::Duration::from_secs(30));
    trail_server::work::retention::spawn_job(state.services.clone());
    trail_server::work::selfcheck::spawn_job(state.services.clone());
    if let Some(b) = trail_server::bootstrap(&state, "main").await.map_err(|e| anyhow::anyhow!("{e:?}"))? {
        println!("First start: platform administrator {} (organization {})", b.email, b.org);
        println!("one-time password (shown only now; change it at first login): {}", b.one_time_password);
    }
    trail_server::serve(listener, state, shutdown_signal()).await?;
    sqlite.close();
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

async fn ingest(config: &Config, file: &str, org: &str) -> Result<()> {
    let mut body = Vec::new();
    if file == "-" {
        std::io::stdin().read_to_end(&mut body).context("cannot read standard input")?;
    } else {
        body = std::fs::read(file).with_context(|| format!("cannot read {file}"))?;
    }
    // A file may hold far more than one HTTP request; only the per-event limit applies.
    let limits = Limits { max_request_bytes: usize::MAX, max_batch_events: usize::MAX, ..config.limits };
    let events = parse_batch(&body, &limits).map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
    let store = open_store(config).await?;
    if !store.orgs().await?.iter().any(|o| o.slug == org) {
        bail!("unknown organization '{org}' (create it with `trail keys create --org {org} --scope ingest`)");
    }
    let total = events.len();
    let received_at = now();
    let mut first = None;
    let mut last = 0;
    let mut events = events.into_iter().map(|e| (uuid::Uuid::now_v7(), e)).peekable();
    while events.peek().is_some() {
        let chunk: Vec<_> = events.by_ref().take(1000).collect();
        let acks = store.append(AppendBatch { org: org.into(), received_at, events: chunk }).await?;
        first = first.or(acks.first().map(|a| a.seq));
        last = acks.last().map_or(last, |a| a.seq);
    }
    store.close();
    println!("ingested {total} events into {org} (seq {}..={last})", first.unwrap_or(0));
    Ok(())
}

async fn query_cmd(config: &Config, text: &str, org: Option<String>, limit: usize, format: &str) -> Result<()> {
    if !(1..=1000).contains(&limit) {
        bail!("--limit must be from 1 to 1000");
    }
    if format != "table" && format != "jsonl" {
        bail!("--format must be table or jsonl, not '{format}'");
    }
    let filter = trail_core::query::parse(text).map_err(|e| anyhow::anyhow!("query: {}", e.message))?;
    let store = open_store(config).await?;
    let scope = match org {
        Some(o) => Scope::org(o),
        None => Scope::all(),
    };
    let page = store.list(ListQuery { scope, filter, now: now(), cursor: None, limit }).await?;
    let mut out = std::io::stdout().lock();
    use std::io::Write;
    if format == "jsonl" {
        for leaf in &page.events {
            out.write_all(leaf)?;
            out.write_all(b"\n")?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "{:<20} {:<15} {:<18} {:<12} {:<28} {:<12} {:<16} Result",
        "Date/Time (UTC)", "Source IP", "Performer", "Company", "Email", "Type", "Operation"
    )?;
    for leaf in &page.events {
        let e = Event::from_leaf(leaf)?;
        let actor = e.actor.clone().unwrap_or_default();
        writeln!(
            out,
            "{:<20} {:<15} {:<18} {:<12} {:<28} {:<12} {:<16} {}",
            e.timestamp.to_datetime().format("%Y-%m-%d %H:%M:%S"),
            e.source_ip.as_deref().unwrap_or("-"),
            cut(actor.name.as_deref().unwrap_or("-"), 18),
            cut(e.company(), 12),
            cut(actor.email.as_deref().unwrap_or("-"), 28),
            e.category(),
            cut(e.operation(), 16),
            e.result.as_str()
        )?;
    }
    if page.next_cursor.is_some() {
        writeln!(out, "(more events match; raise --limit or narrow the query)")?;
    }
    Ok(())
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}
