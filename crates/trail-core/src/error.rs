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
    /// Stable machine-readable code, e.g. `invalid_field`, `too_large`, `unknown_filter`.
    pub code: &'static str,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { field: field.into(), message: message.into(), code: "invalid_field" }
    }

    pub fn with_code(self, code: &'static str) -> Self {
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
