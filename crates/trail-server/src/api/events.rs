//! Events over HTTP: ingest, list, detail and facets.

use axum::{
    body::Body,
    extract::{Path, Request, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;
use serde_json::value::RawValue;
use trail_core::{diff::diff, event::parse_batch, Event, FieldError, Filter};
use trail_store::{AppendBatch, Count, ListQuery};
use utoipa::ToSchema;
use uuid::Uuid;

use super::extract::QueryPairs;
use crate::{auth::Caller, error::ApiError, AppState};

/// Default and largest page sizes of the list.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;
/// Bodies above this size are parsed on a blocking thread so they do not stall the
/// async workers.
const INLINE_PARSE_BYTES: usize = 64 * 1024;

/// One event's acknowledgement.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Ack {
    pub(crate) id: Uuid,
    /// Its position in the organization's log.
    pub(crate) seq: u64,
    /// The idempotency key was seen before: this is the earlier event (absent otherwise).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) duplicate: bool,
}

/// The events stored, in the order sent.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Accepted {
    accepted: usize,
    events: Vec<Ack>,
}

/// One page of events, as stored (the bytes each event was stored with).
#[allow(dead_code)] // The body is spliced from the stored bytes; this type documents it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EventPage {
    #[schema(value_type = Vec<trail_core::Event>)]
    events: Vec<Box<RawValue>>,
    /// Pass as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
}

/// An event's inclusion proof against the newest checkpoint.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DetailProof {
    index: u64,
    size: u64,
    /// Base64 SHA-256 hashes, leaf side first.
    proof: Vec<String>,
    /// The signed checkpoint (C2SP signed note) the proof leads to.
    checkpoint: String,
    /// The event's stored bytes (base64): what the leaf hash is taken of, so that a
    /// client can check the proof itself (the page does, in the browser).
    leaf: String,
    /// The verifier key the checkpoint is signed with (`<origin>+<hash>+<key>`), where
    /// this server signs.
    #[serde(skip_serializing_if = "Option::is_none")]
    verifier_key: Option<String>,
    /// Where that checkpoint is in the installation log (into the newest witnessed
    /// installation checkpoint, with its cosignatures, when there are witnesses),
    /// once appended there.
    #[serde(skip_serializing_if = "Option::is_none")]
    installation: Option<super::proofs::InstallationProofView>,
    /// The installation log's verifier key.
    #[serde(skip_serializing_if = "Option::is_none")]
    installation_key: Option<String>,
    /// With `[witness]`: the witnesses (policy name, cosigner name, Ed25519 key in
    /// base64) and the quorum, so that a client checks the cosignatures itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    witnesses: Option<serde_json::Value>,
}

/// One event with what the page shows beside it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Detail<'a> {
    #[schema(value_type = trail_core::Event)]
    event: &'a RawValue,
    /// The organization (the Company column).
    company: &'a str,
    /// What changed between `before` and `after`.
    diff: Vec<trail_core::diff::Change>,
    /// Null while no checkpoint covers the event yet (within about a second of ingest).
    proof: Option<DetailProof>,
}

/// A value with how many events carry it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CountView {
    value: String,
    /// A label where the value is an id (the user's name for an email).
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<String>,
    count: u64,
}

impl From<&Count> for CountView {
    fn from(c: &Count) -> CountView {
        CountView { value: c.value.clone(), label: c.label.clone(), count: c.count }
    }
}

/// Counts per column within the filter's time range.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FacetCounts {
    total: u64,
    categories: Vec<CountView>,
    results: Vec<CountView>,
    users: Vec<CountView>,
    companies: Vec<CountView>,
}

#[utoipa::path(
    post, path = "/api/v1/events", tag = "events", security(("api_key" = [])),
    request_body(content = Vec<trail_core::Event>, description = "One event, an array, or NDJSON (one per line); see the event fields", content_type = "application/json"),
    responses((status = 200, description = "Every event stored (all or nothing)", body = Accepted),
        (status = 422, description = "An event's content is invalid; `field` names it", body = crate::error::ErrorBody), crate::api::doc::Errors)
)]
pub(super) async fn ingest(State(st): State<AppState>, caller: Caller, req: Request) -> Result<Response, ApiError> {
    let org = caller.write_org()?.to_string();
    let result = ingest_into(&st, org.clone(), req).await;
    if let Some(m) = &st.metrics {
        match &result {
            Ok((_, n)) => m.ingested(&org, *n),
            Err(e) => m.refused(&org, &e.parts().1.code, 1),
        }
    }
    result.map(|(response, _)| response)
}

/// Ingest for `org`: the response and how many events it stored.
async fn ingest_into(st: &AppState, org: String, req: Request) -> Result<(Response, usize), ApiError> {
    let limits = st.config.limits;
    let body = axum::body::to_bytes(req.into_body(), limits.max_request_bytes).await.map_err(|_| {
        FieldError::new("body", format!("request is larger than {} bytes", limits.max_request_bytes))
            .with_code(trail_core::FieldCode::TooLarge)
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
    let acks = crate::work::feed::append(st, batch).await?;
    let events: Vec<Ack> = acks.iter().map(|a| Ack { id: a.id, seq: a.seq, duplicate: a.duplicate }).collect();
    let n = events.len();
    Ok(((StatusCode::OK, Json(Accepted { accepted: n, events })).into_response(), n))
}

/// The most rows `offset` may skip (deeper pages use the cursor).
const MAX_OFFSET: usize = 10_000;

/// A list request's paging: the cursor, the page size, and the rows to skip first.
pub(super) struct Paging {
    pub cursor: Option<String>,
    pub limit: usize,
    pub offset: usize,
}

/// Splits paging parameters from filter parameters. The product documents' own
/// parameters are accepted as aliases: `start` and `end` for `from` and `to`,
/// `status=failed` for `result=FAILED` (`status=success|failure` stays the HTTP status
/// class), and `offset` (at most 10,000) for the first rows skipped.
pub(super) fn list_params(pairs: &[(String, String)]) -> Result<(Filter, Paging), ApiError> {
    let mut paging = Paging { cursor: None, limit: DEFAULT_LIMIT, offset: 0 };
    let mut rest = Vec::new();
    for (k, v) in pairs {
        match k.as_str() {
            "cursor" => paging.cursor = Some(v.clone()).filter(|c| !c.is_empty()),
            "limit" => {
                paging.limit = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| ApiError::field("limit", format!("must be an integer from 1 to {MAX_LIMIT}")))?;
            }
            "offset" => {
                paging.offset = v.parse::<usize>().ok().filter(|n| *n <= MAX_OFFSET).ok_or_else(|| {
                    ApiError::field(
                        "offset",
                        format!("must be an integer from 0 to {MAX_OFFSET} (use the cursor beyond)"),
                    )
                })?;
            }
            "start" => rest.push(("from", v.as_str())),
            "end" => rest.push(("to", v.as_str())),
            "status" if v.eq_ignore_ascii_case("failed") => rest.push(("result", "FAILED")),
            _ => rest.push((k.as_str(), v.as_str())),
        }
    }
    if paging.offset > 0 && paging.cursor.is_some() {
        return Err(ApiError::field("offset", "give offset or cursor, not both"));
    }
    Ok((Filter::from_pairs(rest)?, paging))
}

#[utoipa::path(
    get, path = "/api/v1/events", tag = "events",
    params(crate::api::doc::FilterParams, crate::api::doc::PageParams),
    responses((status = 200, description = "One page, newest first unless sorted otherwise", body = EventPage), crate::api::doc::Errors)
)]
pub(super) async fn list(
    State(st): State<AppState>,
    caller: Caller,
    QueryPairs(q): QueryPairs,
) -> Result<Response, ApiError> {
    let scope = caller.read_scope()?;
    let (mut filter, paging) = list_params(&q)?;
    let Paging { mut cursor, limit, offset } = paging;
    let now = (st.clock)();
    // The view is recorded as asked: the online window names the time of each request,
    // which would make every repeat a new view (and a new event).
    let asked = trail_core::query::render(&filter);
    crate::work::retention::online_window(&st, &mut filter, now)?;
    if cursor.is_none() && st.config.audit_reads {
        let viewed = crate::auth::viewed_org(&st, &caller, &filter).await;
        crate::auth::view(&st, &caller, "list", asked, viewed);
    }
    // `offset`: the rows before are walked by the cursor, a page at a time.
    let mut skip = offset;
    while skip > 0 {
        let q = ListQuery {
            scope: scope.clone(),
            filter: filter.clone(),
            now,
            cursor: cursor.take(),
            limit: skip.min(MAX_LIMIT),
        };
        let page = st.store.list(q).await?;
        skip = skip.saturating_sub(page.events.len());
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    let page = if offset > 0 && cursor.is_none() {
        trail_store::Page { events: vec![], next_cursor: None }
    } else {
        st.store.list(ListQuery { scope, filter, now, cursor, limit }).await?
    };
    // The stored bytes are already JSON: splice them in rather than re-serialising (the
    // body is an `EventPage`; a test reads pages back as one).
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

#[utoipa::path(
    get, path = "/api/v1/events/{id}", tag = "events",
    params(("id" = String, Path, description = "The event's id (a UUID)")),
    responses((status = 200, description = "The event, its diff and its inclusion proof", body = Detail), crate::api::doc::Errors)
)]
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
        crate::auth::view(&st, &caller, "event", id.to_string(), Some(event.org.clone()));
    }
    let raw = RawValue::from_string(String::from_utf8_lossy(&leaf).into_owned())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let proof = match st.store.checkpoint(&event.org, None).await? {
        Some(cp) if event.seq < cp.size => {
            let hashes = st.store.inclusion_proof(&event.org, event.seq, cp.size).await?;
            Some(DetailProof {
                index: event.seq,
                size: cp.size,
                proof: super::proofs::b64_all(&hashes),
                checkpoint: cp.note,
                leaf: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &leaf),
                verifier_key: st.config.log.as_ref().map(|l| l.verifier_key(&event.org)),
                installation: super::proofs::InstallationProofView::of(&st, &event.org, cp.size).await?,
                installation_key: st.config.log.as_ref().map(|l| l.verifier_key(trail_store::installation::LOG_NAME)),
                witnesses: st.config.witness.as_ref().map(|w| {
                    let list: Vec<serde_json::Value> = w
                        .policy
                        .witnesses
                        .iter()
                        .map(|x| {
                            let key =
                                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, x.key.as_bytes());
                            serde_json::json!({"name": x.name, "key_name": x.key_name, "key": key})
                        })
                        .collect();
                    serde_json::json!({"witnesses": list, "quorum": w.policy.quorum_tree()})
                }),
            })
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

#[utoipa::path(
    get, path = "/api/v1/facets", tag = "events",
    params(crate::api::doc::FilterParams),
    responses((status = 200, description = "Counts per category, result, user and organization within the filter's time range", body = FacetCounts), crate::api::doc::Errors)
)]
pub(super) async fn facets(
    State(st): State<AppState>,
    caller: Caller,
    QueryPairs(q): QueryPairs,
) -> Result<Response, ApiError> {
    let scope = caller.read_scope()?;
    let (mut filter, _) = list_params(&q)?;
    let now = (st.clock)();
    crate::work::retention::online_window(&st, &mut filter, now)?;
    let f = st.store.facets(scope, filter, now).await?;
    let counts = |c: &[Count]| c.iter().map(CountView::from).collect();
    Ok(Json(FacetCounts {
        total: f.total,
        categories: counts(&f.categories),
        results: counts(&f.results),
        users: counts(&f.users),
        companies: counts(&f.companies),
    })
    .into_response())
}
