//! API errors: every failure becomes `{"error": {"code", "message", "field"?}}` with
//! the right status. 4xx messages say what to fix; 5xx details are logged, not sent.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;
use trail_core::FieldError;
use trail_store::StoreError;

#[derive(Debug)]
pub enum ApiError {
    /// Malformed request (bad JSON, bad parameter): 400, or 413 when too large.
    Field(FieldError),
    /// Well-formed JSON whose content is invalid (an event field): 422, or 413.
    Unprocessable(FieldError),
    Unauthorized(String),
    Forbidden(String),
    NotFound(String),
    /// The resource is not in a state for this (409).
    Conflict(String),
    /// Too many attempts: 429 with `Retry-After` (seconds).
    TooMany(String, u64),
    Unavailable(String),
    Internal(String),
}

impl ApiError {
    pub fn field(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::Field(FieldError::new(field, message))
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::Field(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid { field, message } => {
                ApiError::Field(FieldError::new(field, message).with_code("invalid_field"))
            }
            StoreError::UnknownOrg(org) => ApiError::NotFound(format!("no organization '{org}'")),
            StoreError::Closed | StoreError::Unavailable(_) => ApiError::Unavailable(e.to_string()),
            StoreError::Sqlite(rusqlite_err) if is_busy(&rusqlite_err.to_string()) => {
                ApiError::Unavailable(rusqlite_err.to_string())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

fn is_busy(msg: &str) -> bool {
    msg.contains("database is locked") || msg.contains("busy")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message, field) = match self {
            ApiError::Field(e) => {
                let status =
                    if e.code == "too_large" { StatusCode::PAYLOAD_TOO_LARGE } else { StatusCode::BAD_REQUEST };
                (status, e.code, e.message, Some(e.field))
            }
            ApiError::Unprocessable(e) => {
                let status = if e.code == "too_large" {
                    StatusCode::PAYLOAD_TOO_LARGE
                } else {
                    StatusCode::UNPROCESSABLE_ENTITY
                };
                (status, e.code, e.message, Some(e.field))
            }
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "unauthorized", m, Some("authorization".into())),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m, None),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m, None),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "conflict", m, None),
            ApiError::TooMany(m, wait) => {
                let body = Json(json!({"error": {"code": "too_many_attempts", "message": m, "retry_after": wait}}));
                return (StatusCode::TOO_MANY_REQUESTS, [(axum::http::header::RETRY_AFTER, wait.to_string())], body)
                    .into_response();
            }
            ApiError::Unavailable(m) => {
                tracing::warn!(error = %m, "store unavailable");
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the store is unavailable; retry later".into(), None)
            }
            ApiError::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see the server log".into(), None)
            }
        };
        let mut err = json!({"code": code, "message": message});
        if let Some(f) = field {
            err["field"] = json!(f);
        }
        (status, Json(json!({ "error": err }))).into_response()
    }
}
