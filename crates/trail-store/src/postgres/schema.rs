//! The PostgreSQL schema: migrations in `migrations/postgres/`, applied in order under
//! an advisory lock, and the monthly partitions of `events`, made as events arrive.

use trail_core::Timestamp;

use super::{pg, Inner, PgBatch, PgStore};
use crate::StoreError;

/// Schema migrations, applied in order; `schema_version` records how many ran.
pub(super) const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/postgres/0001_init.sql"),
    include_str!("../../migrations/postgres/0002_archives.sql"),
    include_str!("../../migrations/postgres/0003_unfinished_index.sql"),
    include_str!("../../migrations/postgres/0004_login_throttle.sql"),
    include_str!("../../migrations/postgres/0005_company_is_org.sql"),
    include_str!("../../migrations/postgres/0006_day_counts.sql"),
    include_str!("../../migrations/postgres/0007_email_sort.sql"),
    include_str!("../../migrations/postgres/0008_alerts.sql"),
    include_str!("../../migrations/postgres/0009_streams.sql"),
    include_str!("../../migrations/postgres/0010_idempotency_received.sql"),
    include_str!("../../migrations/postgres/0011_users_per_org.sql"),
    include_str!("../../migrations/postgres/0012_installation_log.sql"),
    include_str!("../../migrations/postgres/0013_witnesses.sql"),
    include_str!("../../migrations/postgres/0014_legal_holds.sql"),
];

impl PgStore {
    /// Applies the migrations this build knows, under an advisory lock so that several
    /// processes starting at once do not race.
    /// Refuses a database whose schema is not this binary's (reading only).
    pub(super) async fn check_schema(&self) -> Result<(), StoreError> {
        let c = self.client().await?;
        let v: Option<i32> = match c.query_opt("SELECT version FROM schema_version", &[]).await {
            Ok(row) => row.map(|r| r.get(0)),
            Err(_) => None,
        };
        let v = v.unwrap_or(0) as usize;
        if v != MIGRATIONS.len() {
            return Err(StoreError::Invalid {
                field: "database".into(),
                message: format!(
                    "the store's schema is version {v}, this binary's {}: open it with the matching trail first",
                    MIGRATIONS.len()
                ),
            });
        }
        Ok(())
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        tx.execute("SELECT pg_advisory_xact_lock(7236)", &[]).await.map_err(pg)?;
        tx.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)", &[]).await.map_err(pg)?;
        let v: Option<i32> =
            tx.query_opt("SELECT version FROM schema_version", &[]).await.map_err(pg)?.map(|r| r.get(0));
        let v = v.unwrap_or(0) as usize;
        if v > MIGRATIONS.len() {
            return Err(StoreError::SchemaTooNew { found: v as u32, supported: MIGRATIONS.len() as u32 });
        }
        for sql in &MIGRATIONS[v..] {
            tx.batch_execute(sql).await.map_err(pg)?;
        }
        tx.execute("DELETE FROM schema_version", &[]).await.map_err(pg)?;
        tx.execute("INSERT INTO schema_version VALUES ($1)", &[&(MIGRATIONS.len() as i32)]).await.map_err(pg)?;
        tx.commit().await.map_err(pg)
    }
}

pub(super) fn month_bounds(ts: i64) -> (i64, i64, String) {
    use chrono::Datelike;
    let dt = Timestamp(ts).to_datetime();
    let start = chrono::NaiveDate::from_ymd_opt(dt.year(), dt.month(), 1).unwrap_or_default();
    let next = if dt.month() == 12 {
        chrono::NaiveDate::from_ymd_opt(dt.year() + 1, 1, 1)
    } else {
        chrono::NaiveDate::from_ymd_opt(dt.year(), dt.month() + 1, 1)
    }
    .unwrap_or_default();
    let us = |d: chrono::NaiveDate| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc().timestamp_micros();
    (us(start), us(next), format!("events_y{:04}m{:02}", dt.year(), dt.month()))
}

impl Inner {
    pub(super) async fn ensure_partitions(
        &self,
        c: &deadpool_postgres::Object,
        batch: &PgBatch,
    ) -> Result<(), StoreError> {
        let mut months = std::collections::BTreeMap::new();
        for e in &batch.events {
            let (lo, hi, name) = month_bounds(e.row.ts);
            months.insert(name, (lo, hi));
        }
        for (name, (lo, hi)) in months {
            if self.partitions.lock().map(|p| p.contains(&name)).unwrap_or(false) {
                continue;
            }
            let sql = format!("CREATE TABLE IF NOT EXISTS {name} PARTITION OF events FOR VALUES FROM ({lo}) TO ({hi})");
            match c.batch_execute(&sql).await {
                Ok(()) => {}
                // Another process made it at the same moment.
                Err(e) if e.code().is_some_and(|c| *c == tokio_postgres::error::SqlState::DUPLICATE_TABLE) => {}
                Err(e) => return Err(pg(e)),
            }
            if let Ok(mut p) = self.partitions.lock() {
                p.insert(name);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// Each migration's SHA-256, pinned (see the SQLite schema's test).
    #[test]
    fn migrations_are_pinned() {
        let want = [
            "059f09b921933682c5d226ef83f079424b62d2a282103647e37e1eff3d5066f1",
            "716b9d06c8151541ce9bd9bf394f4317442778c6c5274c829db2e65ed9a7dfbc",
            "9459318b9564ff1385c339a6ac222cccb1774ebcd0039476402aa4ffb1a59d31",
            "4ba8dbeefe54db3065cf44637ff653add595e247576467821988041fa33ebdfe",
            "f645ff93e2875f7946205e9338dd8f2dcef17cef5df7014b98b7de3dc805cbc4",
            "b7939913384d940617504aec74ac440afe9be9c54a1f684ca4dd1c719f4617da",
            "119e2d3a8c97dcd2571e43f3b71bae64cb852346fbdd98913fd28cc4bb7f4208",
            "8e8e4fc1256186352b0fad673058adb833ae3afeda17aef796fb89f183ff6c49",
            "caf5c187bcecb012b240295498ccc1d02063363e6b3b8a0540b3ee788f13b10a",
            "6f9147aba3a940f7d70b5f7fd26dd8a500ff7b3f12ad212fc43fd984d7b43535",
            "ad64c2429d699848728fefd828e07923592a20f4f37b555f3e6da6214e76e1ea",
            "620f61a435901194b9631a8dd6723106b1c2f64a959f3a748376fe94dc89ff74",
            "8391369954b678c68e22395ce93af8c3d0273277900c1564fc4a66c5810bb1cd",
            "11d1fab7d6a5b931aa8e0147cff50d97f13b2a31b7409658b7180b4dbe2fb437",
        ];
        crate::testing::pinned_migrations(super::MIGRATIONS, &want, "postgres");
    }
}
