//! The key that signs each organization's checkpoints, shared by both backends.

use ed25519_dalek::SigningKey;

/// The key that signs checkpoints, and the installation name that prefixes each
/// organization's log origin (`<name>/<org>`).
pub struct LogSigner {
    pub name: String,
    pub key: SigningKey,
}

impl std::fmt::Debug for LogSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSigner").field("name", &self.name).finish_non_exhaustive()
    }
}

impl LogSigner {
    pub fn origin(&self, org: &str) -> String {
        format!("{}/{org}", self.name)
    }
}
