//! Streams over HTTP (`/api/v1/streams`): create, list, read (with health), change,
//! pause, resume, replay and delete. Streams send events of every category of the
//! organization, so every call needs a view of every category; changes need an
//! organization administrator. Each change is recorded (`stream:*`).

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use trail_store::{
    streams::{Stream, StreamState},
    Categories,
};
use utoipa::ToSchema;

use super::extract::{JsonBody, Managed, Reading};
use crate::{
    auth::Caller,
    error::ApiError,
    work::{
        selfaudit,
        streams::setup::{self, StartAt, StreamSpec, StreamView},
    },
    AppState,
};

/// A stream carries every category: its caller must see them all.
fn every_category(caller: &Caller) -> Result<(), ApiError> {
    if caller.read_scope()?.categories != Categories::All {
        return Err(ApiError::Forbidden(
            "streams carry events of every category; your role may not view them all".into(),
        ));
    }
    Ok(())
}

async fn own(st: &AppState, org: &str, id: i64) -> Result<Stream, ApiError> {
    st.store.get_stream(org, id).await?.ok_or_else(|| ApiError::NotFound(format!("no stream {id}")))
}

/// What a new stream answers: its id, and the signing secret of an HTTP stream
/// (shown once).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Created {
    id: i64,
    /// `whsec_…`: verifies `webhook-signature` (Standard Webhooks). Not shown again.
    secret: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StreamList {
    streams: Vec<StreamView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplayBody {
    /// `"beginning"`, `"now"`, `{"seq": N}` or `{"time": RFC 3339}`.
    from: StartAt,
}

fn summary(s: &Stream) -> serde_json::Value {
    let url = s.url.as_deref().map(crate::work::outbound::masked);
    json!({"kind": s.kind, "format": s.format, "url": url, "address": s.address, "tls": s.tls, "query": s.query,
           "headers": s.headers.keys().collect::<Vec<_>>(), "cursor": s.cursor})
}

#[utoipa::path(
    post, path = "/api/v1/streams", tag = "streams", request_body = StreamSpec, params(crate::api::doc::OrgParam),
    responses((status = 201, description = "The stream was made; it starts where `start` says (default: now)", body = Created), crate::api::doc::Errors)
)]
pub(super) async fn create_stream(
    State(st): State<AppState>,
    Managed { caller, org }: Managed,
    JsonBody(spec): JsonBody<StreamSpec>,
) -> Result<Response, ApiError> {
    every_category(&caller)?;
    let s = setup::new_stream(&st, &org, &spec).await?;
    let s = st.store.create_stream(s).await?;
    st.streams.changed();
    selfaudit::record(&st, caller.record("stream:create").resource("stream", s.id, &s.name).details(summary(&s))).await;
    let secret = s.secrets.first().cloned();
    Ok((StatusCode::CREATED, Json(Created { id: s.id, secret })).into_response())
}

#[utoipa::path(
    get, path = "/api/v1/streams", tag = "streams", params(crate::api::doc::OrgParam),
    responses((status = 200, description = "The organization's streams with their health", body = StreamList), crate::api::doc::Errors)
)]
pub(super) async fn list_streams(
    State(st): State<AppState>,
    Reading { caller, org }: Reading,
) -> Result<Response, ApiError> {
    every_category(&caller)?;
    let mut streams = Vec::new();
    for s in st.store.streams(Some(&org)).await? {
        streams.push(setup::view(&st, &s).await?);
    }
    Ok(Json(StreamList { streams }).into_response())
}

#[utoipa::path(
    get, path = "/api/v1/streams/{id}", tag = "streams",
    params(("id" = i64, Path, description = "The stream's id"), crate::api::doc::OrgParam),
    responses((status = 200, description = "The stream's settings and health", body = StreamView), crate::api::doc::Errors)
)]
pub(super) async fn get_stream(
    State(st): State<AppState>,
    Reading { caller, org }: Reading,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    every_category(&caller)?;
    let s = own(&st, &org, id).await?;
    Ok(Json(setup::view(&st, &s).await?).into_response())
}

#[utoipa::path(
    patch, path = "/api/v1/streams/{id}", tag = "streams", request_body = StreamSpec,
    params(("id" = i64, Path, description = "The stream's id"), crate::api::doc::OrgParam),
    responses((status = 200, description = "Changed (the cursor stays; use replay to move it)", body = StreamView), crate::api::doc::Errors)
)]
pub(super) async fn change_stream(
    State(st): State<AppState>,
    Managed { caller, org }: Managed,
    Path(id): Path<i64>,
    JsonBody(spec): JsonBody<StreamSpec>,
) -> Result<Response, ApiError> {
    every_category(&caller)?;
    if spec.start.is_some() {
        return Err(ApiError::field("start", "a stream's position is moved with POST /api/v1/streams/{id}/replay"));
    }
    let mut s = own(&st, &org, id).await?;
    setup::apply(&st, &mut s, &spec).await?;
    st.store.change_stream(&s, None).await?;
    st.streams.changed();
    selfaudit::record(&st, caller.record("stream:update").resource("stream", s.id, &s.name).details(summary(&s))).await;
    Ok(Json(setup::view(&st, &s).await?).into_response())
}

/// Pause, resume (which also re-enables a disabled stream) or replay.
async fn control(
    st: &AppState,
    caller: &Caller,
    org: &str,
    id: i64,
    state: StreamState,
    replay: Option<u64>,
) -> Result<Stream, ApiError> {
    let mut s = own(st, org, id).await?;
    s.state = state;
    if state == StreamState::Active {
        s.failing_since = None;
        s.last_error = None;
        s.alerted = false;
    }
    let action = match (state, replay) {
        (_, Some(_)) => "stream:replay",
        (StreamState::Paused, _) => "stream:pause",
        _ => "stream:resume",
    };
    st.store.change_stream(&s, replay).await?;
    let details = json!({"from_cursor": s.cursor, "cursor": replay.unwrap_or(s.cursor)});
    if let Some(c) = replay {
        s.cursor = c;
    }
    st.streams.changed();
    selfaudit::record(st, caller.record(action).resource("stream", s.id, &s.name).details(details)).await;
    Ok(s)
}

#[utoipa::path(
    post, path = "/api/v1/streams/{id}/pause", tag = "streams",
    params(("id" = i64, Path, description = "The stream's id"), crate::api::doc::OrgParam),
    responses((status = 200, description = "Paused; it resumes where it stopped", body = StreamView), crate::api::doc::Errors)
)]
pub(super) async fn pause_stream(
    State(st): State<AppState>,
    Managed { caller, org }: Managed,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    every_category(&caller)?;
    let s = control(&st, &caller, &org, id, StreamState::Paused, None).await?;
    Ok(Json(setup::view(&st, &s).await?).into_response())
}

#[utoipa::path(
    post, path = "/api/v1/streams/{id}/resume", tag = "streams",
    params(("id" = i64, Path, description = "The stream's id"), crate::api::doc::OrgParam),
    responses((status = 200, description = "Active again (also a disabled stream), from where it stopped", body = StreamView), crate::api::doc::Errors)
)]
pub(super) async fn resume_stream(
    State(st): State<AppState>,
    Managed { caller, org }: Managed,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    every_category(&caller)?;
    let s = control(&st, &caller, &org, id, StreamState::Active, None).await?;
    Ok(Json(setup::view(&st, &s).await?).into_response())
}

#[utoipa::path(
    post, path = "/api/v1/streams/{id}/replay", tag = "streams", request_body = ReplayBody,
    params(("id" = i64, Path, description = "The stream's id"), crate::api::doc::OrgParam),
    responses((status = 200, description = "The stream sends again from there (archived periods included); a paused stream stays paused", body = StreamView), crate::api::doc::Errors)
)]
pub(super) async fn replay_stream(
    State(st): State<AppState>,
    Managed { caller, org }: Managed,
    Path(id): Path<i64>,
    JsonBody(b): JsonBody<ReplayBody>,
) -> Result<Response, ApiError> {
    every_category(&caller)?;
    let current = own(&st, &org, id).await?;
    let at = setup::position(&st, &org, &b.from, "from").await?;
    let s = control(&st, &caller, &org, id, current.state, Some(at)).await?;
    Ok(Json(setup::view(&st, &s).await?).into_response())
}

#[utoipa::path(
    delete, path = "/api/v1/streams/{id}", tag = "streams",
    params(("id" = i64, Path, description = "The stream's id"), crate::api::doc::OrgParam),
    responses((status = 204, description = "Deleted"), crate::api::doc::Errors)
)]
pub(super) async fn delete_stream(
    State(st): State<AppState>,
    Managed { caller, org }: Managed,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    every_category(&caller)?;
    let s = own(&st, &org, id).await?;
    st.store.delete_stream(&org, id).await?;
    st.streams.changed();
    selfaudit::record(&st, caller.record("stream:delete").resource("stream", s.id, &s.name).details(summary(&s))).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
