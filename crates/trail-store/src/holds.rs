//! Legal holds: an organization's events kept past retention while a hold covers them
//! (the whole organization, or the events a query in the query language matches),
//! placed and released with a reason and by whom. Retention (`archive::run`) neither
//! archives nor deletes what an active hold covers. Both backends keep them in
//! `legal_holds`; a released hold stays, with who released it and why.

use trail_core::Timestamp;

/// One hold.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LegalHold {
    pub id: i64,
    pub org: String,
    /// `None`: every event of the organization.
    pub query: Option<String>,
    pub reason: String,
    pub placed_by: String,
    pub placed_at: Timestamp,
    pub released_by: Option<String>,
    pub released_at: Option<Timestamp>,
    pub release_reason: Option<String>,
}

impl LegalHold {
    pub fn active(&self) -> bool {
        self.released_at.is_none()
    }
}

/// A hold to place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHold {
    pub org: String,
    pub query: Option<String>,
    pub reason: String,
    pub placed_by: String,
    pub at: Timestamp,
}
