//! Background exports (`/api/v1/exports`): started by a request, written to a file,
//! polled for progress, and served only to whom may export every row they could hold.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use axum::{
    body::Body,
    extract::{Path as UrlPath, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;
use serde_json::json;
use trail_export::Format;
use trail_store::Categories;
use utoipa::ToSchema;
use uuid::Uuid;

use super::export_request::request;
use crate::{
    auth::Caller,
    error::{ApiError, ErrorDetail},
    work::export::{estimate, record_export, to_file, ExportRequest, MAX_PDF_ROWS},
    AppState,
};

/// A background export.
pub(crate) struct Job {
    id: Uuid,
    /// The organization its rows come from (`None`: every organization).
    org: Option<String>,
    /// Every category its rows could hold: another caller must be allowed to export
    /// all of them to fetch it.
    reach: Categories,
    format: Format,
    total: u64,
    done: Arc<AtomicU64>,
    state: Mutex<JobState>,
    path: PathBuf,
    file_name: String,
}

#[derive(Clone)]
enum JobState {
    Running,
    Done {
        rows: u64,
        bytes: u64,
    },
    /// The `error` object of the API's error bodies.
    Failed(ErrorDetail),
}

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

impl Job {
    pub(super) fn view(&self) -> JobView {
        let state = self
            .state
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|_| JobState::Failed(ErrorDetail::new("internal", "lock", None)));
        let done = self.done.load(Ordering::Relaxed);
        let mut v = JobView {
            id: self.id,
            format: self.format.as_str().into(),
            file_name: self.file_name.clone(),
            rows_total: self.total,
            rows_done: done,
            progress: if self.total == 0 { 1.0 } else { (done as f64 / self.total as f64).min(1.0) },
            status_url: format!("/api/v1/exports/{}", self.id),
            status: JobStatus::Running,
            rows: None,
            bytes: None,
            download_url: None,
            error: None,
        };
        match state {
            JobState::Running => {}
            JobState::Done { rows, bytes } => {
                v.status = JobStatus::Done;
                v.rows = Some(rows);
                v.bytes = Some(bytes);
                v.progress = 1.0;
                v.download_url = Some(format!("/api/v1/exports/{}/file", self.id));
            }
            JobState::Failed(e) => {
                v.status = JobStatus::Failed;
                v.error = Some(e);
            }
        }
        v
    }
}

#[derive(Default)]
pub(crate) struct Jobs {
    map: Mutex<HashMap<Uuid, Arc<Job>>>,
}

/// Starts a background export and returns it.
pub(super) async fn start(st: &AppState, req: ExportRequest, total: u64) -> Result<Arc<Job>, ApiError> {
    if req.format == Format::Xlsx && total > u64::from(trail_export::XLSX_MAX_ROWS) {
        return Err(ApiError::field(
            "format",
            format!(
                "a worksheet holds at most {} events and {total} match: export them as CSV or JSON Lines",
                trail_export::XLSX_MAX_ROWS
            ),
        ));
    }
    let now = (st.clock)();
    let id = Uuid::now_v7();
    let path = st.config.exports.dir.join("jobs").join(format!("{id}.{}", req.format.ext()));
    let reach = match req.filter.category.as_slice() {
        [] => req.scope.categories.clone(),
        named => {
            req.scope.categories.intersect(&Categories::Only(named.iter().map(|c| c.to_ascii_lowercase()).collect()))
        }
    };
    let job = Arc::new(Job {
        id,
        org: req.scope.org.clone(),
        reach,
        format: req.format,
        total,
        done: Arc::default(),
        state: Mutex::new(JobState::Running),
        path: path.clone(),
        file_name: req.format.file_name(now),
    });
    if let Ok(mut m) = st.jobs.map.lock() {
        m.insert(id, job.clone());
    }
    let (st2, job2) = (st.clone(), job.clone());
    tokio::spawn(async move {
        let tmp = st2.config.exports.tmp();
        let result = to_file(&st2.store, &req, &job2.path, &tmp, now, job2.done.clone()).await;
        let state = match result {
            Ok(rows) => {
                record_export(&st2, &req, rows, json!({"job": job2.id})).await;
                let bytes = std::fs::metadata(&job2.path).map(|m| m.len()).unwrap_or(0);
                JobState::Done { rows, bytes }
            }
            Err(e) => JobState::Failed(ApiError::from(e).parts().1),
        };
        if let Ok(mut s) = job2.state.lock() {
            *s = state;
        }
    });
    Ok(job)
}

#[utoipa::path(
    post, path = "/api/v1/exports", tag = "exports",
    params(crate::api::doc::ExportParams, crate::api::doc::FilterParams),
    responses((status = 202, description = "Started", body = JobView), crate::api::doc::Errors)
)]
pub(super) async fn start_job(
    State(st): State<AppState>,
    caller: Caller,
    q: super::params::Params,
) -> Result<Response, ApiError> {
    let download = q.0.iter().any(|(k, v)| k == "download" && v != "0" && v != "false");
    let req = request(&st, &caller, q.0, download)?;
    let n = estimate(&st, &req, (st.clock)()).await?;
    if req.format == Format::Pdf && n > MAX_PDF_ROWS {
        return Err(ApiError::field(
            "format",
            format!("a PDF report holds at most {MAX_PDF_ROWS} events and {n} match"),
        ));
    }
    let job = start(&st, req, n).await?;
    Ok((StatusCode::ACCEPTED, Json(job.view())).into_response())
}

/// A job whose every possible row the caller may export now (its organization, every
/// category it could hold), whoever started it; otherwise 404, so that a job id seen in
/// the log reveals nothing.
fn find_job(st: &AppState, caller: &Caller, id: &str) -> Result<Arc<Job>, ApiError> {
    let scope = caller.export_scope()?;
    let id = Uuid::parse_str(id).map_err(|_| ApiError::field("id", "must be an export job id"))?;
    let job = st.jobs.map.lock().ok().and_then(|m| m.get(&id).cloned());
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
    Ok(Json(find_job(&st, &caller, &id)?.view()).into_response())
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
    if !matches!(job.state.lock().map(|s| s.clone()), Ok(JobState::Done { .. })) {
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
