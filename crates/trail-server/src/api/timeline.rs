//! The timeline over HTTP: how many events match a filter, per hour or day of its
//! period and by result, for the page's total and histogram.

use axum::{
    extract::State,
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;
use trail_store::rollup::{Bucket, TIMELINE_BOUND};
use utoipa::ToSchema;

use super::events::list_params;
use super::extract::QueryPairs;
use crate::{auth::Caller, error::ApiError, AppState};

/// Matching events per bar of the period.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TimelineView {
    /// `hour` (periods up to two days) or `day`.
    #[schema(value_type = String, example = "hour")]
    bucket: Bucket,
    /// Matching events: exact when `exact`, otherwise more than this.
    total: u64,
    /// False when the filter needs the events themselves and more than `bound` match;
    /// the bars then count the newest `bound` matches.
    exact: bool,
    bound: u64,
    /// Every bar from the period's start to its end, oldest first (UTC).
    bars: Vec<BarView>,
}

/// One bar: matching events from `start` for an hour or a day, by result.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BarView {
    /// RFC 3339, UTC.
    start: String,
    total: u64,
    #[serde(rename = "DONE")]
    done: u64,
    #[serde(rename = "FAILED")]
    failed: u64,
    #[serde(rename = "PROCESSING")]
    processing: u64,
    #[serde(rename = "PENDING")]
    pending: u64,
}

#[utoipa::path(
    get, path = "/api/v1/timeline", tag = "events",
    params(crate::api::doc::FilterParams),
    responses((status = 200, description = "Matching events per hour or day of the filter's period, by result, and their total", body = TimelineView), crate::api::doc::Errors)
)]
pub(super) async fn timeline(
    State(st): State<AppState>,
    caller: Caller,
    QueryPairs(q): QueryPairs,
) -> Result<Response, ApiError> {
    let scope = caller.read_scope()?;
    let (mut filter, _) = list_params(&q)?;
    let now = (st.clock)();
    crate::work::retention::online_window(&st, &mut filter, now)?;
    let t = st.store.timeline(scope, filter, now).await?;
    let bars = t
        .bars
        .iter()
        .map(|b| {
            let [done, failed, processing, pending] = b.counts;
            BarView { start: b.start.to_rfc3339(), total: b.counts.iter().sum(), done, failed, processing, pending }
        })
        .collect();
    Ok(Json(TimelineView { bucket: t.bucket, total: t.total, exact: t.exact, bound: TIMELINE_BOUND, bars })
        .into_response())
}
