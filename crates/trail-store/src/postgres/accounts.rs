//! Organizations, API keys, users, sessions, login throttling, custom roles and
//! scheduled exports in PostgreSQL, and the advisory lock of `exclusive`.

use async_trait::async_trait;
use sha2::Digest;
use tokio_postgres::Row;
use trail_core::Timestamp;

use super::{now_us, org_id, pg, PgStore};
use crate::{
    throttle::{self, ThrottleKey},
    Accounts, ApiKey, Categories, Exclusive, Jobs, KeyScope, NewKey, NewUser, Org, Role, Schedule, Session, StoreError,
    User, UserChange,
};

pub(super) fn user_row(r: &Row) -> User {
    User {
        id: r.get("id"),
        org: r.get("slug"),
        email: r.get("email"),
        name: r.get("name"),
        role: r.get("role"),
        password_hash: r.get("password"),
        must_change: r.get("must_change"),
        disabled: r.get("disabled"),
        created_at: r.get("created_at"),
    }
}

pub(super) const USER_SELECT: &str =
    "SELECT u.id, o.slug, u.email, u.name, u.role, u.password, u.must_change, u.disabled, \
    u.created_at FROM users u JOIN orgs o ON o.id = u.org_id";

pub(super) fn key_row(r: &Row) -> Option<ApiKey> {
    Some(ApiKey {
        id: r.get(0),
        org: r.get(1),
        scope: KeyScope::parse(r.get(2))?,
        prefix: r.get(3),
        revoked: r.get::<_, Option<i64>>(4).is_some(),
        user_id: r.get(5),
        label: r.get(6),
        created_at: r.get(7),
        hash: r.get::<_, &[u8]>(8).try_into().ok()?,
    })
}

pub(super) const KEY_SELECT: &str =
    "SELECT k.id, o.slug, k.scope, k.prefix, k.revoked_at, k.user_id, k.label, k.created_at, \
    k.hash FROM api_keys k JOIN orgs o ON o.id = k.org_id";

pub(super) fn schedule_row(r: &Row) -> Schedule {
    let recipients: String = r.get(7);
    Schedule {
        id: r.get(0),
        org: r.get(1),
        name: r.get(2),
        weekday: r.get::<_, Option<i16>>(3).map(|d| d as u8),
        at_minute: r.get::<_, i32>(4) as u16,
        query: r.get(5),
        format: r.get(6),
        recipients: serde_json::from_str(&recipients).unwrap_or_default(),
        directory: r.get(8),
        created_by: r.get(9),
        next_run: r.get(10),
        last_run: r.get(11),
    }
}

pub(super) const SCHEDULE_SELECT: &str =
    "SELECT s.id, o.slug, s.name, s.weekday, s.at_minute, s.query, s.format, s.recipients, \
    s.directory, s.created_by, s.next_run, s.last_run FROM schedules s JOIN orgs o ON o.id = s.org_id";

#[async_trait]
impl Accounts for PgStore {
    async fn ensure_org(&self, org: Org) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO orgs (slug, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (slug) DO NOTHING",
            &[&org.slug, &org.name, &now_us()],
        )
        .await
        .map_err(pg)?;
        Ok(())
    }

    async fn orgs(&self) -> Result<Vec<Org>, StoreError> {
        let c = self.client().await?;
        let rows = c.query("SELECT slug, name FROM orgs ORDER BY slug", &[]).await.map_err(pg)?;
        Ok(rows.iter().map(|r| Org { slug: r.get(0), name: r.get(1) }).collect())
    }

    async fn create_key(&self, key: NewKey) -> Result<i64, StoreError> {
        let c = self.client().await?;
        let org = org_id(&c, &key.org).await?;
        let r = c
            .query_one(
                "INSERT INTO api_keys (org_id, scope, hash, prefix, created_at, user_id, label) VALUES ($1, $2, $3, \
                 $4, $5, $6, $7) RETURNING id",
                &[&org, &key.scope.as_str(), &&key.hash[..], &key.prefix, &now_us(), &key.user_id, &key.label],
            )
            .await
            .map_err(pg)?;
        Ok(r.get(0))
    }

    async fn find_key(&self, hash: [u8; 32]) -> Result<Option<ApiKey>, StoreError> {
        let c = self.client().await?;
        let r = c.query_opt(&format!("{KEY_SELECT} WHERE k.hash = $1"), &[&&hash[..]]).await.map_err(pg)?;
        Ok(r.as_ref().and_then(key_row))
    }

    async fn list_keys(&self, org: Option<&str>) -> Result<Vec<ApiKey>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(&format!("{KEY_SELECT} WHERE ($1::TEXT IS NULL OR o.slug = $1) ORDER BY k.id"), &[&org])
            .await
            .map_err(pg)?;
        Ok(rows.iter().filter_map(key_row).collect())
    }

    async fn revoke_key(&self, org: Option<&str>, id: i64) -> Result<bool, StoreError> {
        let c = self.client().await?;
        let n = c
            .execute(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $3) WHERE id = $1 AND ($2::TEXT IS NULL OR \
                 org_id = (SELECT id FROM orgs WHERE slug = $2))",
                &[&id, &org, &now_us()],
            )
            .await
            .map_err(pg)?;
        Ok(n > 0)
    }

    async fn create_user(&self, u: NewUser) -> Result<User, StoreError> {
        let c = self.client().await?;
        let org = org_id(&c, &u.org).await?;
        // Within the organization only: whether the address has an account in another
        // one is not the business of this one.
        let taken = c
            .query_opt("SELECT 1 FROM users WHERE org_id = $1 AND lower(email) = lower($2)", &[&org, &u.email])
            .await
            .map_err(pg)?;
        let exists = || StoreError::Invalid {
            field: "email".into(),
            message: "a user with this email exists in this organization".into(),
        };
        if taken.is_some() {
            return Err(exists());
        }
        let r = c
            .query_one(
                "INSERT INTO users (org_id, email, name, role, password, must_change, created_at) VALUES ($1, $2, $3, \
                 $4, $5, $6, $7) RETURNING id",
                &[&org, &u.email, &u.name, &u.role, &u.password_hash, &u.must_change, &now_us()],
            )
            .await
            .map_err(|e| {
                if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
                    exists()
                } else {
                    pg(e)
                }
            })?;
        let id: i64 = r.get(0);
        self.user(id).await?.ok_or_else(|| StoreError::Corrupt("user vanished".into()))
    }

    async fn user(&self, id: i64) -> Result<Option<User>, StoreError> {
        let c = self.client().await?;
        Ok(c.query_opt(&format!("{USER_SELECT} WHERE u.id = $1"), &[&id]).await.map_err(pg)?.as_ref().map(user_row))
    }

    async fn users_by_email(&self, email: &str) -> Result<Vec<User>, StoreError> {
        let c = self.client().await?;
        let sql = format!("{USER_SELECT} WHERE lower(u.email) = lower($1) ORDER BY u.id");
        Ok(c.query(&sql, &[&email]).await.map_err(pg)?.iter().map(user_row).collect())
    }

    async fn list_users(&self, org: Option<&str>) -> Result<Vec<User>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(&format!("{USER_SELECT} WHERE ($1::TEXT IS NULL OR o.slug = $1) ORDER BY u.email"), &[&org])
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(user_row).collect())
    }

    async fn update_user(&self, id: i64, ch: UserChange) -> Result<Option<User>, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        if let Some(role) = &ch.role {
            tx.execute("UPDATE users SET role = $2 WHERE id = $1", &[&id, role]).await.map_err(pg)?;
        }
        if let Some(d) = ch.disabled {
            tx.execute("UPDATE users SET disabled = $2 WHERE id = $1", &[&id, &d]).await.map_err(pg)?;
            if d {
                tx.execute("DELETE FROM sessions WHERE user_id = $1", &[&id]).await.map_err(pg)?;
            }
        }
        if let Some(n) = &ch.name {
            tx.execute("UPDATE users SET name = $2 WHERE id = $1", &[&id, n]).await.map_err(pg)?;
        }
        if let Some((hash, must)) = &ch.password {
            tx.execute("UPDATE users SET password = $2, must_change = $3 WHERE id = $1", &[&id, hash, must])
                .await
                .map_err(pg)?;
            let keep = ch.keep_session.map(|h| h.to_vec());
            tx.execute("DELETE FROM sessions WHERE user_id = $1 AND ($2::bytea IS NULL OR hash <> $2)", &[&id, &keep])
                .await
                .map_err(pg)?;
        }
        let r = tx.query_opt(&format!("{USER_SELECT} WHERE u.id = $1"), &[&id]).await.map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(r.as_ref().map(user_row))
    }

    async fn create_session(&self, s: Session) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute("DELETE FROM sessions WHERE expires_at < $1", &[&s.created_at]).await.map_err(pg)?;
        c.execute(
            "INSERT INTO sessions (hash, user_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
            &[&&s.hash[..], &s.user_id, &s.csrf, &s.created_at, &s.expires_at],
        )
        .await
        .map_err(pg)?;
        Ok(())
    }

    async fn find_session(&self, hash: [u8; 32], now: Timestamp) -> Result<Option<Session>, StoreError> {
        let now = now.0;
        let c = self.client().await?;
        let r = c
            .query_opt(
                "SELECT user_id, csrf, created_at, expires_at FROM sessions WHERE hash = $1 AND expires_at > $2",
                &[&&hash[..], &now],
            )
            .await
            .map_err(pg)?;
        Ok(r.map(|r| Session { hash, user_id: r.get(0), csrf: r.get(1), created_at: r.get(2), expires_at: r.get(3) }))
    }

    async fn delete_sessions(&self, hash: [u8; 32], all_of_user: bool) -> Result<(), StoreError> {
        let c = self.client().await?;
        let sql = if all_of_user {
            "DELETE FROM sessions WHERE user_id = (SELECT user_id FROM sessions WHERE hash = $1)"
        } else {
            "DELETE FROM sessions WHERE hash = $1"
        };
        c.execute(sql, &[&&hash[..]]).await.map_err(pg)?;
        Ok(())
    }

    async fn login_attempt(&self, keys: Vec<ThrottleKey>, now: Timestamp) -> Result<Option<u64>, StoreError> {
        let now = now.0;
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        // Rows exist and are locked in key order, so that two servers counting the
        // same keys wait for each other rather than deadlock or both read the old count.
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by(|&a, &b| keys[a].key.cmp(&keys[b].key));
        let mut counts = vec![throttle::Count::default(); keys.len()];
        for i in order {
            let k = &keys[i].key;
            tx.execute("INSERT INTO login_throttle (key) VALUES ($1) ON CONFLICT DO NOTHING", &[k])
                .await
                .map_err(pg)?;
            let r = tx
                .query_one("SELECT attempts, last, locked_until FROM login_throttle WHERE key = $1 FOR UPDATE", &[k])
                .await
                .map_err(pg)?;
            counts[i] = throttle::Count { attempts: r.get::<_, i32>(0) as u32, last: r.get(1), locked_until: r.get(2) };
        }
        let new = match throttle::attempt(&keys, &counts, now) {
            Ok(new) => new,
            Err(wait) => return Ok(Some(wait)),
        };
        for (k, n) in keys.iter().zip(new) {
            tx.execute(
                "UPDATE login_throttle SET attempts = $2, last = $3, locked_until = $4 WHERE key = $1",
                &[&k.key, &(n.attempts as i32), &n.last, &n.locked_until],
            )
            .await
            .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)?;
        // Counts past their window go; rows another server holds are left for later.
        c.execute(
            "DELETE FROM login_throttle WHERE key IN (SELECT key FROM login_throttle \
             WHERE last < $1 AND locked_until <= $2 FOR UPDATE SKIP LOCKED)",
            &[&(now - throttle::WINDOW), &now],
        )
        .await
        .map_err(pg)?;
        Ok(None)
    }

    async fn login_succeeded(&self, keys: Vec<ThrottleKey>) -> Result<(), StoreError> {
        let c = self.client().await?;
        for k in keys {
            if k.forget_on_success {
                c.execute("DELETE FROM login_throttle WHERE key = $1", &[&k.key]).await.map_err(pg)?;
            } else {
                // Taking one attempt back; the lock it may have set is lifted with it.
                c.execute(
                    "UPDATE login_throttle SET attempts = GREATEST(attempts - 1, 0), \
                     locked_until = CASE WHEN attempts = $2 THEN 0 ELSE locked_until END WHERE key = $1",
                    &[&k.key, &(k.limit as i32)],
                )
                .await
                .map_err(pg)?;
            }
        }
        Ok(())
    }

    async fn put_role(&self, role: Role) -> Result<(), StoreError> {
        let c = self.client().await?;
        let org = org_id(&c, &role.org).await?;
        c.execute(
            "INSERT INTO roles (org_id, name, view, export) VALUES ($1, $2, $3, $4) ON CONFLICT (org_id, name) DO \
             UPDATE SET view = excluded.view, export = excluded.export",
            &[&org, &role.name, &role.view.render(), &role.export.render()],
        )
        .await
        .map_err(pg)?;
        Ok(())
    }

    async fn roles(&self, org: &str) -> Result<Vec<Role>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT o.slug, r.name, r.view, r.export FROM roles r JOIN orgs o ON o.id = r.org_id WHERE o.slug = \
                 $1 ORDER BY r.name",
                &[&org],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| {
                let parse = |s: &str| Categories::parse(s).map_err(StoreError::Corrupt);
                Ok(Role { org: r.get(0), name: r.get(1), view: parse(r.get(2))?, export: parse(r.get(3))? })
            })
            .collect()
    }

    async fn delete_role(&self, org: &str, name: &str) -> Result<bool, StoreError> {
        let c = self.client().await?;
        let id = org_id(&c, org).await?;
        Ok(c.execute("DELETE FROM roles WHERE org_id = $1 AND name = $2", &[&id, &name]).await.map_err(pg)? > 0)
    }
}

#[async_trait]
impl Jobs for PgStore {
    async fn create_schedule(&self, s: Schedule) -> Result<Schedule, StoreError> {
        let c = self.client().await?;
        let org = org_id(&c, &s.org).await?;
        let recipients = serde_json::to_string(&s.recipients).unwrap_or_else(|_| "[]".into());
        let r = c
            .query_one(
                "INSERT INTO schedules (org_id, name, weekday, at_minute, query, format, recipients, directory, \
                 created_by, next_run) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                &[
                    &org,
                    &s.name,
                    &s.weekday.map(i16::from),
                    &i32::from(s.at_minute),
                    &s.query,
                    &s.format,
                    &recipients,
                    &s.directory,
                    &s.created_by,
                    &s.next_run,
                ],
            )
            .await
            .map_err(pg)?;
        let id: i64 = r.get(0);
        let r = c.query_one(&format!("{SCHEDULE_SELECT} WHERE s.id = $1"), &[&id]).await.map_err(pg)?;
        Ok(schedule_row(&r))
    }

    async fn schedules(&self, org: Option<&str>) -> Result<Vec<Schedule>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(&format!("{SCHEDULE_SELECT} WHERE ($1::TEXT IS NULL OR o.slug = $1) ORDER BY s.id"), &[&org])
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(schedule_row).collect())
    }

    async fn delete_schedule(&self, org: Option<&str>, id: i64) -> Result<bool, StoreError> {
        let c = self.client().await?;
        let n = c
            .execute(
                "DELETE FROM schedules WHERE id = $1 AND ($2::TEXT IS NULL OR org_id = (SELECT id FROM orgs WHERE \
                 slug = $2))",
                &[&id, &org],
            )
            .await
            .map_err(pg)?;
        Ok(n > 0)
    }

    async fn schedule_ran(&self, id: i64, ran_at: Timestamp, next_run: Timestamp) -> Result<(), StoreError> {
        let ran_at = ran_at.0;
        let next_run = next_run.0;
        let c = self.client().await?;
        c.execute("UPDATE schedules SET last_run = $2, next_run = $3 WHERE id = $1", &[&id, &ran_at, &next_run])
            .await
            .map_err(pg)?;
        Ok(())
    }

    async fn exclusive(&self, name: &str) -> Result<Option<Exclusive>, StoreError> {
        let key = i64::from_le_bytes(sha2::Sha256::digest(name.as_bytes())[..8].try_into().unwrap_or_default());
        // A holder that just let go may not have reached the server yet (its unlock is
        // sent as the guard drops): look again for a moment before answering "held".
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            let c = self.client().await?;
            let got: bool = c.query_one("SELECT pg_try_advisory_lock($1)", &[&key]).await.map_err(pg)?.get(0);
            if got {
                // The lock belongs to this session: the connection leaves the pool; the
                // guard unlocks it when dropped, and the connection then closes.
                let client = deadpool_postgres::Object::take(c);
                return Ok(Some(Exclusive(Box::new(AdvisoryLock { client: Some(client), key }))));
            }
            if std::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// A session advisory lock held on a connection of its own: unlocked (and the
/// connection closed) when dropped.
struct AdvisoryLock {
    client: Option<deadpool_postgres::ClientWrapper>,
    key: i64,
}

impl Drop for AdvisoryLock {
    fn drop(&mut self) {
        let (Some(client), key) = (self.client.take(), self.key) else { return };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&key]).await;
            });
        }
    }
}
