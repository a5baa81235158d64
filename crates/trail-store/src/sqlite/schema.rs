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
    include_str!("../../migrations/sqlite/0012_company_is_org_again.sql"),
    include_str!("../../migrations/sqlite/0013_idempotency_keys.sql"),
    include_str!("../../migrations/sqlite/0014_users_per_org.sql"),
    include_str!("../../migrations/sqlite/0015_installation_log.sql"),
    include_str!("../../migrations/sqlite/0016_witnesses.sql"),
    include_str!("../../migrations/sqlite/0017_legal_holds.sql"),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    migrate_to(conn, SCHEMA_VERSION)
}

/// Applies the migrations up to version `target` (tests build stores of every earlier
/// schema with it).
pub(super) fn migrate_to(conn: &mut Connection, target: u32) -> Result<(), StoreError> {
    let version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew { found: version, supported: SCHEMA_VERSION });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().take(target as usize).skip(version as usize) {
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

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_are_pinned() {
        crate::testing::pinned_migrations(
            super::MIGRATIONS,
            &[
                "604002cad3e8a752f52ec56e9005de649090122e4ec538ff30d5e05957231a99",
                "19c82db1288cba4946a96be49162cd2aac740e4e5c6bc8c9d6712a05f6ee38b0",
                "a33a19bdb29c1235745b0b3b6a4a159d2ef83d1458ea049a7d0d8627a72ff6a5",
                "9079e086597987b8a6583f162cb0742d8aaf5f57183eb7d334c8c33d8f1a9450",
                "32770ac10c60b72ae1731889bd17bdb0e7c569440c73c4d9c73ec31b9c9bddc5",
                "35099f1740993d8562512c13cdebecceb9e632a193990810899750d24b7daf35",
                "6311f6f27489aa6a41a80a58c641899b1a355b2d4a1bc31bf07382d297b22507",
                "c0058adf84004ae757914db3400615b77c1020371de90e4ab4e4eb43ff7fe26a",
                "2526d6f1f4913e1d3159201286a31f3b01d64c4e45527415602d2165859d9d3f",
                "37846648cb7b17045a7d17bf74217b0d18741cf7c8a75f19a02d6ae8c8d6e706",
                "a7f13aa5bd7fb0a048c2a5333e7ef553d682cc38b8ea969f5f343533c3bed771",
                "5c6a11e4e5e311954f804af724e8fb581c38545d527c5aab11db04a1a17be90d",
                "d0fdee5298ffe8c12bd8f7efcb1e0b8d8f2c7d537b3a0d60a0809d2fd46bc12a",
                "e066896b20291872e0e191912acb69ef4d380be4474161bbedbd95a8939db231",
                "0f989da3d1bf1d8230ebc0e266006746f1473d316e18bdd81cceaf7500a7277e",
                "fa74df314b8eb36966e6f817fc408cd6d5cb87a6a830ea70219ac179b6b5cc34",
                "83e29bb9b9e262d3dc6d73d40a96093be0e3145ffb9544e37d56025954cb87a2",
            ],
            "sqlite",
        );
    }
}
