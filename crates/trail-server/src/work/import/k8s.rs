//! Kubernetes audit events (`audit.k8s.io/v1` and `v1beta1` `Event`s, one per line or in
//! an `EventList` as the API server's webhook backend posts them). Only the
//! `ResponseComplete` and `Panic` stages are stored (the others describe the same
//! request unfinished). The verb and `objectRef` make the action
//! (`<resource>:<verb>`, a subresource appended: `pods:create_exec`) and the resource;
//! the namespace goes to the context, the user and groups to the actor (service
//! accounts and `system:` users are services), the last of `sourceIPs` (the address
//! the API server saw) to the source address, the response code to the result and
//! status code, and `auditID` to the idempotency key. The request and response
//! objects are kept (`details.request`, `response`), the rest in `details.raw`.

use serde_json::{json, Map, Value};

use super::{action, address, missing, text};
use crate::work::WorkError;

pub fn map(r: &Value) -> Result<Option<Value>, WorkError> {
    let api = text(r, &["apiVersion"]).unwrap_or("audit.k8s.io/v1");
    if !api.starts_with("audit.k8s.io/") || text(r, &["kind"]).is_some_and(|k| k != "Event") {
        return Err(WorkError::field(
            "apiVersion",
            format!("not a Kubernetes audit event ({api} {})", text(r, &["kind"]).unwrap_or("?")),
        ));
    }
    let stage = text(r, &["stage"]).ok_or_else(|| missing("stage"))?;
    if stage != "ResponseComplete" && stage != "Panic" {
        return Err(WorkError::field("stage", format!("{stage}: only ResponseComplete and Panic are stored")));
    }
    let verb = text(r, &["verb"]).ok_or_else(|| missing("verb"))?;
    let audit_id = text(r, &["auditID"]).ok_or_else(|| missing("auditID"))?;
    let object = r.get("objectRef");
    let mut e = Map::new();
    let (category, operation) = match object.and_then(|o| text(o, &["resource"])) {
        Some(res) => match object.and_then(|o| text(o, &["subresource"])) {
            Some(sub) => (res, format!("{verb}_{sub}")),
            None => (res, verb.to_string()),
        },
        None => ("k8s", verb.to_string()),
    };
    e.insert("action".into(), action(category, &operation).into());
    e.insert("idempotency_key".into(), format!("k8s:{audit_id}").into());
    if let Some(t) = text(r, &["requestReceivedTimestamp"]).or(text(r, &["stageTimestamp"])) {
        e.insert("timestamp".into(), t.into());
    }
    let username = text(r, &["user", "username"]);
    let mut actor = Map::new();
    if let Some(id) = text(r, &["user", "uid"]).or(username) {
        actor.insert("id".into(), id.into());
    }
    if let Some(u) = username {
        actor.insert("name".into(), u.into());
        let service = u.starts_with("system:");
        actor.insert("type".into(), if service { "service" } else { "user" }.into());
    }
    if !actor.is_empty() {
        e.insert("actor".into(), Value::Object(actor));
    }
    let code = r.get("responseStatus").and_then(|s| s.get("code")).and_then(Value::as_u64);
    let failed = stage == "Panic" || code.is_some_and(|c| c >= 400);
    e.insert("result".into(), if failed { "FAILED" } else { "DONE" }.into());
    if let Some(c) = code.filter(|c| (100..600).contains(c)) {
        e.insert("status_code".into(), c.into());
    }
    if failed {
        let msg = text(r, &["responseStatus", "message"]).or(text(r, &["responseStatus", "reason"]));
        e.insert(
            "error".into(),
            msg.unwrap_or(if stage == "Panic" { "the API server panicked" } else { "failed" }).into(),
        );
    }
    let last_ip = r.get("sourceIPs").and_then(Value::as_array).and_then(|a| a.last()).and_then(Value::as_str);
    if let Some(ip) = address(last_ip) {
        e.insert("source_ip".into(), ip.into());
    }
    if let Some(ua) = text(r, &["userAgent"]) {
        e.insert("user_agent".into(), ua.chars().take(1024).collect::<String>().into());
    }
    if let Some(o) = object {
        let mut m = Map::new();
        let kind = text(o, &["resource"]).map(|res| match text(o, &["subresource"]) {
            Some(sub) => format!("{res}/{sub}"),
            None => res.to_string(),
        });
        if let Some(k) = kind {
            m.insert("type".into(), k.into());
        }
        if let Some(n) = text(o, &["name"]) {
            m.insert("name".into(), n.into());
        }
        if let Some(uid) = text(o, &["uid"]) {
            m.insert("id".into(), uid.into());
        }
        if !m.is_empty() {
            e.insert("resource".into(), Value::Object(m));
        }
        if let Some(ns) = text(o, &["namespace"]) {
            e.insert("context".into(), json!({"namespace": ns}));
        }
    } else if let Some(uri) = text(r, &["requestURI"]) {
        e.insert("resource".into(), json!({"type": "url", "name": uri}));
    }
    let mut raw = r.clone();
    let (request, response) = match raw.as_object_mut() {
        Some(m) => (m.remove("requestObject"), m.remove("responseObject")),
        None => (None, None),
    };
    let groups = r.get("user").and_then(|u| u.get("groups")).cloned().unwrap_or(Value::Null);
    let mut details = json!({"raw": raw, "groups": groups});
    if let Some(req) = request {
        details["request"] = req;
    }
    e.insert("details".into(), details);
    if let Some(resp) = response {
        e.insert("response".into(), resp);
    }
    Ok(Some(Value::Object(e)))
}

#[cfg(test)]
mod tests {
    use super::super::{convert, Format};

    const LIST: &str = r#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[
      {"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"a-1","stage":"RequestReceived",
       "requestURI":"/api/v1/namespaces/prod/pods","verb":"create","user":{"username":"alice","groups":["dev"]},
       "sourceIPs":["10.0.0.1"],"objectRef":{"resource":"pods","namespace":"prod","apiVersion":"v1"},
       "requestReceivedTimestamp":"2024-03-01T10:00:00.000000Z","stageTimestamp":"2024-03-01T10:00:00.000000Z"},
      {"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"a-1","stage":"ResponseComplete",
       "requestURI":"/api/v1/namespaces/prod/pods","verb":"create","user":{"username":"alice","uid":"u-1","groups":["dev"]},
       "sourceIPs":["198.51.100.9","10.0.0.1"],"userAgent":"kubectl/v1.29","objectRef":{"resource":"pods","namespace":"prod","name":"web-1","apiVersion":"v1"},
       "responseStatus":{"metadata":{},"code":201},"requestObject":{"kind":"Pod"},"responseObject":{"kind":"Pod","metadata":{"uid":"p-1"}},
       "requestReceivedTimestamp":"2024-03-01T10:00:00.000000Z","stageTimestamp":"2024-03-01T10:00:00.100000Z"},
      {"kind":"Event","apiVersion":"audit.k8s.io/v1beta1","auditID":"a-2","stage":"ResponseComplete","verb":"create",
       "requestURI":"/api/v1/namespaces/prod/pods/web-1/exec","user":{"username":"system:serviceaccount:ci:deployer"},
       "sourceIPs":["10.0.0.2"],"objectRef":{"resource":"pods","subresource":"exec","namespace":"prod","name":"web-1"},
       "responseStatus":{"code":403,"reason":"Forbidden","message":"pods \"web-1\" is forbidden"},
       "requestReceivedTimestamp":"2024-03-01T10:00:01Z"},
      {"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"a-3","stage":"Panic","verb":"get","requestURI":"/healthz",
       "user":{"username":"bob"},"sourceIPs":["10.0.0.3"],"requestReceivedTimestamp":"2024-03-01T10:00:02Z"}
    ]}"#;

    #[test]
    fn an_event_list_as_the_api_server_posts_it() {
        let c = convert(Format::K8s, LIST);
        assert_eq!((c.events.len(), c.skipped.len()), (3, 1), "{:?}", c.skipped);
        assert!(c.skipped[0].reason.contains("RequestReceived"));
        let e = &c.events[0];
        assert_eq!((e.category.as_str(), e.operation.as_str()), ("pods", "create"));
        assert_eq!(e.source_ip.map(|a| a.to_string()).as_deref(), Some("10.0.0.1"), "the last entry");
        assert_eq!((e.status_code, e.idempotency_key.as_deref()), (Some(201), Some("k8s:a-1")));
        assert_eq!(e.context.as_ref().and_then(|c| c.namespace.as_deref()), Some("prod"));
        assert_eq!(e.response.as_ref().unwrap()["metadata"]["uid"], "p-1");
        let exec = &c.events[1];
        assert_eq!((exec.operation.as_str(), exec.result), ("create_exec", trail_core::Outcome::Failed));
        assert_eq!(exec.actor.as_ref().and_then(|a| a.kind.as_deref()), Some("service"));
        assert_eq!(exec.error.as_deref(), Some("pods \"web-1\" is forbidden"));
        let panic = &c.events[2];
        assert_eq!((panic.category.as_str(), panic.result), ("k8s", trail_core::Outcome::Failed));
        // Event lines read the same; something else is refused with a reason.
        let line =
            r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"x","stage":"ResponseComplete","verb":"list"}"#;
        assert_eq!(convert(Format::K8s, &format!("{line}\n{{\"kind\":\"Pod\"}}\n")).skipped.len(), 1);
    }
}
