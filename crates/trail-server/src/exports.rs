//! Exports: `GET /api/v1/export` (CSV, JSON and JSON Lines streamed straight from the
//! store; XLSX and PDF made on the spot when small, as a background job when large;
//! evidence), background jobs (`/api/v1/exports`), and scheduled exports
//! (`/api/v1/schedules`) mailed over SMTP and/or written to a directory. Every export
//! records `audit:export` with its filter, format and row count.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use axum::{
    body::{Body, Bytes},
    extract::{Path as UrlPath, Query, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::{delete, get, post},
    Json, Router,
};
use chrono::{Datelike, Timelike};
use futures::StreamExt;
use serde_json::{json, Value};
use trail_core::{Event, Filter, Timestamp};
use trail_export::{CsvWriter, Format, JsonWriter, Meta, Preset, XlsxChunk, XlsxWriter};
use trail_store::{archive::Archive, Categories, DynStore, ListQuery, Schedule, Scope, StreamRx};
use uuid::Uuid;

use crate::{auth::Caller, error::ApiError, selfaudit, AppState};

/// Rows read from the store per chunk.
const CHUNK: usize = 1000;
/// The most rows a PDF report holds.
pub const MAX_PDF_ROWS: u64 = 50_000;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/export", get(export))
        .route("/api/v1/download", get(download))
        .route("/api/v1/exports", post(start_job))
        .route("/api/v1/exports/{id}", get(job_status))
        .route("/api/v1/exports/{id}/file", get(job_file))
        .route("/api/v1/schedules", get(list_schedules).post(create_schedule))
        .route("/api/v1/schedules/{id}", delete(delete_schedule))
        .route("/api/v1/schedules/{id}/run", post(run_schedule_now))
}

/// One export: what, of which events, for whom.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub format: Format,
    pub preset: Preset,
    pub scope: Scope,
    pub filter: Filter,
    /// The organization that records the `audit:export` event.
    pub audit_org: String,
    /// The actor of that event.
    pub actor: Value,
    /// Where the request came from, for that event (none for scheduled and CLI
    /// exports).
    pub ip: Option<std::net::IpAddr>,
    pub user_agent: Option<String>,
    /// For the report: who asked.
    pub generated_by: String,
    /// The evidence verifier key (evidence only).
    pub verifier_key: Option<String>,
    /// Read archived events too, merged in time order (downloads and evidence).
    pub archive: Option<Arc<Archive>>,
    /// A "Download log" of a period rather than an export of the online view.
    pub download: bool,
}

impl ExportRequest {
    fn meta(&self, now: Timestamp) -> Meta {
        let (from, to) = self.filter.time_range(now);
        let period = match (from, to) {
            (None, None) => "all time".to_string(),
            (f, t) => format!(
                "{} to {}",
                f.map_or("the beginning".into(), |t| t.to_rfc3339()),
                t.map_or("now".into(), |t| t.to_rfc3339())
            ),
        };
        Meta {
            org: self.scope.org.clone().unwrap_or_else(|| "all organizations".into()),
            filter: trail_core::query::render(&self.filter),
            period,
            generated_at: now,
            generated_by: self.generated_by.clone(),
        }
    }
}

/// Builds an export request from query parameters for `caller`. With `download`, a
/// "Download log": any period (no online window), archived and online events merged in
/// time order, as CSV (the default) or JSON Lines.
fn request(
    st: &AppState,
    caller: &Caller,
    pairs: Vec<(String, String)>,
    download: bool,
) -> Result<ExportRequest, ApiError> {
    let mut format = download.then_some(Format::Csv);
    let mut preset = Preset::Standard;
    let mut org = None;
    let mut rest = Vec::new();
    for (k, v) in pairs {
        match k.as_str() {
            "format" => {
                format = match Format::parse(&v) {
                    Some(f @ (Format::Csv | Format::Jsonl)) => Some(f),
                    _ if download => return Err(ApiError::field("format", "a download is csv or jsonl")),
                    Some(f) => Some(f),
                    None => {
                        return Err(ApiError::field("format", "must be one of csv, xlsx, json, jsonl, pdf, evidence"))
                    }
                }
            }
            "preset" => {
                preset = Preset::parse(&v).ok_or_else(|| ApiError::field("preset", "must be standard or compliance"))?
            }
            "org" => org = Some(v),
            "cursor" | "limit" | "download" => {}
            _ => rest.push((k, v)),
        }
    }
    let format =
        format.ok_or_else(|| ApiError::field("format", "is required: csv, xlsx, json, jsonl, pdf or evidence"))?;
    let mut filter = Filter::from_pairs(rest.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    if preset == Preset::Compliance && filter.category.is_empty() && filter.action.is_empty() {
        filter.category = Preset::COMPLIANCE_CATEGORIES.iter().map(|c| c.to_string()).collect();
    }
    let mut scope = caller.export_scope()?;
    if let Some(o) = org.as_deref() {
        scope.org = Some(caller.log_org(Some(o))?);
    }
    let verifier_key = match format {
        Format::Evidence => {
            let org =
                scope.org.clone().ok_or_else(|| ApiError::field("org", "evidence covers one organization: name it"))?;
            let log = st
                .config
                .log
                .as_ref()
                .ok_or_else(|| ApiError::Unavailable("checkpoints are not signed here".into()))?;
            Some(log.verifier_key(&org))
        }
        _ => None,
    };
    // Downloads and evidence reach archived periods; the rest only the online window.
    let reaches_archive = download || format == Format::Evidence;
    if !reaches_archive {
        crate::retention::online_window(st, &mut filter, (st.clock)())?;
    }
    let generated_by = caller.actor()["email"].as_str().or(caller.actor()["name"].as_str()).unwrap_or("").to_string();
    Ok(ExportRequest {
        format,
        preset,
        scope,
        filter,
        audit_org: caller.org.clone(),
        actor: caller.actor(),
        ip: caller.ip,
        user_agent: caller.user_agent.clone(),
        generated_by,
        archive: if reaches_archive { st.archive.clone() } else { None },
        verifier_key,
        download,
    })
}

/// The request's events, a chunk at a time: from the store, or (with an archive) from
/// the archive and the store merged in time order.
async fn open_rx(store: &DynStore, req: &ExportRequest, now: Timestamp) -> Result<StreamRx, ApiError> {
    let mut filter = req.filter.clone();
    if req.download {
        filter.sort = trail_core::Sort { field: trail_core::SortField::Timestamp, desc: false };
    }
    Ok(match &req.archive {
        Some(a) => trail_store::archive::merged(&**store, a.clone(), req.scope.clone(), filter, now, CHUNK).await?,
        None => {
            let query = ListQuery { scope: req.scope.clone(), filter, now, cursor: None, limit: CHUNK };
            store.stream(query, CHUNK).await?
        }
    })
}

/// Rows a request will give: the store's count plus, with an archive, the archived
/// events of the files its period touches (an upper bound, for progress).
async fn estimate(st: &AppState, req: &ExportRequest, now: Timestamp) -> Result<u64, ApiError> {
    let mut n = st.store.count(req.scope.clone(), req.filter.clone(), now).await?;
    if req.archive.is_some() {
        let (from, to) = req.filter.time_range(now);
        for f in st.store.archives(req.scope.org.as_deref()).await? {
            if f.overlaps(from, to) {
                n += f.count;
            }
        }
    }
    Ok(n)
}

/// `GET /api/v1/download`: streamed when small, a background job (202) when large.
async fn download(
    State(st): State<AppState>,
    caller: Caller,
    q: Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let req = request(&st, &caller, q.0, true)?;
    let now = (st.clock)();
    let n = estimate(&st, &req, now).await?;
    if n > st.config.exports.sync_rows {
        let job = start(&st, &caller, req, n).await?;
        return Ok((StatusCode::ACCEPTED, Json(job.json())).into_response());
    }
    Ok((attachment(req.format, now), stream_body(st, req, now).await?).into_response())
}

/// Records the export in the log.
pub(crate) async fn record_export(st: &AppState, req: &ExportRequest, rows: u64, extra: Value) {
    let mut details = json!({
        "format": req.format.as_str(),
        "filter": trail_core::query::render(&req.filter),
        "rows": rows,
        "org": req.scope.org.clone().unwrap_or_else(|| "*".into()),
    });
    if req.download {
        details["download"] = json!(true);
    }
    if let (Some(d), Some(x)) = (details.as_object_mut(), extra.as_object()) {
        d.extend(x.clone());
    }
    let r = selfaudit::Record {
        org: req.audit_org.clone(),
        action: "audit:export",
        ok: true,
        actor: req.actor.clone(),
        resource: None,
        details: Some(details),
        error: None,
        ip: req.ip,
        user_agent: req.user_agent.clone(),
    };
    selfaudit::record(st, r).await;
}

fn parse_leaf(leaf: &[u8]) -> Result<Event, ApiError> {
    Event::from_leaf(leaf).map_err(|e| ApiError::Internal(format!("stored event unreadable: {e}")))
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

/// Writes an export to `path`; returns the number of rows. `progress` counts rows as
/// they are written. Memory stays flat except for PDF (at most `MAX_PDF_ROWS` events).
pub async fn to_file(
    store: &DynStore,
    req: &ExportRequest,
    path: &Path,
    tmp: &Path,
    now: Timestamp,
    progress: Arc<AtomicU64>,
) -> Result<u64, ApiError> {
    for dir in path.parent().into_iter().chain([tmp]) {
        std::fs::create_dir_all(dir).map_err(internal)?;
    }
    if req.format == Format::Evidence {
        let vkey = req.verifier_key.clone().unwrap_or_default();
        let lines = crate::evidence::stream(
            store.clone(),
            req.archive.clone(),
            req.scope.clone(),
            req.filter.clone(),
            now,
            vkey,
        )
        .await?;
        let mut lines = std::pin::pin!(lines);
        let mut file = std::fs::File::create(path).map_err(internal)?;
        let mut rows = 0u64;
        while let Some(chunk) = lines.next().await {
            let chunk = chunk?;
            let n = chunk.iter().filter(|b| **b == b'\n').count() as u64;
            std::io::Write::write_all(&mut file, &chunk).map_err(internal)?;
            rows += n;
            progress.fetch_add(n, Ordering::Relaxed);
        }
        return Ok(rows.saturating_sub(1));
    }
    if req.format == Format::Pdf {
        let n = store.count(req.scope.clone(), req.filter.clone(), now).await?;
        if n > MAX_PDF_ROWS {
            return Err(ApiError::field(
                "format",
                format!("a PDF report holds at most {MAX_PDF_ROWS} events and {n} match: narrow the filter or use csv"),
            ));
        }
    }
    let mut rx = open_rx(store, req, now).await?;
    let (format, preset, meta) = (req.format, req.preset, req.meta(now));
    let (path, tmp) = (path.to_path_buf(), tmp.to_path_buf());
    tokio::task::spawn_blocking(move || -> Result<u64, ApiError> {
        use std::io::Write;
        let file = std::fs::File::create(&path).map_err(internal)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let mut rows = 0u64;
        match format {
            Format::Csv => {
                let mut w = CsvWriter::new(out).map_err(internal)?;
                while let Some(chunk) = rx.blocking_recv() {
                    let chunk = chunk?;
                    w.leaves(&chunk).map_err(internal)?;
                    rows += chunk.len() as u64;
                    progress.store(rows, Ordering::Relaxed);
                }
                w.finish().map_err(internal)?.flush().map_err(internal)?;
            }
            Format::Json | Format::Jsonl => {
                let mut w = JsonWriter::new(format == Format::Jsonl);
                let mut buf = Vec::with_capacity(1 << 20);
                w.start(&mut buf);
                while let Some(chunk) = rx.blocking_recv() {
                    for leaf in chunk? {
                        w.leaf(&mut buf, &leaf);
                        rows += 1;
                    }
                    out.write_all(&buf).map_err(internal)?;
                    buf.clear();
                    progress.store(rows, Ordering::Relaxed);
                }
                w.end(&mut buf);
                out.write_all(&buf).map_err(internal)?;
                out.flush().map_err(internal)?;
            }
            Format::Xlsx => {
                drop(out);
                let mut w = XlsxWriter::new(&tmp).map_err(internal)?;
                // The next chunk is decoded on a thread of its own while this one writes
                // the sheet. If the sheet fails, the channel closes and the decoder stops.
                let (decoded_tx, decoded_rx) = std::sync::mpsc::sync_channel(2);
                std::thread::scope(|s| -> Result<(), ApiError> {
                    s.spawn(move || {
                        while let Some(chunk) = rx.blocking_recv() {
                            let decoded = match chunk {
                                Ok(c) => XlsxChunk::decode(&c).map_err(internal),
                                Err(e) => Err(ApiError::from(e)),
                            };
                            let failed = decoded.is_err();
                            if decoded_tx.send(decoded).is_err() || failed {
                                break;
                            }
                        }
                    });
                    for chunk in decoded_rx {
                        let chunk = chunk?;
                        w.chunk(&chunk).map_err(|e| match e {
                            e @ trail_export::ExportError::TooManyRows(_) => ApiError::field("format", e.to_string()),
                            e => internal(e),
                        })?;
                        rows += chunk.len() as u64;
                        progress.store(rows, Ordering::Relaxed);
                    }
                    Ok(())
                })?;
                w.finish(&meta, &path).map_err(internal)?;
            }
            Format::Pdf => {
                let mut events = Vec::new();
                while let Some(chunk) = rx.blocking_recv() {
                    for leaf in chunk? {
                        events.push(parse_leaf(&leaf)?);
                    }
                    progress.store(events.len() as u64, Ordering::Relaxed);
                }
                rows = events.len() as u64;
                let bytes = trail_export::pdf(&events, &meta, preset).map_err(internal)?;
                out.write_all(&bytes).map_err(internal)?;
                out.flush().map_err(internal)?;
            }
            Format::Evidence => unreachable!("handled above"),
        }
        Ok(rows)
    })
    .await
    .map_err(internal)?
}

fn attachment(format: Format, now: Timestamp) -> [(header::HeaderName, String); 2] {
    [
        (header::CONTENT_TYPE, format.content_type().to_string()),
        (header::CONTENT_DISPOSITION, format!("attachment; filename={}", format.file_name(now))),
    ]
}

/// Rows beyond which XLSX is made by a background job rather than in the request.
fn sync_limit(st: &AppState, format: Format) -> u64 {
    match format {
        Format::Pdf => st.config.exports.sync_rows.min(10_000),
        _ => st.config.exports.sync_rows,
    }
}

async fn export(
    State(st): State<AppState>,
    caller: Caller,
    q: Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let req = request(&st, &caller, q.0, false)?;
    let now = (st.clock)();
    match req.format {
        Format::Csv | Format::Json | Format::Jsonl => {
            Ok((attachment(req.format, now), stream_body(st, req, now).await?).into_response())
        }
        Format::Evidence => {
            let vkey = req.verifier_key.clone().unwrap_or_default();
            let lines = crate::evidence::stream(
                st.store.clone(),
                req.archive.clone(),
                req.scope.clone(),
                req.filter.clone(),
                now,
                vkey,
            )
            .await?;
            let counted =
                count_then_record(st.clone(), req.clone(), lines.map(|r| r.map_err(std::io::Error::other)), true);
            Ok((attachment(req.format, now), Body::from_stream(counted)).into_response())
        }
        Format::Xlsx | Format::Pdf => {
            let n = st.store.count(req.scope.clone(), req.filter.clone(), now).await?;
            if n > sync_limit(&st, req.format) {
                let job = start(&st, &caller, req, n).await?;
                return Ok((StatusCode::ACCEPTED, Json(job.json())).into_response());
            }
            let dir = st.config.exports.tmp();
            let path = dir.join(format!("{}.{}", Uuid::now_v7(), req.format.ext()));
            let rows = to_file(&st.store, &req, &path, &dir, now, Arc::default()).await;
            let bytes = rows.as_ref().ok().map(|_| std::fs::read(&path));
            let _ = std::fs::remove_file(&path);
            let rows = rows?;
            let bytes = bytes.unwrap_or_else(|| Ok(Vec::new())).map_err(internal)?;
            record_export(&st, &req, rows, json!({})).await;
            Ok((attachment(req.format, now), bytes).into_response())
        }
    }
}

/// Passes a byte stream through, counting lines, and records the export at its end.
fn count_then_record(
    st: AppState,
    req: ExportRequest,
    inner: impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    evidence: bool,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let lines = Arc::new(AtomicU64::new(0));
    let seen = lines.clone();
    let counted = inner.map(move |r| {
        if let Ok(b) = &r {
            seen.fetch_add(b.iter().filter(|c| **c == b'\n').count() as u64, Ordering::Relaxed);
        }
        r
    });
    let tail = futures::stream::once(async move {
        let n = lines.load(Ordering::Relaxed);
        let rows = if evidence { n.saturating_sub(1) } else { n };
        record_export(&st, &req, rows, json!({})).await;
        Ok::<Bytes, std::io::Error>(Bytes::new())
    });
    counted.chain(tail)
}

/// CSV, JSON or JSON Lines straight from the store, a chunk at a time.
async fn stream_body(st: AppState, req: ExportRequest, now: Timestamp) -> Result<Body, ApiError> {
    let rx = open_rx(&st.store, &req, now).await?;
    let format = req.format;
    let rows = Arc::new(AtomicU64::new(0));
    let counter = rows.clone();
    let chunks = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    let body: futures::stream::BoxStream<'static, std::io::Result<Bytes>> = if format == Format::Csv {
        // Building CSV rows costs more than reading them: up to four chunks are built
        // at once on blocking threads (in order), so the read and the builds share the
        // cores.
        let header = CsvWriter::new(Vec::new()).and_then(|w| w.finish()).map(Bytes::from).map_err(io_error);
        let rows = chunks
            .map(move |c| {
                let counter = counter.clone();
                async move {
                    let chunk = c.map_err(io_error)?;
                    counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    let built = tokio::task::spawn_blocking(move || {
                        trail_export::csv_leaf_rows(&chunk, Vec::with_capacity(1 << 18))
                    });
                    built.await.map_err(io_error)?.map(Bytes::from).map_err(io_error)
                }
            })
            .buffered(4);
        futures::stream::once(async move { header }).chain(rows).boxed()
    } else {
        let mut json = JsonWriter::new(format == Format::Jsonl);
        let mut start = Vec::new();
        json.start(&mut start);
        let rows = chunks.map(move |c| {
            let chunk = c.map_err(io_error)?;
            counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            let mut out = Vec::with_capacity(chunk.iter().map(|l| l.len() + 2).sum());
            for leaf in &chunk {
                json.leaf(&mut out, leaf);
            }
            Ok(Bytes::from(out))
        });
        let end = futures::stream::once(async move {
            let mut out = Vec::new();
            JsonWriter::new(format == Format::Jsonl).end(&mut out);
            Ok(Bytes::from(out))
        });
        futures::stream::once(async move { Ok(Bytes::from(start)) }).chain(rows).chain(end).boxed()
    };
    let tail = futures::stream::once(async move {
        record_export(&st, &req, rows.load(Ordering::Relaxed), json!({})).await;
        Ok::<Bytes, std::io::Error>(Bytes::new())
    });
    Ok(Body::from_stream(body.chain(tail)))
}

fn io_error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// A background export.
pub(crate) struct Job {
    id: Uuid,
    /// Who started it (the actor id): the creator may always fetch it.
    creator: String,
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
    Done { rows: u64, bytes: u64 },
    Failed(String),
}

impl Job {
    fn json(&self) -> Value {
        let state = self.state.lock().map(|s| s.clone()).unwrap_or(JobState::Failed("lock".into()));
        let done = self.done.load(Ordering::Relaxed);
        let mut v = json!({
            "id": self.id, "format": self.format.as_str(), "file_name": self.file_name,
            "rows_total": self.total, "rows_done": done,
            "progress": if self.total == 0 { 1.0 } else { (done as f64 / self.total as f64).min(1.0) },
            "status_url": format!("/api/v1/exports/{}", self.id),
        });
        match state {
            JobState::Running => v["status"] = json!("running"),
            JobState::Done { rows, bytes } => {
                v["status"] = json!("done");
                v["rows"] = json!(rows);
                v["bytes"] = json!(bytes);
                v["progress"] = json!(1.0);
                v["download_url"] = json!(format!("/api/v1/exports/{}/file", self.id));
            }
            JobState::Failed(e) => {
                v["status"] = json!("failed");
                v["error"] = json!(e);
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
async fn start(st: &AppState, caller: &Caller, req: ExportRequest, total: u64) -> Result<Arc<Job>, ApiError> {
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
        creator: actor_id(caller),
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
            Err(e) => JobState::Failed(format!("{e:?}")),
        };
        if let Ok(mut s) = job2.state.lock() {
            *s = state;
        }
    });
    Ok(job)
}

async fn start_job(
    State(st): State<AppState>,
    caller: Caller,
    q: Query<Vec<(String, String)>>,
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
    let job = start(&st, &caller, req, n).await?;
    Ok((StatusCode::ACCEPTED, Json(job.json())).into_response())
}

fn actor_id(caller: &Caller) -> String {
    caller.actor()["id"].as_str().unwrap_or_default().to_string()
}

/// A job the caller started, or one whose every possible row the caller may export
/// (its organization, every category it could hold); otherwise 404, so that a job id
/// seen in the log reveals nothing.
fn find_job(st: &AppState, caller: &Caller, id: &str) -> Result<Arc<Job>, ApiError> {
    let scope = caller.export_scope()?;
    let id = Uuid::parse_str(id).map_err(|_| ApiError::field("id", "must be an export job id"))?;
    let job = st.jobs.map.lock().ok().and_then(|m| m.get(&id).cloned());
    let org_ok = |j: &Job| scope.org.is_none() || (j.org.is_some() && j.org == scope.org);
    job.filter(|j| j.creator == actor_id(caller) || (org_ok(j) && scope.categories.covers(&j.reach)))
        .ok_or_else(|| ApiError::NotFound(format!("no export job {id}")))
}

async fn job_status(
    State(st): State<AppState>,
    caller: Caller,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    Ok(Json(find_job(&st, &caller, &id)?.json()).into_response())
}

async fn job_file(
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

fn schedule_json(s: &Schedule) -> Value {
    json!({
        "id": s.id, "org": s.org, "name": s.name,
        "cadence": if s.weekday.is_some() { "weekly" } else { "daily" },
        "weekday": s.weekday.map(|d| WEEKDAYS[d as usize]),
        "at": format!("{:02}:{:02}", s.at_minute / 60, s.at_minute % 60),
        "query": s.query, "format": s.format, "recipients": s.recipients, "directory": s.directory,
        "created_by": s.created_by,
        "next_run": Timestamp(s.next_run).to_rfc3339(),
        "last_run": s.last_run.map(|t| Timestamp(t).to_rfc3339()),
    })
}

const WEEKDAYS: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

/// The first run time strictly after `now` (µs).
pub fn next_run(weekday: Option<u8>, at_minute: u16, now: Timestamp) -> i64 {
    let dt = now.to_datetime();
    let midnight = dt.date_naive().and_hms_opt(0, 0, 0).map(|d| d.and_utc()).unwrap_or(dt);
    for day in 0..=8 {
        let t = midnight + chrono::Duration::days(day) + chrono::Duration::minutes(i64::from(at_minute));
        let weekday_ok = weekday.is_none_or(|w| t.weekday().num_days_from_monday() == u32::from(w));
        if t > dt && weekday_ok {
            return t.timestamp_micros();
        }
    }
    (dt + chrono::Duration::days(1)).timestamp_micros()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleBody {
    name: String,
    cadence: String,
    weekday: Option<String>,
    at: String,
    #[serde(default)]
    query: String,
    format: String,
    #[serde(default)]
    recipients: Vec<String>,
    directory: Option<String>,
    org: Option<String>,
}

async fn create_schedule(State(st): State<AppState>, caller: Caller, bytes: Bytes) -> Result<Response, ApiError> {
    let b: ScheduleBody = crate::people::body(&bytes)?;
    let org = caller.managed_org(b.org.as_deref())?;
    caller.export_scope()?;
    if b.name.trim().is_empty() || b.name.len() > 200 {
        return Err(ApiError::field("name", "must be 1 to 200 characters"));
    }
    let weekday = match (b.cadence.as_str(), b.weekday.as_deref()) {
        ("daily", None) => None,
        ("daily", Some(_)) => return Err(ApiError::field("weekday", "only weekly schedules have a weekday")),
        ("weekly", Some(d)) => Some(
            WEEKDAYS
                .iter()
                .position(|w| *w == d.to_ascii_lowercase())
                .ok_or_else(|| ApiError::field("weekday", "must be monday … sunday"))? as u8,
        ),
        ("weekly", None) => return Err(ApiError::field("weekday", "a weekly schedule needs a weekday")),
        _ => return Err(ApiError::field("cadence", "must be daily or weekly")),
    };
    let at_minute = chrono::NaiveTime::parse_from_str(&b.at, "%H:%M")
        .map(|t| (t.hour() * 60 + t.minute()) as u16)
        .map_err(|_| ApiError::field("at", "must be a UTC time HH:MM"))?;
    trail_core::query::parse(&b.query).map_err(|e| ApiError::field("query", e.message))?;
    let format = Format::parse(&b.format)
        .filter(|f| *f != Format::Evidence)
        .ok_or_else(|| ApiError::field("format", "must be csv, xlsx, json, jsonl or pdf"))?;
    for r in &b.recipients {
        r.parse::<lettre::message::Mailbox>()
            .map_err(|_| ApiError::field("recipients", format!("'{r}' is not an email address")))?;
    }
    if let Some(d) = &b.directory {
        let ok = !d.is_empty() && d.len() <= 64 && d.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err(ApiError::field(
                "directory",
                "must be a plain name (letters, digits, '-', '_') under the export directory",
            ));
        }
    }
    if b.recipients.is_empty() && b.directory.is_none() {
        return Err(ApiError::field("recipients", "give recipients, a directory, or both"));
    }
    let who = caller.actor()["email"].as_str().or(caller.actor()["name"].as_str()).unwrap_or("").to_string();
    let s = Schedule {
        id: 0,
        org,
        name: b.name.trim().into(),
        weekday,
        at_minute,
        query: b.query,
        format: format.as_str().into(),
        recipients: b.recipients,
        directory: b.directory,
        created_by: who,
        next_run: next_run(weekday, at_minute, (st.clock)()),
        last_run: None,
    };
    let s = st.store.create_schedule(s).await?;
    selfaudit::record(
        &st,
        selfaudit::Record::by(&caller, "schedule:create")
            .resource("schedule", s.id, &s.name)
            .details(schedule_json(&s)),
    )
    .await;
    Ok((StatusCode::CREATED, Json(schedule_json(&s))).into_response())
}

async fn list_schedules(
    State(st): State<AppState>,
    caller: Caller,
    q: Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let named = q.0.iter().find(|(k, _)| k == "org").map(|(_, v)| v.as_str());
    let org = match named {
        None if caller.perms.platform => None,
        n => Some(caller.managed_org(n)?),
    };
    caller.managed_org(None)?;
    let list = st.store.schedules(org.as_deref()).await?;
    Ok(Json(json!({"schedules": list.iter().map(schedule_json).collect::<Vec<_>>()})).into_response())
}

fn managed_schedule_org(caller: &Caller) -> Result<Option<String>, ApiError> {
    caller.managed_org(None)?;
    Ok(if caller.perms.platform { None } else { Some(caller.org.clone()) })
}

async fn delete_schedule(
    State(st): State<AppState>,
    caller: Caller,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let org = managed_schedule_org(&caller)?;
    let id: i64 = id.parse().map_err(|_| ApiError::field("id", "must be a schedule id"))?;
    if !st.store.delete_schedule(org.as_deref(), id).await? {
        return Err(ApiError::NotFound(format!("no schedule {id}")));
    }
    selfaudit::record(&st, selfaudit::Record::by(&caller, "schedule:delete").resource("schedule", id, "")).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn run_schedule_now(
    State(st): State<AppState>,
    caller: Caller,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let org = managed_schedule_org(&caller)?;
    let id: i64 = id.parse().map_err(|_| ApiError::field("id", "must be a schedule id"))?;
    let s = st.store.schedules(org.as_deref()).await?.into_iter().find(|s| s.id == id);
    let s = s.ok_or_else(|| ApiError::NotFound(format!("no schedule {id}")))?;
    let out = run_schedule(&st, &s, (st.clock)()).await?;
    Ok(Json(out).into_response())
}

/// Runs one scheduled export now: writes the file, mails it, records it, and sets the
/// next run.
pub(crate) async fn run_schedule(st: &AppState, s: &Schedule, now: Timestamp) -> Result<Value, ApiError> {
    let mut filter = trail_core::query::parse(&s.query)?;
    let (from, to) = filter.time_range(now);
    if from.is_none() && to.is_none() {
        // Without a period of its own, each run covers the day (or week) before it.
        let span = if s.weekday.is_some() { 7 } else { 1 };
        filter.from = Some(Timestamp(now.0 - span * 86_400_000_000));
        filter.to = Some(now);
    }
    let format = Format::parse(&s.format).unwrap_or(Format::Csv);
    let req = ExportRequest {
        format,
        preset: Preset::Standard,
        scope: Scope::org(s.org.clone()),
        filter,
        audit_org: s.org.clone(),
        actor: json!({"id": format!("schedule-{}", s.id), "name": format!("scheduled export '{}'", s.name), "type": "system"}),
        ip: None,
        user_agent: None,
        generated_by: format!("scheduled export '{}' (made by {})", s.name, s.created_by),
        verifier_key: None,
        archive: None,
        download: false,
    };
    let folder = s.directory.clone().unwrap_or_else(|| format!("schedule-{}", s.id));
    let path = st.config.exports.dir.join(&s.org).join(folder).join(format.file_name(now));
    let tmp = st.config.exports.tmp();
    let rows = to_file(&st.store, &req, &path, &tmp, now, Arc::default()).await?;
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let mut emailed = 0usize;
    let mut mail_error = None;
    if !s.recipients.is_empty() {
        match mail(st, s, &req, &path, rows, size, now).await {
            Ok(n) => emailed = n,
            Err(e) => {
                tracing::warn!(schedule = s.id, error = %e, "scheduled export not mailed");
                mail_error = Some(e);
            }
        }
    }
    let mut extra = json!({"schedule": s.name, "recipients": s.recipients, "emailed": emailed});
    if let Some(e) = &mail_error {
        extra["mail_error"] = json!(e);
    }
    if s.directory.is_some() {
        extra["file"] = json!(path.display().to_string());
    }
    record_export(st, &req, rows, extra).await;
    st.store.schedule_ran(s.id, now.0, next_run(s.weekday, s.at_minute, now)).await?;
    Ok(json!({"rows": rows, "bytes": size, "emailed": emailed, "mail_error": mail_error,
              "file": s.directory.as_ref().map(|_| path.display().to_string())}))
}

/// Mails the file (attached, or as a note to download it when larger than the limit).
async fn mail(
    st: &AppState,
    s: &Schedule,
    req: &ExportRequest,
    path: &Path,
    rows: u64,
    size: u64,
    now: Timestamp,
) -> Result<usize, String> {
    use lettre::{
        message::{header::ContentType, Attachment, Mailbox, MultiPart, SinglePart},
        transport::smtp::authentication::Credentials,
        Message, SmtpTransport, Transport,
    };
    let smtp = st.config.exports.smtp.clone().ok_or("no SMTP server is configured ([exports.smtp])")?;
    let from: Mailbox = smtp.from.parse().map_err(|e| format!("smtp from: {e}"))?;
    let file_name = req.format.file_name(now);
    let meta = req.meta(now);
    let mut text = format!(
        "Trail scheduled export \"{}\" of organization {}.\n\nFilter: {}\nPeriod: {}\nEvents: {rows}\nGenerated at: {}\n",
        s.name,
        s.org,
        if meta.filter.is_empty() { "(none)" } else { &meta.filter },
        meta.period,
        now.to_rfc3339()
    );
    let attach = size <= st.config.exports.attach_limit;
    if !attach {
        text.push_str(&format!(
            "\nThe file ({size} bytes) is larger than the mail attachment limit. It is kept on the Trail server as {}.\n",
            path.display()
        ));
    }
    let bytes = if attach { Some(std::fs::read(path).map_err(|e| e.to_string())?) } else { None };
    let mut sent = 0;
    let subject = format!("Trail audit log export: {} ({})", s.name, now.to_datetime().format("%Y-%m-%d"));
    let mut messages = Vec::new();
    for r in &s.recipients {
        let to: Mailbox = r.parse().map_err(|e| format!("recipient {r}: {e}"))?;
        let builder = Message::builder().from(from.clone()).to(to).subject(subject.clone());
        let msg = match &bytes {
            Some(b) => {
                let ct = ContentType::parse(req.format.content_type()).map_err(|e| e.to_string())?;
                builder.multipart(
                    MultiPart::mixed()
                        .singlepart(SinglePart::plain(text.clone()))
                        .singlepart(Attachment::new(file_name.clone()).body(b.clone(), ct)),
                )
            }
            None => builder.body(text.clone()),
        }
        .map_err(|e| e.to_string())?;
        messages.push(msg);
    }
    let result = tokio::task::spawn_blocking(move || {
        let mut t = SmtpTransport::builder_dangerous(&smtp.host).port(smtp.port).timeout(Some(Duration::from_secs(30)));
        if let (Some(u), Some(p)) = (smtp.username.clone(), smtp.password.clone()) {
            t = t.credentials(Credentials::new(u, p));
        }
        let t = t.build();
        for m in &messages {
            t.send(m).map_err(|e| e.to_string())?;
            sent += 1;
        }
        Ok::<usize, String>(sent)
    })
    .await
    .map_err(|e| e.to_string())?;
    result
}

/// Runs due scheduled exports every `every` until the process ends.
pub fn spawn_scheduler(st: AppState, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let now = (st.clock)();
            let due = match st.store.schedules(None).await {
                Ok(list) => list.into_iter().filter(|s| s.next_run <= now.0).collect::<Vec<_>>(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read schedules");
                    continue;
                }
            };
            for s in due {
                if let Err(e) = run_schedule(&st, &s, now).await {
                    tracing::warn!(schedule = s.id, error = ?e, "scheduled export failed");
                    let _ = st.store.schedule_ran(s.id, now.0, next_run(s.weekday, s.at_minute, now)).await;
                }
            }
        }
    })
}
