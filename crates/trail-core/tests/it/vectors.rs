//! Every inclusion and consistency case of `shared/vectors/merkle/` (transparency-dev's
//! test data: valid proofs and deliberately broken ones) through `merkle::verify_*`:
//! a case is accepted exactly when it is not marked `wantErr`.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::Value;
use trail_core::merkle::{verify_consistency, verify_inclusion, Hash};

fn dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors/merkle");
    assert!(d.is_dir(), "the shared proof vectors are missing: {}", d.display());
    d
}

fn cases(kind: &str) -> Vec<(PathBuf, Value)> {
    let mut out = Vec::new();
    let mut stack = vec![dir().join(kind)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json") {
                let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
                out.push((p, v));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A base64 hash, or `None` when it is not 32 bytes (such a case must be refused).
fn hash(v: &Value) -> Option<Hash> {
    let b = base64::engine::general_purpose::STANDARD.decode(v.as_str()?).ok()?;
    b.try_into().ok()
}

/// A root: a verifier only compares roots, so one that is not 32 bytes (a vector's
/// "don't care") is taken by its SHA-256, which keeps equal ones equal.
fn root(v: &Value) -> Option<Hash> {
    let b = base64::engine::general_purpose::STANDARD.decode(v.as_str()?).ok()?;
    match <Hash>::try_from(b.as_slice()) {
        Ok(h) => Some(h),
        Err(_) => Some(trail_core::merkle::leaf_hash(&b)),
    }
}

fn proof(v: &Value) -> Option<Vec<Hash>> {
    match v {
        Value::Null => Some(Vec::new()),
        Value::Array(a) => a.iter().map(hash).collect(),
        _ => None,
    }
}

#[test]
fn inclusion_proofs_are_accepted_exactly_when_valid() {
    let all = cases("inclusion");
    assert!(all.len() > 50, "{} inclusion cases", all.len());
    for (path, c) in all {
        let accepted = (|| {
            let (index, size) = (c["leafIdx"].as_u64()?, c["treeSize"].as_u64()?);
            Some(verify_inclusion(index, size, &hash(&c["leafHash"])?, &proof(&c["proof"])?, &root(&c["root"])?))
        })()
        .unwrap_or(false);
        assert_eq!(accepted, !c["wantErr"].as_bool().unwrap_or(false), "{}: {}", path.display(), c["desc"]);
    }
}

#[test]
fn consistency_proofs_are_accepted_exactly_when_valid() {
    let all = cases("consistency");
    assert!(all.len() > 50, "{} consistency cases", all.len());
    for (path, c) in all {
        let accepted = (|| {
            let (from, to) = (c["size1"].as_u64()?, c["size2"].as_u64()?);
            Some(verify_consistency(from, to, &root(&c["root1"])?, &root(&c["root2"])?, &proof(&c["proof"])?))
        })()
        .unwrap_or(false);
        assert_eq!(accepted, !c["wantErr"].as_bool().unwrap_or(false), "{}: {}", path.display(), c["desc"]);
    }
}
