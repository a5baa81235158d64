//! `add-checkpoint` as C2SP `tlog-witness` defines it, without HTTP types: a request
//! body in, a cosignature (or the status and body the spec names) out.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use ed25519_dalek::SigningKey;
use trail_core::{
    checkpoint::{self, Checkpoint, NoteError},
    cosignature::{self, AddCheckpoint},
    merkle,
    policy::Policy,
};

use crate::state::{Kept, State};

/// An answer other than a cosignature: the HTTP status and body the spec names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    /// `text/x.tlog.size` for 409, else `text/plain`.
    pub content_type: &'static str,
    pub body: String,
}

impl Refusal {
    fn new(status: u16, body: impl Into<String>) -> Refusal {
        Refusal { status, content_type: "text/plain; charset=utf-8", body: body.into() + "\n" }
    }
}

/// A witness: its cosigner name and key, the logs it follows (origin → verifier keys)
/// and its state file.
pub struct Witness {
    pub name: String,
    key: SigningKey,
    logs: HashMap<String, Vec<String>>,
    state: Arc<Mutex<State>>,
}

impl Witness {
    /// A witness following the logs of `policy`'s `log` lines.
    pub fn new(name: String, key: SigningKey, policy: &Policy, state: State) -> Witness {
        let mut logs: HashMap<String, Vec<String>> = HashMap::new();
        for l in &policy.logs {
            logs.entry(l.origin.clone()).or_default().push(l.vkey.clone());
        }
        Witness { name, key, logs, state: Arc::new(Mutex::new(state)) }
    }

    /// This witness's verifier key (`tlog-cosignature` v1, Ed25519).
    pub fn verifier_key(&self) -> String {
        cosignature::verifier_key(&self.name, &self.key.verifying_key())
    }

    /// Answers an `add-checkpoint` body at `now` (POSIX seconds): the cosignature line,
    /// or the refusal the spec names.
    pub fn add_checkpoint(&self, body: &str, now: u64) -> Result<String, Refusal> {
        let req = AddCheckpoint::parse(body).map_err(|e| Refusal::new(400, e))?;
        let origin = req.checkpoint.lines().next().unwrap_or_default().to_string();
        let keys = self.logs.get(&origin).ok_or_else(|| Refusal::new(404, format!("unknown log {origin}")))?;
        let cp = self.log_signature(&req.checkpoint, keys)?;
        if req.old > cp.size {
            return Err(Refusal::new(400, format!("old size {} is larger than the checkpoint's {}", req.old, cp.size)));
        }
        let note_body = cosignature::note_body(&req.checkpoint).map_err(|e| Refusal::new(400, e.to_string()))?;
        let cosig = cosignature::cosign(note_body, &self.name, &self.key, now);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let decided = state.advance(&origin, now, |kept| {
            let known = kept.map_or(0, |k| k.size);
            if req.old != known {
                return Err(Refusal { status: 409, content_type: "text/x.tlog.size", body: format!("{known}\n") });
            }
            consistent(&req, &cp, kept)?;
            let note = format!("{}{cosig}", req.checkpoint);
            Ok((Kept { size: cp.size, root: cp.root, note }, cosig.clone()))
        });
        let answer = decided.map_err(|e| Refusal::new(500, format!("the witness's state: {e}")))?;
        if let Err(r) = &answer {
            if r.status == 422 {
                tracing::warn!(origin, size = cp.size, reason = %r.body.trim(), "refused an inconsistent checkpoint");
                let _ = state.refused(&origin, now, r.status, r.body.trim(), body);
            }
        }
        answer
    }

    /// The newest cosigned checkpoint of the log whose origin hashes to `origin_hash`
    /// (lowercase hex SHA-256), with its signatures.
    pub fn checkpoint(&self, origin_hash: &str) -> Option<String> {
        let origin = self.logs.keys().find(|o| cosignature::origin_hash(o) == origin_hash)?;
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.kept(origin).ok().flatten().map(|k| k.note)
    }

    /// How many refusals (422) are kept for `origin`, as evidence of its misbehaviour.
    pub fn refusals(&self, origin: &str) -> u64 {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.refusals(origin).unwrap_or(0)
    }

    /// The newest size cosigned for `origin`.
    pub fn size(&self, origin: &str) -> Option<u64> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.kept(origin).ok().flatten().map(|k| k.size)
    }

    /// The log's signature by one of its trusted keys: 403 when none is there, or one
    /// names a trusted key and fails.
    fn log_signature(&self, note: &str, keys: &[String]) -> Result<Checkpoint, Refusal> {
        for k in keys {
            match checkpoint::verify(note, k) {
                Ok(cp) => return Ok(cp),
                Err(NoteError::NoSignature(_)) => continue,
                Err(NoteError::BadSignature(n)) => {
                    return Err(Refusal::new(403, format!("the signature by {n} does not verify")))
                }
                Err(e) => return Err(Refusal::new(403, e.to_string())),
            }
        }
        Err(Refusal::new(403, "no signature by a key this witness trusts for the log"))
    }
}

/// The spec's consistency rules, against what is kept (422 when one fails).
fn consistent(req: &AddCheckpoint, cp: &Checkpoint, kept: Option<&Kept>) -> Result<(), Refusal> {
    let bad = |m: String| Err(Refusal::new(422, m));
    if cp.size == 0 && cp.root != merkle::empty_root() {
        return bad("a checkpoint of size 0 must have the empty tree's root".into());
    }
    if req.old == 0 {
        if !req.proof.is_empty() {
            return bad("a consistency proof from size 0 must be empty".into());
        }
        return Ok(());
    }
    let Some(kept) = kept else { return bad("nothing kept to be consistent with".into()) };
    if req.old == cp.size {
        if cp.root != kept.root {
            return bad(format!("size {} was cosigned with another root", cp.size));
        }
        return Ok(());
    }
    if !merkle::verify_consistency(req.old, cp.size, &kept.root, &cp.root, &req.proof) {
        return bad(format!("the consistency proof from size {} to {} does not verify", req.old, cp.size));
    }
    Ok(())
}
