//! Keyset pagination cursors: an opaque, URL-safe token holding the sort and the last
//! row's sort key, so the next page starts right after it without an OFFSET scan.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde_json::{json, Value};

use crate::{error::FieldError, filter::Sort};

/// Position after which the next page starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    /// The sort the cursor was made for; a cursor used with another sort is rejected.
    pub sort: String,
    /// Value of the sort column in the last row (`Null` when the row had none).
    pub value: Value,
    /// The last row's timestamp in microseconds: the first tie-breaker.
    pub ts: i64,
    /// The last row's storage position: the final tie-breaker, unique per row.
    pub pos: i64,
}

impl Cursor {
    pub fn encode(&self) -> String {
        let v = json!([1, self.sort, self.value, self.ts, self.pos]);
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    /// Decodes a cursor and checks it belongs to `sort`.
    pub fn decode(s: &str, sort: Sort) -> Result<Cursor, FieldError> {
        let bad = || {
            FieldError::new("cursor", "is not a cursor returned by this API")
                .with_code(crate::error::FieldCode::InvalidCursor)
        };
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        let a = v.as_array().filter(|a| a.len() == 5 && a[0] == json!(1)).ok_or_else(bad)?;
        let cursor = Cursor {
            sort: a[1].as_str().ok_or_else(bad)?.to_string(),
            value: a[2].clone(),
            ts: a[3].as_i64().ok_or_else(bad)?,
            pos: a[4].as_i64().ok_or_else(bad)?,
        };
        if !(cursor.value.is_null() || cursor.value.is_string() || cursor.value.is_i64()) {
            return Err(bad());
        }
        if cursor.sort != sort.render() {
            return Err(FieldError::new("cursor", "was made for another sort order")
                .with_code(crate::error::FieldCode::InvalidCursor));
        }
        Ok(cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let sort = Sort::default();
        let c = Cursor { sort: sort.render(), value: json!("x"), ts: 5, pos: 9 };
        assert_eq!(Cursor::decode(&c.encode(), sort).unwrap(), c);
        for bad in ["", "!!", "bm90IGpzb24", &URL_SAFE_NO_PAD.encode("[1,\"-timestamp\",{},1,2]")] {
            assert_eq!(Cursor::decode(bad, sort).unwrap_err().field, "cursor");
        }
        let other = Sort::parse("email").unwrap();
        assert!(Cursor::decode(&c.encode(), other).is_err());
    }
}
