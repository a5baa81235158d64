//! What a firing says: the JSON a webhook receives (and every other shape is made
//! from), the deep link into `/audit` with the filter applied and the triggering event
//! selected, and the texts of chat and mail messages.

use serde_json::{json, Value};
use trail_core::Timestamp;
use trail_store::alerts::DestinationKind;

use super::rules::Firing;

/// `10m`, `2h`, `30d` (or `every event`).
pub fn window_text(secs: u32) -> String {
    match secs {
        0 => "every event".into(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn rfc3339(us: i64) -> String {
    Timestamp(us).to_rfc3339()
}

/// The page's URL for a firing: its events' filter and period, the last one selected.
pub fn link(base: &str, f: &Firing) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    let query = match f.rule.as_str() {
        "failed_logins" => Some("action:auth:login result:FAILED".to_string()),
        "mass_deletion" => Some("operation:delete".to_string()),
        "witness_refused" => Some("action:witness:refused".to_string()),
        "witness_lagging" => Some("action:witness:lagging".to_string()),
        "permission_escalation" | "api_token_created" | "new_admin_ip" | "large_export" => None,
        _ => f.query.clone(),
    };
    let mut text = query.unwrap_or_default();
    if let Some((by, value)) = &f.group {
        let key = match by.as_str() {
            "ip" => "ip",
            "resource" => "resource",
            _ => "actor",
        };
        text = format!("{text} {key}:\"{value}\"").trim().to_string();
    }
    if !text.is_empty() {
        q.append_pair("q", &text);
    }
    if let (Some(first), Some(last)) = (f.events.first(), f.events.last()) {
        q.append_pair("from", &rfc3339(first.ts));
        q.append_pair("to", &rfc3339(last.ts));
        q.append_pair("event", &last.id);
    }
    format!("{base}/audit?{}", q.finish())
}

/// The firing as JSON: what a webhook receives.
pub fn payload(org: &str, f: &Firing, base: &str, now: Timestamp) -> Value {
    let event = |e: &super::rules::Seen| json!({"id": e.id, "timestamp": rfc3339(e.ts), "action": e.action});
    json!({
        "type": "trail.alert",
        "rule": f.rule,
        "org": org,
        "group": f.group.as_ref().map(|(by, v)| json!({"by": by, "value": v})),
        "count": f.count,
        "threshold": f.threshold,
        "window": window_text(f.window_secs),
        "events": f.events.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        "first_event": f.events.first().map(event),
        "last_event": f.events.last().map(event),
        "suppressed_since_last": f.suppressed,
        "link": link(base, f),
        "fired_at": now.to_rfc3339(),
    })
}

/// One line saying what happened, for chat and mail.
pub fn headline(p: &Value) -> String {
    let rule = p["rule"].as_str().unwrap_or_default();
    let org = p["org"].as_str().unwrap_or_default();
    if rule == "test" {
        return format!("Trail test message for {org}: this destination works.");
    }
    let count = p["count"].as_u64().unwrap_or(0);
    let group = match (p["group"]["by"].as_str(), p["group"]["value"].as_str()) {
        (Some(by), Some(v)) => format!(" by {by} {v}"),
        _ => String::new(),
    };
    let window = p["window"].as_str().unwrap_or_default();
    let within = if window == "every event" { String::new() } else { format!(" within {window}") };
    let mut line =
        format!("Trail alert {rule} in {org}: {count} event{}{group}{within}", if count == 1 { "" } else { "s" });
    let more = p["suppressed_since_last"].as_u64().unwrap_or(0);
    if more > 0 {
        line.push_str(&format!(" ({more} more matched since the last message)"));
    }
    line
}

/// The body for a destination kind: the payload itself for webhooks, Slack's and
/// Discord's incoming-webhook shapes otherwise.
pub fn body(kind: DestinationKind, p: &Value) -> Value {
    let head = headline(p);
    let link = p["link"].as_str().unwrap_or_default();
    let span = match (p["first_event"]["timestamp"].as_str(), p["last_event"]["timestamp"].as_str()) {
        (Some(a), Some(b)) => format!("{a} … {b}"),
        _ => String::new(),
    };
    match kind {
        DestinationKind::Slack => json!({
            "text": format!("{head} <{link}|Open in Trail>"),
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": format!("*{head}*\n{span}")}},
                {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open in Trail"}, "url": link}]},
            ],
        }),
        DestinationKind::Discord => json!({
            "content": head,
            "embeds": [{
                "title": format!("{} in {}", p["rule"].as_str().unwrap_or_default(), p["org"].as_str().unwrap_or_default()),
                "url": link,
                "description": span,
                "fields": [
                    {"name": "Events", "value": p["count"].to_string(), "inline": true},
                    {"name": "Window", "value": p["window"].as_str().unwrap_or("-"), "inline": true},
                ],
            }],
        }),
        DestinationKind::Webhook | DestinationKind::Email => p.clone(),
    }
}

/// Subject and text of an alert mail.
pub fn mail(p: &Value) -> (String, String) {
    let head = headline(p);
    let mut text = format!("{head}\n\n");
    for (k, label) in [("first_event", "First event"), ("last_event", "Last event")] {
        if let (Some(id), Some(ts)) = (p[k]["id"].as_str(), p[k]["timestamp"].as_str()) {
            text.push_str(&format!("{label}: {ts} ({id})\n"));
        }
    }
    text.push_str(&format!("\nOpen in Trail: {}\n", p["link"].as_str().unwrap_or_default()));
    (head, text)
}
