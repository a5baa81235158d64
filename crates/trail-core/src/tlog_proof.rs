//! C2SP `tlog-proof@v1`: a self-contained, offline-verifiable proof that an entry is in
//! a log, in the text form other transparency tools read: the header line, `extra`
//! (here the entry's exact stored bytes, so that the proof carries what it proves),
//! `index`, the RFC 6962 inclusion proof one base64 hash a line, an empty line, and the
//! signed checkpoint verbatim.

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use sha2::{Digest, Sha256};

use crate::{
    checkpoint::{self, Checkpoint},
    merkle::{self, Hash},
};

/// The first line of every proof.
pub const HEADER: &str = "c2sp.org/tlog-proof@v1";

/// One proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogProof {
    /// Opaque extra data: Trail puts the entry's stored bytes here.
    pub extra: Option<Vec<u8>>,
    pub index: u64,
    pub proof: Vec<Hash>,
    /// The signed checkpoint (a signed note), verbatim.
    pub checkpoint: String,
}

impl TlogProof {
    /// The proof's text.
    pub fn to_text(&self) -> String {
        let mut out = format!("{HEADER}\n");
        if let Some(extra) = &self.extra {
            out.push_str(&format!("extra {}\n", B64.encode(extra)));
        }
        out.push_str(&format!("index {}\n", self.index));
        push_hash_lines(&mut out, &self.proof);
        out.push('\n');
        out.push_str(&self.checkpoint);
        out
    }

    /// Reads a proof's text; the error says what is wrong.
    pub fn parse(text: &str) -> Result<TlogProof, String> {
        let (head, checkpoint) = text.split_once("\n\n").ok_or("no empty line before the checkpoint")?;
        let mut lines = head.split('\n');
        if lines.next() != Some(HEADER) {
            return Err(format!("the first line is not {HEADER}"));
        }
        let mut line = lines.next().ok_or("no index line")?;
        let mut extra = None;
        if let Some(e) = line.strip_prefix("extra ") {
            extra = Some(B64.decode(e).map_err(|e| format!("extra is not base64: {e}"))?);
            line = lines.next().ok_or("no index line")?;
        }
        let index = line.strip_prefix("index ").ok_or("no index line")?;
        let index = crate::cosignature::decimal(index).ok_or("the index is not a decimal number")?;
        let proof = hash_lines(lines)?;
        Ok(TlogProof { extra, index, proof, checkpoint: checkpoint.to_string() })
    }

    /// Checks the proof: the checkpoint signed by `vkey`, and `entry` (else the extra
    /// data) at `index` proved into its root. Answers the checkpoint.
    pub fn verify(&self, entry: Option<&[u8]>, vkey: &str) -> Result<Checkpoint, String> {
        let cp = checkpoint::verify(&self.checkpoint, vkey).map_err(|e| e.to_string())?;
        let entry = entry.or(self.extra.as_deref()).ok_or("no entry to check: the proof carries none")?;
        let leaf = merkle::leaf_hash(entry);
        if !merkle::verify_inclusion(self.index, cp.size, &leaf, &self.proof, &cp.root) {
            return Err(format!("entry {} is not proved into the checkpoint of size {}", self.index, cp.size));
        }
        Ok(cp)
    }
}

/// Proof lines as the C2SP text formats write them: one base64 hash a line.
pub(crate) fn push_hash_lines(out: &mut String, hashes: &[Hash]) {
    for h in hashes {
        out.push_str(&B64.encode(h));
        out.push('\n');
    }
}

/// Proof lines read back; the error names a line that is not a base64 SHA-256 hash.
pub(crate) fn hash_lines<'a>(lines: impl Iterator<Item = &'a str>) -> Result<Vec<Hash>, String> {
    lines
        .map(|l| {
            let b = B64.decode(l).map_err(|_| format!("a proof line is not base64: {l:?}"))?;
            Hash::try_from(b.as_slice()).map_err(|_| "a proof line is not a SHA-256 hash".to_string())
        })
        .collect()
}

/// The installation log's entry for an organization checkpoint: the SHA-256 of its note
/// body (everything before the blank line that starts the signatures).
pub fn checkpoint_entry(note: &str) -> [u8; 32] {
    let body = note.split_once("\n\n").map_or(note, |(b, _)| b);
    let mut h = Sha256::new();
    h.update(body.as_bytes());
    h.update(b"\n");
    h.finalize().into()
}

/// What a proof of an organization checkpoint in the installation log proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInLog {
    /// The organization checkpoint the proof carries.
    pub org: Checkpoint,
    /// Its signed note, as carried.
    pub org_note: String,
    /// The installation checkpoint it proves into.
    pub installation: Checkpoint,
}

impl TlogProof {
    /// Whether this proof is of an organization checkpoint in the installation log (its
    /// extra data is a signed note) rather than of an event (a JSON object).
    pub fn is_checkpoint_proof(&self) -> bool {
        self.extra.as_deref().is_some_and(|e| !e.starts_with(b"{") && e.windows(2).any(|w| w == b"\n\n"))
    }

    /// Checks a proof of an organization checkpoint in the installation log: the extra
    /// data is the organization's signed note (its signature checked with `org_key` when
    /// given), its entry (`checkpoint_entry`) proved into the installation checkpoint
    /// signed by `installation_key`.
    pub fn verify_checkpoint(&self, installation_key: &str, org_key: Option<&str>) -> Result<CheckpointInLog, String> {
        let extra = self.extra.as_deref().ok_or("the proof carries no organization checkpoint")?;
        let note = std::str::from_utf8(extra).map_err(|_| "the carried checkpoint is not text")?.to_string();
        let org = match org_key {
            Some(k) => checkpoint::verify(&note, k).map_err(|e| format!("the organization checkpoint: {e}"))?,
            None => {
                let body = note.split_once("\n\n").map_or(note.as_str(), |(b, _)| b);
                Checkpoint::parse_body(&format!("{body}\n")).map_err(|e| format!("the organization checkpoint: {e}"))?
            }
        };
        let entry = checkpoint_entry(&note);
        let installation = self.verify(Some(&entry), installation_key)?;
        Ok(CheckpointInLog { org, org_note: note, installation })
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;

    use super::*;

    fn log(n: u64) -> (Vec<Vec<u8>>, Vec<Hash>, String, String) {
        let key = SigningKey::from_bytes(&[3; 32]);
        let entries: Vec<Vec<u8>> = (0..n).map(|i| format!("{{\"seq\":{i}}}").into_bytes()).collect();
        let leaves: Vec<Hash> = entries.iter().map(|e| merkle::leaf_hash(e)).collect();
        let cp = Checkpoint { origin: "trail.test/acme".into(), size: n, root: merkle::root(&leaves) };
        let note = checkpoint::sign(&cp, &key);
        (entries, leaves, note, checkpoint::verifier_key("trail.test/acme", &key.verifying_key()))
    }

    #[test]
    fn a_proof_round_trips_and_verifies() {
        let (entries, leaves, note, vkey) = log(13);
        let proof = merkle::inclusion_proof(&mut leaves.as_slice(), 6, 13).unwrap();
        let p = TlogProof { extra: Some(entries[6].clone()), index: 6, proof, checkpoint: note };
        let text = p.to_text();
        assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra "));
        let back = TlogProof::parse(&text).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.verify(None, &vkey).unwrap().size, 13);
        assert!(back.verify(Some(&entries[5]), &vkey).is_err(), "another entry");
        let other = checkpoint::verifier_key("trail.test/acme", &SigningKey::from_bytes(&[4; 32]).verifying_key());
        assert!(back.verify(None, &other).is_err(), "another key");
        let mut moved = back.clone();
        moved.index = 7;
        assert!(moved.verify(None, &vkey).is_err());
    }

    #[test]
    fn a_checkpoint_proves_into_the_installation_log() {
        let (_, _, org_note, org_key) = log(13);
        let inst = SigningKey::from_bytes(&[9; 32]);
        let entries: Vec<Vec<u8>> =
            vec![vec![1; 32], checkpoint_entry(&org_note).to_vec(), checkpoint_entry("x\n1\nAA==\n").to_vec()];
        let leaves: Vec<Hash> = entries.iter().map(|e| merkle::leaf_hash(e)).collect();
        let cp = Checkpoint { origin: "trail.test/checkpoints".into(), size: 3, root: merkle::root(&leaves) };
        let inst_note = checkpoint::sign(&cp, &inst);
        let inst_key = checkpoint::verifier_key("trail.test/checkpoints", &inst.verifying_key());
        let proof = merkle::inclusion_proof(&mut leaves.as_slice(), 1, 3).unwrap();
        let p = TlogProof { extra: Some(org_note.clone().into_bytes()), index: 1, proof, checkpoint: inst_note };
        assert!(p.is_checkpoint_proof());
        let got = p.verify_checkpoint(&inst_key, Some(&org_key)).unwrap();
        assert_eq!((got.org.size, got.installation.size), (13, 3));
        assert!(p.verify_checkpoint(&inst_key, None).is_ok());
        assert!(p.verify_checkpoint(&org_key, None).is_err(), "the organization's key is not the installation's");
        let mut other = p.clone();
        other.index = 0;
        assert!(other.verify_checkpoint(&inst_key, None).is_err());
        let mut forged = p.clone();
        forged.extra = Some(org_note.replace("\n13\n", "\n12\n").into_bytes());
        assert!(forged.verify_checkpoint(&inst_key, None).is_err());
    }

    #[test]
    fn malformed_proofs_are_refused() {
        let (_, leaves, note, _) = log(3);
        let proof = merkle::inclusion_proof(&mut leaves.as_slice(), 0, 3).unwrap();
        let good = TlogProof { extra: None, index: 0, proof, checkpoint: note }.to_text();
        assert!(TlogProof::parse(&good).is_ok());
        for bad in [
            good.replacen("tlog-proof@v1", "tlog-proof@v2", 1),
            good.replacen("index 0", "index 00", 1),
            good.replacen("index 0", "index x", 1),
            good.replacen("\n\n", "\n", 1),
            good.replacen("index 0\n", "index 0\nnot base64!\n", 1),
            good.replacen("index 0\n", "index 0\nAAAA\n", 1),
        ] {
            assert!(TlogProof::parse(&bad).is_err(), "{bad}");
        }
    }
}
