//! Checkpoints: C2SP `tlog-checkpoint` bodies signed as C2SP `signed-note`s with
//! Ed25519, and the verifier keys that check them. These bytes are what an outside
//! auditor verifies; the golden test pins them.

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::merkle::Hash;

/// A signed tree head of one organization's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's name, e.g. `trail.example.com/acme`; also the signing key's name.
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

/// Why a note or key did not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("malformed verifier key: {0}")]
    BadKey(String),
    #[error("malformed note: {0}")]
    Malformed(String),
    #[error("no signature by key '{0}' on the note")]
    NoSignature(String),
    #[error("the signature by '{0}' does not verify")]
    BadSignature(String),
}

const ED25519: u8 = 0x01;

impl Checkpoint {
    /// `origin "\n" size "\n" base64(root) "\n"`.
    pub fn body(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, B64.encode(self.root))
    }

    pub fn parse_body(body: &str) -> Result<Checkpoint, NoteError> {
        let bad = |m: &str| NoteError::Malformed(m.to_string());
        let mut lines = body.split('\n');
        let origin = lines.next().filter(|o| !o.is_empty()).ok_or_else(|| bad("empty origin line"))?;
        let size =
            lines.next().and_then(|s| s.parse::<u64>().ok()).ok_or_else(|| bad("tree size is not a decimal number"))?;
        let root = lines
            .next()
            .and_then(|r| B64.decode(r).ok())
            .and_then(|r| <Hash>::try_from(r.as_slice()).ok())
            .ok_or_else(|| bad("root hash is not 32 bytes of base64"))?;
        Ok(Checkpoint { origin: origin.to_string(), size, root })
    }
}

/// The first 4 bytes of `SHA-256(name "\n" 0x01 public_key)`.
pub fn key_hash(name: &str, public: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ED25519]);
    h.update(public.as_bytes());
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// The verifier key in signed-note form: `name+hex(key hash)+base64(0x01 || key)`.
pub fn verifier_key(name: &str, public: &VerifyingKey) -> String {
    let mut raw = vec![ED25519];
    raw.extend_from_slice(public.as_bytes());
    let kh: String = key_hash(name, public).iter().map(|b| format!("{b:02x}")).collect();
    format!("{name}+{kh}+{}", B64.encode(raw))
}

/// Parses a verifier key into its name and public key, checking its key hash.
pub fn parse_verifier_key(vkey: &str) -> Result<(String, VerifyingKey), NoteError> {
    let bad = |m: &str| NoteError::BadKey(m.to_string());
    // Names never contain '+'; the base64 key may.
    let mut parts = vkey.trim().splitn(3, '+');
    let (name, kh, raw) = match (parts.next(), parts.next(), parts.next()) {
        (Some(n), Some(k), Some(r)) if !n.is_empty() => (n, k, r),
        _ => return Err(bad("expected name+keyhash+key")),
    };
    let raw = B64.decode(raw).map_err(|_| bad("key is not base64"))?;
    if raw.len() != 33 || raw[0] != ED25519 {
        return Err(bad("not an Ed25519 key"));
    }
    let public = VerifyingKey::from_bytes(raw[1..].try_into().map_err(|_| bad("key length"))?)
        .map_err(|_| bad("not a valid Ed25519 point"))?;
    let want: String = key_hash(name, &public).iter().map(|b| format!("{b:02x}")).collect();
    if want != kh {
        return Err(bad("key hash does not match name and key"));
    }
    Ok((name.to_string(), public))
}

/// Signs a checkpoint: `body "\n" "— " name " " base64(key hash || signature) "\n"`.
pub fn sign(checkpoint: &Checkpoint, key: &SigningKey) -> String {
    let body = checkpoint.body();
    let sig = key.sign(body.as_bytes());
    let mut blob = key_hash(&checkpoint.origin, &key.verifying_key()).to_vec();
    blob.extend_from_slice(&sig.to_bytes());
    format!("{body}\n\u{2014} {} {}\n", checkpoint.origin, B64.encode(blob))
}

/// Verifies a signed note with a verifier key and returns the checkpoint it carries.
pub fn verify(note: &str, vkey: &str) -> Result<Checkpoint, NoteError> {
    let (name, public) = parse_verifier_key(vkey)?;
    let split = note.find("\n\n").ok_or_else(|| NoteError::Malformed("no blank line before signatures".into()))?;
    let (body, sigs) = (&note[..split + 1], &note[split + 2..]);
    let want_hash = key_hash(&name, &public);
    for line in sigs.lines() {
        let Some(rest) = line.strip_prefix("\u{2014} ") else {
            return Err(NoteError::Malformed("signature line must start with an em dash".into()));
        };
        let Some((line_name, b64)) = rest.split_once(' ') else { continue };
        if line_name != name {
            continue;
        }
        let Ok(blob) = B64.decode(b64) else { continue };
        if blob.len() != 68 || blob[..4] != want_hash {
            continue;
        }
        let sig = Signature::from_bytes(blob[4..].try_into().map_err(|_| NoteError::Malformed("signature".into()))?);
        public.verify(body.as_bytes(), &sig).map_err(|_| NoteError::BadSignature(name.clone()))?;
        let cp = Checkpoint::parse_body(body)?;
        if cp.origin != name {
            return Err(NoteError::Malformed("origin differs from the key's name".into()));
        }
        return Ok(cp);
    }
    Err(NoteError::NoSignature(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    /// The checkpoint and verifier-key bytes are a wire format: pinned.
    #[test]
    fn golden_note_and_key() {
        let cp = Checkpoint { origin: "trail.example.com/acme".into(), size: 8, root: [0xab; 32] };
        let note = sign(&cp, &key());
        let vkey = verifier_key("trail.example.com/acme", &key().verifying_key());
        assert_eq!(cp.body(), "trail.example.com/acme\n8\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n");
        assert!(note.starts_with(&format!("{}\n\u{2014} trail.example.com/acme ", cp.body())));
        assert!(vkey.starts_with("trail.example.com/acme+"));
        assert_eq!(verify(&note, &vkey).unwrap(), cp);
        insta_like(&note, &vkey);
    }

    /// Pins the exact bytes (Ed25519 signatures are deterministic). `TRAIL_BLESS=1`
    /// rewrites the golden files after a deliberate format change.
    fn insta_like(note: &str, vkey: &str) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
        if std::env::var_os("TRAIL_BLESS").is_some() {
            std::fs::write(dir.join("vkey.txt"), format!("{vkey}\n")).unwrap();
            std::fs::write(dir.join("note.txt"), note).unwrap();
        }
        let pinned_vkey = std::fs::read_to_string(dir.join("vkey.txt")).unwrap();
        let pinned_note = std::fs::read_to_string(dir.join("note.txt")).unwrap();
        assert_eq!(vkey, pinned_vkey.trim());
        assert_eq!(note, pinned_note);
    }

    #[test]
    fn tampering_is_caught() {
        let cp = Checkpoint { origin: "t/acme".into(), size: 3, root: [1; 32] };
        let note = sign(&cp, &key());
        let vkey = verifier_key("t/acme", &key().verifying_key());
        for seed in 0..=255u8 {
            // Keys whose base64 holds '+' parse too.
            let k = SigningKey::from_bytes(&[seed; 32]);
            let v = verifier_key("t/acme", &k.verifying_key());
            assert_eq!(parse_verifier_key(&v).unwrap().1, k.verifying_key(), "{v}");
        }
        let forged = note.replacen("\n3\n", "\n4\n", 1);
        assert_eq!(verify(&forged, &vkey), Err(NoteError::BadSignature("t/acme".into())));
        let other = SigningKey::from_bytes(&[9u8; 32]);
        let other_vkey = verifier_key("t/acme", &other.verifying_key());
        assert_eq!(verify(&note, &other_vkey), Err(NoteError::NoSignature("t/acme".into())));
        assert!(parse_verifier_key("nonsense").is_err());
        let mut broken = vkey.clone();
        broken.insert(2, 'x');
        assert!(parse_verifier_key(&broken).is_err());
    }
}
