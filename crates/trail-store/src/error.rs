//! The storage error type.

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The caller asked for something malformed (a bad cursor, say): a 4xx.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("unknown organization '{0}'")]
    UnknownOrg(String),
    #[error("the database schema is version {found}, newer than this trail supports ({supported}); upgrade trail")]
    SchemaTooNew { found: u32, supported: u32 },
    /// The store is shutting down or its writer stopped.
    #[error("the store is closed")]
    Closed,
    /// The database is unreachable or busy: a 503.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The connection to the database broke while a commit was in flight: the batch may
    /// or may not be stored (a retry with the same idempotency keys stores it once).
    #[error("the outcome of the commit is unknown: {0}")]
    CommitUnknown(String),
    /// Stored data contradicts itself (a missing tree node, say).
    #[error("the store is inconsistent: {0}")]
    Corrupt(String),
    /// An archive file no longer matches what was archived.
    #[error("archive file {path} is damaged: {problem}")]
    Damaged { path: String, problem: String },
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl From<trail_core::FieldError> for StoreError {
    fn from(e: trail_core::FieldError) -> Self {
        StoreError::Invalid { field: e.field, message: e.message }
    }
}
