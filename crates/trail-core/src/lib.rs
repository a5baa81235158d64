//! Trail's core: the event model and its validation, filters and the one-line query
//! language, before/after diffs and pagination cursors.
//!
//! Architecture invariant: this crate does no I/O, spawns no threads and knows nothing of
//! HTTP or SQL. Everything here is a pure function of its inputs (the current time is
//! always passed in), so every other crate can rely on it in tests.

pub mod checkpoint;
pub mod cosignature;
pub mod cursor;
pub mod diff;
pub mod duration;
pub mod error;
pub mod event;
pub mod evidence;
pub mod filter;
pub mod json;
pub mod leaf;
mod leaf_scan;
pub mod merkle;
pub mod policy;
pub mod query;
pub mod received;
pub mod tiles;
pub mod time;
pub mod tlog_proof;

pub use cursor::Cursor;
pub use error::{FieldCode, FieldError};
pub use event::{Event, Limits, NewEvent, Outcome};
pub use filter::{Filter, Period, Sort, SortField, StatusClass};
pub use leaf::LeafView;
pub use time::Timestamp;
