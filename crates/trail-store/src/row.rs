//! The indexed copy of an event: the fields a backend keeps beside its stored bytes for
//! filters and sorts, in one form for every backend, and how it is made from an event
//! and compared (what `verify` checks each row against).

use std::borrow::Cow;

use trail_core::{Event, LeafView};
use uuid::Uuid;

/// The copies of an event's fields a backend keeps beside its bytes for filters and
/// sorts, in one form for every backend (each decodes its own columns into it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndexedCopy {
    pub id: Uuid,
    pub ts: i64,
    pub received: i64,
    pub category: String,
    pub operation: String,
    pub result: i64,
    pub status_code: Option<i64>,
    pub actor_id: Option<String>,
    pub actor_name: Option<String>,
    pub actor_email: Option<String>,
    pub company: Option<String>,
    pub request_id: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub resource_name: Option<String>,
    pub workspace_id: Option<String>,
    pub workspace_name: Option<String>,
    pub project: Option<String>,
    pub cluster: Option<String>,
    pub namespace: Option<String>,
    /// The source address as 16 bytes (IPv4 mapped into IPv6).
    pub ip: Option<[u8; 16]>,
    /// The idempotency key recorded for the entry.
    pub idem: Option<String>,
}

/// The result code stored for an outcome.
pub(crate) fn outcome_code(o: trail_core::Outcome) -> i64 {
    match o {
        trail_core::Outcome::Done => 0,
        trail_core::Outcome::Failed => 1,
        trail_core::Outcome::Processing => 2,
        trail_core::Outcome::Pending => 3,
    }
}

/// 16-byte form of an address (IPv4 mapped into IPv6).
pub(crate) fn ip_bytes(ip: std::net::IpAddr) -> [u8; 16] {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        std::net::IpAddr::V6(v6) => v6.octets(),
    }
}

impl IndexedCopy {
    /// What the indexed copy of `ev` must hold.
    pub fn of(ev: &Event) -> IndexedCopy {
        let actor = ev.actor.as_ref();
        let res = ev.resource.as_ref();
        let ctx = ev.context.as_ref();
        let ws = ctx.and_then(|c| c.workspace.as_ref());
        IndexedCopy {
            id: ev.id,
            ts: ev.timestamp.0,
            received: ev.received_at.0,
            category: ev.category().to_string(),
            operation: ev.operation().to_string(),
            result: outcome_code(ev.result),
            status_code: ev.status_code.map(i64::from),
            actor_id: actor.and_then(|a| a.id.clone()),
            actor_name: actor.and_then(|a| a.name.clone()),
            actor_email: actor.and_then(|a| a.email.clone()),
            company: Some(ev.company().to_string()),
            request_id: ev.request_id.clone(),
            resource_type: res.and_then(|r| r.kind.clone()),
            resource_id: res.and_then(|r| r.id.clone()),
            resource_name: res.and_then(|r| r.name.clone()),
            workspace_id: ws.and_then(|w| w.id.clone()),
            workspace_name: ws.and_then(|w| w.name.clone()),
            project: ctx.and_then(|c| c.project.clone()),
            cluster: ctx.and_then(|c| c.cluster.clone()),
            namespace: ctx.and_then(|c| c.namespace.clone()),
            ip: ev.source_ip.as_deref().and_then(|s| s.parse().ok()).map(ip_bytes),
            idem: ev.idempotency_key.clone(),
        }
    }

    /// The fields where `stored` differs from `self`, as `name: stored …, the event says …`.
    pub fn differences(&self, stored: &IndexedCopy) -> Vec<String> {
        let mut out = Vec::new();
        if self == stored {
            return out;
        }
        let mut cmp = |name: &str, want: String, got: String| {
            if want != got {
                out.push(format!("{name}: stored {got}, the event says {want}"));
            }
        };
        let t = |v: &Option<String>| v.as_deref().map_or("none".into(), |s| format!("'{s}'"));
        let time = |us: i64| trail_core::Timestamp(us).to_rfc3339_micros();
        cmp("id", self.id.to_string(), stored.id.to_string());
        cmp("time", time(self.ts), time(stored.ts));
        cmp("received", time(self.received), time(stored.received));
        cmp("category", format!("'{}'", self.category), format!("'{}'", stored.category));
        cmp("operation", format!("'{}'", self.operation), format!("'{}'", stored.operation));
        cmp("result", self.result.to_string(), stored.result.to_string());
        cmp("status_code", format!("{:?}", self.status_code), format!("{:?}", stored.status_code));
        for (name, a, b) in [
            ("actor.id", &self.actor_id, &stored.actor_id),
            ("actor.name", &self.actor_name, &stored.actor_name),
            ("actor.email", &self.actor_email, &stored.actor_email),
            ("company", &self.company, &stored.company),
            ("request_id", &self.request_id, &stored.request_id),
            ("resource.type", &self.resource_type, &stored.resource_type),
            ("resource.id", &self.resource_id, &stored.resource_id),
            ("resource.name", &self.resource_name, &stored.resource_name),
            ("workspace.id", &self.workspace_id, &stored.workspace_id),
            ("workspace.name", &self.workspace_name, &stored.workspace_name),
            ("project", &self.project, &stored.project),
            ("cluster", &self.cluster, &stored.cluster),
            ("namespace", &self.namespace, &stored.namespace),
            ("idempotency_key", &self.idem, &stored.idem),
        ] {
            cmp(name, t(a), t(b));
        }
        let ip =
            |v: &Option<[u8; 16]>| v.map_or("none".into(), |b| std::net::Ipv6Addr::from(b).to_canonical().to_string());
        cmp("source_ip", ip(&self.ip), ip(&stored.ip));
        out
    }
}

impl RowRef<'_> {
    /// Whether this row holds exactly the indexed copy of the event `view` reads.
    pub(crate) fn matches(&self, view: &LeafView<'_>) -> bool {
        fn same(a: &Option<Cow<'_, str>>, b: Option<&str>) -> bool {
            a.as_deref() == b
        }
        let (category, operation) = trail_core::event::split_action(&view.action);
        let actor = view.actor.as_ref();
        let res = view.resource.as_ref();
        let ctx = view.context.as_ref();
        let ws = ctx.and_then(|c| c.workspace.as_ref());
        Uuid::parse_str(&view.id).is_ok_and(|id| id == self.id)
            && view.time() == Some(self.ts)
            && view.received() == Some(self.received)
            && category == self.category
            && operation == self.operation
            && view.outcome().map(outcome_code) == Some(self.result)
            && view.status_code.map(i64::from) == self.status_code
            && same(actor.map_or(&None, |a| &a.id), self.actor_id)
            && same(actor.map_or(&None, |a| &a.name), self.actor_name)
            && same(actor.map_or(&None, |a| &a.email), self.actor_email)
            && self.company == Some(&*view.org)
            && same(&view.request_id, self.request_id)
            && same(res.map_or(&None, |r| &r.kind), self.resource_type)
            && same(res.map_or(&None, |r| &r.id), self.resource_id)
            && same(res.map_or(&None, |r| &r.name), self.resource_name)
            && same(ws.map_or(&None, |w| &w.id), self.workspace_id)
            && same(ws.map_or(&None, |w| &w.name), self.workspace_name)
            && same(ctx.map_or(&None, |c| &c.project), self.project)
            && same(ctx.map_or(&None, |c| &c.cluster), self.cluster)
            && same(ctx.map_or(&None, |c| &c.namespace), self.namespace)
            && view.source_ip.as_deref().and_then(|s| s.parse().ok()).map(ip_bytes) == self.ip
            && same(&view.idempotency_key, self.idem)
    }
}

/// An indexed copy borrowed from where it is read (a row a backend is positioned on,
/// or an `IndexedCopy`), so that the fast path compares and counts without copying.
#[derive(Debug, Clone, Copy, Default)]
pub struct RowRef<'a> {
    pub id: Uuid,
    pub ts: i64,
    pub received: i64,
    pub category: &'a str,
    pub operation: &'a str,
    pub result: i64,
    pub status_code: Option<i64>,
    pub actor_id: Option<&'a str>,
    pub actor_name: Option<&'a str>,
    pub actor_email: Option<&'a str>,
    pub company: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub resource_type: Option<&'a str>,
    pub resource_id: Option<&'a str>,
    pub resource_name: Option<&'a str>,
    pub workspace_id: Option<&'a str>,
    pub workspace_name: Option<&'a str>,
    pub project: Option<&'a str>,
    pub cluster: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub ip: Option<[u8; 16]>,
    pub idem: Option<&'a str>,
}

impl IndexedCopy {
    /// This copy, borrowed.
    pub fn as_ref(&self) -> RowRef<'_> {
        RowRef {
            id: self.id,
            ts: self.ts,
            received: self.received,
            category: &self.category,
            operation: &self.operation,
            result: self.result,
            status_code: self.status_code,
            actor_id: self.actor_id.as_deref(),
            actor_name: self.actor_name.as_deref(),
            actor_email: self.actor_email.as_deref(),
            company: self.company.as_deref(),
            request_id: self.request_id.as_deref(),
            resource_type: self.resource_type.as_deref(),
            resource_id: self.resource_id.as_deref(),
            resource_name: self.resource_name.as_deref(),
            workspace_id: self.workspace_id.as_deref(),
            workspace_name: self.workspace_name.as_deref(),
            project: self.project.as_deref(),
            cluster: self.cluster.as_deref(),
            namespace: self.namespace.as_deref(),
            ip: self.ip,
            idem: self.idem.as_deref(),
        }
    }
}
