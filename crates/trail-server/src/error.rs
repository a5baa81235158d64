//! API errors: every failure becomes `{"error": {"code", "message", "field"?}}` with
//! the right status. 4xx messages say what to fix; 5xx details are logged, not sent.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde::{Deserialize, Serialize};
use trail_core::FieldError;
use trail_store::StoreError;
use utoipa::ToSchema;

/// Every error's body: `{"error": {...}}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong: a stable code, a message that says what to fix (4xx) or only that
/// something failed (5xx), and the field at fault where there is one.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// e.g. `invalid_field`, `unknown_filter`, `unauthorized`, `forbidden`,
    /// `not_found`, `conflict`, `too_many_attempts`, `too_large`, `too_slow`,
    /// `unavailable`, `commit_unknown`, `insufficient_storage`, `write_failed`,
    /// `damaged`, `internal`.
    pub code: String,
    pub message: String,
    /// The request field, parameter or header at fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Seconds to wait before trying again (`too_many_attempts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl ErrorDetail {
    pub(crate) fn new(code: &str, message: impl Into<String>, field: Option<&str>) -> ErrorDetail {
        ErrorDetail { code: code.into(), message: message.into(), field: field.map(str::to_string), retry_after: None }
    }
}

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
    /// The disk is full: 507. The detail is logged.
    Storage(String),
    /// Writing a file failed for another reason (permissions, I/O): 503. Logged.
    WriteFailed(String),
    /// The database went away while a commit was in flight, so whether it landed is
    /// unknown: 503, telling the client to retry with its idempotency keys.
    CommitUnknown(String),
    /// Stored data (an archive file) fails its check: 500, naming what is damaged, since
    /// the operator must restore it.
    Damaged(String),
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

/// The work layer's failures as answers: what was asked is wrong (400), a full disk
/// (507), a failed write or something missing (503), a bug (500).
impl From<crate::WorkError> for ApiError {
    fn from(e: crate::WorkError) -> Self {
        ApiError::from(&e)
    }
}

/// By reference, for errors kept (a background job's failure shown at each poll).
impl From<&crate::WorkError> for ApiError {
    fn from(e: &crate::WorkError) -> Self {
        use crate::WorkError as W;
        match e {
            W::Field(f) => ApiError::Field(f.clone()),
            W::Store(s) => s.into(),
            W::NotFound(m) => ApiError::NotFound(m.clone()),
            W::StorageFull(m) => ApiError::Storage(m.clone()),
            W::WriteFailed(m) => ApiError::WriteFailed(m.clone()),
            W::Unavailable(m) => ApiError::Unavailable(m.clone()),
            W::Internal(m) => ApiError::Internal(m.clone()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::from(&e)
    }
}

impl From<&StoreError> for ApiError {
    fn from(e: &StoreError) -> Self {
        match e {
            StoreError::Invalid { field, message } => ApiError::Field(
                FieldError::new(field.clone(), message.clone()).with_code(trail_core::FieldCode::InvalidField),
            ),
            StoreError::UnknownOrg(org) => ApiError::NotFound(format!("no organization '{org}'")),
            e @ StoreError::Damaged { .. } => ApiError::Damaged(e.to_string()),
            StoreError::CommitUnknown(m) => ApiError::CommitUnknown(m.clone()),
            StoreError::Closed | StoreError::Unavailable(_) | StoreError::Busy(_) => {
                ApiError::Unavailable(e.to_string())
            }
            StoreError::Conflict { what, .. } => ApiError::Conflict(format!("{what} already exists")),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl ApiError {
    /// The status and the `error` object, as sent (5xx details are logged here).
    pub(crate) fn parts(&self) -> (StatusCode, ErrorDetail) {
        let (status, code, message, field) = match self {
            ApiError::Field(e) => {
                let status = if e.code == trail_core::FieldCode::TooLarge {
                    StatusCode::PAYLOAD_TOO_LARGE
                } else {
                    StatusCode::BAD_REQUEST
                };
                (status, e.code.as_str(), e.message.clone(), Some(e.field.clone()))
            }
            ApiError::Unprocessable(e) => {
                let status = if e.code == trail_core::FieldCode::TooLarge {
                    StatusCode::PAYLOAD_TOO_LARGE
                } else {
                    StatusCode::UNPROCESSABLE_ENTITY
                };
                (status, e.code.as_str(), e.message.clone(), Some(e.field.clone()))
            }
            ApiError::Unauthorized(m) => {
                (StatusCode::UNAUTHORIZED, "unauthorized", m.clone(), Some("authorization".into()))
            }
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m.clone(), None),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m.clone(), None),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "conflict", m.clone(), None),
            ApiError::TooMany(m, wait) => {
                let err = ErrorDetail { retry_after: Some(*wait), ..ErrorDetail::new("too_many_attempts", m, None) };
                return (StatusCode::TOO_MANY_REQUESTS, err);
            }
            ApiError::Unavailable(m) => {
                tracing::warn!(error = %m, "store unavailable");
                let m = "the store is unavailable; retry later".to_string();
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable", m, None)
            }
            ApiError::Storage(m) => {
                tracing::error!(error = %m, "disk full");
                let m = "the server's disk is full; nothing was written (tell the operator)".to_string();
                (StatusCode::INSUFFICIENT_STORAGE, "insufficient_storage", m, None)
            }
            ApiError::WriteFailed(m) => {
                tracing::error!(error = %m, "write failed");
                let m = "the file could not be written; retry later".to_string();
                (StatusCode::SERVICE_UNAVAILABLE, "write_failed", m, None)
            }
            ApiError::CommitUnknown(m) => {
                tracing::warn!(error = %m, "commit outcome unknown");
                let m = "the store went away during the commit, so whether the events were stored is unknown; \
                         send the same request again: events with an idempotency_key are stored once"
                    .to_string();
                (StatusCode::SERVICE_UNAVAILABLE, "commit_unknown", m, None)
            }
            ApiError::Damaged(m) => {
                tracing::error!(error = %m, "damaged data");
                (StatusCode::INTERNAL_SERVER_ERROR, "damaged", m.clone(), None)
            }
            ApiError::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see the server log".into(), None)
            }
        };
        (status, ErrorDetail::new(code, message, field.as_deref()))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, err) = self.parts();
        let mut resp = (status, Json(ErrorBody { error: err })).into_response();
        if let ApiError::TooMany(_, wait) = self {
            if let Ok(v) = axum::http::HeaderValue::from_str(&wait.to_string()) {
                resp.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
            }
        }
        if matches!(self, ApiError::CommitUnknown(_) | ApiError::Unavailable(_)) {
            resp.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_failures_become_the_documented_statuses() {
        for (e, status, code) in [
            (StoreError::CommitUnknown("gone".into()), StatusCode::SERVICE_UNAVAILABLE, "commit_unknown"),
            (StoreError::Unavailable("down".into()), StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            (
                StoreError::Damaged { path: "acme/x.zst".into(), problem: "bad".into() },
                StatusCode::INTERNAL_SERVER_ERROR,
                "damaged",
            ),
        ] {
            let (s, body) = ApiError::from(e).parts();
            assert_eq!((s, body.code.as_str()), (status, code), "{body:?}");
        }
        let (_, body) = ApiError::from(StoreError::CommitUnknown("gone".into())).parts();
        assert!(body.message.contains("idempotency_key"), "{body:?}");
        let (_, body) =
            ApiError::from(StoreError::Damaged { path: "acme/x.zst".into(), problem: "bad".into() }).parts();
        assert!(body.message.contains("acme/x.zst"), "{body:?}");
    }
}
