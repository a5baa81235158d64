//! The signer's rule, shared by both backends: nothing is signed that was not
//! recomputed from the leaf bytes.
//!
//! Before an organization's first signature in a process, its tree is *established*:
//! the newest stored checkpoint must carry this installation's signature and match the
//! stored tree nodes of its size (`base`), and every entry after it is read back — its
//! bytes must name its own seq and organization and hash to the recorded leaf hash —
//! and hashed up from that checkpoint's right edge (`Tail`). The result must equal the
//! stored right edge of the whole tree, and the entries no checkpoint covers must have
//! been received within `MAX_UNSIGNED_SPAN_US` of each other: a longer run means
//! checkpoints were removed (the writer signs within about a second), and signing over
//! it would bless whatever was changed under them.
//!
//! From then on the writer keeps the established right edge in memory and extends it
//! with the leaf bytes it writes itself (or reads back what another process appended),
//! so stored tree nodes are never trusted for a signature again. When anything
//! disagrees, the organization is *refused*: its events are still stored, but nothing
//! is signed for it until the store is repaired and reopened; the reason is kept for
//! `/healthz`, the page and the self-check.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
};

use trail_core::{
    checkpoint,
    merkle::{leaf_hash, Frontier, Hash},
};

use crate::{signer::LogSigner, SignedCheckpoint};

/// The longest stretch of received times that entries no checkpoint covers may span
/// (µs). The writer signs each organization's head within about a second of a commit
/// (and as soon as it is idle); a crash leaves at most that much unsigned. Anything
/// longer is a run of removed checkpoints.
pub const MAX_UNSIGNED_SPAN_US: i64 = 120 * 1_000_000;

/// Why an organization's log is not being signed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Refusal {
    pub org: String,
    pub reason: String,
}

/// What the signer of one store trusts, by organization slug.
#[derive(Debug, Default)]
pub struct Seal {
    /// The right edge of each established tree.
    trusted: Mutex<HashMap<String, Frontier>>,
    /// Organizations refused, with the reason.
    refused: Mutex<BTreeMap<String, String>>,
}

impl Seal {
    /// Every organization whose log is not being signed, and why.
    pub fn refusals(&self) -> Vec<Refusal> {
        self.refused
            .lock()
            .map(|r| r.iter().map(|(org, reason)| Refusal { org: org.clone(), reason: reason.clone() }).collect())
            .unwrap_or_default()
    }

    pub(crate) fn is_refused(&self, org: &str) -> bool {
        self.refused.lock().is_ok_and(|r| r.contains_key(org))
    }

    /// Stops signing `org` (logged once).
    pub(crate) fn refuse(&self, org: &str, reason: String) {
        if let Ok(mut t) = self.trusted.lock() {
            t.remove(org);
        }
        if let Ok(mut r) = self.refused.lock() {
            if !r.contains_key(org) {
                tracing::error!(org, reason = %reason, "the stored log does not agree with its leaves: nothing is signed for it");
                r.insert(org.to_string(), reason);
            }
        }
    }

    /// The established right edge of `org`'s tree, if any.
    pub(crate) fn trusted(&self, org: &str) -> Option<Frontier> {
        self.trusted.lock().ok().and_then(|t| t.get(org).cloned())
    }

    pub(crate) fn set_trusted(&self, org: &str, tree: Frontier) {
        if self.is_refused(org) {
            return;
        }
        if let Ok(mut t) = self.trusted.lock() {
            t.insert(org.to_string(), tree);
        }
    }
}

/// The checkpoint to recompute from: the newest stored one, which must be this
/// installation's, equal to its row and no larger than the log (`size` leaf hashes).
/// `None` when there is none (recompute from the first entry).
pub(crate) fn base(
    signer: &LogSigner,
    org: &str,
    newest: Option<&SignedCheckpoint>,
    size: u64,
) -> Result<Option<(u64, Hash)>, String> {
    let Some(cp) = newest else { return Ok(None) };
    if cp.size > size {
        return Err(format!(
            "a signed checkpoint covers {} entries but the log has {size}: entries from {size} on were removed",
            cp.size
        ));
    }
    let vkey = checkpoint::verifier_key(&signer.origin(org), &signer.key.verifying_key());
    match checkpoint::verify(&cp.note, &vkey) {
        Ok(c) if c.size == cp.size && c.root == cp.root => Ok(Some((c.size, c.root))),
        Ok(c) => Err(format!(
            "the checkpoint of size {}: its stored row differs from its signed note (size {})",
            cp.size, c.size
        )),
        Err(e) => Err(format!("the checkpoint of size {}: {e}", cp.size)),
    }
}

/// What the stored right edge at a checkpoint's size must hash to.
pub(crate) fn check_base(edge: &Frontier, root: &Hash) -> Result<(), String> {
    if edge.root() == *root {
        Ok(())
    } else {
        Err(format!(
            "the stored tree nodes of the first {} entries do not hash to the root their signed checkpoint names",
            edge.size
        ))
    }
}

/// The fields of a leaf the signer checks, borrowed.
#[derive(serde::Deserialize)]
struct LeafHead<'a> {
    seq: u64,
    #[serde(borrow)]
    org: std::borrow::Cow<'a, str>,
    received_at: trail_core::Timestamp,
}

/// Entries after the base, hashed up from its right edge.
pub(crate) struct Tail {
    org: String,
    tree: Frontier,
    /// The earliest and latest received time of the entries read.
    received: Option<(i64, i64)>,
}

impl Tail {
    pub(crate) fn new(org: &str, base: Frontier) -> Tail {
        Tail { org: org.to_string(), tree: base, received: None }
    }

    /// The next seq wanted.
    pub(crate) fn next(&self) -> u64 {
        self.tree.size
    }

    /// Adds entry `seq` from its stored bytes; `recorded` is its stored leaf hash.
    pub(crate) fn push(&mut self, seq: u64, leaf: Option<&[u8]>, recorded: Option<Hash>) -> Result<(), String> {
        if seq != self.tree.size {
            return Err(format!("entry {} is missing", self.tree.size));
        }
        let leaf = leaf.ok_or_else(|| format!("entry {seq}: its stored bytes are missing"))?;
        let head: LeafHead<'_> = serde_json::from_slice(leaf)
            .map_err(|e| format!("entry {seq}: its stored bytes are not an event ({e})"))?;
        if head.seq != seq || head.org != self.org {
            return Err(format!("entry {seq}: its stored JSON names entry {} of {}", head.seq, head.org));
        }
        let hash = leaf_hash(leaf);
        if recorded != Some(hash) {
            return Err(format!("entry {seq}: its bytes differ from its recorded leaf hash"));
        }
        let t = head.received_at.0;
        self.received = Some(self.received.map_or((t, t), |(a, b)| (a.min(t), b.max(t))));
        self.tree.extend(hash);
        Ok(())
    }

    /// The established tree: it must equal the stored right edge, and (with
    /// `unsigned_run`) the entries read must not span more than `MAX_UNSIGNED_SPAN_US`.
    pub(crate) fn finish(self, stored: &Frontier, unsigned_run: bool) -> Result<Frontier, String> {
        if stored.size != self.tree.size || stored.nodes != self.tree.nodes {
            return Err(format!(
                "the stored tree nodes of the log's {} entries differ from the hash of the entries' bytes",
                stored.size
            ));
        }
        if let (true, Some((first, last))) = (unsigned_run, self.received) {
            if last - first > MAX_UNSIGNED_SPAN_US {
                let at = |us: i64| trail_core::Timestamp(us).to_rfc3339();
                return Err(format!(
                    "no checkpoint covers the entries received from {} to {}: checkpoints were removed, and nothing is signed over them",
                    at(first),
                    at(last)
                ));
            }
        }
        Ok(self.tree)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use trail_core::checkpoint::Checkpoint;

    fn signer() -> LogSigner {
        LogSigner { name: "t".into(), key: SigningKey::from_bytes(&[3; 32]) }
    }

    fn leaf(seq: u64, org: &str, received: &str) -> Vec<u8> {
        format!(r#"{{"id":"x","org":"{org}","seq":{seq},"received_at":"{received}"}}"#).into_bytes()
    }

    #[test]
    fn a_checkpoint_not_ours_or_past_the_log_is_refused() {
        let s = signer();
        let cp = |size, key: &SigningKey| {
            let c = Checkpoint { origin: s.origin("acme"), size, root: [1; 32] };
            SignedCheckpoint { size, root: [1; 32], note: checkpoint::sign(&c, key) }
        };
        assert_eq!(base(&s, "acme", Some(&cp(3, &s.key)), 5), Ok(Some((3, [1; 32]))));
        assert!(base(&s, "acme", Some(&cp(6, &s.key)), 5).unwrap_err().contains("entries from 5 on were removed"));
        let other = SigningKey::from_bytes(&[4; 32]);
        assert!(base(&s, "acme", Some(&cp(3, &other)), 5).is_err());
        assert_eq!(base(&s, "acme", None, 5), Ok(None));
    }

    #[test]
    fn the_tail_must_hash_to_the_stored_edge_and_be_recent() {
        let leaves: Vec<Vec<u8>> = (0..3).map(|i| leaf(i, "acme", &format!("2024-01-01T00:0{}:00Z", 2 * i))).collect();
        let mut stored = Frontier::default();
        for l in &leaves {
            stored.extend(leaf_hash(l));
        }
        let mut t = Tail::new("acme", Frontier::default());
        for (i, l) in leaves.iter().enumerate() {
            t.push(i as u64, Some(l), Some(leaf_hash(l))).unwrap();
        }
        // Two minutes apart: as a run with no checkpoint, it is too long.
        let err = t.finish(&stored, true).unwrap_err();
        assert!(err.contains("checkpoints were removed"), "{err}");
        let mut t = Tail::new("acme", Frontier::default());
        t.push(0, Some(&leaves[0]), Some(leaf_hash(&leaves[0]))).unwrap();
        assert!(t.push(2, Some(&leaves[2]), None).unwrap_err().contains("entry 1 is missing"));
        assert!(t.push(1, Some(&leaves[1]), Some([0; 32])).unwrap_err().contains("recorded leaf hash"));
        assert!(t.push(1, Some(&leaf(7, "acme", "2024-01-01T00:00:00Z")), None).unwrap_err().contains("names entry 7"));
        let mut other = Frontier::default();
        other.extend([5; 32]);
        assert!(t.finish(&other, false).unwrap_err().contains("differ from the hash"));
    }
}
