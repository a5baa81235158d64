//! Evidence export: a stream of JSON Lines (see `trail_core::evidence`) for the events
//! of one organization matching a filter, every one proving into the newest checkpoint.
//! Memory stays constant: one page of events at a time.

use bytes::Bytes;
use futures::Stream;
use trail_core::{
    evidence::{Entry, Header, FORMAT},
    Event, Filter, Sort, SortField, Timestamp,
};
use trail_store::{DynStore, ListQuery, Scope, StoreError};

use crate::error::ApiError;

/// Events read per page.
const PAGE: usize = 500;

/// The evidence lines for the events of one organization (`scope.org`, which must be
/// set) matching `filter` that the scope lets the caller see, oldest first. Events newer
/// than the newest checkpoint are left out (they prove into the next one).
pub async fn stream(
    store: DynStore,
    scope: Scope,
    mut filter: Filter,
    now: Timestamp,
    verifier_key: String,
) -> Result<impl Stream<Item = Result<Bytes, StoreError>>, ApiError> {
    let org = scope.org.clone().ok_or_else(|| ApiError::Internal("evidence needs one organization".into()))?;
    let cp = store
        .checkpoint(&org, None)
        .await?
        .ok_or_else(|| ApiError::NotFound("no checkpoint yet: the log is empty or was just written".into()))?;
    filter.sort = Sort { field: SortField::Timestamp, desc: false };
    let header = Header { format: FORMAT.into(), checkpoint: cp.note.clone(), verifier_key };
    let mut first = serde_json::to_vec(&header).unwrap_or_default();
    first.push(b'\n');
    struct State {
        store: DynStore,
        org: String,
        scope: Scope,
        filter: Filter,
        now: Timestamp,
        size: u64,
        cursor: Option<String>,
        header: Option<Vec<u8>>,
        done: bool,
    }
    let state = State { store, org, scope, filter, now, size: cp.size, cursor: None, header: Some(first), done: false };
    Ok(futures::stream::unfold(state, |mut st| async move {
        if let Some(h) = st.header.take() {
            return Some((Ok(Bytes::from(h)), st));
        }
        if st.done {
            return None;
        }
        let page = async {
            let q = ListQuery {
                scope: st.scope.clone(),
                filter: st.filter.clone(),
                now: st.now,
                cursor: st.cursor.clone(),
                limit: PAGE,
            };
            let page = st.store.list(q).await?;
            let mut out = Vec::new();
            for leaf in &page.events {
                let seq = Event::from_leaf(leaf).map_err(|e| StoreError::Corrupt(e.to_string()))?.seq;
                if seq >= st.size {
                    continue;
                }
                let proof = st.store.inclusion_proof(&st.org, seq, st.size).await?;
                serde_json::to_writer(&mut out, &Entry::new(seq, leaf, &proof))
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                out.push(b'\n');
            }
            Ok::<_, StoreError>((out, page.next_cursor))
        };
        match page.await {
            Ok((out, next)) => {
                st.done = next.is_none();
                st.cursor = next;
                Some((Ok(Bytes::from(out)), st))
            }
            Err(e) => {
                st.done = true;
                Some((Err(e), st))
            }
        }
    }))
}
