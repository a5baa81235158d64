//! The work that is not HTTP: the export pipeline, scheduled exports and their mail,
//! retention, self-audit, the daily self-check, evidence files and demo data. The HTTP
//! layer (`api`) and the `trail` command line both call it with a `Services`.
//!
//! Architecture invariant: nothing here knows HTTP (no axum, no status codes, no
//! `ApiError`); failures are `WorkError`s, which the HTTP layer maps to responses and
//! the command line to messages.

use std::sync::Arc;

use trail_core::FieldError;
use trail_store::{archive::Archive, DynStore, StoreError};

use crate::config::{Clock, ServerConfig};
pub use background::{start, Spawner};

pub mod alerts;
mod background;
pub mod bootstrap;
pub mod credentials;
pub mod daily;
pub mod demo;
pub mod evidence;
pub mod export;
pub(crate) mod feed;
pub mod holds;
pub mod import;
pub mod jobs;
mod mail;
pub mod metrics;
pub mod mirror;
pub mod outbound;
pub mod publish;
pub mod retention;
pub mod schedules;
pub mod selfaudit;
pub mod selfcheck;
pub mod streams;
pub mod tiles;
pub mod witness;

/// What the work needs: the store, the configuration, the clock, the archive, and the
/// state of self-audit and the self-check. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    pub store: DynStore,
    pub config: Arc<ServerConfig>,
    pub clock: Clock,
    /// Where retention archives events (and downloads read them back).
    pub archive: Option<Arc<Archive>>,
    /// Views recorded lately, so that repeats are folded.
    pub(crate) views: Arc<selfaudit::Views>,
    /// The last self-check's outcome, for `/healthz`.
    pub(crate) last_check: Arc<selfcheck::LastCheck>,
    /// Appended events, for live streams.
    pub(crate) feed: Arc<feed::Feed>,
    /// Wake-ups of the alert evaluator and delivery worker.
    pub(crate) alerts: Arc<alerts::Signals>,
    /// Wake-ups of the stream drivers, and this server's name as a lease holder.
    pub(crate) streams: Arc<streams::Signals>,
    /// Background export jobs.
    pub jobs: Arc<jobs::Jobs>,
    /// What this server last saw of the installation log's witnesses.
    pub(crate) witness_view: Arc<witness::WitnessView>,
    /// Metrics, when `[metrics]` serves them.
    pub metrics: Option<Arc<metrics::Metrics>>,
    /// Live event streams open now.
    pub(crate) live_streams: Arc<std::sync::atomic::AtomicUsize>,
}

impl Services {
    pub fn new(store: DynStore, config: ServerConfig, clock: Clock) -> Services {
        Services {
            store,
            archive: retention::open(&config.retention),
            metrics: config.metrics.enabled().then(Arc::default),
            live_streams: Arc::default(),
            config: Arc::new(config),
            clock,
            views: Arc::default(),
            last_check: Arc::default(),
            feed: Arc::default(),
            alerts: Arc::default(),
            streams: Arc::default(),
            jobs: Arc::default(),
            witness_view: Arc::default(),
        }
    }

    /// The organization that records events without one of their own.
    pub async fn system_org(&self) -> Result<String, WorkError> {
        if let Some(o) = &self.config.system_org {
            return Ok(o.clone());
        }
        let orgs = self.store.orgs().await?;
        orgs.into_iter()
            .next()
            .map(|o| o.slug)
            .ok_or_else(|| WorkError::Unavailable("no organization exists yet".into()))
    }
}

/// Why a piece of work failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    /// What was asked is wrong, in this field.
    #[error("{0}")]
    Field(FieldError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Nothing of that name (an event, a checkpoint) exists.
    #[error("{0}")]
    NotFound(String),
    /// The disk is full: nothing was written.
    #[error("the disk is full: {0}")]
    StorageFull(String),
    /// A write failed for another reason: nothing was written.
    #[error("a write failed: {0}")]
    WriteFailed(String),
    /// Something needed is not configured or not there yet.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or unreadable stored data.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<FieldError> for WorkError {
    fn from(e: FieldError) -> Self {
        WorkError::Field(e)
    }
}

impl WorkError {
    pub fn field(field: &str, message: impl Into<String>) -> WorkError {
        WorkError::Field(FieldError::new(field, message))
    }
}

#[cfg(test)]
mod invariants {
    /// Nothing in the work layer knows the HTTP the server answers with, and its own
    /// outbound requests (webhooks, chat, SIEM streams) are made only in
    /// `outbound.rs`: clients built, requests sent and answers read there.
    #[test]
    fn the_work_layer_has_no_http_types() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/work");
        let mut files = Vec::new();
        let mut dirs = vec![dir];
        while let Some(d) = dirs.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        assert!(files.iter().any(|f| f.ends_with("alerts/send.rs")), "the rooms below work/ are read too");
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap();
            // This test names what it looks for.
            let text = text.split("mod invariants").next().unwrap_or_default();
            for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for needle in ["axum", "ApiError", "StatusCode", "http::", "crate::api", "crate::auth", "AppState"] {
                    assert!(!line.contains(needle), "{}: {line}", path.display());
                }
                if !path.ends_with("work/outbound.rs") {
                    for needle in ["Client::builder", ".send().await", ".status()", "reqwest::Client::new"] {
                        assert!(
                            !line.contains(needle),
                            "outbound HTTP outside outbound.rs: {}: {line}",
                            path.display()
                        );
                    }
                }
            }
        }
    }
}
