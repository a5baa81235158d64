//! GitHub audit log entries (the REST API's and the streaming export's JSON): `action`
//! (`repo.create` → `repo:create`), the actor and its address, the repository, user or
//! team acted on as the resource, the organization as the workspace, `@timestamp` or
//! `created_at` (milliseconds) as the time, `_document_id` as the idempotency key; the
//! whole entry in `details.raw`.

use serde_json::{json, Map, Value};

use super::{action, address, missing, text};
use crate::work::WorkError;

/// Milliseconds since the epoch as RFC 3339.
fn millis(v: Option<&Value>) -> Option<String> {
    let ms = v?.as_i64()?;
    Some(trail_core::Timestamp(ms.checked_mul(1000)?).to_rfc3339_micros())
}

pub fn map(r: &Value) -> Result<Value, WorkError> {
    let act = text(r, &["action"]).ok_or_else(|| missing("action"))?;
    let (category, operation) = act.split_once('.').unwrap_or((act, "event"));
    let mut e = Map::new();
    e.insert("action".into(), action(category, operation).into());
    if let Some(id) = text(r, &["_document_id"]) {
        e.insert("idempotency_key".into(), format!("github:{id}").into());
    }
    if let Some(t) = millis(r.get("@timestamp")).or(millis(r.get("created_at"))) {
        e.insert("timestamp".into(), t.into());
    }
    if let Some(a) = text(r, &["actor"]) {
        let mut m = Map::new();
        m.insert("name".into(), a.into());
        if let Some(id) = r.get("actor_id").and_then(Value::as_i64) {
            m.insert("id".into(), id.to_string().into());
        }
        let bot = a.ends_with("[bot]");
        m.insert("type".into(), if bot { "service" } else { "user" }.into());
        e.insert("actor".into(), Value::Object(m));
    }
    e.insert("result".into(), "DONE".into());
    if let Some(ip) = address(text(r, &["actor_ip"])) {
        e.insert("source_ip".into(), ip.into());
    }
    if let Some(ua) = text(r, &["user_agent"]) {
        e.insert("user_agent".into(), ua.chars().take(1024).collect::<String>().into());
    }
    if let Some(id) = text(r, &["request_id"]) {
        e.insert("request_id".into(), id.into());
    }
    let target = [("repo", "repository"), ("team", "team"), ("user", "user"), ("hook_id", "hook")].iter().find_map(
        |(k, kind)| {
            r.get(*k)
                .and_then(|v| v.as_str().map(str::to_string).or(v.as_i64().map(|n| n.to_string())))
                .map(|v| (kind, v))
        },
    );
    if let Some((kind, name)) = target {
        e.insert("resource".into(), json!({"type": kind, "name": name}));
    }
    if let Some(org) = text(r, &["org"]) {
        e.insert("context".into(), json!({"workspace": {"id": org, "name": org}}));
    }
    e.insert("details".into(), json!({"raw": r}));
    Ok(Value::Object(e))
}

#[cfg(test)]
mod tests {
    use super::super::{convert, Format};

    #[test]
    fn audit_log_entries() {
        let lines = concat!(
            r#"{"@timestamp": 1764144000000, "_document_id": "d-1", "action": "repo.create", "actor": "octocat", "actor_id": 1, "actor_ip": "203.0.113.1", "org": "acme", "repo": "acme/web", "user_agent": "curl/8"}"#,
            "\n",
            r#"{"created_at": 1764144060000, "_document_id": "d-2", "action": "org.add_member", "actor": "deploy[bot]", "user": "mona", "org": "acme"}"#,
            "\n",
            r#"{"_document_id": "d-3", "actor": "x"}"#,
        );
        let c = convert(Format::Github, lines);
        assert_eq!((c.events.len(), c.skipped.len()), (2, 1));
        let e = &c.events[0];
        assert_eq!((e.category.as_str(), e.operation.as_str()), ("repo", "create"));
        assert_eq!(e.timestamp.map(|t| t.to_rfc3339()).as_deref(), Some("2025-11-26T08:00:00Z"));
        assert_eq!(e.resource.as_ref().and_then(|r| r.name.as_deref()), Some("acme/web"));
        assert_eq!(e.idempotency_key.as_deref(), Some("github:d-1"));
        assert_eq!(c.events[1].actor.as_ref().and_then(|a| a.kind.as_deref()), Some("service"));
    }
}
