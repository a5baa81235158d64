//! The audit event: what clients send (`NewEvent`, validated from JSON) and what Trail
//! stores (`Event`, whose JSON serialisation is the Merkle leaf).
//!
//! The leaf format is a wire format: field order and spelling are pinned by a golden
//! test, because outside verifiers hash these exact bytes.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{value::RawValue, Map, Value};
use uuid::Uuid;

use crate::{error::FieldError, time::Timestamp};

/// Size limits applied to every ingest request. Configurable; the defaults are those of
/// the design contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest single event, in bytes of its JSON text.
    pub max_event_bytes: usize,
    /// Largest request body, in bytes.
    pub max_request_bytes: usize,
    /// Most events in one request.
    pub max_batch_events: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // 60 KiB: with the fields Trail adds, a stored event stays within the 65,535
        // bytes of a C2SP entry bundle's entry (see `tiles`).
        Limits { max_event_bytes: 60 * 1024, max_request_bytes: 10 * 1024 * 1024, max_batch_events: 10_000 }
    }
}

/// The four results an audited operation can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    Done,
    Failed,
    Processing,
    Pending,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [Outcome::Done, Outcome::Failed, Outcome::Processing, Outcome::Pending];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "DONE",
            Outcome::Failed => "FAILED",
            Outcome::Processing => "PROCESSING",
            Outcome::Pending => "PENDING",
        }
    }

    /// Accepts the four names in any case, and the synonyms products commonly send
    /// (`success`, `failure`, `error`, `in_progress`, `queued`, ...).
    pub fn parse(s: &str) -> Option<Outcome> {
        match s.trim().to_ascii_lowercase().as_str() {
            "done" | "success" | "succeeded" | "successful" | "ok" | "completed" => Some(Outcome::Done),
            "failed" | "failure" | "fail" | "error" | "denied" => Some(Outcome::Failed),
            "processing" | "in_progress" | "running" | "started" => Some(Outcome::Processing),
            "pending" | "queued" | "waiting" => Some(Outcome::Pending),
            _ => None,
        }
    }

    /// The result implied by an HTTP status code when the client sent none.
    pub fn from_status(code: u16) -> Outcome {
        match code {
            100..=199 => Outcome::Processing,
            400..=599 => Outcome::Failed,
            _ => Outcome::Done,
        }
    }
}

/// Who performed the action.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Actor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// One of `user`, `system`, `api_key`, `service`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The performer's company as the product knows it; the Company column falls back to
    /// the organization when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
}

/// A reference to a resource (also used for a resource's parent).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResourceRef {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// What the action was applied to.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Resource {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ResourceRef>,
}

/// A workspace, which products identify by id and show by name.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Workspace {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Where in the product the action happened.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Context {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<Workspace>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A validated event as a client sent it, before the server assigns id, org and seq.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// When the action happened; `None` means "when received".
    pub timestamp: Option<Timestamp>,
    /// Lowercase category, e.g. `service`.
    pub category: String,
    /// Lowercase operation, e.g. `deploy`.
    pub operation: String,
    pub result: Outcome,
    pub status_code: Option<u16>,
    pub actor: Option<Actor>,
    pub resource: Option<Resource>,
    pub context: Option<Context>,
    pub source_ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub details: Option<Value>,
    pub response: Option<Value>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub error: Option<String>,
    pub idempotency_key: Option<String>,
}

/// `category:operation` as its two parts (an action without a colon is all category).
pub fn split_action(action: &str) -> (&str, &str) {
    action.split_once(':').unwrap_or((action, ""))
}

/// A stored event. Its compact JSON serialisation (`to_leaf`) is produced once, when
/// the event is appended, and kept verbatim: it is the Merkle leaf.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    pub id: Uuid,
    pub org: String,
    pub seq: u64,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub timestamp: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub received_at: Timestamp,
    /// `category:operation`.
    pub action: String,
    pub result: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Resource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Context>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

impl Event {
    /// Completes a validated event with what the server assigns.
    pub fn from_new(new: NewEvent, id: Uuid, org: &str, seq: u64, received_at: Timestamp) -> Event {
        Event {
            id,
            org: org.to_string(),
            seq,
            timestamp: new.timestamp.unwrap_or(received_at),
            received_at,
            action: format!("{}:{}", new.category, new.operation),
            result: new.result,
            status_code: new.status_code,
            actor: new.actor,
            resource: new.resource,
            context: new.context,
            source_ip: new.source_ip.map(|ip| ip.to_string()),
            user_agent: new.user_agent,
            request_id: new.request_id,
            details: new.details,
            response: new.response,
            before: new.before,
            after: new.after,
            error: new.error,
            idempotency_key: new.idempotency_key,
        }
    }

    /// The leaf bytes: compact JSON, fields in declaration order.
    pub fn to_leaf(&self) -> Vec<u8> {
        // Serialising plain structs and JSON values cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_leaf(leaf: &[u8]) -> Result<Event, serde_json::Error> {
        serde_json::from_slice(leaf)
    }

    pub fn category(&self) -> &str {
        split_action(&self.action).0
    }

    pub fn operation(&self) -> &str {
        split_action(&self.action).1
    }

    /// What the Company column shows and the company filter matches: the
    /// organization (tenant) whose key sent the event, never what the event claims
    /// (an actor's `company` is the sender's word, shown as the actor's).
    pub fn company(&self) -> &str {
        &self.org
    }
}

/// Categories known out of the box; others are accepted too.
pub const KNOWN_CATEGORIES: &[&str] = &[
    "device",
    "infra",
    "service",
    "auth",
    "backup",
    "database",
    "user",
    "organization",
    "audit",
    "vpn",
    "secret",
    "domain",
    "monitoring",
    "system",
    "webhook",
    "db_backup",
    "project",
    "deployment",
    "integration",
    "policy",
    "workflow",
    "member",
    "workspace",
    "application",
    "api_key",
    "ssh_key",
    "pod",
    "vm",
    "cluster",
];

const ACTOR_TYPES: &[&str] = &["user", "system", "api_key", "service"];
const TOP_FIELDS: &[&str] = &[
    "timestamp",
    "action",
    "result",
    "status_code",
    "actor",
    "resource",
    "context",
    "source_ip",
    "user_agent",
    "request_id",
    "details",
    "response",
    "before",
    "after",
    "error",
    "idempotency_key",
];
const SERVER_FIELDS: &[&str] = &["id", "org", "seq", "received_at"];
/// Longest accepted scalar string (names, ids, emails...); free JSON is bounded only by
/// the event size limit.
const MAX_STRING: usize = 4096;

/// Splits `category:operation` (or `category.operation`) and normalises both to
/// lowercase.
pub fn parse_action(raw: &str) -> Result<(String, String), String> {
    let raw = raw.trim();
    let (cat, op) = raw
        .split_once(':')
        .or_else(|| raw.split_once('.'))
        .ok_or_else(|| "must be category:operation, e.g. service:deploy".to_string())?;
    let cat = cat.trim().to_lowercase();
    let op = op.trim().to_lowercase();
    if cat.is_empty() || cat.len() > 64 || !cat.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err("category must be 1-64 characters of a-z, 0-9, _ or -".into());
    }
    if op.is_empty() || op.len() > 128 || op.chars().any(|c| c.is_control() || c == ':') {
        return Err("operation must be 1-128 printable characters without ':'".into());
    }
    Ok((cat, op))
}

/// Parses a request body holding one JSON object, an array of objects, or NDJSON.
pub fn parse_batch(body: &[u8], limits: &Limits) -> Result<Vec<NewEvent>, FieldError> {
    if body.len() > limits.max_request_bytes {
        return Err(FieldError::new("body", format!("request is larger than {} bytes", limits.max_request_bytes))
            .with_code(crate::error::FieldCode::TooLarge));
    }
    let text = std::str::from_utf8(body).map_err(|e| FieldError::new("body", format!("is not UTF-8 ({e})")))?;
    let text = text.trim_start_matches('\u{feff}');
    let trimmed = text.trim_start();
    let raws: Vec<&RawValue> = match trimmed.as_bytes().first() {
        None => return Err(FieldError::new("body", "is empty; send a JSON object, an array or NDJSON")),
        Some(b'[') => serde_json::from_str(trimmed)
            .map_err(|e| FieldError::new("body", format!("invalid JSON array of events ({e})")))?,
        Some(b'{') => {
            let mut out = Vec::new();
            for item in serde_json::Deserializer::from_str(trimmed).into_iter::<&RawValue>() {
                let raw = item.map_err(|e| FieldError::new("body", format!("invalid JSON ({e})")))?;
                out.push(raw);
                if out.len() > limits.max_batch_events {
                    break;
                }
            }
            out
        }
        Some(_) => return Err(FieldError::new("body", "must be a JSON object, an array of objects or NDJSON")),
    };
    if raws.is_empty() {
        return Err(FieldError::new("body", "holds no events"));
    }
    if raws.len() > limits.max_batch_events {
        return Err(FieldError::new("body", format!("holds more than {} events", limits.max_batch_events))
            .with_code(crate::error::FieldCode::TooLarge));
    }
    let many = raws.len() > 1 || trimmed.starts_with('[');
    raws.iter()
        .enumerate()
        .map(|(i, raw)| {
            let prefix = |e: FieldError| if many { e.within(&format!("[{i}]")) } else { e };
            if raw.get().len() > limits.max_event_bytes {
                return Err(prefix(
                    FieldError::new("", format!("event is larger than {} bytes", limits.max_event_bytes))
                        .with_code(crate::error::FieldCode::TooLarge),
                ));
            }
            let value: Value = serde_json::from_str(raw.get())
                .map_err(|e| prefix(FieldError::new("", format!("invalid JSON ({e})"))))?;
            if let Some(key) = crate::json::duplicate_key(raw.get()) {
                return Err(prefix(
                    FieldError::new(key.as_str(), "is given twice; send each key once")
                        .with_code(crate::error::FieldCode::DuplicateKey),
                ));
            }
            parse_event(value).map_err(prefix)
        })
        .collect()
}

/// Validates one event given as a JSON value.
pub fn parse_event(value: Value) -> Result<NewEvent, FieldError> {
    let Value::Object(mut m) = value else {
        return Err(FieldError::new("", "event must be a JSON object"));
    };
    for key in m.keys() {
        if SERVER_FIELDS.contains(&key.as_str()) {
            return Err(FieldError::new(key.as_str(), "is assigned by the server and must not be sent"));
        }
        if !TOP_FIELDS.contains(&key.as_str()) {
            return Err(FieldError::new(key.as_str(), "unknown field (put free-form data in details)")
                .with_code(crate::error::FieldCode::UnknownField));
        }
    }
    let action = string(&mut m, "action", "action")?
        .ok_or_else(|| FieldError::new("action", "is required").with_code(crate::error::FieldCode::MissingField))?;
    let (category, operation) = parse_action(&action).map_err(|e| FieldError::new("action", e))?;
    let timestamp = string(&mut m, "timestamp", "timestamp")?
        .map(|s| Timestamp::parse_rfc3339(&s).map_err(|e| FieldError::new("timestamp", e)))
        .transpose()?;
    let status_code = match m.remove("status_code") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(c @ 100..=599) => Some(c as u16),
            _ => return Err(FieldError::new("status_code", "must be an HTTP status code (100-599)")),
        },
        Some(_) => return Err(FieldError::new("status_code", "must be an integer")),
    };
    let error = string(&mut m, "error", "error")?;
    let result = match string(&mut m, "result", "result")? {
        Some(s) => Outcome::parse(&s).ok_or_else(|| {
            FieldError::new("result", "must be DONE, FAILED, PROCESSING or PENDING (or success/failure)")
        })?,
        None => match (status_code, &error) {
            (Some(code), _) => Outcome::from_status(code),
            (None, Some(_)) => Outcome::Failed,
            (None, None) => Outcome::Done,
        },
    };
    let actor = object(&mut m, "actor", "actor")?
        .map(|mut a| {
            let kind = string(&mut a, "type", "actor.type")?;
            if let Some(k) = &kind {
                if !ACTOR_TYPES.contains(&k.as_str()) {
                    return Err(FieldError::new("actor.type", "must be user, system, api_key or service"));
                }
            }
            let actor = Actor {
                id: string(&mut a, "id", "actor.id")?,
                name: string(&mut a, "name", "actor.name")?,
                email: string(&mut a, "email", "actor.email")?,
                kind,
                company: string(&mut a, "company", "actor.company")?,
            };
            no_more(&a, "actor")?;
            Ok(actor)
        })
        .transpose()?;
    let resource = object(&mut m, "resource", "resource")?
        .map(|mut r| {
            let parent = object(&mut r, "parent", "resource.parent")?
                .map(|mut p| {
                    let parent = resource_ref(&mut p, "resource.parent")?;
                    no_more(&p, "resource.parent")?;
                    Ok(parent)
                })
                .transpose()?;
            let base = resource_ref(&mut r, "resource")?;
            no_more(&r, "resource")?;
            Ok(Resource { kind: base.kind, id: base.id, name: base.name, parent })
        })
        .transpose()?;
    let context = object(&mut m, "context", "context")?
        .map(|mut c| {
            let workspace = match c.remove("workspace") {
                None | Some(Value::Null) => None,
                // A bare string is taken as the workspace's id, the seeds' "search by
                // workspace ID".
                Some(Value::String(s)) => Some(Workspace { id: nonempty(s, "context.workspace")?, name: None }),
                Some(Value::Object(mut w)) => {
                    let ws = Workspace {
                        id: string(&mut w, "id", "context.workspace.id")?,
                        name: string(&mut w, "name", "context.workspace.name")?,
                    };
                    no_more(&w, "context.workspace")?;
                    Some(ws)
                }
                Some(_) => return Err(FieldError::new("context.workspace", "must be an object {id, name}")),
            };
            let ctx = Context {
                workspace,
                project: string(&mut c, "project", "context.project")?,
                cluster: string(&mut c, "cluster", "context.cluster")?,
                namespace: string(&mut c, "namespace", "context.namespace")?,
            };
            no_more(&c, "context")?;
            Ok(ctx)
        })
        .transpose()?;
    let source_ip = string(&mut m, "source_ip", "source_ip")?
        .map(|s| s.parse::<IpAddr>().map_err(|_| FieldError::new("source_ip", "must be an IPv4 or IPv6 address")))
        .transpose()?;
    Ok(NewEvent {
        timestamp,
        category,
        operation,
        result,
        status_code,
        actor,
        resource,
        context,
        source_ip,
        user_agent: string(&mut m, "user_agent", "user_agent")?,
        request_id: string(&mut m, "request_id", "request_id")?,
        details: json(&mut m, "details"),
        response: json(&mut m, "response"),
        before: json(&mut m, "before"),
        after: json(&mut m, "after"),
        error,
        idempotency_key: string(&mut m, "idempotency_key", "idempotency_key")?,
    })
}

fn resource_ref(m: &mut Map<String, Value>, path: &str) -> Result<ResourceRef, FieldError> {
    Ok(ResourceRef {
        kind: string(m, "type", &format!("{path}.type"))?,
        id: string(m, "id", &format!("{path}.id"))?,
        name: string(m, "name", &format!("{path}.name"))?,
    })
}

fn no_more(m: &Map<String, Value>, path: &str) -> Result<(), FieldError> {
    match m.keys().next() {
        Some(k) => {
            Err(FieldError::new(format!("{path}.{k}"), "unknown field")
                .with_code(crate::error::FieldCode::UnknownField))
        }
        None => Ok(()),
    }
}

fn nonempty(s: String, path: &str) -> Result<Option<String>, FieldError> {
    if s.len() > MAX_STRING {
        return Err(FieldError::new(path, format!("is longer than {MAX_STRING} bytes"))
            .with_code(crate::error::FieldCode::TooLarge));
    }
    Ok(if s.trim().is_empty() { None } else { Some(s) })
}

/// Takes an optional string field; numbers are accepted for ids and turned into text,
/// since many products use numeric ids.
fn string(m: &mut Map<String, Value>, key: &str, path: &str) -> Result<Option<String>, FieldError> {
    match m.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => nonempty(s, path),
        Some(Value::Number(n)) if key == "id" || key == "request_id" => Ok(Some(n.to_string())),
        Some(_) => Err(FieldError::new(path, "must be a string")),
    }
}

fn object(m: &mut Map<String, Value>, key: &str, path: &str) -> Result<Option<Map<String, Value>>, FieldError> {
    match m.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(FieldError::new(path, "must be an object")),
    }
}

fn json(m: &mut Map<String, Value>, key: &str) -> Option<Value> {
    m.remove(key).filter(|v| !v.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check_err(v: Value, field: &str) {
        let e = parse_event(v).unwrap_err();
        assert_eq!(e.field, field, "{e}");
    }

    #[test]
    fn actions_are_normalised() {
        for (raw, want) in [
            ("service:deploy", ("service", "deploy")),
            ("service.deploy", ("service", "deploy")),
            ("User.Role_Changed", ("user", "role_changed")),
            ("project.file.created", ("project", "file.created")),
        ] {
            let (c, o) = parse_action(raw).unwrap();
            assert_eq!((c.as_str(), o.as_str()), want);
        }
        assert!(parse_action("login").is_err());
        assert!(parse_action(":x").is_err());
        assert!(parse_action("a b:x").is_err());
    }

    #[test]
    fn results_map_from_synonyms_and_status_codes() {
        let r = |v: Value| parse_event(v).unwrap().result;
        assert_eq!(r(json!({"action": "a:b"})), Outcome::Done);
        assert_eq!(r(json!({"action": "a:b", "result": "success"})), Outcome::Done);
        assert_eq!(r(json!({"action": "a:b", "result": "failure"})), Outcome::Failed);
        assert_eq!(r(json!({"action": "a:b", "result": "pending"})), Outcome::Pending);
        assert_eq!(r(json!({"action": "a:b", "status_code": 503})), Outcome::Failed);
        assert_eq!(r(json!({"action": "a:b", "status_code": 201})), Outcome::Done);
        assert_eq!(r(json!({"action": "a:b", "status_code": 102})), Outcome::Processing);
        assert_eq!(r(json!({"action": "a:b", "error": "boom"})), Outcome::Failed);
    }

    #[test]
    fn bad_fields_are_named() {
        check_err(json!({}), "action");
        check_err(json!({"action": 3}), "action");
        check_err(json!({"action": "nope"}), "action");
        check_err(json!({"action": "a:b", "timestamp": "yesterday"}), "timestamp");
        check_err(json!({"action": "a:b", "timestamp": "2024-03-01T10:00:00"}), "timestamp");
        check_err(json!({"action": "a:b", "result": "maybe"}), "result");
        check_err(json!({"action": "a:b", "status_code": "200"}), "status_code");
        check_err(json!({"action": "a:b", "status_code": 1000}), "status_code");
        check_err(json!({"action": "a:b", "actor": "bob"}), "actor");
        check_err(json!({"action": "a:b", "actor": {"email": 1}}), "actor.email");
        check_err(json!({"action": "a:b", "actor": {"type": "robot"}}), "actor.type");
        check_err(json!({"action": "a:b", "actor": {"nick": "x"}}), "actor.nick");
        check_err(json!({"action": "a:b", "resource": {"parent": {"id": []}}}), "resource.parent.id");
        check_err(json!({"action": "a:b", "context": {"workspace": 5}}), "context.workspace");
        check_err(json!({"action": "a:b", "source_ip": "300.1.1.1"}), "source_ip");
        check_err(json!({"action": "a:b", "seq": 4}), "seq");
        check_err(json!({"action": "a:b", "colour": "red"}), "colour");
        check_err(json!([1]), "");
    }

    #[test]
    fn batches_accept_object_array_and_ndjson() {
        let l = Limits::default();
        assert_eq!(parse_batch(br#"{"action":"a:b"}"#, &l).unwrap().len(), 1);
        assert_eq!(parse_batch(br#" [{"action":"a:b"},{"action":"c:d"}]"#, &l).unwrap().len(), 2);
        assert_eq!(parse_batch(b"{\"action\":\"a:b\"}\n{\"action\":\"c:d\"}\n", &l).unwrap().len(), 2);
        let e = parse_batch(b"{\"action\":\"a:b\"}\n{\"action\":\"cd\"}\n", &l).unwrap_err();
        assert_eq!(e.field, "[1].action");
        assert_eq!(parse_batch(b"[]", &l).unwrap_err().field, "body");
        assert_eq!(parse_batch(b"", &l).unwrap_err().field, "body");
        assert_eq!(parse_batch(b"{\"action\":", &l).unwrap_err().field, "body");
        let small = Limits { max_event_bytes: 30, max_batch_events: 2, ..l };
        let e = parse_batch(br#"[{"action":"a:b","error":"a long message here"}]"#, &small).unwrap_err();
        assert_eq!((e.field.as_str(), e.code.as_str()), ("[0]", "too_large"));
        let e = parse_batch(br#"[{"action":"a:b"},{"action":"a:b"},{"action":"a:b"}]"#, &small).unwrap_err();
        assert_eq!((e.field.as_str(), e.code.as_str()), ("body", "too_large"));
    }

    /// The leaf bytes are a wire format: this golden test pins them.
    #[test]
    fn leaf_bytes_are_pinned() {
        let new = parse_event(json!({
            "timestamp": "2024-03-01T19:30:00+09:00",
            "action": "Service.Deploy",
            "status_code": 200,
            "actor": {"email": "admin@company.com", "name": "Admin", "type": "user", "id": "u1"},
            "resource": {"type": "service", "name": "my-service", "id": "svc-1", "parent": {"type": "project", "id": "p1"}},
            "context": {"workspace": {"id": "w1", "name": "Prod"}, "cluster": "c1", "namespace": "production"},
            "source_ip": "192.168.1.100",
            "request_id": "req-1",
            "details": {"replicas": 3, "image": "harbor/my-service:v1"},
            "before": {"replicas": 2},
            "after": {"replicas": 3}
        }))
        .unwrap();
        let id = Uuid::parse_str("0190e0e0-0000-7000-8000-000000000001").unwrap();
        let ev = Event::from_new(new, id, "acme", 7, Timestamp::parse_rfc3339("2024-03-01T10:30:01Z").unwrap());
        let leaf = String::from_utf8(ev.to_leaf()).unwrap();
        assert_eq!(
            leaf,
            r#"{"id":"0190e0e0-0000-7000-8000-000000000001","org":"acme","seq":7,"timestamp":"2024-03-01T10:30:00Z","received_at":"2024-03-01T10:30:01Z","action":"service:deploy","result":"DONE","status_code":200,"actor":{"id":"u1","name":"Admin","email":"admin@company.com","type":"user"},"resource":{"type":"service","id":"svc-1","name":"my-service","parent":{"type":"project","id":"p1"}},"context":{"workspace":{"id":"w1","name":"Prod"},"cluster":"c1","namespace":"production"},"source_ip":"192.168.1.100","request_id":"req-1","details":{"replicas":3,"image":"harbor/my-service:v1"},"before":{"replicas":2},"after":{"replicas":3}}"#
        );
        assert_eq!(Event::from_leaf(leaf.as_bytes()).unwrap(), ev);
        assert_eq!(ev.company(), "acme");
    }
}
