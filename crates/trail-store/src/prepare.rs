//! Making events ready for a backend's writer before they queue: their stored bytes
//! (but for the seq, which only the writer knows) and whatever else the backend derives
//! from them, on the caller's task or a blocking thread.

use trail_core::{NewEvent, Timestamp};
use uuid::Uuid;

use crate::{AppendBatch, StoreError};

/// Batches with more events than this are prepared on a blocking thread rather than on
/// the caller's async worker.
const INLINE_PREPARE: usize = 32;

/// How many batches may be prepared at once: one core fewer than the machine has, so
/// a backend's writer, which every append waits for, keeps a core of its own.
pub(crate) fn prepare_slots() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

/// Makes each event of a batch ready for a backend's writer with `prepare`, before it
/// queues: small batches on the caller's task, bigger ones on a blocking thread once
/// `slots` has room. Returns the organization and the prepared events.
pub(crate) async fn prepare_batch<T: Send + 'static>(
    batch: AppendBatch,
    slots: &tokio::sync::Semaphore,
    prepare: fn(&str, Uuid, NewEvent, Timestamp) -> T,
) -> Result<(String, Vec<T>), StoreError> {
    let small = batch.events.len() <= INLINE_PREPARE;
    let run = move || {
        let events =
            batch.events.into_iter().map(|(id, new)| prepare(&batch.org, id, new, batch.received_at)).collect();
        (batch.org, events)
    };
    if small {
        return Ok(run());
    }
    let _slot = slots.acquire().await.map_err(|_| StoreError::Closed)?;
    tokio::task::spawn_blocking(run).await.map_err(|_| StoreError::Closed)
}

/// An event's leaf bytes made before its seq is known (outside a backend's writer):
/// the bytes before and after the seq number.
pub(crate) struct LeafTemplate {
    /// The leaf bytes up to and including `"seq":`.
    head: Vec<u8>,
    /// The leaf bytes after the seq number.
    tail: Vec<u8>,
}

/// Seq written into the leaf while preparing, then cut out; this text appears nowhere
/// before it since only id and org (a slug) precede `seq`.
const SEQ_MARK: &[u8] = b"\"seq\":18446744073709551615";

impl LeafTemplate {
    /// The stored event (with seq `u64::MAX`) and its leaf template.
    pub(crate) fn new(org: &str, id: Uuid, new: NewEvent, received_at: Timestamp) -> (trail_core::Event, LeafTemplate) {
        let ev = trail_core::Event::from_new(new, id, org, u64::MAX, received_at);
        let leaf = ev.to_leaf();
        let at = leaf.windows(SEQ_MARK.len()).position(|w| w == SEQ_MARK).unwrap_or(0);
        let digits = at + SEQ_MARK.len() - "18446744073709551615".len();
        let template = LeafTemplate { head: leaf[..digits].to_vec(), tail: leaf[at + SEQ_MARK.len()..].to_vec() };
        (ev, template)
    }

    /// The leaf bytes for a given seq.
    pub(crate) fn leaf(&self, seq: u64) -> Vec<u8> {
        let digits = seq.to_string();
        let mut leaf = Vec::with_capacity(self.head.len() + digits.len() + self.tail.len());
        leaf.extend_from_slice(&self.head);
        leaf.extend_from_slice(digits.as_bytes());
        leaf.extend_from_slice(&self.tail);
        leaf
    }
}
