//! The event shapes the product documents show, so that those products can point at
//! Trail unchanged. KIOPS: `{"timestamp", "user", "action_type", "action_code",
//! "resource", "result": "success"|"failed", "ip_address", "details"}`.

use serde_json::{json, Map, Value};

use super::{action, address, text};

pub fn kiops(r: &Value) -> Result<Value, String> {
    let code = text(r, &["action_code"]);
    let kind = text(r, &["action_type"]);
    let act = match (code, kind) {
        (Some(c), _) if c.contains(':') => c.to_string(),
        (Some(c), Some(k)) => action(k, c),
        (None, Some(k)) => action(k, "unknown"),
        (Some(c), None) => action("unknown", c),
        (None, None) => return Err("action_code is missing".into()),
    };
    let mut e = Map::new();
    e.insert("action".into(), act.into());
    if let Some(t) = text(r, &["timestamp"]) {
        e.insert("timestamp".into(), t.into());
    }
    if let Some(u) = text(r, &["user"]) {
        let key = if u.contains('@') { "email" } else { "name" };
        e.insert("actor".into(), json!({ key: u, "type": "user" }));
    }
    if let Some(res) = text(r, &["resource"]) {
        e.insert("resource".into(), json!({"name": res}));
    }
    let result = match text(r, &["result"]).map(str::to_ascii_lowercase).as_deref() {
        Some("success" | "succeeded" | "ok" | "done") | None => "DONE",
        Some("failed" | "failure" | "fail" | "error") => "FAILED",
        Some("pending") => "PENDING",
        Some("processing" | "running") => "PROCESSING",
        Some(other) => return Err(format!("result '{other}' is not success or failed")),
    };
    e.insert("result".into(), result.into());
    if let Some(ip) = address(text(r, &["ip_address"])) {
        e.insert("source_ip".into(), ip.into());
    }
    if let Some(id) = text(r, &["id"]).or(text(r, &["event_id"])) {
        e.insert("idempotency_key".into(), format!("kiops:{id}").into());
    }
    let mut details = match r.get("details") {
        Some(Value::Object(m)) => Value::Object(m.clone()),
        Some(Value::Null) | None => json!({}),
        Some(other) => json!({"value": other}),
    };
    details["raw"] = r.clone();
    e.insert("details".into(), details);
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
        assert_eq!(bad.skipped.iter().map(|s| s.line).collect::<Vec<_>>(), [1, 2]);
    }
}
