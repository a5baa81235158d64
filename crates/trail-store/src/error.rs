//! The storage error type: what went wrong, typed, so that callers decide by variant
//! (never by message text) and the driver's own error stays reachable as the source.

/// A driver's error, kept as the source of a `StoreError`.
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

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
    /// Another writer held the database past the wait (SQLite's lock, a PostgreSQL
    /// lock timeout or serialization failure): a retry may succeed (503).
    #[error("the database is busy")]
    Busy(#[source] Source),
    /// The write conflicts with what is stored (a unique value taken): a 409.
    #[error("{what} already exists")]
    Conflict {
        what: String,
        #[source]
        source: Source,
    },
    /// The database is unreachable, or a job holds what is asked for: a 503.
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
    /// The database refused an operation for a reason not above: a 500.
    #[error("database error: {0}")]
    Database(#[source] Source),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl From<trail_core::FieldError> for StoreError {
    fn from(e: trail_core::FieldError) -> Self {
        StoreError::Invalid { field: e.field, message: e.message }
    }
}

/// SQLite's errors by kind: busy and locked databases, constraint violations, the
/// rest.
impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Busy(Box::new(e)),
            Some(ErrorCode::ConstraintViolation) => {
                StoreError::Conflict { what: "a row with this unique value".into(), source: Box::new(e) }
            }
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::Corrupt(e.to_string()),
            Some(ErrorCode::DiskFull | ErrorCode::SystemIoFailure | ErrorCode::CannotOpen) => {
                StoreError::Unavailable(e.to_string())
            }
            _ => StoreError::Database(Box::new(e)),
        }
    }
}

/// PostgreSQL's errors by SQLSTATE: a broken connection is `Unavailable`, a unique
/// violation a `Conflict`, lock and serialization failures `Busy`, the rest `Database`.
impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        use tokio_postgres::error::SqlState;
        let Some(code) = e.code().cloned() else {
            return StoreError::Unavailable(e.to_string());
        };
        if e.is_closed() {
            return StoreError::Unavailable(e.to_string());
        }
        match code {
            c if c == SqlState::UNIQUE_VIOLATION => {
                let what = e.as_db_error().and_then(|d| d.constraint()).unwrap_or("a row").to_string();
                StoreError::Conflict { what, source: Box::new(e) }
            }
            c if c == SqlState::T_R_SERIALIZATION_FAILURE
                || c == SqlState::T_R_DEADLOCK_DETECTED
                || c == SqlState::LOCK_NOT_AVAILABLE
                || c == SqlState::QUERY_CANCELED =>
            {
                StoreError::Busy(Box::new(e))
            }
            c if c == SqlState::ADMIN_SHUTDOWN
                || c == SqlState::CANNOT_CONNECT_NOW
                || c == SqlState::TOO_MANY_CONNECTIONS
                || c == SqlState::CRASH_SHUTDOWN =>
            {
                StoreError::Unavailable(e.to_string())
            }
            _ => StoreError::Database(Box::new(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_errors_are_typed_by_code() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY)").unwrap();
        c.execute("INSERT INTO t VALUES ('a')", []).unwrap();
        let dup: StoreError = c.execute("INSERT INTO t VALUES ('a')", []).unwrap_err().into();
        assert!(matches!(dup, StoreError::Conflict { .. }), "{dup:?}");
        assert!(std::error::Error::source(&dup).is_some());
        let bad: StoreError = c.execute("SELECT * FROM missing", []).unwrap_err().into();
        assert!(matches!(bad, StoreError::Database(_)), "{bad:?}");
    }
}
