//! The free text `q` searches in an event, the same for both backends: each indexes
//! its words its own way (SQLite's FTS5 document, PostgreSQL's `tsvector`).

use serde_json::Value;
use trail_core::Event;

/// Longest piece of `details`/`response` text indexed for search per event.
pub(crate) const MAX_SEARCH_JSON: usize = 2048;

/// The text `q` searches, as the seeds list it: action, resource names, emails and
/// details; plus the result, the actor's name, the request id and the error message.
pub(crate) fn search_text(ev: &Event, out: &mut String) {
    let mut push = |s: Option<&str>| {
        if let Some(s) = s {
            out.push_str(s);
            out.push(' ');
        }
    };
    push(Some(&ev.action));
    push(Some(ev.result.as_str()));
    if let Some(a) = &ev.actor {
        push(a.name.as_deref());
        push(a.email.as_deref());
    }
    if let Some(r) = &ev.resource {
        push(r.id.as_deref());
        push(r.name.as_deref());
        if let Some(p) = &r.parent {
            push(p.name.as_deref());
        }
    }
    push(ev.request_id.as_deref());
    push(ev.error.as_deref());
    let start = out.len();
    for v in [&ev.details, &ev.response].into_iter().flatten() {
        json_strings(v, out, start + MAX_SEARCH_JSON);
    }
}

pub(crate) fn json_strings(v: &Value, out: &mut String, cap: usize) {
    if out.len() >= cap {
        return;
    }
    match v {
        Value::String(s) => {
            out.push_str(s);
            out.push(' ');
        }
        Value::Number(n) => {
            out.push_str(&n.to_string());
            out.push(' ');
        }
        Value::Array(a) => a.iter().for_each(|x| json_strings(x, out, cap)),
        Value::Object(o) => o.values().for_each(|x| json_strings(x, out, cap)),
        Value::Bool(_) | Value::Null => {}
    }
}

/// The words of `text` as `q` matches them: runs of alphanumeric characters, lowercased.
pub(crate) fn search_words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(|w| w.to_lowercase())
}
