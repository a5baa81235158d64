//! The tree folded in seq order: each checked entry's leaf hash against its recorded
//! one, every stored node against the hash of its children, the roots of the signed
//! sizes kept, and the runs of entries no checkpoint covers.

use std::collections::{BTreeMap, VecDeque};

use trail_core::merkle::{Frontier, Hash};

use super::{
    entries::{Checked, Problem},
    Report,
};
use crate::rollup::Tally;

/// A run of entries that no checkpoint between them covers: the first seq and the
/// earliest and latest received times.
#[derive(Default)]
pub(super) struct Run {
    pub(super) first: Option<u64>,
    pub(super) received: Option<(i64, i64)>,
}

impl Run {
    fn add(&mut self, seq: u64, received: Option<i64>) {
        self.first.get_or_insert(seq);
        if let Some(t) = received {
            self.received = Some(self.received.map_or((t, t), |(a, b)| (a.min(t), b.max(t))));
        }
    }

    /// Reports a run longer than the signer ever leaves unsigned; `end` is one past its
    /// last entry.
    pub(super) fn close(&mut self, end: u64, report: &mut Report) {
        if let (Some(first), Some((a, b))) = (self.first, self.received) {
            if b - a > crate::seal::MAX_UNSIGNED_SPAN_US {
                let at = |us: i64| trail_core::Timestamp(us).to_rfc3339();
                report.find(
                    Some(first),
                    None,
                    format!(
                        "entries {first} to {} were received from {} to {} with no signed checkpoint among them: checkpoints were removed",
                        end - 1,
                        at(a),
                        at(b)
                    ),
                );
            }
        }
        *self = Run::default();
    }
}

/// The stored tree nodes of one level, read ahead in index order.
pub(super) struct Level {
    pub(super) level: u32,
    pub(super) buffered: VecDeque<(u64, Hash)>,
    /// Indexes below this were read.
    pub(super) read_to: u64,
}

/// The fold's state.
#[derive(Default)]
pub(super) struct Walk {
    pub(super) tree: Frontier,
    /// The tree cannot be recomputed past an entry whose hash is unknown.
    pub(super) broken_at: Option<u64>,
    pub(super) levels: Vec<Level>,
    /// The recomputed roots of the sizes asked for.
    pub(super) roots: BTreeMap<u64, Hash>,
    pub(super) run: Run,
    /// The rows counted as the per-day counts count them.
    pub(super) rollups: Tally,
}

impl Walk {
    /// The node ranges to read before entries up to `to` are folded.
    pub(super) fn node_ranges(&mut self, to: u64) -> Vec<(u32, u64, u64)> {
        let top = 64 - (to.max(1)).leading_zeros();
        while self.levels.len() <= top as usize {
            self.levels.push(Level { level: self.levels.len() as u32, buffered: Default::default(), read_to: 0 });
        }
        self.levels
            .iter()
            .filter(|l| (to >> l.level) > l.read_to)
            .map(|l| (l.level, l.read_to, to >> l.level))
            .collect()
    }

    /// Keeps the nodes read for `ranges`.
    pub(super) fn take_nodes(&mut self, ranges: Vec<(u32, u64, u64)>, got: Vec<Vec<(u64, Hash)>>) {
        for ((level, _, want_to), got) in ranges.into_iter().zip(got) {
            let l = &mut self.levels[level as usize];
            l.buffered.extend(got);
            l.read_to = want_to;
        }
    }

    /// Folds a chunk of checked entries (and whether each came from the archive).
    pub(super) fn fold(
        &mut self,
        checked: Vec<Checked>,
        archived_here: Vec<bool>,
        report: &mut Report,
        signed: &BTreeMap<u64, Hash>,
        wanted: &[u64],
    ) {
        for (c, was_archived) in checked.into_iter().zip(archived_here) {
            let mut problems = c.problems;
            if was_archived {
                problems.retain(|p| *p != Problem::RowMissing);
            }
            let recorded = take_node(&mut self.levels[0], c.seq);
            let hash = match (c.hash, recorded) {
                (Some(h), Some(r)) if h == r => Some(h),
                (Some(h), Some(_)) => {
                    problems.push(Problem::HashDiffers);
                    Some(h)
                }
                (Some(h), None) => {
                    problems.push(Problem::NoLeafHash);
                    Some(h)
                }
                (None, r) => r,
            };
            for p in problems {
                if p.derived() {
                    report.find_derived(Some(c.seq), c.id, p.to_string());
                } else {
                    report.find(Some(c.seq), c.id, p.to_string());
                }
            }
            self.run.add(c.seq, c.received);
            if signed.contains_key(&(c.seq + 1)) {
                self.run.close(c.seq + 1, report);
            }
            match hash {
                Some(h) if self.broken_at.is_none() => {
                    for (level, idx, node) in self.tree.push(h).into_iter().skip(1) {
                        report.nodes += 1;
                        match take_node(&mut self.levels[level as usize], idx) {
                            Some(stored) if stored == node => {}
                            Some(_) => report.find(None, None, format!(
                                "tree node level {level} index {idx} (entries {} to {}) differs from the hash of those entries, so proofs through it are wrong",
                                idx << level,
                                ((idx + 1) << level) - 1
                            )),
                            None => report.find(None, None, format!(
                                "tree node level {level} index {idx} (entries {} to {}) is not stored",
                                idx << level,
                                ((idx + 1) << level) - 1
                            )),
                        }
                    }
                    if wanted.contains(&self.tree.size) {
                        self.roots.insert(self.tree.size, self.tree.root());
                    }
                }
                Some(_) => {}
                None => {
                    if self.broken_at.is_none() {
                        self.broken_at = Some(c.seq);
                    }
                }
            }
        }
    }
}

/// The stored node at `idx` of a level, if it is next (nodes before it are missing
/// complete subtrees already reported, or extras).
pub(super) fn take_node(level: &mut Level, idx: u64) -> Option<Hash> {
    while let Some(&(i, h)) = level.buffered.front() {
        if i < idx {
            level.buffered.pop_front();
            continue;
        }
        if i == idx {
            level.buffered.pop_front();
            return Some(h);
        }
        break;
    }
    None
}
