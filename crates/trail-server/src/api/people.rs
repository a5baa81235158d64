//! Login, sessions and the management endpoints: users, custom roles, API keys and
//! personal tokens. Every change is recorded in the log (see `selfaudit`).

use axum::{
    extract::{Path, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use trail_core::Timestamp;
use trail_store::{
    throttle::{self, ThrottleKey},
    Categories, NewUser, Role, Session, User, UserChange, BUILTIN_ROLES,
};
use utoipa::ToSchema;

use super::extract::{JsonBody, Managed, OrgParam};
use crate::{
    auth::{self, Caller, SESSION_COOKIE},
    error::ApiError,
    work::{
        credentials::{blocking, hash_key, hash_password, one_time_password, random_token, verify_password},
        selfaudit::{record, Record},
    },
    AppState,
};

/// How long a session lasts (µs).
const SESSION_TTL: i64 = 12 * 3600 * 1_000_000;
/// The shortest password accepted.
const MIN_PASSWORD: usize = 10;

fn check_password(field: &str, p: &str) -> Result<(), ApiError> {
    if p.chars().count() < MIN_PASSWORD || p.len() > 1024 {
        return Err(ApiError::field(field, format!("must be {MIN_PASSWORD} to 1024 characters")));
    }
    Ok(())
}

fn check_email(e: &str) -> Result<String, ApiError> {
    let e = e.trim();
    let ok = e.len() <= 254
        && e.split_once('@').is_some_and(|(a, b)| !a.is_empty() && !b.is_empty())
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        return Err(ApiError::field("email", "must be an email address"));
    }
    Ok(e.to_ascii_lowercase())
}

/// A user as the API shows it (never the password hash).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserView {
    id: i64,
    org: String,
    email: String,
    name: String,
    /// A built-in role (`platform_admin`, `org_admin`, `auditor`, `viewer`) or a custom one.
    role: String,
    disabled: bool,
    must_change_password: bool,
}

impl From<&User> for UserView {
    fn from(u: &User) -> UserView {
        UserView {
            id: u.id,
            org: u.org.clone(),
            email: u.email.clone(),
            name: u.name.clone(),
            role: u.role.clone(),
            disabled: u.disabled,
            must_change_password: u.must_change,
        }
    }
}

/// A user, with the one-time password when one was just set (shown only here).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserAnswer {
    user: UserView,
    #[serde(skip_serializing_if = "Option::is_none")]
    one_time_password: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserList {
    users: Vec<UserView>,
}

/// A new session: the user and the token to send as `X-CSRF-Token` with changes.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LoginAnswer {
    user: UserView,
    csrf_token: String,
}

/// What the caller may do.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Permissions {
    platform: bool,
    manage: bool,
    write: bool,
    /// The categories the caller may view (`*`, a list, `*,-secret`), or null.
    view: Option<String>,
    /// The categories the caller may export, or null.
    export: Option<String>,
}

/// Who the caller is.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum Me {
    Known(Box<Known>),
    /// Not logged in (still 200, so that the page can ask without an error).
    Anonymous(Anonymous),
}

/// `{"authenticated": false}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Anonymous {
    authenticated: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Known {
    authenticated: bool,
    org: String,
    #[schema(value_type = trail_core::event::Actor)]
    actor: Value,
    user: Option<UserView>,
    csrf_token: Option<String>,
    must_change_password: bool,
    /// How far back lists reach (0: no limit); older events are downloaded.
    online_days: u32,
    permissions: Permissions,
    /// For administrators: the caller's organizations whose logs Trail has stopped
    /// signing, and why (the page shows them as a banner).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    integrity: Vec<trail_store::seal::Refusal>,
    /// For administrators, while the installation log's witnessing is degraded (lagging
    /// past `[witness] lagging_after`, or a witness refusing or misconfigured): the
    /// same as `/healthz` says (the page shows it as a banner).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    witness: Option<crate::work::witness::WitnessHealth>,
}

/// A custom role.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RoleView {
    name: String,
    org: String,
    view: String,
    export: String,
}

impl From<&Role> for RoleView {
    fn from(r: &Role) -> RoleView {
        RoleView { name: r.name.clone(), org: r.org.clone(), view: r.view.render(), export: r.export.render() }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RoleList {
    builtin: Vec<String>,
    custom: Vec<RoleView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginBody {
    email: String,
    password: String,
    /// The organization, needed only when this email has accounts in several with the
    /// same password.
    org: Option<String>,
}

#[utoipa::path(
    post, path = "/api/v1/auth/login", tag = "people", security(()),
    request_body = LoginBody,
    responses((status = 200, description = "Logged in: the session cookie is set", body = LoginAnswer), crate::api::doc::Errors)
)]
pub(super) async fn login(
    State(st): State<AppState>,
    parts: axum::http::request::Parts,
    JsonBody(b): JsonBody<LoginBody>,
) -> Result<Response, ApiError> {
    let email = b.email.trim().to_ascii_lowercase();
    if email.is_empty() {
        return Err(ApiError::field("email", "is required"));
    }
    let ip = auth::client_ip(&parts);
    let ua = auth::user_agent(&parts.headers);
    let now = (st.clock)().0;
    let (acct_key, ip_key) = (format!("acct:{email}"), format!("ip:{}", ip.map(|i| i.to_string()).unwrap_or_default()));
    // An email is unique within an organization: the account is the one whose
    // password matches (of the organization named, if one is).
    let mut candidates = st.store.users_by_email(&email).await?;
    if let Some(o) = &b.org {
        candidates.retain(|u| u.org.eq_ignore_ascii_case(o));
    }
    let orgs: Vec<String> = match candidates.is_empty() {
        true => vec![st.system_org().await?],
        false => candidates.iter().map(|u| u.org.clone()).collect(),
    };
    let attempt = |org: &str, user: Option<&User>, ok: bool, error: Option<String>| Record {
        org: org.to_string(),
        action: "auth:login",
        ok,
        actor: match user {
            Some(u) => json!({"id": format!("user-{}", u.id), "name": u.name, "email": u.email, "type": "user"}),
            None => json!({"email": email, "type": "user"}),
        },
        resource: None,
        details: Some(json!({"method": "password"})),
        error,
        ip,
        user_agent: ua.clone(),
    };
    // A failure is recorded in the log of each account it was tried against.
    let failed = |why: &str| {
        let records: Vec<Record> = match candidates.is_empty() {
            true => vec![attempt(&orgs[0], None, false, Some(why.into()))],
            false => candidates.iter().map(|u| attempt(&u.org, Some(u), false, Some(why.into()))).collect(),
        };
        records
    };
    let keys = vec![
        ThrottleKey { key: acct_key, limit: throttle::ACCOUNT_ATTEMPTS, forget_on_success: true },
        ThrottleKey { key: ip_key, limit: throttle::IP_ATTEMPTS, forget_on_success: false },
    ];
    // Counted before the password is checked, in one step with the check of the lock.
    if let Some(wait) = st.store.login_attempt(keys.clone(), Timestamp(now)).await? {
        for r in failed("too many failed logins: throttled") {
            record(&st, r).await;
        }
        return Err(ApiError::TooMany(format!("too many failed logins; try again in {wait} s"), wait));
    }
    let hashes: Vec<String> = candidates.iter().map(|u| u.password_hash.clone()).collect();
    let password = b.password;
    let matched: Vec<usize> = blocking(move || {
        if hashes.is_empty() {
            // The same work as a real check, so timing does not tell which emails exist.
            let _ = hash_password(&password);
        }
        hashes.iter().enumerate().filter(|(_, h)| verify_password(h, &password)).map(|(i, _)| i).collect()
    })
    .await?;
    if matched.len() > 1 {
        // The person knows both passwords: only they learn of both accounts.
        return Err(ApiError::field("org", "this email and password open accounts in several organizations: name one"));
    }
    let user = match matched.first().map(|&i| candidates[i].clone()) {
        Some(u) if !u.disabled => u,
        found => {
            let why = if found.is_some() { "account disabled" } else { "wrong email or password" };
            for r in failed(why) {
                record(&st, r).await;
            }
            return Err(ApiError::Unauthorized("wrong email or password".into()));
        }
    };
    let org = user.org.clone();
    st.store.login_succeeded(keys).await?;
    let token = random_token(43);
    let session = Session {
        hash: hash_key(&token),
        user_id: user.id,
        csrf: random_token(32),
        created_at: now,
        expires_at: now + SESSION_TTL,
    };
    st.store.create_session(session.clone()).await?;
    record(&st, attempt(&org, Some(&user), true, None)).await;
    let secure = if st.config.insecure_cookies { "" } else { "; Secure" };
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        SESSION_TTL / 1_000_000
    );
    let mut resp = Json(LoginAnswer { user: (&user).into(), csrf_token: session.csrf }).into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).map_err(|e| ApiError::Internal(e.to_string()))?);
    Ok(resp)
}

fn clear_cookie(st: &AppState) -> HeaderValue {
    let secure = if st.config.insecure_cookies { "" } else { "; Secure" };
    HeaderValue::from_str(&format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"))
        .unwrap_or(HeaderValue::from_static(""))
}

#[utoipa::path(
    post, path = "/api/v1/auth/logout", tag = "people", security(("session" = [])),
    responses((status = 204, description = "The session ended"), crate::api::doc::Errors)
)]
pub(super) async fn logout(State(st): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let session = caller
        .session
        .clone()
        .ok_or_else(|| ApiError::field("authorization", "logout ends a login session; API keys have none"))?;
    st.store.delete_sessions(session.hash, false).await?;
    st.live.credentials_changed();
    record(&st, caller.record("auth:logout")).await;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(header::SET_COOKIE, clear_cookie(&st));
    Ok(resp)
}

/// Who the caller is; `{"authenticated": false}` (200) when not logged in, so that the
/// page can ask without an error.
#[utoipa::path(
    get, path = "/api/v1/auth/me", tag = "people",
    responses((status = 200, description = "Who the caller is (`authenticated: false` without a login)", body = Me), crate::api::doc::Errors)
)]
pub(super) async fn me(State(st): State<AppState>, caller: Result<Caller, ApiError>) -> Result<Response, ApiError> {
    let caller = match caller {
        Ok(c) => c,
        Err(ApiError::Unauthorized(_)) => {
            return Ok(Json(Me::Anonymous(Anonymous { authenticated: false })).into_response())
        }
        Err(e) => return Err(e),
    };
    let p = &caller.perms;
    let user = match caller.user_id() {
        Some(id) => st.store.user(id).await?.map(|u| UserView::from(&u)),
        None => None,
    };
    let known = Known {
        authenticated: true,
        org: caller.org.clone(),
        actor: caller.actor(),
        user,
        csrf_token: caller.session.as_ref().map(|s| s.csrf.clone()),
        must_change_password: caller.must_change,
        online_days: st.config.retention.online_days,
        permissions: Permissions {
            platform: p.platform,
            manage: p.manage,
            write: p.write,
            view: p.view.as_ref().map(Categories::render),
            export: p.export.as_ref().map(Categories::render),
        },
        integrity: match p.manage {
            true => st.store.refusals().into_iter().filter(|r| p.platform || r.org == caller.org).collect(),
            false => Vec::new(),
        },
        witness: crate::work::witness::health(&st).filter(|w| p.manage && w.degraded()),
    };
    Ok(Json(Me::Known(Box::new(known))).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordBody {
    current_password: String,
    new_password: String,
}

#[utoipa::path(
    post, path = "/api/v1/auth/password", tag = "people", security(("session" = [])),
    request_body = PasswordBody,
    responses((status = 204, description = "Changed; every other session of the user ended"), crate::api::doc::Errors)
)]
pub(super) async fn change_password(
    State(st): State<AppState>,
    caller: Caller,
    JsonBody(b): JsonBody<PasswordBody>,
) -> Result<Response, ApiError> {
    let id = caller.user_id().ok_or_else(|| ApiError::field("authorization", "only users have passwords"))?;
    let user = st.store.user(id).await?.ok_or_else(|| ApiError::Unauthorized("no such user".into()))?;
    check_password("new_password", &b.new_password)?;
    if b.new_password == b.current_password {
        return Err(ApiError::field("new_password", "must differ from the current password"));
    }
    // Guesses of the current password count against the account like logins.
    let keys = vec![ThrottleKey {
        key: format!("acct:{}", user.email.to_ascii_lowercase()),
        limit: throttle::ACCOUNT_ATTEMPTS,
        forget_on_success: true,
    }];
    if let Some(wait) = st.store.login_attempt(keys.clone(), (st.clock)()).await? {
        return Err(ApiError::TooMany(format!("too many wrong passwords; try again in {wait} s"), wait));
    }
    let (hash, current) = (user.password_hash.clone(), b.current_password);
    if !blocking(move || verify_password(&hash, &current)).await? {
        record(
            &st,
            caller.record("user:password_change").resource("user", id, &user.email).failed("wrong current password"),
        )
        .await;
        return Err(ApiError::field("current_password", "is wrong"));
    }
    st.store.login_succeeded(keys).await?;
    let new = b.new_password;
    let new_hash = blocking(move || hash_password(&new)).await??;
    // Every other session of the user ends: whoever else held one must log in anew.
    let change = UserChange {
        password: Some((new_hash, false)),
        keep_session: caller.session.as_ref().map(|s| s.hash),
        ..UserChange::default()
    };
    st.store.update_user(id, change).await?;
    record(&st, caller.record("user:password_change").resource("user", id, &user.email)).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(
    get, path = "/api/v1/users", tag = "people",
    params(crate::api::doc::OrgParam),
    responses((status = 200, description = "Users of the organization (platform: of all)", body = UserList), crate::api::doc::Errors)
)]
pub(super) async fn list_users(
    State(st): State<AppState>,
    caller: Caller,
    org: OrgParam,
) -> Result<Response, ApiError> {
    let org = match org.as_deref() {
        None if caller.perms.platform => None,
        named => Some(caller.managed_org(named)?),
    };
    caller.managed_org(None)?;
    let users = st.store.list_users(org.as_deref()).await?;
    Ok(Json(UserList { users: users.iter().map(UserView::from).collect() }).into_response())
}

/// Checks that `role` exists for `org` and that the caller may give it.
async fn check_role(st: &AppState, caller: &Caller, org: &str, role: &str) -> Result<String, ApiError> {
    if role == "platform_admin" && !caller.perms.platform {
        return Err(ApiError::Forbidden("only platform administrators may make platform administrators".into()));
    }
    if BUILTIN_ROLES.contains(&role) {
        return Ok(role.to_string());
    }
    match st.store.roles(org).await?.into_iter().find(|r| r.name.eq_ignore_ascii_case(role)) {
        Some(r) => Ok(r.name),
        None => Err(ApiError::field(
            "role",
            format!("no role '{role}': use one of {} or a custom role", BUILTIN_ROLES.join(", ")),
        )),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewUserBody {
    email: String,
    name: String,
    role: String,
    password: Option<String>,
    org: Option<String>,
}

#[utoipa::path(
    post, path = "/api/v1/users", tag = "people",
    request_body = NewUserBody,
    responses((status = 201, description = "Created; with a one-time password when none was given", body = UserAnswer),
        (status = 409, description = "The email is taken", body = crate::error::ErrorBody), crate::api::doc::Errors)
)]
pub(super) async fn create_user(
    State(st): State<AppState>,
    caller: Caller,
    JsonBody(b): JsonBody<NewUserBody>,
) -> Result<Response, ApiError> {
    let org = caller.managed_org(b.org.as_deref())?;
    let email = check_email(&b.email)?;
    if b.name.trim().is_empty() || b.name.len() > 200 {
        return Err(ApiError::field("name", "must be 1 to 200 characters"));
    }
    let role = check_role(&st, &caller, &org, &b.role).await?;
    let (password, generated) = match b.password {
        Some(p) => {
            check_password("password", &p)?;
            (p, false)
        }
        None => (one_time_password(), true),
    };
    let pw = password.clone();
    let hash = blocking(move || hash_password(&pw)).await??;
    let user = st
        .store
        .create_user(NewUser { org, email, name: b.name.trim().into(), role, password_hash: hash, must_change: true })
        .await?;
    record(
        &st,
        caller
            .record("user:create")
            .resource("user", user.id, &user.email)
            .details(json!({"role": user.role, "org": user.org})),
    )
    .await;
    let out = UserAnswer { user: (&user).into(), one_time_password: generated.then_some(password) };
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserPatch {
    role: Option<String>,
    disabled: Option<bool>,
    name: Option<String>,
    /// `true` sets a new one-time password, returned once.
    reset_password: Option<bool>,
}

/// A user the caller manages, or 404 (another organization's users do not exist for it).
async fn managed_user(st: &AppState, caller: &Caller, id: &str) -> Result<User, ApiError> {
    caller.managed_org(None)?;
    let id: i64 = id.parse().map_err(|_| ApiError::field("id", "must be a user id (an integer)"))?;
    let user = st.store.user(id).await?.filter(|u| caller.perms.platform || u.org == caller.org);
    user.ok_or_else(|| ApiError::NotFound(format!("no user {id}")))
}

#[utoipa::path(
    patch, path = "/api/v1/users/{id}", tag = "people",
    params(("id" = i64, Path, description = "The user's id")), request_body = UserPatch,
    responses((status = 200, description = "The user as now stored; with a one-time password after a reset", body = UserAnswer), crate::api::doc::Errors)
)]
pub(super) async fn update_user(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<UserPatch>,
) -> Result<Response, ApiError> {
    let user = managed_user(&st, &caller, &id).await?;
    if user.role == "platform_admin" && !caller.perms.platform {
        return Err(ApiError::Forbidden("only platform administrators may change a platform administrator".into()));
    }
    let mut change = UserChange::default();
    if let Some(r) = &b.role {
        change.role = Some(check_role(&st, &caller, &user.org, r).await?);
    }
    if let Some(n) = &b.name {
        if n.trim().is_empty() || n.len() > 200 {
            return Err(ApiError::field("name", "must be 1 to 200 characters"));
        }
        change.name = Some(n.trim().into());
    }
    change.disabled = b.disabled;
    let mut password = None;
    if b.reset_password == Some(true) {
        let p = one_time_password();
        let pw = p.clone();
        change.password = Some((blocking(move || hash_password(&pw)).await??, true));
        password = Some(p);
    }
    let updated =
        st.store.update_user(user.id, change).await?.ok_or_else(|| ApiError::NotFound(format!("no user {id}")))?;
    let action = if b.role.is_some() { "user:role_change" } else { "user:update" };
    let details = json!({
        "role": b.role, "disabled": b.disabled, "password_reset": password.is_some(), "previous_role": user.role,
    });
    st.live.credentials_changed();
    record(&st, caller.record(action).resource("user", user.id, &user.email).details(details)).await;
    Ok(Json(UserAnswer { user: (&updated).into(), one_time_password: password }).into_response())
}

#[utoipa::path(
    get, path = "/api/v1/roles", tag = "people",
    params(crate::api::doc::OrgParam),
    responses((status = 200, description = "The built-in roles and the organization's custom ones", body = RoleList), crate::api::doc::Errors)
)]
pub(super) async fn list_roles(State(st): State<AppState>, Managed { org, .. }: Managed) -> Result<Response, ApiError> {
    let custom = st.store.roles(&org).await?;
    let builtin = BUILTIN_ROLES.iter().map(|r| r.to_string()).collect();
    Ok(Json(RoleList { builtin, custom: custom.iter().map(RoleView::from).collect() }).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoleBody {
    view: String,
    export: Option<String>,
    org: Option<String>,
}

#[utoipa::path(
    put, path = "/api/v1/roles/{name}", tag = "people",
    params(("name" = String, Path, description = "The custom role's name")), request_body = RoleBody,
    responses((status = 200, description = "The role as stored", body = RoleView), crate::api::doc::Errors)
)]
pub(super) async fn put_role(
    State(st): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(b): JsonBody<RoleBody>,
) -> Result<Response, ApiError> {
    let org = caller.managed_org(b.org.as_deref())?;
    let valid =
        !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    // A name that differs from a built-in one only by case would read as that role.
    if !valid || BUILTIN_ROLES.iter().any(|b| b.eq_ignore_ascii_case(&name)) {
        return Err(ApiError::field(
            "name",
            "must be 1 to 64 letters, digits, '-' or '_', and not a built-in role in any case",
        ));
    }
    let view = Categories::parse(&b.view).map_err(|e| ApiError::field("view", e))?;
    let export = Categories::parse(b.export.as_deref().unwrap_or("")).map_err(|e| ApiError::field("export", e))?;
    let role = Role { org, name, view, export };
    st.store.put_role(role.clone()).await?;
    let view = RoleView::from(&role);
    let details = serde_json::to_value(&view).unwrap_or_default();
    st.live.credentials_changed();
    record(&st, caller.record("role:update").resource("role", &role.name, &role.name).details(details)).await;
    Ok(Json(view).into_response())
}

#[utoipa::path(
    delete, path = "/api/v1/roles/{name}", tag = "people",
    params(("name" = String, Path, description = "The custom role's name"), crate::api::doc::OrgParam),
    responses((status = 204, description = "Deleted"), crate::api::doc::Errors)
)]
pub(super) async fn delete_role(
    State(st): State<AppState>,
    Managed { caller, org }: Managed,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    if !st.store.delete_role(&org, &name).await? {
        return Err(ApiError::NotFound(format!("no role '{name}'")));
    }
    st.live.credentials_changed();
    record(&st, caller.record("role:delete").resource("role", &name, &name)).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
