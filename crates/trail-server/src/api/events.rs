//! Events over HTTP: ingest, list, detail and facets, plus `/healthz`.

use axum::{
    body::Body,
    extract::{Path, Request, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;
use serde_json::{json, value::RawValue, Value};
use trail_core::{diff::diff, event::parse_batch, Event, FieldError, Filter};
use trail_store::{AppendBatch, Count, ListQuery};
use uuid::Uuid;

use super::{pairs, Pairs};
use crate::{auth::Caller, error::ApiError, AppState};

/// Default and largest page sizes of the list.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;
/// Bodies above this size are parsed on a blocking thread so they do not stall the
/// async workers.
const INLINE_PARSE_BYTES: usize = 64 * 1024;

/// `ok`, or `degraded` while the last self-check's findings stand (still 200: the
/// server works; what it stores needs an operator).
pub(super) async fn health(State(st): State<AppState>) -> Response {
    let (ok, last) = st.last_check.health();
    let mut body = json!({"status": if ok { "ok" } else { "degraded" }});
    if let Some(v) = last {
        body["verify"] = v;
    }
    Json(body).into_response()
}

pub(super) async fn ingest(State(st): State<AppState>, caller: Caller, req: Request) -> Result<Response, ApiError> {
    let org = caller.write_org()?.to_string();
    let limits = st.config.limits;
    let body = axum::body::to_bytes(req.into_body(), limits.max_request_bytes).await.map_err(|_| {
        FieldError::new("body", format!("request is larger than {} bytes", limits.max_request_bytes))
            .with_code("too_large")
    })?;
    let parsed = if body.len() <= INLINE_PARSE_BYTES {
        parse_batch(&body, &limits)
    } else {
        tokio::task::spawn_blocking(move || parse_batch(&body, &limits))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
    };
    let events = parsed.map_err(|e| if e.field == "body" { ApiError::Field(e) } else { ApiError::Unprocessable(e) })?;
    let batch = AppendBatch {
        org,
        received_at: (st.clock)(),
        events: events.into_iter().map(|e| (Uuid::now_v7(), e)).collect(),
    };
    let acks = crate::work::feed::append(&st, batch).await?;
    #[derive(Serialize)]
    struct Ack {
        id: Uuid,
        seq: u64,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        duplicate: bool,
    }
    let events: Vec<Ack> = acks.iter().map(|a| Ack { id: a.id, seq: a.seq, duplicate: a.duplicate }).collect();
    Ok((StatusCode::OK, Json(json!({"accepted": events.len(), "events": events}))).into_response())
}

/// Splits paging parameters from filter parameters.
fn list_params(pairs: &[(String, String)]) -> Result<(Filter, Option<String>, usize), ApiError> {
    let mut cursor = None;
    let mut limit = DEFAULT_LIMIT;
    let mut rest = Vec::new();
    for (k, v) in pairs {
        match k.as_str() {
            "cursor" => cursor = Some(v.clone()).filter(|c| !c.is_empty()),
            "limit" => {
                limit = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| ApiError::field("limit", format!("must be an integer from 1 to {MAX_LIMIT}")))?;
            }
            _ => rest.push((k.as_str(), v.as_str())),
        }
    }
    Ok((Filter::from_pairs(rest)?, cursor, limit))
}

pub(super) async fn list(State(st): State<AppState>, caller: Caller, q: Pairs) -> Result<Response, ApiError> {
    let scope = caller.read_scope()?;
    let (mut filter, cursor, limit) = list_params(&pairs(q)?)?;
    let now = (st.clock)();
    crate::work::retention::online_window(&st, &mut filter, now)?;
    if cursor.is_none() && st.config.audit_reads {
        crate::auth::view(&st, &caller, "list", trail_core::query::render(&filter));
    }
    let page = st.store.list(ListQuery { scope, filter, now, cursor, limit }).await?;
    // The stored bytes are already JSON: splice them in rather than re-serialising.
    let size: usize = page.events.iter().map(|e| e.len() + 1).sum();
    let mut out = Vec::with_capacity(size + 64);
    out.extend_from_slice(b"{\"events\":[");
    for (i, leaf) in page.events.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(leaf);
    }
    out.extend_from_slice(b"],\"next_cursor\":");
    out.extend_from_slice(serde_json::to_string(&page.next_cursor).unwrap_or_default().as_bytes());
    out.push(b'}');
    Ok(([(header::CONTENT_TYPE, "application/json")], Body::from(out)).into_response())
}

pub(super) async fn detail(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let scope = caller.read_scope()?;
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::field("id", "must be an event id (a UUID)"))?;
    let leaf = st.store.get(scope, id).await?.ok_or_else(|| ApiError::NotFound(format!("no event {id}")))?;
    let event =
        Event::from_leaf(&leaf).map_err(|e| ApiError::Internal(format!("stored event {id} unreadable: {e}")))?;
    if st.config.audit_reads {
        crate::auth::view(&st, &caller, "event", id.to_string());
    }
    let raw = RawValue::from_string(String::from_utf8_lossy(&leaf).into_owned())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    #[derive(Serialize)]
    struct Detail<'a> {
        event: &'a RawValue,
        company: &'a str,
        diff: Vec<trail_core::diff::Change>,
        /// The event's inclusion proof against the newest checkpoint; null while no
        /// checkpoint covers it yet (within about a second of ingest).
        proof: Option<Value>,
    }
    let proof = match st.store.checkpoint(&event.org, None).await? {
        Some(cp) if event.seq < cp.size => {
            let hashes = st.store.inclusion_proof(&event.org, event.seq, cp.size).await?;
            Some(
                json!({"index": event.seq, "size": cp.size, "proof": super::proofs::b64_all(&hashes), "checkpoint": cp.note}),
            )
        }
        _ => None,
    };
    let body = Detail {
        event: &raw,
        company: event.company(),
        diff: diff(event.before.as_ref(), event.after.as_ref()),
        proof,
    };
    Ok(Json(body).into_response())
}

pub(super) async fn facets(State(st): State<AppState>, caller: Caller, q: Pairs) -> Result<Response, ApiError> {
    let scope = caller.read_scope()?;
    let (mut filter, _, _) = list_params(&pairs(q)?)?;
    let now = (st.clock)();
    crate::work::retention::online_window(&st, &mut filter, now)?;
    let f = st.store.facets(scope, filter, now).await?;
    let counts = |c: &[Count]| {
        c.iter()
            .map(|c| match &c.label {
                Some(l) => json!({"value": c.value, "label": l, "count": c.count}),
                None => json!({"value": c.value, "count": c.count}),
            })
            .collect::<Vec<_>>()
    };
    Ok(Json(json!({
        "total": f.total,
        "categories": counts(&f.categories),
        "results": counts(&f.results),
        "users": counts(&f.users),
        "companies": counts(&f.companies),
    }))
    .into_response())
}
