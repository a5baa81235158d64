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

use std::{future::Future, sync::Arc};

use axum::Router;
use tokio::net::TcpListener;
use trail_core::{Limits, Timestamp};
use trail_store::DynStore;

pub use auth::{generate_key, hash_key};
pub use error::ApiError;

/// What the server needs to know, resolved by the `trail` binary.
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    /// Ingest size limits.
    pub limits: Limits,
    /// The installation's log name and checkpoint verifying key, for evidence files.
    pub log: Option<LogKey>,
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
}

impl AppState {
    pub fn new(store: DynStore, config: ServerConfig, clock: Clock) -> AppState {
        AppState { store, config: Arc::new(config), clock, keys: Arc::default() }
    }
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
    axum::serve(listener, app(state)).with_graceful_shutdown(shutdown).await
}
