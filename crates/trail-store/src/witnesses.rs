//! The installation log's witnesses as the store keeps them (both backends): for each
//! witness of the policy (by its policy name) the size it last cosigned, its last
//! answer, and a lease so that with several servers only one submits to it at a time;
//! and the cosignatures (`tlog-cosignature` lines) of each installation checkpoint.

use trail_core::Timestamp;

crate::named::named! {
    /// A witness's last answer.
    pub enum WitnessStatus {
        /// Never submitted to yet.
        Pending = "pending",
        /// It cosigned the size kept.
        Cosigned = "cosigned",
        /// It refused a checkpoint as inconsistent (422): a finding.
        Refused = "refused",
        /// It does not know the log or does not trust its key (403/404): configuration.
        Misconfigured = "misconfigured",
        /// It did not answer, or answered what the protocol does not allow: retried.
        Unreachable = "unreachable",
    }
}

/// What is kept about one witness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessState {
    /// The policy's name for it.
    pub name: String,
    /// The installation log size it last cosigned (as it told: also from a 409).
    pub size: u64,
    pub status: WitnessStatus,
    /// Its answer or the error, in words.
    pub detail: String,
    /// Failed attempts in a row (for the backoff).
    pub failures: u32,
    /// No submission before this.
    pub retry_at: Timestamp,
    pub updated_at: Timestamp,
}

/// An answer to record (which also releases the lease).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessAnswer {
    pub name: String,
    /// The size it has now cosigned (or told in a 409).
    pub size: u64,
    pub status: WitnessStatus,
    pub detail: String,
    pub failures: u32,
    pub retry_at: Timestamp,
    pub at: Timestamp,
    /// Its cosignature line of the installation checkpoint of `size`.
    pub cosignature: Option<String>,
}
