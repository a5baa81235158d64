//! Conformance checks of accounts and jobs: API keys, users, sessions, roles, login
//! throttling and scheduled exports.

use super::{seed_org, NOW};
use crate::{Categories, KeyScope, NewKey, NewUser, Role, Session, Store, StoreError, UserChange};
use trail_core::Timestamp;

pub async fn schedules_are_kept_per_org(store: &dyn Store) {
    seed_org(store, "acme").await;
    seed_org(store, "globex").await;
    let s = crate::Schedule {
        id: 0,
        org: "acme".into(),
        name: "weekly failed logins".into(),
        weekday: Some(0),
        at_minute: 6 * 60,
        query: "category:auth result:FAILED".into(),
        format: "csv".into(),
        recipients: vec!["sec@acme.com".into(), "ciso@acme.com".into()],
        directory: Some("weekly".into()),
        created_by: "ann@acme.com".into(),
        next_run: 1_000,
        last_run: None,
    };
    let made = store.create_schedule(s.clone()).await.unwrap();
    assert_eq!(made, crate::Schedule { id: made.id, ..s.clone() });
    store.create_schedule(crate::Schedule { org: "globex".into(), ..s.clone() }).await.unwrap();
    assert_eq!(store.schedules(Some("acme")).await.unwrap(), vec![made.clone()]);
    assert_eq!(store.schedules(None).await.unwrap().len(), 2);
    store.schedule_ran(made.id, Timestamp(1_500), Timestamp(9_000)).await.unwrap();
    let after = &store.schedules(Some("acme")).await.unwrap()[0];
    assert_eq!((after.last_run, after.next_run), (Some(1_500), 9_000));
    assert!(!store.delete_schedule(Some("globex"), made.id).await.unwrap());
    assert!(store.delete_schedule(Some("acme"), made.id).await.unwrap());
    assert!(store.schedules(Some("acme")).await.unwrap().is_empty());
}

fn new_key(org: &str, scope: KeyScope, hash: [u8; 32]) -> NewKey {
    NewKey { org: org.into(), scope, hash, prefix: "trail_xx_ab".into(), user_id: None, label: "test".into() }
}

pub async fn keys_are_found_by_hash(store: &dyn Store) {
    seed_org(store, "acme").await;
    let id = store.create_key(new_key("acme", KeyScope::Read, [7; 32])).await.unwrap();
    let k = store.find_key([7; 32]).await.unwrap().unwrap();
    assert_eq!((k.id, k.org.as_str(), k.scope, k.revoked), (id, "acme", KeyScope::Read, false));
    assert_eq!(k.label, "test");
    assert!(store.find_key([8; 32]).await.unwrap().is_none());
    assert!(matches!(
        store.create_key(new_key("nobody", KeyScope::Read, [9; 32])).await,
        Err(StoreError::UnknownOrg(_))
    ));
    assert_eq!(store.orgs().await.unwrap().len(), 1);
}

pub async fn keys_are_listed_and_revoked_per_org(store: &dyn Store) {
    seed_org(store, "acme").await;
    seed_org(store, "globex").await;
    let a = store.create_key(new_key("acme", KeyScope::Ingest, [1; 32])).await.unwrap();
    let g = store.create_key(new_key("globex", KeyScope::Admin, [2; 32])).await.unwrap();
    assert_eq!(store.list_keys(Some("acme")).await.unwrap().iter().map(|k| k.id).collect::<Vec<_>>(), vec![a]);
    assert_eq!(store.list_keys(None).await.unwrap().len(), 2);
    // Another organization's key cannot be revoked through this one.
    assert!(!store.revoke_key(Some("acme"), g).await.unwrap());
    assert!(!store.find_key([2; 32]).await.unwrap().unwrap().revoked);
    assert!(store.revoke_key(Some("globex"), g).await.unwrap());
    assert!(store.find_key([2; 32]).await.unwrap().unwrap().revoked);
    assert!(store.revoke_key(None, a).await.unwrap());
    assert!(!store.revoke_key(None, 999_999).await.unwrap());
}

pub async fn users_sessions_and_roles(store: &dyn Store) {
    seed_org(store, "acme").await;
    seed_org(store, "globex").await;
    let new = |org: &str, email: &str| NewUser {
        org: org.into(),
        email: email.into(),
        name: "Ann".into(),
        role: "viewer".into(),
        password_hash: "$argon2id$x".into(),
        must_change: true,
    };
    let ann = store.create_user(new("acme", "ann@acme.com")).await.unwrap();
    assert_eq!((ann.org.as_str(), ann.role.as_str(), ann.must_change, ann.disabled), ("acme", "viewer", true, false));
    // An email is unique within an organization; another may have its own account.
    let dup = store.create_user(new("acme", "ANN@acme.com")).await;
    assert!(matches!(dup, Err(StoreError::Invalid { ref field, .. }) if field == "email"), "{dup:?}");
    assert!(matches!(store.create_user(new("nobody", "x@y.z")).await, Err(StoreError::UnknownOrg(_))));
    store.create_user(new("globex", "gil@globex.com")).await.unwrap();
    let twin = store.create_user(new("globex", "ANN@acme.com")).await.unwrap();
    let found: Vec<i64> = store.users_by_email("Ann@Acme.com").await.unwrap().iter().map(|u| u.id).collect();
    assert_eq!(found.len(), 2);
    assert!(found.contains(&ann.id) && found.contains(&twin.id));
    assert_eq!(store.list_users(Some("acme")).await.unwrap().len(), 1);
    assert_eq!(store.list_users(None).await.unwrap().len(), 3);
    let changed = store
        .update_user(
            ann.id,
            UserChange {
                role: Some("auditor".into()),
                password: Some(("$argon2id$y".into(), false)),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (changed.role.as_str(), changed.password_hash.as_str(), changed.must_change),
        ("auditor", "$argon2id$y", false)
    );
    assert!(store.update_user(999_999, UserChange::default()).await.unwrap().is_none());

    let s = |hash: u8, expires_at: i64| Session {
        hash: [hash; 32],
        user_id: ann.id,
        csrf: "c".into(),
        created_at: 10,
        expires_at,
    };
    store.create_session(s(1, 1_000)).await.unwrap();
    store.create_session(s(2, 1_000)).await.unwrap();
    assert_eq!(store.find_session([1; 32], Timestamp(500)).await.unwrap(), Some(s(1, 1_000)));
    assert!(store.find_session([1; 32], Timestamp(1_000)).await.unwrap().is_none(), "expired");
    assert!(store.find_session([3; 32], Timestamp(500)).await.unwrap().is_none());
    store.delete_sessions([1; 32], false).await.unwrap();
    assert!(store.find_session([1; 32], Timestamp(500)).await.unwrap().is_none());
    assert!(store.find_session([2; 32], Timestamp(500)).await.unwrap().is_some());
    store.create_session(s(4, 1_000)).await.unwrap();
    store.delete_sessions([4; 32], true).await.unwrap();
    assert!(store.find_session([2; 32], Timestamp(500)).await.unwrap().is_none());
    // Disabling a user ends the user's sessions.
    store.create_session(s(5, 1_000)).await.unwrap();
    // A new password ends every session of the user but the one that set it.
    for h in [6, 7, 8] {
        store.create_session(s(h, 1_000)).await.unwrap();
    }
    let change =
        UserChange { password: Some(("$argon2id$z".into(), false)), keep_session: Some([7; 32]), ..Default::default() };
    store.update_user(ann.id, change).await.unwrap();
    let alive =
        [6u8, 7, 8].map(|h| async move { store.find_session([h; 32], Timestamp(500)).await.unwrap().is_some() });
    assert_eq!(futures::future::join_all(alive).await, [false, true, false]);
    store
        .update_user(ann.id, UserChange { password: Some(("$argon2id$w".into(), true)), ..Default::default() })
        .await
        .unwrap();
    assert!(store.find_session([7; 32], Timestamp(500)).await.unwrap().is_none(), "an admin reset ends them all");
    store.create_session(s(5, 1_000)).await.unwrap();
    store.update_user(ann.id, UserChange { disabled: Some(true), ..Default::default() }).await.unwrap();
    assert!(store.find_session([5; 32], Timestamp(500)).await.unwrap().is_none());

    let role = Role {
        org: "acme".into(),
        name: "sec-viewer".into(),
        view: Categories::Except(vec!["secret".into()]),
        export: Categories::Only(vec!["auth".into()]),
    };
    store.put_role(role.clone()).await.unwrap();
    assert_eq!(store.roles("acme").await.unwrap(), vec![role.clone()]);
    assert!(store.roles("globex").await.unwrap().is_empty());
    store.put_role(Role { view: Categories::All, ..role.clone() }).await.unwrap();
    assert_eq!(store.roles("acme").await.unwrap()[0].view, Categories::All);
    assert!(!store.delete_role("globex", "sec-viewer").await.unwrap());
    assert!(store.delete_role("acme", "sec-viewer").await.unwrap());
    assert!(store.roles("acme").await.unwrap().is_empty());
}

pub async fn login_attempts_are_counted_atomically(store: &dyn Store) {
    use crate::throttle::{ThrottleKey, ACCOUNT_ATTEMPTS, IP_ATTEMPTS};
    let keys = |acct: &str| {
        vec![
            ThrottleKey { key: format!("acct:{acct}"), limit: ACCOUNT_ATTEMPTS, forget_on_success: true },
            ThrottleKey { key: "ip:192.0.2.1".into(), limit: IP_ATTEMPTS, forget_on_success: false },
        ]
    };
    let now = NOW.0;
    // 50 attempts at once: only as many as the limit get to check a password.
    let tries = (0..50).map(|_| store.login_attempt(keys("ann"), Timestamp(now)));
    let answers: Vec<Option<u64>> = futures::future::try_join_all(tries).await.unwrap();
    assert_eq!(answers.iter().filter(|a| a.is_none()).count(), ACCOUNT_ATTEMPTS as usize, "{answers:?}");
    assert!(answers.iter().flatten().all(|w| *w == 60), "{answers:?}");
    assert_eq!(store.login_attempt(keys("ann"), Timestamp(now + 59_000_000)).await.unwrap(), Some(1));
    // After the lock: one more attempt, which doubles it.
    assert_eq!(store.login_attempt(keys("ann"), Timestamp(now + 61_000_000)).await.unwrap(), None);
    assert_eq!(store.login_attempt(keys("ann"), Timestamp(now + 62_000_000)).await.unwrap(), Some(119));
    // Another account from the same address is still let in, until the address's limit.
    let mut let_in = 0;
    for i in 0..30 {
        if store.login_attempt(keys(&format!("user{i}")), Timestamp(now + 63_000_000)).await.unwrap().is_none() {
            let_in += 1;
        }
    }
    assert_eq!(let_in, IP_ATTEMPTS as usize - ACCOUNT_ATTEMPTS as usize - 1);
    // A success forgets the account's count and takes its attempt back from the
    // address: after it, the address still has all its attempts.
    let later = now + 3 * 3_600_000_000;
    assert_eq!(store.login_attempt(keys("bob"), Timestamp(later)).await.unwrap(), None);
    store.login_succeeded(keys("bob")).await.unwrap();
    for i in 0..IP_ATTEMPTS {
        assert_eq!(store.login_attempt(keys(&format!("other{i}")), Timestamp(later)).await.unwrap(), None, "{i}");
    }
    assert!(store.login_attempt(keys("bob"), Timestamp(later)).await.unwrap().is_some(), "the address is locked now");
}
