//! Evidence files (`format=evidence`): JSON Lines whose first line carries a signed
//! checkpoint and its verifier key, and every other line one event's exact stored
//! bytes with its inclusion proof into that checkpoint. Anyone can check one with
//! SHA-256 and Ed25519 alone; `verify` is that check.

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use serde::{Deserialize, Serialize};

use crate::{
    checkpoint::{self, Checkpoint},
    merkle::{self, Hash},
    tlog_proof::TlogProof,
};

pub const FORMAT: &str = "trail-evidence/1";

/// The first line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub checkpoint: String,
    pub verifier_key: String,
    /// The checkpoint's place in the installation log, as a C2SP tlog-proof whose extra
    /// data is the checkpoint (absent until it is appended there, and in older files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installation: Option<String>,
}

/// Every other line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub index: u64,
    /// The event's stored JSON bytes, as a JSON string.
    pub leaf: String,
    pub proof: Vec<String>,
}

impl Entry {
    pub fn new(index: u64, leaf: &[u8], proof: &[Hash]) -> Entry {
        Entry {
            index,
            leaf: String::from_utf8_lossy(leaf).into_owned(),
            proof: proof.iter().map(|h| B64.encode(h)).collect(),
        }
    }
}

/// What a successful check covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub checkpoint: Checkpoint,
    pub entries: u64,
    /// The installation checkpoint the file's checkpoint was proved into (only when an
    /// installation key was given).
    pub installation: Option<Checkpoint>,
    /// Whether the file carries a proof into the installation log.
    pub carries_installation: bool,
}

/// The first problem found, with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct Problem {
    pub line: usize,
    pub message: String,
}

/// Checks an evidence file given as lines. With `key`, the checkpoint must be signed
/// by that verifier key (and the file's own key must be the same); without, the file's
/// key is used, which proves the file is consistent but not who signed it.
pub fn verify<'a>(lines: impl Iterator<Item = &'a str>, key: Option<&str>) -> Result<Report, Problem> {
    verify_with(lines, key, None)
}

/// `verify`, and with `installation_key`, the file's proof that its checkpoint is in
/// the installation log signed by that key (a file without one is refused).
pub fn verify_with<'a>(
    mut lines: impl Iterator<Item = &'a str>,
    key: Option<&str>,
    installation_key: Option<&str>,
) -> Result<Report, Problem> {
    let bad = |line: usize, message: String| Problem { line, message };
    let first = lines.next().ok_or_else(|| bad(1, "the file is empty".into()))?;
    let header: Header = serde_json::from_str(first).map_err(|e| bad(1, format!("not an evidence header ({e})")))?;
    if header.format != FORMAT {
        return Err(bad(1, format!("format is '{}', expected '{FORMAT}'", header.format)));
    }
    if let Some(k) = key {
        if k.trim() != header.verifier_key {
            return Err(bad(1, "the file's verifier key is not the one given".into()));
        }
    }
    let cp = checkpoint::verify(&header.checkpoint, &header.verifier_key).map_err(|e| bad(1, e.to_string()))?;
    let installation = match (installation_key, &header.installation) {
        (None, _) => None,
        (Some(_), None) => return Err(bad(1, "the file carries no proof into the installation log".into())),
        (Some(k), Some(text)) => {
            let p = TlogProof::parse(text).map_err(|e| bad(1, format!("the installation proof: {e}")))?;
            let got = p.verify_checkpoint(k, None).map_err(|e| bad(1, format!("the installation proof: {e}")))?;
            if got.org != cp {
                return Err(bad(1, "the installation proof is for another checkpoint".into()));
            }
            Some(got.installation)
        }
    };
    let carries_installation = header.installation.is_some();
    let mut entries = 0;
    for (i, line) in lines.enumerate() {
        let n = i + 2;
        if line.trim().is_empty() {
            continue;
        }
        let e: Entry = serde_json::from_str(line).map_err(|err| bad(n, format!("not an evidence entry ({err})")))?;
        let proof: Vec<Hash> = e
            .proof
            .iter()
            .map(|p| B64.decode(p).ok().and_then(|b| <Hash>::try_from(b.as_slice()).ok()))
            .collect::<Option<_>>()
            .ok_or_else(|| bad(n, "a proof hash is not 32 bytes of base64".into()))?;
        let leaf = merkle::leaf_hash(e.leaf.as_bytes());
        if !merkle::verify_inclusion(e.index, cp.size, &leaf, &proof, &cp.root) {
            return Err(bad(n, format!("entry {} does not prove into the checkpoint (size {})", e.index, cp.size)));
        }
        let seq = serde_json::from_str::<serde_json::Value>(&e.leaf).ok().and_then(|v| v["seq"].as_u64());
        if seq != Some(e.index) {
            return Err(bad(n, format!("entry {}: the event's seq is not its index", e.index)));
        }
        entries += 1;
    }
    Ok(Report { checkpoint: cp, entries, installation, carries_installation })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn file(n: u64) -> (Vec<String>, String) {
        let key = SigningKey::from_bytes(&[1; 32]);
        let leaves: Vec<String> = (0..n).map(|i| format!("{{\"id\":\"x\",\"org\":\"acme\",\"seq\":{i}}}")).collect();
        let hashes: Vec<Hash> = leaves.iter().map(|l| merkle::leaf_hash(l.as_bytes())).collect();
        let cp = Checkpoint { origin: "t/acme".into(), size: n, root: merkle::root(&hashes) };
        let vkey = checkpoint::verifier_key("t/acme", &key.verifying_key());
        let header = Header {
            format: FORMAT.into(),
            checkpoint: checkpoint::sign(&cp, &key),
            verifier_key: vkey.clone(),
            installation: None,
        };
        let mut lines = vec![serde_json::to_string(&header).unwrap()];
        let mut src: &[Hash] = &hashes;
        for i in [0, 3, n - 1] {
            let proof = merkle::inclusion_proof(&mut src, i, n).unwrap();
            lines.push(serde_json::to_string(&Entry::new(i, leaves[i as usize].as_bytes(), &proof)).unwrap());
        }
        (lines, vkey)
    }

    #[test]
    fn good_files_verify_and_edits_are_caught() {
        let (lines, vkey) = file(9);
        let r = verify(lines.iter().map(String::as_str), Some(&vkey)).unwrap();
        assert_eq!((r.entries, r.checkpoint.size), (3, 9));
        let mut edited = lines.clone();
        edited[2] = edited[2].replace("\\\"seq\\\":3", "\\\"seq\\\":4");
        assert_eq!(verify(edited.iter().map(String::as_str), Some(&vkey)).unwrap_err().line, 3);
        let mut moved = lines.clone();
        moved[2] = moved[2].replace("\"index\":3", "\"index\":2");
        assert_eq!(verify(moved.iter().map(String::as_str), None).unwrap_err().line, 3);
        let other = checkpoint::verifier_key("t/acme", &SigningKey::from_bytes(&[2; 32]).verifying_key());
        assert_eq!(verify(lines.iter().map(String::as_str), Some(&other)).unwrap_err().line, 1);
        assert!(verify(["{}"].into_iter(), None).is_err());
        assert!(verify(std::iter::empty(), None).is_err());
    }
}
