//! Background exports over HTTP (`/api/v1/exports`): started by a request, polled for
//! progress, and served only to whom may export every row they could hold. The jobs
//! themselves run in the work layer (`work/jobs.rs`).

use std::sync::Arc;

use axum::{
    body::Body,
    extract::{Path as UrlPath, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;
use trail_export::Format;
use utoipa::ToSchema;
use uuid::Uuid;

use super::export_request::request;
use super::extract::QueryPairs;
use crate::{
    auth::Caller,
    error::{ApiError, ErrorDetail},
    work::{
        export::{estimate, MAX_PDF_ROWS},
        jobs::{Job, JobState},
    },
    AppState,
};

/// Where a background export stands.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum JobStatus {
    Running,
    Done,
    Failed,
}

/// A background export as `GET /api/v1/exports/{id}` shows it (202 answers too).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct JobView {
    id: Uuid,
    /// csv, xlsx, json, jsonl, pdf or evidence.
    format: String,
    file_name: String,
    /// Rows the export was estimated to hold when it started.
    rows_total: u64,
    rows_done: u64,
    /// From 0 to 1.
    progress: f64,
    status_url: String,
    status: JobStatus,
    /// Rows written (once done).
    #[serde(skip_serializing_if = "Option::is_none")]
    rows: Option<u64>,
    /// The file's size (once done).
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    download_url: Option<String>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorDetail>,
}

/// A job as the API shows it.
pub(super) fn view(job: &Job) -> JobView {
    let done = job.done();
    let mut v = JobView {
        id: job.id,
        format: job.format.as_str().into(),
        file_name: job.file_name.clone(),
        rows_total: job.total,
        rows_done: done,
        progress: if job.total == 0 { 1.0 } else { (done as f64 / job.total as f64).min(1.0) },
        status_url: format!("/api/v1/exports/{}", job.id),
        status: JobStatus::Running,
        rows: None,
        bytes: None,
        download_url: None,
        error: None,
    };
    match job.state() {
        JobState::Running => {}
        JobState::Done { rows, bytes } => {
            v.status = JobStatus::Done;
            v.rows = Some(rows);
            v.bytes = Some(bytes);
            v.progress = 1.0;
            v.download_url = Some(format!("/api/v1/exports/{}/file", job.id));
        }
        JobState::Failed(e) => {
            v.status = JobStatus::Failed;
            v.error = Some(ApiError::from(&*e).parts().1);
        }
    }
    v
}

#[utoipa::path(
    post, path = "/api/v1/exports", tag = "exports",
    params(crate::api::doc::ExportParams, crate::api::doc::FilterParams),
    responses((status = 202, description = "Started", body = JobView), crate::api::doc::Errors)
)]
pub(super) async fn start_job(
    State(st): State<AppState>,
    caller: Caller,
    QueryPairs(q): QueryPairs,
) -> Result<Response, ApiError> {
    let download = q.iter().any(|(k, v)| k == "download" && v != "0" && v != "false");
    let req = request(&st, &caller, q, download)?;
    let n = estimate(&st, &req, (st.clock)()).await?;
    if req.format == Format::Pdf && n > MAX_PDF_ROWS {
        return Err(ApiError::field(
            "format",
            format!("a PDF report holds at most {MAX_PDF_ROWS} events and {n} match"),
        ));
    }
    let job = crate::work::jobs::start(&st, req, n).await?;
    Ok((StatusCode::ACCEPTED, Json(view(&job))).into_response())
}

/// A job whose every possible row the caller may export now (its organization, every
/// category it could hold), whoever started it; otherwise 404, so that a job id seen in
/// the log reveals nothing.
fn find_job(st: &AppState, caller: &Caller, id: &str) -> Result<Arc<Job>, ApiError> {
    let scope = caller.export_scope()?;
    let id = Uuid::parse_str(id).map_err(|_| ApiError::field("id", "must be an export job id"))?;
    let job = st.jobs.get(id);
    let org_ok = |j: &Job| scope.org.is_none() || (j.org.is_some() && j.org == scope.org);
    // Rights are those of now, also for the job's creator: one who lost a category
    // since no longer reads the file made with it.
    job.filter(|j| org_ok(j) && scope.categories.covers(&j.reach))
        .ok_or_else(|| ApiError::NotFound(format!("no export job {id}")))
}

#[utoipa::path(
    get, path = "/api/v1/exports/{id}", tag = "exports",
    params(("id" = String, Path, description = "The job's id")),
    responses((status = 200, description = "Where the job stands", body = JobView), crate::api::doc::Errors)
)]
pub(super) async fn job_status(
    State(st): State<AppState>,
    caller: Caller,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let job = find_job(&st, &caller, &id)?;
    Ok(Json(view(&job)).into_response())
}

#[utoipa::path(
    get, path = "/api/v1/exports/{id}/file", tag = "exports",
    params(("id" = String, Path, description = "The job's id")),
    responses((status = 200, description = "The finished file", body = crate::api::doc::File, content_type = "application/octet-stream"),
        (status = 409, description = "Not finished yet", body = crate::error::ErrorBody), crate::api::doc::Errors)
)]
pub(super) async fn job_file(
    State(st): State<AppState>,
    caller: Caller,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let job = find_job(&st, &caller, &id)?;
    if !matches!(job.state(), JobState::Done { .. }) {
        return Err(ApiError::Conflict("the export is not finished; poll its status".into()));
    }
    let file =
        tokio::fs::File::open(&job.path).await.map_err(|_| ApiError::NotFound("the export file is gone".into()))?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok((
        [
            (header::CONTENT_TYPE, job.format.content_type().to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename={}", job.file_name)),
        ],
        body,
    )
        .into_response())
}
