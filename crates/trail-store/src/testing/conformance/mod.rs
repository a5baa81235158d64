//! The conformance suite every `Store` backend must pass. Each check takes a fresh,
//! migrated, empty store; `conformance_tests!(fresh)` turns them into `#[tokio::test]`s
//! for a backend (`fresh` is an async fn returning the store and a guard that cleans it
//! up).
//!
//! Filtering is checked against `Filter::matches`, the in-memory evaluation of the
//! filter semantics: random events go in, every filter's result must equal what it
//! selects.

use std::collections::HashSet;

use futures::future::join_all;
use rand::{rngs::StdRng, seq::IndexedRandom, Rng, SeedableRng};
use serde_json::json;
use trail_core::{event::parse_event, Event, Filter, NewEvent, Outcome, Sort, SortField, Timestamp};
use uuid::Uuid;

use crate::{AppendBatch, Appended, Categories, ListQuery, Org, Scope, Store, StoreError};

/// Generates a `#[tokio::test]` per conformance check for the backend whose fresh,
/// empty store `$fresh().await` returns as `(Arc<dyn Store>, guard)`.
#[macro_export]
macro_rules! conformance_tests {
    ($fresh:path) => {
        $crate::conformance_tests!(@each $fresh;
            seqs_are_contiguous_per_org,
            unknown_org_fails_alone,
            leaf_bytes_round_trip,
            idempotency_keys_are_honoured,
            concurrent_appends_are_all_kept,
            concurrent_duplicates_are_stored_once,
            abandoned_appends_do_not_fail_others,
            retention_archives_then_deletes,
            filters_match_the_model,
            pages_cover_every_sort_without_overlap,
            search_finds_words_phrases_and_prefixes,
            scopes_hide_other_orgs,
            facets_count_what_the_scope_sees,
            keys_are_found_by_hash,
            keys_are_listed_and_revoked_per_org,
            users_sessions_and_roles,
            login_attempts_are_counted_atomically,
            category_scopes_hide_events_everywhere,
            streams_and_counts_match_the_list,
            schedules_are_kept_per_org,
            bad_cursors_are_invalid,
            rollups_count_like_the_events,
            alerting_state_is_kept_per_org_and_moved_once,
            streams_are_leased_once_and_moved_by_their_holder,
            witnesses_are_leased_once_and_keep_their_cosignatures,
            legal_holds_keep_what_they_cover,
            the_store_behaves_like_its_model
        );
    };
    (@each $fresh:path; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (store, _guard) = $fresh().await;
                $crate::testing::conformance::$name(&*store).await;
            }
        )*
    };
}

mod accounts;
mod alerting;
mod holds;
mod model;
mod rollups;
mod streaming;
mod witnessing;

pub use accounts::*;
pub use alerting::*;
pub use holds::*;
pub use model::*;
pub use rollups::*;
pub use streaming::*;
pub use witnessing::*;

/// A fixed "now" for the checks, so period presets are deterministic.
pub const NOW: Timestamp = Timestamp(1_710_000_000_000_000); // 2024-03-09T16:00:00Z

pub async fn seed_org(store: &dyn Store, slug: &str) {
    store.ensure_org(Org { slug: slug.into(), name: format!("{slug} Inc.") }).await.unwrap();
}

pub(super) fn new_event(v: serde_json::Value) -> NewEvent {
    parse_event(v).unwrap()
}

pub(super) fn batch(org: &str, events: Vec<NewEvent>) -> AppendBatch {
    AppendBatch { org: org.into(), received_at: NOW, events: events.into_iter().map(|e| (Uuid::now_v7(), e)).collect() }
}

/// Appends `n` simple events one batch at a time.
pub async fn append_n(store: &dyn Store, org: &str, n: usize) -> Vec<Appended> {
    let mut out = Vec::new();
    for i in 0..n {
        let ev = new_event(json!({"action": "service:deploy", "request_id": format!("r{i}")}));
        out.extend(store.append(batch(org, vec![ev])).await.unwrap());
    }
    out
}

pub async fn seqs_are_contiguous_per_org(store: &dyn Store) {
    seed_org(store, "acme").await;
    seed_org(store, "globex").await;
    let mut seqs = (Vec::new(), Vec::new());
    for i in 0..5 {
        let evs = (0..3).map(|_| new_event(json!({"action": "auth:login"}))).collect::<Vec<_>>();
        let org = if i % 2 == 0 { "acme" } else { "globex" };
        let acks = store.append(batch(org, evs)).await.unwrap();
        let target = if i % 2 == 0 { &mut seqs.0 } else { &mut seqs.1 };
        target.extend(acks.iter().map(|a| a.seq));
    }
    assert_eq!(seqs.0, (0..9).collect::<Vec<u64>>());
    assert_eq!(seqs.1, (0..6).collect::<Vec<u64>>());
    let scanned = store.scan("acme", 4, 100).await.unwrap();
    assert_eq!(scanned.iter().map(|(s, _)| *s).collect::<Vec<_>>(), (4..9).collect::<Vec<u64>>());
    assert!(!store.is_empty().await.unwrap());
}

pub async fn unknown_org_fails_alone(store: &dyn Store) {
    seed_org(store, "acme").await;
    let good = batch("acme", vec![new_event(json!({"action": "a:b"}))]);
    let bad = batch("nobody", vec![new_event(json!({"action": "a:b"}))]);
    let (g, b) = futures::future::join(store.append(good), store.append(bad)).await;
    assert_eq!(g.unwrap().len(), 1);
    assert!(matches!(b, Err(StoreError::UnknownOrg(_))), "{b:?}");
    assert_eq!(store.scan("acme", 0, 10).await.unwrap().len(), 1);
    // Bad batches among many concurrent good ones (so in the same group commits):
    // each bad one fails alone, every good one is stored once, seqs stay contiguous.
    let tasks = (0..40).map(|i| async move {
        let org = if i % 5 == 3 { "nobody" } else { "acme" };
        let evs = (0..(1 + i % 4)).map(|j| new_event(json!({"action": "a:b", "request_id": format!("{i}-{j}")})));
        (org, store.append(batch(org, evs.collect())).await)
    });
    let mut seqs = vec![0]; // the good event above
    for (org, r) in join_all(tasks).await {
        match org {
            "nobody" => assert!(matches!(r, Err(StoreError::UnknownOrg(_))), "{r:?}"),
            _ => seqs.extend(r.unwrap().iter().map(|a| a.seq)),
        }
    }
    seqs.sort();
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
    assert_eq!(store.scan("acme", 0, 1000).await.unwrap().len(), seqs.len());
}

pub async fn leaf_bytes_round_trip(store: &dyn Store) {
    seed_org(store, "acme").await;
    let raw = json!({
        "timestamp": "2024-03-01T10:30:00+02:00", "action": "Service.Deploy", "status_code": 500,
        "actor": {"id": "u1", "name": "Ünïcödé 名前", "email": "a@b.c", "type": "user"},
        "details": {"big": 12345678901234567u64, "float": 1.5, "nested": {"z": 1, "a": [1, "x", null]}},
        "before": {"replicas": 2}, "after": {"replicas": 3}, "error": "boom"
    });
    let b = batch("acme", vec![new_event(raw)]);
    let (id, new) = b.events[0].clone();
    let ack = store.append(b).await.unwrap()[0];
    assert_eq!(ack.id, id);
    let leaf = store.get(Scope::org("acme"), id).await.unwrap().unwrap();
    let expected = Event::from_new(new, id, "acme", ack.seq, NOW);
    assert_eq!(leaf, expected.to_leaf());
    let ev = Event::from_leaf(&leaf).unwrap();
    assert_eq!(ev.action, "service:deploy");
    assert_eq!(ev.result, Outcome::Failed);
    assert_eq!(ev.timestamp.to_rfc3339(), "2024-03-01T08:30:00Z");
    assert_eq!(store.scan("acme", 0, 1).await.unwrap()[0].1, leaf);
}

pub async fn idempotency_keys_are_honoured(store: &dyn Store) {
    seed_org(store, "acme").await;
    seed_org(store, "globex").await;
    let ev = |k: &str| new_event(json!({"action": "a:b", "idempotency_key": k}));
    let first = store.append(batch("acme", vec![ev("k1"), ev("k2"), ev("k1")])).await.unwrap();
    assert_eq!(first[0].id, first[2].id);
    assert!(first[2].duplicate && !first[0].duplicate);
    let again = store.append(batch("acme", vec![ev("k2"), ev("k3")])).await.unwrap();
    assert_eq!(again[0].id, first[1].id);
    assert!(again[0].duplicate);
    assert_eq!(again[1].seq, 2);
    // Keys are per organization.
    let other = store.append(batch("globex", vec![ev("k1")])).await.unwrap();
    assert!(!other[0].duplicate);
    assert_eq!(store.scan("acme", 0, 100).await.unwrap().len(), 3);
}

pub async fn concurrent_appends_are_all_kept(store: &dyn Store) {
    seed_org(store, "acme").await;
    seed_org(store, "globex").await;
    let tasks = (0..64).map(|i| async move {
        let org = if i % 3 == 0 { "globex" } else { "acme" };
        let evs = (0..(1 + i % 5)).map(|j| new_event(json!({"action": "a:b", "request_id": format!("{i}-{j}")})));
        (org, store.append(batch(org, evs.collect())).await.unwrap())
    });
    let results = join_all(tasks).await;
    for org in ["acme", "globex"] {
        let mut seqs: Vec<u64> =
            results.iter().filter(|(o, _)| *o == org).flat_map(|(_, a)| a.iter().map(|x| x.seq)).collect();
        seqs.sort();
        assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>(), "{org}");
        let stored = store.scan(org, 0, 10_000).await.unwrap();
        assert_eq!(stored.len(), seqs.len());
    }
}

/// The same idempotency key from many concurrent requests (one group commit, or
/// several): one event stored, every caller told its id.
pub async fn concurrent_duplicates_are_stored_once(store: &dyn Store) {
    seed_org(store, "acme").await;
    let tasks = (0..32).map(|i| async move {
        let evs = vec![
            new_event(json!({"action": "a:b", "idempotency_key": "same"})),
            new_event(json!({"action": "a:b", "request_id": format!("own-{i}")})),
        ];
        store.append(batch("acme", evs)).await.unwrap()
    });
    let results = join_all(tasks).await;
    let ids: HashSet<Uuid> = results.iter().map(|a| a[0].id).collect();
    assert_eq!(ids.len(), 1, "every caller gets the first event's id");
    assert_eq!(results.iter().filter(|a| !a[0].duplicate).count(), 1);
    let stored = store.scan("acme", 0, 1000).await.unwrap();
    assert_eq!(stored.len(), 33);
    let mut seqs: Vec<u64> = results.iter().flat_map(|a| a.iter().filter(|x| !x.duplicate).map(|x| x.seq)).collect();
    seqs.sort();
    assert_eq!(seqs, (0..33).collect::<Vec<u64>>());
}

/// Callers that give up while their append is in flight (a client hanging up) leave
/// the other callers' appends intact, and the log stays contiguous.
pub async fn abandoned_appends_do_not_fail_others(store: &dyn Store) {
    seed_org(store, "acme").await;
    let tasks = (0..48).map(|i| async move {
        let ev = new_event(json!({"action": "a:b", "request_id": format!("r{i}")}));
        let append = store.append(batch("acme", vec![ev]));
        if i % 4 == 0 {
            // Gives up almost at once, possibly while leading a group.
            let _ = tokio::time::timeout(std::time::Duration::from_micros(50 * i as u64), append).await;
            None
        } else {
            Some(append.await.unwrap()[0].seq)
        }
    });
    let acked: Vec<u64> = join_all(tasks).await.into_iter().flatten().collect();
    assert_eq!(acked.len(), 36);
    // The log has no gaps; every acknowledged seq is in it.
    let after = store.append(batch("acme", vec![new_event(json!({"action": "a:b"}))])).await.unwrap()[0].seq;
    let stored: Vec<u64> = store.scan("acme", 0, 1000).await.unwrap().into_iter().map(|(s, _)| s).collect();
    assert_eq!(stored, (0..=after).collect::<Vec<u64>>());
    assert!(acked.iter().all(|s| stored.contains(s)));
}

/// Retention: expired events (per category) go to archive files and leave the store;
/// the tree stays whole (proofs of archived entries verify against a root recomputed
/// from archive and store), reads merge both in time order, new events continue the
/// log, and a second run finds nothing.
pub async fn retention_archives_then_deletes(store: &dyn Store) {
    use crate::archive::{self, Archive, Retention};
    use trail_core::merkle;
    seed_org(store, "acme").await;
    let day = 86_400_000_000i64;
    let mut evs = Vec::new();
    for i in 0..30i64 {
        let (cat, age) = match i % 3 {
            0 => ("auth", 400),
            1 => ("service", 200),
            _ => ("service", 1),
        };
        let ts = Timestamp(NOW.0 - age * day - i * 1_000_000).to_rfc3339_micros();
        let mut v = json!({"action": format!("{cat}:update"), "timestamp": ts, "details": {"word": format!("w{i}z")}});
        if i % 5 == 0 {
            v["idempotency_key"] = json!(format!("k{i}"));
        }
        evs.push(new_event(v));
    }
    store.append(batch("acme", evs)).await.unwrap();
    let all: Vec<(u64, Vec<u8>)> = store.scan("acme", 0, 100).await.unwrap();
    let dir = std::env::temp_dir().join(format!("trail-archive-{}", Uuid::now_v7()));
    let arch = Archive::new(&dir);
    let rules = Retention { default_days: 90, categories: [("auth".to_string(), 365)].into(), key_days: None };
    let reports = archive::run(store, &arch, &rules, NOW).await.unwrap();
    assert_eq!((reports[0].archived, reports[0].deleted), (20, 20), "{reports:?}");
    // The store keeps the recent ten; the archive holds the other twenty's exact bytes.
    let online = store.scan("acme", 0, 100).await.unwrap();
    assert_eq!(online.iter().map(|(s, _)| *s).collect::<Vec<_>>(), (0..30).filter(|s| s % 3 == 2).collect::<Vec<_>>());
    let files = store.archives(Some("acme")).await.unwrap();
    let mut archived: Vec<Vec<u8>> = Vec::new();
    for f in &files {
        archived.extend(arch.read(f).await.unwrap());
    }
    archived.sort_by_key(|l| Event::from_leaf(l).unwrap().seq);
    let want: Vec<Vec<u8>> = all.iter().filter(|(s, _)| s % 3 != 2).map(|(_, l)| l.clone()).collect();
    assert_eq!(archived, want);
    // Search no longer finds archived events; it still finds kept ones.
    let q = |w: &str| Filter { q: vec![w.to_string()], ..Filter::default() };
    assert!(list_all(store, Scope::org("acme"), q("w0z"), 50).await.is_empty());
    assert_eq!(list_all(store, Scope::org("acme"), q("w2z"), 50).await.len(), 1);
    // The tree is whole: an archived entry's proof verifies against the full root.
    let hashes: Vec<merkle::Hash> = all.iter().map(|(_, l)| merkle::leaf_hash(l)).collect();
    let root = merkle::root(&hashes);
    let proof = store.inclusion_proof("acme", 3, 30).await.unwrap();
    assert!(merkle::verify_inclusion(3, 30, &hashes[3], &proof, &root));
    // Reads of any period merge archive and store in time order.
    let mut rx =
        archive::merged(store, std::sync::Arc::new(arch.clone()), Scope::org("acme"), Filter::default(), NOW, 7)
            .await
            .unwrap();
    let mut merged = Vec::new();
    while let Some(chunk) = rx.recv().await {
        merged.extend(chunk.unwrap());
    }
    let mut by_time = all.iter().map(|(_, l)| l.clone()).collect::<Vec<_>>();
    by_time.sort_by_key(|l| {
        let e = Event::from_leaf(l).unwrap();
        (e.timestamp, e.seq)
    });
    assert_eq!(merged, by_time);
    // An archived event's idempotency key is still known: a resend is the same event.
    let resend = store.append(batch("acme", vec![new_event(json!({"action": "a:b", "idempotency_key": "k0"}))])).await;
    let resend = resend.unwrap()[0];
    assert_eq!((resend.seq, resend.duplicate), (0, true));
    assert_eq!(Some(resend.id), Event::from_leaf(&all[0].1).ok().map(|e| e.id));
    // New events continue the log.
    let more = store.append(batch("acme", vec![new_event(json!({"action": "a:b", "idempotency_key": "new"}))])).await;
    assert_eq!(more.unwrap()[0].seq, 30);
    let again = archive::run(store, &arch, &rules, NOW).await.unwrap();
    assert_eq!((again[0].archived, again[0].keys_forgotten), (0, 0));
    // Keys are forgotten once older than their period (here one day, two days on).
    let short = Retention { key_days: Some(1), ..rules.clone() };
    let later = archive::run(store, &arch, &short, Timestamp(NOW.0 + 2 * day)).await.unwrap();
    assert_eq!(later[0].keys_forgotten, 7, "{later:?}");
    let anew = store.append(batch("acme", vec![new_event(json!({"action": "a:b", "idempotency_key": "k0"}))])).await;
    assert_eq!(anew.unwrap()[0].seq, 31);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Random but realistic events, for model-based checks.
pub fn random_events(rng: &mut StdRng, n: usize) -> Vec<serde_json::Value> {
    let cats = ["auth", "service", "user", "secret", "vpn", "audit"];
    let ops = ["login", "create", "delete", "deploy", "update", "view"];
    // Lower- and upper-case names, so that sorts are seen to ignore case.
    let people = [
        ("u1", "Alice Smith", "alice@acme.com"),
        ("u2", "Bob", "bob@globex.com"),
        ("u3", "john", "john@acme.com"),
        ("u4", "aaron", "Aaron@acme.com"),
    ];
    let results = ["DONE", "FAILED", "PROCESSING", "PENDING"];
    (0..n)
        .map(|i| {
            let (id, name, email) = *people.choose(rng).unwrap();
            let mut v = json!({
                "timestamp": Timestamp(NOW.0 - rng.random_range(0..200) * 3_600_000_000 - i as i64).to_rfc3339(),
                "action": format!("{}:{}", cats.choose(rng).unwrap(), ops.choose(rng).unwrap()),
                "result": results.choose(rng).unwrap(),
                "actor": {"id": id, "name": name, "email": email, "type": "user"},
            });
            if rng.random_bool(0.7) {
                let code = *[200, 201, 403, 500].choose(rng).unwrap();
                v["status_code"] = json!(code);
            }
            if rng.random_bool(0.8) {
                let ip = *["10.0.0.1", "10.0.3.7", "192.168.1.100", "2001:db8::1"].choose(rng).unwrap();
                v["source_ip"] = json!(ip);
            }
            if rng.random_bool(0.5) {
                v["request_id"] = json!(format!("req-{}", rng.random_range(0..20)));
            }
            if rng.random_bool(0.6) {
                let kind = *["service", "secret"].choose(rng).unwrap();
                let name = *["vpc-prod", "api", "db-main"].choose(rng).unwrap();
                let id = format!("res-{}", rng.random_range(0..10));
                v["resource"] = json!({"type": kind, "id": id, "name": name});
            }
            if rng.random_bool(0.5) {
                let cluster = *["c1", "c2"].choose(rng).unwrap();
                let namespace = *["default", "kube-system"].choose(rng).unwrap();
                v["context"] = json!({"workspace": {"id": "w1", "name": "Prod"}, "project": "p1",
                    "cluster": cluster, "namespace": namespace});
            }
            v
        })
        .collect()
}

/// Reads every page of a query.
pub async fn list_all(store: &dyn Store, scope: Scope, filter: Filter, limit: usize) -> Vec<Event> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let q = ListQuery { scope: scope.clone(), filter: filter.clone(), now: NOW, cursor, limit };
        let page = store.list(q).await.unwrap();
        out.extend(page.events.iter().map(|l| Event::from_leaf(l).unwrap()));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
        assert!(out.len() < 100_000, "pagination does not end");
    }
}

pub(super) async fn seed_random(store: &dyn Store, n: usize) -> Vec<Event> {
    seed_org(store, "acme").await;
    seed_org(store, "globex").await;
    let mut rng = StdRng::seed_from_u64(7);
    let raw = random_events(&mut rng, n);
    for (i, chunk) in raw.chunks(50).enumerate() {
        let org = if i % 3 == 2 { "globex" } else { "acme" };
        store.append(batch(org, chunk.iter().cloned().map(new_event).collect())).await.unwrap();
    }
    let mut all = list_all(store, Scope::all(), Filter::default(), 1000).await;
    all.sort_by_key(|e| (std::cmp::Reverse(e.timestamp), e.id));
    assert_eq!(all.len(), n);
    all
}

pub async fn filters_match_the_model(store: &dyn Store) {
    let all = seed_random(store, 600).await;
    let filters = [
        "",
        "category:auth",
        "type:auth,vpn",
        "operation:login",
        "action:service:deploy",
        "result:FAILED",
        "result:PENDING,PROCESSING",
        "result:PENDING",
        "result:FAILED,PENDING",
        "status:success",
        "views:hide",
        "category:audit views:hide",
        "status:failure",
        "actor:alice@acme.com",
        "actor:u2",
        "actor:\"Alice Smith\"",
        "actor:john@",
        "actor:ALICE@ACME.COM",
        "company:globex",
        "request_id:req-3",
        "resource:vpc-prod",
        "resource:res-4",
        "resource_type:secret",
        "workspace:w1",
        "workspace:prod",
        "project:p1",
        "cluster:c2",
        "namespace:kube-system",
        "ip:10.0.0.0/16",
        "ip:192.168.1.100",
        "ip:2001:db8::/32",
        "period:24h",
        "period:7d",
        "created:>=2024-03-05 created:<=2024-03-07",
        "category:auth result:FAILED actor:john@",
        "category:nothing",
        "company:nobody",
        "cluster:c1 namespace:default status:success ip:10.0.0.0/8",
    ];
    for text in filters {
        let f = trail_core::query::parse(text).unwrap();
        let scopes = [
            Scope::all(),
            Scope::org("acme"),
            Scope::org("acme").with_categories(Categories::Except(vec!["auth".into()])),
            Scope::all().with_categories(Categories::Only(vec!["auth".into(), "secret".into()])),
        ];
        for scope in scopes {
            let got: Vec<Uuid> = list_all(store, scope.clone(), f.clone(), 37).await.iter().map(|e| e.id).collect();
            let want: Vec<Uuid> = all
                .iter()
                .filter(|e| f.matches(e, NOW))
                .filter(|e| scope.allows(&e.org, e.category()))
                .map(|e| e.id)
                .collect();
            assert_eq!(got.len(), want.len(), "filter {text:?} in {scope:?}");
            let (g, w): (HashSet<_>, HashSet<_>) = (got.iter().collect(), want.iter().collect());
            assert_eq!(g, w, "filter {text:?} in {scope:?}");
        }
    }
    // Newest first, exactly as the model orders ties (by storage order, which for
    // these events is id order).
    let got = list_all(store, Scope::all(), Filter::default(), 50).await;
    let ts: Vec<_> = got.iter().map(|e| e.timestamp).collect();
    assert!(ts.windows(2).all(|w| w[0] >= w[1]));
}

pub async fn pages_cover_every_sort_without_overlap(store: &dyn Store) {
    let all = seed_random(store, 250).await;
    for field in SortField::ALL {
        for desc in [true, false] {
            let f = Filter { sort: Sort { field, desc }, ..Filter::default() };
            let got = list_all(store, Scope::all(), f, 23).await;
            let ids: HashSet<Uuid> = got.iter().map(|e| e.id).collect();
            assert_eq!(ids.len(), all.len(), "{field:?} desc={desc}: duplicates or gaps");
            if field == SortField::Timestamp {
                let ts: Vec<_> = got.iter().map(|e| e.timestamp).collect();
                assert!(ts.windows(2).all(|w| if desc { w[0] >= w[1] } else { w[0] <= w[1] }));
            }
            // Text sorts ignore case ("trail command line" before "Zoë").
            if field == SortField::Performer {
                let keys: Vec<String> = got
                    .iter()
                    .map(|e| {
                        let a = e.actor.as_ref();
                        a.and_then(|a| a.name.clone().or(a.email.clone())).unwrap_or_default().to_ascii_lowercase()
                    })
                    .collect();
                assert!(keys.windows(2).all(|w| if desc { w[0] >= w[1] } else { w[0] <= w[1] }), "{keys:?}");
            }
            if field == SortField::Email {
                let keys: Vec<String> =
                    got.iter().map(|e| e.actor.as_ref().and_then(|a| a.email.clone()).unwrap_or_default()).collect();
                assert!(keys.windows(2).all(|w| if desc { w[0] >= w[1] } else { w[0] <= w[1] }));
            }
        }
    }
}

pub async fn search_finds_words_phrases_and_prefixes(store: &dyn Store) {
    seed_org(store, "acme").await;
    let evs = vec![
        new_event(json!({"action": "deployment:failed", "resource": {"name": "api-infrastructure"},
            "actor": {"email": "sarah@acme.com"}, "error": "Policy violation: S3 encryption required"})),
        new_event(json!({"action": "project:file_updated", "resource": {"name": "main.tf"},
            "actor": {"email": "sarah@acme.com"}, "details": {"file": "vpc-prod/network.tf", "lines": 42}})),
        new_event(json!({"action": "auth:login", "actor": {"email": "john@example.com"}})),
    ];
    store.append(batch("acme", evs)).await.unwrap();
    let check = |q: &'static str, want: Vec<&'static str>| async move {
        let f = trail_core::query::parse(q).unwrap();
        let got = list_all(store, Scope::org("acme"), f, 50).await;
        let mut got: Vec<String> = got.into_iter().map(|e| e.action).collect();
        got.sort();
        let mut want: Vec<String> = want.into_iter().map(String::from).collect();
        want.sort();
        assert_eq!(got, want, "q={q}");
    };
    check("deploy", vec!["deployment:failed"]).await;
    check("john@", vec!["auth:login"]).await;
    check("\"vpc-prod\"", vec!["project:file_updated"]).await;
    check("vpc-prod", vec!["project:file_updated"]).await;
    check("failed", vec!["deployment:failed"]).await;
    check("encryption", vec!["deployment:failed"]).await;
    check("sarah@acme.com", vec!["deployment:failed", "project:file_updated"]).await;
    check("sarah encryption", vec!["deployment:failed"]).await;
    check("42", vec!["project:file_updated"]).await;
    check("encr", vec!["deployment:failed"]).await;
    check("ENCRYPTION", vec!["deployment:failed"]).await;
    // A one-character word is no prefix (it would stand for a large share of every
    // word): it matches only itself.
    check("4", vec![]).await;
    check("42", vec!["project:file_updated"]).await;
    check("netw", vec!["project:file_updated"]).await;
    check("s3 encryption", vec!["deployment:failed"]).await;
    check("\"encryption required\"", vec!["deployment:failed"]).await;
    check("\"required encryption\"", vec![]).await;
    check("nothing-here", vec![]).await;
    check("\"\\\"\" OR", vec![]).await;
    check("*", vec!["auth:login", "deployment:failed", "project:file_updated"]).await;
    // Words beyond ASCII, repeated words and a word too long for any index.
    let long = "x".repeat(3000);
    let evs = vec![new_event(json!({"action": "config:changed", "resource": {"name": "Zürich Zürich"},
        "details": {"note": format!("Überprüfung {long} Überprüfung")}}))];
    store.append(batch("acme", evs)).await.unwrap();
    check("zürich", vec!["config:changed"]).await;
    check("ZÜRICH", vec!["config:changed"]).await;
    check("überprüf", vec!["config:changed"]).await;
    // A phrase of plain words in many events, read in pages smaller than its matches
    // (PostgreSQL first looks for such pages among the newest rows only).
    let evs = (0..13)
        .map(|i| {
            let (action, text) =
                if i % 2 == 0 { ("image:pulled", "Image pull failed") } else { ("image:other", "pull the image") };
            new_event(json!({"action": action, "error": format!("{text} #{i}")}))
        })
        .collect();
    store.append(batch("acme", evs)).await.unwrap();
    let f = trail_core::query::parse("\"image pull\"").unwrap();
    let whole = list_all(store, Scope::org("acme"), f.clone(), 50).await;
    let paged = list_all(store, Scope::org("acme"), f.clone(), 2).await;
    assert_eq!(whole.len(), 7, "{whole:?}");
    assert!(whole.iter().all(|e| e.action == "image:pulled"));
    let ids = |v: &[Event]| v.iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(ids(&paged), ids(&whole), "pages of 2 give the same events in the same order");
    let mut oldest_first = f;
    oldest_first.sort.desc = false;
    let mut asc = ids(&list_all(store, Scope::org("acme"), oldest_first, 3).await);
    asc.reverse();
    assert_eq!(asc, ids(&whole), "oldest first is the reverse");
}

pub async fn scopes_hide_other_orgs(store: &dyn Store) {
    seed_org(store, "acme").await;
    seed_org(store, "globex").await;
    let a = append_n(store, "acme", 3).await;
    let g = append_n(store, "globex", 2).await;
    assert!(store.get(Scope::org("globex"), a[0].id).await.unwrap().is_none());
    assert!(store.get(Scope::org("acme"), a[0].id).await.unwrap().is_some());
    assert!(store.get(Scope::all(), g[0].id).await.unwrap().is_some());
    assert!(store.get(Scope::all(), Uuid::now_v7()).await.unwrap().is_none());
    let only = list_all(store, Scope::org("acme"), Filter::default(), 50).await;
    assert!(only.iter().all(|e| e.org == "acme") && only.len() == 3);
    // Naming another organization in the company filter does not widen the scope.
    let f = trail_core::query::parse("company:globex").unwrap();
    assert!(list_all(store, Scope::org("acme"), f, 50).await.is_empty());
}

pub async fn facets_count_what_the_scope_sees(store: &dyn Store) {
    let all = seed_random(store, 300).await;
    let facets = store.facets(Scope::org("acme"), Filter::default(), NOW).await.unwrap();
    let acme: Vec<&Event> = all.iter().filter(|e| e.org == "acme").collect();
    assert_eq!(facets.total, acme.len() as u64);
    let auth = acme.iter().filter(|e| e.category() == "auth").count() as u64;
    assert_eq!(facets.categories.iter().find(|c| c.value == "auth").map(|c| c.count), Some(auth));
    let failed = acme.iter().filter(|e| e.result == Outcome::Failed).count() as u64;
    assert_eq!(facets.results.iter().find(|c| c.value == "FAILED").map(|c| c.count), Some(failed));
    assert_eq!(facets.companies.len(), 1);
    let alice = facets.users.iter().find(|u| u.value == "alice@acme.com").unwrap();
    assert_eq!(alice.label.as_deref(), Some("Alice Smith"));
    let platform = store.facets(Scope::all(), Filter::default(), NOW).await.unwrap();
    assert_eq!(platform.total, all.len() as u64);
    assert_eq!(platform.companies.len(), 2);
}

pub async fn streams_and_counts_match_the_list(store: &dyn Store) {
    let all = seed_random(store, 300).await;
    for text in ["", "category:auth", "result:FAILED actor:john@", "sort:email", "sort:-ip", "company:globex", "deploy"]
    {
        let f = trail_core::query::parse(text).unwrap();
        for scope in [Scope::all(), Scope::org("acme").with_categories(Categories::Except(vec!["auth".into()]))] {
            let listed = list_all(store, scope.clone(), f.clone(), 41).await;
            let ids: Vec<Uuid> = listed.iter().map(|e| e.id).collect();
            // Small chunks span scattered seqs, large ones dense runs of them.
            for size in [7, 120] {
                let q = ListQuery { scope: scope.clone(), filter: f.clone(), now: NOW, cursor: None, limit: 1 };
                let mut rx = store.stream(q, size).await.unwrap();
                let mut streamed = Vec::new();
                while let Some(chunk) = rx.recv().await {
                    let chunk = chunk.unwrap();
                    assert!(chunk.len() <= size);
                    streamed.extend(chunk.iter().map(|l| Event::from_leaf(l).unwrap().id));
                }
                assert_eq!(streamed, ids, "{text:?} in {scope:?}, chunks of {size}: same events, same order");
            }
            assert_eq!(store.count(scope.clone(), f.clone(), NOW).await.unwrap(), ids.len() as u64, "{text:?}");
        }
    }
    assert!(!all.is_empty());
    // A reader that stops early ends the stream without error.
    let q = ListQuery { scope: Scope::all(), filter: Filter::default(), now: NOW, cursor: None, limit: 1 };
    let mut rx = store.stream(q, 5).await.unwrap();
    assert_eq!(rx.recv().await.unwrap().unwrap().len(), 5);
    drop(rx);
}

pub async fn category_scopes_hide_events_everywhere(store: &dyn Store) {
    seed_org(store, "acme").await;
    let evs = vec![
        new_event(
            json!({"action": "secret:read", "resource": {"name": "db-password"}, "actor": {"email": "eve@acme.com"}}),
        ),
        new_event(
            json!({"action": "auth:login", "resource": {"name": "db-password"}, "actor": {"email": "ann@acme.com"}}),
        ),
    ];
    let acks = store.append(batch("acme", evs)).await.unwrap();
    let no_secret = Scope::org("acme").with_categories(Categories::Except(vec!["secret".into()]));
    assert!(store.get(no_secret.clone(), acks[0].id).await.unwrap().is_none());
    assert!(store.get(no_secret.clone(), acks[1].id).await.unwrap().is_some());
    for q in ["db-password", "secret", "eve", "category:secret", "action:secret:read", "actor:eve@acme.com", "*"] {
        let got = list_all(store, no_secret.clone(), trail_core::query::parse(q).unwrap(), 50).await;
        assert!(got.iter().all(|e| e.category() != "secret"), "q={q}");
    }
    let facets = store.facets(no_secret.clone(), Filter::default(), NOW).await.unwrap();
    assert_eq!(facets.total, 1);
    assert!(facets.categories.iter().all(|c| c.value != "secret"));
    assert!(facets.users.iter().all(|u| u.value != "eve@acme.com"));
    let nothing = Scope::org("acme").with_categories(Categories::Only(vec![]));
    assert!(list_all(store, nothing.clone(), Filter::default(), 50).await.is_empty());
    assert_eq!(store.facets(nothing, Filter::default(), NOW).await.unwrap().total, 0);
}

pub async fn bad_cursors_are_invalid(store: &dyn Store) {
    seed_org(store, "acme").await;
    append_n(store, "acme", 5).await;
    let q = |cursor: &str, sort: &str| ListQuery {
        scope: Scope::all(),
        filter: Filter { sort: Sort::parse(sort).unwrap(), ..Filter::default() },
        now: NOW,
        cursor: Some(cursor.into()),
        limit: 2,
    };
    for bad in ["garbage", "", "WzEsIi10aW1lc3RhbXAiLHt9LDEsMl0"] {
        assert!(matches!(store.list(q(bad, "-timestamp")).await, Err(StoreError::Invalid { .. })), "{bad}");
    }
    let first = store.list(ListQuery { cursor: None, ..q("", "-timestamp") }).await.unwrap();
    let c = first.next_cursor.unwrap();
    assert!(matches!(store.list(q(&c, "email")).await, Err(StoreError::Invalid { .. })));
    assert_eq!(store.list(q(&c, "-timestamp")).await.unwrap().events.len(), 2);
}
