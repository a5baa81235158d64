//! The witness's memory, in its own SQLite file: for each log (by origin) the newest
//! checkpoint it cosigned, and the refusals it answered (evidence of a log's
//! misbehaviour). Checking a submission against what is kept and keeping the new one
//! happen in one write transaction, so two submissions can never roll a log back.

use std::path::Path;

use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use trail_core::merkle::Hash;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS checkpoints (
    origin TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    note TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS refusals (
    id INTEGER PRIMARY KEY,
    origin TEXT NOT NULL,
    at INTEGER NOT NULL,
    status INTEGER NOT NULL,
    reason TEXT NOT NULL,
    request TEXT NOT NULL
);
";

/// The newest checkpoint cosigned for a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub size: u64,
    pub root: Hash,
    /// The checkpoint with the log's signature and this witness's cosignature.
    pub note: String,
}

/// The open state file.
pub struct State {
    conn: Connection,
}

impl State {
    pub fn open(path: &Path) -> Result<State> {
        let conn = Connection::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(SCHEMA)?;
        Ok(State { conn })
    }

    /// What is kept for `origin`.
    pub fn kept(&self, origin: &str) -> Result<Option<Kept>> {
        Ok(self
            .conn
            .query_row("SELECT size, root, note FROM checkpoints WHERE origin = ?1", [origin], |r| {
                let root: Vec<u8> = r.get(1)?;
                Ok((r.get::<_, i64>(0)?, root, r.get::<_, String>(2)?))
            })
            .optional()?
            .and_then(|(size, root, note)| Some(Kept { size: size as u64, root: root.try_into().ok()?, note })))
    }

    /// Runs `decide` on what is kept for `origin` inside one write transaction; when it
    /// answers a new checkpoint to keep, that is stored before the transaction ends.
    pub fn advance<A, R>(
        &mut self,
        origin: &str,
        now: u64,
        decide: impl FnOnce(Option<&Kept>) -> Result<(Kept, A), R>,
    ) -> Result<Result<A, R>> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let kept = tx
            .query_row("SELECT size, root, note FROM checkpoints WHERE origin = ?1", [origin], |r| {
                let root: Vec<u8> = r.get(1)?;
                Ok((r.get::<_, i64>(0)?, root, r.get::<_, String>(2)?))
            })
            .optional()?
            .and_then(|(size, root, note)| Some(Kept { size: size as u64, root: root.try_into().ok()?, note }));
        match decide(kept.as_ref()) {
            Ok((new, answer)) => {
                tx.execute(
                    "INSERT INTO checkpoints (origin, size, root, note, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (origin) DO UPDATE SET size = ?2, root = ?3, note = ?4, updated_at = ?5",
                    params![origin, new.size as i64, &new.root[..], new.note, now as i64],
                )?;
                tx.commit()?;
                Ok(Ok(answer))
            }
            Err(refused) => Ok(Err(refused)),
        }
    }

    /// Keeps a refusal (a submission with a valid log signature that was not cosigned).
    pub fn refused(&self, origin: &str, now: u64, status: u16, reason: &str, request: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO refusals (origin, at, status, reason, request) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![origin, now as i64, status, reason, request],
        )?;
        Ok(())
    }

    /// How many refusals are kept for `origin`.
    pub fn refusals(&self, origin: &str) -> Result<u64> {
        Ok(self.conn.query_row("SELECT count(*) FROM refusals WHERE origin = ?1", [origin], |r| r.get::<_, i64>(0))?
            as u64)
    }
}
