//! Users, sessions, custom roles and API keys in SQLite. These are rare, small writes,
//! made on their own connection beside the event writer.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Params, TransactionBehavior};
use trail_core::Timestamp;

use super::SqliteStore;
use crate::{
    throttle::{self, Count, ThrottleKey, WINDOW},
    Accounts, ApiKey, Categories, Exclusive, Jobs, KeyScope, NewKey, NewUser, Org, Role, Schedule, Session, StoreError,
    User, UserChange,
};

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn org_id(c: &Connection, slug: &str) -> Result<i64, StoreError> {
    c.query_row("SELECT id FROM orgs WHERE slug = ?1", [slug], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::UnknownOrg(slug.to_string()))
}

pub(super) fn create_key(c: &Connection, key: &NewKey) -> Result<i64, StoreError> {
    let org = org_id(c, &key.org)?;
    c.execute(
        "INSERT INTO api_keys (org_id, scope, hash, prefix, created_at, user_id, label) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![org, key.scope.as_str(), &key.hash[..], key.prefix, now_us(), key.user_id, key.label],
    )?;
    Ok(c.last_insert_rowid())
}

/// Keys matching a condition on `k` (api_keys) and `o` (orgs).
pub(super) fn keys(c: &Connection, cond: &str, p: impl Params) -> Result<Vec<ApiKey>, StoreError> {
    let sql = format!(
        "SELECT k.id, o.slug, k.scope, k.prefix, k.revoked_at IS NOT NULL, k.user_id, k.label, k.created_at, \
         k.hash FROM api_keys k JOIN orgs o ON o.id = k.org_id WHERE {cond} ORDER BY k.id"
    );
    let mut stmt = c.prepare_cached(&sql)?;
    let rows = stmt.query_map(p, |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, bool>(4)?,
            r.get::<_, Option<i64>>(5)?,
            r.get::<_, String>(6)?,
            r.get::<_, i64>(7)?,
            r.get::<_, Vec<u8>>(8)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, org, scope, prefix, revoked, user_id, label, created_at, hash) = row?;
        let hash = hash.try_into().map_err(|_| StoreError::Corrupt(format!("the hash of key {id} is not 32 bytes")))?;
        if let Some(scope) = KeyScope::parse(&scope) {
            out.push(ApiKey { id, org, scope, prefix, revoked, user_id, label, created_at, hash });
        }
    }
    Ok(out)
}

pub(super) fn revoke_key(c: &Connection, org: Option<&str>, id: i64) -> Result<bool, StoreError> {
    let n = c.execute(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?3) WHERE id = ?1 \
         AND (?2 IS NULL OR org_id = (SELECT id FROM orgs WHERE slug = ?2))",
        params![id, org, now_us()],
    )?;
    Ok(n > 0)
}

pub(super) fn create_user(c: &Connection, u: &NewUser) -> Result<User, StoreError> {
    let org = org_id(c, &u.org)?;
    // Within the organization only: whether the address has an account in another one
    // is not the business of this one.
    let taken: bool = c.query_row(
        "SELECT EXISTS(SELECT 1 FROM users WHERE org_id = ?1 AND email = ?2)",
        params![org, &u.email],
        |r| r.get(0),
    )?;
    if taken {
        return Err(StoreError::Invalid {
            field: "email".into(),
            message: "a user with this email exists in this organization".into(),
        });
    }
    c.execute(
        "INSERT INTO users (org_id, email, name, role, password, must_change, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![org, u.email, u.name, u.role, u.password_hash, u.must_change, now_us()],
    )?;
    let id = c.last_insert_rowid();
    users(c, "u.id = ?1", params![id])?.pop().ok_or_else(|| StoreError::Corrupt("user vanished".into()))
}

/// Users matching a condition on `u` (users) and `o` (orgs).
pub(super) fn users(c: &Connection, cond: &str, p: impl Params) -> Result<Vec<User>, StoreError> {
    let sql = format!(
        "SELECT u.id, o.slug, u.email, u.name, u.role, u.password, u.must_change, u.disabled, u.created_at \
         FROM users u JOIN orgs o ON o.id = u.org_id WHERE {cond} ORDER BY u.email"
    );
    let mut stmt = c.prepare_cached(&sql)?;
    let rows = stmt.query_map(p, |r| {
        Ok(User {
            id: r.get(0)?,
            org: r.get(1)?,
            email: r.get(2)?,
            name: r.get(3)?,
            role: r.get(4)?,
            password_hash: r.get(5)?,
            must_change: r.get(6)?,
            disabled: r.get(7)?,
            created_at: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub(super) fn update_user(c: &mut Connection, id: i64, ch: &UserChange) -> Result<Option<User>, StoreError> {
    let tx = c.transaction()?;
    if let Some(role) = &ch.role {
        tx.execute("UPDATE users SET role = ?2 WHERE id = ?1", params![id, role])?;
    }
    if let Some(d) = ch.disabled {
        tx.execute("UPDATE users SET disabled = ?2 WHERE id = ?1", params![id, d])?;
        if d {
            tx.execute("DELETE FROM sessions WHERE user_id = ?1", [id])?;
        }
    }
    if let Some(name) = &ch.name {
        tx.execute("UPDATE users SET name = ?2 WHERE id = ?1", params![id, name])?;
    }
    if let Some((hash, must_change)) = &ch.password {
        tx.execute("UPDATE users SET password = ?2, must_change = ?3 WHERE id = ?1", params![id, hash, must_change])?;
        let keep = ch.keep_session.map(|h| h.to_vec());
        tx.execute("DELETE FROM sessions WHERE user_id = ?1 AND (?2 IS NULL OR hash <> ?2)", params![id, keep])?;
    }
    let user = users(&tx, "u.id = ?1", params![id])?.pop();
    tx.commit()?;
    Ok(user)
}

fn throttle_count(c: &Connection, key: &str) -> Result<Count, StoreError> {
    let row = c
        .query_row("SELECT attempts, last, locked_until FROM login_throttle WHERE key = ?1", [key], |r| {
            Ok(Count { attempts: r.get(0)?, last: r.get(1)?, locked_until: r.get(2)? })
        })
        .optional()?;
    Ok(row.unwrap_or_default())
}

fn put_throttle_count(c: &Connection, key: &str, n: Count) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO login_throttle (key, attempts, last, locked_until) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (key) DO UPDATE SET attempts = ?2, last = ?3, locked_until = ?4",
        params![key, n.attempts, n.last, n.locked_until],
    )?;
    Ok(())
}

/// Checks and counts in one write transaction (taken at its start, so that two
/// connections cannot both read the count before either writes it).
pub(super) fn login_attempt(c: &mut Connection, keys: &[ThrottleKey], now: i64) -> Result<Option<u64>, StoreError> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let counts = keys.iter().map(|k| throttle_count(&tx, &k.key)).collect::<Result<Vec<_>, _>>()?;
    let new = match throttle::attempt(keys, &counts, now) {
        Ok(new) => new,
        Err(wait) => return Ok(Some(wait)),
    };
    for (k, n) in keys.iter().zip(new) {
        put_throttle_count(&tx, &k.key, n)?;
    }
    tx.execute("DELETE FROM login_throttle WHERE last < ?1 AND locked_until <= ?2", params![now - WINDOW, now])?;
    tx.commit()?;
    Ok(None)
}

pub(super) fn login_succeeded(c: &mut Connection, keys: &[ThrottleKey]) -> Result<(), StoreError> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for k in keys {
        if k.forget_on_success {
            tx.execute("DELETE FROM login_throttle WHERE key = ?1", [&k.key])?;
        } else {
            let n = throttle_count(&tx, &k.key)?.uncounted(k.limit);
            put_throttle_count(&tx, &k.key, n)?;
        }
    }
    tx.commit()?;
    Ok(())
}

pub(super) fn create_session(c: &Connection, s: &Session) -> Result<(), StoreError> {
    // Expired sessions are swept whenever a new one starts.
    c.execute("DELETE FROM sessions WHERE expires_at < ?1", [s.created_at])?;
    c.execute(
        "INSERT INTO sessions (hash, user_id, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![&s.hash[..], s.user_id, s.csrf, s.created_at, s.expires_at],
    )?;
    Ok(())
}

pub(super) fn find_session(c: &Connection, hash: [u8; 32], now: i64) -> Result<Option<Session>, StoreError> {
    Ok(c.prepare_cached(
        "SELECT user_id, csrf, created_at, expires_at FROM sessions WHERE hash = ?1 AND expires_at > ?2",
    )?
    .query_row(params![&hash[..], now], |r| {
        Ok(Session { hash, user_id: r.get(0)?, csrf: r.get(1)?, created_at: r.get(2)?, expires_at: r.get(3)? })
    })
    .optional()?)
}

pub(super) fn delete_sessions(c: &Connection, hash: [u8; 32], all_of_user: bool) -> Result<(), StoreError> {
    if all_of_user {
        c.execute("DELETE FROM sessions WHERE user_id = (SELECT user_id FROM sessions WHERE hash = ?1)", [&hash[..]])?;
    } else {
        c.execute("DELETE FROM sessions WHERE hash = ?1", [&hash[..]])?;
    }
    Ok(())
}

pub(super) fn put_role(c: &Connection, role: &Role) -> Result<(), StoreError> {
    let org = org_id(c, &role.org)?;
    c.execute(
        "INSERT INTO roles (org_id, name, view, export) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT(org_id, name) DO UPDATE SET view = excluded.view, export = excluded.export",
        params![org, role.name, role.view.render(), role.export.render()],
    )?;
    Ok(())
}

pub(super) fn roles(c: &Connection, org: &str) -> Result<Vec<Role>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT o.slug, r.name, r.view, r.export FROM roles r JOIN orgs o ON o.id = r.org_id \
         WHERE o.slug = ?1 ORDER BY r.name",
    )?;
    let rows = stmt.query_map([org], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (org, name, view, export) = row?;
        let parse = |s: &str| Categories::parse(s).map_err(|e| StoreError::Corrupt(format!("role {name}: {e}")));
        out.push(Role { view: parse(&view)?, export: parse(&export)?, org, name: name.clone() });
    }
    Ok(out)
}

pub(super) fn delete_role(c: &Connection, org: &str, name: &str) -> Result<bool, StoreError> {
    let org = org_id(c, org)?;
    Ok(c.execute("DELETE FROM roles WHERE org_id = ?1 AND name = ?2", params![org, name])? > 0)
}

pub(super) fn create_schedule(c: &Connection, s: &Schedule) -> Result<Schedule, StoreError> {
    let org = org_id(c, &s.org)?;
    let recipients = serde_json::to_string(&s.recipients).unwrap_or_else(|_| "[]".into());
    c.execute(
        "INSERT INTO schedules (org_id, name, weekday, at_minute, query, format, recipients, directory, created_by, \
         next_run) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            org,
            s.name,
            s.weekday,
            s.at_minute,
            s.query,
            s.format,
            recipients,
            s.directory,
            s.created_by,
            s.next_run
        ],
    )?;
    let id = c.last_insert_rowid();
    schedules(c, "s.id = ?1", params![id])?.pop().ok_or_else(|| StoreError::Corrupt("schedule vanished".into()))
}

pub(super) fn schedules(c: &Connection, cond: &str, p: impl Params) -> Result<Vec<Schedule>, StoreError> {
    let sql = format!(
        "SELECT s.id, o.slug, s.name, s.weekday, s.at_minute, s.query, s.format, s.recipients, s.directory, \
         s.created_by, s.next_run, s.last_run FROM schedules s JOIN orgs o ON o.id = s.org_id WHERE {cond} ORDER BY s.id"
    );
    let mut stmt = c.prepare_cached(&sql)?;
    let rows = stmt.query_map(p, |r| {
        let recipients: String = r.get(7)?;
        Ok(Schedule {
            id: r.get(0)?,
            org: r.get(1)?,
            name: r.get(2)?,
            weekday: r.get(3)?,
            at_minute: r.get(4)?,
            query: r.get(5)?,
            format: r.get(6)?,
            recipients: serde_json::from_str(&recipients).unwrap_or_default(),
            directory: r.get(8)?,
            created_by: r.get(9)?,
            next_run: r.get(10)?,
            last_run: r.get(11)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

#[async_trait]
impl Accounts for SqliteStore {
    async fn ensure_org(&self, org: Org) -> Result<(), StoreError> {
        self.admin(move |c| {
            c.execute(
                "INSERT INTO orgs (slug, name, created_at) VALUES (?1, ?2, ?3) ON CONFLICT(slug) DO NOTHING",
                params![org.slug, org.name, chrono::Utc::now().timestamp_micros()],
            )?;
            Ok(())
        })
        .await
    }

    async fn orgs(&self) -> Result<Vec<Org>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached("SELECT slug, name FROM orgs ORDER BY slug")?;
            let rows = stmt.query_map([], |r| Ok(Org { slug: r.get(0)?, name: r.get(1)? }))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn create_key(&self, key: NewKey) -> Result<i64, StoreError> {
        self.admin(move |c| create_key(c, &key)).await
    }

    async fn find_key(&self, hash: [u8; 32]) -> Result<Option<ApiKey>, StoreError> {
        self.read(move |c| keys(c, "k.hash = ?1", params![&hash[..]]).map(|mut k| k.pop())).await
    }

    async fn list_keys(&self, org: Option<&str>) -> Result<Vec<ApiKey>, StoreError> {
        let org = org.map(str::to_string);
        self.read(move |c| keys(c, "(?1 IS NULL OR o.slug = ?1)", params![org])).await
    }

    async fn revoke_key(&self, org: Option<&str>, id: i64) -> Result<bool, StoreError> {
        let org = org.map(str::to_string);
        self.admin(move |c| revoke_key(c, org.as_deref(), id)).await
    }

    async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
        self.admin(move |c| create_user(c, &user)).await
    }

    async fn user(&self, id: i64) -> Result<Option<User>, StoreError> {
        self.read(move |c| users(c, "u.id = ?1", params![id]).map(|mut u| u.pop())).await
    }

    async fn users_by_email(&self, email: &str) -> Result<Vec<User>, StoreError> {
        let email = email.to_string();
        self.read(move |c| users(c, "u.email = ?1", params![email])).await
    }

    async fn list_users(&self, org: Option<&str>) -> Result<Vec<User>, StoreError> {
        let org = org.map(str::to_string);
        self.read(move |c| users(c, "(?1 IS NULL OR o.slug = ?1)", params![org])).await
    }

    async fn update_user(&self, id: i64, change: UserChange) -> Result<Option<User>, StoreError> {
        self.admin(move |c| update_user(c, id, &change)).await
    }

    async fn create_session(&self, session: Session) -> Result<(), StoreError> {
        self.admin(move |c| create_session(c, &session)).await
    }

    async fn find_session(&self, hash: [u8; 32], now: Timestamp) -> Result<Option<Session>, StoreError> {
        let now = now.0;
        self.read(move |c| find_session(c, hash, now)).await
    }

    async fn delete_sessions(&self, hash: [u8; 32], all_of_user: bool) -> Result<(), StoreError> {
        self.admin(move |c| delete_sessions(c, hash, all_of_user)).await
    }

    async fn login_attempt(&self, keys: Vec<ThrottleKey>, now: Timestamp) -> Result<Option<u64>, StoreError> {
        let now = now.0;
        self.admin(move |c| login_attempt(c, &keys, now)).await
    }

    async fn login_succeeded(&self, keys: Vec<ThrottleKey>) -> Result<(), StoreError> {
        self.admin(move |c| login_succeeded(c, &keys)).await
    }

    async fn put_role(&self, role: Role) -> Result<(), StoreError> {
        self.admin(move |c| put_role(c, &role)).await
    }

    async fn roles(&self, org: &str) -> Result<Vec<Role>, StoreError> {
        let org = org.to_string();
        self.read(move |c| roles(c, &org)).await
    }

    async fn delete_role(&self, org: &str, name: &str) -> Result<bool, StoreError> {
        let (org, name) = (org.to_string(), name.to_string());
        self.admin(move |c| delete_role(c, &org, &name)).await
    }
}

#[async_trait]
impl Jobs for SqliteStore {
    async fn create_schedule(&self, schedule: Schedule) -> Result<Schedule, StoreError> {
        self.admin(move |c| create_schedule(c, &schedule)).await
    }

    async fn schedules(&self, org: Option<&str>) -> Result<Vec<Schedule>, StoreError> {
        let org = org.map(str::to_string);
        self.read(move |c| schedules(c, "(?1 IS NULL OR o.slug = ?1)", params![org])).await
    }

    async fn delete_schedule(&self, org: Option<&str>, id: i64) -> Result<bool, StoreError> {
        let org = org.map(str::to_string);
        self.admin(move |c| {
            let n = c.execute(
                "DELETE FROM schedules WHERE id = ?1 AND (?2 IS NULL OR org_id = (SELECT id FROM orgs WHERE slug = ?2))",
                params![id, org],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn schedule_ran(&self, id: i64, ran_at: Timestamp, next_run: Timestamp) -> Result<(), StoreError> {
        let ran_at = ran_at.0;
        let next_run = next_run.0;
        self.admin(move |c| {
            c.execute(
                "UPDATE schedules SET last_run = ?2, next_run = ?3 WHERE id = ?1",
                params![id, ran_at, next_run],
            )?;
            Ok(())
        })
        .await
    }

    /// An `flock` on `<database>.<name>.lock` beside the database: held by one open
    /// file at a time, whether the other holder is this process (the nightly job and a
    /// manual run) or another (`trail retention run` beside `trail serve`). Released
    /// when the returned guard is dropped, or when its process ends.
    async fn exclusive(&self, name: &str) -> Result<Option<Exclusive>, StoreError> {
        let mut path = self.path().as_os_str().to_owned();
        path.push(format!(".{name}.lock"));
        tokio::task::spawn_blocking(move || {
            let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
            match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => Ok(Some(Exclusive(Box::new(file)))),
                Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
                Err(e) => Err(StoreError::from(std::io::Error::from(e))),
            }
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }
}
