//! Alerts over HTTP (`/api/v1/alerts/…`): rules (built-in with editable thresholds,
//! and custom), destinations (webhook, Slack, Discord, mail; a webhook's signing secret
//! shown once), deliveries (status, retry) and a test message. Organization
//! administrators change them; whoever may view the log reads rules and destinations;
//! deliveries, which name events and actors, need a view of every category.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use trail_core::Timestamp;
use trail_store::{
    alerts::{AlertRule, Delivery, DeliveryStatus, Destination, DestinationKind, NewDelivery},
    Categories,
};
use utoipa::ToSchema;

use super::extract::{JsonBody, Managed, Reading};
use crate::{
    auth::Caller,
    error::ApiError,
    work::{
        alerts::{rules, send},
        selfaudit,
    },
    AppState,
};

/// A rule as listed: its settings, and whether it is built in.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RuleView {
    name: String,
    builtin: bool,
    enabled: bool,
    query: Option<String>,
    threshold: u32,
    /// `10m`, `1h`, `30d`, or `every event`.
    window: String,
    group_by: Option<String>,
    quiet: String,
    destinations: Vec<i64>,
}

impl From<&AlertRule> for RuleView {
    fn from(r: &AlertRule) -> RuleView {
        RuleView {
            name: r.name.clone(),
            builtin: rules::BUILTIN.contains(&r.name.as_str()),
            enabled: r.enabled,
            query: r.query.clone(),
            threshold: r.threshold,
            window: crate::work::alerts::message::window_text(r.window_secs),
            group_by: r.group_by.clone(),
            quiet: crate::work::alerts::message::window_text(r.quiet_secs),
            destinations: r.destinations.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RuleList {
    rules: Vec<RuleView>,
}

/// Changes to a rule; a new custom rule needs `name` and `query`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleBody {
    name: Option<String>,
    query: Option<String>,
    enabled: Option<bool>,
    threshold: Option<u32>,
    /// A duration: `30s`, `10m`, `2h`, `30d`.
    window: Option<String>,
    /// `actor`, `ip` or `resource`.
    group_by: Option<String>,
    /// How long the same rule and group stays quiet after a firing (default 15m).
    quiet: Option<String>,
    destinations: Option<Vec<i64>>,
    org: Option<String>,
}

fn duration(field: &str, s: &str) -> Result<u32, ApiError> {
    let secs = trail_core::duration::parse_seconds(s, "smhd", 366 * 86_400).map_err(|e| ApiError::field(field, e))?;
    Ok(secs as u32)
}

fn apply(rule: &mut AlertRule, b: &RuleBody) -> Result<(), ApiError> {
    if let Some(e) = b.enabled {
        rule.enabled = e;
    }
    if let Some(t) = b.threshold {
        if t == 0 || t > 1_000_000_000 {
            return Err(ApiError::field("threshold", "must be between 1 and 1000000000"));
        }
        rule.threshold = t;
    }
    if let Some(w) = &b.window {
        rule.window_secs = duration("window", w)?;
    }
    if let Some(q) = &b.quiet {
        rule.quiet_secs = duration("quiet", q)?;
    }
    if let Some(g) = &b.group_by {
        if !["actor", "ip", "resource", ""].contains(&g.as_str()) {
            return Err(ApiError::field("group_by", "must be actor, ip or resource"));
        }
        rule.group_by = (!g.is_empty()).then(|| g.clone());
    }
    if let Some(d) = &b.destinations {
        rule.destinations = d.clone();
    }
    Ok(())
}

async fn check_destinations(st: &AppState, org: &str, ids: &[i64]) -> Result<(), ApiError> {
    let known = st.store.destinations(org).await?;
    if let Some(id) = ids.iter().find(|id| !known.iter().any(|d| d.id == **id)) {
        return Err(ApiError::field("destinations", format!("no destination {id} in {org}")));
    }
    Ok(())
}

#[utoipa::path(
    get, path = "/api/v1/alerts/rules", tag = "alerts", params(crate::api::doc::OrgParam),
    responses((status = 200, description = "Every rule: the built-in ones (stored settings or defaults), then custom ones", body = RuleList), crate::api::doc::Errors)
)]
pub(super) async fn list_rules(State(st): State<AppState>, Reading { org, .. }: Reading) -> Result<Response, ApiError> {
    let list = rules::effective(&org, st.store.alert_rules(&org).await?);
    Ok(Json(RuleList { rules: list.iter().map(RuleView::from).collect() }).into_response())
}

#[utoipa::path(
    post, path = "/api/v1/alerts/rules", tag = "alerts", request_body = RuleBody,
    responses((status = 201, description = "A custom rule was made", body = RuleView), crate::api::doc::Errors)
)]
pub(super) async fn create_rule(
    State(st): State<AppState>,
    caller: Caller,
    JsonBody(b): JsonBody<RuleBody>,
) -> Result<Response, ApiError> {
    let org = caller.managed_org(b.org.as_deref())?;
    let name = b.name.clone().unwrap_or_default().trim().to_string();
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name != "test";
    if !ok {
        return Err(ApiError::field("name", "must be 1 to 64 letters, digits, '-' or '_'"));
    }
    if rules::BUILTIN.contains(&name.as_str()) {
        return Err(ApiError::field("name", "is a built-in rule: change it with PUT /api/v1/alerts/rules/{name}"));
    }
    if st.store.alert_rules(&org).await?.iter().any(|r| r.name == name) {
        return Err(ApiError::Conflict(format!("a rule named {name} already exists")));
    }
    let query = b
        .query
        .clone()
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| ApiError::field("query", "a custom rule needs a query"))?;
    trail_core::query::parse(&query).map_err(|e| ApiError::field("query", e.message))?;
    let mut rule = AlertRule {
        org: org.clone(),
        name,
        enabled: true,
        query: Some(query),
        threshold: 1,
        window_secs: 0,
        group_by: None,
        quiet_secs: 15 * 60,
        destinations: vec![],
    };
    apply(&mut rule, &b)?;
    check_destinations(&st, &org, &rule.destinations).await?;
    st.store.put_alert_rule(rule.clone()).await?;
    let view = RuleView::from(&rule);
    let details = serde_json::to_value(&view).unwrap_or_default();
    selfaudit::record(
        &st,
        caller.record("alert:rule_create").resource("alert_rule", &rule.name, &rule.name).details(details),
    )
    .await;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

#[utoipa::path(
    put, path = "/api/v1/alerts/rules/{name}", tag = "alerts", request_body = RuleBody,
    params(("name" = String, Path, description = "The rule's name")),
    responses((status = 200, description = "The rule's new settings", body = RuleView), crate::api::doc::Errors)
)]
pub(super) async fn put_rule(
    State(st): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(b): JsonBody<RuleBody>,
) -> Result<Response, ApiError> {
    let org = caller.managed_org(b.org.as_deref())?;
    let mut rule = rules::effective(&org, st.store.alert_rules(&org).await?)
        .into_iter()
        .find(|r| r.name == name)
        .ok_or_else(|| ApiError::NotFound(format!("no rule {name}")))?;
    if b.name.as_ref().is_some_and(|n| *n != name) {
        return Err(ApiError::field("name", "a rule cannot be renamed"));
    }
    if let Some(q) = &b.query {
        if rule.query.is_none() {
            return Err(ApiError::field("query", "a built-in rule has no query"));
        }
        trail_core::query::parse(q).map_err(|e| ApiError::field("query", e.message))?;
        rule.query = Some(q.clone());
    }
    apply(&mut rule, &b)?;
    check_destinations(&st, &org, &rule.destinations).await?;
    st.store.put_alert_rule(rule.clone()).await?;
    let view = RuleView::from(&rule);
    let details = serde_json::to_value(&view).unwrap_or_default();
    selfaudit::record(
        &st,
        caller.record("alert:rule_update").resource("alert_rule", &rule.name, &rule.name).details(details),
    )
    .await;
    Ok(Json(view).into_response())
}

#[utoipa::path(
    delete, path = "/api/v1/alerts/rules/{name}", tag = "alerts",
    params(("name" = String, Path, description = "A custom rule's name, or a built-in one to restore its defaults"), crate::api::doc::OrgParam),
    responses((status = 204, description = "Deleted (a built-in rule: back to its defaults)"), crate::api::doc::Errors)
)]
pub(super) async fn delete_rule(
    State(st): State<AppState>,
    Managed { caller, org }: Managed,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let gone = st.store.delete_alert_rule(&org, &name).await?;
    if !gone && !rules::BUILTIN.contains(&name.as_str()) {
        return Err(ApiError::NotFound(format!("no rule {name}")));
    }
    selfaudit::record(&st, caller.record("alert:rule_delete").resource("alert_rule", &name, &name)).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A destination as listed (secrets are never shown again).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DestinationView {
    id: i64,
    name: String,
    kind: String,
    url: Option<String>,
    recipients: Vec<String>,
    enabled: bool,
    /// How many signing secrets sign each message (2 during a rotation).
    secrets: usize,
}

impl From<&Destination> for DestinationView {
    fn from(d: &Destination) -> DestinationView {
        DestinationView {
            id: d.id,
            name: d.name.clone(),
            kind: d.kind.as_str().into(),
            url: d.url.as_deref().map(crate::work::outbound::masked),
            recipients: d.recipients.clone(),
            enabled: d.enabled,
            secrets: d.secrets.len(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DestinationList {
    destinations: Vec<DestinationView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DestinationBody {
    name: String,
    /// `webhook`, `slack`, `discord` or `email`.
    kind: String,
    url: Option<String>,
    #[serde(default)]
    recipients: Vec<String>,
    org: Option<String>,
}

/// A new destination, with a webhook's signing secret (shown only here).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DestinationCreated {
    id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

#[utoipa::path(
    get, path = "/api/v1/alerts/destinations", tag = "alerts", params(crate::api::doc::OrgParam),
    responses((status = 200, description = "Destinations", body = DestinationList), crate::api::doc::Errors)
)]
pub(super) async fn list_destinations(
    State(st): State<AppState>,
    Reading { org, .. }: Reading,
) -> Result<Response, ApiError> {
    let list = st.store.destinations(&org).await?;
    Ok(Json(DestinationList { destinations: list.iter().map(DestinationView::from).collect() }).into_response())
}

#[utoipa::path(
    post, path = "/api/v1/alerts/destinations", tag = "alerts", request_body = DestinationBody,
    responses((status = 201, description = "Made; a webhook's secret is in the answer, once", body = DestinationCreated), crate::api::doc::Errors)
)]
pub(super) async fn create_destination(
    State(st): State<AppState>,
    caller: Caller,
    JsonBody(b): JsonBody<DestinationBody>,
) -> Result<Response, ApiError> {
    let org = caller.managed_org(b.org.as_deref())?;
    if b.name.trim().is_empty() || b.name.len() > 200 {
        return Err(ApiError::field("name", "must be 1 to 200 characters"));
    }
    let kind = DestinationKind::parse(&b.kind.to_ascii_lowercase())
        .ok_or_else(|| ApiError::field("kind", "must be webhook, slack, discord or email"))?;
    match kind {
        DestinationKind::Webhook | DestinationKind::Slack | DestinationKind::Discord => {
            let url = b
                .url
                .as_deref()
                .ok_or_else(|| ApiError::field("url", "a webhook, Slack or Discord destination needs a url"))?;
            crate::work::outbound::resolve(url, st.config.alerts.allow_private_destinations, "[alerts]")
                .await
                .map_err(|e| ApiError::field("url", e.to_string()))?;
        }
        DestinationKind::Email => {
            if b.recipients.is_empty() {
                return Err(ApiError::field("recipients", "a mail destination needs recipients"));
            }
            for r in &b.recipients {
                r.parse::<lettre::message::Mailbox>()
                    .map_err(|_| ApiError::field("recipients", format!("'{r}' is not an email address")))?;
            }
        }
    }
    let secret = (kind == DestinationKind::Webhook).then(send::new_secret);
    let d = Destination {
        id: 0,
        org: org.clone(),
        name: b.name.trim().to_string(),
        kind,
        url: if kind == DestinationKind::Email { None } else { b.url.clone() },
        recipients: if kind == DestinationKind::Email { b.recipients.clone() } else { vec![] },
        secrets: secret.clone().into_iter().collect(),
        enabled: true,
        created_at: (st.clock)().0,
    };
    let d = st.store.create_destination(d).await?;
    let details = serde_json::to_value(DestinationView::from(&d)).unwrap_or_default();
    selfaudit::record(
        &st,
        caller.record("alert:destination_create").resource("alert_destination", d.id, &d.name).details(details),
    )
    .await;
    Ok((StatusCode::CREATED, Json(DestinationCreated { id: d.id, secret })).into_response())
}

async fn own_destination(st: &AppState, org: &str, id: i64) -> Result<Destination, ApiError> {
    st.store
        .destinations(org)
        .await?
        .into_iter()
        .find(|d| d.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("no destination {id}")))
}

#[utoipa::path(
    post, path = "/api/v1/alerts/destinations/{id}/rotate", tag = "alerts",
    params(("id" = i64, Path, description = "A webhook destination's id"), crate::api::doc::OrgParam),
    responses((status = 200, description = "A new secret (shown once); messages are signed with it and the previous one until the next rotation", body = DestinationCreated), crate::api::doc::Errors)
)]
pub(super) async fn rotate_secret(
    State(st): State<AppState>,
    Managed { caller, org }: Managed,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let mut d = own_destination(&st, &org, id).await?;
    if d.kind != DestinationKind::Webhook {
        return Err(ApiError::field("id", "only webhook destinations have a signing secret"));
    }
    let secret = send::new_secret();
    d.secrets.insert(0, secret.clone());
    d.secrets.truncate(2);
    st.store.update_destination(d.clone()).await?;
    selfaudit::record(&st, caller.record("alert:destination_rotate").resource("alert_destination", d.id, &d.name))
        .await;
    Ok(Json(DestinationCreated { id, secret: Some(secret) }).into_response())
}

#[utoipa::path(
    delete, path = "/api/v1/alerts/destinations/{id}", tag = "alerts",
    params(("id" = i64, Path, description = "The destination's id"), crate::api::doc::OrgParam),
    responses((status = 204, description = "Deleted"), crate::api::doc::Errors)
)]
pub(super) async fn delete_destination(
    State(st): State<AppState>,
    Managed { caller, org }: Managed,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let d = own_destination(&st, &org, id).await?;
    st.store.delete_destination(&org, id).await?;
    selfaudit::record(&st, caller.record("alert:destination_delete").resource("alert_destination", d.id, &d.name))
        .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(
    post, path = "/api/v1/alerts/destinations/{id}/test", tag = "alerts",
    params(("id" = i64, Path, description = "The destination's id"), crate::api::doc::OrgParam),
    responses((status = 202, description = "A test message was queued; its delivery is listed", body = DeliveryView), crate::api::doc::Errors)
)]
pub(super) async fn test_destination(
    State(st): State<AppState>,
    Managed { org, .. }: Managed,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let d = own_destination(&st, &org, id).await?;
    let base = st.config.public_base();
    let now = (st.clock)();
    let payload = json!({
        "type": "trail.alert", "rule": "test", "org": org, "count": 0, "window": "every event", "events": [],
        "first_event": null, "last_event": null, "link": format!("{base}/audit"),
        "fired_at": now.to_rfc3339(),
    });
    let new = NewDelivery { rule: "test".into(), destination: d.id, payload: payload.to_string() };
    let delivery = st.store.add_delivery(&org, new, now).await?;
    st.alerts.queued.notify_one();
    let row = st.store.delivery(&org, delivery).await?.ok_or_else(|| ApiError::Internal("delivery vanished".into()))?;
    Ok((StatusCode::ACCEPTED, Json(DeliveryView::from(&row))).into_response())
}

/// One delivery: a message for one destination, and how its attempts went.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeliveryView {
    id: i64,
    rule: String,
    destination: i64,
    /// pending, delivered or failed.
    status: String,
    attempts: u32,
    last_error: Option<String>,
    /// The last HTTP status code answered (250 for mail).
    last_code: Option<i32>,
    created_at: String,
    /// When the next attempt is due (pending ones).
    next_attempt: Option<String>,
    done_at: Option<String>,
    /// What was (or will be) sent.
    #[schema(value_type = Object)]
    payload: Value,
}

impl From<&Delivery> for DeliveryView {
    fn from(d: &Delivery) -> DeliveryView {
        DeliveryView {
            id: d.id,
            rule: d.rule.clone(),
            destination: d.destination,
            status: d.status.as_str().into(),
            attempts: d.attempts,
            last_error: d.last_error.clone(),
            last_code: d.last_code,
            created_at: Timestamp(d.created_at).to_rfc3339(),
            next_attempt: (d.status == DeliveryStatus::Pending).then(|| Timestamp(d.next_at).to_rfc3339()),
            done_at: d.done_at.map(|t| Timestamp(t).to_rfc3339()),
            payload: serde_json::from_str(&d.payload).unwrap_or(Value::Null),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeliveryList {
    deliveries: Vec<DeliveryView>,
}

/// Deliveries name events and their actors: reading them needs a view of every
/// category of the organization.
fn every_category(caller: &Caller) -> Result<(), ApiError> {
    if caller.read_scope()?.categories != Categories::All {
        return Err(ApiError::Forbidden(
            "alert deliveries name events of every category; your role may not view them all".into(),
        ));
    }
    Ok(())
}

#[utoipa::path(
    get, path = "/api/v1/alerts/deliveries", tag = "alerts", params(crate::api::doc::OrgParam),
    responses((status = 200, description = "The newest 200 deliveries", body = DeliveryList), crate::api::doc::Errors)
)]
pub(super) async fn list_deliveries(
    State(st): State<AppState>,
    Reading { caller, org }: Reading,
) -> Result<Response, ApiError> {
    every_category(&caller)?;
    let list = st.store.deliveries(&org, 200).await?;
    Ok(Json(DeliveryList { deliveries: list.iter().map(DeliveryView::from).collect() }).into_response())
}

#[utoipa::path(
    post, path = "/api/v1/alerts/deliveries/{id}/retry", tag = "alerts",
    params(("id" = i64, Path, description = "A failed delivery's id"), crate::api::doc::OrgParam),
    responses((status = 200, description = "Queued again", body = DeliveryView), crate::api::doc::Errors)
)]
pub(super) async fn retry_delivery(
    State(st): State<AppState>,
    Managed { caller, org }: Managed,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let mut d = st.store.delivery(&org, id).await?.ok_or_else(|| ApiError::NotFound(format!("no delivery {id}")))?;
    if d.status == DeliveryStatus::Delivered {
        return Err(ApiError::Conflict(format!("delivery {id} was already delivered")));
    }
    // A destination disabled by a 410 is on again once someone sends to it by hand.
    if let Ok(mut dest) = own_destination(&st, &org, d.destination).await {
        if !dest.enabled {
            dest.enabled = true;
            st.store.update_destination(dest).await?;
        }
    }
    d.status = DeliveryStatus::Pending;
    d.next_at = (st.clock)().0;
    d.done_at = None;
    st.store.update_delivery(&d).await?;
    st.alerts.queued.notify_one();
    selfaudit::record(&st, caller.record("alert:delivery_retry").resource("alert_delivery", d.id, &d.rule)).await;
    Ok(Json(DeliveryView::from(&d)).into_response())
}
