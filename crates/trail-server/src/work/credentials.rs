//! Credentials: API keys (made, hashed, shown once) and passwords (Argon2 hashes,
//! one-time passwords).

use argon2::{
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};
use rand::{distr::Alphanumeric, Rng};
use sha2::{Digest, Sha256};
use trail_store::{KeyScope, Store};

use super::WorkError;

/// Makes a new random key for a scope.
pub fn generate_key(scope: KeyScope) -> String {
    let tag = match scope {
        KeyScope::Ingest => "in",
        KeyScope::Read => "rd",
        KeyScope::Admin => "ad",
        KeyScope::Platform => "pl",
        KeyScope::Personal => "pt",
        KeyScope::Audit => "au",
    };
    format!("trail_{tag}_{}", random_token(32))
}

/// Creates a key of `scope` for `org`; returns the key (shown once) and its id.
pub async fn create_api_key(
    store: &dyn Store,
    org: &str,
    scope: KeyScope,
    label: &str,
) -> Result<(String, i64), trail_store::StoreError> {
    let key = generate_key(scope);
    let new = trail_store::NewKey {
        org: org.into(),
        scope,
        hash: hash_key(&key),
        prefix: key_prefix(&key),
        user_id: None,
        label: label.into(),
    };
    let id = store.create_key(new).await?;
    Ok((key, id))
}

/// A random alphanumeric string.
pub fn random_token(len: usize) -> String {
    rand::rng().sample_iter(&Alphanumeric).take(len).map(char::from).collect()
}

pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The displayable start of a key.
pub fn key_prefix(key: &str) -> String {
    key.chars().take(12).collect()
}

/// Hashes a password with argon2id (the crate's default, OWASP-recommended cost).
pub fn hash_password(password: &str) -> Result<String, WorkError> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|e| WorkError::Internal(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| WorkError::Internal(e.to_string()))
}

pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// Hashing costs tens of milliseconds: off the async workers.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, WorkError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| WorkError::Internal(e.to_string()))
}

/// A one-time password for new users and resets.
pub fn one_time_password() -> String {
    random_token(20)
}
