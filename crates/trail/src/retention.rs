//! `trail retention run`: archive and delete what has expired, now or as of a date.

use anyhow::Result;
use trail_core::Timestamp;
use trail_server::{ServerConfig, Services};

use crate::{config::Config, export::work_message, log::now, store::open_store};

/// `trail retention run`: the nightly job, by hand.
pub(crate) async fn retention_run(config: &Config, as_of: Option<&str>) -> Result<()> {
    let as_of = match as_of {
        Some(s) => Timestamp::parse_bound(s, false).map_err(|e| anyhow::anyhow!("--as-of: {e}"))?,
        None => now(),
    };
    if !config.retention.rules.enabled() {
        println!("retention is off ([retention] days = 0 and no category with days > 0): nothing to do");
        return Ok(());
    }
    let store = open_store(config).await?;
    let server_config = ServerConfig { retention: crate::archive::retention(config).await?, ..ServerConfig::default() };
    let services = Services::new(store.clone(), server_config, trail_server::system_clock());
    let reports =
        trail_server::work::retention::run(&services, as_of).await.map_err(|e| anyhow::anyhow!("{}", work_message(e)));
    store.close();
    let reports = reports?;
    for r in &reports {
        let cats: Vec<String> = r.categories.iter().map(|(c, n)| format!("{c} {n}")).collect();
        println!(
            "{}: archived {} events in {} files, deleted {} rows{}{}",
            r.org,
            r.archived,
            r.files,
            r.deleted,
            if cats.is_empty() { String::new() } else { format!(" ({})", cats.join(", ")) },
            if r.leftovers_removed > 0 {
                format!("; removed {} files of an interrupted run", r.leftovers_removed)
            } else {
                String::new()
            }
        );
    }
    println!(
        "retention as of {}: archived {} events",
        as_of.to_rfc3339(),
        reports.iter().map(|r| r.archived).sum::<u64>()
    );
    Ok(())
}
