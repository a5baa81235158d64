//! The Merkle tree of RFC 9162 section 2.1: leaf and node hashing, tree heads, and
//! inclusion and consistency proofs, generated from any source of subtree hashes and
//! verified with nothing but SHA-256.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// SHA-256 of nothing: the root of the empty tree.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two strictly smaller than `n` (n ≥ 2).
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// Where proofs get hashes of subtrees from: the hash of leaves `[start, start + size)`.
/// Proofs only ask for ranges that are aligned complete subtrees (`start` a multiple of
/// `size`, `size` a power of two) or the right edge of a tree, so a store that keeps
/// every complete subtree's hash answers any of them in O(log n) reads.
pub trait Subtrees {
    type Error;
    fn subtree(&mut self, start: u64, size: u64) -> Result<Hash, Self::Error>;
}

/// Subtree hashes as far as they are known, for a store that reads them asynchronously:
/// the proof algorithms are synchronous, so a first run records which complete subtrees
/// (`wanted`, as `(level, index)`) they ask for (answering zeros), the caller fetches
/// those into `known`, and a second run answers the proof.
#[derive(Debug, Default)]
pub struct Recorded {
    pub wanted: Vec<(u32, u64)>,
    pub known: std::collections::HashMap<(u32, u64), Hash>,
}

impl Subtrees for Recorded {
    type Error = std::convert::Infallible;
    fn subtree(&mut self, start: u64, size: u64) -> Result<Hash, Self::Error> {
        range_hash(start, size, &mut |level, idx| {
            Ok(match self.known.get(&(level, idx)) {
                Some(h) => *h,
                None => {
                    self.wanted.push((level, idx));
                    [0; 32]
                }
            })
        })
    }
}

/// Computes the hash of any range from the hashes of the aligned complete subtrees
/// within it (at most 2 log n of them). `complete(level, index)` answers the hash of
/// leaves `[index << level, (index + 1) << level)`.
pub fn range_hash<E>(start: u64, size: u64, complete: &mut dyn FnMut(u32, u64) -> Result<Hash, E>) -> Result<Hash, E> {
    if size == 0 {
        return Ok(empty_root());
    }
    if size.is_power_of_two() && start.is_multiple_of(size) {
        return complete(size.trailing_zeros(), start / size);
    }
    let k = split(size);
    let left = range_hash(start, k, complete)?;
    let right = range_hash(start + k, size - k, complete)?;
    Ok(node_hash(&left, &right))
}

/// The tree head of a list of leaf hashes (`MTH` in RFC 9162).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n as u64) as usize;
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

impl Subtrees for &[Hash] {
    type Error = std::convert::Infallible;
    fn subtree(&mut self, start: u64, size: u64) -> Result<Hash, Self::Error> {
        Ok(root(&self[start as usize..(start + size) as usize]))
    }
}

/// The inclusion proof of leaf `index` in the tree of the first `size` leaves
/// (RFC 9162 2.1.3.1), deepest sibling first.
pub fn inclusion_proof<S: Subtrees>(src: &mut S, index: u64, size: u64) -> Result<Vec<Hash>, S::Error> {
    let mut out = Vec::new();
    path(src, index, 0, size, &mut out)?;
    Ok(out)
}

fn path<S: Subtrees>(src: &mut S, m: u64, start: u64, n: u64, out: &mut Vec<Hash>) -> Result<(), S::Error> {
    if n <= 1 {
        return Ok(());
    }
    let k = split(n);
    if m < k {
        path(src, m, start, k, out)?;
        out.push(src.subtree(start + k, n - k)?);
    } else {
        path(src, m - k, start + k, n - k, out)?;
        out.push(src.subtree(start, k)?);
    }
    Ok(())
}

/// The consistency proof between the trees of the first `old` and `new` leaves
/// (RFC 9162 2.1.4.1).
pub fn consistency_proof<S: Subtrees>(src: &mut S, old: u64, new: u64) -> Result<Vec<Hash>, S::Error> {
    let mut out = Vec::new();
    if old > 0 && old < new {
        subproof(src, old, 0, new, true, &mut out)?;
    }
    Ok(out)
}

fn subproof<S: Subtrees>(
    src: &mut S,
    m: u64,
    start: u64,
    n: u64,
    whole: bool,
    out: &mut Vec<Hash>,
) -> Result<(), S::Error> {
    if m == n {
        if !whole {
            out.push(src.subtree(start, n)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof(src, m, start, k, whole, out)?;
        out.push(src.subtree(start + k, n - k)?);
    } else {
        subproof(src, m - k, start + k, n - k, false, out)?;
        out.push(src.subtree(start, k)?);
    }
    Ok(())
}

/// Checks an inclusion proof (RFC 9162 2.1.3.2).
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return false;
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    s_n == 0 && r == *root
}

/// Checks a consistency proof (RFC 9162 2.1.4.2).
pub fn verify_consistency(old: u64, new: u64, old_root: &Hash, new_root: &Hash, proof: &[Hash]) -> bool {
    // Nothing proves an empty tree consistent with another (RFC 9162 2.1.4.2 starts from
    // a non-empty tree; the shared vectors refuse it too).
    if old > new || old == 0 {
        return false;
    }
    if old == new {
        return proof.is_empty() && old_root == new_root;
    }
    let mut proof: Vec<Hash> = proof.to_vec();
    if old.is_power_of_two() {
        proof.insert(0, *old_root);
    }
    if proof.is_empty() {
        return false;
    }
    let (mut f_n, mut s_n) = (old - 1, new - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let (mut fr, mut sr) = (proof[0], proof[0]);
    for c in &proof[1..] {
        if s_n == 0 {
            return false;
        }
        if f_n & 1 == 1 || f_n == s_n {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    fr == *old_root && sr == *new_root && s_n == 0
}

/// The right edge of a growing tree: the roots of its complete subtrees, largest first
/// (a "compact range"). Appending a leaf yields the complete subtrees it closes, which
/// a store keeps for proofs; the tree head folds the edge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    /// Number of leaves.
    pub size: u64,
    /// `(level, hash)` of each complete subtree on the edge, largest (highest) first.
    pub nodes: Vec<(u32, Hash)>,
}

impl Frontier {
    /// Adds a leaf hash; returns every complete subtree this closes as
    /// `(level, index, hash)`, the leaf itself (level 0) first.
    pub fn push(&mut self, leaf: Hash) -> Vec<(u32, u64, Hash)> {
        let mut closed = Vec::with_capacity(4);
        self.push_into(leaf, Some(&mut closed));
        closed
    }

    /// Adds a leaf hash, keeping only the edge (for verifiers, which need the head).
    pub fn extend(&mut self, leaf: Hash) {
        self.push_into(leaf, None);
    }

    fn push_into(&mut self, leaf: Hash, mut closed: Option<&mut Vec<(u32, u64, Hash)>>) {
        let index = self.size;
        if let Some(c) = closed.as_mut() {
            c.push((0, index, leaf));
        }
        let mut cur = (0u32, leaf);
        while let Some(&(level, left)) = self.nodes.last() {
            if level != cur.0 {
                break;
            }
            self.nodes.pop();
            let parent = node_hash(&left, &cur.1);
            cur = (level + 1, parent);
            if let Some(c) = closed.as_mut() {
                c.push((level + 1, index >> (level + 1), parent));
            }
        }
        self.nodes.push(cur);
        self.size += 1;
    }

    /// The tree head.
    pub fn root(&self) -> Hash {
        let mut it = self.nodes.iter().rev();
        match it.next() {
            None => empty_root(),
            Some(&(_, first)) => it.fold(first, |acc, (_, h)| node_hash(h, &acc)),
        }
    }

    /// The levels of the complete subtrees on the edge of a tree of `size` leaves, with
    /// the index of each at its level, largest first.
    pub fn shape(size: u64) -> Vec<(u32, u64)> {
        let mut out = Vec::new();
        let mut start = 0u64;
        for level in (0..64u32).rev() {
            if size & (1 << level) != 0 {
                out.push((level, start >> level));
                start += 1 << level;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(h: &Hash) -> String {
        h.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The test leaves of the Certificate Transparency reference implementation (and
    /// Go's sumdb/tlog and transparency-dev tests).
    fn ct_leaves() -> Vec<Vec<u8>> {
        ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
            .iter()
            .map(|h| (0..h.len() / 2).map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap()).collect())
            .collect()
    }

    #[test]
    fn known_answer_roots() {
        let leaves: Vec<Hash> = ct_leaves().iter().map(|l| leaf_hash(l)).collect();
        let want = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        for (i, w) in want.iter().enumerate() {
            assert_eq!(hex(&root(&leaves[..=i])), *w, "size {}", i + 1);
            let mut f = Frontier::default();
            for l in &leaves[..=i] {
                f.push(*l);
            }
            assert_eq!(hex(&f.root()), *w);
        }
        assert_eq!(hex(&empty_root()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    #[test]
    fn known_answer_proofs() {
        let leaves: Vec<Hash> = ct_leaves().iter().map(|l| leaf_hash(l)).collect();
        let mut src: &[Hash] = &leaves;
        let p = inclusion_proof(&mut src, 0, 8).unwrap();
        assert_eq!(
            p.iter().map(hex).collect::<Vec<_>>(),
            [
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ]
        );
        let c = consistency_proof(&mut src, 1, 8).unwrap();
        assert_eq!(
            c.iter().map(hex).collect::<Vec<_>>(),
            [
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ]
        );
        let c = consistency_proof(&mut src, 6, 8).unwrap();
        assert_eq!(
            c.iter().map(hex).collect::<Vec<_>>(),
            [
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ]
        );
        let c = consistency_proof(&mut src, 2, 5).unwrap();
        assert_eq!(
            c.iter().map(hex).collect::<Vec<_>>(),
            [
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"
            ]
        );
    }

    #[test]
    fn frontier_closes_complete_subtrees() {
        let mut f = Frontier::default();
        let leaves: Vec<Hash> = (0u8..7).map(|i| leaf_hash(&[i])).collect();
        let mut all = Vec::new();
        for l in &leaves {
            all.extend(f.push(*l));
        }
        // 7 leaves close 7 leaves, 3 pairs and 1 quad.
        assert_eq!(all.len(), 11);
        assert!(all.contains(&(2, 0, root(&leaves[..4]))));
        assert_eq!(Frontier::shape(7), vec![(2, 0), (1, 2), (0, 6)]);
        assert_eq!(f.nodes.iter().map(|n| n.0).collect::<Vec<_>>(), vec![2, 1, 0]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn every_proof_verifies_and_a_flipped_bit_never_does(n in 1u64..300, a in 0u64..300, b in 0u64..300, bit in 0usize..256) {
            let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&i.to_le_bytes())).collect();
            let mut src: &[Hash] = &leaves;
            let i = a % n;
            let size = i + 1 + b % (n - i);
            let r = root(&leaves[..size as usize]);
            let p = inclusion_proof(&mut src, i, size).unwrap();
            prop_assert!(verify_inclusion(i, size, &leaves[i as usize], &p, &r));
            let old = 1 + a % size;
            let old_root = root(&leaves[..old as usize]);
            let c = consistency_proof(&mut src, old, size).unwrap();
            prop_assert!(verify_consistency(old, size, &old_root, &r, &c));
            // Any single flipped bit in a proof, a leaf or a root is caught.
            let flip = |h: &Hash| { let mut h = *h; h[bit / 8] ^= 1 << (bit % 8); h };
            prop_assert!(!verify_inclusion(i, size, &flip(&leaves[i as usize]), &p, &r));
            prop_assert!(!verify_inclusion(i, size, &leaves[i as usize], &p, &flip(&r)));
            if !p.is_empty() {
                let mut bad = p.clone();
                let k = bit % bad.len();
                bad[k] = flip(&bad[k]);
                prop_assert!(!verify_inclusion(i, size, &leaves[i as usize], &bad, &r));
            }
            if !c.is_empty() {
                let mut bad = c.clone();
                let k = bit % bad.len();
                bad[k] = flip(&bad[k]);
                prop_assert!(!verify_consistency(old, size, &old_root, &r, &bad));
            }
            if old < size {
                prop_assert!(!verify_consistency(old, size, &flip(&old_root), &r, &c));
            }
            // The range hash from complete subtrees equals the tree head.
            let mut complete = |level: u32, index: u64| -> Result<Hash, ()> {
                let s = (index << level) as usize;
                Ok(root(&leaves[s..s + (1usize << level)]))
            };
            prop_assert_eq!(range_hash(0, size, &mut complete).unwrap(), r);
        }
    }
}
