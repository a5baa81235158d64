//! The first start: an organization and a platform administrator with a one-time
//! password, made once on a store without users.

use super::{
    credentials::{hash_password, one_time_password},
    selfaudit, Services, WorkError,
};

/// The first platform administrator, made on first start.
#[derive(Debug, Clone)]
pub struct Bootstrapped {
    pub org: String,
    pub email: String,
    pub one_time_password: String,
}

/// On a store without users: makes sure an organization exists (the first one, or
/// `org` when there is none) and creates a platform administrator with a one-time
/// password, returned so that it can be printed once.
pub async fn bootstrap(st: &Services, org: &str) -> Result<Option<Bootstrapped>, WorkError> {
    if !st.store.list_users(None).await?.is_empty() {
        return Ok(None);
    }
    let org = match st.store.orgs().await?.into_iter().next() {
        Some(o) => o.slug,
        None => {
            st.store.ensure_org(trail_store::Org { slug: org.into(), name: org.into() }).await?;
            org.to_string()
        }
    };
    let password = one_time_password();
    let pw = password.clone();
    let hash = tokio::task::spawn_blocking(move || hash_password(&pw))
        .await
        .map_err(|e| WorkError::Internal(e.to_string()))??;
    let email = "admin@trail.local".to_string();
    let made = st
        .store
        .create_user(trail_store::NewUser {
            org: org.clone(),
            email: email.clone(),
            name: "Platform administrator".into(),
            role: "platform_admin".into(),
            password_hash: hash,
            must_change: true,
        })
        .await;
    let user = match made {
        Ok(u) => u,
        // Another server sharing the database bootstrapped at the same moment.
        Err(trail_store::StoreError::Invalid { field, .. }) if field == "email" => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let resource = serde_json::json!({"type": "user", "id": user.id.to_string(), "name": email});
    selfaudit::record_system(st, &org, "user:create", resource, serde_json::json!({"role": "platform_admin"})).await;
    Ok(Some(Bootstrapped { org, email, one_time_password: password }))
}
