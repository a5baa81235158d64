//! The extractors every handler takes its input through, so that each one is read and
//! refused the same way: `JsonBody<T>` (a JSON object body; a 400 naming the field at
//! fault, found by `serde_path_to_error` rather than read out of serde's message;
//! 413 over the body limit), `Managed` and `Reading` (the caller and the organization
//! it manages or reads, as the request names it), `OrgParam` (the organization a request names with
//! `?org=`) and `QueryPairs` (every parameter as sent); a malformed query string is a
//! 400 naming `query`.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Query, Request},
    http::{request::Parts, StatusCode},
};
use serde::de::DeserializeOwned;
use trail_core::{FieldCode, FieldError};

use super::params;
use crate::{auth::Caller, error::ApiError, AppState};

/// A JSON object body read into `T`.
pub(crate) struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            let code =
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE { FieldCode::TooLarge } else { FieldCode::InvalidField };
            ApiError::Field(FieldError::new("body", e.body_text()).with_code(code))
        })?;
        parse(&bytes).map(JsonBody)
    }
}

/// Reads `bytes` as a JSON object into `T`: a syntax error, or a body that is not an
/// object, names `body`; anything else names the path of the value at fault (`name`,
/// `recipients[1]`), and a missing field of the body its name (`password`).
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let starts = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if starts.is_some_and(|b| *b != b'{') {
        let shape = serde_json::from_slice::<serde::de::IgnoredAny>(bytes);
        return Err(match shape {
            Ok(_) => ApiError::field("body", "must be a JSON object"),
            Err(e) => ApiError::field("body", format!("invalid JSON: {e}")),
        });
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let inner = e.inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::field("body", format!("invalid JSON: {inner}"));
        }
        let path = e.path().to_string();
        let field = match path.as_str() {
            "." => missing::<T>(inner).unwrap_or("body"),
            p => p,
        };
        ApiError::field(field, inner.to_string())
    })?;
    de.end().map_err(|e| ApiError::field("body", format!("invalid JSON: {e}")))?;
    Ok(value)
}

/// The field of `T` whose absence `error` reports: the one whose error, as serde makes
/// it for a missing field at that position, is `error` (the path of a missing field
/// is its object's, so serde_path_to_error cannot name it).
fn missing<T: DeserializeOwned>(error: &serde_json::Error) -> Option<&'static str> {
    let said = error.to_string();
    fields_of::<T>().iter().copied().find(|f| {
        let made = <serde_json::Error as serde::de::Error>::missing_field(f);
        said == format!("{made} at line {} column {}", error.line(), error.column())
    })
}

/// The fields `T` is deserialized with, as its `Deserialize` names them (none for a
/// type that is not a struct).
fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{Error, Visitor};
    struct Probe<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Probe<'_> {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(Error::custom("fields read"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
            unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

/// The query string's pairs, in order, as sent.
pub(crate) struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let q = Query::<Vec<(String, String)>>::from_request_parts(parts, state).await;
        params::pairs(q).map(QueryPairs)
    }
}

/// The caller and the organization it may manage that the request names (`?org=`, or
/// the caller's own): the rejection of `Caller`, then of the query string, then 403 or
/// 404 when it may not manage it.
pub(crate) struct Managed {
    pub caller: Caller,
    pub org: String,
}

impl FromRequestParts<AppState> for Managed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, st).await?;
        let OrgParam(named) = OrgParam::from_request_parts(parts, st).await?;
        let org = caller.managed_org(named.as_deref())?;
        Ok(Managed { caller, org })
    }
}

/// The caller and the organization whose log it may read that the request names.
pub(crate) struct Reading {
    pub caller: Caller,
    pub org: String,
}

impl FromRequestParts<AppState> for Reading {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, st).await?;
        let OrgParam(named) = OrgParam::from_request_parts(parts, st).await?;
        let org = caller.log_org(named.as_deref())?;
        Ok(Reading { caller, org })
    }
}

/// The organization a request names (`?org=`), if it names one.
pub(crate) struct OrgParam(pub Option<String>);

impl OrgParam {
    pub(crate) fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for OrgParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let QueryPairs(pairs) = QueryPairs::from_request_parts(parts, state).await?;
        Ok(OrgParam(params::org(&pairs).map(str::to_string)))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        #[serde(default)]
        recipients: Vec<String>,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        n: u32,
    }

    fn field(text: &str) -> String {
        match parse::<Body>(text.as_bytes()) {
            Err(ApiError::Field(e)) => e.field,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn the_field_at_fault_is_named() {
        assert!(parse::<Body>(br#"{"name":"x","recipients":["a"]}"#).is_ok());
        assert_eq!(field(r#"{"name":1}"#), "name");
        assert_eq!(field(r#"{"name":"x","recipients":["a",2]}"#), "recipients[1]");
        assert_eq!(field(r#"{"name":"x","inner":{"n":-1}}"#), "inner.n");
        assert_eq!(field(r#"{"name":"x","nope":1}"#), "nope");
        assert_eq!(field(r#"{"recipients":[]}"#), "name");
        assert_eq!(fields_of::<Body>(), ["name", "recipients", "inner"]);
        assert_eq!(field(r#"[1]"#), "body");
        assert_eq!(field(r#"{"name":"x""#), "body");
        assert_eq!(field(r#"{"name":"x"} 1"#), "body");
        assert_eq!(field(""), "body");
    }
}
