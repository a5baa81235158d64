//! Opening the store the configuration names, its signing key, the archive, and
//! `trail migrate` (the embedded store copied into PostgreSQL).

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use trail_store::{sqlite::SqliteStore, DynStore};

use crate::config::{Config, Database};

/// Refuses an organization the store does not have, naming it, as every command does.
pub(crate) async fn known_org(store: &dyn trail_store::Store, org: &str) -> Result<()> {
    if !store.orgs().await?.iter().any(|o| o.slug == org) {
        bail!("unknown organization '{org}'");
    }
    Ok(())
}

/// Loads the checkpoint signing key, creating it (mode 0600) when `create` is set.
pub(crate) fn signing_key(config: &Config, create: bool) -> Result<ed25519_dalek::SigningKey> {
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

pub(crate) async fn open_store(config: &Config) -> Result<DynStore> {
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

/// Opens the store for reading only (`trail verify`): nothing is migrated, signed,
/// created or written.
pub(crate) async fn open_read_only(config: &Config) -> Result<DynStore> {
    match &config.database {
        Database::Sqlite(path) => {
            let store = SqliteStore::open_read_only(path)
                .with_context(|| format!("cannot open the store at {} for reading", path.display()))?;
            Ok(Arc::new(store))
        }
        Database::Postgres(url) => {
            let store = trail_store::postgres::PgStore::open_read_only(url)
                .await
                .with_context(|| format!("cannot open the PostgreSQL store at {} for reading", redact(url)))?;
            Ok(Arc::new(store))
        }
    }
}

pub(crate) async fn migrate_store(config: &Config, from: &str, to: &str) -> Result<()> {
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
    let report = trail_store::copy::copy(&src, &pg, crate::archive::archive(config).await?.as_deref())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    src.close();
    for (org, entries, checkpoints) in &report.logs {
        let vkey = trail_core::checkpoint::verifier_key(&format!("{}/{org}", config.name), &key.verifying_key());
        let archive = crate::archive::archive(config).await?;
        let opts =
            trail_store::verify::VerifyOptions { vkey: &vkey, archive: archive.as_deref(), ..Default::default() };
        let report = trail_store::verify::verify(&pg, org, opts).await?;
        if *entries == 0 {
            continue;
        }
        if !report.ok() {
            bail!("{org}: copied, but the copy does not verify:\n{}", report.problems());
        }
        println!("{org}: {entries} entries, {checkpoints} checkpoints copied; {}", report.summary());
    }
    println!(
        "copied {} users and {} API keys, {} alert rules, {} alert destinations and {} streams",
        report.users, report.keys, report.alert_rules, report.destinations, report.streams
    );
    Ok(())
}

/// A database URL without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(a), Some(b)) if b > a => {
            let userinfo = &url[a + 3..b];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..a + 3], &url[b..])
        }
        _ => url.to_string(),
    }
}
