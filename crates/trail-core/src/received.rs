//! A stream's copy checked offline: the JSON Lines a receiver kept (the stored bytes
//! of an unfiltered stream started at the beginning, in the order received) against a
//! signed checkpoint it received with them. The copy must hold seqs `0..` in order
//! with none missing, and its first `size` entries must hash to the checkpoint's root,
//! so that no entry was edited, dropped, added or reordered. No I/O.

use crate::{
    checkpoint,
    merkle::{leaf_hash, root},
    Event,
};

/// What a copy proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    pub org: String,
    /// Entries the checkpoint proves.
    pub proven: u64,
    /// Entries received after the checkpoint's size (not proven by it).
    pub beyond: u64,
    pub origin: String,
}

/// Checks `lines` against the signed checkpoint `note`, signed by `vkey`.
pub fn verify_copy<'a>(lines: impl Iterator<Item = &'a str>, note: &str, vkey: &str) -> Result<CopyReport, String> {
    let cp = checkpoint::verify(note, vkey).map_err(|e| format!("the checkpoint: {e}"))?;
    let mut hashes = Vec::new();
    let mut org: Option<String> = None;
    for (i, line) in lines.filter(|l| !l.trim().is_empty()).enumerate() {
        let e = Event::from_leaf(line.as_bytes()).map_err(|e| format!("line {}: not an event ({e})", i + 1))?;
        match &org {
            None => org = Some(e.org.clone()),
            Some(o) if *o != e.org => return Err(format!("line {}: an event of {} in a copy of {o}", i + 1, e.org)),
            Some(_) => {}
        }
        let want = hashes.len() as u64;
        if e.seq != want {
            let what = if e.seq > want {
                format!("seqs {want}..{} are missing", e.seq)
            } else {
                "out of order or repeated".into()
            };
            return Err(format!("line {}: seq {} where {want} was due: {what}", i + 1, e.seq));
        }
        hashes.push(leaf_hash(line.as_bytes()));
    }
    let org = org.ok_or("the copy holds no events")?;
    if !cp.origin.ends_with(&format!("/{org}")) {
        return Err(format!("the checkpoint is of log {}, the copy of organization {org}", cp.origin));
    }
    let n = hashes.len() as u64;
    if n < cp.size {
        return Err(format!("the copy ends at seq {}; the checkpoint covers seqs up to {}", n - 1, cp.size - 1));
    }
    if root(&hashes[..cp.size as usize]) != cp.root {
        return Err(format!(
            "the first {} entries do not hash to the checkpoint's root: an entry was edited, removed or reordered",
            cp.size
        ));
    }
    Ok(CopyReport { org, proven: cp.size, beyond: n - cp.size, origin: cp.origin })
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::checkpoint::{sign, verifier_key, Checkpoint};

    fn leaf(seq: u64) -> String {
        format!(
            r#"{{"id":"0190f0e8-0000-7000-8000-{seq:012}","org":"acme","seq":{seq},"timestamp":"2024-03-01T10:00:00Z","received_at":"2024-03-01T10:00:00Z","action":"auth:login","result":"DONE"}}"#
        )
    }

    #[test]
    fn a_whole_copy_proves_and_a_changed_one_does_not() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let vkey = verifier_key("t/acme", &key.verifying_key());
        let lines: Vec<String> = (0..5).map(leaf).collect();
        let hashes: Vec<_> = lines.iter().map(|l| leaf_hash(l.as_bytes())).collect();
        let note = sign(&Checkpoint { origin: "t/acme".into(), size: 4, root: root(&hashes[..4]) }, &key);
        let r = verify_copy(lines.iter().map(String::as_str), &note, &vkey).unwrap();
        assert_eq!((r.proven, r.beyond), (4, 1));
        let mut gap = lines.clone();
        gap.remove(2);
        assert!(verify_copy(gap.iter().map(String::as_str), &note, &vkey).unwrap_err().contains("missing"));
        let mut edited = lines.clone();
        edited[1] = edited[1].replace("DONE", "FAILED");
        assert!(verify_copy(edited.iter().map(String::as_str), &note, &vkey).unwrap_err().contains("edited"));
        let mut swapped = lines.clone();
        swapped.swap(0, 1);
        assert!(verify_copy(swapped.iter().map(String::as_str), &note, &vkey).unwrap_err().contains("due"));
        let short: Vec<&str> = lines.iter().take(3).map(String::as_str).collect();
        assert!(verify_copy(short.into_iter(), &note, &vkey).unwrap_err().contains("covers"));
    }
}
