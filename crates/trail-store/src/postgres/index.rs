//! The search document of an event in PostgreSQL: the distinct words of its search
//! text as a `tsvector`, made here rather than by `to_tsvector` in the database.

use tokio_postgres::types::ToSql;
use trail_core::Event;

use crate::search_doc::{search_text, search_words};

/// Longest lexeme a `tsvector` holds (bytes); longer words are not indexed, as
/// `to_tsvector` does.
pub(super) const MAX_LEXEME: usize = 2047;

/// The search document of an event: the distinct words of its search text, sorted by
/// their bytes (the order PostgreSQL keeps lexemes in). Made here rather than by
/// `to_tsvector` in the database, which cost the insert a fifth of its time; the `q`
/// filter splits its terms the same way.
pub fn doc_words(ev: &Event) -> Vec<String> {
    let mut text = String::new();
    search_text(ev, &mut text);
    let mut words: Vec<String> = search_words(&text).filter(|w| w.len() <= MAX_LEXEME).collect();
    words.sort_unstable();
    words.dedup();
    // A tsvector's lexemes must take less than 1 MiB in all: keep well under.
    let mut total = 0;
    words.retain(|w| {
        total += w.len() + 1;
        total < 1 << 19
    });
    words
}

/// A `tsvector` in PostgreSQL's binary form: distinct lexemes in byte order, without
/// positions (`q` matches words and prefixes, and checks phrases on the stored event).
#[derive(Debug)]
pub(super) struct TsVector(pub(super) Vec<String>);

impl ToSql for TsVector {
    fn to_sql(
        &self,
        _: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use bytes::BufMut;
        out.put_i32(i32::try_from(self.0.len())?);
        for w in &self.0 {
            out.put_slice(w.as_bytes());
            out.put_u8(0);
            out.put_u16(0);
        }
        Ok(tokio_postgres::types::IsNull::No)
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        ty.name() == "tsvector"
    }

    tokio_postgres::types::to_sql_checked!();
}
