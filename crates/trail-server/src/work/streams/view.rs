//! The fields of a stored event the SIEM formats need, borrowed from its stored bytes
//! (the rest, such as details and before/after, is skipped without being built), so
//! that formatting an event costs little more than reading it once.

use std::borrow::Cow;

use serde::Deserialize;
use trail_core::Timestamp;

#[derive(Debug, Deserialize)]
pub struct View<'a> {
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    #[serde(borrow)]
    pub org: Cow<'a, str>,
    pub seq: u64,
    #[serde(borrow)]
    pub timestamp: Cow<'a, str>,
    #[serde(borrow)]
    pub received_at: Cow<'a, str>,
    #[serde(borrow)]
    pub action: Cow<'a, str>,
    #[serde(borrow)]
    pub result: Cow<'a, str>,
    #[serde(default)]
    pub status_code: Option<u16>,
    #[serde(borrow, default)]
    pub actor: Option<Actor<'a>>,
    #[serde(borrow, default)]
    pub resource: Option<Resource<'a>>,
    #[serde(borrow, default)]
    pub source_ip: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub user_agent: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub request_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub error: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Actor<'a> {
    #[serde(borrow, default)]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub email: Option<Cow<'a, str>>,
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Resource<'a> {
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
}

impl<'a> View<'a> {
    pub fn read(leaf: &'a [u8]) -> Result<View<'a>, serde_json::Error> {
        serde_json::from_slice(leaf)
    }

    /// `category` of `category:operation`.
    pub fn category(&self) -> &str {
        self.action.split_once(':').map_or(&self.action, |(c, _)| c)
    }

    pub fn operation(&self) -> &str {
        self.action.split_once(':').map_or("", |(_, o)| o)
    }

    pub fn failed(&self) -> bool {
        self.result == "FAILED"
    }

    /// Microseconds since the epoch (0 when unreadable).
    pub fn time(&self) -> i64 {
        Timestamp::parse_rfc3339(&self.timestamp).map(|t| t.0).unwrap_or(0)
    }

    pub fn received(&self) -> i64 {
        Timestamp::parse_rfc3339(&self.received_at).map(|t| t.0).unwrap_or(0)
    }
}
