//! Scheduled exports (`/api/v1/schedules`): every day or week at a UTC time, the
//! events matching a filter, mailed over SMTP and/or written to a directory.

use std::{path::Path, sync::Arc, time::Duration};

use axum::{
    body::Bytes,
    extract::{Path as UrlPath, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use chrono::{Datelike, Timelike};
use serde_json::{json, Value};
use trail_core::Timestamp;
use trail_export::{Format, Preset};
use trail_store::{Schedule, Scope};

use super::{record_export, to_file, ExportRequest};
use crate::{auth::Caller, error::ApiError, selfaudit, AppState};

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

pub(super) async fn create_schedule(
    State(st): State<AppState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<Response, ApiError> {
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

pub(super) async fn list_schedules(
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

pub(super) async fn delete_schedule(
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

pub(super) async fn run_schedule_now(
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

/// Runs every scheduled export that is due now, once; returns how many ran.
pub async fn run_due(st: &AppState) -> usize {
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
            let _ = st.store.schedule_ran(s.id, now.0, next_run(s.weekday, s.at_minute, now)).await;
        }
    }
    due.len()
}

/// Runs due scheduled exports every `every` until the process ends.
pub fn spawn_scheduler(st: AppState, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            run_due(&st).await;
        }
    })
}
