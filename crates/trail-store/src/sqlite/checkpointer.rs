//! The checkpointer thread: copies the WAL into the database file after commits, so
//! that commits never wait for it.

use std::{
    sync::mpsc,
    time::{Duration, Instant},
};

use rusqlite::Connection;

/// WAL pages after which the writer checkpoints itself (the checkpointer's backstop).
pub(super) const WRITER_CHECKPOINT_PAGES: i64 = 8192;

/// Least time between two of the checkpointer's checkpoints.
pub(super) const WAL_CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// The checkpointer: after commits, at most every WAL_CHECKPOINT_EVERY, copies what the
/// WAL holds into the database file (PASSIVE: it never blocks the writer or readers).
/// Ends when the writer does.
pub(super) fn checkpoint_loop(conn: Connection, commits: mpsc::Receiver<()>) {
    // Whether a commit came while the last checkpoint's interval ran.
    let mut pending = false;
    loop {
        if !pending && commits.recv().is_err() {
            return;
        }
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "background checkpoint failed");
        }
        pending = false;
        let due = Instant::now() + WAL_CHECKPOINT_EVERY;
        while let Some(left) = due.checked_duration_since(Instant::now()) {
            match commits.recv_timeout(left) {
                Ok(()) => pending = true,
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
    }
}
