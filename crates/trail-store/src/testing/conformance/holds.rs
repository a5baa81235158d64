//! Legal holds, on every backend: placed and listed, released once (with who and why),
//! and what an active hold covers kept by retention — the whole organization, or the
//! events its query matches — until it is released.

use serde_json::json;
use trail_core::Timestamp;
use uuid::Uuid;

use super::{batch, new_event, seed_org, NOW};
use crate::{
    archive::{self, Archive, Retention},
    holds::NewHold,
    Store,
};

pub async fn legal_holds_keep_what_they_cover(store: &dyn Store) {
    seed_org(store, "acme").await;
    seed_org(store, "globex").await;
    let day = 86_400_000_000i64;
    let evs = (0..12i64)
        .map(|i| {
            let ts = Timestamp(NOW.0 - 400 * day - i * 1_000_000).to_rfc3339_micros();
            let who = if i % 3 == 0 { "ann@acme.com" } else { "bob@acme.com" };
            new_event(json!({"action": "doc:update", "timestamp": ts, "actor": {"email": who}}))
        })
        .collect();
    store.append(batch("acme", evs)).await.unwrap();
    let place = |org: &str, query: Option<&str>, reason: &str| NewHold {
        org: org.into(),
        query: query.map(str::to_string),
        reason: reason.into(),
        placed_by: "admin@acme.com".into(),
        at: NOW,
    };
    let all = store.place_hold(place("acme", None, "litigation 2024-17")).await.unwrap();
    assert!(all.active() && all.query.is_none());
    let ann = store.place_hold(place("acme", Some("actor:ann@acme.com"), "ann's case")).await.unwrap();
    store.place_hold(place("globex", None, "another organization's")).await.unwrap();
    assert_eq!(store.holds(Some("acme")).await.unwrap().iter().map(|h| h.id).collect::<Vec<_>>(), [ann.id, all.id]);
    assert_eq!(store.holds(None).await.unwrap().len(), 3);
    assert!(store.place_hold(place("nobody", None, "x")).await.is_err(), "an unknown organization");

    let dir = std::env::temp_dir().join(format!("trail-holds-{}", Uuid::now_v7()));
    let arch = Archive::new(&dir);
    let rules = Retention { default_days: 90, categories: Default::default(), key_days: None };
    // The organization is held: nothing is archived or deleted.
    let r = archive::run(store, &arch, &rules, NOW).await.unwrap();
    let acme = r.iter().find(|r| r.org == "acme").unwrap();
    assert_eq!((acme.archived, acme.deleted, acme.held), (0, 0, 12), "{r:?}");
    // Released (once): only ann's events stay.
    let later = Timestamp(NOW.0 + 1);
    let released = store.release_hold("acme", all.id, "counsel@acme.com", "case closed", later).await.unwrap();
    let released = released.expect("an active hold is released");
    assert_eq!(
        (released.released_by.as_deref(), released.release_reason.as_deref()),
        (Some("counsel@acme.com"), Some("case closed"))
    );
    assert!(store.release_hold("acme", all.id, "x", "again", later).await.unwrap().is_none());
    assert!(store.release_hold("globex", ann.id, "x", "not its", later).await.unwrap().is_none());
    let r = archive::run(store, &arch, &rules, NOW).await.unwrap();
    let acme = r.iter().find(|r| r.org == "acme").unwrap();
    assert_eq!((acme.archived, acme.held), (8, 4), "{r:?}");
    let online = store.scan("acme", 0, 100).await.unwrap();
    assert_eq!(online.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [0, 3, 6, 9]);
    let _ = std::fs::remove_dir_all(&dir);
}
