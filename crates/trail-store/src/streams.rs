//! Streaming's side of the store, as types: a stream's settings (where and how an
//! organization's events are sent), its cursor (the next seq to look at) and health,
//! and the lease that makes one server at a time drive it. The sending itself is the
//! server's work layer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Whether a stream runs. `failing` is not a state but health: an active stream
/// whose last attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamState {
    Active,
    /// Stopped by an administrator; resumes where it stopped.
    Paused,
    /// Stopped because the receiver refused it for good (410 Gone, an address that is
    /// refused); resumes where it stopped once an administrator resumes it.
    Disabled,
}

impl StreamState {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamState::Active => "active",
            StreamState::Paused => "paused",
            StreamState::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> StreamState {
        match s {
            "paused" => StreamState::Paused,
            "disabled" => StreamState::Disabled,
            _ => StreamState::Active,
        }
    }
}

crate::named::named! {
    /// How a stream reaches its receiver.
    pub enum StreamKind {
        /// Batches posted to a URL.
        Http = "http",
        /// RFC 5424 frames over TCP (or TLS).
        Syslog = "syslog",
    }
}

crate::named::named! {
    /// What a stream sends each event as.
    pub enum StreamFormat {
        Jsonl = "jsonl",
        Ocsf = "ocsf",
        SplunkHec = "splunk_hec",
        Cef = "cef",
    }
}

impl StreamFormat {
    /// Whether `kind` carries this format (CEF only over syslog, Splunk HEC only over
    /// HTTP); the error says which formats it carries.
    pub fn carried_by(self, kind: StreamKind) -> Result<StreamFormat, String> {
        match (kind, self) {
            (StreamKind::Http, StreamFormat::Cef) => {
                Err("cef is sent over syslog; HTTP streams send jsonl, ocsf or splunk_hec".into())
            }
            (StreamKind::Syslog, StreamFormat::SplunkHec) => {
                Err("splunk_hec is sent over HTTP; syslog streams send jsonl, ocsf or cef".into())
            }
            _ => Ok(self),
        }
    }
}

/// One stream of an organization's events to a receiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stream {
    pub id: i64,
    pub org: String,
    pub name: String,
    pub kind: StreamKind,
    /// HTTP streams: where batches are posted.
    pub url: Option<String>,
    /// Syslog streams: `host:port`.
    pub address: Option<String>,
    /// Syslog streams: over TLS.
    pub tls: bool,
    pub format: StreamFormat,
    /// Only events matching this query (Trail's query language) are sent.
    pub query: Option<String>,
    /// HTTP streams: headers sent with every batch (e.g. `Authorization`).
    pub headers: BTreeMap<String, String>,
    /// HTTP streams: signing secrets (`whsec_…`), newest first.
    pub secrets: Vec<String>,
    pub state: StreamState,
    /// The next seq of the organization's log to look at.
    pub cursor: u64,
    /// The last seq delivered.
    pub last_seq: Option<u64>,
    /// Events delivered, and attempts that failed.
    pub sent: u64,
    pub failed: u64,
    pub last_error: Option<String>,
    /// Microseconds: since when attempts have been failing (none: the last succeeded).
    pub failing_since: Option<i64>,
    /// Whether this failing period was already recorded and alerted.
    pub alerted: bool,
    /// Microseconds: the last delivery.
    pub last_sent_at: Option<i64>,
    /// The server driving the stream, and until when (microseconds).
    pub owner: Option<String>,
    pub lease_until: i64,
    pub created_at: i64,
}

/// What one step of a stream's driver changes, stored only if the stream's cursor is
/// still where the step started and the caller still holds the lease.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Progress {
    pub cursor: u64,
    /// Set when events were delivered.
    pub last_seq: Option<u64>,
    /// Added to the counters.
    pub sent: u64,
    pub failed: u64,
    pub last_error: Option<String>,
    pub failing_since: Option<i64>,
    pub alerted: bool,
    /// The receiver refused the stream for good.
    pub disable: bool,
    pub at: i64,
}

/// A map as the JSON object column both backends store.
pub(crate) fn headers_json(h: &BTreeMap<String, String>) -> String {
    serde_json::to_string(h).unwrap_or_else(|_| "{}".into())
}

/// A JSON object column read back (an unreadable one is empty).
pub(crate) fn headers_from(s: String) -> BTreeMap<String, String> {
    serde_json::from_str(&s).unwrap_or_default()
}
