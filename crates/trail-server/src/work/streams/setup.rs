//! What an administrator asks of a stream, checked into a stored `Stream`, where a
//! start or replay begins, and a stream's health as people see it. Shared by the API
//! and the command line.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use trail_core::{FieldError, Timestamp};
use trail_store::streams::{Stream, StreamKind, StreamState};
use utoipa::ToSchema;

use super::format::Format;
use crate::work::{
    alerts::send::new_secret,
    outbound::{self, Unusable},
    Services, WorkError,
};

/// Where a stream starts, or a replay begins.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(untagged)]
pub enum StartAt {
    /// `"now"` (the next event appended) or `"beginning"` (seq 0, archived periods
    /// included).
    Named(String),
    /// The event with this seq.
    Seq { seq: u64 },
    /// The first event received at or after this time (RFC 3339).
    Time { time: String },
}

/// A new stream, or (every field optional but `name`, `kind` and `format`) a change.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamSpec {
    pub name: Option<String>,
    /// `http` or `syslog`.
    pub kind: Option<String>,
    /// HTTP streams: where batches are posted.
    pub url: Option<String>,
    /// Syslog streams: `host:port`.
    pub address: Option<String>,
    /// Syslog streams: over TLS.
    pub tls: Option<bool>,
    /// `jsonl`, `ocsf`, `splunk_hec` (HTTP) or `cef` (syslog).
    pub format: Option<String>,
    /// Only events matching this query are sent.
    pub query: Option<String>,
    /// Where a new stream starts (default `now`).
    pub start: Option<StartAt>,
    /// HTTP streams: headers sent with every batch (e.g. `Authorization`).
    pub headers: Option<BTreeMap<String, String>>,
}

fn field(name: &str, message: impl Into<String>) -> WorkError {
    WorkError::Field(FieldError::new(name, message))
}

/// Headers a stream may not set: Trail's own and the transport's.
const RESERVED: &[&str] = &["content-type", "content-length", "host", "transfer-encoding", "connection"];

/// Applies `spec` to `s` (a new stream or a stored one) and checks the result: the
/// name, the transport and its address (internal addresses refused unless
/// `[streams] allow_private_destinations`), the format, the query and the headers.
pub async fn apply(st: &Services, s: &mut Stream, spec: &StreamSpec) -> Result<(), WorkError> {
    if let Some(n) = &spec.name {
        s.name = n.trim().to_string();
    }
    if s.name.is_empty() || s.name.chars().count() > 200 {
        return Err(field("name", "must be 1 to 200 characters"));
    }
    if let Some(k) = &spec.kind {
        let k = k.to_ascii_lowercase();
        s.kind = StreamKind::parse(&k)
            .ok_or_else(|| field("kind", format!("'{k}' is not a stream kind ({})", StreamKind::names())))?;
    }
    if let Some(t) = spec.tls {
        s.tls = t;
    }
    if spec.url.is_some() {
        s.url = spec.url.clone().filter(|u| !u.is_empty());
    }
    if spec.address.is_some() {
        s.address = spec.address.clone().filter(|a| !a.is_empty());
    }
    if spec.query.is_some() {
        s.query = spec.query.clone().filter(|q| !q.trim().is_empty());
    }
    if let Some(h) = &spec.headers {
        s.headers = h.clone();
    }
    let allow = st.config.streams.allow_private_destinations;
    let refused = |name: &str, e: Unusable| field(name, e.to_string());
    match s.kind {
        StreamKind::Http => {
            let url = s.url.as_deref().ok_or_else(|| field("url", "an http stream needs a url"))?;
            outbound::resolve(url, allow, "[streams]").await.map_err(|e| refused("url", e))?;
            s.address = None;
            s.tls = false;
            if s.secrets.is_empty() {
                s.secrets = vec![new_secret()];
            }
        }
        StreamKind::Syslog => {
            let a =
                s.address.as_deref().ok_or_else(|| field("address", "a syslog stream needs an address (host:port)"))?;
            let (host, port) = split_address(a).map_err(|m| field("address", m))?;
            outbound::resolve_host(&host, port, allow, "[streams]").await.map_err(|e| refused("address", e))?;
            s.url = None;
            if !s.headers.is_empty() {
                return Err(field("headers", "headers are sent by http streams only"));
            }
        }
    }
    if let Some(f) = &spec.format {
        let f = f.to_ascii_lowercase();
        s.format =
            Format::parse(&f).ok_or_else(|| field("format", format!("'{f}' is not a format ({})", Format::names())))?;
    }
    s.format.carried_by(s.kind).map_err(|m| field("format", m))?;
    if let Some(q) = &s.query {
        trail_core::query::parse(q).map_err(|e| field("query", e.message))?;
    }
    for (k, v) in &s.headers {
        let lower = k.to_ascii_lowercase();
        let valid = reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_ok()
            && reqwest::header::HeaderValue::from_str(v).is_ok();
        if !valid {
            return Err(field("headers", format!("'{k}' is not a valid header")));
        }
        if RESERVED.contains(&lower.as_str()) || lower.starts_with("trail-") || lower.starts_with("webhook-") {
            return Err(field("headers", format!("'{k}' is set by Trail")));
        }
    }
    Ok(())
}

/// `host:port` (an IPv6 host in brackets).
pub fn split_address(a: &str) -> Result<(String, u16), String> {
    let (host, port) = a.rsplit_once(':').ok_or("must be host:port")?;
    let host = host.trim_matches(['[', ']']);
    let port: u16 = port.parse().map_err(|_| format!("'{port}' is not a port"))?;
    if host.is_empty() || port == 0 {
        return Err("must be host:port".into());
    }
    Ok((host.to_string(), port))
}

/// The seq a start or replay begins at.
pub async fn position(st: &Services, org: &str, at: &StartAt, field_name: &str) -> Result<u64, WorkError> {
    let end = st.store.log_end(org).await?;
    match at {
        StartAt::Named(n) if n == "now" => Ok(end),
        StartAt::Named(n) if n == "beginning" => Ok(0),
        StartAt::Named(n) => {
            Err(field(field_name, format!("'{n}' is not a start: now, beginning, {{\"seq\": N}} or {{\"time\": T}}")))
        }
        StartAt::Seq { seq } if *seq <= end => Ok(*seq),
        StartAt::Seq { seq } => Err(field(field_name, format!("seq {seq} is past the end of the log ({end})"))),
        StartAt::Time { time } => {
            let t = Timestamp::parse_rfc3339(time).map_err(|e| field(field_name, format!("time: {e}")))?;
            seq_at(st, org, t, end).await
        }
    }
}

/// The first seq received at or after `t` (seqs are given in the order events are
/// received): a binary search over the log, archived periods included.
async fn seq_at(st: &Services, org: &str, t: Timestamp, end: u64) -> Result<u64, WorkError> {
    let (mut lo, mut hi) = (0u64, end);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let rows = trail_store::archive::scan_merged(&*st.store, st.archive.as_deref(), org, mid, 1).await?;
        let Some((seq, leaf)) = rows.into_iter().next() else { break };
        let received = trail_core::Event::from_leaf(&leaf).map(|e| e.received_at).unwrap_or(Timestamp(i64::MAX));
        if received < t {
            lo = seq + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo.min(end))
}

/// A new stream from `spec`, checked, starting where it asks (not yet stored).
pub async fn new_stream(st: &Services, org: &str, spec: &StreamSpec) -> Result<Stream, WorkError> {
    let mut s = Stream {
        id: 0,
        org: org.to_string(),
        name: String::new(),
        // Both are required of `spec` (below), which `apply` then reads.
        kind: StreamKind::Http,
        url: None,
        address: None,
        tls: false,
        format: Format::Jsonl,
        query: None,
        headers: BTreeMap::new(),
        secrets: vec![],
        state: StreamState::Active,
        cursor: 0,
        last_seq: None,
        sent: 0,
        failed: 0,
        last_error: None,
        failing_since: None,
        alerted: false,
        last_sent_at: None,
        owner: None,
        lease_until: 0,
        created_at: (st.clock)().0,
    };
    for (name, missing) in
        [("name", spec.name.is_none()), ("kind", spec.kind.is_none()), ("format", spec.format.is_none())]
    {
        if missing {
            return Err(field(name, "is required"));
        }
    }
    apply(st, &mut s, spec).await?;
    s.cursor = position(st, org, spec.start.as_ref().unwrap_or(&StartAt::Named("now".into())), "start").await?;
    Ok(s)
}

/// A stream's settings and health, as the API and the page show them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StreamView {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub url: Option<String>,
    pub address: Option<String>,
    pub tls: bool,
    pub format: String,
    pub query: Option<String>,
    /// Header names (their values are not shown: they often hold credentials).
    pub headers: Vec<String>,
    /// `active`, `paused`, `failing` or `disabled`.
    pub status: String,
    /// The next seq the stream looks at.
    pub cursor: u64,
    /// The last seq delivered.
    pub last_seq: Option<u64>,
    /// Events of the log not yet looked at.
    pub lag_events: u64,
    /// How long the oldest of them has waited (0 when none).
    pub lag_seconds: f64,
    pub sent: u64,
    pub failed: u64,
    pub last_error: Option<String>,
    /// When attempts started failing (RFC 3339).
    pub failing_since: Option<String>,
    pub last_sent_at: Option<String>,
    pub created_at: String,
}

/// The status people see: paused and disabled as stored; an active stream whose
/// attempts fail is `failing`.
pub fn status(s: &Stream) -> &'static str {
    match s.state {
        StreamState::Paused => "paused",
        StreamState::Disabled => "disabled",
        StreamState::Active if s.failing_since.is_some() => "failing",
        StreamState::Active => "active",
    }
}

/// A stream's view, with its lag measured now.
pub async fn view(st: &Services, s: &Stream) -> Result<StreamView, WorkError> {
    let end = st.store.log_end(&s.org).await?;
    let lag_events = end.saturating_sub(s.cursor);
    let mut lag_seconds = 0.0;
    if lag_events > 0 {
        if let Some((_, leaf)) = st.store.scan(&s.org, s.cursor, 1).await?.into_iter().next() {
            if let Ok(e) = trail_core::Event::from_leaf(&leaf) {
                lag_seconds = ((st.clock)().0 - e.received_at.0).max(0) as f64 / 1e6;
            }
        }
    }
    let time = |t: Option<i64>| t.map(|t| Timestamp(t).to_rfc3339());
    Ok(StreamView {
        id: s.id,
        name: s.name.clone(),
        kind: s.kind.as_str().into(),
        url: s.url.as_deref().map(super::super::outbound::masked),
        address: s.address.clone(),
        tls: s.tls,
        format: s.format.as_str().into(),
        query: s.query.clone(),
        headers: s.headers.keys().cloned().collect(),
        status: status(s).into(),
        cursor: s.cursor,
        last_seq: s.last_seq,
        lag_events,
        lag_seconds,
        sent: s.sent,
        failed: s.failed,
        last_error: s.last_error.clone(),
        failing_since: time(s.failing_since),
        last_sent_at: time(s.last_sent_at),
        created_at: Timestamp(s.created_at).to_rfc3339(),
    })
}
