//! API-key authentication. Keys look like `trail_<scope>_<32 random characters>`; only
//! their SHA-256 is stored. Recently seen keys are cached for a few seconds.

use std::{
    collections::HashMap,
    sync::RwLock,
    time::{Duration, Instant},
};

use axum::http::{header, HeaderMap};
use rand::{distr::Alphanumeric, Rng};
use sha2::{Digest, Sha256};
use trail_store::{ApiKey, KeyScope, Scope, Store};

use crate::error::ApiError;

/// How long a looked-up key is trusted before it is read again (so a revocation takes
/// effect within this time).
const KEY_TTL: Duration = Duration::from_secs(10);

#[derive(Default)]
pub(crate) struct KeyCache {
    keys: RwLock<HashMap<[u8; 32], (ApiKey, Instant)>>,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key: ApiKey,
}

impl Caller {
    /// The organizations this caller may read, or a 403.
    pub fn read_scope(&self) -> Result<Scope, ApiError> {
        match self.key.scope {
            KeyScope::Platform => Ok(Scope::All),
            KeyScope::Read | KeyScope::Admin => Ok(Scope::Org(self.key.org.clone())),
            KeyScope::Ingest => Err(ApiError::Forbidden("an ingest key may only send events".into())),
        }
    }

    /// The organization this caller writes into, or a 403.
    pub fn write_org(&self) -> Result<&str, ApiError> {
        match self.key.scope {
            KeyScope::Ingest | KeyScope::Admin | KeyScope::Platform => Ok(&self.key.org),
            KeyScope::Read => Err(ApiError::Forbidden("a read key cannot send events".into())),
        }
    }
}

/// Makes a new random key for a scope.
pub fn generate_key(scope: KeyScope) -> String {
    let tag = match scope {
        KeyScope::Ingest => "in",
        KeyScope::Read => "rd",
        KeyScope::Admin => "ad",
        KeyScope::Platform => "pl",
    };
    let random: String = rand::rng().sample_iter(&Alphanumeric).take(32).map(char::from).collect();
    format!("trail_{tag}_{random}")
}

pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The displayable start of a key.
pub fn key_prefix(key: &str) -> String {
    key.chars().take(12).collect()
}

pub(crate) async fn authenticate(headers: &HeaderMap, store: &dyn Store, cache: &KeyCache) -> Result<Caller, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthorized("send an API key as 'Authorization: Bearer KEY'".into()))?;
    let value = value.to_str().map_err(|_| ApiError::Unauthorized("the Authorization header is not text".into()))?;
    let key = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::Unauthorized("the Authorization header must be 'Bearer KEY'".into()))?;
    let hash = hash_key(key);
    if let Some((k, at)) = cache.keys.read().ok().and_then(|m| m.get(&hash).cloned()) {
        if at.elapsed() < KEY_TTL {
            return Caller::checked(k);
        }
    }
    let found = store.find_key(hash).await?;
    let k = found.ok_or_else(|| ApiError::Unauthorized("unknown API key".into()))?;
    if let Ok(mut m) = cache.keys.write() {
        if m.len() > 10_000 {
            m.clear();
        }
        m.insert(hash, (k.clone(), Instant::now()));
    }
    Caller::checked(k)
}

impl Caller {
    fn checked(key: ApiKey) -> Result<Caller, ApiError> {
        if key.revoked {
            return Err(ApiError::Unauthorized("this API key was revoked".into()));
        }
        Ok(Caller { key })
    }
}
