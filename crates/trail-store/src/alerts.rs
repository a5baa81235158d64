//! Alerting's side of the store, as types: rules (the stored settings of built-in
//! rules and the custom ones), destinations, the evaluator's position and state per
//! organization, and deliveries (persisted before they are attempted). The rules
//! themselves are evaluated by the server's work layer.

use serde::{Deserialize, Serialize};

/// A rule's stored settings. Built-in rules that were never changed have no row and
/// run with their defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRule {
    pub org: String,
    pub name: String,
    pub enabled: bool,
    /// Custom rules: a query in Trail's query language. Built-in rules: `None`.
    pub query: Option<String>,
    /// Matches within `window_secs` that fire (1: every matching event).
    pub threshold: u32,
    pub window_secs: u32,
    /// `actor`, `ip` or `resource`; `None` counts every match together.
    pub group_by: Option<String>,
    /// After a firing, the same rule and group stays quiet this long.
    pub quiet_secs: u32,
    /// Destination ids; empty: every enabled destination of the organization.
    pub destinations: Vec<i64>,
}

crate::named::named! {
    /// How a destination is reached.
    pub enum DestinationKind {
        /// A signed JSON POST (Standard Webhooks).
        Webhook = "webhook",
        Slack = "slack",
        Discord = "discord",
        Email = "email",
    }
}

/// Where firings are sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    pub id: i64,
    pub org: String,
    pub name: String,
    pub kind: DestinationKind,
    pub url: Option<String>,
    pub recipients: Vec<String>,
    /// Webhook signing secrets (`whsec_…`), newest first; during a rotation every one
    /// signs.
    pub secrets: Vec<String>,
    /// A destination that answered 410 Gone is disabled.
    pub enabled: bool,
    pub created_at: i64,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Waiting for its first or next attempt.
    Pending,
    Delivered,
    /// Given up (24 hours of retries, or the destination is gone).
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> DeliveryStatus {
        match s {
            "delivered" => DeliveryStatus::Delivered,
            "failed" => DeliveryStatus::Failed,
            _ => DeliveryStatus::Pending,
        }
    }
}

/// One message for one destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: i64,
    pub org: String,
    pub rule: String,
    pub destination: i64,
    /// The firing as JSON (what a webhook receives).
    pub payload: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    /// Microseconds: when the next attempt is due (or the lease of one under way ends).
    pub next_at: i64,
    pub last_error: Option<String>,
    pub last_code: Option<i32>,
    pub created_at: i64,
    pub done_at: Option<i64>,
}

/// A delivery to store with the evaluation that fired it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    pub rule: String,
    pub destination: i64,
    pub payload: String,
}

/// How far the evaluator read an organization's log, and its state after that
/// (counting windows, quiet periods, known addresses), as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub cursor: u64,
    pub state: String,
}

/// A JSON array column read back (an unreadable one is empty).
pub(crate) fn json_list<T: serde::de::DeserializeOwned>(s: String) -> Vec<T> {
    serde_json::from_str(&s).unwrap_or_default()
}

/// A list as the JSON array column both backends store.
pub(crate) fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}
