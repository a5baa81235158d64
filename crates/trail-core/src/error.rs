//! The one error type of the core: a problem with one named field of the input.

/// A validation failure that names the offending field, so that an API answer or a CLI
/// message can tell the user exactly what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// Dotted path of the field in the input, e.g. `events[3].actor.email` or `cursor`.
    pub field: String,
    /// Lowercase, human-readable reason without a final period.
    pub message: String,
    /// Stable machine-readable code (`code` of the API's error body).
    pub code: FieldCode,
}

/// What kind of problem a field has, as the API's error body names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldCode {
    /// A value that is not acceptable (the default).
    InvalidField,
    MissingField,
    /// A field an event does not have.
    UnknownField,
    /// A query parameter or filter key that is not one.
    UnknownFilter,
    InvalidCursor,
    /// A key given twice in one JSON object.
    DuplicateKey,
    /// An event, batch or body over its size limit (HTTP 413).
    TooLarge,
    /// A period older than the online query window reaches.
    BeyondOnlineWindow,
}

impl FieldCode {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldCode::InvalidField => "invalid_field",
            FieldCode::MissingField => "missing_field",
            FieldCode::UnknownField => "unknown_field",
            FieldCode::UnknownFilter => "unknown_filter",
            FieldCode::InvalidCursor => "invalid_cursor",
            FieldCode::DuplicateKey => "duplicate_key",
            FieldCode::TooLarge => "too_large",
            FieldCode::BeyondOnlineWindow => "beyond_online_window",
        }
    }
}

impl std::fmt::Display for FieldCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { field: field.into(), message: message.into(), code: FieldCode::InvalidField }
    }

    pub fn with_code(self, code: FieldCode) -> Self {
        FieldError { code, ..self }
    }

    /// Prefixes the field path, used when a batch reports which event was wrong.
    pub fn within(self, prefix: &str) -> Self {
        let field = if self.field.is_empty() {
            prefix.to_string()
        } else if self.field.starts_with('[') {
            format!("{prefix}{}", self.field)
        } else {
            format!("{prefix}.{}", self.field)
        };
        FieldError { field, ..self }
    }
}
