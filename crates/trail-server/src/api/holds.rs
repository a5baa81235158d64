//! Legal holds (`/api/v1/holds`): an organization administrator (or a platform
//! administrator, for any organization) places a hold on the organization or on a
//! query, with a reason, and releases it with one; both are recorded.

use axum::{
    extract::{Path as UrlPath, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde::{Deserialize, Serialize};
use trail_store::holds::LegalHold;
use utoipa::ToSchema;

use super::extract::{JsonBody, Managed};
use crate::{auth::Caller, error::ApiError, AppState};

/// A legal hold.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HoldView {
    id: i64,
    org: String,
    /// The events held, in the query language; absent: every event of the organization.
    query: Option<String>,
    reason: String,
    placed_by: String,
    #[schema(format = DateTime)]
    placed_at: String,
    /// Whether it still holds.
    active: bool,
    released_by: Option<String>,
    #[schema(format = DateTime)]
    released_at: Option<String>,
    release_reason: Option<String>,
}

impl From<LegalHold> for HoldView {
    fn from(h: LegalHold) -> HoldView {
        HoldView {
            active: h.active(),
            id: h.id,
            org: h.org,
            query: h.query,
            reason: h.reason,
            placed_by: h.placed_by,
            placed_at: h.placed_at.to_rfc3339(),
            released_by: h.released_by,
            released_at: h.released_at.map(|t| t.to_rfc3339()),
            release_reason: h.release_reason,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HoldList {
    holds: Vec<HoldView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HoldBody {
    /// The organization (platform administrators; default: the caller's).
    org: Option<String>,
    /// The events held, in the query language (e.g. `actor:ann@acme.com`); absent: every
    /// event of the organization.
    query: Option<String>,
    /// Why (kept, and recorded with the hold).
    reason: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReleaseBody {
    org: Option<String>,
    reason: String,
}

fn who(caller: &Caller) -> String {
    let a = caller.actor();
    a["email"].as_str().or(a["name"].as_str()).unwrap_or("").to_string()
}

#[utoipa::path(
    get, path = "/api/v1/holds", tag = "holds",
    params(crate::api::doc::OrgParam),
    responses((status = 200, description = "The organization's legal holds, active and released, newest first", body = HoldList), crate::api::doc::Errors)
)]
pub(super) async fn list_holds(State(st): State<AppState>, m: Managed) -> Result<Response, ApiError> {
    let holds = st.store.holds(Some(&m.org)).await?;
    Ok(Json(HoldList { holds: holds.into_iter().map(HoldView::from).collect() }).into_response())
}

#[utoipa::path(
    post, path = "/api/v1/holds", tag = "holds",
    request_body = HoldBody,
    responses((status = 201, description = "Placed (recorded as hold:place)", body = HoldView), crate::api::doc::Errors)
)]
pub(super) async fn place_hold(
    State(st): State<AppState>,
    caller: Caller,
    JsonBody(b): JsonBody<HoldBody>,
) -> Result<Response, ApiError> {
    let org = caller.managed_org(b.org.as_deref())?;
    let record = caller.record("hold:place");
    let hold = crate::work::holds::place(&st, &org, b.query.as_deref(), &b.reason, &who(&caller), record).await?;
    Ok((StatusCode::CREATED, Json(HoldView::from(hold))).into_response())
}

#[utoipa::path(
    post, path = "/api/v1/holds/{id}/release", tag = "holds",
    params(("id" = i64, Path, description = "The hold")),
    request_body = ReleaseBody,
    responses((status = 200, description = "Released (recorded as hold:release)", body = HoldView), crate::api::doc::Errors)
)]
pub(super) async fn release_hold(
    State(st): State<AppState>,
    caller: Caller,
    UrlPath(id): UrlPath<i64>,
    JsonBody(b): JsonBody<ReleaseBody>,
) -> Result<Response, ApiError> {
    let org = caller.managed_org(b.org.as_deref())?;
    let record = caller.record("hold:release");
    let hold = crate::work::holds::release(&st, &org, id, &b.reason, &who(&caller), record).await?;
    Ok(Json(HoldView::from(hold)).into_response())
}
