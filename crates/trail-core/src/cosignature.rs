//! C2SP `tlog-cosignature` (v1, Ed25519): a witness's timestamped statement that a
//! checkpoint is the largest consistent tree it has seen of a log, as one more
//! signed-note signature line. And the request body of C2SP `tlog-witness`'s
//! `add-checkpoint`. The spec's examples are the golden tests.

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::{checkpoint::NoteError, merkle::Hash};

/// The signature type of an Ed25519 cosignature (`cosignature/v1`).
pub const COSIGNATURE_V1: u8 = 0x04;

/// The most consistency proof lines a request may carry.
pub const MAX_PROOF_LINES: usize = 63;

/// `SHA-256(name "\n" 0x04 public_key)[:4]`.
pub fn key_id(name: &str, public: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([COSIGNATURE_V1]);
    h.update(public.as_bytes());
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// A cosigner's verifier key: `name+hex(key id)+base64(0x04 || key)`.
pub fn verifier_key(name: &str, public: &VerifyingKey) -> String {
    let mut raw = vec![COSIGNATURE_V1];
    raw.extend_from_slice(public.as_bytes());
    let id: String = key_id(name, public).iter().map(|b| format!("{b:02x}")).collect();
    format!("{name}+{id}+{}", B64.encode(raw))
}

/// Parses a cosigner's verifier key, checking its type and key id.
pub fn parse_verifier_key(vkey: &str) -> Result<(String, VerifyingKey), NoteError> {
    let bad = |m: &str| NoteError::BadKey(m.to_string());
    let mut parts = vkey.trim().splitn(3, '+');
    let (name, id, raw) = match (parts.next(), parts.next(), parts.next()) {
        (Some(n), Some(k), Some(r)) if !n.is_empty() => (n, k, r),
        _ => return Err(bad("expected name+keyid+key")),
    };
    let raw = B64.decode(raw).map_err(|_| bad("key is not base64"))?;
    if raw.len() != 33 || raw[0] != COSIGNATURE_V1 {
        return Err(bad("not an Ed25519 cosignature key (type 0x04)"));
    }
    let public = VerifyingKey::from_bytes(raw[1..].try_into().map_err(|_| bad("key length"))?)
        .map_err(|_| bad("not a valid Ed25519 point"))?;
    let want: String = key_id(name, &public).iter().map(|b| format!("{b:02x}")).collect();
    if want != id {
        return Err(bad("key id does not match name and key"));
    }
    Ok((name.to_string(), public))
}

/// The signed message: `cosignature/v1`, `time T`, then the checkpoint's note body
/// (with its final newline).
pub fn message(body: &str, timestamp: u64) -> String {
    format!("cosignature/v1\ntime {timestamp}\n{body}")
}

/// The note body of a signed note (through the newline before the blank line).
pub fn note_body(note: &str) -> Result<&str, NoteError> {
    let split = note.find("\n\n").ok_or_else(|| NoteError::Malformed("no blank line before signatures".into()))?;
    Ok(&note[..split + 1])
}

/// A cosignature line over `body` at `timestamp` (POSIX seconds), newline-terminated.
pub fn cosign(body: &str, name: &str, key: &SigningKey, timestamp: u64) -> String {
    let sig = key.sign(message(body, timestamp).as_bytes());
    let mut blob = key_id(name, &key.verifying_key()).to_vec();
    blob.extend_from_slice(&timestamp.to_be_bytes());
    blob.extend_from_slice(&sig.to_bytes());
    format!("\u{2014} {name} {}\n", B64.encode(blob))
}

/// The cosignature of `(name, public)` among a note's signature lines, checked:
/// `Ok(Some(timestamp))` when it verifies, `Ok(None)` when the note carries none by
/// that key, an error when one carries its name and key id but does not verify.
pub fn find(note: &str, name: &str, public: &VerifyingKey) -> Result<Option<u64>, NoteError> {
    let body = note_body(note)?;
    let id = key_id(name, public);
    for line in note[body.len() + 1..].lines() {
        let Some((line_name, b64)) = line.strip_prefix("\u{2014} ").and_then(|r| r.split_once(' ')) else {
            return Err(NoteError::Malformed("a signature line must start with an em dash and a name".into()));
        };
        if line_name != name {
            continue;
        }
        let Ok(blob) = B64.decode(b64) else { continue };
        if blob.len() != 4 + 8 + 64 || blob[..4] != id {
            continue;
        }
        let timestamp = u64::from_be_bytes(blob[4..12].try_into().expect("8 bytes"));
        let sig = Signature::from_bytes(blob[12..].try_into().expect("64 bytes"));
        if timestamp > i64::MAX as u64 || public.verify(message(body, timestamp).as_bytes(), &sig).is_err() {
            return Err(NoteError::BadSignature(name.to_string()));
        }
        return Ok(Some(timestamp));
    }
    Ok(None)
}

/// The signature lines of an `add-checkpoint` answer, each checked to be a note
/// signature line (`— name base64`), newline-terminated.
pub fn parse_response(text: &str) -> Result<Vec<String>, String> {
    if !text.ends_with('\n') {
        return Err("the answer does not end with a newline".into());
    }
    text.lines()
        .map(|l| {
            let (name, b64) =
                l.strip_prefix("\u{2014} ").and_then(|r| r.split_once(' ')).ok_or("not a signature line")?;
            if name.is_empty() || B64.decode(b64).is_err() {
                return Err(format!("not a signature line: {l:?}"));
            }
            Ok(format!("{l}\n"))
        })
        .collect()
}

/// A log's origin hash, as a witness's monitoring path names it: the SHA-256 of the
/// origin, lowercase hex.
pub fn origin_hash(origin: &str) -> String {
    Sha256::digest(origin.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A `tlog-witness` `add-checkpoint` request: the size the witness last cosigned, the
/// consistency proof from it, and the checkpoint (a signed note).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    pub old: u64,
    pub proof: Vec<Hash>,
    pub checkpoint: String,
}

impl AddCheckpoint {
    pub fn to_text(&self) -> String {
        let mut out = format!("old {}\n", self.old);
        crate::tlog_proof::push_hash_lines(&mut out, &self.proof);
        out.push('\n');
        out.push_str(&self.checkpoint);
        out
    }

    /// Reads a request body; the error says what is wrong (the witness answers 400).
    pub fn parse(text: &str) -> Result<AddCheckpoint, String> {
        let (head, checkpoint) = text.split_once("\n\n").ok_or("no empty line before the checkpoint")?;
        let mut lines = head.split('\n');
        let old = lines.next().and_then(|l| l.strip_prefix("old ")).ok_or("the first line is not `old N`")?;
        let old = decimal(old).ok_or("the old size is not a decimal number without leading zeroes")?;
        let proof = crate::tlog_proof::hash_lines(lines)?;
        if proof.len() > MAX_PROOF_LINES {
            return Err(format!("more than {MAX_PROOF_LINES} proof lines"));
        }
        Ok(AddCheckpoint { old, proof, checkpoint: checkpoint.to_string() })
    }
}

/// An ASCII decimal with no leading zeroes (`0` itself allowed).
pub fn decimal(s: &str) -> Option<u64> {
    let canonical = s == "0" || (!s.is_empty() && !s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit()));
    s.parse().ok().filter(|_| canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request body example of `tlog-witness.md`, byte for byte (shared with the
    /// witness's tests).
    const SPEC_REQUEST: &str = include_str!("../testdata/tlog-witness-add-checkpoint.txt");

    /// The cosigned checkpoint example of `tlog-cosignature.md`.
    const SPEC_COSIGNED: &str = "example.com/behind-the-sofa\n\
20852163\n\
CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\
\n\
\u{2014} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n\
\u{2014} witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n";

    #[test]
    fn the_spec_request_example_parses_and_round_trips() {
        let r = AddCheckpoint::parse(SPEC_REQUEST).unwrap();
        assert_eq!((r.old, r.proof.len()), (20852014, 4));
        assert!(r.checkpoint.starts_with("example.com/behind-the-sofa\n20852163\n"));
        assert_eq!(r.to_text(), SPEC_REQUEST);
        for bad in [
            SPEC_REQUEST.replacen("old 20852014", "old 020852014", 1),
            SPEC_REQUEST.replacen("old 20852014", "old -1", 1),
            SPEC_REQUEST.replacen("old ", "size ", 1),
            SPEC_REQUEST.replacen("PlRNCrwH", "!lRNCrwH", 1),
            SPEC_REQUEST.replacen("\n\nexample", "\nexample", 1).replacen("\n\n\u{2014}", "\n\u{2014}", 1),
        ] {
            assert!(AddCheckpoint::parse(&bad).is_err(), "{bad}");
        }
        let many = format!("old 1\n{}\nx\n", "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n".repeat(64));
        assert!(AddCheckpoint::parse(&many).unwrap_err().contains("63"));
    }

    #[test]
    fn the_spec_cosignature_example_has_the_spec_layout() {
        // The witness's key is not in the spec, so its signature cannot be checked;
        // its layout can: key id, a big-endian timestamp, a 64-byte signature.
        let line = SPEC_COSIGNED.lines().last().unwrap();
        let blob = B64.decode(line.rsplit(' ').next().unwrap()).unwrap();
        assert_eq!(blob.len(), 4 + 8 + 64);
        let t = u64::from_be_bytes(blob[4..12].try_into().unwrap());
        assert_eq!(t, 1679315147, "the timestamp of the spec's signed-message example");
        assert_eq!(note_body(SPEC_COSIGNED).unwrap().lines().count(), 3);
        // A key of that name that did not sign it: the line is not counted as its.
        let other = SigningKey::from_bytes(&[1; 32]).verifying_key();
        assert_eq!(find(SPEC_COSIGNED, "witness.example.com/w1", &other).unwrap(), None);
    }

    /// The response body example of `tlog-witness.md`.
    const SPEC_RESPONSE: &str = "\u{2014} witness.example/w1 CMp+6LWBU0anHGH5aNDTJkH/gj79sG+T6+iP2ThYN5krrDJbR1HDnucjL39QsZTSvVjyQLrdk3DXDqI5G2HgLatVs0pWh6Up69HVOw==\n\
\u{2014} witness.example/w1 I7rEps0pvK2UqkS2gSpVUDhrhVtQV9lgF6pRrWAvjJHjyWpW7VcE3SiOlVlbQNt64vWhO+DlkL0+UfzuOBMh9ChdMkP1vi/lCAsmlw==\n\
\u{2014} witness.example/w2 AWui8Sk55XjYLOijihBjhqEH6nS1ndDymE0a+6idX7pLcnoB+dhnz0854aLZgrrKbYKA7nC3HNJhm/kWl7oJlqU3rXXvpysAdyP3wQ==\n";

    #[test]
    fn the_spec_response_example_parses() {
        let lines = parse_response(SPEC_RESPONSE).unwrap();
        assert_eq!(lines.len(), 3);
        assert!(lines.iter().all(|l| B64.decode(l.trim_end().rsplit(' ').next().unwrap()).unwrap().len() == 76));
        // Concatenated to the checkpoint, a client ignores the keys it does not know.
        let note = format!("{}{}", SPEC_REQUEST.split_once("\n\n").unwrap().1, lines.concat());
        let unknown = SigningKey::from_bytes(&[8; 32]).verifying_key();
        assert_eq!(find(&note, "witness.example/w1", &unknown).unwrap(), None);
        assert!(parse_response("\u{2014} w1 AAAA").is_err(), "no final newline");
        assert!(parse_response("w1 AAAA\n").is_err());
    }

    #[test]
    fn the_signed_message_is_the_spec_one() {
        let body = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        assert_eq!(
            message(body, 1679315147),
            "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
        );
    }

    #[test]
    fn cosignatures_verify_and_edits_do_not() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let vkey = verifier_key("witness.test/w1", &key.verifying_key());
        let (name, public) = parse_verifier_key(&vkey).unwrap();
        let body = "trail.test/checkpoints\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
        let note = format!("{body}\n\u{2014} trail.test/checkpoints x\n{}", cosign(body, &name, &key, 1_700_000_000));
        assert_eq!(find(&note, &name, &public).unwrap(), Some(1_700_000_000));
        let edited = note.replacen("\n3\n", "\n4\n", 1);
        assert!(matches!(find(&edited, &name, &public), Err(NoteError::BadSignature(_))));
        assert!(parse_verifier_key(&crate::checkpoint::verifier_key("w", &key.verifying_key())).is_err(), "type 0x01");
        assert!(parse_verifier_key(&vkey.replacen("witness.test/w1", "witness.test/w2", 1)).is_err());
    }
}
