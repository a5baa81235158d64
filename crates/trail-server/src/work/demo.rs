//! Demo data: realistic audit events for several organizations over the last 120 days,
//! so that a new user sees a living log at once (`trail serve --demo`). The benchmarks
//! use the same generator for their "realistic 1 KB events".

use rand::{rngs::StdRng, seq::IndexedRandom, Rng, SeedableRng};
use serde_json::{json, Value};
use trail_core::{event::parse_event, Timestamp};
use trail_store::{AppendBatch, Org, Store, StoreError};
use uuid::Uuid;

/// The demo organizations: slug, name, email domain.
pub const ORGS: [(&str, &str, &str); 3] = [
    ("acme", "Acme Corp", "acme.com"),
    ("globex", "Globex Corporation", "globex.io"),
    ("initech", "Initech", "initech.com"),
];

const FIRST: &[&str] =
    &["Sarah", "John", "Mina", "Carlos", "Aiko", "Priya", "Liam", "Olga", "Tomás", "Fatima", "Chen", "Noah", "Zoë"];
const LAST: &[&str] =
    &["Kim", "Smith", "Park", "Garcia", "Tanaka", "Patel", "Murphy", "Ivanova", "Núñez", "Haddad", "Wei"];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0 Safari/537.36",
    "trail-cli/1.4.2 (linux; amd64)",
    "terraform/1.8.5 (+https://www.terraform.io)",
    "kubectl/v1.30.2 (linux/amd64)",
];
const WORKSPACES: &[(&str, &str)] = &[("ws-prod", "Production"), ("ws-stage", "Staging"), ("ws-data", "Data Platform")];
const PROJECTS: &[&str] = &["api-infrastructure", "checkout", "billing", "vpc-prod", "mobile-backend", "analytics"];
const CLUSTERS: &[&str] = &["prod-eu-1", "prod-us-1", "staging-1"];
const NAMESPACES: &[&str] = &["production", "default", "payments", "monitoring", "kube-system"];
const SERVICES: &[&str] = &["my-service", "checkout-api", "billing-worker", "auth-gateway", "search", "notifier"];

/// Category, operations and the resource type they act on.
const CATALOG: &[(&str, &[&str], &str, u32)] = &[
    ("auth", &["login", "login", "login", "logout", "password_change", "2fa_enable", "2fa_disable"], "session", 22),
    ("service", &["build", "deploy", "deploy", "rollback", "config_update", "restart"], "service", 14),
    ("device", &["create", "update", "delete"], "device", 3),
    ("infra", &["create", "update", "delete"], "runtime", 3),
    ("backup", &["create", "restore", "delete"], "backup", 3),
    ("database", &["connect", "sync", "query_export"], "database", 3),
    ("user", &["invite", "join", "role_changed", "disable", "remove"], "user", 5),
    ("organization", &["update", "settings_change"], "organization", 1),
    ("audit", &["view", "export"], "audit_log", 3),
    ("vpn", &["connect", "disconnect", "profile_create"], "vpn_profile", 4),
    ("secret", &["create", "read", "rotate", "delete"], "secret", 4),
    ("domain", &["create", "verify", "delete"], "domain", 1),
    ("monitoring", &["alert_create", "alert_resolve", "dashboard_update"], "alert", 3),
    ("system", &["config_update", "maintenance_start", "maintenance_end"], "system", 1),
    ("webhook", &["create", "update", "deliver", "delete"], "webhook", 3),
    ("db_backup", &["create", "restore"], "db_backup", 2),
    ("project", &["create", "update", "delete", "file_created", "file_updated"], "project", 3),
    ("deployment", &["started", "completed", "failed", "approved", "rejected"], "deployment", 4),
    ("integration", &["created", "updated", "deleted", "tested"], "integration", 1),
    ("policy", &["created", "updated", "violation"], "policy", 2),
    ("workflow", &["created", "executed", "completed", "failed"], "workflow", 2),
    ("member", &["invite", "remove", "permissions_changed"], "member", 1),
    ("workspace", &["create", "update", "delete"], "workspace", 1),
    ("application", &["publish", "import_dsl", "export_dsl", "enable_web_app"], "application", 1),
    ("api_key", &["create", "revoke"], "api_key", 1),
    ("ssh_key", &["add", "delete"], "ssh_key", 1),
    ("pod", &["start", "stop", "restart", "delete"], "pod", 3),
    ("vm", &["start", "stop", "restart", "create"], "vm", 2),
    ("cluster", &["add", "remove", "upgrade"], "cluster", 1),
];

/// A demo person.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: String,
    pub name: String,
    pub email: String,
    pub ip: String,
    pub agent: &'static str,
}

/// The people of one demo organization (stable for a given seed).
pub fn people(org_index: usize, domain: &str) -> Vec<Person> {
    let mut rng = StdRng::seed_from_u64(1000 + org_index as u64);
    (0..8)
        .map(|i| {
            let first = FIRST[(i * 3 + org_index * 5) % FIRST.len()];
            let last = LAST[(i * 7 + org_index) % LAST.len()];
            Person {
                id: format!("usr_{}{:03}", &domain[..2], i + 1),
                name: format!("{first} {last}"),
                email: format!("{}.{}@{domain}", ascii(first), ascii(last)),
                ip: format!(
                    "{}.{}.{}.{}",
                    [10, 172, 192][i % 3],
                    rng.random_range(0..255),
                    rng.random_range(0..255),
                    rng.random_range(1..255)
                ),
                agent: AGENTS[rng.random_range(0..AGENTS.len())],
            }
        })
        .collect()
}

/// Lowercase ASCII form of a name, for email addresses.
fn ascii(name: &str) -> String {
    name.to_lowercase()
        .chars()
        .map(|c| match c {
            'á' | 'à' | 'ä' => 'a',
            'é' | 'ë' | 'è' => 'e',
            'í' | 'ï' => 'i',
            'ó' | 'ö' => 'o',
            'ú' | 'ü' => 'u',
            'ñ' => 'n',
            c => c,
        })
        .collect()
}

fn hex(rng: &mut StdRng, n: usize) -> String {
    (0..n).map(|_| format!("{:x}", rng.random_range(0..16u8))).collect()
}

/// One realistic event at time `ts` (about 0.7–1.2 KB of JSON).
pub fn sample_event(rng: &mut StdRng, person: &Person, ts: Timestamp) -> Value {
    let weights: u32 = CATALOG.iter().map(|c| c.3).sum();
    let mut pick = rng.random_range(0..weights);
    let (cat, ops, rtype, _) = *CATALOG
        .iter()
        .find(|c| {
            if pick < c.3 {
                true
            } else {
                pick -= c.3;
                false
            }
        })
        .unwrap_or(&CATALOG[0]);
    let op = *ops.choose(rng).unwrap_or(&"update");
    let long_running = matches!(op, "build" | "deploy" | "restore" | "sync" | "executed" | "started" | "upgrade");
    let roll = rng.random_range(0..100);
    let mut result = match roll {
        0..=6 => "FAILED",
        7..=8 if long_running => "PROCESSING",
        9..=10 if long_running => "PENDING",
        _ => "DONE",
    };
    if op == "failed" || op == "violation" {
        result = "FAILED";
    }
    let (ws_id, ws_name) = *WORKSPACES.choose(rng).unwrap_or(&WORKSPACES[0]);
    let project = *PROJECTS.choose(rng).unwrap_or(&"checkout");
    let cluster = *CLUSTERS.choose(rng).unwrap_or(&"prod-eu-1");
    let namespace = *NAMESPACES.choose(rng).unwrap_or(&"default");
    let service = *SERVICES.choose(rng).unwrap_or(&"my-service");
    let rid = format!("{}-{}", &rtype.replace('_', "-"), hex(rng, 6));
    let rname = match cat {
        "service" | "pod" | "deployment" => service.to_string(),
        "project" => project.to_string(),
        "user" | "member" => format!(
            "{}@{}",
            FIRST.choose(rng).unwrap_or(&"x").to_lowercase(),
            person.email.split('@').nth(1).unwrap_or("example.com")
        ),
        "auth" => person.email.clone(),
        "cluster" => cluster.to_string(),
        "domain" => format!("{}.example.com", PROJECTS.choose(rng).unwrap_or(&"www")),
        _ => format!("{}-{}", rtype.replace('_', "-"), rng.random_range(1..40)),
    };
    let code = match result {
        "FAILED" => *[400, 401, 403, 409, 422, 500, 503].choose(rng).unwrap_or(&500),
        "PROCESSING" | "PENDING" => 202,
        _ if op == "create" => 201,
        _ => 200,
    };
    let tag = |rng: &mut StdRng| {
        format!("v{}.{}.{}", rng.random_range(1..4), rng.random_range(0..20), rng.random_range(0..10))
    };
    let mut ev = json!({
        "timestamp": ts.to_rfc3339(),
        "action": format!("{cat}:{op}"),
        "result": result,
        "status_code": code,
        "actor": {"id": person.id, "name": person.name, "email": person.email, "type": "user"},
        "resource": {"type": rtype, "id": rid, "name": rname, "parent": {"type": "project", "id": format!("prj-{}", &project[..3]), "name": project}},
        "context": {"workspace": {"id": ws_id, "name": ws_name}, "project": project, "cluster": cluster, "namespace": namespace},
        "source_ip": person.ip,
        "user_agent": person.agent,
        "request_id": format!("req_{}", hex(rng, 16)),
        "details": {"method": if op == "view" || op == "read" { "GET" } else { "POST" }, "path": format!("/api/v2/{cat}s/{rid}"), "trace_id": hex(rng, 32), "client_version": "4.12.1"},
    });
    match (cat, op) {
        ("service", "deploy") | ("service", "rollback") | ("deployment", _) => {
            let (old, new) = (tag(rng), tag(rng));
            let (r0, r1) = (rng.random_range(1..5), rng.random_range(1..8));
            ev["details"]["image"] = json!(format!("harbor.company.com/library/{service}:{new}"));
            ev["details"]["replicas"] = json!(r1);
            ev["details"]["strategy"] = json!("rolling");
            ev["before"] = json!({"image": format!("harbor.company.com/library/{service}:{old}"), "replicas": r0, "env": {"LOG_LEVEL": "info", "FEATURE_X": "off"}});
            ev["after"] = json!({"image": format!("harbor.company.com/library/{service}:{new}"), "replicas": r1, "env": {"LOG_LEVEL": "info", "FEATURE_X": "on"}});
        }
        ("user", "role_changed") | ("member", "permissions_changed") => {
            let roles = ["viewer", "auditor", "developer", "admin"];
            let from = rng.random_range(0..3);
            ev["before"] = json!({"role": roles[from], "groups": ["engineering"]});
            ev["after"] = json!({"role": roles[from + 1], "groups": ["engineering", "ops"]});
        }
        (_, "update") | (_, "config_update") | (_, "settings_change") | ("policy", "updated") => {
            let t = rng.random_range(10..120);
            ev["before"] = json!({"timeout_seconds": t, "retries": 3, "enabled": true});
            ev["after"] = json!({"timeout_seconds": t + 30, "retries": 5, "enabled": true});
        }
        _ => {}
    }
    if result == "FAILED" {
        let reasons = [
            "Policy violation: S3 encryption required",
            "permission denied: missing role binding",
            "upstream timeout after 30s",
            "quota exceeded for workspace",
            "image pull failed: manifest unknown",
        ];
        ev["error"] = json!(reasons.choose(rng).unwrap_or(&"failed"));
    }
    if cat == "auth" && result == "FAILED" {
        ev["error"] = json!("invalid credentials");
        ev["status_code"] = json!(401);
    }
    ev
}

/// Generates `count` events across the demo organizations over the 120 days before
/// `now`, in time order, with failed-login bursts, mass deletions and permission
/// escalations mixed in.
pub fn generate(now: Timestamp, count: usize, seed: u64) -> Vec<(&'static str, Value)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let staff: Vec<Vec<Person>> = ORGS.iter().enumerate().map(|(i, (_, _, d))| people(i, d)).collect();
    let span = 120 * 86_400_000_000i64;
    let mut out: Vec<(i64, &'static str, Value)> = Vec::with_capacity(count + 1000);
    let org_pick = |rng: &mut StdRng| match rng.random_range(0..10) {
        0..=4 => 0,
        5..=7 => 1,
        _ => 2,
    };
    while out.len() < count {
        let o = org_pick(&mut rng);
        let person = staff[o].choose(&mut rng).unwrap_or(&staff[o][0]);
        // Office hours are busier: draw an hour twice and keep the more central one.
        let day = rng.random_range(0..120i64);
        let h1 = rng.random_range(0..24i64);
        let h2 = rng.random_range(0..24i64);
        let hour = if (h1 - 13).abs() < (h2 - 13).abs() { h1 } else { h2 };
        let t = now.0 - span + day * 86_400_000_000 + hour * 3_600_000_000 + rng.random_range(0..3_600_000_000i64);
        if t >= now.0 {
            continue;
        }
        let kind = rng.random_range(0..1000);
        if kind < 3 {
            // A failed-login burst: one account hammered from one unfamiliar address.
            let ip = format!("203.0.113.{}", rng.random_range(1..255));
            let n = rng.random_range(12..40);
            for k in 0..n {
                let at = Timestamp(t + k * rng.random_range(1_000_000..9_000_000));
                let mut ev = sample_event(&mut rng, person, at);
                ev["action"] = json!("auth:login");
                ev["result"] = json!("FAILED");
                ev["status_code"] = json!(401);
                ev["error"] = json!("invalid credentials");
                ev["source_ip"] = json!(ip);
                ev["user_agent"] = json!("python-requests/2.31.0");
                ev["resource"] = json!({"type": "session", "name": person.email});
                if let Some(m) = ev.as_object_mut() {
                    m.remove("before");
                    m.remove("after");
                }
                out.push((at.0, ORGS[o].0, ev));
            }
        } else if kind < 5 {
            // A mass deletion.
            for k in 0..rng.random_range(15..30) {
                let at = Timestamp(t + k * 2_000_000);
                let mut ev = sample_event(&mut rng, person, at);
                let cat = ["device", "backup", "secret", "pod"].choose(&mut rng).copied().unwrap_or("device");
                ev["action"] = json!(format!("{cat}:delete"));
                ev["result"] = json!("DONE");
                ev["status_code"] = json!(200);
                if let Some(m) = ev.as_object_mut() {
                    m.remove("error");
                    m.remove("before");
                    m.remove("after");
                }
                out.push((at.0, ORGS[o].0, ev));
            }
        } else if kind < 8 {
            // A permission escalation straight to admin.
            let mut ev = sample_event(&mut rng, person, Timestamp(t));
            ev["action"] = json!("user:role_changed");
            ev["result"] = json!("DONE");
            ev["status_code"] = json!(200);
            ev["before"] = json!({"role": "viewer"});
            ev["after"] = json!({"role": "admin"});
            ev.as_object_mut().map(|m| m.remove("error"));
            out.push((t, ORGS[o].0, ev));
        } else {
            out.push((t, ORGS[o].0, sample_event(&mut rng, person, Timestamp(t))));
        }
    }
    out.retain(|(t, _, _)| *t < now.0);
    out.sort_by_key(|(t, _, _)| *t);
    out.into_iter().map(|(_, o, v)| (o, v)).collect()
}

/// Creates the demo organizations and appends `count` demo events; returns how many
/// were stored.
pub async fn fill(store: &dyn Store, now: Timestamp, count: usize) -> Result<usize, StoreError> {
    for (slug, name, _) in ORGS {
        store.ensure_org(Org { slug: slug.into(), name: name.into() }).await?;
    }
    let events = generate(now, count, 42);
    let n = events.len();
    let mut pending: Vec<Vec<(Uuid, trail_core::NewEvent)>> = vec![Vec::new(); ORGS.len()];
    let mut sends = Vec::new();
    for (org, v) in events {
        let i = ORGS.iter().position(|o| o.0 == org).unwrap_or(0);
        let ev = parse_event(v).map_err(|e| StoreError::Invalid { field: e.field, message: e.message })?;
        pending[i].push((Uuid::now_v7(), ev));
        if pending[i].len() == 2000 {
            sends.push(AppendBatch { org: org.into(), received_at: now, events: std::mem::take(&mut pending[i]) });
        }
    }
    for (i, p) in pending.into_iter().enumerate() {
        if !p.is_empty() {
            sends.push(AppendBatch { org: ORGS[i].0.into(), received_at: now, events: p });
        }
    }
    for b in sends {
        store.append(b).await?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_events_are_valid_and_varied() {
        let now = Timestamp::parse_rfc3339("2026-11-21T12:00:00Z").unwrap();
        let evs = generate(now, 20_000, 1);
        assert!(evs.len() >= 20_000);
        let parsed: Vec<_> = evs.iter().map(|(_, v)| parse_event(v.clone()).unwrap()).collect();
        for (cat, _, _, _) in CATALOG {
            assert!(parsed.iter().any(|e| e.category == *cat), "{cat}");
        }
        for r in trail_core::Outcome::ALL {
            assert!(parsed.iter().any(|e| e.result == r), "{r:?}");
        }
        assert!(parsed.iter().any(|e| e.before.is_some() && e.after.is_some()));
        let oldest = parsed.iter().filter_map(|e| e.timestamp).min().unwrap();
        assert!(now.0 - oldest.0 > 100 * 86_400_000_000);
        let sizes: Vec<usize> = evs.iter().map(|(_, v)| v.to_string().len()).collect();
        let mean = sizes.iter().sum::<usize>() / sizes.len();
        assert!((600..1400).contains(&mean), "mean event size {mean}");
    }
}
