//! `trail holds`: an organization's legal holds from the command line — list, place (on
//! the organization or a query, with a reason) and release (with a reason); both
//! changes are recorded in its log as the command line's.

use anyhow::Result;
use clap::Subcommand;
use trail_server::work::selfaudit::Record;

use crate::{
    accounts::cli_state,
    config::Config,
    export::work_message,
    store::{known_org, open_store},
};

#[derive(Subcommand)]
pub(crate) enum HoldsCommand {
    /// The organization's holds, active and released.
    List {
        #[arg(long)]
        org: String,
    },
    /// Keep the organization's events (or those a query matches) past retention.
    Place {
        #[arg(long)]
        org: String,
        /// Query-language terms selecting the events held (default: every event).
        #[arg(long)]
        query: Option<String>,
        #[arg(long)]
        reason: String,
    },
    /// End a hold (recorded with the reason).
    Release {
        #[arg(long)]
        org: String,
        #[arg(long)]
        id: i64,
        #[arg(long)]
        reason: String,
    },
}

pub(crate) async fn holds_cmd(config: &Config, command: HoldsCommand) -> Result<()> {
    let store = open_store(config).await?;
    let org = match &command {
        HoldsCommand::List { org } | HoldsCommand::Place { org, .. } | HoldsCommand::Release { org, .. } => org.clone(),
    };
    if let Err(e) = known_org(&*store, &org).await {
        store.close();
        return Err(e);
    }
    let st = cli_state(store.clone());
    let out = match command {
        HoldsCommand::List { org } => store.holds(Some(&org)).await.map_err(anyhow::Error::from).map(|holds| {
            for h in holds {
                let state = match (&h.released_at, &h.release_reason) {
                    (Some(t), Some(r)) => {
                        format!("released {} by {}: {r}", t.to_rfc3339(), h.released_by.unwrap_or_default())
                    }
                    _ => "active".to_string(),
                };
                let what = h.query.as_deref().unwrap_or("every event");
                println!(
                    "{:>4}  {what}  placed {} by {}: {}  [{state}]",
                    h.id,
                    h.placed_at.to_rfc3339(),
                    h.placed_by,
                    h.reason
                );
            }
        }),
        HoldsCommand::Place { org, query, reason } => {
            let record = Record::cli(&org, "hold:place");
            trail_server::work::holds::place(&st, &org, query.as_deref(), &reason, "trail command line", record)
                .await
                .map(|h| {
                    println!("placed legal hold {} on {org} ({})", h.id, h.query.as_deref().unwrap_or("every event"))
                })
                .map_err(|e| anyhow::anyhow!(work_message(e)))
        }
        HoldsCommand::Release { org, id, reason } => {
            let record = Record::cli(&org, "hold:release");
            trail_server::work::holds::release(&st, &org, id, &reason, "trail command line", record)
                .await
                .map(|h| println!("released legal hold {} on {org}", h.id))
                .map_err(|e| anyhow::anyhow!(work_message(e)))
        }
    };
    store.close();
    out
}
