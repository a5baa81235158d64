//! The SQLite schema: migrations in `migrations/sqlite/`, applied in order;
//! `PRAGMA user_version` records how many ran.

use rusqlite::{params, Connection};
use trail_core::merkle::{leaf_hash, Frontier};

use crate::StoreError;

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
/// Migration 2 also builds the trees of events stored before them (`backfill_trees`).
pub(super) const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_init.sql"),
    include_str!("../../migrations/sqlite/0002_merkle_trees.sql"),
    include_str!("../../migrations/sqlite/0003_accounts.sql"),
    include_str!("../../migrations/sqlite/0004_schedules.sql"),
    include_str!("../../migrations/sqlite/0005_archives.sql"),
    include_str!("../../migrations/sqlite/0006_login_throttle.sql"),
    include_str!("../../migrations/sqlite/0007_company_is_org.sql"),
    include_str!("../../migrations/sqlite/0008_email_sort.sql"),
    include_str!("../../migrations/sqlite/0009_day_counts.sql"),
    include_str!("../../migrations/sqlite/0010_alerts.sql"),
    include_str!("../../migrations/sqlite/0011_streams.sql"),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew { found: version, supported: SCHEMA_VERSION });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        if i == 1 {
            backfill_trees(&tx)?;
        }
        tx.pragma_update(None, "user_version", i as u32 + 1)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "applied sqlite migration");
    }
    Ok(())
}

/// Builds the Merkle trees of events stored before trees existed (schema version 1).
pub(super) fn backfill_trees(conn: &Connection) -> Result<(), StoreError> {
    let orgs: Vec<i64> = conn.prepare("SELECT id FROM orgs")?.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    let mut insert = conn.prepare("INSERT INTO tree_nodes (org_id, level, idx, hash) VALUES (?1, ?2, ?3, ?4)")?;
    for org in orgs {
        let mut tree = Frontier::default();
        let mut stmt = conn.prepare("SELECT leaf FROM leaves WHERE org_id = ?1 ORDER BY seq")?;
        let mut rows = stmt.query([org])?;
        while let Some(r) = rows.next()? {
            let leaf: Vec<u8> = r.get(0)?;
            for (level, idx, hash) in tree.push(leaf_hash(&leaf)) {
                insert.execute(params![org, level, idx as i64, &hash[..]])?;
            }
        }
    }
    Ok(())
}
