//! The installation log's witnesses on PostgreSQL (see the shared `witnesses`): the
//! lease is one conditional UPDATE, so of several servers only one submits to a
//! witness at a time.

use async_trait::async_trait;
use trail_core::Timestamp;

use super::{pg, PgStore};
use crate::{
    named,
    witnesses::{WitnessAnswer, WitnessState},
    StoreError, Witnessing,
};

const COLUMNS: &str = "name, size, status, detail, failures, retry_at, updated_at";

fn state(r: &tokio_postgres::Row) -> Result<WitnessState, StoreError> {
    Ok(WitnessState {
        name: r.get(0),
        size: r.get::<_, i64>(1) as u64,
        status: named::read(r.get::<_, &str>(2))?,
        detail: r.get(3),
        failures: r.get::<_, i64>(4) as u32,
        retry_at: Timestamp(r.get(5)),
        updated_at: Timestamp(r.get(6)),
    })
}

#[async_trait]
impl Witnessing for PgStore {
    async fn witness_states(&self) -> Result<Vec<WitnessState>, StoreError> {
        let c = self.client().await?;
        let rows = c.query(&format!("SELECT {COLUMNS} FROM witnesses ORDER BY name"), &[]).await.map_err(pg)?;
        rows.iter().map(state).collect()
    }

    async fn lease_witness(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Option<WitnessState>, StoreError> {
        let c = self.client().await?;
        c.execute("INSERT INTO witnesses (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", &[&name])
            .await
            .map_err(pg)?;
        let row = c
            .query_opt(
                &format!(
                    "UPDATE witnesses SET lease_holder = $2, lease_until = $4 \
                     WHERE name = $1 AND (lease_holder IS NULL OR lease_holder = $2 OR lease_until < $3) \
                     RETURNING {COLUMNS}"
                ),
                &[&name, &holder, &now.0, &until.0],
            )
            .await
            .map_err(pg)?;
        row.as_ref().map(state).transpose()
    }

    async fn witness_answered(&self, a: WitnessAnswer) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        tx.execute(
            "UPDATE witnesses SET size = $2, status = $3, detail = $4, failures = $5, retry_at = $6, \
             updated_at = $7, lease_holder = NULL, lease_until = 0 WHERE name = $1",
            &[&a.name, &(a.size as i64), &a.status.as_str(), &a.detail, &i64::from(a.failures), &a.retry_at.0, &a.at.0],
        )
        .await
        .map_err(pg)?;
        if let Some(line) = &a.cosignature {
            tx.execute(
                "INSERT INTO cosignatures (size, witness, line, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (size, witness) DO UPDATE SET line = $3, created_at = $4",
                &[&(a.size as i64), &a.name, line, &a.at.0],
            )
            .await
            .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)?;
        Ok(())
    }

    async fn cosignatures(&self, size: u64) -> Result<Vec<(String, String)>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query("SELECT witness, line FROM cosignatures WHERE size = $1 ORDER BY witness", &[&(size as i64)])
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn cosigned_sizes(&self, limit: usize) -> Result<Vec<(u64, Vec<String>)>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT size, array_agg(witness ORDER BY witness) FROM cosignatures \
                 WHERE size IN (SELECT DISTINCT size FROM cosignatures ORDER BY size DESC LIMIT $1) \
                 GROUP BY size ORDER BY size DESC",
                &[&(limit as i64)],
            )
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, Vec<String>>(1))).collect())
    }
}
