//! Streams: every event of an organization (or those matching a query) sent to a SIEM
//! at least once, in seq order, from a persisted cursor, each batch naming its seqs and
//! the signed checkpoint that covers it.
//!
//! Rooms: `setup` (what an administrator asks for, checked, and a stream's health),
//! `format` (bodies and syslog frames, no I/O), `ocsf` (OCSF records, no I/O), `view`
//! (the fields the formats read, borrowed from the stored bytes), `render` (formatting
//! on a low-priority thread), `send`
//! (one batch over HTTP or syslog, TCP or TLS), `drive` (the lease holder's loop per
//! stream: read, filter, send, move the cursor; retries, failing alerts).

use std::sync::Mutex;

use tokio::sync::watch;

use super::Services;

pub mod drive;
pub mod format;
pub mod ocsf;
mod render;
pub mod send;
pub mod setup;

/// Wake-ups for the drivers, and this server's name as a lease holder.
pub struct Signals {
    /// Bumped when events are committed (any organization).
    appended: watch::Sender<u64>,
    /// Bumped when a stream is created, changed, paused, resumed, replayed or deleted.
    changes: watch::Sender<u64>,
    /// This server as a lease holder (unique per process and start).
    pub(crate) owner: String,
    /// Streams this server drives, by id.
    pub(crate) running: Mutex<std::collections::HashMap<i64, tokio::task::JoinHandle<()>>>,
}

impl Default for Signals {
    fn default() -> Self {
        let tag: u32 = rand::random();
        Signals {
            appended: watch::channel(0).0,
            changes: watch::channel(0).0,
            owner: format!("trail-{}-{tag:08x}", std::process::id()),
            running: Mutex::default(),
        }
    }
}

impl Signals {
    /// Events were committed.
    pub(crate) fn appended(&self) {
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub(crate) fn watch(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// A stream was created or changed (the supervisor leases again, retries end).
    pub(crate) fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub(crate) fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

/// Starts the supervisor that leases streams and runs their drivers (when streams
/// are enabled).
pub(crate) fn start(st: &Services, spawner: &super::Spawner) {
    if !st.config.streams.enabled {
        return;
    }
    spawner.spawn(drive::supervise(st.clone(), spawner.clone()));
    if let Some(mut rx) = st.store.appended_elsewhere() {
        let st = st.clone();
        spawner.spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => st.streams.appended(),
                    Err(_) => return,
                }
            }
        });
    }
}
