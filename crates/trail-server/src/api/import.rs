//! `POST /api/v1/import/{format}` (an ingest key): another system's audit records
//! (CloudTrail, Kubernetes audit events — also as the API server's webhook backend —
//! or a product's own event shape) stored as Trail events. Answers like
//! `POST /api/v1/events`, plus the duplicates and the records skipped with reasons.

use axum::{
    extract::{Path, Request, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;
use trail_core::FieldError;
use utoipa::ToSchema;

use super::events::Ack;
use crate::{
    auth::Caller,
    error::ApiError,
    work::import::{self, Format, Skipped},
    AppState,
};

/// What an import stored and skipped.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ImportAnswer {
    accepted: usize,
    events: Vec<Ack>,
    /// Events whose source id was imported before (each names the earlier event).
    #[serde(skip_serializing_if = "Option::is_none")]
    duplicates: Option<usize>,
    /// Records not imported, with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    skipped: Vec<Skipped>,
}

#[utoipa::path(
    post, path = "/api/v1/import/{format}", tag = "events", security(("api_key" = [])),
    params(("format" = String, Path, description = "cloudtrail, k8s, gcp, okta, github, kiops, kubevision, ops0, dify or gpucloud")),
    request_body(content = String, description = "One JSON document (a CloudTrail log file, a Kubernetes EventList, an array, one record) or JSON Lines", content_type = "application/json"),
    responses((status = 200, description = "Every importable record stored; the others listed in `skipped`", body = ImportAnswer), crate::api::doc::Errors)
)]
pub(super) async fn import(
    State(st): State<AppState>,
    caller: Caller,
    Path(format): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let org = caller.write_org()?.to_string();
    let Some(format) = Format::parse(&format) else {
        return Err(ApiError::field("format", format!("'{format}' is not a format ({})", Format::NAMES.join(", "))));
    };
    let limit = st.config.limits.max_request_bytes;
    let body = axum::body::to_bytes(req.into_body(), limit).await.map_err(|_| {
        FieldError::new("body", format!("request is larger than {limit} bytes"))
            .with_code(trail_core::FieldCode::TooLarge)
    })?;
    let text = String::from_utf8(body.to_vec()).map_err(|e| ApiError::field("body", format!("is not UTF-8 ({e})")))?;
    let converted = tokio::task::spawn_blocking(move || import::convert(format, &text))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let stored = import::store(&st, &org, converted.events).await?;
    let events: Vec<Ack> = stored.acks.iter().map(|a| Ack { id: a.id, seq: a.seq, duplicate: a.duplicate }).collect();
    let duplicates = (stored.duplicates > 0).then_some(stored.duplicates);
    if let Some(m) = &st.metrics {
        m.ingested(&org, events.len());
    }
    let answer = ImportAnswer { accepted: events.len(), events, duplicates, skipped: converted.skipped };
    Ok((StatusCode::OK, Json(answer)).into_response())
}
