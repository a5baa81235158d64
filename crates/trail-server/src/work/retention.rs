//! Retention in the server: `run` (the nightly job and `trail retention run`), the job's
//! timer, and the online query window (queries reaching further back are refused with
//! a pointer to `GET /api/v1/download`, which reads the archive too).

use std::sync::Arc;

use serde_json::json;
use trail_core::{FieldError, Filter, Timestamp};
use trail_store::archive::{self, Archive, OrgReport, Retention};

use crate::config::RetentionConfig;

use super::{daily::next_run, selfaudit, Services, WorkError};

/// Archives and deletes what has expired at `as_of` in every organization, and records
/// a `system:retention` event in each organization where it changed something.
pub async fn run(st: &Services, as_of: Timestamp) -> Result<Vec<OrgReport>, WorkError> {
    let archive = st
        .archive
        .clone()
        .ok_or_else(|| WorkError::Unavailable("no archive is configured: retention cannot run".into()))?;
    let rules = &st.config.retention.rules;
    let reports = archive::run(&*st.store, &archive, rules, as_of).await;
    if let Some(m) = &st.metrics {
        m.retention(reports.is_ok(), reports.as_ref().map_or(0, |r| r.iter().map(|o| o.archived).sum()));
    }
    let reports = reports?;
    for r in &reports {
        if r.archived == 0 && r.leftovers_removed == 0 && r.legal_holds_set + r.legal_holds_lifted == 0 {
            continue;
        }
        let details = json!({
            "as_of": as_of.to_rfc3339(),
            "default_days": rules.default_days,
            "category_days": rules.categories,
            "archived": r.archived,
            "deleted": r.deleted,
            "files": r.files,
            "leftovers_removed": r.leftovers_removed,
            "categories": r.categories,
            "oldest": r.oldest,
            "newest": r.newest,
            "archive": archive.location(),
            "legal_holds_set": r.legal_holds_set,
            "legal_holds_lifted": r.legal_holds_lifted,
        });
        let rec = selfaudit::Record {
            org: r.org.clone(),
            action: "system:retention",
            ok: true,
            actor: json!({"id": "trail-retention", "name": "retention job", "type": "system"}),
            resource: Some(json!({"type": "archive", "id": r.org, "name": format!("{} archive", r.org)})),
            details: Some(details),
            error: None,
            ip: None,
            user_agent: None,
        };
        selfaudit::record(st, rec).await;
    }
    Ok(reports)
}

/// Runs retention every day at the configured UTC minute (when there is an archive
/// and rules), until the shutdown signal.
pub(crate) async fn daily(st: Services) {
    if st.archive.is_none() || !st.config.retention.rules.enabled() {
        return;
    }
    loop {
        let now = (st.clock)();
        let next = next_run(None, st.config.retention.run_at_minute, now);
        let wait = std::time::Duration::from_micros((next - now.0).max(0) as u64);
        tokio::time::sleep(wait).await;
        match run(&st, (st.clock)()).await {
            Ok(reports) => {
                let archived: u64 = reports.iter().map(|r| r.archived).sum();
                tracing::info!(archived, "retention ran");
            }
            Err(e) => tracing::warn!(error = ?e, "retention failed"),
        }
    }
}

/// Applies the online window to a list, facet or export filter: without a start it
/// starts at the window's start; a start (or end) before it is refused with a pointer
/// to the download.
pub(crate) fn online_window(st: &Services, filter: &mut Filter, now: Timestamp) -> Result<(), WorkError> {
    let days = st.config.retention.online_days;
    if days == 0 {
        return Ok(());
    }
    let start = Retention::cutoff(days, now);
    let (from, to) = filter.time_range(now);
    let too_old = |field: &str| {
        WorkError::Field(
            FieldError::new(
                field,
                format!(
                    "online queries reach back {days} days (to {}); for older events use Download log \
                     (GET /api/v1/download?from=...&to=...&format=csv|jsonl)",
                    start.to_rfc3339()
                ),
            )
            .with_code(trail_core::FieldCode::BeyondOnlineWindow),
        )
    };
    match (from, to) {
        (Some(f), _) if f < start => Err(too_old("from")),
        (_, Some(t)) if t < start => Err(too_old("to")),
        (None, _) => {
            filter.from = Some(start);
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The archive as the server holds it.
pub(crate) fn open(config: &RetentionConfig) -> Option<Arc<Archive>> {
    config.archive.clone().map(Arc::new)
}
