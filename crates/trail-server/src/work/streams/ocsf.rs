//! Events as OCSF (Open Cybersecurity Schema Framework) records, version
//! `OCSF_VERSION`: `auth:*` as Authentication (3002), changes of users, roles and keys
//! as Account Change (3001), everything else as API Activity (6003). Each record
//! names the version in `metadata.version`, and keeps the stored event in `raw_data`
//! so that nothing of it is lost. No I/O.

use serde::Serialize;

use trail_core::LeafView;

/// The OCSF schema version the records follow (the tests validate them against it).
pub const OCSF_VERSION: &str = "1.3.0";

/// Categories whose changes are account changes.
const ACCOUNT_CATEGORIES: &[&str] =
    &["user", "users", "role", "roles", "key", "keys", "api_key", "apikey", "account", "member"];

/// The OCSF class an event maps to: (class_uid, category_uid, class name).
pub fn class_of(e: &LeafView<'_>) -> (u32, u32, &'static str) {
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

/// An OCSF User object (at least one of name and uid).
#[derive(Serialize)]
struct User<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_addr: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    type_id: Option<u8>,
}

#[derive(Serialize)]
struct ActorObj<'a> {
    user: User<'a>,
}

#[derive(Serialize)]
struct Endpoint<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

#[derive(Serialize)]
struct Named<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct Product<'a> {
    name: &'a str,
    vendor_name: &'a str,
    version: &'a str,
}

#[derive(Serialize)]
struct Metadata<'a> {
    version: &'a str,
    uid: &'a str,
    log_name: String,
    logged_time: i64,
    original_time: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_uid: Option<&'a str>,
    product: Product<'a>,
}

#[derive(Serialize)]
struct Uid<'a> {
    uid: &'a str,
}

#[derive(Serialize)]
struct Api<'a> {
    operation: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    request: Option<Uid<'a>>,
}

#[derive(Serialize)]
struct ResourceObj<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'a str>,
}

#[derive(Serialize)]
struct HttpRequest<'a> {
    user_agent: &'a str,
}

/// One OCSF record: the attributes of the three classes, each present only where
/// its class defines it.
#[derive(Serialize)]
pub struct Record<'a> {
    class_uid: u32,
    class_name: &'static str,
    category_uid: u32,
    activity_id: u32,
    activity_name: &'static str,
    type_uid: u64,
    severity_id: u8,
    severity: &'static str,
    status_id: u8,
    status: &'static str,
    time: i64,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_detail: Option<&'a str>,
    metadata: Metadata<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<User<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    actor: Option<ActorObj<'a>>,
    src_endpoint: Endpoint<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service: Option<Named<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api: Option<Api<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resources: Option<[ResourceObj<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http_request: Option<HttpRequest<'a>>,
    /// The stored event, whole.
    raw_data: &'a str,
}

/// The event's actor as an OCSF User.
fn actor_user<'a>(e: &'a LeafView<'_>) -> User<'a> {
    let a = e.actor.as_ref();
    let uid = a.and_then(|a| a.id.as_deref());
    let email = a.and_then(|a| a.email.as_deref());
    let mut name = a.and_then(|a| a.name.as_deref()).or(email);
    if uid.is_none() && name.is_none() {
        name = Some("unknown");
    }
    let type_id = match a.and_then(|a| a.kind.as_deref()) {
        Some("user") => Some(1),
        Some("system" | "service" | "api_key") => Some(3),
        _ => None,
    };
    User { uid, name, email_addr: email, type_id }
}

/// The resource acted on as an OCSF User (account changes), else the actor.
fn target_user<'a>(e: &'a LeafView<'_>) -> User<'a> {
    match &e.resource {
        Some(r) if r.id.is_some() || r.name.is_some() => {
            User { uid: r.id.as_deref(), name: r.name.as_deref(), email_addr: None, type_id: None }
        }
        _ => actor_user(e),
    }
}

/// One event as an OCSF record (`leaf` is its stored bytes, kept as `raw_data`).
pub fn record<'a>(e: &'a LeafView<'_>, leaf: &'a str, product_version: &'a str) -> Record<'a> {
    let (class_uid, category_uid, class_name) = class_of(e);
    let (activity_id, activity_name) = activity(class_uid, e.operation());
    let failed = e.failed();
    let (status_id, status) = match e.result.as_ref() {
        "DONE" => (1, "Success"),
        "FAILED" => (2, "Failure"),
        _ => (0, "Unknown"),
    };
    let src_endpoint = match e.source_ip.as_deref() {
        Some(ip) => Endpoint { ip: Some(ip), name: None },
        None => Endpoint { ip: None, name: Some("unknown") },
    };
    let http_request = e.user_agent.as_deref().map(|ua| HttpRequest { user_agent: ua });
    let mut r = Record {
        class_uid,
        class_name,
        category_uid,
        activity_id,
        activity_name,
        type_uid: u64::from(class_uid) * 100 + u64::from(activity_id),
        severity_id: if failed { 3 } else { 1 },
        severity: if failed { "Medium" } else { "Informational" },
        status_id,
        status,
        time: e.time().unwrap_or(0) / 1000,
        message: &e.action,
        status_code: e.status_code.map(|c| c.to_string()),
        status_detail: e.error.as_deref(),
        metadata: Metadata {
            version: OCSF_VERSION,
            uid: &e.id,
            log_name: format!("trail/{}", e.org),
            logged_time: e.received().unwrap_or(0) / 1000,
            original_time: &e.timestamp,
            correlation_uid: e.request_id.as_deref(),
            product: Product { name: "Trail", vendor_name: "Trail", version: product_version },
        },
        user: None,
        actor: None,
        src_endpoint,
        service: None,
        api: None,
        resources: None,
        http_request: None,
        raw_data: leaf,
    };
    match class_uid {
        3002 => {
            r.user = Some(actor_user(e));
            // The service signed in to: the resource when the event names one, else
            // the organization.
            let service = e.resource.as_ref().and_then(|x| x.name.as_deref().or(x.id.as_deref()));
            r.service = Some(Named { name: service.unwrap_or(&e.org) });
            r.http_request = http_request;
        }
        3001 => {
            r.user = Some(target_user(e));
            r.actor = Some(ActorObj { user: actor_user(e) });
        }
        _ => {
            r.actor = Some(ActorObj { user: actor_user(e) });
            r.api = Some(Api { operation: &e.action, request: e.request_id.as_deref().map(|uid| Uid { uid }) });
            r.resources = e
                .resource
                .as_ref()
                .filter(|x| x.id.is_some() || x.name.is_some() || x.kind.is_some())
                .map(|x| [ResourceObj { uid: x.id.as_deref(), name: x.name.as_deref(), kind: x.kind.as_deref() }]);
            r.http_request = http_request;
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn leaf(action: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "id": "0190f0e8-0000-7000-8000-000000000001", "org": "acme", "seq": 3,
            "timestamp": "2024-03-01T10:00:00Z", "received_at": "2024-03-01T10:00:01Z",
            "action": action, "result": "FAILED", "actor": {"email": "a@x.io"}
        }))
        .unwrap()
    }

    fn ocsf(action: &str) -> Value {
        let l = leaf(action);
        let v = LeafView::read(&l).unwrap();
        serde_json::to_value(record(&v, std::str::from_utf8(&l).unwrap(), "0.1.0")).unwrap()
    }

    #[test]
    fn classes_and_activities_follow_the_action() {
        for (action, class) in [("auth:login", 3002), ("user:create", 3001), ("cluster:delete", 6003)] {
            assert_eq!(class_of(&LeafView::read(&leaf(action)).unwrap()).0, class, "{action}");
        }
        let r = ocsf("auth:login");
        assert_eq!((r["activity_id"].as_u64(), r["type_uid"].as_u64()), (Some(1), Some(300201)));
        assert_eq!((r["status_id"].as_u64(), r["severity_id"].as_u64()), (Some(2), Some(3)));
        assert_eq!((r["metadata"]["version"].as_str(), r["time"].as_i64()), (Some(OCSF_VERSION), Some(1709287200000)));
        assert_eq!(r["user"]["name"], "a@x.io");
        let r = ocsf("cluster:delete");
        assert_eq!((r["activity_id"].as_u64(), r["api"]["operation"].as_str()), (Some(4), Some("cluster:delete")));
        assert!(r.get("user").is_none() && r["raw_data"].as_str().unwrap().contains("\"seq\":3"));
    }
}
