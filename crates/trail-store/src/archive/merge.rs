//! Any period read back in time order from the archive and the store together
//! (downloads and evidence of archived periods).

use std::{
    collections::{BTreeMap, VecDeque},
    sync::Arc,
};

use trail_core::{Event, Filter, Sort, SortField, Timestamp};

use super::*;
use crate::{ListQuery, Scope, Store, StoreError, StreamRx};

/// Every event of `scope` matching `filter` in time order (oldest first), from the
/// archive and the store together, a chunk of leaves at a time. The archived part is
/// read one UTC day at a time (memory holds one day of one period's archived events).
pub async fn merged(
    store: &dyn Store,
    archive: Arc<Archive>,
    scope: Scope,
    mut filter: Filter,
    now: Timestamp,
    chunk: usize,
) -> Result<StreamRx, StoreError> {
    filter.sort = Sort { field: SortField::Timestamp, desc: false };
    let (from, to) = filter.time_range(now);
    let mut files = store.archives(scope.org.as_deref()).await?;
    files.retain(|f| f.overlaps(from, to));
    // Every file is checked before the first chunk, against its manifest and against
    // the leaf hashes the log recorded, so a damaged one fails the request while it can
    // still be answered with an error; each is checked again as it is read.
    // A few at once: fetched, decompressed and hashed on every core.
    for some in files.chunks(4) {
        futures::future::try_join_all(some.iter().map(|f| check_file(store, &archive, f))).await?;
    }
    let mut by_day: BTreeMap<String, Vec<ArchiveFile>> = BTreeMap::new();
    for f in files {
        by_day.entry(f.day.clone()).or_default().push(f);
    }
    let query = ListQuery { scope: scope.clone(), filter: filter.clone(), now, cursor: None, limit: chunk };
    let mut online = store.stream(query, chunk).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        // The next day's files are fetched and decompressed while this one is merged.
        type Day = tokio::task::JoinHandle<Result<Vec<(String, Vec<Vec<u8>>)>, StoreError>>;
        let fetch = |files: Vec<ArchiveFile>| -> Day {
            let a = archive.clone();
            handle.spawn(async move {
                let mut out = Vec::with_capacity(files.len());
                for f in files {
                    let leaves = a.read(&f).await?;
                    out.push((f.path, leaves));
                }
                Ok(out)
            })
        };
        let day_events = |day: Day| -> Result<VecDeque<(i64, u64, Vec<u8>)>, StoreError> {
            let mut evs = Vec::new();
            for (path, leaves) in handle.block_on(day).map_err(|_| StoreError::Closed)?? {
                for leaf in leaves {
                    let e = Event::from_leaf(&leaf).map_err(|e| StoreError::Corrupt(format!("{path}: {e}")))?;
                    if scope.allows(&e.org, e.category()) && filter.matches(&e, now) {
                        evs.push((e.timestamp.0, e.seq, leaf));
                    }
                }
            }
            evs.sort_by_key(|a| (a.0, a.1));
            Ok(evs.into())
        };
        let mut days = by_day.into_values();
        let mut next_day = days.next().map(fetch);
        let mut archived: VecDeque<(i64, u64, Vec<u8>)> = VecDeque::new();
        let mut live: VecDeque<(i64, u64, Vec<u8>)> = VecDeque::new();
        let mut online_done = false;
        let mut out = Vec::with_capacity(chunk);
        let result = (|| -> Result<(), StoreError> {
            loop {
                while archived.is_empty() {
                    match next_day.take() {
                        Some(day) => {
                            next_day = days.next().map(fetch);
                            archived = day_events(day)?;
                        }
                        None => break,
                    }
                }
                if live.is_empty() && !online_done {
                    match online.blocking_recv() {
                        Some(chunk) => {
                            for leaf in chunk? {
                                let e = Event::from_leaf(&leaf).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                                live.push_back((e.timestamp.0, e.seq, leaf));
                            }
                            continue;
                        }
                        None => online_done = true,
                    }
                }
                let next = match (archived.front(), live.front()) {
                    (None, None) => break,
                    (Some(_), None) => archived.pop_front(),
                    (None, Some(_)) => live.pop_front(),
                    (Some(a), Some(l)) => {
                        if (a.0, a.1) <= (l.0, l.1) {
                            archived.pop_front()
                        } else {
                            live.pop_front()
                        }
                    }
                };
                if let Some((_, _, leaf)) = next {
                    out.push(leaf);
                }
                if out.len() >= chunk && tx.blocking_send(Ok(std::mem::take(&mut out))).is_err() {
                    return Ok(());
                }
            }
            if !out.is_empty() {
                let _ = tx.blocking_send(Ok(std::mem::take(&mut out)));
            }
            Ok(())
        })();
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(e));
        }
    });
    Ok(rx)
}

/// A file checked against its manifest and against the leaf hashes the log recorded.
async fn check_file(store: &dyn Store, archive: &Archive, f: &ArchiveFile) -> Result<(), StoreError> {
    let leaves = archive.read(f).await?;
    let recorded: BTreeMap<u64, trail_core::merkle::Hash> =
        store.tree_nodes(&f.org, 0, f.first_seq, f.last_seq + 1).await?.into_iter().collect();
    for leaf in &leaves {
        let seq = Event::from_leaf(leaf).map(|e| e.seq).unwrap_or(u64::MAX);
        if recorded.get(&seq) != Some(&trail_core::merkle::leaf_hash(leaf)) {
            let problem = format!("entry {seq} differs from the leaf hash the log recorded for it");
            return Err(StoreError::Damaged { path: f.path.clone(), problem });
        }
    }
    Ok(())
}

/// Events of `org` with `seq >= from` in seq order, from the store and the archive
/// together: at most `limit` online ones, and the archived ones among them (read a
/// file at a time, so a replay of archived days may return more than `limit`).
pub async fn scan_merged(
    store: &dyn Store,
    archive: Option<&Archive>,
    org: &str,
    from: u64,
    limit: usize,
) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    let mut rows = store.scan(org, from, limit).await?;
    let Some(archive) = archive else { return Ok(rows) };
    // Online rows end the range only when there may be more after them.
    let upper = if rows.len() >= limit { rows.last().map_or(u64::MAX, |r| r.0) } else { u64::MAX };
    let mut files: Vec<ArchiveFile> =
        store.archives(Some(org)).await?.into_iter().filter(|f| f.last_seq >= from && f.first_seq <= upper).collect();
    if files.is_empty() {
        return Ok(rows);
    }
    files.sort_by_key(|f| f.first_seq);
    // The earliest file and every other that may hold `from` (days' seq ranges can
    // overlap); the range ends before the first file left unread.
    let split = files.iter().skip(1).position(|f| f.first_seq > from).map_or(files.len(), |i| i + 1);
    let unread = files.split_off(split);
    let upper = unread.first().map_or(upper, |next| upper.min(next.first_seq - 1));
    for file in &files {
        for leaf in archive.read(file).await? {
            let e = Event::from_leaf(&leaf).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if e.seq >= from && e.seq <= upper {
                rows.push((e.seq, leaf));
            }
        }
    }
    rows.retain(|r| r.0 <= upper);
    rows.sort_by_key(|r| r.0);
    rows.dedup_by_key(|r| r.0);
    Ok(rows)
}
