//! `/log/{org}/…`: each organization's log as C2SP tiles (`tlog-tiles`), for auditors
//! and mirrors that check it with their own code. The checkpoint and hash tiles carry
//! no event content: an `audit` key, any caller who may view the organization's log,
//! or anyone when `[transparency] public = true` may read them. Entry bundles are the
//! events themselves: they need a view of every category, as exports do, and reading
//! them is recorded as `audit:view` (once per client per minute, not per tile).

use axum::{
    extract::{Path, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};
use trail_core::tiles::{Tile, TileKind};
use trail_store::Categories;

use crate::{
    auth::Caller,
    error::ApiError,
    work::tiles::{self, Log},
    AppState,
};

/// What a tile is immutable for: a year, as the spec suggests.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The same for entry bundles, which hold events: kept by the reader, never by a
/// shared cache that would hand them to whoever asks.
const IMMUTABLE_PRIVATE: &str = "private, max-age=31536000, immutable";

/// Who may read a log's checkpoint and hash tiles: an organization's, or the
/// installation log (whose entries are hashes too), which anyone who may read some
/// organization's tree may read.
fn may_read_tree(st: &AppState, caller: Result<Caller, ApiError>, log: Log<'_>) -> Result<(), ApiError> {
    if st.config.transparency_public {
        return Ok(());
    }
    let caller = caller?;
    match log {
        Log::Org(org) => caller.tree_org(org),
        Log::Installation => caller.tree_org(&caller.org),
    }
}

pub(super) async fn checkpoint(
    State(st): State<AppState>,
    caller: Result<Caller, ApiError>,
    Path(org): Path<String>,
) -> Result<Response, ApiError> {
    let log = Log::named(&org);
    may_read_tree(&st, caller, log)?;
    let cp = tiles::checkpoint(&st, log).await?;
    let headers = [
        (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        // It changes every second or so.
        (header::CACHE_CONTROL, "max-age=2"),
    ];
    Ok((headers, cp.note).into_response())
}

pub(super) async fn tile(
    State(st): State<AppState>,
    caller: Result<Caller, ApiError>,
    Path((org, path)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let tile = Tile::parse(&path).map_err(|m| ApiError::field("tile", m))?;
    let log = Log::named(&org);
    match (tile.kind, log) {
        (TileKind::Hashes { .. }, _) | (TileKind::Entries, Log::Installation) => may_read_tree(&st, caller, log)?,
        (TileKind::Entries, Log::Org(_)) => {
            let caller = caller?;
            let named = caller.log_org(Some(&org))?;
            if caller.read_scope()?.categories != Categories::All {
                return Err(ApiError::Forbidden(
                    "entry bundles hold events of every category; your role may not view them all".into(),
                ));
            }
            crate::auth::view(&st, &caller, "tiles", String::new(), Some(named));
        }
    }
    let body = tiles::tile(&st, log, tile).await?;
    let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&body)[..16]));
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    let events = tile.kind == TileKind::Entries && log != Log::Installation;
    let cache = if events { IMMUTABLE_PRIVATE } else { IMMUTABLE };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    Ok(resp)
}
