//! `trail alerts`: an organization's alert rules, destinations and deliveries from the
//! command line; changes are recorded in its log.

use anyhow::{bail, Result};
use serde_json::json;
use trail_server::work::{alerts::rules, selfaudit};

use crate::{
    accounts::cli_state,
    config::Config,
    store::{known_org, open_store},
    AlertsCommand,
};

pub(crate) async fn alerts_cmd(config: &Config, command: AlertsCommand) -> Result<()> {
    let store = open_store(config).await?;
    if let Err(e) = known_org(&*store, command.org()).await {
        store.close();
        return Err(e);
    }
    let out = match command {
        AlertsCommand::Rules { org } => {
            println!("{:<24} {:<8} {:>10} {:>8} {:<10} query", "rule", "enabled", "threshold", "window", "group by");
            for r in rules::effective(&org, store.alert_rules(&org).await?) {
                println!(
                    "{:<24} {:<8} {:>10} {:>8} {:<10} {}",
                    r.name,
                    r.enabled,
                    r.threshold,
                    trail_server::work::alerts::message::window_text(r.window_secs),
                    r.group_by.as_deref().unwrap_or("-"),
                    r.query.as_deref().unwrap_or("(built in)")
                );
            }
            Ok(())
        }
        AlertsCommand::SetRule { org, name, enabled, threshold } => {
            let Some(mut r) =
                rules::effective(&org, store.alert_rules(&org).await?).into_iter().find(|r| r.name == name)
            else {
                bail!("{org} has no rule '{name}' (see `trail alerts rules --org {org}`)");
            };
            if threshold == Some(0) {
                bail!("--threshold must be at least 1");
            }
            r.enabled = enabled.unwrap_or(r.enabled);
            r.threshold = threshold.unwrap_or(r.threshold);
            store.put_alert_rule(r.clone()).await?;
            let st = cli_state(store.clone());
            let details = json!({"enabled": r.enabled, "threshold": r.threshold});
            selfaudit::record_system(
                &st,
                &org,
                "alert:rule_update",
                json!({"type": "alert_rule", "id": name, "name": name}),
                details,
            )
            .await;
            println!("{name}: enabled {}, threshold {}", r.enabled, r.threshold);
            Ok(())
        }
        AlertsCommand::Destinations { org } => {
            for d in store.destinations(&org).await? {
                let target = d.url.clone().unwrap_or_else(|| d.recipients.join(", "));
                println!(
                    "{:>5} {:<8} {:<8} {:<24} {target}",
                    d.id,
                    d.kind,
                    if d.enabled { "on" } else { "disabled" },
                    d.name
                );
            }
            Ok(())
        }
        AlertsCommand::Deliveries { org } => {
            for d in store.deliveries(&org, 100).await? {
                let at = trail_core::Timestamp(d.created_at).to_rfc3339();
                let error = d.last_error.clone().unwrap_or_default();
                println!(
                    "{:>6} {at} {:<22} → {:<4} {:<9} attempts {:<3} {error}",
                    d.id,
                    d.rule,
                    d.destination,
                    d.status.as_str(),
                    d.attempts
                );
            }
            Ok(())
        }
    };
    store.close();
    out
}
