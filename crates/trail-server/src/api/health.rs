//! What operators' tools ask: `/healthz` (liveness: the process is up; its body says
//! what an operator should look at: `degraded`), `/readyz` (readiness: 503 while the
//! store cannot be written, a log is not being signed, the last self-check found a
//! problem, or the server is shutting down), and `/metrics` (Prometheus, with a token
//! here or on a listener of its own), with the request timing behind it.

use axum::{
    extract::{MatchedPath, Request, State},
    http::{header, HeaderMap, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::AppState;

/// The server's health.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    /// `ok`, or `degraded` while the last self-check's findings stand.
    status: String,
    /// The last self-check's outcome, once one ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    verify: Option<Value>,
    /// Organizations whose logs are not being signed because their stored tree does
    /// not agree with their leaves, and why (`degraded` while any is listed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    not_signed: Vec<trail_store::seal::Refusal>,
    /// With `[witness]`: the quorum, the newest signed and witnessed sizes of the
    /// installation log, the lag in seconds, and each witness's last answer
    /// (`degraded` while lagging, or while a witness refuses or is misconfigured).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    witness: Option<crate::work::witness::WitnessHealth>,
}

/// `ok`, or `degraded` while the last self-check's findings stand or a log is not
/// being signed (still 200: the server works; what it stores needs an operator).
#[utoipa::path(
    get, path = "/healthz", tag = "system", security(()),
    responses((status = 200, description = "The server works; `degraded` while the last self-check's findings stand or a log is not being signed", body = Health))
)]
pub(super) async fn health(State(st): State<AppState>) -> Response {
    let (ok, last) = st.last_check.health();
    let not_signed = st.store.refusals();
    let witness = crate::work::witness::health(&st);
    let ok = ok && not_signed.is_empty() && !witness.as_ref().is_some_and(|w| w.degraded());
    let status = if ok { "ok" } else { "degraded" }.into();
    Json(Health { status, verify: last, not_signed, witness }).into_response()
}

/// Whether the server should be sent traffic.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Ready {
    /// `ready` or `not_ready`.
    status: &'static str,
    /// Why not, one reason a line.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    reasons: Vec<String>,
}

/// Readiness, for load balancers and orchestrators: 200 `ready`, or 503 `not_ready`
/// with the reasons.
#[utoipa::path(
    get, path = "/readyz", tag = "system", security(()),
    responses((status = 200, description = "Send it traffic", body = Ready),
        (status = 503, description = "Take it out: the store cannot be written, a log is not being signed, the last self-check found a problem, or it is shutting down", body = Ready))
)]
pub(super) async fn ready(State(st): State<AppState>) -> Response {
    let mut reasons = Vec::new();
    if st.shutdown.is_cancelled() {
        reasons.push("shutting down".to_string());
    }
    if let Err(e) = st.store.writable().await {
        reasons.push(format!("the store cannot be written: {e}"));
    }
    for r in st.store.refusals() {
        reasons.push(format!("the log of {} is not being signed: {}", r.org, r.reason));
    }
    let (checked_ok, _) = st.last_check.health();
    if !checked_ok {
        reasons.push("the last self-check found a problem (see /healthz)".to_string());
    }
    let status = if reasons.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let status_text = if reasons.is_empty() { "ready" } else { "not_ready" };
    (status, Json(Ready { status: status_text, reasons })).into_response()
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `GET /metrics` on the main listener: with `[metrics] token_file`, for that bearer
/// token only; otherwise not here (404).
pub(super) async fn metrics(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let Some(token) = st.config.metrics.token.as_deref().filter(|_| st.metrics.is_some()) else {
        return crate::error::ApiError::NotFound("no such endpoint".into()).into_response();
    };
    let given =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let ok = given.is_some_and(|g| {
        use sha2::Digest;
        // Compared as digests: no early exit on the first differing byte.
        sha2::Sha256::digest(g.as_bytes()) == sha2::Sha256::digest(token.as_bytes())
    });
    if !ok {
        return crate::error::ApiError::Unauthorized("the metrics token is missing or wrong".into()).into_response();
    }
    metrics_open(State(st), headers).await
}

/// `GET /metrics` on the metrics listener (no token: the address is the protection):
/// OpenMetrics for clients that ask for it (Prometheus does), else the classic text.
pub(crate) async fn metrics_open(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let text = crate::work::metrics::render(&st).await;
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if accept.contains("application/openmetrics-text") {
        return ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response();
    }
    let classic = crate::work::metrics::classic_text(&text);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], classic).into_response()
}

/// Times each request by its route template, and counts what ingest stored and refused.
pub(super) async fn time_requests(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let Some(m) = st.metrics.clone() else { return next.run(req).await };
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_default();
    let method = req.method().to_string();
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    m.request(&method, &route, started.elapsed().as_secs_f64());
    response
}
