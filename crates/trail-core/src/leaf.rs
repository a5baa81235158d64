//! One borrowed view of a stored event's bytes (the compact JSON `Event::to_leaf`
//! writes): the fields that the verifier compares with a row, that the CSV columns
//! show and that the SIEM formats send, borrowed where they hold no escape, with the
//! rest (before/after, free context) stepped over without being built.
//!
//! `LeafView::read` tries the scanner in `leaf_scan` first and falls back to serde,
//! which reads the same struct; the scanner answers exactly what serde answers or gives
//! way, so a reader never needs to know which of the two read an event.

use std::borrow::Cow;

use serde::Deserialize;

use crate::{event::split_action, Outcome, Timestamp};

/// The fields of one stored event that readers of stored bytes need. Values are kept as
/// stored (times and ids as text); the accessors below parse them.
#[derive(Debug, Deserialize, PartialEq)]
pub struct LeafView<'a> {
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
    pub actor: Option<LeafParty<'a>>,
    #[serde(borrow, default)]
    pub resource: Option<LeafParty<'a>>,
    #[serde(borrow, default)]
    pub context: Option<LeafContext<'a>>,
    #[serde(borrow, default)]
    pub source_ip: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub user_agent: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub request_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub idempotency_key: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub error: Option<Cow<'a, str>>,
    /// The details object as stored (`None` when absent or null).
    #[serde(borrow, default, deserialize_with = "raw")]
    pub details: Option<&'a str>,
}

/// An actor, a resource or a workspace: the identifying fields (`type` is a resource's
/// kind or an actor's type).
#[derive(Debug, Default, Deserialize, PartialEq)]
pub struct LeafParty<'a> {
    #[serde(borrow, default)]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub email: Option<Cow<'a, str>>,
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<Cow<'a, str>>,
}

/// Where an event happened, as far as rows index it.
#[derive(Debug, Default, Deserialize, PartialEq)]
pub struct LeafContext<'a> {
    #[serde(borrow, default)]
    pub workspace: Option<LeafParty<'a>>,
    #[serde(borrow, default)]
    pub project: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub cluster: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub namespace: Option<Cow<'a, str>>,
}

fn raw<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de str>, D::Error> {
    let v: &'de serde_json::value::RawValue = Deserialize::deserialize(d)?;
    Ok(Some(v.get()).filter(|s| *s != "null"))
}

impl<'a> LeafView<'a> {
    /// Reads stored bytes: the scanner, or serde where the scanner gives way (serde
    /// then also names what is wrong with a malformed event).
    pub fn read(leaf: &'a [u8]) -> Result<LeafView<'a>, serde_json::Error> {
        match crate::leaf_scan::scan(leaf) {
            Some(view) => Ok(view),
            None => serde_json::from_slice(leaf),
        }
    }

    /// `category` of `category:operation`.
    pub fn category(&self) -> &str {
        split_action(&self.action).0
    }

    pub fn operation(&self) -> &str {
        split_action(&self.action).1
    }

    /// The result, as the event model reads it (`None` if it is none of the four).
    pub fn outcome(&self) -> Option<Outcome> {
        Outcome::parse(&self.result)
    }

    pub fn failed(&self) -> bool {
        self.result == "FAILED"
    }

    /// When it happened, in microseconds since the epoch (`None` when unreadable).
    pub fn time(&self) -> Option<i64> {
        Timestamp::parse_rfc3339(&self.timestamp).ok().map(|t| t.0)
    }

    /// When Trail received it, in microseconds since the epoch.
    pub fn received(&self) -> Option<i64> {
        Timestamp::parse_rfc3339(&self.received_at).ok().map(|t| t.0)
    }
}
