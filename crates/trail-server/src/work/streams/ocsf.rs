//! Events as OCSF (Open Cybersecurity Schema Framework) records, version
//! `OCSF_VERSION`: `auth:*` as Authentication (3002), changes of users, roles and keys
//! as Account Change (3001), everything else as API Activity (6003). Each record
//! names the version in `metadata.version`, and keeps the stored event in `raw_data`
//! so that nothing of it is lost. No I/O.

use serde_json::{json, Map, Value};
use trail_core::{event::Outcome, Event};

/// The OCSF schema version the records follow (the tests validate them against it).
pub const OCSF_VERSION: &str = "1.3.0";

/// Categories whose changes are account changes.
const ACCOUNT_CATEGORIES: &[&str] =
    &["user", "users", "role", "roles", "key", "keys", "api_key", "apikey", "account", "member"];

/// The OCSF class an event maps to: (class_uid, category_uid, class name).
pub fn class_of(e: &Event) -> (u32, u32, &'static str) {
    let category = e.category().to_ascii_lowercase();
    if category == "auth" {
        (3002, 3, "Authentication")
    } else if ACCOUNT_CATEGORIES.contains(&category.as_str()) {
        (3001, 3, "Account Change")
    } else {
        (6003, 6, "API Activity")
    }
}

fn activity(class: u32, operation: &str) -> (u32, &'static str) {
    let op = operation.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| op.contains(w));
    match class {
        3002 if has(&["logout", "logoff", "signout", "sign_out"]) => (2, "Logoff"),
        3002 if has(&["login", "logon", "signin", "sign_in", "authenticate", "mfa", "sso"]) => (1, "Logon"),
        3001 if has(&["password_reset", "reset_password"]) => (4, "Password Reset"),
        3001 if has(&["password"]) => (3, "Password Change"),
        3001 if has(&["create", "invite", "add", "register"]) => (1, "Create"),
        3001 if has(&["enable", "activate", "unlock"]) => (2, "Enable"),
        3001 if has(&["disable", "deactivate", "suspend"]) => (5, "Disable"),
        3001 if has(&["delete", "remove", "revoke"]) => (6, "Delete"),
        3001 if has(&["assign", "grant", "attach", "role"]) => (7, "Attach Policy"),
        3001 if has(&["unassign", "detach"]) => (8, "Detach Policy"),
        3001 if has(&["lock"]) => (9, "Lock"),
        6003 if has(&["create", "add", "upload", "post", "invite", "deploy"]) => (1, "Create"),
        6003 if has(&["view", "read", "get", "list", "export", "download", "search"]) => (2, "Read"),
        6003 if has(&["update", "edit", "change", "set", "modify", "patch", "put", "rename", "scale", "restart"]) => {
            (3, "Update")
        }
        6003 if has(&["delete", "remove", "destroy", "revoke", "purge"]) => (4, "Delete"),
        _ => (99, "Other"),
    }
}

fn put(m: &mut Map<String, Value>, k: &str, v: Option<impl Into<Value>>) {
    if let Some(v) = v {
        m.insert(k.into(), v.into());
    }
}

/// The event's actor as an OCSF User object (at least one of name and uid).
fn actor_user(e: &Event) -> Value {
    let mut u = Map::new();
    if let Some(a) = &e.actor {
        put(&mut u, "uid", a.id.clone());
        put(&mut u, "name", a.name.clone().or_else(|| a.email.clone()));
        put(&mut u, "email_addr", a.email.clone());
        let type_id = match a.kind.as_deref() {
            Some("user") => Some(1),
            Some("system") | Some("service") | Some("api_key") => Some(3),
            _ => None,
        };
        put(&mut u, "type_id", type_id);
    }
    if !u.contains_key("uid") && !u.contains_key("name") {
        u.insert("name".into(), "unknown".into());
    }
    Value::Object(u)
}

/// The resource acted on as an OCSF User (for account changes).
fn target_user(e: &Event) -> Value {
    let mut u = Map::new();
    if let Some(r) = &e.resource {
        put(&mut u, "uid", r.id.clone());
        put(&mut u, "name", r.name.clone());
    }
    if u.is_empty() {
        return actor_user(e);
    }
    Value::Object(u)
}

fn endpoint(e: &Event) -> Value {
    match &e.source_ip {
        Some(ip) => json!({ "ip": ip }),
        None => json!({ "name": "unknown" }),
    }
}

/// One event as an OCSF record.
pub fn record(e: &Event, leaf: &[u8], product_version: &str) -> Value {
    let (class_uid, category_uid, class_name) = class_of(e);
    let (activity_id, activity_name) = activity(class_uid, e.operation());
    let failed = e.result == Outcome::Failed;
    let (status_id, status) = match e.result {
        Outcome::Done => (1, "Success"),
        Outcome::Failed => (2, "Failure"),
        Outcome::Processing | Outcome::Pending => (0, "Unknown"),
    };
    let mut r = Map::new();
    r.insert("class_uid".into(), class_uid.into());
    r.insert("class_name".into(), class_name.into());
    r.insert("category_uid".into(), category_uid.into());
    r.insert("activity_id".into(), activity_id.into());
    r.insert("activity_name".into(), activity_name.into());
    r.insert("type_uid".into(), (u64::from(class_uid) * 100 + u64::from(activity_id)).into());
    r.insert("severity_id".into(), if failed { 3 } else { 1 }.into());
    r.insert("severity".into(), if failed { "Medium" } else { "Informational" }.into());
    r.insert("status_id".into(), status_id.into());
    r.insert("status".into(), status.into());
    r.insert("time".into(), (e.timestamp.0 / 1000).into());
    r.insert("message".into(), e.action.clone().into());
    put(&mut r, "status_code", e.status_code.map(|c| c.to_string()));
    put(&mut r, "status_detail", e.error.clone());
    r.insert(
        "metadata".into(),
        json!({
            "version": OCSF_VERSION,
            "uid": e.id.to_string(),
            "log_name": format!("trail/{}", e.org),
            "logged_time": e.received_at.0 / 1000,
            "original_time": e.timestamp.to_rfc3339_micros(),
            "correlation_uid": e.request_id,
            "product": { "name": "Trail", "vendor_name": "Trail", "version": product_version },
        }),
    );
    match class_uid {
        3002 => {
            r.insert("user".into(), actor_user(e));
            r.insert("src_endpoint".into(), endpoint(e));
            // The service signed in to: the resource when the event names one, else
            // the organization's product as Trail knows it.
            let service = e.resource.as_ref().and_then(|r| r.name.clone().or_else(|| r.id.clone()));
            r.insert("service".into(), json!({ "name": service.unwrap_or_else(|| e.org.clone()) }));
            if let Some(ua) = &e.user_agent {
                r.insert("http_request".into(), json!({ "user_agent": ua }));
            }
        }
        3001 => {
            r.insert("user".into(), target_user(e));
            r.insert("actor".into(), json!({ "user": actor_user(e) }));
            r.insert("src_endpoint".into(), endpoint(e));
        }
        _ => {
            r.insert("actor".into(), json!({ "user": actor_user(e) }));
            r.insert("src_endpoint".into(), endpoint(e));
            let mut api = json!({ "operation": e.action });
            if let Some(id) = &e.request_id {
                api["request"] = json!({ "uid": id });
            }
            r.insert("api".into(), api);
            if let Some(res) = &e.resource {
                let mut m = Map::new();
                put(&mut m, "uid", res.id.clone());
                put(&mut m, "name", res.name.clone());
                put(&mut m, "type", res.kind.clone());
                if !m.is_empty() {
                    r.insert("resources".into(), Value::Array(vec![Value::Object(m)]));
                }
            }
            if let Some(ua) = &e.user_agent {
                r.insert("http_request".into(), json!({ "user_agent": ua }));
            }
        }
    }
    r.insert("raw_data".into(), String::from_utf8_lossy(leaf).into_owned().into());
    // `metadata.correlation_uid` is left out when there is no request id.
    if let Some(m) = r.get_mut("metadata").and_then(Value::as_object_mut) {
        m.retain(|_, v| !v.is_null());
    }
    Value::Object(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: &str) -> Event {
        let leaf = serde_json::to_vec(&json!({
            "id": "0190f0e8-0000-7000-8000-000000000001", "org": "acme", "seq": 3,
            "timestamp": "2024-03-01T10:00:00Z", "received_at": "2024-03-01T10:00:01Z",
            "action": action, "result": "FAILED", "actor": {"email": "a@x.io"}
        }))
        .unwrap();
        Event::from_leaf(&leaf).unwrap()
    }

    #[test]
    fn classes_and_activities_follow_the_action() {
        assert_eq!(class_of(&event("auth:login")).0, 3002);
        assert_eq!(class_of(&event("user:create")).0, 3001);
        assert_eq!(class_of(&event("cluster:delete")).0, 6003);
        let r = record(&event("auth:login"), b"{}", "0.1.0");
        assert_eq!((r["activity_id"].as_u64(), r["type_uid"].as_u64()), (Some(1), Some(300201)));
        assert_eq!((r["status_id"].as_u64(), r["severity_id"].as_u64()), (Some(2), Some(3)));
        assert_eq!(r["metadata"]["version"], OCSF_VERSION);
        let r = record(&event("cluster:delete"), b"{}", "0.1.0");
        assert_eq!((r["activity_id"].as_u64(), r["api"]["operation"].as_str()), (Some(4), Some("cluster:delete")));
    }
}
