//! C2SP `tlog-policy`: the logs a verifier accepts, the witnesses it knows (with the
//! URLs a log submits to), and the quorum of cosignatures a checkpoint needs. One file
//! serves Trail (where to submit), `trail witness serve` (which logs to follow) and
//! `trail verify --policy` (what to accept).

use std::collections::{BTreeSet, HashMap};

use ed25519_dalek::VerifyingKey;

use crate::{
    checkpoint::{self, Checkpoint},
    cosignature,
};

/// A log the policy accepts: its origin (the key's name) and verifier key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyLog {
    pub origin: String,
    pub vkey: String,
    pub url: Option<String>,
}

/// A witness: the policy's name for it, its cosigner name and key, and where it takes
/// `add-checkpoint` (its submission prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyWitness {
    pub name: String,
    pub key_name: String,
    pub key: VerifyingKey,
    pub vkey: String,
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Member {
    Witness(usize),
    Group(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    k: usize,
    members: Vec<Member>,
}

/// A parsed policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub logs: Vec<PolicyLog>,
    pub witnesses: Vec<PolicyWitness>,
    groups: Vec<Group>,
    /// `None`: `quorum none`.
    quorum: Option<Member>,
}

/// The quorum rule as a tree, for clients that check cosignatures themselves (the
/// page): a witness's policy name, or at least `k` of the members.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum QuorumTree {
    Witness(String),
    Group { k: usize, of: Vec<QuorumTree> },
}

/// What a checkpoint checked under a policy carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witnessed {
    pub checkpoint: Checkpoint,
    /// The policy names of the witnesses whose cosignatures verified.
    pub cosigners: Vec<String>,
    /// Whether they meet the quorum.
    pub quorum: bool,
}

impl Policy {
    /// Reads a policy; the error names the line.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let mut p = Policy { logs: vec![], witnesses: vec![], groups: vec![], quorum: None };
        let mut names: HashMap<String, Member> = HashMap::new();
        let mut quorum_seen = false;
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.trim_matches([' ', '\t']);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let words: Vec<&str> = line.split([' ', '\t']).filter(|w| !w.is_empty()).collect();
            let bad = |m: String| format!("line {n}: {m}");
            match words[0] {
                "log" => {
                    let (vkey, url) = match words[1..] {
                        [v] => (v, None),
                        [v, u] => (v, Some(u.to_string())),
                        _ => return Err(bad("expected `log <vkey> [<url>]`".into())),
                    };
                    let (origin, key) = checkpoint::parse_verifier_key(vkey).map_err(|e| bad(e.to_string()))?;
                    if p.logs.iter().any(|l| checkpoint::parse_verifier_key(&l.vkey).is_ok_and(|(_, k)| k == key)) {
                        return Err(bad("a duplicate log key".into()));
                    }
                    p.logs.push(PolicyLog { origin, vkey: vkey.to_string(), url });
                }
                "witness" => {
                    let (name, vkey, url) = match words[1..] {
                        [name, v] => (name, v, None),
                        [name, v, u] => (name, v, Some(u.trim_end_matches('/').to_string())),
                        _ => return Err(bad("expected `witness <name> <vkey> [<url>]`".into())),
                    };
                    if name == "none" || names.contains_key(name) {
                        return Err(bad(format!("the name {name} is taken")));
                    }
                    let (key_name, key) = cosignature::parse_verifier_key(vkey).map_err(|e| bad(e.to_string()))?;
                    if p.witnesses.iter().any(|w| w.key == key) {
                        return Err(bad("a duplicate witness key".into()));
                    }
                    names.insert(name.to_string(), Member::Witness(p.witnesses.len()));
                    p.witnesses.push(PolicyWitness {
                        name: name.to_string(),
                        key_name,
                        key,
                        vkey: vkey.to_string(),
                        url,
                    });
                }
                "group" => {
                    let [_, name, k, ref members @ ..] = words[..] else {
                        return Err(bad("expected `group <name> <all|any|k> <name>...`".into()));
                    };
                    if members.is_empty() {
                        return Err(bad("a group needs at least one member".into()));
                    }
                    if name == "none" || names.contains_key(name) {
                        return Err(bad(format!("the name {name} is taken")));
                    }
                    let k = match k {
                        "all" => members.len(),
                        "any" => 1,
                        k => cosignature::decimal(k)
                            .map(|k| k as usize)
                            .filter(|k| (1..=members.len()).contains(k))
                            .ok_or_else(|| {
                                bad(format!("the threshold {k} is not all, any or 1..={}", members.len()))
                            })?,
                    };
                    let members = members
                        .iter()
                        .map(|m| names.get(*m).cloned().ok_or_else(|| bad(format!("{m} is not defined above"))))
                        .collect::<Result<Vec<_>, _>>()?;
                    names.insert(name.to_string(), Member::Group(p.groups.len()));
                    p.groups.push(Group { k, members });
                }
                "quorum" => {
                    let [_, name] = words[..] else { return Err(bad("expected `quorum <name>`".into())) };
                    if quorum_seen {
                        return Err(bad("a second quorum line".into()));
                    }
                    quorum_seen = true;
                    p.quorum = match name {
                        "none" => None,
                        _ => Some(names.get(name).cloned().ok_or_else(|| bad(format!("{name} is not defined above")))?),
                    };
                }
                other => return Err(bad(format!("unknown keyword {other}"))),
            }
        }
        if !quorum_seen {
            return Err("the policy has no quorum line".into());
        }
        Ok(p)
    }

    /// Whether the witnesses named (policy names) meet the quorum.
    pub fn quorum_met(&self, cosigners: &BTreeSet<&str>) -> bool {
        match &self.quorum {
            None => true,
            Some(m) => self.member_met(m, cosigners),
        }
    }

    fn member_met(&self, m: &Member, cosigners: &BTreeSet<&str>) -> bool {
        match m {
            Member::Witness(i) => cosigners.contains(self.witnesses[*i].name.as_str()),
            Member::Group(g) => {
                let g = &self.groups[*g];
                g.members.iter().filter(|m| self.member_met(m, cosigners)).count() >= g.k
            }
        }
    }

    /// The rule as a tree (`None`: `quorum none`).
    pub fn quorum_tree(&self) -> Option<QuorumTree> {
        self.quorum.as_ref().map(|m| self.tree(m))
    }

    fn tree(&self, m: &Member) -> QuorumTree {
        match m {
            Member::Witness(i) => QuorumTree::Witness(self.witnesses[*i].name.clone()),
            Member::Group(g) => {
                let g = &self.groups[*g];
                QuorumTree::Group { k: g.k, of: g.members.iter().map(|m| self.tree(m)).collect() }
            }
        }
    }

    /// The rule in words, e.g. "2 of w1, w2, w3".
    pub fn describe_quorum(&self) -> String {
        match &self.quorum {
            None => "none".into(),
            Some(m) => self.describe(m),
        }
    }

    fn describe(&self, m: &Member) -> String {
        match m {
            Member::Witness(i) => self.witnesses[*i].name.clone(),
            Member::Group(g) => {
                let g = &self.groups[*g];
                let names: Vec<String> = g.members.iter().map(|m| self.describe(m)).collect();
                format!("{} of ({})", g.k, names.join(", "))
            }
        }
    }

    /// The log of `origin` the policy accepts.
    pub fn log(&self, origin: &str) -> Option<&PolicyLog> {
        self.logs.iter().find(|l| l.origin == origin)
    }

    /// Checks a checkpoint: signed by one of the policy's logs, with the cosignatures of
    /// its witnesses counted (a cosignature that carries a known key but does not
    /// verify is an error).
    pub fn check(&self, note: &str) -> Result<Witnessed, String> {
        let origin = note.lines().next().unwrap_or_default();
        let log = self.log(origin).ok_or_else(|| format!("the policy names no log {origin}"))?;
        let checkpoint = checkpoint::verify(note, &log.vkey).map_err(|e| e.to_string())?;
        let mut cosigners = Vec::new();
        for w in &self.witnesses {
            if cosignature::find(note, &w.key_name, &w.key).map_err(|e| format!("witness {}: {e}", w.name))?.is_some() {
                cosigners.push(w.name.clone());
            }
        }
        let quorum = self.quorum_met(&cosigners.iter().map(String::as_str).collect());
        Ok(Witnessed { checkpoint, cosigners, quorum })
    }

    /// `check`, refusing a checkpoint short of the quorum (the error names who did
    /// cosign it and the rule).
    pub fn accept(&self, note: &str) -> Result<Witnessed, String> {
        let w = self.check(note)?;
        if !w.quorum {
            let who = if w.cosigners.is_empty() { "no witness".to_string() } else { w.cosigners.join(", ") };
            return Err(format!(
                "checkpoint {} of size {} is not witnessed: cosigned by {who}; the policy needs {}",
                w.checkpoint.origin,
                w.checkpoint.size,
                self.describe_quorum()
            ));
        }
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::merkle;

    fn wkey(i: u8) -> (SigningKey, String) {
        let k = SigningKey::from_bytes(&[i; 32]);
        let v = cosignature::verifier_key(&format!("w{i}.test"), &k.verifying_key());
        (k, v)
    }

    fn policy(k: &str) -> (Policy, SigningKey, String) {
        let log = SigningKey::from_bytes(&[1; 32]);
        let lkey = checkpoint::verifier_key("trail.test/checkpoints", &log.verifying_key());
        let text = format!(
            "# three witnesses\nlog {lkey} https://trail.test\n\n  witness A {} http://127.0.0.1:1/\nwitness B {}\nwitness\tC {}\ngroup ABC {k} A B C\nquorum ABC\n",
            wkey(2).1,
            wkey(3).1,
            wkey(4).1
        );
        (Policy::parse(&text).unwrap(), log, lkey)
    }

    #[test]
    fn a_policy_parses_with_its_groups() {
        let (p, _, lkey) = policy("2");
        assert_eq!(p.logs[0].vkey, lkey);
        assert_eq!(p.witnesses[0].url.as_deref(), Some("http://127.0.0.1:1"));
        assert_eq!(p.describe_quorum(), "2 of (A, B, C)");
        assert!(!p.quorum_met(&["A"].into()));
        assert!(p.quorum_met(&["A", "C"].into()));
        assert_eq!(policy("any").0.describe_quorum(), "1 of (A, B, C)");
        assert!(!policy("all").0.quorum_met(&["A", "B"].into()));
        let none = Policy::parse("quorum none\n").unwrap();
        assert!(none.quorum_met(&BTreeSet::new()));
        let nested = format!(
            "witness A {}\nwitness B {}\nwitness C {}\ngroup X any A B\ngroup Y all X C\nquorum Y\n",
            wkey(2).1,
            wkey(3).1,
            wkey(4).1
        );
        let p = Policy::parse(&nested).unwrap();
        assert!(p.quorum_met(&["B", "C"].into()) && !p.quorum_met(&["A", "B"].into()));
        let tree = serde_json::to_value(p.quorum_tree().unwrap()).unwrap();
        assert_eq!(tree, serde_json::json!({"k": 2, "of": [{"k": 1, "of": ["A", "B"]}, "C"]}));
    }

    #[test]
    fn bad_policies_name_their_line() {
        let w = wkey(2).1;
        for (text, want) in [
            ("log x\nquorum none\n".to_string(), "line 1"),
            (format!("witness A {w}\nwitness A {}\nquorum A\n", wkey(3).1), "line 2: the name A is taken"),
            (format!("witness A {w}\nwitness B {w}\nquorum A\n"), "duplicate witness key"),
            (format!("witness A {w}\ngroup G 2 A\nquorum G\n"), "line 2: the threshold 2"),
            (format!("witness A {w}\ngroup G any B\nquorum G\n"), "B is not defined above"),
            (format!("witness A {w}\nquorum A\nquorum A\n"), "a second quorum"),
            (format!("witness A {w}\n"), "no quorum line"),
            ("frobnicate\nquorum none\n".to_string(), "unknown keyword"),
            (format!("witness none {w}\nquorum none\n"), "taken"),
        ] {
            let e = Policy::parse(&text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn checkpoints_are_accepted_only_with_the_quorum() {
        let (p, log, _) = policy("2");
        let cp = Checkpoint { origin: "trail.test/checkpoints".into(), size: 1, root: merkle::leaf_hash(b"x") };
        let note = checkpoint::sign(&cp, &log);
        let body = cp.body();
        let cosig = |i: u8| cosignature::cosign(&body, &format!("w{i}.test"), &wkey(i).0, 1_700_000_000 + i as u64);
        let one = format!("{note}{}", cosig(2));
        let e = p.accept(&one).unwrap_err();
        assert!(e.contains("cosigned by A") && e.contains("2 of (A, B, C)"), "{e}");
        let two = format!("{one}{}", cosig(4));
        assert_eq!(p.accept(&two).unwrap().cosigners, ["A", "C"]);
        // A cosignature by a key the policy does not know is ignored.
        let stranger = format!("{one}{}", cosignature::cosign(&body, "w9.test", &wkey(9).0, 1));
        assert!(!p.check(&stranger).unwrap().quorum);
        // One that carries a known key but does not verify spoils the note.
        let forged = two.replacen(&cosig(4)[..40], &cosignature::cosign(&body, "w4.test", &wkey(4).0, 5)[..40], 1);
        assert!(p.check(&forged).is_err() || !p.check(&forged).unwrap().quorum);
        let other_log = checkpoint::sign(&Checkpoint { origin: "elsewhere/x".into(), ..cp.clone() }, &log);
        assert!(p.check(&other_log).unwrap_err().contains("no log elsewhere/x"));
    }
}
