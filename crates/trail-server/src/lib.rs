//! Trail's HTTP server: the axum application (`app(state)`), `serve(listener, state,
//! shutdown)`, API-key and session authentication (`auth`), the API by resource
//! (`api`), live streams, the page's assets; and beside it the work layer (`work`),
//! which knows no HTTP and which the `trail` command line calls directly.
//!
//! Architecture invariants: only this crate knows HTTP, and within it only `api`,
//! `auth`, `error`, `finish`, `listen`, `live` and `ui` do; it reads no environment
//! variables or files of its own (configuration comes in through `ServerConfig`).

mod api;
pub mod auth;
mod config;
mod error;
mod finish;
mod forwarded;
mod listen;
mod live;
mod ui;
pub mod work;

use std::{future::Future, sync::Arc};

use axum::Router;
use tokio::net::TcpListener;
use trail_store::DynStore;

pub use config::{
    system_clock, AlertConfig, Clock, ConnectionConfig, ExportConfig, LogKey, MetricsConfig, RetentionConfig,
    ServerConfig, SmtpConfig, SmtpTls, StreamConfig, WitnessConfig,
};
pub use error::ApiError;
pub use work::{
    bootstrap::{bootstrap, Bootstrapped},
    credentials::{create_api_key, generate_key, hash_key, hash_password, one_time_password},
    Services, WorkError,
};

/// Everything a request handler can reach: the work layer's services (through
/// `Deref`), and what only HTTP needs.
#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    /// Recently seen API keys, so that authentication costs no query per request.
    keys: Arc<auth::KeyCache>,
    live: Arc<live::Live>,
    /// Ends the background loops `work::start` started for this state.
    shutdown: tokio_util::sync::CancellationToken,
}

impl std::ops::Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.services
    }
}

impl AppState {
    pub fn new(store: DynStore, config: ServerConfig, clock: Clock) -> AppState {
        AppState::with(Services::new(store, config, clock))
    }

    /// Cancelled when the server shuts down (ends what runs beside it).
    pub fn shutdown_token(&self) -> tokio_util::sync::CancellationToken {
        self.shutdown.clone()
    }

    /// The HTTP state around existing services.
    pub fn with(services: Services) -> AppState {
        let shutdown = tokio_util::sync::CancellationToken::new();
        work::start(&services, shutdown.clone());
        let live = Arc::new(live::Live::counting(services.live_streams.clone()));
        AppState { services, keys: Arc::default(), live, shutdown }
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
    let limits = state.config.connections.clone();
    let metrics = state.metrics.clone();
    // Open live streams end as shutdown begins, so that it does not wait on them.
    let (live, background) = (state.live.clone(), state.shutdown.clone());
    let shutdown = async move {
        shutdown.await;
        live.close();
        background.cancel();
    };
    listen::serve(listener, app(state), limits, metrics, shutdown).await
}

/// Serves `GET /metrics` alone on a listener of its own (`[metrics] listen`), without a
/// token, until `shutdown` completes.
pub async fn serve_metrics(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new().route("/metrics", axum::routing::get(api::metrics_open)).with_state(state);
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
