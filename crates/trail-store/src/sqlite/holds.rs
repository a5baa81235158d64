//! Legal holds on SQLite (see the shared `holds`).

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};
use trail_core::Timestamp;

use super::{known_org, SqliteStore};
use crate::{
    holds::{LegalHold, NewHold},
    Holds, StoreError,
};

const SELECT: &str = "SELECT h.id, o.slug, h.query, h.reason, h.placed_by, h.placed_at, h.released_by, \
                      h.released_at, h.release_reason FROM legal_holds h JOIN orgs o ON o.id = h.org_id";

fn hold(r: &rusqlite::Row<'_>) -> rusqlite::Result<LegalHold> {
    Ok(LegalHold {
        id: r.get(0)?,
        org: r.get(1)?,
        query: r.get(2)?,
        reason: r.get(3)?,
        placed_by: r.get(4)?,
        placed_at: Timestamp(r.get(5)?),
        released_by: r.get(6)?,
        released_at: r.get::<_, Option<i64>>(7)?.map(Timestamp),
        release_reason: r.get(8)?,
    })
}

#[async_trait]
impl Holds for SqliteStore {
    async fn place_hold(&self, h: NewHold) -> Result<LegalHold, StoreError> {
        self.write(move |c| {
            let org_id = known_org(c, &h.org)?;
            c.execute(
                "INSERT INTO legal_holds (org_id, query, reason, placed_by, placed_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![org_id, h.query, h.reason, h.placed_by, h.at.0],
            )?;
            let id = c.last_insert_rowid();
            Ok(c.query_row(&format!("{SELECT} WHERE h.id = ?1"), [id], hold)?)
        })
        .await
    }

    async fn release_hold(
        &self,
        org: &str,
        id: i64,
        by: &str,
        reason: &str,
        at: Timestamp,
    ) -> Result<Option<LegalHold>, StoreError> {
        let (org, by, reason) = (org.to_string(), by.to_string(), reason.to_string());
        self.write(move |c| {
            let org_id = known_org(c, &org)?;
            let n = c.execute(
                "UPDATE legal_holds SET released_by = ?3, released_at = ?4, release_reason = ?5 \
                 WHERE id = ?1 AND org_id = ?2 AND released_at IS NULL",
                params![id, org_id, by, at.0, reason],
            )?;
            if n == 0 {
                return Ok(None);
            }
            Ok(c.query_row(&format!("{SELECT} WHERE h.id = ?1"), [id], hold).optional()?)
        })
        .await
    }

    async fn holds(&self, org: Option<&str>) -> Result<Vec<LegalHold>, StoreError> {
        let org = org.map(str::to_string);
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!("{SELECT} WHERE ?1 IS NULL OR o.slug = ?1 ORDER BY h.id DESC"))?;
            let rows = stmt.query_map([org], hold)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }
}
