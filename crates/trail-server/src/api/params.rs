//! Query-string parameters, read one way by every handler: the pairs as sent (a
//! malformed query string is a 400 naming `query`), one parameter by name, a
//! non-negative number, the organization named, and the refusal of an unknown one.

use axum::extract::{rejection::QueryRejection, Query};
use trail_core::FieldError;

use crate::error::ApiError;

/// The query string's pairs, as an extractor that does not reject by itself.
pub(crate) type Pairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// The pairs, or a 400 naming `query` when the query string is malformed (what
/// `extract::QueryPairs` and `extract::OrgParam` answer).
pub(crate) fn pairs(q: Pairs) -> Result<Vec<(String, String)>, ApiError> {
    q.map(|Query(p)| p).map_err(|e| ApiError::field("query", format!("malformed query string ({e})")))
}

/// The first value of `key`.
pub(crate) fn get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The organization a request names (`org`), if it names one.
pub(crate) fn org(pairs: &[(String, String)]) -> Option<&str> {
    get(pairs, "org")
}

/// A non-negative integer parameter; a 400 naming it when it is not one.
pub(crate) fn number(pairs: &[(String, String)], key: &str) -> Result<Option<u64>, ApiError> {
    get(pairs, key)
        .map(|v| v.parse::<u64>().map_err(|_| ApiError::field(key, "must be a non-negative integer")))
        .transpose()
}

/// Refuses a parameter that is not in `known`, naming it and what is known.
pub(crate) fn only(pairs: &[(String, String)], known: &[&str]) -> Result<(), ApiError> {
    match pairs.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        Some((k, _)) => Err(ApiError::Field(
            FieldError::new(k.as_str(), format!("unknown parameter; known: {}", known.join(", ")))
                .with_code(trail_core::FieldCode::UnknownFilter),
        )),
        None => Ok(()),
    }
}
