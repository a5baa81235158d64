//! Proofs over HTTP: the newest (or a sized) signed checkpoint, inclusion and
//! consistency proofs (RFC 9162), each for one organization's log.

use axum::http::header;
use axum::{
    extract::State,
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;
use trail_core::Event;
use utoipa::ToSchema;
use uuid::Uuid;

use super::extract::QueryPairs;
use super::params::{self, number, only};
use crate::{auth::Caller, error::ApiError, AppState};

/// An entry's inclusion proof (RFC 9162): the hashes from its leaf up to the root of
/// the tree of `size` entries.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct InclusionProof {
    pub(crate) index: u64,
    pub(crate) size: u64,
    /// Base64 SHA-256 hashes, leaf side first.
    pub(crate) proof: Vec<String>,
    /// Where the checkpoint of `size` is in the installation log (`/log/_installation/`),
    /// once it has been appended there (within about a second of its signing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) installation: Option<InstallationProofView>,
}

/// An organization checkpoint's place in the installation log: its index, its inclusion
/// proof, and the installation log's signed checkpoint the proof is for. The entry is
/// the SHA-256 of the organization checkpoint's note body.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct InstallationProofView {
    pub(crate) index: u64,
    pub(crate) size: u64,
    /// Base64 SHA-256 hashes, leaf side first.
    pub(crate) proof: Vec<String>,
    /// The installation log's signed checkpoint (origin `<installation>/checkpoints`).
    pub(crate) checkpoint: String,
}

impl InstallationProofView {
    pub(crate) async fn of(st: &AppState, org: &str, size: u64) -> Result<Option<InstallationProofView>, ApiError> {
        let p = crate::work::tiles::installation_proof(
            &st.store,
            st.config.witness.as_ref().map(|w| &*w.policy),
            org,
            size,
        )
        .await?;
        Ok(p.map(|p| InstallationProofView {
            index: p.index,
            size: p.checkpoint.size,
            proof: b64_all(&p.proof),
            checkpoint: p.checkpoint.note,
        }))
    }
}

/// The consistency proof between the trees of `from` and `to` entries (RFC 9162).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConsistencyProof {
    from: u64,
    to: u64,
    /// Base64 SHA-256 hashes.
    proof: Vec<String>,
}

pub(super) fn b64_all(hashes: &[trail_core::merkle::Hash]) -> Vec<String> {
    use base64::Engine;
    hashes.iter().map(|h| base64::engine::general_purpose::STANDARD.encode(h)).collect()
}

/// The organization whose log a proof request is about (see `Caller::log_org`).
fn log_org(caller: &Caller, pairs: &[(String, String)]) -> Result<String, ApiError> {
    caller.log_org(params::org(pairs))
}

async fn latest(st: &AppState, org: &str) -> Result<trail_store::SignedCheckpoint, ApiError> {
    st.store.checkpoint(org, None).await?.ok_or_else(|| {
        ApiError::NotFound("no checkpoint yet: the log is empty or was just written; retry in a second".into())
    })
}

#[utoipa::path(
    get, path = "/api/v1/checkpoint", tag = "proofs",
    params(crate::api::doc::CheckpointParams),
    responses((status = 200, description = "The signed checkpoint (a C2SP signed note)", body = String, content_type = "text/plain"), crate::api::doc::Errors)
)]
pub(super) async fn checkpoint(
    State(st): State<AppState>,
    caller: Caller,
    QueryPairs(pairs): QueryPairs,
) -> Result<Response, ApiError> {
    only(&pairs, &["org", "size", "format"])?;
    let tlog_proof = match params::get(&pairs, "format") {
        None | Some("note") => false,
        Some("tlog-proof") => true,
        Some(_) => return Err(ApiError::field("format", "must be note or tlog-proof")),
    };
    // A checkpoint carries no event content: whoever reads the log's tiles reads it.
    let org = params::org(&pairs).map_or_else(|| caller.org.clone(), str::to_string);
    caller.tree_org(&org)?;
    let cp = match number(&pairs, "size")? {
        Some(size) => st
            .store
            .checkpoint(&org, Some(size))
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no checkpoint of size {size}")))?,
        None => latest(&st, &org).await?,
    };
    if tlog_proof {
        let size = cp.size;
        let text = crate::work::tiles::checkpoint_proof(&st, &org, cp).await?.ok_or_else(|| {
            ApiError::NotFound(format!(
                "the checkpoint of size {size} is not in the installation log yet (appended within about a second)"
            ))
        })?;
        let name = format!("attachment; filename={org}-checkpoint-{size}.tlog-proof");
        return Ok((
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8".to_string()), (header::CONTENT_DISPOSITION, name)],
            text,
        )
            .into_response());
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], cp.note).into_response())
}

#[utoipa::path(
    get, path = "/api/v1/proof/inclusion", tag = "proofs",
    params(crate::api::doc::InclusionParams),
    responses((status = 200, description = "The inclusion proof (with `format=tlog-proof`, a C2SP tlog-proof file, text/plain)", body = InclusionProof), crate::api::doc::Errors)
)]
pub(super) async fn inclusion(
    State(st): State<AppState>,
    caller: Caller,
    QueryPairs(pairs): QueryPairs,
) -> Result<Response, ApiError> {
    only(&pairs, &["org", "index", "id", "size", "format"])?;
    let tlog_proof = match params::get(&pairs, "format") {
        None | Some("json") => false,
        Some("tlog-proof") => true,
        Some(_) => return Err(ApiError::field("format", "must be json or tlog-proof")),
    };
    let org = log_org(&caller, &pairs)?;
    let scope = caller.read_scope()?;
    let index = match (number(&pairs, "index")?, params::get(&pairs, "id")) {
        (Some(i), None) => i,
        (None, Some(id)) => {
            let id = Uuid::parse_str(id).map_err(|_| ApiError::field("id", "must be an event id (a UUID)"))?;
            let scope = trail_store::Scope { org: Some(org.clone()), ..scope.clone() };
            let leaf = st.store.get(scope, id).await?.ok_or_else(|| ApiError::NotFound(format!("no event {id}")))?;
            Event::from_leaf(&leaf).map_err(|e| ApiError::Internal(e.to_string()))?.seq
        }
        _ => return Err(ApiError::field("index", "give exactly one of index or id")),
    };
    let size = match number(&pairs, "size")? {
        Some(s) => s,
        None => {
            let size = latest(&st, &org).await?.size;
            if index >= size {
                let m = format!(
                    "entry {index} is not covered by a signed checkpoint yet (the latest covers {size} entries); \
                     one follows an append within about a second: ask again"
                );
                return Err(ApiError::field("index", m));
            }
            size
        }
    };
    let mut entry = None;
    if index < size {
        // An entry the caller may not see has no proof for it either. Archived entries
        // keep their proofs: their bytes are read from the archive.
        let rows = trail_store::archive::scan_merged(&*st.store, st.archive.as_deref(), &org, index, 1).await?;
        entry = rows.into_iter().find(|(s, _)| *s == index).map(|(_, l)| l);
        let event = entry.as_ref().and_then(|l| Event::from_leaf(l).ok());
        if !event.is_some_and(|e| scope.allows(&e.org, e.category())) {
            return Err(ApiError::NotFound(format!("no entry {index}")));
        }
    }
    let proof = st.store.inclusion_proof(&org, index, size).await?;
    if tlog_proof {
        let cp = st.store.checkpoint(&org, Some(size)).await?.ok_or_else(|| {
            ApiError::NotFound(format!("no signed checkpoint of size {size}: omit size for the newest"))
        })?;
        let text = trail_core::tlog_proof::TlogProof { extra: entry, index, proof, checkpoint: cp.note }.to_text();
        let name = format!("attachment; filename={org}-{index}.tlog-proof");
        return Ok((
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8".to_string()), (header::CONTENT_DISPOSITION, name)],
            text,
        )
            .into_response());
    }
    let installation = InstallationProofView::of(&st, &org, size).await?;
    Ok(Json(InclusionProof { index, size, proof: b64_all(&proof), installation }).into_response())
}

#[utoipa::path(
    get, path = "/api/v1/proof/consistency", tag = "proofs",
    params(crate::api::doc::ConsistencyParams),
    responses((status = 200, description = "The consistency proof", body = ConsistencyProof), crate::api::doc::Errors)
)]
pub(super) async fn consistency(
    State(st): State<AppState>,
    caller: Caller,
    QueryPairs(pairs): QueryPairs,
) -> Result<Response, ApiError> {
    only(&pairs, &["org", "from", "to"])?;
    let org = log_org(&caller, &pairs)?;
    let from = number(&pairs, "from")?.ok_or_else(|| ApiError::field("from", "is required"))?;
    let to = match number(&pairs, "to")? {
        Some(t) => t,
        None => latest(&st, &org).await?.size,
    };
    let proof = st.store.consistency_proof(&org, from, to).await?;
    Ok(Json(ConsistencyProof { from, to, proof: b64_all(&proof) }).into_response())
}
