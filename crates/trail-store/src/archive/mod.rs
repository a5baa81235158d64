//! Retention and the archive. Events past their retention period are first written to
//! archive files, in a directory or an S3-compatible bucket — one zstd-compressed JSON
//! Lines file per organization, UTC day and run, holding the events' exact leaf bytes
//! in log order, with a JSON manifest beside it (counts, seqs, times, SHA-256) — and
//! only once those files are confirmed kept are the events' rows deleted, in the
//! transaction that records the files in the store. Leaf hashes, tree nodes and
//! checkpoints stay, so proofs keep verifying. A run killed between the two steps
//! leaves files the store does not know: the next run removes them (a bucket's locked
//! objects stay, and are taken again when they hold the same bytes) and archives those
//! events again.
//!
//! `merged` reads any period back in time order from the archive and the store
//! together (downloads and evidence of archived periods).
//!
//! Rooms: `rules` (retention periods and cutoffs), `file` (the archive's format: files
//! and manifests), `place` (the archive store, with its two implementations `dir` and
//! `bucket`), `run` (a retention run), `merge` (archived and online events merged).

mod bucket;
#[cfg(test)]
mod bucket_tests;
mod dir;
mod file;
mod merge;
mod place;
mod rules;
mod run;

pub use bucket::{create_bucket, parse_url, BucketConfig, LockMode};
pub use file::*;
pub use merge::*;
pub use place::*;
pub use rules::*;
pub use run::*;

/// The `format` of archive manifests.
pub const FORMAT: &str = "trail-archive/1";

/// Events archived per step of a run (one set of files and one delete transaction).
const STEP: usize = 20_000;
