//! The event shapes the product documents show, so that those products can point at
//! Trail unchanged (field names as each document lists them, snake_case where it
//! shows a table rather than JSON):
//! - KIOPS: `{"timestamp", "user", "action_type", "action_code", "resource",
//!   "result": "success"|"failed", "ip_address", "details"}`;
//! - KubeVision: `{"id", "user", "action", "resource" (kind), "resource_name",
//!   "cluster", "namespace", "status_code", "detail", "ip", "timestamp"}`;
//! - ops0: `{"id", "timestamp", "user": {"email", "id"} (or `user_email`), "action"
//!   (`deployment.failed`), "resource" (a name or `{type, id}`), "changes", "request",
//!   "response", "status", "ip_address", "user_agent"}`;
//! - Dify: `{"id", "time", "workspace": {"id", "name"}, "operator": {"account", "id",
//!   "type", "ip"}, "operation_type", "resource_type", "resource_name", "resource_id",
//!   "parent_resource": {"id", "name"}, "result"}`;
//! - GPU cloud: `{"id", "timestamp", "user", "action" (`Create`, `Start/Stop`,
//!   `Invite Accepted`…), "resource", "resource_type", "project", "ip_address",
//!   "details"}`.
//!
//! The whole record is kept in `details.raw`; a record id, when the shape has one, is
//! the idempotency key.

use serde_json::{json, Map, Value};

use super::{action, address, missing, text};
use crate::work::WorkError;

pub fn kiops(r: &Value) -> Result<Value, WorkError> {
    let code = text(r, &["action_code"]);
    let kind = text(r, &["action_type"]);
    let act = match (code, kind) {
        (Some(c), _) if c.contains(':') => c.to_string(),
        (Some(c), Some(k)) => action(k, c),
        (None, Some(k)) => action(k, "unknown"),
        (Some(c), None) => action("unknown", c),
        (None, None) => return Err(missing("action_code")),
    };
    let mut e = Map::new();
    e.insert("action".into(), act.into());
    if let Some(t) = text(r, &["timestamp"]) {
        e.insert("timestamp".into(), t.into());
    }
    if let Some(u) = text(r, &["user"]) {
        e.insert("actor".into(), user(u));
    }
    if let Some(res) = text(r, &["resource"]) {
        e.insert("resource".into(), json!({"name": res}));
    }
    e.insert("result".into(), result(text(r, &["result"]))?.into());
    if let Some(ip) = address(text(r, &["ip_address"])) {
        e.insert("source_ip".into(), ip.into());
    }
    keyed(&mut e, "kiops", r);
    e.insert("details".into(), details(r.get("details"), r));
    Ok(Value::Object(e))
}

/// A result word as Trail's result (absent: done).
fn result(word: Option<&str>) -> Result<&'static str, WorkError> {
    Ok(match word.map(str::to_ascii_lowercase).as_deref() {
        Some("success" | "succeeded" | "ok" | "done" | "allowed") | None => "DONE",
        Some("failed" | "failure" | "fail" | "error" | "denied") => "FAILED",
        Some("pending") => "PENDING",
        Some("processing" | "running") => "PROCESSING",
        Some(other) => return Err(WorkError::field("result", format!("'{other}' is not success or failed"))),
    })
}

/// The record's id (`id`, `event_id`) as the idempotency key.
fn keyed(e: &mut Map<String, Value>, product: &str, r: &Value) {
    if let Some(id) = text(r, &["id"]).or(text(r, &["event_id"])) {
        e.insert("idempotency_key".into(), format!("{product}:{id}").into());
    }
}

/// The record's own details (an object kept as is, anything else under `value`),
/// and the whole record as `raw`.
fn details(own: Option<&Value>, r: &Value) -> Value {
    let mut d = match own {
        Some(Value::Object(m)) => Value::Object(m.clone()),
        Some(Value::Null) | None => json!({}),
        Some(other) => json!({"value": other}),
    };
    d["raw"] = r.clone();
    d
}

/// An object of the fields that are present.
fn obj(fields: &[(&str, Option<&str>)]) -> Value {
    Value::Object(fields.iter().filter_map(|(k, v)| v.map(|v| (k.to_string(), Value::from(v)))).collect())
}

/// A user given as an email or a name.
fn user(name: &str) -> Value {
    let key = if name.contains('@') { "email" } else { "name" };
    json!({ key: name, "type": "user" })
}

pub fn kubevision(r: &Value) -> Result<Value, WorkError> {
    let verb = text(r, &["action"]).ok_or_else(|| missing("action"))?;
    let kind = text(r, &["resource"]).unwrap_or("system");
    let mut e = Map::new();
    e.insert("action".into(), action(kind, verb).into());
    if let Some(t) = text(r, &["timestamp"]) {
        e.insert("timestamp".into(), t.into());
    }
    if let Some(u) = text(r, &["user"]) {
        e.insert("actor".into(), user(u));
    }
    let mut res = Map::new();
    res.insert("type".into(), kind.into());
    if let Some(n) = text(r, &["resource_name"]) {
        res.insert("name".into(), n.into());
    }
    e.insert("resource".into(), Value::Object(res));
    let mut context = Map::new();
    for k in ["cluster", "namespace"] {
        if let Some(v) = text(r, &[k]) {
            context.insert(k.into(), v.into());
        }
    }
    if !context.is_empty() {
        e.insert("context".into(), Value::Object(context));
    }
    let code = r.get("status_code").and_then(Value::as_u64).filter(|c| (100..600).contains(c));
    if let Some(c) = code {
        e.insert("status_code".into(), c.into());
    }
    e.insert("result".into(), if code.is_some_and(|c| c >= 400) { "FAILED" } else { "DONE" }.into());
    if let Some(ip) = address(text(r, &["ip"])) {
        e.insert("source_ip".into(), ip.into());
    }
    keyed(&mut e, "kubevision", r);
    e.insert("details".into(), details(r.get("detail"), r));
    Ok(Value::Object(e))
}

pub fn ops0(r: &Value) -> Result<Value, WorkError> {
    let act = text(r, &["action"]).ok_or_else(|| missing("action"))?;
    let (category, operation) = act.split_once(['.', ':']).unwrap_or((act, "event"));
    let mut e = Map::new();
    e.insert("action".into(), action(category, operation).into());
    if let Some(t) = text(r, &["timestamp"]) {
        e.insert("timestamp".into(), t.into());
    }
    let email = text(r, &["user", "email"]).or(text(r, &["user_email"])).or(text(r, &["user"]));
    if let Some(email) = email {
        let mut a = user(email);
        if let Some(id) = text(r, &["user", "id"]).or(text(r, &["user_id"])) {
            a["id"] = id.into();
        }
        e.insert("actor".into(), a);
    }
    match r.get("resource") {
        Some(Value::String(n)) => {
            e.insert("resource".into(), json!({"name": n}));
        }
        Some(Value::Object(m)) => {
            let pick = |k: &str| m.get(k).and_then(Value::as_str);
            e.insert(
                "resource".into(),
                obj(&[("type", pick("type")), ("id", pick("id")), ("name", pick("name").or(pick("id")))]),
            );
        }
        _ => {}
    }
    let failed = operation.contains("fail")
        || text(r, &["status"]).is_some_and(|s| result(Some(s)).is_ok_and(|r| r == "FAILED"));
    e.insert("result".into(), if failed { "FAILED" } else { "DONE" }.into());
    if let Some(ip) = address(text(r, &["ip_address"])) {
        e.insert("source_ip".into(), ip.into());
    }
    if let Some(ua) = text(r, &["user_agent"]) {
        e.insert("user_agent".into(), ua.into());
    }
    if let Some(resp) = r.get("response").filter(|v| !v.is_null()) {
        e.insert("response".into(), resp.clone());
    }
    keyed(&mut e, "ops0", r);
    let mut d = details(r.get("changes").map(|c| json!({"changes": c})).as_ref(), r);
    if let Some(req) = r.get("request").filter(|v| !v.is_null()) {
        d["request"] = req.clone();
    }
    e.insert("details".into(), d);
    Ok(Value::Object(e))
}

pub fn dify(r: &Value) -> Result<Value, WorkError> {
    let op = text(r, &["operation_type"]).ok_or_else(|| missing("operation_type"))?;
    let kind = text(r, &["resource_type"]).unwrap_or("system");
    let mut e = Map::new();
    e.insert("action".into(), action(kind, &op.to_ascii_lowercase().replace(' ', "_")).into());
    if let Some(t) = text(r, &["time"]).or(text(r, &["timestamp"])) {
        e.insert("timestamp".into(), t.into());
    }
    if let Some(o) = r.get("operator") {
        let mut a = Map::new();
        if let Some(v) = text(o, &["id"]) {
            a.insert("id".into(), v.into());
        }
        if let Some(v) = text(o, &["account"]) {
            a.insert(if v.contains('@') { "email" } else { "name" }.into(), v.into());
        }
        let t = match text(o, &["type"]) {
            Some("api_key" | "api-key" | "apikey") => "api_key",
            Some("system") => "system",
            _ => "user",
        };
        a.insert("type".into(), t.into());
        e.insert("actor".into(), Value::Object(a));
        if let Some(ip) = address(text(o, &["ip"])) {
            e.insert("source_ip".into(), ip.into());
        }
    }
    let mut res = json!({"type": kind});
    if let Some(n) = text(r, &["resource_name"]) {
        res["name"] = n.into();
    }
    if let Some(id) = text(r, &["resource_id"]) {
        res["id"] = id.into();
    }
    if let Some(p) = r.get("parent_resource").filter(|p| p.is_object()) {
        res["parent"] = obj(&[("id", text(p, &["id"])), ("name", text(p, &["name"]))]);
    }
    e.insert("resource".into(), res);
    if let Some(w) = r.get("workspace").filter(|w| w.is_object()) {
        e.insert(
            "context".into(),
            json!({"workspace": obj(&[("id", text(w, &["id"])), ("name", text(w, &["name"]))])}),
        );
    }
    e.insert("result".into(), result(text(r, &["result"]))?.into());
    keyed(&mut e, "dify", r);
    e.insert("details".into(), details(r.get("details"), r));
    Ok(Value::Object(e))
}

pub fn gpucloud(r: &Value) -> Result<Value, WorkError> {
    let act = text(r, &["action"]).ok_or_else(|| missing("action"))?;
    let kind = text(r, &["resource_type"]).unwrap_or("account");
    let mut e = Map::new();
    e.insert("action".into(), action(kind, &act.to_ascii_lowercase().replace([' ', '/'], "_")).into());
    if let Some(t) = text(r, &["timestamp"]) {
        e.insert("timestamp".into(), t.into());
    }
    if let Some(u) = text(r, &["user"]) {
        e.insert("actor".into(), user(u));
    }
    if let Some(n) = text(r, &["resource"]) {
        e.insert("resource".into(), json!({"type": kind, "name": n}));
    }
    if let Some(p) = text(r, &["project"]) {
        e.insert("context".into(), json!({"project": p}));
    }
    e.insert("result".into(), result(text(r, &["result"]).or(text(r, &["status"])))?.into());
    if let Some(ip) = address(text(r, &["ip_address"])) {
        e.insert("source_ip".into(), ip.into());
    }
    keyed(&mut e, "gpucloud", r);
    e.insert("details".into(), details(r.get("details"), r));
    Ok(Value::Object(e))
}

#[cfg(test)]
mod tests {
    use super::super::{convert, Format};

    #[test]
    fn the_kiops_shape_of_its_document() {
        let doc = r#"{"timestamp": "2024-03-01T10:30:00Z", "user": "admin@company.com", "action_type": "service",
          "action_code": "service:deploy", "resource": "my-service", "result": "success", "ip_address": "192.168.1.100",
          "details": {"image": "harbor.company.com/library/my-service:v1.0.0", "namespace": "production", "replicas": 3}}"#;
        let c = convert(Format::Kiops, doc);
        assert_eq!((c.events.len(), c.skipped.len()), (1, 0));
        let e = &c.events[0];
        assert_eq!((e.category.as_str(), e.operation.as_str()), ("service", "deploy"));
        assert_eq!(e.actor.as_ref().and_then(|a| a.email.as_deref()), Some("admin@company.com"));
        assert_eq!(e.details.as_ref().unwrap()["replicas"], 3);
        assert_eq!(e.details.as_ref().unwrap()["raw"]["action_type"], "service");
        let bad = convert(Format::Kiops, r#"[{"action_code": "x:y", "result": "maybe"}, {"user": "a"}]"#);
        let at: Vec<_> = bad.skipped.iter().map(|s| (s.line, s.record)).collect();
        assert_eq!(at, [(1, Some(1)), (1, Some(2))], "both on line 1, the first and second record");
    }

    #[test]
    fn the_other_products_shapes() {
        let kv = r#"{"id": "5f0c1a7e-0000-4000-8000-000000000001", "user": "alice", "action": "delete", "resource": "Secret",
            "resource_name": "db-creds", "cluster": "prod-1", "namespace": "payments", "status_code": 403,
            "detail": {"reason": "forbidden"}, "ip": "10.1.2.3", "timestamp": "2026-11-26T08:00:00Z"}"#;
        let e = &convert(Format::Kubevision, kv).events[0];
        assert_eq!(
            (e.category.as_str(), e.operation.as_str(), e.result),
            ("secret", "delete", trail_core::Outcome::Failed)
        );
        assert_eq!(e.context.as_ref().and_then(|c| c.cluster.as_deref()), Some("prod-1"));
        assert_eq!(e.details.as_ref().unwrap()["reason"], "forbidden");
        let ops0 = r#"{"id": "evt_abc123xyz", "timestamp": "2024-01-15T14:30:45Z", "user": {"email": "sarah@acme.com", "id": "usr_456"},
            "action": "deployment.failed", "resource": "api-infrastructure", "ip_address": "192.168.1.50", "user_agent": "Chrome/120.0",
            "changes": {"error": "Policy violation: S3 encryption required"}, "request": {"deployment_id": "dep_789"}}"#;
        let e = &convert(Format::Ops0, ops0).events[0];
        assert_eq!(
            (e.category.as_str(), e.operation.as_str(), e.result),
            ("deployment", "failed", trail_core::Outcome::Failed)
        );
        assert_eq!(e.actor.as_ref().and_then(|a| a.id.as_deref()), Some("usr_456"));
        assert_eq!(e.idempotency_key.as_deref(), Some("ops0:evt_abc123xyz"));
        assert_eq!(e.details.as_ref().unwrap()["request"]["deployment_id"], "dep_789");
        let dify = r#"{"time": "2026-11-26T08:00:00Z", "workspace": {"id": "ws-1", "name": "Research"},
            "operator": {"account": "ann@example.com", "id": "m-1", "ip": "203.0.113.8"}, "operation_type": "Export DSL",
            "resource_type": "applications", "resource_name": "Support bot", "resource_id": "app-9",
            "parent_resource": {"id": "ws-1", "name": "Research"}}"#;
        let e = &convert(Format::Dify, dify).events[0];
        assert_eq!((e.category.as_str(), e.operation.as_str()), ("applications", "export_dsl"));
        assert_eq!(
            e.context.as_ref().and_then(|c| c.workspace.as_ref()).and_then(|w| w.name.as_deref()),
            Some("Research")
        );
        assert_eq!(
            e.resource.as_ref().and_then(|r| r.parent.as_ref()).and_then(|p| p.name.as_deref()),
            Some("Research")
        );
        let gpu = r#"[{"timestamp": "2026-11-26T08:00:00Z", "user": "bob@example.com", "action": "Start/Stop",
            "resource": "train-7", "resource_type": "Pods", "project": "llm"}, {"user": "x"}]"#;
        let c = convert(Format::Gpucloud, gpu);
        assert_eq!((c.events.len(), c.skipped.len()), (1, 1));
        assert_eq!((c.events[0].category.as_str(), c.events[0].operation.as_str()), ("pods", "start_stop"));
    }
}
