//! Scheduled exports (`/api/v1/schedules`): every day or week at a UTC time, the
//! events matching a filter, mailed over SMTP and/or written to a directory.

use axum::{
    extract::{Path as UrlPath, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use chrono::Timelike;
use serde::{Deserialize, Serialize};
use trail_core::Timestamp;
use trail_export::Format;
use trail_store::Schedule;
use utoipa::ToSchema;

use super::extract::{JsonBody, OrgParam};
use crate::{
    auth::Caller,
    error::ApiError,
    work::{daily::next_run, schedules::run_schedule, selfaudit},
    AppState,
};

/// A scheduled export.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ScheduleView {
    id: i64,
    org: String,
    name: String,
    /// daily or weekly.
    cadence: String,
    /// monday … sunday, for weekly schedules.
    weekday: Option<String>,
    /// The UTC time of day it runs, HH:MM.
    at: String,
    /// The filter, in the query language.
    query: String,
    format: String,
    recipients: Vec<String>,
    /// Where under the export directory files are kept.
    directory: Option<String>,
    created_by: String,
    #[schema(format = DateTime)]
    next_run: String,
    #[schema(format = DateTime)]
    last_run: Option<String>,
}

impl From<&Schedule> for ScheduleView {
    fn from(s: &Schedule) -> ScheduleView {
        ScheduleView {
            id: s.id,
            org: s.org.clone(),
            name: s.name.clone(),
            cadence: if s.weekday.is_some() { "weekly" } else { "daily" }.into(),
            weekday: s.weekday.map(|d| WEEKDAYS[d as usize].into()),
            at: format!("{:02}:{:02}", s.at_minute / 60, s.at_minute % 60),
            query: s.query.clone(),
            format: s.format.clone(),
            recipients: s.recipients.clone(),
            directory: s.directory.clone(),
            created_by: s.created_by.clone(),
            next_run: Timestamp(s.next_run).to_rfc3339(),
            last_run: s.last_run.map(|t| Timestamp(t).to_rfc3339()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ScheduleList {
    schedules: Vec<ScheduleView>,
}

const WEEKDAYS: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScheduleBody {
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

#[utoipa::path(
    post, path = "/api/v1/schedules", tag = "schedules",
    request_body = ScheduleBody,
    responses((status = 201, description = "Created", body = ScheduleView), crate::api::doc::Errors)
)]
pub(super) async fn create_schedule(
    State(st): State<AppState>,
    caller: Caller,
    JsonBody(b): JsonBody<ScheduleBody>,
) -> Result<Response, ApiError> {
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
        caller
            .record("schedule:create")
            .resource("schedule", s.id, &s.name)
            .details(serde_json::to_value(ScheduleView::from(&s)).unwrap_or_default()),
    )
    .await;
    Ok((StatusCode::CREATED, Json(ScheduleView::from(&s))).into_response())
}

#[utoipa::path(
    get, path = "/api/v1/schedules", tag = "schedules",
    params(crate::api::doc::OrgParam),
    responses((status = 200, description = "Scheduled exports", body = ScheduleList), crate::api::doc::Errors)
)]
pub(super) async fn list_schedules(
    State(st): State<AppState>,
    caller: Caller,
    org: OrgParam,
) -> Result<Response, ApiError> {
    let named = org.as_deref();
    let org = match named {
        None if caller.perms.platform => None,
        n => Some(caller.managed_org(n)?),
    };
    caller.managed_org(None)?;
    let list = st.store.schedules(org.as_deref()).await?;
    Ok(Json(ScheduleList { schedules: list.iter().map(ScheduleView::from).collect() }).into_response())
}

fn managed_schedule_org(caller: &Caller) -> Result<Option<String>, ApiError> {
    caller.managed_org(None)?;
    Ok(if caller.perms.platform { None } else { Some(caller.org.clone()) })
}

#[utoipa::path(
    delete, path = "/api/v1/schedules/{id}", tag = "schedules",
    params(("id" = i64, Path, description = "The schedule's id")),
    responses((status = 204, description = "Deleted"), crate::api::doc::Errors)
)]
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
    selfaudit::record(&st, caller.record("schedule:delete").resource("schedule", id, "")).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(
    post, path = "/api/v1/schedules/{id}/run", tag = "schedules",
    params(("id" = i64, Path, description = "The schedule's id")),
    responses((status = 200, description = "What the run did", body = crate::work::schedules::ScheduleRun), crate::api::doc::Errors)
)]
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
