//! Google Cloud Audit Logs (`LogEntry`s whose `protoPayload` is an `AuditLog`): the
//! action `<service>:<methodName>`, the principal's email as the actor (service
//! accounts as services), `status.code` to the result, `callerIp` (or, when it is not
//! an address, the caller's origin kept in details), the resource name and type, the
//! project as context, `insertId` as the idempotency key; the request and response
//! kept (`details.request`, `response`), the rest in `details.raw`.

use serde_json::{json, Map, Value};

use super::{action, address, missing, text};
use crate::work::WorkError;

pub fn map(r: &Value) -> Result<Value, WorkError> {
    let p = r
        .get("protoPayload")
        .ok_or_else(|| WorkError::field("protoPayload", "is missing (not a Cloud Audit Log entry)"))?;
    let service = text(p, &["serviceName"]).ok_or_else(|| missing("protoPayload.serviceName"))?;
    let method = text(p, &["methodName"]).ok_or_else(|| missing("protoPayload.methodName"))?;
    let id = text(r, &["insertId"]).ok_or_else(|| missing("insertId"))?;
    let mut e = Map::new();
    e.insert("action".into(), action(service.split('.').next().unwrap_or(service), method).into());
    e.insert("idempotency_key".into(), format!("gcp:{id}").into());
    if let Some(t) = text(r, &["timestamp"]) {
        e.insert("timestamp".into(), t.into());
    }
    if let Some(email) = text(p, &["authenticationInfo", "principalEmail"]) {
        let kind = if email.ends_with("gserviceaccount.com") { "service" } else { "user" };
        e.insert("actor".into(), json!({"email": email, "type": kind}));
    }
    let code = p.get("status").and_then(|s| s.get("code")).and_then(Value::as_i64).unwrap_or(0);
    if code == 0 {
        e.insert("result".into(), "DONE".into());
    } else {
        e.insert("result".into(), "FAILED".into());
        let msg = text(p, &["status", "message"]).map_or(format!("status {code}"), |m| format!("status {code}: {m}"));
        e.insert("error".into(), msg.into());
    }
    let caller = text(p, &["requestMetadata", "callerIp"]);
    if let Some(ip) = address(caller) {
        e.insert("source_ip".into(), ip.into());
    }
    if let Some(ua) = text(p, &["requestMetadata", "callerSuppliedUserAgent"]) {
        e.insert("user_agent".into(), ua.chars().take(1024).collect::<String>().into());
    }
    let mut res = Map::new();
    if let Some(t) = text(r, &["resource", "type"]) {
        res.insert("type".into(), t.into());
    }
    if let Some(n) = text(p, &["resourceName"]) {
        res.insert("id".into(), n.into());
        res.insert("name".into(), n.rsplit('/').next().unwrap_or(n).into());
    }
    if !res.is_empty() {
        e.insert("resource".into(), Value::Object(res));
    }
    if let Some(project) = text(r, &["resource", "labels", "project_id"]) {
        e.insert("context".into(), json!({"project": project}));
    }
    if let Some(op) = text(r, &["operation", "id"]) {
        e.insert("request_id".into(), op.into());
    }
    let mut raw = r.clone();
    let (request, response) = match raw.get_mut("protoPayload").and_then(Value::as_object_mut) {
        Some(m) => (m.remove("request"), m.remove("response")),
        None => (None, None),
    };
    let mut details = json!({"raw": raw});
    if let Some(o) = caller.filter(|c| address(Some(c)).is_none()) {
        details["origin"] = o.into();
    }
    if let Some(req) = request {
        details["request"] = req;
    }
    e.insert("details".into(), details);
    if let Some(resp) = response {
        e.insert("response".into(), resp);
    }
    Ok(Value::Object(e))
}

#[cfg(test)]
mod tests {
    use super::super::{convert, Format};

    #[test]
    fn cloud_audit_log_entries() {
        let lines = [
            r#"{"protoPayload": {"@type": "type.googleapis.com/google.cloud.audit.AuditLog", "serviceName": "compute.googleapis.com",
                "methodName": "v1.compute.instances.insert", "resourceName": "projects/p1/zones/europe-west1-b/instances/vm-1",
                "authenticationInfo": {"principalEmail": "ann@example.com"}, "requestMetadata": {"callerIp": "203.0.113.5",
                "callerSuppliedUserAgent": "gcloud"}, "request": {"name": "vm-1"}, "response": {"id": "42"}},
                "insertId": "i-1", "resource": {"type": "gce_instance", "labels": {"project_id": "p1"}},
                "timestamp": "2026-11-26T08:00:00.123456Z", "logName": "projects/p1/logs/cloudaudit.googleapis.com%2Factivity"}"#,
            r#"{"protoPayload": {"serviceName": "iam.googleapis.com", "methodName": "google.iam.admin.v1.CreateServiceAccountKey",
                "authenticationInfo": {"principalEmail": "ci@p1.iam.gserviceaccount.com"}, "requestMetadata": {"callerIp": "private"},
                "status": {"code": 7, "message": "Permission denied"}}, "insertId": "i-2", "timestamp": "2026-11-26T08:01:00Z"}"#,
            r#"{"insertId": "i-3", "jsonPayload": {}}"#,
        ]
        .map(|l| l.replace('\n', " "))
        .join("\n");
        let c = convert(Format::Gcp, &lines);
        assert_eq!((c.events.len(), c.skipped.len(), c.skipped[0].line), (2, 1, 3));
        let e = &c.events[0];
        assert_eq!((e.category.as_str(), e.operation.as_str()), ("compute", "v1.compute.instances.insert"));
        assert_eq!(e.resource.as_ref().and_then(|r| r.name.as_deref()), Some("vm-1"));
        assert_eq!(e.context.as_ref().and_then(|c| c.project.as_deref()), Some("p1"));
        assert_eq!(e.response.as_ref().unwrap()["id"], "42");
        let denied = &c.events[1];
        assert_eq!(
            (denied.result, denied.error.as_deref()),
            (trail_core::Outcome::Failed, Some("status 7: Permission denied"))
        );
        assert_eq!(denied.actor.as_ref().and_then(|a| a.kind.as_deref()), Some("service"));
        assert_eq!(denied.details.as_ref().unwrap()["origin"], "private");
    }
}
