//! `trail witness`: run a C2SP witness (the `trail-witness` crate) on a machine of
//! one's own, and print its verifier key for the policy files that name it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Subcommand;

#[derive(Subcommand)]
pub(crate) enum WitnessCommand {
    /// Create the witness's key if needed and print its verifier key (for the
    /// `witness NAME VKEY URL` lines of policy files).
    Keys {
        /// The witness's own directory (its key, name and state file).
        #[arg(long)]
        data_dir: PathBuf,
        /// Its cosigner name on first use (default `trail-witness.local/<key hash>`).
        #[arg(long)]
        name: Option<String>,
        /// Replace the key with a new one (the old kept aside as `witness.key.<time>`,
        /// the state kept): then put the new verifier key in the policies.
        #[arg(long)]
        rotate: bool,
    },
    /// Serve `add-checkpoint` (C2SP tlog-witness) for the logs the policy's `log` lines
    /// name, until SIGINT or SIGTERM.
    Serve {
        #[arg(long)]
        data_dir: PathBuf,
        /// Address to listen on, e.g. 127.0.0.1:7380.
        #[arg(long)]
        listen: String,
        /// A C2SP tlog-policy file; its `log` lines are the logs followed.
        #[arg(long)]
        policy: PathBuf,
    },
}

pub(crate) async fn witness_cmd(command: WitnessCommand) -> Result<()> {
    match command {
        WitnessCommand::Keys { data_dir, name, rotate } => keys(&data_dir, name.as_deref(), rotate),
        WitnessCommand::Serve { data_dir, listen, policy } => serve(&data_dir, &listen, &policy).await,
    }
}

fn keys(dir: &Path, name: Option<&str>, rotate: bool) -> Result<()> {
    let (name, mut key) = trail_witness::keys::load_or_create(dir, name)?;
    if rotate {
        key = trail_witness::keys::rotate(dir)?;
    }
    println!("{}", trail_core::cosignature::verifier_key(&name, &key.verifying_key()));
    Ok(())
}

async fn serve(dir: &Path, listen: &str, policy: &Path) -> Result<()> {
    let policy = trail_witness::read_policy(policy)?;
    if policy.logs.is_empty() {
        anyhow::bail!("the policy names no log to follow (a `log VKEY` line)");
    }
    let witness = std::sync::Arc::new(trail_witness::open(dir, &policy)?);
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let origins: Vec<&str> = policy.logs.iter().map(|l| l.origin.as_str()).collect();
    println!("witness {} listening on http://{addr}, following {}", witness.name, origins.join(", "));
    tracing::info!(%addr, key = %witness.verifier_key(), "witness serving");
    trail_witness::serve(listener, witness, crate::serve::shutdown_signal()).await
}
