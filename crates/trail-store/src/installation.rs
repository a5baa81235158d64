//! The installation log: one more Merkle log, of every organization checkpoint Trail
//! signed, so that witnesses can follow one log for an installation of many
//! organizations. Its origin is `<installation>/checkpoints`; its entries are the
//! SHA-256 of each organization checkpoint's note body (origin, size and root lines),
//! so that it shows another organization's checkpoints as hashes only. Both backends
//! append to it with `Installation::extend_installation`, oldest checkpoints first, in
//! one transaction with the installation checkpoint they sign.

/// The installation log's name after the installation's (`<name>/checkpoints`); no
/// organization may take it.
pub const LOG_NAME: &str = "checkpoints";

/// The organization slugs the installation's own logs take.
pub const RESERVED_SLUGS: [&str; 2] = [LOG_NAME, "_installation"];

/// One entry of the installation log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallationEntry {
    pub index: u64,
    pub org: String,
    /// The organization checkpoint (its signed note).
    pub note: String,
}

impl InstallationEntry {
    /// The entry's bytes: the SHA-256 of the checkpoint's note body.
    pub fn bytes(&self) -> [u8; 32] {
        entry_of(&self.note)
    }
}

/// The installation log's entry for an organization checkpoint: the SHA-256 of its note
/// body (everything before the blank line that starts the signatures).
pub use trail_core::tlog_proof::checkpoint_entry as entry_of;

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    #[test]
    fn an_entry_is_the_hash_of_the_note_body() {
        let note = "trail.test/acme\n3\nAAAA\n\n\u{2014} trail.test/acme sig\n";
        let body: [u8; 32] = Sha256::digest(b"trail.test/acme\n3\nAAAA\n").into();
        assert_eq!(entry_of(note), body);
        assert_ne!(entry_of(&note.replace("\n3\n", "\n4\n")), body);
    }
}
