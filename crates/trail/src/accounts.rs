//! `trail users`: people from the command line, each change recorded in the
//! organization's log; and the work layer's services the commands that record share.

use anyhow::{bail, Context, Result};
use trail_server::{ServerConfig, Services};
use trail_store::{DynStore, NewUser, UserChange, BUILTIN_ROLES};

use crate::{
    config::Config,
    log::cut,
    store::{known_org, open_store},
    UsersCommand,
};

/// The work layer's services for commands that record self-audit events.
pub(crate) fn cli_state(store: DynStore) -> Services {
    Services::new(store, ServerConfig::default(), trail_server::system_clock())
}

pub(crate) async fn users_cmd(config: &Config, command: UsersCommand) -> Result<()> {
    let store = open_store(config).await?;
    let state = cli_state(store.clone());
    let check_role = |org: &str, role: &str| {
        let store = store.clone();
        let (org, role) = (org.to_string(), role.to_string());
        async move {
            let custom = store.roles(&org).await?;
            if !BUILTIN_ROLES.contains(&role.as_str()) && !custom.iter().any(|r| r.name.eq_ignore_ascii_case(&role)) {
                bail!("--role must be one of {} or a custom role of {org}, not '{role}'", BUILTIN_ROLES.join(", "));
            }
            Ok(())
        }
    };
    match command {
        UsersCommand::Create { org, email, name, role } => {
            check_slug(&org)?;
            known_org(&*store, &org).await?;
            if !email.contains('@') || email.trim().len() != email.len() {
                bail!("--email must be an email address, not '{email}'");
            }
            check_role(&org, &role).await?;
            let password = trail_server::one_time_password();
            let hash = trail_server::hash_password(&password).map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let user = store
                .create_user(NewUser {
                    org: org.clone(),
                    email: email.to_ascii_lowercase(),
                    name,
                    role: role.clone(),
                    password_hash: hash,
                    must_change: true,
                })
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let resource = serde_json::json!({"type": "user", "id": user.id.to_string(), "name": user.email});
            trail_server::work::selfaudit::record_system(
                &state,
                &org,
                "user:create",
                resource,
                serde_json::json!({"role": role}),
            )
            .await;
            println!("created {} ({}) in {org}", user.email, user.role);
            println!("one-time password (change it at first login): {password}");
        }
        UsersCommand::List { org } => {
            if let Some(o) = &org {
                known_org(&*store, o).await?;
            }
            println!("{:<6} {:<12} {:<32} {:<24} {:<16} State", "Id", "Org", "Email", "Name", "Role");
            for u in store.list_users(org.as_deref()).await? {
                let state = if u.disabled {
                    "disabled"
                } else if u.must_change {
                    "must change password"
                } else {
                    "active"
                };
                println!(
                    "{:<6} {:<12} {:<32} {:<24} {:<16} {state}",
                    u.id,
                    cut(&u.org, 12),
                    cut(&u.email, 32),
                    cut(&u.name, 24),
                    u.role
                );
            }
        }
        UsersCommand::SetRole { email, role, org } => {
            let mut found = store.users_by_email(&email).await?;
            if let Some(o) = &org {
                found.retain(|u| u.org.eq_ignore_ascii_case(o));
            }
            if found.len() > 1 {
                anyhow::bail!("'{email}' has accounts in several organizations: name one with --org");
            }
            let user = found.pop().with_context(|| format!("no user '{email}'"))?;
            check_role(&user.org, &role).await?;
            store.update_user(user.id, UserChange { role: Some(role.clone()), ..UserChange::default() }).await?;
            let resource = serde_json::json!({"type": "user", "id": user.id.to_string(), "name": user.email});
            let details = serde_json::json!({"role": role, "previous_role": user.role});
            trail_server::work::selfaudit::record_system(&state, &user.org, "user:role_change", resource, details)
                .await;
            println!("{} is now {role}", user.email);
        }
    }
    store.close();
    Ok(())
}

pub(crate) fn check_slug(org: &str) -> Result<()> {
    let ok = !org.is_empty()
        && org.len() <= 64
        && org.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        bail!("--org must be 1-64 characters of a-z, 0-9, - or _, not '{org}'");
    }
    if trail_store::installation::RESERVED_SLUGS.contains(&org) {
        bail!("--org '{org}' is the name of the installation's own log; choose another");
    }
    Ok(())
}
