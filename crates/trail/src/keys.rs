//! `trail keys`: API keys made, listed and revoked from the command line (each change
//! recorded in the organization's log), and the checkpoint verifier key printed.

use anyhow::{bail, Context, Result};
use trail_core::Timestamp;
use trail_store::{DynStore, KeyScope, Org, Store};

use crate::{
    accounts::{check_slug, cli_state},
    config::Config,
    log::cut,
    store::{known_org, open_store, signing_key},
    KeysCommand,
};

/// Runs one `trail keys` command.
pub(crate) async fn keys_cmd(config: &Config, command: KeysCommand) -> Result<()> {
    match command {
        KeysCommand::Create { org, scope, label } => {
            let scope = KeyScope::parse(&scope)
                .filter(|s| *s != KeyScope::Personal)
                .with_context(|| format!("--scope must be ingest, read, admin, platform or audit, not '{scope}'"))?;
            check_slug(&org)?;
            let store = open_store(config).await?;
            store.ensure_org(Org { slug: org.clone(), name: org.clone() }).await?;
            let key = new_key(&*store, &org, scope, &label).await?;
            let state = cli_state(store.clone());
            let resource = serde_json::json!({"type": "api_key", "id": key.1.to_string(), "name": trail_server::work::credentials::key_prefix(&key.0)});
            let details = serde_json::json!({"scope": scope.as_str(), "label": label});
            trail_server::work::selfaudit::record_system(&state, &org, "api_key:create", resource, details).await;
            store.close();
            println!("{}", key.0);
            Ok(())
        }
        KeysCommand::List { org } => {
            let store = open_store(config).await?;
            if let Some(o) = &org {
                known_org(&*store, o).await?;
            }
            println!(
                "{:<6} {:<12} {:<9} {:<14} {:<8} {:<26} Label",
                "Id", "Org", "Scope", "Prefix", "Revoked", "Created"
            );
            for k in store.list_keys(org.as_deref()).await? {
                println!(
                    "{:<6} {:<12} {:<9} {:<14} {:<8} {:<26} {}",
                    k.id,
                    cut(&k.org, 12),
                    k.scope.as_str(),
                    k.prefix,
                    if k.revoked { "yes" } else { "no" },
                    Timestamp(k.created_at).to_rfc3339(),
                    k.label
                );
            }
            Ok(())
        }
        KeysCommand::Revoke { id } => {
            let store = open_store(config).await?;
            let key = store.list_keys(None).await?.into_iter().find(|k| k.id == id);
            let Some(key) = key else { bail!("no key with id {id} (see `trail keys list`)") };
            revoke_key(&store, &key).await?;
            store.close();
            println!("revoked key {id} ({})", key.prefix);
            Ok(())
        }
        KeysCommand::Verifier { org, installation } => {
            let org = match org {
                Some(org) if org == trail_store::installation::RESERVED_SLUGS[1] => {
                    trail_store::installation::LOG_NAME.to_string()
                }
                Some(org) => {
                    check_slug(&org)?;
                    org
                }
                None if installation => trail_store::installation::LOG_NAME.to_string(),
                None => bail!("give --org ORG or --installation"),
            };
            let key = signing_key(config, false)?;
            println!(
                "{}",
                trail_core::checkpoint::verifier_key(&format!("{}/{org}", config.name), &key.verifying_key())
            );
            Ok(())
        }
    }
}

/// Creates a key; returns it and its id.
pub(crate) async fn new_key(store: &dyn Store, org: &str, scope: KeyScope, label: &str) -> Result<(String, i64)> {
    Ok(trail_server::create_api_key(store, org, scope, label).await?)
}

/// Revokes a key, recorded in its organization's log.
pub(crate) async fn revoke_key(store: &DynStore, key: &trail_store::ApiKey) -> Result<()> {
    store.revoke_key(None, key.id).await?;
    let resource = serde_json::json!({"type": "api_key", "id": key.id.to_string(), "name": key.prefix});
    let state = cli_state(store.clone());
    trail_server::work::selfaudit::record_system(&state, &key.org, "api_key:revoke", resource, serde_json::json!({}))
        .await;
    Ok(())
}
