//! Writing an export to a file (background jobs, scheduled exports, XLSX and PDF made
//! in the request), and what its failures answer: a full disk 507, any other write
//! failure 503, each with the documented JSON body; a failed export leaves no file.

use std::{
    path::Path,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use futures::StreamExt;
use trail_core::{Event, Timestamp};
use trail_export::{CsvWriter, Format, JsonWriter, XlsxChunk, XlsxWriter};
use trail_store::DynStore;

use super::{open_rx, ExportRequest, MAX_PDF_ROWS};
use crate::error::ApiError;

pub(super) fn parse_leaf(leaf: &[u8]) -> Result<Event, ApiError> {
    Event::from_leaf(leaf).map_err(|e| ApiError::Internal(format!("stored event unreadable: {e}")))
}

pub(super) fn internal(e: impl std::fmt::Display) -> ApiError {
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

