//! The feed of events this process appends (and, with PostgreSQL, those other
//! processes append), published once for the live streams to filter.

use std::sync::Arc;

use tokio::sync::broadcast;
use trail_core::{Event, NewEvent, Timestamp};
use trail_store::{AppendBatch, Appended};

use super::Services;

/// Events published and not yet read by the slowest subscriber before it is told it
/// lagged.
const BUFFER: usize = 4096;

pub(crate) struct Feed {
    tx: broadcast::Sender<Arc<Event>>,
}

impl Default for Feed {
    fn default() -> Self {
        Feed { tx: broadcast::channel(BUFFER).0 }
    }
}

impl Feed {
    /// Whether anyone listens (so that appends skip the copy when nobody does).
    pub(crate) fn wanted(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// A new subscriber's receiver.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    /// Publishes appended events (duplicates acknowledged by idempotency are skipped).
    pub(crate) fn publish(&self, org: &str, received_at: Timestamp, events: Vec<NewEvent>, acks: &[Appended]) {
        for (new, ack) in events.into_iter().zip(acks) {
            if !ack.duplicate {
                let _ = self.tx.send(Arc::new(Event::from_new(new, ack.id, org, ack.seq, received_at)));
            }
        }
    }
}

/// Publishes events other processes appended (read back from the store).
pub(crate) async fn relay(
    store: trail_store::DynStore,
    live: Arc<Feed>,
    mut rx: broadcast::Receiver<trail_store::AppendedRange>,
) {
    loop {
        let range = match rx.recv().await {
            Ok(r) => r,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if !live.wanted() || range.to <= range.from {
            continue;
        }
        match store.scan(&range.org, range.from, (range.to - range.from) as usize).await {
            Ok(rows) => {
                for (_, leaf) in rows {
                    if let Ok(e) = Event::from_leaf(&leaf) {
                        let _ = live.tx.send(Arc::new(e));
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read events appended elsewhere"),
        }
    }
}

/// Appends a batch and publishes it to live subscribers.
pub(crate) async fn append(st: &Services, batch: AppendBatch) -> Result<Vec<Appended>, trail_store::StoreError> {
    let copy = st.feed.wanted().then(|| {
        (batch.org.clone(), batch.received_at, batch.events.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>())
    });
    let org = batch.org.clone();
    let acks = st.store.append(batch).await?;
    st.alerts.appended(&org);
    st.streams.appended();
    if let Some((org, at, events)) = copy {
        st.feed.publish(&org, at, events, &acks);
    }
    Ok(acks)
}
