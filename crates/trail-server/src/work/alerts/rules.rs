//! Alert rules and their evaluation, without I/O: the built-in rules with their
//! defaults, custom rules (a query plus "every match" or "≥ N within W, grouped by"),
//! and the state they keep between events (counting windows, quiet periods, the
//! addresses each admin acted from), which the evaluator stores with its position.

use std::collections::{BTreeMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use trail_core::{Event, FieldError, Filter, Outcome, Timestamp};
use trail_store::alerts::AlertRule;

/// The built-in rules, on by default.
pub const BUILTIN: [&str; 9] = [
    "failed_logins",
    "mass_deletion",
    "permission_escalation",
    "api_token_created",
    "new_admin_ip",
    "large_export",
    "stream_failing",
    "witness_refused",
    "witness_lagging",
];

const MINUTE: u32 = 60;

/// A built-in rule's defaults: threshold, window (seconds), grouping.
pub fn defaults(name: &str) -> Option<AlertRule> {
    let (threshold, window, group) = match name {
        "failed_logins" => (5, 10 * MINUTE, Some("actor")),
        "mass_deletion" => (20, 5 * MINUTE, Some("actor")),
        "permission_escalation" | "api_token_created" => (1, 0, None),
        // One quiet period per stream.
        "stream_failing" => (1, 0, Some("resource")),
        // One quiet period per witness; lagging is the installation log's.
        "witness_refused" => (1, 0, Some("resource")),
        "witness_lagging" => (1, 0, None),
        "new_admin_ip" => (1, 30 * 24 * 60 * MINUTE, Some("actor")),
        // Rows of one export.
        "large_export" => (100_000, 0, None),
        _ => return None,
    };
    Some(AlertRule {
        org: String::new(),
        name: name.to_string(),
        enabled: true,
        query: None,
        threshold,
        window_secs: window,
        group_by: group.map(String::from),
        quiet_secs: 15 * MINUTE,
        destinations: vec![],
    })
}

/// The rules of an organization: every built-in (stored settings or defaults), then
/// the custom ones.
pub fn effective(org: &str, stored: Vec<AlertRule>) -> Vec<AlertRule> {
    let mut out = Vec::new();
    for name in BUILTIN {
        let rule = stored.iter().find(|r| r.name == name).cloned().or_else(|| defaults(name));
        if let Some(mut r) = rule {
            r.org = org.to_string();
            out.push(r);
        }
    }
    out.extend(stored.into_iter().filter(|r| !BUILTIN.contains(&r.name.as_str())));
    out
}

/// A rule made ready: the custom query parsed.
pub struct Compiled {
    pub rule: AlertRule,
    filter: Option<Filter>,
}

impl Compiled {
    pub fn new(rule: AlertRule) -> Result<Compiled, FieldError> {
        let filter = match &rule.query {
            Some(q) => Some(
                trail_core::query::parse(q)
                    .map_err(|e| FieldError::new("query", format!("rule {}: {e}", rule.name)))?,
            ),
            None => None,
        };
        Ok(Compiled { rule, filter })
    }
}

/// What an evaluation needs to know besides the events.
pub struct Context<'a> {
    /// Emails of the organization's administrators (for `new_admin_ip`).
    pub admins: &'a HashSet<String>,
    pub now: Timestamp,
}

/// An event as a rule remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    pub id: String,
    pub ts: i64,
    pub action: String,
}

/// The state kept between events, stored as JSON with the evaluator's position.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Matches within the window, per `rule|group`.
    #[serde(default)]
    windows: BTreeMap<String, Window>,
    /// Quiet until (µs), and how many matched meanwhile, per `rule|group`.
    #[serde(default)]
    quiet: BTreeMap<String, (i64, u64)>,
    /// When each admin last acted from each address (µs), per `actor|ip`.
    #[serde(default)]
    addresses: BTreeMap<String, i64>,
}

/// The newest matches a window keeps for a firing's message (the count is exact).
const SAMPLE: usize = 50;

/// Matches within a window, counted per sixtieth of the window (each slice with its
/// first match), and the newest matches themselves. The state stays small however high
/// a threshold is; a match leaves the count when its slice leaves the window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    slices: VecDeque<(i64, u64, Seen)>,
    recent: VecDeque<Seen>,
}

impl Window {
    fn push(&mut self, s: &Seen, window_us: i64) {
        let width = (window_us / 60).max(1_000_000);
        let slice = s.ts.div_euclid(width) * width;
        match self.slices.back_mut() {
            // Events of the same slice, or (rarely) older ones arriving late.
            Some(b) if slice <= b.0 => b.1 += 1,
            _ => self.slices.push_back((slice, 1, s.clone())),
        }
        self.recent.push_back(s.clone());
        if self.recent.len() > SAMPLE {
            self.recent.pop_front();
        }
        while self.slices.front().is_some_and(|f| f.0 + width <= s.ts - window_us) {
            self.slices.pop_front();
        }
        self.recent.retain(|r| s.ts - r.ts <= window_us);
    }

    fn count(&self) -> u64 {
        self.slices.iter().map(|s| s.1).sum()
    }

    /// The first match in the window, then the newest ones.
    fn events(&self) -> Vec<Seen> {
        let mut out: Vec<Seen> = self.recent.iter().cloned().collect();
        if let Some((_, _, first)) = self.slices.front() {
            if out.first() != Some(first) {
                out.insert(0, first.clone());
            }
        }
        out
    }

    fn last_ts(&self) -> Option<i64> {
        self.recent.back().map(|r| r.ts)
    }
}

/// A rule that fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firing {
    pub rule: String,
    /// What the matches were grouped by, and the group's value.
    pub group: Option<(String, String)>,
    pub count: u64,
    pub window_secs: u32,
    pub threshold: u32,
    pub events: Vec<Seen>,
    /// Matches during the quiet period since the previous firing of this rule and group.
    pub suppressed: u64,
    /// The rule's query (custom rules), for the link.
    pub query: Option<String>,
}

fn actor_key(e: &Event) -> Option<String> {
    let a = e.actor.as_ref()?;
    a.email.clone().or_else(|| a.id.clone()).or_else(|| a.name.clone())
}

fn group_value(by: &str, e: &Event) -> Option<String> {
    match by {
        "actor" => actor_key(e),
        "ip" => e.source_ip.clone(),
        "resource" => e.resource.as_ref().and_then(|r| r.name.clone().or_else(|| r.id.clone())),
        _ => None,
    }
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.to_ascii_lowercase(),
        Some(v) => v.to_string().to_ascii_lowercase(),
        None => String::new(),
    }
}

/// A role change that makes someone an administrator, or a role changed (a custom
/// role may have been widened).
fn escalates(e: &Event) -> bool {
    let action = e.action.to_ascii_lowercase();
    if action == "role:update" || action == "role:create" {
        return true;
    }
    if action != "user:role_change" && !e.operation().eq_ignore_ascii_case("role_change") {
        return false;
    }
    let new = [e.details.as_ref().and_then(|d| d.get("role")), e.after.as_ref().and_then(|a| a.get("role"))]
        .into_iter()
        .map(text)
        .find(|s| !s.is_empty())
        .unwrap_or_default();
    let old = [e.details.as_ref().and_then(|d| d.get("previous_role")), e.before.as_ref().and_then(|b| b.get("role"))]
        .into_iter()
        .map(text)
        .find(|s| !s.is_empty())
        .unwrap_or_default();
    let admin = |r: &str| r.contains("admin") || r.contains("owner") || r.contains("platform");
    admin(&new) && !admin(&old)
}

fn token_created(e: &Event) -> bool {
    let cat = e.category().to_ascii_lowercase();
    let op = e.operation().to_ascii_lowercase();
    (op == "create" || op == "created")
        && (cat.contains("api_key") || cat.contains("apikey") || cat.contains("token") || cat == "key")
}

/// The groups a built-in or custom rule counts an event under (none: no match). Each
/// group is `(by, value, threshold)`.
fn groups(c: &Compiled, e: &Event, ctx: &Context<'_>) -> Vec<(String, Option<String>, u32)> {
    let r = &c.rule;
    let by = r.group_by.clone();
    let one = |by: Option<String>| {
        let value = by.as_deref().and_then(|b| group_value(b, e));
        vec![(by.unwrap_or_default(), value, r.threshold)]
    };
    match r.name.as_str() {
        "failed_logins" => {
            if !(e.action.eq_ignore_ascii_case("auth:login") && e.result == Outcome::Failed) {
                return vec![];
            }
            // One actor, or (at four times the threshold) one source address.
            let mut g = Vec::new();
            if let Some(a) = actor_key(e) {
                g.push(("actor".to_string(), Some(a), r.threshold));
            }
            if let Some(ip) = &e.source_ip {
                g.push(("ip".to_string(), Some(ip.clone()), r.threshold.saturating_mul(4)));
            }
            g
        }
        "mass_deletion" if e.operation().eq_ignore_ascii_case("delete") => one(by),
        "permission_escalation" if escalates(e) => one(by),
        "api_token_created" if token_created(e) => one(by),
        // Recorded by the stream driver when a stream has failed for `[streams]
        // alert_after`, or was disabled by its receiver.
        "stream_failing" if ["stream:failing", "stream:disabled"].iter().any(|a| e.action.eq_ignore_ascii_case(a)) => {
            one(by)
        }
        // Recorded by the witness client (`work/witness.rs`).
        "witness_refused" if e.action.eq_ignore_ascii_case("witness:refused") => one(by),
        "witness_lagging" if e.action.eq_ignore_ascii_case("witness:lagging") => one(by),
        "new_admin_ip" => {
            let admin = e
                .actor
                .as_ref()
                .and_then(|a| a.email.as_ref())
                .is_some_and(|m| ctx.admins.contains(&m.to_ascii_lowercase()));
            if admin && e.source_ip.is_some() {
                one(Some("actor".into()))
            } else {
                vec![]
            }
        }
        "large_export" if e.action.eq_ignore_ascii_case("audit:export") => {
            let rows = e.details.as_ref().and_then(|d| d.get("rows")).and_then(Value::as_u64).unwrap_or(0);
            if rows > u64::from(r.threshold) {
                vec![(String::new(), None, 1)]
            } else {
                vec![]
            }
        }
        _ if BUILTIN.contains(&r.name.as_str()) => vec![],
        _ => match &c.filter {
            Some(f) if f.matches(e, ctx.now) => one(by),
            _ => vec![],
        },
    }
}

impl State {
    pub fn parse(s: &str) -> State {
        serde_json::from_str(s).unwrap_or_default()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// Feeds one committed event to every rule; returns what fired.
    pub fn observe(&mut self, rules: &[Compiled], e: &Event, ctx: &Context<'_>) -> Vec<Firing> {
        // Trail's own alert records never trigger alerts.
        if e.category().eq_ignore_ascii_case("monitoring") {
            return vec![];
        }
        let mut out = Vec::new();
        let seen = Seen { id: e.id.to_string(), ts: e.timestamp.0, action: e.action.clone() };
        for c in rules.iter().filter(|c| c.rule.enabled) {
            for (by, value, threshold) in groups(c, e, ctx) {
                let key = format!("{}|{}|{}", c.rule.name, by, value.clone().unwrap_or_default());
                if c.rule.name == "new_admin_ip" {
                    // Fires when the admin acts from an address not seen for them within
                    // the window; the first address an admin is seen from is learnt.
                    let who = value.clone().unwrap_or_default();
                    let ip = e.source_ip.clone().unwrap_or_default();
                    let window = i64::from(c.rule.window_secs) * 1_000_000;
                    let known_any = self.addresses.keys().any(|k| k.starts_with(&format!("{who}|")));
                    let last = self.addresses.insert(format!("{who}|{ip}"), e.timestamp.0);
                    let fresh = last.is_none_or(|t| e.timestamp.0 - t > window);
                    self.addresses.retain(|_, t| e.timestamp.0 - *t <= window);
                    if !(known_any && fresh) {
                        continue;
                    }
                    let key = format!("{key}|{ip}");
                    out.extend(self.fire(c, &key, (by, value), 1, vec![seen.clone()], e.timestamp.0));
                    continue;
                }
                let window = i64::from(c.rule.window_secs) * 1_000_000;
                let w = self.windows.entry(key.clone()).or_default();
                w.push(&seen, window);
                if w.count() >= u64::from(threshold.max(1)) {
                    let w = std::mem::take(w);
                    out.extend(self.fire(c, &key, (by, value), w.count(), w.events(), e.timestamp.0));
                }
            }
        }
        out
    }

    /// Forgets windows that ran out and quiet periods that ended with nothing to
    /// report (once per chunk of events: the state stays small).
    pub fn prune(&mut self, rules: &[Compiled], now: i64) {
        let windows: std::collections::HashMap<&str, i64> =
            rules.iter().map(|c| (c.rule.name.as_str(), i64::from(c.rule.window_secs) * 1_000_000)).collect();
        self.windows.retain(|k, w| {
            let window = windows.get(k.split('|').next().unwrap_or_default()).copied().unwrap_or(0);
            w.last_ts().is_some_and(|l| now - l <= window)
        });
        self.quiet.retain(|_, (until, n)| *until > now || *n > 0);
    }

    /// A firing unless the rule and group are quiet (then it is counted for the next).
    fn fire(
        &mut self,
        c: &Compiled,
        key: &str,
        (by, value): (String, Option<String>),
        count: u64,
        events: Vec<Seen>,
        at: i64,
    ) -> Option<Firing> {
        let quiet = self.quiet.entry(key.to_string()).or_insert((i64::MIN, 0));
        if at < quiet.0 {
            quiet.1 += count;
            return None;
        }
        let suppressed = std::mem::take(&mut quiet.1);
        quiet.0 = at + i64::from(c.rule.quiet_secs) * 1_000_000;
        Some(Firing {
            rule: c.rule.name.clone(),
            group: value.map(|v| (by, v)),
            count,
            window_secs: c.rule.window_secs,
            threshold: c.rule.threshold,
            events,
            suppressed,
            query: c.rule.query.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use trail_core::event::parse_event;
    use uuid::Uuid;

    use super::*;

    fn event(v: Value, secs: i64) -> Event {
        let mut v = v;
        v["timestamp"] = json!(Timestamp(1_700_000_000_000_000 + secs * 1_000_000).to_rfc3339());
        Event::from_new(parse_event(v).unwrap(), Uuid::now_v7(), "acme", 0, Timestamp(0))
    }

    fn rules(stored: Vec<AlertRule>) -> Vec<Compiled> {
        effective("acme", stored).into_iter().map(|r| Compiled::new(r).unwrap()).collect()
    }

    #[test]
    fn five_failed_logins_fire_once_then_stay_quiet() {
        let rules = rules(vec![]);
        let admins = HashSet::new();
        let ctx = Context { admins: &admins, now: Timestamp(0) };
        let mut st = State::default();
        let fail = |s| event(json!({"action": "auth:login", "result": "FAILED", "actor": {"email": "x@acme.com"}}), s);
        let mut fired = Vec::new();
        for i in 0..4 {
            fired.extend(st.observe(&rules, &fail(i * 60), &ctx));
        }
        assert!(fired.is_empty());
        fired.extend(st.observe(&rules, &fail(300), &ctx));
        assert_eq!(fired.len(), 1);
        assert_eq!((fired[0].count, fired[0].group.clone()), (5, Some(("actor".into(), "x@acme.com".into()))));
        // Five more within the quiet period: counted, not sent.
        for i in 0..5 {
            assert!(st.observe(&rules, &fail(400 + i), &ctx).is_empty());
        }
        // After it, the next firing says how many matched meanwhile.
        let later: Vec<Firing> = (0..5).flat_map(|i| st.observe(&rules, &fail(2000 + i), &ctx)).collect();
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].suppressed, 5);
        // Spread beyond the window: nothing.
        let mut st = State::default();
        let slow: Vec<Firing> = (0..6).flat_map(|i| st.observe(&rules, &fail(i * 700), &ctx)).collect();
        assert!(slow.is_empty());
        // State survives a round trip through JSON.
        assert_eq!(State::parse(&st.to_json()), st);
    }

    #[test]
    fn built_ins_and_custom_rules_match_what_they_say() {
        let custom = AlertRule {
            org: "acme".into(),
            name: "prod-deploys".into(),
            enabled: true,
            query: Some("action:service:deploy result:FAILED".into()),
            threshold: 2,
            window_secs: 60,
            group_by: Some("resource".into()),
            quiet_secs: 0,
            destinations: vec![],
        };
        let rules = rules(vec![custom]);
        let admins: HashSet<String> = ["root@acme.com".to_string()].into();
        let ctx = Context { admins: &admins, now: Timestamp(0) };
        let mut st = State::default();
        let names = |f: Vec<Firing>| f.into_iter().map(|f| f.rule).collect::<Vec<_>>();
        let role = event(
            json!({"action": "user:role_change", "details": {"role": "org_admin", "previous_role": "viewer"}}),
            1,
        );
        assert_eq!(names(st.observe(&rules, &role, &ctx)), ["permission_escalation"]);
        let key = event(json!({"action": "api_key:create"}), 2);
        assert_eq!(names(st.observe(&rules, &key, &ctx)), ["api_token_created"]);
        let export = event(json!({"action": "audit:export", "details": {"rows": 250000}}), 3);
        assert_eq!(names(st.observe(&rules, &export, &ctx)), ["large_export"]);
        let small = event(json!({"action": "audit:export", "details": {"rows": 10}}), 4);
        assert!(st.observe(&rules, &small, &ctx).is_empty());
        let deploy = |s| event(json!({"action": "service:deploy", "result": "FAILED", "resource": {"name": "api"}}), s);
        assert!(st.observe(&rules, &deploy(5), &ctx).is_empty());
        assert_eq!(names(st.observe(&rules, &deploy(6), &ctx)), ["prod-deploys"]);
        // An admin's first address is learnt; a new one fires.
        let from = |ip: &str, s| {
            event(json!({"action": "user:update", "source_ip": ip, "actor": {"email": "root@acme.com"}}), s)
        };
        assert!(st.observe(&rules, &from("10.0.0.1", 7), &ctx).is_empty());
        assert!(st.observe(&rules, &from("10.0.0.1", 8), &ctx).is_empty());
        assert_eq!(names(st.observe(&rules, &from("203.0.113.9", 9), &ctx)), ["new_admin_ip"]);
        let deletes: Vec<Firing> = (0..20)
            .flat_map(|i| {
                st.observe(&rules, &event(json!({"action": "user:delete", "actor": {"id": "bot"}}), 10 + i), &ctx)
            })
            .collect();
        assert_eq!(names(deletes), ["mass_deletion"]);
        // The witness client's findings and lag (`work/witness.rs`).
        let refused = |w: &str, s| {
            event(json!({"action": "witness:refused", "result": "FAILED", "resource": {"type": "witness", "id": w}}), s)
        };
        assert_eq!(names(st.observe(&rules, &refused("w1", 40), &ctx)), ["witness_refused"]);
        assert_eq!(names(st.observe(&rules, &refused("w2", 41), &ctx)), ["witness_refused"], "per witness");
        let lagging = event(json!({"action": "witness:lagging", "result": "FAILED"}), 42);
        assert_eq!(names(st.observe(&rules, &lagging, &ctx)), ["witness_lagging"]);
    }
}
