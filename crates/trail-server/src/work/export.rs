//! The export pipeline: an `ExportRequest` (what, of which events, for whom), the
//! events it reads (from the store, or merged with the archive), writing it to a file
//! (background jobs, scheduled exports, XLSX and PDF made in a request, the command
//! line), and recording `audit:export`. A full disk and any other failed write are
//! told apart (`WorkError::StorageFull`, `WriteFailed`); a failed export leaves no file.

use std::{
    path::Path,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use futures::StreamExt;
use trail_core::{Event, Timestamp};
use trail_export::{CsvWriter, ExportError, Format, JsonWriter, Meta, Preset, XlsxChunk, XlsxWriter};
use trail_store::{DynStore, StreamRx};

use serde_json::{json, Value};
use trail_core::Filter;
use trail_store::{archive::Archive, ListQuery, Scope};

use super::{selfaudit, Services, WorkError};

pub(crate) fn parse_leaf(leaf: &[u8]) -> Result<Event, WorkError> {
    Event::from_leaf(leaf).map_err(|e| WorkError::Internal(format!("stored event unreadable: {e}")))
}

pub(crate) fn internal(e: impl std::fmt::Display) -> WorkError {
    WorkError::Internal(e.to_string())
}

/// A failed write: 507 when the disk is full, 503 otherwise.
pub(crate) fn io(e: std::io::Error) -> WorkError {
    if e.kind() == std::io::ErrorKind::StorageFull {
        WorkError::StorageFull(e.to_string())
    } else {
        WorkError::WriteFailed(e.to_string())
    }
}

/// An export writer's failure, by its cause.
fn written(e: ExportError) -> WorkError {
    match e {
        e @ ExportError::TooManyRows(_) => WorkError::field("format", e.to_string()),
        e => match e.into_io() {
            Ok(e) => io(e),
            Err(e) => internal(e),
        },
    }
}

/// Space an XLSX chunk may need on its way through the workbook's temporary file and
/// the zip; below it the export stops with a 507 rather than let the crate, which
/// panics when a write fails, run out.
const XLSX_ROOM: u64 = 16 << 20;

/// 507 when `dir`'s file system has less than `need` bytes free.
fn room(dir: &Path, need: u64) -> Result<(), WorkError> {
    match rustix::fs::statvfs(dir) {
        Ok(s) if s.f_bavail.saturating_mul(s.f_frsize) < need => Err(WorkError::StorageFull(format!(
            "{} has {} bytes free, fewer than the {need} an XLSX chunk may need",
            dir.display(),
            s.f_bavail.saturating_mul(s.f_frsize)
        ))),
        _ => Ok(()),
    }
}

/// What a panic while writing means: a full disk if it says so (the XLSX crate panics
/// on write errors), else an internal error.
fn panicked(payload: Box<dyn std::any::Any + Send>) -> WorkError {
    let text = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    if text.contains("StorageFull") || text.contains("No space left") {
        WorkError::StorageFull(text)
    } else {
        WorkError::Internal(format!("export panicked: {text}"))
    }
}

/// Writes an export to `path`; returns the number of rows. `progress` counts rows as
/// they are written. Memory stays flat except for PDF (at most `MAX_PDF_ROWS` events).
/// On failure nothing is left at `path`.
pub async fn to_file(
    store: &DynStore,
    req: &ExportRequest,
    path: &Path,
    tmp: &Path,
    now: Timestamp,
    progress: Arc<AtomicU64>,
) -> Result<u64, WorkError> {
    let made = write(store, req, path, tmp, now, progress).await;
    if made.is_err() {
        let _ = std::fs::remove_file(path);
    }
    made
}

async fn write(
    store: &DynStore,
    req: &ExportRequest,
    path: &Path,
    tmp: &Path,
    now: Timestamp,
    progress: Arc<AtomicU64>,
) -> Result<u64, WorkError> {
    for dir in path.parent().into_iter().chain([tmp]) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    if req.format == Format::Evidence {
        let vkey = req.verifier_key.clone().unwrap_or_default();
        let lines = crate::work::evidence::stream(
            store.clone(),
            req.archive.clone(),
            req.witness_policy.clone(),
            req.scope.clone(),
            req.filter.clone(),
            now,
            vkey,
        )
        .await?;
        let mut lines = std::pin::pin!(lines);
        let mut file = std::fs::File::create(path).map_err(io)?;
        let mut rows = 0u64;
        while let Some(chunk) = lines.next().await {
            let chunk = chunk?;
            let n = chunk.iter().filter(|b| **b == b'\n').count() as u64;
            std::io::Write::write_all(&mut file, &chunk).map_err(io)?;
            rows += n;
            progress.fetch_add(n, Ordering::Relaxed);
        }
        file.sync_all().map_err(io)?;
        return Ok(rows.saturating_sub(1));
    }
    if req.format == Format::Pdf {
        let n = store.count(req.scope.clone(), req.filter.clone(), now).await?;
        if n > MAX_PDF_ROWS {
            return Err(WorkError::field(
                "format",
                format!("a PDF report holds at most {MAX_PDF_ROWS} events and {n} match: narrow the filter or use csv"),
            ));
        }
    }
    let rx = open_rx(store, req, now).await?;
    let (format, preset, meta) = (req.format, req.preset, req.meta(now));
    let (path, tmp) = (path.to_path_buf(), tmp.to_path_buf());
    let made = tokio::task::spawn_blocking(move || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            write_rows(format, preset, &meta, rx, &path, &tmp, progress)
        }))
        .unwrap_or_else(|p| Err(panicked(p)))
    })
    .await
    .map_err(internal)?;
    made
}

/// Writes the rows `rx` delivers to `path` (on a blocking thread).
fn write_rows(
    format: Format,
    preset: Preset,
    meta: &Meta,
    mut rx: StreamRx,
    path: &Path,
    tmp: &Path,
    progress: Arc<AtomicU64>,
) -> Result<u64, WorkError> {
    {
        use std::io::Write;
        let file = std::fs::File::create(path).map_err(io)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let mut rows = 0u64;
        match format {
            Format::Csv => {
                let mut w = CsvWriter::new(out).map_err(written)?;
                while let Some(chunk) = rx.blocking_recv() {
                    let chunk = chunk?;
                    w.leaves(&chunk).map_err(written)?;
                    rows += chunk.len() as u64;
                    progress.store(rows, Ordering::Relaxed);
                }
                w.finish().map_err(written)?.into_inner().map_err(|e| io(e.into_error()))?.sync_all().map_err(io)?;
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
                    out.write_all(&buf).map_err(io)?;
                    buf.clear();
                    progress.store(rows, Ordering::Relaxed);
                }
                w.end(&mut buf);
                out.write_all(&buf).map_err(io)?;
                out.into_inner().map_err(|e| io(e.into_error()))?.sync_all().map_err(io)?;
            }
            Format::Xlsx => {
                drop(out);
                room(tmp, XLSX_ROOM)?;
                let mut w = XlsxWriter::new(tmp).map_err(written)?;
                // The next chunk is decoded on a thread of its own while this one writes
                // the sheet. If the sheet fails, the channel closes and the decoder stops.
                let (decoded_tx, decoded_rx) = std::sync::mpsc::sync_channel(2);
                std::thread::scope(|s| -> Result<(), WorkError> {
                    s.spawn(move || {
                        while let Some(chunk) = rx.blocking_recv() {
                            let decoded = match chunk {
                                Ok(c) => XlsxChunk::decode(&c).map_err(internal),
                                Err(e) => Err(WorkError::from(e)),
                            };
                            let failed = decoded.is_err();
                            if decoded_tx.send(decoded).is_err() || failed {
                                break;
                            }
                        }
                    });
                    for chunk in decoded_rx {
                        let chunk = chunk?;
                        room(tmp, XLSX_ROOM)?;
                        w.chunk(&chunk).map_err(written)?;
                        rows += chunk.len() as u64;
                        progress.store(rows, Ordering::Relaxed);
                    }
                    Ok(())
                })?;
                room(tmp, XLSX_ROOM)?;
                if let Some(dir) = path.parent() {
                    room(dir, XLSX_ROOM)?;
                }
                w.finish(meta, path).map_err(written)?;
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
                let bytes = trail_export::pdf(&events, meta, preset).map_err(written)?;
                out.write_all(&bytes).map_err(io)?;
                out.into_inner().map_err(|e| io(e.into_error()))?.sync_all().map_err(io)?;
            }
            Format::Evidence => unreachable!("handled above"),
        }
        Ok(rows)
    }
}

/// Rows read from the store per chunk.
pub(crate) const CHUNK: usize = 1000;
/// The most rows a PDF report holds.
pub const MAX_PDF_ROWS: u64 = 50_000;

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
    /// `[witness] policy`: evidence proves its checkpoint into the newest witnessed
    /// installation checkpoint (with its cosignatures) when there is one.
    pub witness_policy: Option<Arc<trail_core::policy::Policy>>,
}

impl ExportRequest {
    pub(crate) fn meta(&self, now: Timestamp) -> Meta {
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

/// The request's events, a chunk at a time: from the store, or (with an archive) from
/// the archive and the store merged in time order.
pub(crate) async fn open_rx(store: &DynStore, req: &ExportRequest, now: Timestamp) -> Result<StreamRx, WorkError> {
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
pub async fn estimate(st: &Services, req: &ExportRequest, now: Timestamp) -> Result<u64, WorkError> {
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

/// Records the export in the log.
pub async fn record_export(st: &Services, req: &ExportRequest, rows: u64, extra: Value) {
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
    if req.audit_org == selfaudit::PLATFORM_LOG && selfaudit::platform_log(st).await.is_none() {
        return;
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
