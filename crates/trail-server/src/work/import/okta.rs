//! Okta System Log events: `eventType` as the action (`user.session.start` →
//! `user:session.start`), the actor (its `alternateId` as the email when it is one),
//! `outcome.result` to the result (`FAILURE` and `DENY` fail, with the reason), the
//! client's address and user agent, the transaction id as the request id, the first
//! target as the resource, `uuid` as the idempotency key; the whole event in
//! `details.raw`.

use serde_json::{json, Map, Value};

use super::{action, address, missing, text};
use crate::work::WorkError;

pub fn map(r: &Value) -> Result<Value, WorkError> {
    let kind = text(r, &["eventType"]).ok_or_else(|| missing("eventType"))?;
    let id = text(r, &["uuid"]).ok_or_else(|| missing("uuid"))?;
    let (category, operation) = kind.split_once('.').unwrap_or((kind, "event"));
    let mut e = Map::new();
    e.insert("action".into(), action(category, operation).into());
    e.insert("idempotency_key".into(), format!("okta:{id}").into());
    if let Some(t) = text(r, &["published"]) {
        e.insert("timestamp".into(), t.into());
    }
    if let Some(a) = r.get("actor") {
        let mut m = Map::new();
        if let Some(v) = text(a, &["id"]) {
            m.insert("id".into(), v.into());
        }
        if let Some(v) = text(a, &["displayName"]) {
            m.insert("name".into(), v.into());
        }
        if let Some(v) = text(a, &["alternateId"]).filter(|v| v.contains('@')) {
            m.insert("email".into(), v.into());
        }
        let t = if text(a, &["type"]) == Some("User") { "user" } else { "service" };
        m.insert("type".into(), t.into());
        e.insert("actor".into(), Value::Object(m));
    }
    let outcome = text(r, &["outcome", "result"]).unwrap_or("SUCCESS");
    let failed = matches!(outcome, "FAILURE" | "DENY");
    e.insert("result".into(), if failed { "FAILED" } else { "DONE" }.into());
    if failed {
        e.insert("error".into(), text(r, &["outcome", "reason"]).unwrap_or(outcome).into());
    }
    if let Some(ip) = address(text(r, &["client", "ipAddress"])) {
        e.insert("source_ip".into(), ip.into());
    }
    if let Some(ua) = text(r, &["client", "userAgent", "rawUserAgent"]) {
        e.insert("user_agent".into(), ua.chars().take(1024).collect::<String>().into());
    }
    if let Some(t) = text(r, &["transaction", "id"]) {
        e.insert("request_id".into(), t.into());
    }
    if let Some(t) = r.get("target").and_then(Value::as_array).and_then(|a| a.first()) {
        let mut m = Map::new();
        for (from, to) in [("type", "type"), ("id", "id")] {
            if let Some(v) = text(t, &[from]) {
                m.insert(to.into(), v.into());
            }
        }
        if let Some(v) = text(t, &["displayName"]).or(text(t, &["alternateId"])) {
            m.insert("name".into(), v.into());
        }
        e.insert("resource".into(), Value::Object(m));
    }
    e.insert("details".into(), json!({"raw": r, "message": text(r, &["displayMessage"])}));
    Ok(Value::Object(e))
}

#[cfg(test)]
mod tests {
    use super::super::{convert, Format};

    #[test]
    fn system_log_events() {
        let doc = r#"[
          {"uuid": "u-1", "published": "2026-11-26T08:00:00.000Z", "eventType": "user.session.start", "displayMessage": "User login to Okta",
           "actor": {"id": "00u1", "type": "User", "alternateId": "ann@example.com", "displayName": "Ann"},
           "client": {"ipAddress": "203.0.113.9", "userAgent": {"rawUserAgent": "Mozilla/5.0"}},
           "outcome": {"result": "FAILURE", "reason": "INVALID_CREDENTIALS"}, "transaction": {"id": "tx-1"}},
          {"uuid": "u-2", "published": "2026-11-26T08:01:00.000Z", "eventType": "group.user_membership.add",
           "actor": {"id": "0oa1", "type": "PublicClientApp", "alternateId": "scim-app"}, "outcome": {"result": "SUCCESS"},
           "target": [{"id": "00u2", "type": "User", "alternateId": "bob@example.com", "displayName": "Bob"}]},
          {"published": "2026-11-26T08:02:00.000Z"}
        ]"#;
        let c = convert(Format::Okta, doc);
        assert_eq!((c.events.len(), c.skipped.len()), (2, 1));
        let login = &c.events[0];
        assert_eq!((login.category.as_str(), login.operation.as_str()), ("user", "session.start"));
        assert_eq!((login.result, login.error.as_deref()), (trail_core::Outcome::Failed, Some("INVALID_CREDENTIALS")));
        assert_eq!(login.actor.as_ref().and_then(|a| a.email.as_deref()), Some("ann@example.com"));
        assert_eq!(login.request_id.as_deref(), Some("tx-1"));
        let add = &c.events[1];
        assert_eq!(add.resource.as_ref().and_then(|r| r.name.as_deref()), Some("Bob"));
        assert_eq!(add.actor.as_ref().and_then(|a| a.kind.as_deref()), Some("service"));
    }
}
