//! `trail witness`: a C2SP `tlog-witness` (v1.0.0) that anyone runs on a machine of
//! their own, with their own key and their own SQLite file. It follows the logs a
//! C2SP `tlog-policy` file names (their `log` lines), checks each submitted
//! checkpoint's log signature and its consistency with the newest one it cosigned
//! before, keeps (origin → size, root) in the same transaction as it decides, and
//! answers a timestamped Ed25519 cosignature (`tlog-cosignature` v1). It keeps no
//! event data: checkpoints only.
//!
//! Rooms: `witness` (the protocol's rules, no HTTP), `state` (the SQLite file), `keys`
//! (its name and key), `http` (the axum routes).

pub mod http;
pub mod keys;
pub mod state;
pub mod witness;

use std::{path::Path, sync::Arc};

use anyhow::{Context, Result};
use trail_core::policy::Policy;

pub use witness::{Refusal, Witness};

/// The state file's name in the data directory.
pub const STATE_FILE: &str = "witness.db";

/// Opens the witness of `dir` (creating its key on first use) following `policy`'s logs.
pub fn open(dir: &Path, policy: &Policy) -> Result<Witness> {
    let (name, key) = keys::load_or_create(dir, None)?;
    let state = state::State::open(&dir.join(STATE_FILE))?;
    Ok(Witness::new(name, key, policy, state))
}

/// Reads a policy file.
pub fn read_policy(path: &Path) -> Result<Policy> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Policy::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Serves the witness on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    witness: Arc<Witness>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    axum::serve(listener, http::router(witness)).with_graceful_shutdown(shutdown).await?;
    Ok(())
}
