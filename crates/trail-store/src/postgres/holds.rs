//! Legal holds on PostgreSQL (see the shared `holds`).

use async_trait::async_trait;
use trail_core::Timestamp;

use super::{org_id, pg, PgStore};
use crate::{
    holds::{LegalHold, NewHold},
    Holds, StoreError,
};

const SELECT: &str = "SELECT h.id, o.slug, h.query, h.reason, h.placed_by, h.placed_at, h.released_by, \
                      h.released_at, h.release_reason FROM legal_holds h JOIN orgs o ON o.id = h.org_id";

fn hold(r: &tokio_postgres::Row) -> LegalHold {
    LegalHold {
        id: r.get(0),
        org: r.get(1),
        query: r.get(2),
        reason: r.get(3),
        placed_by: r.get(4),
        placed_at: Timestamp(r.get(5)),
        released_by: r.get(6),
        released_at: r.get::<_, Option<i64>>(7).map(Timestamp),
        release_reason: r.get(8),
    }
}

#[async_trait]
impl Holds for PgStore {
    async fn place_hold(&self, h: NewHold) -> Result<LegalHold, StoreError> {
        let c = self.client().await?;
        let org = org_id(&c, &h.org).await?;
        let id: i64 = c
            .query_one(
                "INSERT INTO legal_holds (org_id, query, reason, placed_by, placed_at) VALUES ($1, $2, $3, $4, $5) \
                 RETURNING id",
                &[&org, &h.query, &h.reason, &h.placed_by, &h.at.0],
            )
            .await
            .map_err(pg)?
            .get(0);
        let row = c.query_one(&format!("{SELECT} WHERE h.id = $1"), &[&id]).await.map_err(pg)?;
        Ok(hold(&row))
    }

    async fn release_hold(
        &self,
        org: &str,
        id: i64,
        by: &str,
        reason: &str,
        at: Timestamp,
    ) -> Result<Option<LegalHold>, StoreError> {
        let c = self.client().await?;
        let org = org_id(&c, org).await?;
        let n = c
            .execute(
                "UPDATE legal_holds SET released_by = $3, released_at = $4, release_reason = $5 \
                 WHERE id = $1 AND org_id = $2 AND released_at IS NULL",
                &[&id, &org, &by, &at.0, &reason],
            )
            .await
            .map_err(pg)?;
        if n == 0 {
            return Ok(None);
        }
        let row = c.query_opt(&format!("{SELECT} WHERE h.id = $1"), &[&id]).await.map_err(pg)?;
        Ok(row.as_ref().map(hold))
    }

    async fn holds(&self, org: Option<&str>) -> Result<Vec<LegalHold>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(&format!("{SELECT} WHERE $1::TEXT IS NULL OR o.slug = $1 ORDER BY h.id DESC"), &[&org])
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(hold).collect())
    }
}
