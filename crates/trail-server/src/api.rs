//! The `/api/v1` routes: ingest, list, detail and facets, plus `/healthz`.

use axum::{
    body::Body,
    extract::{Path, Query, Request, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde::Serialize;
use serde_json::{json, value::RawValue};
use trail_core::{diff::diff, event::parse_batch, Event, FieldError, Filter};
use trail_store::{AppendBatch, Count, ListQuery};
use uuid::Uuid;

use crate::{auth::authenticate, error::ApiError, AppState};

/// Default and largest page sizes of the list.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;
/// Bodies above this size are parsed on a blocking thread so they do not stall the
/// async workers.
const INLINE_PARSE_BYTES: usize = 64 * 1024;

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/api/v1/events", post(ingest).get(list))
        .route("/api/v1/events/{id}", get(detail))
        .route("/api/v1/facets", get(facets))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .with_state(state)
}

type Pairs = Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>;

fn pairs(q: Pairs) -> Result<Vec<(String, String)>, ApiError> {
    q.map(|Query(p)| p).map_err(|e| ApiError::field("query", format!("malformed query string ({e})")))
}

async fn ingest(State(st): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let caller = authenticate(req.headers(), &*st.store, &st.keys).await?;
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
    let acks = st.store.append(batch).await?;
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

async fn list(State(st): State<AppState>, headers: HeaderMap, q: Pairs) -> Result<Response, ApiError> {
    let caller = authenticate(&headers, &*st.store, &st.keys).await?;
    let scope = caller.read_scope()?;
    let (filter, cursor, limit) = list_params(&pairs(q)?)?;
    let page = st.store.list(ListQuery { scope, filter, now: (st.clock)(), cursor, limit }).await?;
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

async fn detail(State(st): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, ApiError> {
    let caller = authenticate(&headers, &*st.store, &st.keys).await?;
    let scope = caller.read_scope()?;
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::field("id", "must be an event id (a UUID)"))?;
    let leaf = st.store.get(scope, id).await?.ok_or_else(|| ApiError::NotFound(format!("no event {id}")))?;
    let event =
        Event::from_leaf(&leaf).map_err(|e| ApiError::Internal(format!("stored event {id} unreadable: {e}")))?;
    let raw = RawValue::from_string(String::from_utf8_lossy(&leaf).into_owned())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    #[derive(Serialize)]
    struct Detail<'a> {
        event: &'a RawValue,
        company: &'a str,
        diff: Vec<trail_core::diff::Change>,
    }
    let body =
        Detail { event: &raw, company: event.company(), diff: diff(event.before.as_ref(), event.after.as_ref()) };
    Ok(Json(body).into_response())
}

async fn facets(State(st): State<AppState>, headers: HeaderMap, q: Pairs) -> Result<Response, ApiError> {
    let caller = authenticate(&headers, &*st.store, &st.keys).await?;
    let scope = caller.read_scope()?;
    let (filter, _, _) = list_params(&pairs(q)?)?;
    let f = st.store.facets(scope, filter, (st.clock)()).await?;
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
