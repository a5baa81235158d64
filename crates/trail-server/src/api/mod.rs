//! The HTTP API, one module per resource: `events` (ingest, list, detail, facets),
//! `health` (`/healthz` liveness, `/readyz` readiness), `proofs`, `people` (login, sessions, users, roles), `keys`, `exports`
//! (exports and downloads), `jobs` (background exports), `schedules`, `timeline`
//! (matches per hour or day), `alerts` (rules, destinations, deliveries). Handlers parse
//! and check the request, call the store or the work layer (`crate::work`), and answer;
//! what is not HTTP lives there.

use axum::{
    routing::{delete, get, patch, post, put},
    Router,
};

use crate::{error::ApiError, AppState};

mod alerts;
pub mod doc;
mod events;
mod export_request;
pub(crate) mod exports;
pub(crate) mod extract;
mod health;
mod holds;
mod import;
pub(crate) mod jobs;
mod keys;
pub(crate) mod params;
pub(crate) mod people;
mod proofs;
mod schedules;
mod streams;
mod tiles;
mod timeline;

/// Every route of the application.
pub(crate) fn router(state: AppState) -> Router {
    let timing = state.clone();
    let routes = Router::new()
        .route("/healthz", get(health::health))
        .route("/readyz", get(health::ready))
        .route("/metrics", get(health::metrics))
        .route("/api/v1/events", post(events::ingest).get(events::list))
        .route("/api/v1/import/{format}", post(import::import))
        .route("/api/v1/events/stream", get(crate::live::stream))
        .route("/api/v1/events/{id}", get(events::detail))
        .route("/api/v1/facets", get(events::facets))
        .route("/api/v1/timeline", get(timeline::timeline))
        .route("/api/v1/alerts/rules", get(alerts::list_rules).post(alerts::create_rule))
        .route("/api/v1/alerts/rules/{name}", put(alerts::put_rule).delete(alerts::delete_rule))
        .route("/api/v1/alerts/destinations", get(alerts::list_destinations).post(alerts::create_destination))
        .route("/api/v1/alerts/destinations/{id}", delete(alerts::delete_destination))
        .route("/api/v1/alerts/destinations/{id}/rotate", post(alerts::rotate_secret))
        .route("/api/v1/alerts/destinations/{id}/test", post(alerts::test_destination))
        .route("/api/v1/alerts/deliveries", get(alerts::list_deliveries))
        .route("/api/v1/alerts/deliveries/{id}/retry", post(alerts::retry_delivery))
        .route("/api/v1/streams", get(streams::list_streams).post(streams::create_stream))
        .route(
            "/api/v1/streams/{id}",
            get(streams::get_stream).patch(streams::change_stream).delete(streams::delete_stream),
        )
        .route("/api/v1/streams/{id}/pause", post(streams::pause_stream))
        .route("/api/v1/streams/{id}/resume", post(streams::resume_stream))
        .route("/api/v1/streams/{id}/replay", post(streams::replay_stream))
        .route("/api/v1/checkpoint", get(proofs::checkpoint))
        .route("/log/{org}/checkpoint", get(tiles::checkpoint))
        .route("/log/{org}/tile/{*path}", get(tiles::tile))
        .route("/api/v1/proof/inclusion", get(proofs::inclusion))
        .route("/api/v1/proof/consistency", get(proofs::consistency))
        .route("/api/v1/auth/login", post(people::login))
        .route("/api/v1/auth/logout", post(people::logout))
        .route("/api/v1/auth/password", post(people::change_password))
        .route("/api/v1/auth/me", get(people::me))
        .route("/api/v1/users", get(people::list_users).post(people::create_user))
        .route("/api/v1/users/{id}", patch(people::update_user))
        .route("/api/v1/roles", get(people::list_roles))
        .route("/api/v1/roles/{name}", put(people::put_role).delete(people::delete_role))
        .route("/api/v1/keys", get(keys::list_keys).post(keys::create_key))
        .route("/api/v1/keys/{id}", delete(keys::revoke_key))
        .route("/api/v1/export", get(exports::export))
        .route("/api/v1/download", get(exports::download))
        .route("/api/v1/exports", post(jobs::start_job))
        .route("/api/v1/exports/{id}", get(jobs::job_status))
        .route("/api/v1/exports/{id}/file", get(jobs::job_file))
        .route("/api/v1/holds", get(holds::list_holds).post(holds::place_hold))
        .route("/api/v1/holds/{id}/release", post(holds::release_hold))
        .route("/api/v1/schedules", get(schedules::list_schedules).post(schedules::create_schedule))
        .route("/api/v1/schedules/{id}", delete(schedules::delete_schedule))
        .route("/api/v1/schedules/{id}/run", post(schedules::run_schedule_now))
        .route("/api/v1/openapi.json", get(doc::openapi_json))
        // Every route above timed by its template (`trail_http_request_duration_seconds`).
        .route_layer(axum::middleware::from_fn_with_state(timing, health::time_requests))
        .merge(crate::ui::router())
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .with_state(state);
    // `finish` wraps the whole router, not each route: a 405's `Allow` header is set as
    // the route answers, and the error body names the methods from it.
    Router::new().fallback_service(routes).layer(axum::middleware::from_fn(crate::finish::finish))
}

pub(crate) use health::metrics_open;
