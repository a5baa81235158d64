//! Scheduled exports: one run (the file written, mailed, recorded, the next run set),
//! the runs that are due, and the timer that runs them.

use std::{sync::Arc, time::Duration};

use serde_json::json;
use trail_core::Timestamp;
use trail_export::{Format, Preset};
use trail_store::{Schedule, Scope};

use super::{
    daily::next_run,
    export::{record_export, to_file, ExportRequest},
    mail::mail_export,
    Services, WorkError,
};

/// What one run of a scheduled export did.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ScheduleRun {
    /// Events in the file.
    pub rows: u64,
    /// The file's size.
    pub bytes: u64,
    /// Recipients the mail reached.
    pub emailed: usize,
    /// Why it was not mailed, if it was not.
    pub mail_error: Option<String>,
    /// Where the file is kept, for schedules with a directory.
    pub file: Option<String>,
}

/// Runs one scheduled export now: writes the file, mails it, records it, and sets the
/// next run.
pub async fn run_schedule(st: &Services, s: &Schedule, now: Timestamp) -> Result<ScheduleRun, WorkError> {
    maker_may_still_export(st, s).await?;
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
        witness_policy: st.config.witness.as_ref().map(|w| w.policy.clone()),
    };
    let folder = s.directory.clone().unwrap_or_else(|| format!("schedule-{}", s.id));
    let path = st.config.exports.dir.join(&s.org).join(folder).join(format.file_name(now));
    let tmp = st.config.exports.tmp();
    let rows = to_file(&st.store, &req, &path, &tmp, now, Arc::default()).await?;
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let mut emailed = 0usize;
    let mut mail_error = None;
    if !s.recipients.is_empty() {
        match mail_export(st, s, &req, &path, rows, size, now).await {
            Ok(n) => emailed = n,
            Err(e) => {
                tracing::warn!(schedule = s.id, error = %e, "scheduled export not mailed");
                mail_error = Some(e.to_string());
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
    st.store.schedule_ran(s.id, now, Timestamp(next_run(s.weekday, s.at_minute, now))).await?;
    Ok(ScheduleRun {
        rows,
        bytes: size,
        emailed,
        mail_error,
        file: s.directory.as_ref().map(|_| path.display().to_string()),
    })
}

/// Runs every scheduled export that is due now, once; returns how many ran.
pub async fn run_due(st: &Services) -> usize {
    let now = (st.clock)();
    let due = match st.store.schedules(None).await {
        Ok(list) => list.into_iter().filter(|s| s.next_run <= now.0).collect::<Vec<_>>(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read schedules");
            return 0;
        }
    };
    for s in &due {
        if let Err(e) = run_schedule(st, s, now).await {
            tracing::warn!(schedule = s.id, error = ?e, "scheduled export failed");
            let _ = st.store.schedule_ran(s.id, now, Timestamp(next_run(s.weekday, s.at_minute, now))).await;
        }
    }
    due.len()
}

/// A schedule exports its whole organization on behalf of the administrator who made
/// it: each run checks that they still may (a user still there, enabled, still
/// administering the organization). Schedules made with a key run while the
/// organization has them.
async fn maker_may_still_export(st: &Services, s: &Schedule) -> Result<(), WorkError> {
    let makers = st.store.users_by_email(&s.created_by).await?;
    if makers.is_empty() {
        return Ok(());
    }
    // The maker's account in the schedule's organization, or a platform administrator's.
    let Some(user) =
        makers.iter().find(|u| u.org == s.org).or_else(|| makers.iter().find(|u| u.role == "platform_admin"))
    else {
        return Err(WorkError::field("created_by", format!("its maker {} has no account here any more", s.created_by)));
    };
    if user.disabled || !user.manages() {
        return Err(WorkError::field(
            "created_by",
            format!(
                "its maker {} may no longer export {}: the schedule does not run until an administrator makes it again",
                s.created_by, s.org
            ),
        ));
    }
    Ok(())
}

/// Runs due scheduled exports every `every` until the process ends.
pub async fn every(st: Services, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        run_due(&st).await;
    }
}
