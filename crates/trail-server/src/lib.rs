//! Trail's HTTP server: the axum application (`app(state)`), `serve(listener, state,
//! shutdown)`, API-key authentication, and demo data.
//!
//! Architecture invariants: only this crate knows HTTP; it reads no environment
//! variables or files of its own (configuration comes in through `ServerConfig`).

mod api;
pub mod auth;
pub mod demo;
mod error;
pub mod evidence;
pub mod exports;
mod finish;
mod listen;
mod live;
mod people;
pub mod retention;
pub mod selfaudit;
pub mod selfcheck;
mod ui;

use std::{future::Future, sync::Arc};

use axum::Router;
use tokio::net::TcpListener;
use trail_core::{Limits, Timestamp};
use trail_store::DynStore;

pub use auth::{create_api_key, generate_key, hash_key};
pub use error::ApiError;
pub use listen::ConnectionConfig;
pub use people::{hash_password, one_time_password};
pub use retention::RetentionConfig;

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

/// The SMTP server scheduled exports are mailed through (plain SMTP, e.g. a local
/// relay; optional AUTH).
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub from: String,
    pub username: Option<String>,
    pub password: Option<String>,
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

/// Everything a request handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: DynStore,
    pub config: Arc<ServerConfig>,
    pub clock: Clock,
    /// Recently seen API keys, so that authentication costs no query per request.
    keys: Arc<auth::KeyCache>,
    views: Arc<selfaudit::Views>,
    jobs: Arc<exports::Jobs>,
    live: Arc<live::Live>,
    /// The last self-check's outcome, for `/healthz`.
    last_check: Arc<selfcheck::LastCheck>,
    /// Where retention archives events (and downloads read them back).
    pub archive: Option<Arc<trail_store::archive::Archive>>,
}

impl AppState {
    pub fn new(store: DynStore, config: ServerConfig, clock: Clock) -> AppState {
        let st = AppState {
            store,
            archive: retention::open(&config.retention),
            config: Arc::new(config),
            clock,
            keys: Arc::default(),
            views: Arc::default(),
            jobs: Arc::default(),
            live: Arc::default(),
            last_check: Arc::default(),
        };
        // Events other processes append to a shared database reach this one's live view.
        if let (Some(rx), Ok(rt)) = (st.store.appended_elsewhere(), tokio::runtime::Handle::try_current()) {
            rt.spawn(live::relay(st.store.clone(), st.live.clone(), rx));
        }
        st
    }

    /// The organization that records events without one of their own.
    async fn system_org(&self) -> Result<String, ApiError> {
        if let Some(o) = &self.config.system_org {
            return Ok(o.clone());
        }
        let orgs = self.store.orgs().await?;
        orgs.into_iter()
            .next()
            .map(|o| o.slug)
            .ok_or_else(|| ApiError::Unavailable("no organization exists yet".into()))
    }
}

/// The first platform administrator, made on first start.
#[derive(Debug, Clone)]
pub struct Bootstrapped {
    pub org: String,
    pub email: String,
    pub one_time_password: String,
}

/// On a store without users: makes sure an organization exists (the first one, or
/// `org` when there is none) and creates a platform administrator with a one-time
/// password, returned so that it can be printed once.
pub async fn bootstrap(st: &AppState, org: &str) -> Result<Option<Bootstrapped>, ApiError> {
    if !st.store.list_users(None).await?.is_empty() {
        return Ok(None);
    }
    let org = match st.store.orgs().await?.into_iter().next() {
        Some(o) => o.slug,
        None => {
            st.store.ensure_org(trail_store::Org { slug: org.into(), name: org.into() }).await?;
            org.to_string()
        }
    };
    let password = one_time_password();
    let pw = password.clone();
    let hash = tokio::task::spawn_blocking(move || hash_password(&pw))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    let email = "admin@trail.local".to_string();
    let made = st
        .store
        .create_user(trail_store::NewUser {
            org: org.clone(),
            email: email.clone(),
            name: "Platform administrator".into(),
            role: "platform_admin".into(),
            password_hash: hash,
            must_change: true,
        })
        .await;
    let user = match made {
        Ok(u) => u,
        // Another server sharing the database bootstrapped at the same moment.
        Err(trail_store::StoreError::Invalid { field, .. }) if field == "email" => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let resource = serde_json::json!({"type": "user", "id": user.id.to_string(), "name": email});
    selfaudit::record_system(st, &org, "user:create", resource, serde_json::json!({"role": "platform_admin"})).await;
    Ok(Some(Bootstrapped { org, email, one_time_password: password }))
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    api::router(state)
}

/// Serves `app(state)` on `listener` until `shutdown` completes, then finishes the
/// requests in flight.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.config.connections.clone();
    listen::serve(listener, app(state), limits, shutdown).await
}
