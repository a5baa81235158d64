//! Exports: `GET /api/v1/export` (CSV, JSON and JSON Lines streamed straight from the
//! store; XLSX and PDF made on the spot when small, as a background job when large;
//! evidence), background jobs (`/api/v1/exports`), and scheduled exports
//! (`/api/v1/schedules`) mailed over SMTP and/or written to a directory. Every export
//! records `audit:export` with its filter, format and row count.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use axum::{
    body::{Body, Bytes},
    extract::State,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use futures::StreamExt;
use serde_json::json;
use trail_core::Timestamp;
use trail_export::{CsvWriter, Format, JsonWriter};
use uuid::Uuid;

use super::extract::QueryPairs;
use super::{export_request::request, jobs::view};
use crate::work::jobs::start;
use crate::{
    auth::Caller,
    error::ApiError,
    work::export::{estimate, internal, open_rx, record_export, to_file, ExportRequest},
    AppState,
};

/// `GET /api/v1/download`: streamed when small, a background job (202) when large.
#[utoipa::path(
    get, path = "/api/v1/download", tag = "exports",
    params(crate::api::doc::ExportParams, crate::api::doc::FilterParams),
    responses((status = 200, description = "Any period, archived and online events merged in time order", content((crate::api::doc::File = "text/csv"), (crate::api::doc::File = "application/x-ndjson"))),
        (status = 202, description = "Large: a background job", body = crate::api::jobs::JobView), crate::api::doc::Errors)
)]
pub(super) async fn download(
    State(st): State<AppState>,
    caller: Caller,
    QueryPairs(q): QueryPairs,
) -> Result<Response, ApiError> {
    let req = request(&st, &caller, q, true)?;
    let now = (st.clock)();
    let n = estimate(&st, &req, now).await?;
    if n > st.config.exports.sync_rows {
        let job = start(&st, req, n).await?;
        return Ok((StatusCode::ACCEPTED, Json(view(&job))).into_response());
    }
    Ok((attachment(req.format, now), stream_body(st, req, now).await?).into_response())
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

#[utoipa::path(
    get, path = "/api/v1/export", tag = "exports",
    params(crate::api::doc::ExportParams, crate::api::doc::FilterParams),
    responses((status = 200, description = "The file, streamed", content(
            (crate::api::doc::File = "text/csv"),
            (crate::api::doc::File = "application/json"),
            (crate::api::doc::File = "application/x-ndjson"),
            (crate::api::doc::File = "application/pdf"),
            (crate::api::doc::File = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        )),
        (status = 202, description = "Too large to make in the request: a background job", body = crate::api::jobs::JobView), crate::api::doc::Errors)
)]
pub(super) async fn export(
    State(st): State<AppState>,
    caller: Caller,
    QueryPairs(q): QueryPairs,
) -> Result<Response, ApiError> {
    let req = request(&st, &caller, q, false)?;
    let now = (st.clock)();
    match req.format {
        Format::Csv | Format::Json | Format::Jsonl => {
            Ok((attachment(req.format, now), stream_body(st, req, now).await?).into_response())
        }
        Format::Evidence => {
            let vkey = req.verifier_key.clone().unwrap_or_default();
            let lines = crate::work::evidence::stream(
                st.store.clone(),
                req.archive.clone(),
                req.witness_policy.clone(),
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
                let job = start(&st, req, n).await?;
                return Ok((StatusCode::ACCEPTED, Json(view(&job))).into_response());
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
