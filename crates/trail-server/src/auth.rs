//! Who is calling and what they may do. A caller is an API key (`Authorization: Bearer`)
//! or a logged-in user (the `trail_session` cookie, with `X-CSRF-Token` on every
//! state-changing request). Keys look like `trail_<scope>_<32 random characters>`; only
//! their SHA-256 is stored, and recently seen keys are cached for a few seconds.
//!
//! Permissions by role (users) and scope (keys):
//!
//! | role / key scope | organizations | view | export | manage users, keys | send events |
//! |---|---|---|---|---|---|
//! | `platform_admin` / `platform` key | all | all | all | yes (any org) | key only |
//! | `org_admin` / `admin` key | own | all | all | yes | key only |
//! | `auditor` / `read` key | own | all | all | no | no |
//! | `viewer` | own | all | no | no | no |
//! | custom role | own | its categories | its categories | no | no |
//! | `ingest` key | own | no | no | no | yes |
//!
//! A personal token (`personal` scope) acts as its user, with the user's role.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::RwLock,
    time::{Duration, Instant},
};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{header, request::Parts, HeaderMap, Method},
};
use trail_store::{ApiKey, Categories, KeyScope, Scope, Session, Store, User};

use serde_json::{json, Value};

use crate::{
    error::ApiError,
    work::credentials::hash_key,
    work::selfaudit::{self, Record},
    AppState,
};

/// How long a looked-up key is trusted before it is read again (so a revocation takes
/// effect within this time).
const KEY_TTL: Duration = Duration::from_secs(10);

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "trail_session";
/// The header state-changing requests of a session must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";

#[derive(Default)]
pub(crate) struct KeyCache {
    keys: RwLock<HashMap<[u8; 32], (ApiKey, Instant)>>,
}

impl KeyCache {
    /// Forgets every cached key (after a revocation, so it takes effect at once here).
    pub(crate) fn clear(&self) {
        if let Ok(mut m) = self.keys.write() {
            m.clear();
        }
    }
}

/// What a caller is allowed to do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Perms {
    /// Sees and manages every organization.
    pub platform: bool,
    /// Manages users, roles and keys of its organization.
    pub manage: bool,
    /// May send events.
    pub write: bool,
    /// Categories it may view, if any.
    pub view: Option<Categories>,
    /// Categories it may export, if any.
    pub export: Option<Categories>,
    /// May read checkpoints and hash tiles (no event content) of its organization: an
    /// `audit` key, for outside auditors and mirrors.
    pub transparency: bool,
}

impl Perms {
    fn of_key(scope: KeyScope) -> Perms {
        let all = Some(Categories::All);
        match scope {
            KeyScope::Ingest => Perms { write: true, ..Perms::default() },
            KeyScope::Read => Perms { view: all.clone(), export: all, ..Perms::default() },
            KeyScope::Admin => Perms { manage: true, write: true, view: all.clone(), export: all, ..Perms::default() },
            KeyScope::Platform => {
                Perms { platform: true, manage: true, write: true, view: all.clone(), export: all, ..Perms::default() }
            }
            KeyScope::Audit => Perms { transparency: true, ..Perms::default() },
            KeyScope::Personal => Perms::default(),
        }
    }

    /// A user's permissions from the role's name (custom roles looked up in the store).
    async fn of_user(store: &dyn Store, user: &User) -> Result<Perms, ApiError> {
        let all = Some(Categories::All);
        Ok(match user.role.as_str() {
            "platform_admin" => {
                Perms { platform: true, manage: true, view: all.clone(), export: all, ..Perms::default() }
            }
            "org_admin" => Perms { manage: true, view: all.clone(), export: all, ..Perms::default() },
            "auditor" => Perms { view: all.clone(), export: all, ..Perms::default() },
            "viewer" => Perms { view: all, ..Perms::default() },
            custom => match store.roles(&user.org).await?.into_iter().find(|r| r.name.eq_ignore_ascii_case(custom)) {
                Some(r) => {
                    // Exporting needs viewing too: keep what both allow.
                    let export = r.view.intersect(&r.export);
                    let export = (!export.is_none()).then_some(export);
                    Perms { view: Some(r.view), export, ..Perms::default() }
                }
                None => Perms::default(),
            },
        })
    }
}

/// Who a caller is.
#[derive(Debug, Clone)]
pub enum Who {
    Key { id: i64, prefix: String, scope: KeyScope },
    User { id: i64, email: String, name: String, role: String },
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The caller's own organization.
    pub org: String,
    pub who: Who,
    pub perms: Perms,
    /// The session, when the caller came with the session cookie.
    pub session: Option<Session>,
    /// The user's password was set by someone else and must be changed first.
    pub must_change: bool,
    /// The client's address and user agent, for the audit trail.
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    /// The hash of the API key the caller came with (to check it again, `recheck`).
    pub key_hash: Option<[u8; 32]>,
}

impl Caller {
    /// A self-audit event about what this caller did, in the caller's organization.
    pub(crate) fn record(&self, action: &'static str) -> Record {
        Record {
            org: self.org.clone(),
            action,
            ok: true,
            actor: self.actor(),
            resource: None,
            details: None,
            error: None,
            ip: self.ip,
            user_agent: self.user_agent.clone(),
        }
    }

    /// A 403 until a one-time password has been changed.
    pub(crate) fn ready(&self) -> Result<(), ApiError> {
        if self.must_change {
            return Err(ApiError::Forbidden("change your one-time password first (POST /api/v1/auth/password)".into()));
        }
        Ok(())
    }

    /// What this caller may read, or a 403.
    pub fn read_scope(&self) -> Result<Scope, ApiError> {
        self.ready()?;
        let cats = self.perms.view.clone().ok_or_else(|| match &self.who {
            Who::Key { scope: KeyScope::Ingest, .. } => {
                ApiError::Forbidden("an ingest key may only send events".into())
            }
            _ => ApiError::Forbidden("you may not view the audit log; ask an administrator for access".into()),
        })?;
        Ok(self.org_scope().with_categories(cats))
    }

    /// What this caller may export, or a 403.
    pub fn export_scope(&self) -> Result<Scope, ApiError> {
        self.read_scope()?;
        let cats = self.perms.export.clone().ok_or_else(|| {
            ApiError::Forbidden("your role may view but not export the audit log; ask an administrator".into())
        })?;
        Ok(self.org_scope().with_categories(cats))
    }

    fn org_scope(&self) -> Scope {
        if self.perms.platform {
            Scope::all()
        } else {
            Scope::org(self.org.clone())
        }
    }

    /// The organization this caller writes into, or a 403.
    pub fn write_org(&self) -> Result<&str, ApiError> {
        if !self.perms.write {
            return Err(ApiError::Forbidden(match &self.who {
                Who::Key { scope: KeyScope::Read, .. } => "a read key cannot send events".into(),
                _ => "only ingest, admin and platform keys may send events".into(),
            }));
        }
        Ok(&self.org)
    }

    /// The organization whose users and keys this caller manages: its own, or for a
    /// platform caller any one it names. 403 without the permission; 404 for another
    /// organization (its existence is not revealed).
    pub fn managed_org(&self, named: Option<&str>) -> Result<String, ApiError> {
        self.ready()?;
        if !self.perms.manage {
            return Err(ApiError::Forbidden("managing users, roles and keys needs an administrator".into()));
        }
        match named {
            Some(o) if self.perms.platform => Ok(o.to_string()),
            Some(o) if o != self.org => Err(ApiError::NotFound(format!("no organization '{o}'"))),
            _ => Ok(self.org.clone()),
        }
    }

    /// The organization whose log a proof request is about: the caller's own, or for a
    /// platform caller any one named with `org=`. Another organization is a 404.
    pub fn log_org(&self, named: Option<&str>) -> Result<String, ApiError> {
        self.read_scope()?;
        match named {
            Some(o) if self.perms.platform => Ok(o.to_string()),
            Some(o) if o != self.org => Err(ApiError::NotFound(format!("no organization '{o}'"))),
            _ => Ok(self.org.clone()),
        }
    }

    /// Whether this caller may read `org`'s checkpoint and hash tiles, which carry no
    /// event content: an `audit` key or anyone who may view the log, of its own
    /// organization (any, for the platform). Another organization is a 404.
    pub fn tree_org(&self, org: &str) -> Result<(), ApiError> {
        self.ready()?;
        if !self.perms.transparency && self.perms.view.is_none() {
            return Err(ApiError::Forbidden("reading the log's tiles needs an audit or read key".into()));
        }
        if org != self.org && !self.perms.platform {
            return Err(ApiError::NotFound(format!("no organization '{org}'")));
        }
        Ok(())
    }

    /// The user behind this caller (a session or a personal token).
    pub fn user_id(&self) -> Option<i64> {
        match &self.who {
            Who::User { id, .. } => Some(*id),
            Who::Key { .. } => None,
        }
    }

    /// The caller as the `actor` of a self-audit event.
    pub fn actor(&self) -> serde_json::Value {
        match &self.who {
            Who::Key { id, prefix, scope } => serde_json::json!({
                "id": format!("key-{id}"), "name": format!("{} key {prefix}…", scope.as_str()), "type": "api_key"
            }),
            Who::User { id, email, name, .. } => {
                serde_json::json!({"id": format!("user-{id}"), "name": name, "email": email, "type": "user"})
            }
        }
    }
}

/// The client's address: the TCP peer, or behind a trusted proxy the address it
/// forwarded for (see `forwarded`).
pub(crate) fn client_ip(parts: &Parts) -> Option<IpAddr> {
    match parts.extensions.get::<crate::forwarded::ClientAddr>() {
        Some(c) => Some(c.0),
        None => parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()),
    }
}

pub(crate) fn user_agent(headers: &HeaderMap) -> Option<String> {
    headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|s| s.chars().take(512).collect())
}

/// The session cookie's value, if sent.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Caller, ApiError> {
        let mut caller = if parts.headers.contains_key(header::AUTHORIZATION) {
            by_key(&parts.headers, st).await?
        } else if let Some(cookie) = session_cookie(&parts.headers) {
            let caller = by_session(&cookie, st).await?;
            let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
            let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            let csrf = caller.session.as_ref().map(|s| s.csrf.as_str());
            if !safe && (sent.is_none() || sent != csrf) {
                return Err(ApiError::Forbidden(format!(
                    "missing or wrong {CSRF_HEADER} header (state-changing requests of a session must echo its CSRF token)"
                )));
            }
            caller
        } else {
            return Err(ApiError::Unauthorized("log in, or send an API key as 'Authorization: Bearer KEY'".into()));
        };
        caller.ip = client_ip(parts);
        caller.user_agent = user_agent(&parts.headers);
        Ok(caller)
    }
}

async fn by_key(headers: &HeaderMap, st: &AppState) -> Result<Caller, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthorized("send an API key as 'Authorization: Bearer KEY'".into()))?;
    let value = value.to_str().map_err(|_| ApiError::Unauthorized("the Authorization header is not text".into()))?;
    let key = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::Unauthorized("the Authorization header must be 'Bearer KEY'".into()))?;
    let hash = hash_key(key);
    let cached = st.keys.keys.read().ok().and_then(|m| m.get(&hash).cloned());
    let k = match cached {
        Some((k, at)) if at.elapsed() < KEY_TTL => k,
        _ => {
            let k = st.store.find_key(hash).await?.ok_or_else(|| ApiError::Unauthorized("unknown API key".into()))?;
            if let Ok(mut m) = st.keys.keys.write() {
                if m.len() > 10_000 {
                    m.clear();
                }
                m.insert(hash, (k.clone(), Instant::now()));
            }
            k
        }
    };
    caller_of_key(st, k, hash).await
}

/// The caller an API key stands for, if it still may act.
async fn caller_of_key(st: &AppState, k: ApiKey, hash: [u8; 32]) -> Result<Caller, ApiError> {
    if k.revoked {
        return Err(ApiError::Unauthorized("this API key was revoked".into()));
    }
    if k.scope == KeyScope::Personal {
        let user = match k.user_id {
            Some(id) => st.store.user(id).await?,
            None => None,
        };
        let user = user
            .filter(|u| !u.disabled)
            .ok_or_else(|| ApiError::Unauthorized("this token's user is disabled".into()))?;
        let mut caller = user_caller(st, user, None).await?;
        caller.key_hash = Some(hash);
        return Ok(caller);
    }
    Ok(Caller {
        org: k.org.clone(),
        who: Who::Key { id: k.id, prefix: k.prefix.clone(), scope: k.scope },
        perms: Perms::of_key(k.scope),
        session: None,
        must_change: false,
        ip: None,
        user_agent: None,
        key_hash: Some(hash),
    })
}

/// The same caller as the store says it is now (no cache): for what stays open after
/// the request that authenticated it (live streams). An error when its key was
/// revoked, its user disabled or its session ended.
pub(crate) async fn recheck(st: &AppState, caller: &Caller) -> Result<Caller, ApiError> {
    let mut now = if let Some(hash) = caller.key_hash {
        let k = st.store.find_key(hash).await?.ok_or_else(|| ApiError::Unauthorized("unknown API key".into()))?;
        caller_of_key(st, k, hash).await?
    } else if let Some(s) = &caller.session {
        let expired = || ApiError::Unauthorized("your session has ended; log in again".into());
        let session = st.store.find_session(s.hash, (st.clock)()).await?.ok_or_else(expired)?;
        let user = st.store.user(session.user_id).await?.filter(|u| !u.disabled).ok_or_else(expired)?;
        user_caller(st, user, Some(session)).await?
    } else {
        return Err(ApiError::Unauthorized("no credential to check again".into()));
    };
    now.ip = caller.ip;
    now.user_agent = caller.user_agent.clone();
    Ok(now)
}

async fn by_session(cookie: &str, st: &AppState) -> Result<Caller, ApiError> {
    let expired = || ApiError::Unauthorized("your session has ended; log in again".into());
    let session = st.store.find_session(hash_key(cookie), (st.clock)()).await?.ok_or_else(expired)?;
    let user = st.store.user(session.user_id).await?.filter(|u| !u.disabled).ok_or_else(expired)?;
    user_caller(st, user, Some(session)).await
}

pub(crate) async fn user_caller(st: &AppState, user: User, session: Option<Session>) -> Result<Caller, ApiError> {
    let perms = Perms::of_user(&*st.store, &user).await?;
    Ok(Caller {
        org: user.org.clone(),
        who: Who::User { id: user.id, email: user.email.clone(), name: user.name.clone(), role: user.role.clone() },
        perms,
        session,
        must_change: user.must_change,
        ip: None,
        user_agent: None,
        key_hash: None,
    })
}

/// Records `audit:view` for a caller opening a filter (first pages only; repeats within
/// a minute are folded), without delaying the answer. It is recorded in the log of the
/// organization viewed: the caller's own, or for a platform caller the one organization
/// `viewed` names, else the platform's log (`selfaudit::PLATFORM_LOG`); never in a third one.
pub(crate) fn view(st: &AppState, caller: &Caller, what: &str, query: String, viewed: Option<String>) {
    let who = caller.actor().get("id").and_then(Value::as_str).unwrap_or_default().to_string();
    if !st.views.fresh(&who, &format!("{what} {query}")) {
        return;
    }
    let mut r = caller.record("audit:view").details(json!({"view": what, "filter": query}));
    let st = st.clone();
    let platform = caller.perms.platform;
    tokio::spawn(async move {
        if platform {
            r.org = match viewed {
                Some(org) => org,
                None => match selfaudit::platform_log(&st).await {
                    Some(org) => org,
                    None => return,
                },
            };
        }
        selfaudit::record(&st, r).await
    });
}

/// The one organization a platform caller's filter is limited to (by `company`), as
/// its slug, if it names exactly one that exists.
pub(crate) async fn viewed_org(st: &AppState, caller: &Caller, filter: &trail_core::Filter) -> Option<String> {
    if !caller.perms.platform {
        return Some(caller.org.clone());
    }
    let [name] = filter.company.as_slice() else {
        return None;
    };
    let orgs = st.store.orgs().await.ok()?;
    orgs.into_iter().find(|o| o.slug.eq_ignore_ascii_case(name) || o.name.eq_ignore_ascii_case(name)).map(|o| o.slug)
}
