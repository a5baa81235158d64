//! API keys over HTTP: list, create (shown once), revoke.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use trail_store::{KeyScope, NewKey};

use super::extract::{JsonBody, OrgParam};
use crate::{
    auth::Caller,
    error::ApiError,
    work::{credentials::hash_key, selfaudit::record},
    AppState,
};

/// An API key as listings show it (never the key itself).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct KeyView {
    id: i64,
    org: String,
    /// ingest, read, admin, platform, personal or audit (checkpoints and hash tiles of `/log/{org}/…` only).
    scope: String,
    /// The key's first characters, to recognise it.
    prefix: String,
    label: String,
    /// The user a personal token belongs to.
    user_id: Option<i64>,
    revoked: bool,
    #[schema(format = DateTime)]
    created_at: String,
}

impl From<&trail_store::ApiKey> for KeyView {
    fn from(k: &trail_store::ApiKey) -> KeyView {
        KeyView {
            id: k.id,
            org: k.org.clone(),
            scope: k.scope.as_str().into(),
            prefix: k.prefix.clone(),
            label: k.label.clone(),
            user_id: k.user_id,
            revoked: k.revoked,
            created_at: trail_core::Timestamp(k.created_at).to_rfc3339(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct KeyList {
    keys: Vec<KeyView>,
}

/// A new key: shown once, here.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct NewKeyAnswer {
    id: i64,
    key: String,
    scope: String,
    org: String,
    prefix: String,
}

#[utoipa::path(
    get, path = "/api/v1/keys", tag = "keys",
    params(crate::api::doc::OrgParam),
    responses((status = 200, description = "Keys (administrators: the organization's; users: their personal tokens)", body = KeyList), crate::api::doc::Errors)
)]
pub(super) async fn list_keys(State(st): State<AppState>, caller: Caller, org: OrgParam) -> Result<Response, ApiError> {
    let keys = if caller.perms.manage {
        let org = match org.as_deref() {
            None if caller.perms.platform => None,
            named => Some(caller.managed_org(named)?),
        };
        st.store.list_keys(org.as_deref()).await?
    } else {
        // Everyone else sees their own personal tokens.
        let id = caller.user_id().ok_or_else(|| ApiError::Forbidden("managing keys needs an administrator".into()))?;
        st.store.list_keys(Some(&caller.org)).await?.into_iter().filter(|k| k.user_id == Some(id)).collect()
    };
    Ok(Json(KeyList { keys: keys.iter().map(KeyView::from).collect() }).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyBody {
    scope: String,
    label: Option<String>,
    org: Option<String>,
}

#[utoipa::path(
    post, path = "/api/v1/keys", tag = "keys",
    request_body = KeyBody,
    responses((status = 201, description = "The key, shown only now", body = NewKeyAnswer), crate::api::doc::Errors)
)]
pub(super) async fn create_key(
    State(st): State<AppState>,
    caller: Caller,
    JsonBody(b): JsonBody<KeyBody>,
) -> Result<Response, ApiError> {
    // A one-time password is for changing it, not for minting a lasting credential.
    caller.ready()?;
    let scope = KeyScope::parse(&b.scope)
        .ok_or_else(|| ApiError::field("scope", "must be ingest, read, admin, platform, personal or audit"))?;
    let label = b.label.unwrap_or_default();
    if label.len() > 200 {
        return Err(ApiError::field("label", "must be at most 200 characters"));
    }
    let (org, user_id) = if scope == KeyScope::Personal {
        if b.org.is_some() {
            return Err(ApiError::field("org", "a personal token belongs to your own organization"));
        }
        let id = caller
            .user_id()
            .ok_or_else(|| ApiError::field("scope", "only a logged-in user can have a personal token"))?;
        (caller.org.clone(), Some(id))
    } else {
        let org = caller.managed_org(b.org.as_deref())?;
        if scope == KeyScope::Platform && !caller.perms.platform {
            return Err(ApiError::Forbidden("only platform administrators may create platform keys".into()));
        }
        (org, None)
    };
    let key = crate::work::credentials::generate_key(scope);
    let prefix = crate::work::credentials::key_prefix(&key);
    let id = st
        .store
        .create_key(NewKey {
            org: org.clone(),
            scope,
            hash: hash_key(&key),
            prefix: prefix.clone(),
            user_id,
            label: label.clone(),
        })
        .await?;
    record(
        &st,
        caller
            .record("api_key:create")
            .resource("api_key", id, &prefix)
            .details(json!({"scope": scope.as_str(), "org": org, "label": label})),
    )
    .await;
    Ok((StatusCode::CREATED, Json(NewKeyAnswer { id, key, scope: scope.as_str().into(), org, prefix })).into_response())
}

#[utoipa::path(
    delete, path = "/api/v1/keys/{id}", tag = "keys",
    params(("id" = i64, Path, description = "The key's id")),
    responses((status = 204, description = "Revoked"), crate::api::doc::Errors)
)]
pub(super) async fn revoke_key(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::field("id", "must be a key id (an integer)"))?;
    let not_found = || ApiError::NotFound(format!("no key {id}"));
    let done = if caller.perms.manage && !caller.must_change {
        let org = if caller.perms.platform { None } else { Some(caller.org.as_str()) };
        st.store.revoke_key(org, id).await?
    } else {
        let uid = caller.user_id().ok_or_else(|| ApiError::Forbidden("managing keys needs an administrator".into()))?;
        let own =
            st.store.list_keys(Some(&caller.org)).await?.into_iter().any(|k| k.id == id && k.user_id == Some(uid));
        own && st.store.revoke_key(Some(&caller.org), id).await?
    };
    if !done {
        return Err(not_found());
    }
    st.keys.clear();
    st.live.credentials_changed();
    record(&st, caller.record("api_key:revoke").resource("api_key", id, "")).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
