//! Liveness and readiness: `/healthz` says the process is up (and, in its body, what
//! an operator should look at: `degraded`), `/readyz` whether it should be sent
//! traffic: 503 while the store cannot be written, a log is not being signed, the last
//! self-check found a problem, or the server is shutting down.

use axum::{
    extract::State,
    http::StatusCode,
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
