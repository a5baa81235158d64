//! Conformance of streaming's store: streams per organization, leases held by one
//! server at a time (and taken over when they run out), cursors moved only by the
//! holder from where its step started, replays and pauses.

use futures::future::join_all;
use trail_core::Timestamp;

use super::seed_org;
use crate::{
    streams::{Progress, Stream, StreamState},
    Store,
};

fn stream(org: &str, name: &str) -> Stream {
    Stream {
        id: 0,
        org: org.into(),
        name: name.into(),
        kind: crate::streams::StreamKind::Http,
        url: Some("http://127.0.0.1:9/in".into()),
        address: None,
        tls: false,
        format: crate::streams::StreamFormat::Jsonl,
        query: Some("category:auth".into()),
        headers: [("Authorization".to_string(), "Bearer x".to_string())].into(),
        secrets: vec!["whsec_AAAA".into()],
        state: StreamState::Active,
        cursor: 5,
        last_seq: None,
        sent: 0,
        failed: 0,
        last_error: None,
        failing_since: None,
        alerted: false,
        last_sent_at: None,
        owner: None,
        lease_until: 0,
        created_at: 11,
    }
}

pub async fn streams_are_leased_once_and_moved_by_their_holder(store: &dyn Store) {
    seed_org(store, "acme").await;
    seed_org(store, "globex").await;
    let a = store.create_stream(stream("acme", "siem")).await.unwrap();
    let g = store.create_stream(stream("globex", "other")).await.unwrap();
    assert!(a.id > 0 && g.id != a.id);
    assert_eq!((a.cursor, a.headers.get("Authorization").map(String::as_str)), (5, Some("Bearer x")));
    assert_eq!(store.streams(Some("acme")).await.unwrap(), vec![a.clone()]);
    assert_eq!(store.streams(None).await.unwrap().len(), 2);
    assert!(store.get_stream("globex", a.id).await.unwrap().is_none());
    assert!(!store.delete_stream("globex", a.id).await.unwrap());
    assert!(!store.change_stream(&Stream { org: "globex".into(), ..a.clone() }, Some(0)).await.unwrap());

    // Four servers lease at once: each stream goes to exactly one of them.
    let leased = join_all((0..4).map(|i| async move {
        let owner = format!("server-{i}");
        store.lease_streams(&owner, Timestamp(100), Timestamp(200)).await.unwrap()
    }))
    .await;
    let held: Vec<i64> = leased.iter().flatten().map(|s| s.id).collect();
    assert_eq!(held.len(), 2, "{leased:?}");
    let holder = |id: i64| leased.iter().position(|l| l.iter().any(|s| s.id == id)).map(|i| format!("server-{i}"));
    let owner = holder(a.id).unwrap();
    let other = if owner == "server-0" { "server-1" } else { "server-0" };
    // A lease that has not run out stays; the holder renews it.
    assert!(store.lease_streams(other, Timestamp(150), Timestamp(250)).await.unwrap().iter().all(|s| s.id != a.id));
    assert!(store.lease_streams(&owner, Timestamp(150), Timestamp(300)).await.unwrap().iter().any(|s| s.id == a.id));

    // Only the holder moves the cursor, and only from where it is.
    let step = Progress { cursor: 9, last_seq: Some(8), sent: 3, at: 160, ..Progress::default() };
    assert!(!store.stream_progress(a.id, other, 5, &step).await.unwrap());
    let (one, two) =
        tokio::join!(store.stream_progress(a.id, &owner, 5, &step), store.stream_progress(a.id, &owner, 5, &step));
    assert!(one.unwrap() ^ two.unwrap(), "one of two steps from the same cursor is stored");
    let s = store.get_stream("acme", a.id).await.unwrap().unwrap();
    assert_eq!((s.cursor, s.last_seq, s.sent, s.last_sent_at), (9, Some(8), 3, Some(160)));
    // A failure keeps the cursor and counts.
    let fail = Progress {
        cursor: 9,
        failed: 1,
        last_error: Some("HTTP 503".into()),
        failing_since: Some(170),
        at: 170,
        ..Progress::default()
    };
    assert!(store.stream_progress(a.id, &owner, 9, &fail).await.unwrap());
    let s = store.get_stream("acme", a.id).await.unwrap().unwrap();
    assert_eq!((s.cursor, s.sent, s.failed, s.failing_since), (9, 3, 1, Some(170)));
    assert_eq!((s.last_error.as_deref(), s.last_sent_at), (Some("HTTP 503"), Some(160)));

    // A replay moves the cursor; the holder's step from the old cursor then fails.
    let healthy = Stream { failing_since: None, last_error: None, ..s.clone() };
    assert!(store.change_stream(&healthy, Some(0)).await.unwrap());
    assert!(!store.stream_progress(a.id, &owner, 9, &step).await.unwrap());
    let s = store.get_stream("acme", a.id).await.unwrap().unwrap();
    assert_eq!((s.cursor, s.failing_since, s.sent), (0, None, 3));

    // Paused streams are not leased; the lease of a stopped server is taken over.
    assert!(store.change_stream(&Stream { state: StreamState::Paused, ..s.clone() }, None).await.unwrap());
    assert!(store.lease_streams(&owner, Timestamp(160), Timestamp(300)).await.unwrap().iter().all(|x| x.id != a.id));
    assert!(store.change_stream(&Stream { state: StreamState::Active, ..s.clone() }, None).await.unwrap());
    assert!(store.lease_streams(other, Timestamp(310), Timestamp(400)).await.unwrap().iter().any(|x| x.id == a.id));
    assert!(!store.stream_progress(a.id, &owner, 0, &step).await.unwrap(), "the old holder lost it");
    // A disabling step stops the stream.
    let gone = Progress { cursor: 0, disable: true, last_error: Some("410".into()), at: 320, ..Progress::default() };
    assert!(store.stream_progress(a.id, other, 0, &gone).await.unwrap());
    assert_eq!(store.get_stream("acme", a.id).await.unwrap().unwrap().state, StreamState::Disabled);
    assert!(store.lease_streams(other, Timestamp(330), Timestamp(400)).await.unwrap().iter().all(|x| x.id != a.id));

    assert!(store.delete_stream("acme", a.id).await.unwrap());
    assert!(store.streams(Some("acme")).await.unwrap().is_empty());
}
