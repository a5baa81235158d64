//! Evidence export: a stream of JSON Lines (see `trail_core::evidence`) for the events
//! of one organization matching a filter, every one proving into the newest checkpoint.
//! Memory stays constant: one chunk of events at a time.

use bytes::Bytes;
use futures::Stream;
use std::sync::Arc;
use trail_core::{
    evidence::{Entry, Header, FORMAT},
    tlog_proof::TlogProof,
    Event, Filter, Sort, SortField, Timestamp,
};

use trail_store::{archive::Archive, DynStore, ListQuery, Scope, StoreError, StreamRx};

use super::WorkError;

/// Events read per chunk.
const PAGE: usize = 500;

/// The evidence lines for the events of one organization (`scope.org`, which must be
/// set) matching `filter` that the scope lets the caller see, oldest first; with an
/// archive, archived events too (their bytes from the archive, their proofs from the
/// kept tree). Events newer than the newest checkpoint are left out (they prove into
/// the next one).
pub async fn stream(
    store: DynStore,
    archive: Option<Arc<Archive>>,
    witness_policy: Option<Arc<trail_core::policy::Policy>>,
    scope: Scope,
    mut filter: Filter,
    now: Timestamp,
    verifier_key: String,
) -> Result<impl Stream<Item = Result<Bytes, StoreError>>, WorkError> {
    let org = scope.org.clone().ok_or_else(|| WorkError::Internal("evidence needs one organization".into()))?;
    let cp = store
        .checkpoint(&org, None)
        .await?
        .ok_or_else(|| WorkError::NotFound("no checkpoint yet: the log is empty or was just written".into()))?;
    filter.sort = Sort { field: SortField::Timestamp, desc: false };
    let installation =
        super::tiles::installation_proof(&store, witness_policy.as_deref(), &org, cp.size).await?.map(|p| {
            TlogProof {
                extra: Some(cp.note.clone().into_bytes()),
                index: p.index,
                proof: p.proof,
                checkpoint: p.checkpoint.note,
            }
            .to_text()
        });
    let header = Header { format: FORMAT.into(), checkpoint: cp.note.clone(), verifier_key, installation };
    let mut first = serde_json::to_vec(&header).unwrap_or_default();
    first.push(b'\n');
    let rx = match archive {
        Some(a) => trail_store::archive::merged(&*store, a, scope, filter, now, PAGE).await?,
        None => store.stream(ListQuery { scope, filter, now, cursor: None, limit: PAGE }, PAGE).await?,
    };
    struct State {
        store: DynStore,
        org: String,
        size: u64,
        rx: StreamRx,
        header: Option<Vec<u8>>,
        done: bool,
    }
    let state = State { store, org, size: cp.size, rx, header: Some(first), done: false };
    Ok(futures::stream::unfold(state, |mut st| async move {
        if let Some(h) = st.header.take() {
            return Some((Ok(Bytes::from(h)), st));
        }
        if st.done {
            return None;
        }
        let chunk = match st.rx.recv().await {
            None => return None,
            Some(Err(e)) => {
                st.done = true;
                return Some((Err(e), st));
            }
            Some(Ok(c)) => c,
        };
        let lines = async {
            let mut out = Vec::new();
            for leaf in &chunk {
                let seq = Event::from_leaf(leaf).map_err(|e| StoreError::Corrupt(e.to_string()))?.seq;
                if seq >= st.size {
                    continue;
                }
                let proof = st.store.inclusion_proof(&st.org, seq, st.size).await?;
                serde_json::to_writer(&mut out, &Entry::new(seq, leaf, &proof))
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                out.push(b'\n');
            }
            Ok::<_, StoreError>(out)
        };
        match lines.await {
            Ok(out) => Some((Ok(Bytes::from(out)), st)),
            Err(e) => {
                st.done = true;
                Some((Err(e), st))
            }
        }
    }))
}
