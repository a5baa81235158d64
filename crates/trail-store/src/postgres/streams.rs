//! Streams in PostgreSQL: settings, cursors moved only from where a driver's step
//! started (by the server holding the lease), and leases taken in one `UPDATE`, whose
//! row locks make of several servers one the holder of each stream.

use async_trait::async_trait;
use tokio_postgres::{types::ToSql, Row};
use trail_core::Timestamp;

use super::{named, org_id, pg, PgStore};
use crate::{
    alerts::{json_list, to_json},
    streams::{headers_from, headers_json, Progress, Stream, StreamState},
    StoreError, Streaming,
};

const SELECT: &str = "SELECT s.id, o.slug, s.name, s.kind, s.url, s.address, s.tls, s.format, s.query, s.headers, \
    s.secrets, s.state, s.cursor, s.last_seq, s.sent, s.failed, s.last_error, s.failing_since, s.alerted, \
    s.last_sent_at, s.owner, s.lease_until, s.created_at FROM streams s JOIN orgs o ON o.id = s.org_id";

fn stream(r: &Row) -> Result<Stream, StoreError> {
    Ok(Stream {
        id: r.get(0),
        org: r.get(1),
        name: r.get(2),
        kind: named(r, 3)?,
        url: r.get(4),
        address: r.get(5),
        tls: r.get(6),
        format: named(r, 7)?,
        query: r.get(8),
        headers: headers_from(r.get(9)),
        secrets: json_list(r.get(10)),
        state: StreamState::parse(r.get(11)),
        cursor: r.get::<_, i64>(12) as u64,
        last_seq: r.get::<_, Option<i64>>(13).map(|v| v as u64),
        sent: r.get::<_, i64>(14) as u64,
        failed: r.get::<_, i64>(15) as u64,
        last_error: r.get(16),
        failing_since: r.get(17),
        alerted: r.get(18),
        last_sent_at: r.get(19),
        owner: r.get(20),
        lease_until: r.get(21),
        created_at: r.get(22),
    })
}

impl PgStore {
    async fn select_streams(&self, cond: &str, p: &[&(dyn ToSql + Sync)]) -> Result<Vec<Stream>, StoreError> {
        let c = self.client().await?;
        let rows = c.query(&format!("{SELECT} WHERE {cond} ORDER BY s.id"), p).await.map_err(pg)?;
        rows.iter().map(stream).collect()
    }
}

#[async_trait]
impl Streaming for PgStore {
    async fn create_stream(&self, s: Stream) -> Result<Stream, StoreError> {
        let c = self.client().await?;
        let org = org_id(&c, &s.org).await?;
        let id: i64 = c
            .query_one(
                "INSERT INTO streams (org_id, name, kind, url, address, tls, format, query, headers, secrets, state, \
                 cursor, sent, failed, alerted, lease_until, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 0, 0, false, 0, $13) RETURNING id",
                &[
                    &org,
                    &s.name,
                    &s.kind.as_str(),
                    &s.url,
                    &s.address,
                    &s.tls,
                    &s.format.as_str(),
                    &s.query,
                    &headers_json(&s.headers),
                    &to_json(&s.secrets),
                    &s.state.as_str(),
                    &(s.cursor as i64),
                    &s.created_at,
                ],
            )
            .await
            .map_err(pg)?
            .get(0);
        drop(c);
        self.select_streams("s.id = $1", &[&id])
            .await?
            .pop()
            .ok_or_else(|| StoreError::Corrupt("stream vanished".into()))
    }

    async fn streams(&self, org: Option<&str>) -> Result<Vec<Stream>, StoreError> {
        match org {
            Some(org) => self.select_streams("o.slug = $1", &[&org]).await,
            None => self.select_streams("true", &[]).await,
        }
    }

    async fn get_stream(&self, org: &str, id: i64) -> Result<Option<Stream>, StoreError> {
        Ok(self.select_streams("o.slug = $1 AND s.id = $2", &[&org, &id]).await?.pop())
    }

    async fn change_stream(&self, s: &Stream, replay: Option<u64>) -> Result<bool, StoreError> {
        let c = self.client().await?;
        let n = c
            .execute(
                "UPDATE streams SET name = $3, url = $4, address = $5, tls = $6, format = $7, query = $8, \
                 headers = $9, secrets = $10, state = $11, last_error = $12, failing_since = $13, alerted = $14, \
                 cursor = COALESCE($15, cursor) WHERE id = $1 AND org_id = (SELECT id FROM orgs WHERE slug = $2)",
                &[
                    &s.id,
                    &s.org,
                    &s.name,
                    &s.url,
                    &s.address,
                    &s.tls,
                    &s.format.as_str(),
                    &s.query,
                    &headers_json(&s.headers),
                    &to_json(&s.secrets),
                    &s.state.as_str(),
                    &s.last_error,
                    &s.failing_since,
                    &s.alerted,
                    &replay.map(|v| v as i64),
                ],
            )
            .await
            .map_err(pg)?;
        Ok(n > 0)
    }

    async fn delete_stream(&self, org: &str, id: i64) -> Result<bool, StoreError> {
        let c = self.client().await?;
        let n = c
            .execute(
                "DELETE FROM streams WHERE id = $1 AND org_id = (SELECT id FROM orgs WHERE slug = $2)",
                &[&id, &org],
            )
            .await
            .map_err(pg)?;
        Ok(n > 0)
    }

    async fn lease_streams(&self, owner: &str, now: Timestamp, until: Timestamp) -> Result<Vec<Stream>, StoreError> {
        let now = now.0;
        let until = until.0;
        let c = self.client().await?;
        c.execute(
            "UPDATE streams SET owner = $1, lease_until = $3 WHERE state = 'active' \
             AND (owner IS NULL OR owner = $1 OR lease_until < $2)",
            &[&owner, &now, &until],
        )
        .await
        .map_err(pg)?;
        drop(c);
        self.select_streams("s.owner = $1 AND s.state = 'active'", &[&owner]).await
    }

    async fn stream_progress(&self, id: i64, owner: &str, from: u64, p: &Progress) -> Result<bool, StoreError> {
        let c = self.client().await?;
        let n = c
            .execute(
                "UPDATE streams SET cursor = $4, last_seq = COALESCE($5, last_seq), sent = sent + $6, \
                 failed = failed + $7, last_error = $8, failing_since = $9, alerted = $10, \
                 state = CASE WHEN $11 THEN 'disabled' ELSE state END, \
                 last_sent_at = CASE WHEN $6 > 0 THEN $12 ELSE last_sent_at END \
                 WHERE id = $1 AND owner = $2 AND cursor = $3",
                &[
                    &id,
                    &owner,
                    &(from as i64),
                    &(p.cursor as i64),
                    &p.last_seq.map(|v| v as i64),
                    &(p.sent as i64),
                    &(p.failed as i64),
                    &p.last_error,
                    &p.failing_since,
                    &p.alerted,
                    &p.disable,
                    &p.at,
                ],
            )
            .await
            .map_err(pg)?;
        Ok(n > 0)
    }
}
