//! The installation log's witnesses on SQLite (see the shared `witnesses`): written on
//! the writer's connection, read on the readers'.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use trail_core::Timestamp;

use super::{named, SqliteStore};
use crate::{
    witnesses::{WitnessAnswer, WitnessState},
    StoreError, Witnessing,
};

const COLUMNS: &str = "name, size, status, detail, failures, retry_at, updated_at";

fn state(r: &rusqlite::Row<'_>) -> rusqlite::Result<WitnessState> {
    Ok(WitnessState {
        name: r.get(0)?,
        size: r.get::<_, i64>(1)? as u64,
        status: named(r, 2)?,
        detail: r.get(3)?,
        failures: r.get::<_, i64>(4)? as u32,
        retry_at: Timestamp(r.get(5)?),
        updated_at: Timestamp(r.get(6)?),
    })
}

fn one(c: &Connection, name: &str) -> Result<Option<WitnessState>, StoreError> {
    Ok(c.query_row(&format!("SELECT {COLUMNS} FROM witnesses WHERE name = ?1"), [name], state).optional()?)
}

#[async_trait]
impl Witnessing for SqliteStore {
    async fn witness_states(&self) -> Result<Vec<WitnessState>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!("SELECT {COLUMNS} FROM witnesses ORDER BY name"))?;
            let rows = stmt.query_map([], state)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn lease_witness(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Option<WitnessState>, StoreError> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.write(move |c| {
            c.execute("INSERT INTO witnesses (name) VALUES (?1) ON CONFLICT (name) DO NOTHING", [&name])?;
            let n = c.execute(
                "UPDATE witnesses SET lease_holder = ?2, lease_until = ?4 \
                 WHERE name = ?1 AND (lease_holder IS NULL OR lease_holder = ?2 OR lease_until < ?3)",
                params![name, holder, now.0, until.0],
            )?;
            if n == 0 {
                return Ok(None);
            }
            one(c, &name)
        })
        .await
    }

    async fn witness_answered(&self, a: WitnessAnswer) -> Result<(), StoreError> {
        self.write(move |c| {
            let tx = c.transaction()?;
            tx.execute(
                "UPDATE witnesses SET size = ?2, status = ?3, detail = ?4, failures = ?5, retry_at = ?6, \
                 updated_at = ?7, lease_holder = NULL, lease_until = 0 WHERE name = ?1",
                params![a.name, a.size as i64, a.status.as_str(), a.detail, a.failures, a.retry_at.0, a.at.0],
            )?;
            if let Some(line) = &a.cosignature {
                tx.execute(
                    "INSERT INTO cosignatures (size, witness, line, created_at) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (size, witness) DO UPDATE SET line = ?3, created_at = ?4",
                    params![a.size as i64, a.name, line, a.at.0],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn cosignatures(&self, size: u64) -> Result<Vec<(String, String)>, StoreError> {
        self.read(move |c| {
            let mut stmt =
                c.prepare_cached("SELECT witness, line FROM cosignatures WHERE size = ?1 ORDER BY witness")?;
            let rows = stmt.query_map([size as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn cosigned_sizes(&self, limit: usize) -> Result<Vec<(u64, Vec<String>)>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT size, group_concat(witness, ' ') FROM cosignatures \
                 WHERE size IN (SELECT DISTINCT size FROM cosignatures ORDER BY size DESC LIMIT ?1) \
                 GROUP BY size ORDER BY size DESC",
            )?;
            let rows = stmt.query_map([limit as i64], |r| {
                let names: String = r.get(1)?;
                let mut names: Vec<String> = names.split(' ').map(str::to_string).collect();
                names.sort();
                Ok((r.get::<_, i64>(0)? as u64, names))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }
}
