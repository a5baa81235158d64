//! Importers: other systems' audit records turned into Trail events. A source is
//! one JSON document (an envelope such as CloudTrail's `{"Records": […]}` or
//! Kubernetes' `EventList`, an array, or one record) or JSON Lines, read as it streams
//! (`source`); each record is mapped by its format's room, checked like any ingested
//! event, and either kept or skipped with a reason (never fatal). The source's own id is the idempotency key,
//! so importing a file twice stores nothing twice, and the raw record is kept in
//! `details.raw`.
//!
//! Rooms: `cloudtrail` (AWS CloudTrail), `k8s` (Kubernetes `audit.k8s.io` events, also
//! as the API server's audit webhook), `gcp` (Cloud Audit Logs), `okta` (System Log),
//! `github` (audit log entries), `seeds` (the event shapes of the product documents:
//! KIOPS, KubeVision, ops0, Dify, GPU cloud).

use serde_json::Value;
use trail_core::{event::parse_event, NewEvent};
use trail_store::AppendBatch;
use uuid::Uuid;

use super::{feed, Services, WorkError};

pub mod cloudtrail;
pub mod gcp;
pub mod github;
pub mod k8s;
pub mod okta;
pub mod seeds;
pub mod source;

/// A source format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    CloudTrail,
    K8s,
    Gcp,
    Okta,
    Github,
    Kiops,
    Kubevision,
    Ops0,
    Dify,
    Gpucloud,
}

impl Format {
    pub const NAMES: [&'static str; 10] =
        ["cloudtrail", "k8s", "gcp", "okta", "github", "kiops", "kubevision", "ops0", "dify", "gpucloud"];

    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "cloudtrail" => Some(Format::CloudTrail),
            "k8s" => Some(Format::K8s),
            "gcp" => Some(Format::Gcp),
            "okta" => Some(Format::Okta),
            "github" => Some(Format::Github),
            "kiops" => Some(Format::Kiops),
            "kubevision" => Some(Format::Kubevision),
            "ops0" => Some(Format::Ops0),
            "dify" => Some(Format::Dify),
            "gpucloud" => Some(Format::Gpucloud),
            _ => None,
        }
    }

    /// The key of this format's envelope of records.
    fn envelope(self) -> &'static str {
        match self {
            Format::CloudTrail => "Records",
            Format::K8s => "items",
            Format::Gcp => "entries",
            _ => "events",
        }
    }

    /// Whether a value holds records (an array or an envelope) rather than being one.
    fn records_in(self, value: &Value) -> bool {
        value.is_array() || value.get(self.envelope()).is_some_and(Value::is_array)
    }

    /// The records of a value: an array's items, an envelope's, or the value itself.
    fn records(self, doc: Value) -> Vec<Value> {
        match doc {
            Value::Array(items) => items,
            Value::Object(mut m) if m.get(self.envelope()).is_some_and(Value::is_array) => {
                match m.remove(self.envelope()) {
                    Some(Value::Array(items)) => items,
                    _ => vec![],
                }
            }
            other => vec![other],
        }
    }

    /// One record as a Trail event (JSON), `Ok(None)` when it is not one to store.
    fn map(self, record: &Value) -> Result<Option<Value>, WorkError> {
        match self {
            Format::CloudTrail => cloudtrail::map(record).map(Some),
            Format::K8s => k8s::map(record),
            Format::Gcp => gcp::map(record).map(Some),
            Format::Okta => okta::map(record).map(Some),
            Format::Github => github::map(record).map(Some),
            Format::Kiops => seeds::kiops(record).map(Some),
            Format::Kubevision => seeds::kubevision(record).map(Some),
            Format::Ops0 => seeds::ops0(record).map(Some),
            Format::Dify => seeds::dify(record).map(Some),
            Format::Gpucloud => seeds::gpucloud(record).map(Some),
        }
    }
}

/// A record that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Skipped {
    /// The line where the record starts (1-based).
    pub line: usize,
    /// Its position (1-based) in its array or envelope, when it is in one (records
    /// on one line, such as a compact CloudTrail file, share the line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<usize>,
    /// Why it was not imported.
    pub reason: String,
}

/// A source's events, in order, and what was skipped.
#[derive(Default)]
pub struct Converted {
    pub events: Vec<NewEvent>,
    pub skipped: Vec<Skipped>,
}

/// Reads a whole source `text` in `format`.
pub fn convert(format: Format, text: &str) -> Converted {
    let mut all = Converted::default();
    let read = read(format, text.as_bytes(), usize::MAX, &mut |part| {
        all.events.extend(part.events);
        all.skipped.extend(part.skipped);
        true
    });
    debug_assert!(read.is_ok(), "a slice reads without error");
    all
}

/// Reads a source in `format` as it streams (see [`source`]), handing its events and
/// skipped records to `part` whenever `batch` of either have gathered, and at the end;
/// stops when `part` answers `false`. Only `input`'s own read errors are errors.
pub fn read(
    format: Format,
    input: impl std::io::BufRead,
    batch: usize,
    part: &mut dyn FnMut(Converted) -> bool,
) -> std::io::Result<()> {
    let mut gathered = Converted::default();
    let mut going = true;
    source::records(input, format.envelope(), &mut |(at, record)| {
        // A line may hold a whole envelope (one CloudTrail file per line).
        let records: Vec<_> = match record {
            Ok(value @ (Value::Array(_) | Value::Object(_))) => {
                let several = at.item.is_none() && format.records_in(&value);
                format.records(value).into_iter().enumerate().map(|(i, r)| (several.then_some(i + 1), Ok(r))).collect()
            }
            other => vec![(None, other)],
        };
        for (item, record) in records {
            let event = record.and_then(|r| {
                // The reason says which field: the source's, or the event's.
                let Some(v) = format.map(&r).map_err(|e| e.to_string())? else { return Ok(None) };
                parse_event(v).map(Some).map_err(|e| e.to_string())
            });
            match event {
                Ok(Some(event)) => gathered.events.push(event),
                Ok(None) => {}
                Err(reason) => gathered.skipped.push(Skipped { line: at.line, record: item.or(at.item), reason }),
            }
        }
        if gathered.events.len() >= batch || gathered.skipped.len() >= batch {
            going = part(std::mem::take(&mut gathered));
        }
        going
    })?;
    if going && (!gathered.events.is_empty() || !gathered.skipped.is_empty()) {
        part(gathered);
    }
    Ok(())
}

/// What an import stored.
#[derive(Debug, Default)]
pub struct Imported {
    pub acks: Vec<trail_store::Appended>,
    pub duplicates: usize,
}

/// Appends converted events to `org`'s log, 1,000 at a time.
pub async fn store(st: &Services, org: &str, events: Vec<NewEvent>) -> Result<Imported, WorkError> {
    let mut out = Imported::default();
    let mut events = events.into_iter().map(|e| (Uuid::now_v7(), e)).peekable();
    while events.peek().is_some() {
        let chunk: Vec<_> = events.by_ref().take(1000).collect();
        let batch = AppendBatch { org: org.to_string(), received_at: (st.clock)(), events: chunk };
        let acks = feed::append(st, batch).await?;
        out.duplicates += acks.iter().filter(|a| a.duplicate).count();
        out.acks.extend(acks);
    }
    Ok(out)
}

/// A record without a field its format requires.
pub(crate) fn missing(path: &str) -> WorkError {
    WorkError::field(path, "is missing")
}

/// A string field of a JSON object, non-empty.
pub(crate) fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut at = v;
    for p in path {
        at = at.get(p)?;
    }
    at.as_str().filter(|s| !s.is_empty())
}

/// An address as Trail stores it, if `s` is one.
pub(crate) fn address(s: Option<&str>) -> Option<String> {
    s.and_then(|s| s.trim().parse::<std::net::IpAddr>().ok()).map(|a| a.to_string())
}

/// `category:operation` made of free text: the category's characters restricted to
/// what Trail accepts.
pub(crate) fn action(category: &str, operation: &str) -> String {
    let cat: String = category
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
        .take(64)
        .collect();
    let op: String = operation.chars().filter(|c| !c.is_control() && *c != ':').take(128).collect();
    format!("{}:{}", if cat.is_empty() { "unknown" } else { &cat }, if op.is_empty() { "unknown" } else { &op })
}
