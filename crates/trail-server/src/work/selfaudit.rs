//! Trail audits itself into the same log: logins, logouts, password, user, role and
//! key changes, who viewed which filter (`audit:view`) and exported what
//! (`audit:export`). Each event goes into the organization of the person or key acting.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use trail_core::event::parse_event;
use trail_store::AppendBatch;
use uuid::Uuid;

use super::Services;

/// The same caller viewing the same filter again within this time is not recorded
/// again (paging, refreshing and the live view would otherwise flood the log).
const VIEW_REPEAT: Duration = Duration::from_secs(60);

#[derive(Default)]
pub(crate) struct Views {
    seen: Mutex<HashMap<(String, String), Instant>>,
}

impl Views {
    /// Whether this view is new (and remembers it).
    pub(crate) fn fresh(&self, who: &str, what: &str) -> bool {
        let Ok(mut seen) = self.seen.lock() else { return true };
        if seen.len() > 50_000 {
            seen.retain(|_, t| t.elapsed() < VIEW_REPEAT);
        }
        let key = (who.to_string(), what.to_string());
        match seen.get(&key) {
            Some(t) if t.elapsed() < VIEW_REPEAT => false,
            _ => {
                seen.insert(key, Instant::now());
                true
            }
        }
    }
}

/// One self-audit event.
/// The organization whose log holds what platform callers did across several
/// organizations (views, exports): a log of its own, which only platform callers read,
/// so that no tenant reads what was looked for in another.
pub const PLATFORM_LOG: &str = "trail-platform";

/// The platform's log, made on first use (`None` if it cannot be).
pub(crate) async fn platform_log(st: &Services) -> Option<String> {
    let org = trail_store::Org { slug: PLATFORM_LOG.into(), name: "Trail platform".into() };
    match st.store.ensure_org(org).await {
        Ok(_) => Some(PLATFORM_LOG.into()),
        Err(e) => {
            tracing::warn!(error = %e, "the platform's log cannot be made");
            None
        }
    }
}

pub struct Record {
    pub org: String,
    pub action: &'static str,
    pub ok: bool,
    pub actor: Value,
    pub resource: Option<Value>,
    pub details: Option<Value>,
    pub error: Option<String>,
    pub ip: Option<std::net::IpAddr>,
    pub user_agent: Option<String>,
}

impl Record {
    /// An event of Trail itself (no person or key acting).
    pub fn system(org: &str, action: &'static str) -> Record {
        Record {
            org: org.to_string(),
            action,
            ok: true,
            actor: json!({"id": "trail", "name": "Trail", "type": "system"}),
            resource: None,
            details: None,
            error: None,
            ip: None,
            user_agent: None,
        }
    }

    /// A change made with the `trail` command line (the system as the actor).
    pub fn cli(org: &str, action: &'static str) -> Record {
        Record {
            actor: json!({"id": "trail-cli", "name": "trail command line", "type": "system"}),
            ..Record::system(org, action)
        }
    }

    pub fn resource(mut self, kind: &str, id: impl ToString, name: &str) -> Record {
        self.resource = Some(json!({"type": kind, "id": id.to_string(), "name": name}));
        self
    }

    pub fn details(mut self, d: Value) -> Record {
        self.details = Some(d);
        self
    }

    pub fn failed(mut self, error: impl Into<String>) -> Record {
        self.ok = false;
        self.error = Some(error.into());
        self
    }
}

/// Appends the event and waits until it is durable. A failure to record is logged,
/// not returned: the action itself already happened (or was refused).
pub(crate) async fn record(st: &Services, r: Record) {
    let result = if r.ok { "DONE" } else { "FAILED" };
    let mut v = json!({"action": r.action, "result": result, "actor": r.actor});
    if let Some(x) = r.resource {
        v["resource"] = x;
    }
    if let Some(x) = r.details {
        v["details"] = x;
    }
    if let Some(x) = r.error {
        v["error"] = json!(x);
    }
    if let Some(ip) = r.ip {
        v["source_ip"] = json!(ip.to_string());
    }
    if let Some(ua) = r.user_agent {
        v["user_agent"] = json!(ua);
    }
    let event = match parse_event(v) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, action = r.action, "self-audit event invalid");
            return;
        }
    };
    let batch = AppendBatch { org: r.org, received_at: (st.clock)(), events: vec![(Uuid::now_v7(), event)] };
    if let Err(e) = crate::work::feed::append(st, batch).await {
        tracing::error!(error = %e, action = r.action, "could not record self-audit event");
    }
}

/// Records a change made outside the HTTP API (the `trail` command line, bootstrap),
/// with the system as the actor.
pub async fn record_system(st: &Services, org: &str, action: &'static str, resource: Value, details: Value) {
    let r = Record {
        org: org.to_string(),
        action,
        ok: true,
        actor: json!({"id": "trail-cli", "name": "trail command line", "type": "system"}),
        resource: Some(resource),
        details: Some(details),
        error: None,
        ip: None,
        user_agent: None,
    };
    record(st, r).await;
}
