//! Conformance of the per-day counts: facets and timelines, answered from the rollups
//! for whole days and from the events for partial ones, equal what the model counts,
//! before and after retention deletes events.

use std::collections::BTreeMap;

use trail_core::{Event, Filter, Outcome, Timestamp};

use super::{list_all, seed_random, NOW};
use crate::{rollup::Bucket, Categories, Facets, Scope, Store};

/// Facets as value → count maps, to compare without caring for order.
type Maps = [BTreeMap<String, u64>; 4];

fn maps(f: &Facets) -> Maps {
    let m = |v: &[crate::Count]| v.iter().map(|c| (c.value.to_lowercase(), c.count)).collect();
    [m(&f.categories), m(&f.results), m(&f.users), m(&f.companies)]
}

/// What facets must count: the events the scope sees within the filter's time range
/// and organizations.
fn model(all: &[Event], scope: &Scope, f: &Filter) -> (u64, Maps) {
    let within = Filter { period: f.period, from: f.from, to: f.to, company: f.company.clone(), ..Filter::default() };
    let mut out: Maps = Default::default();
    let mut total = 0;
    for e in all.iter().filter(|e| within.matches(e, NOW) && scope.allows(&e.org, e.category())) {
        total += 1;
        *out[0].entry(e.category().to_lowercase()).or_default() += 1;
        *out[1].entry(e.result.as_str().to_lowercase()).or_default() += 1;
        if let Some(email) = e.actor.as_ref().and_then(|a| a.email.as_ref()) {
            *out[2].entry(email.to_lowercase()).or_default() += 1;
        }
        *out[3].entry(e.org.clone()).or_default() += 1;
    }
    (total, out)
}

async fn check(store: &dyn Store, all: &[Event], when: &str) {
    let filters = [
        "",
        "period:today",
        "period:24h",
        "period:7d",
        "period:30d",
        "period:90d",
        "created:>=2024-03-05 created:<=2024-03-07",
        "created:>=2024-03-04T13:30:00Z created:<=2024-03-08T02:00:00Z",
        "created:>=2024-03-09T01:00:00Z created:<=2024-03-09T05:00:00Z",
        "company:globex period:7d",
        "category:auth period:7d",
        "result:FAILED,PENDING period:30d",
        "views:hide period:7d",
        "category:audit views:hide",
        "actor:alice@acme.com period:7d",
        "deploy period:7d",
        "resource_type:secret",
    ];
    let scopes = [
        Scope::all(),
        Scope::org("acme"),
        Scope::org("acme").with_categories(Categories::Except(vec!["auth".into()])),
        Scope::all().with_categories(Categories::Only(vec!["auth".into(), "audit".into()])),
    ];
    for text in filters {
        let f = trail_core::query::parse(text).unwrap();
        for scope in &scopes {
            let facets = store.facets(scope.clone(), f.clone(), NOW).await.unwrap();
            let (total, want) = model(all, scope, &f);
            assert_eq!(facets.total, total, "{when}: facets total of {text:?} in {scope:?}");
            assert_eq!(maps(&facets), want, "{when}: facets of {text:?} in {scope:?}");
            // The timeline counts the whole filter.
            let t = store.timeline(scope.clone(), f.clone(), NOW).await.unwrap();
            let matching: Vec<&Event> =
                all.iter().filter(|e| f.matches(e, NOW) && scope.allows(&e.org, e.category())).collect();
            assert!(t.exact);
            assert_eq!(t.total, matching.len() as u64, "{when}: timeline total of {text:?} in {scope:?}");
            let w = t.bucket.micros();
            let mut want_bars: BTreeMap<(i64, usize), u64> = BTreeMap::new();
            for e in &matching {
                let r = Outcome::ALL.iter().position(|o| *o == e.result).unwrap();
                *want_bars.entry((e.timestamp.0.div_euclid(w) * w, r)).or_default() += 1;
            }
            let mut got_bars = BTreeMap::new();
            for b in &t.bars {
                assert_eq!(b.start.0.rem_euclid(w), 0);
                for (r, n) in b.counts.iter().enumerate().filter(|(_, n)| **n > 0) {
                    got_bars.insert((b.start.0, r), *n);
                }
            }
            assert_eq!(got_bars, want_bars, "{when}: timeline of {text:?} in {scope:?}");
            let (from, _) = f.time_range(NOW);
            if let Some(from) = from {
                assert!(t.bars.first().is_some_and(|b| b.start.0 <= from.0), "{when}: {text:?} starts at its period");
            }
            let short = f.time_range(NOW).0.is_some_and(|from| NOW.0 - from.0 <= 2 * 86_400_000_000)
                && f.time_range(NOW).1.is_none();
            if short {
                assert_eq!(t.bucket, Bucket::Hour, "{text:?}");
            }
        }
    }
}

pub async fn rollups_count_like_the_events(store: &dyn Store) {
    use crate::archive::{self, Archive, Retention};
    let all = seed_random(store, 600).await;
    check(store, &all, "after appends").await;
    // Retention deletes everything older than five days: part of a day goes, so the
    // rollups of that day are counted down, not dropped.
    let dir = std::env::temp_dir().join(format!("trail-rollups-{}", uuid::Uuid::now_v7()));
    let rules = Retention { default_days: 5, categories: Default::default(), key_days: None };
    let reports = archive::run(store, &Archive::new(&dir), &rules, NOW).await.unwrap();
    assert!(reports.iter().map(|r| r.deleted).sum::<u64>() > 0, "{reports:?}");
    let kept = list_all(store, Scope::all(), Filter::default(), 1000).await;
    assert!(kept.len() < all.len());
    let cut = Timestamp(NOW.0 - 5 * 86_400_000_000);
    assert!(kept.iter().all(|e| e.timestamp >= cut));
    assert!(kept.iter().any(|e| e.timestamp.0.div_euclid(86_400_000_000) == cut.0.div_euclid(86_400_000_000)));
    check(store, &kept, "after retention").await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// For a backend's own migration test: stores events over several days and returns
/// what the rollups answer for them (facets and the timeline of the last 30 days).
pub async fn counts_before_backfill(store: &dyn Store) -> (Facets, crate::rollup::Timeline) {
    seed_random(store, 300).await;
    let f = trail_core::query::parse("period:30d").unwrap();
    let facets = store.facets(Scope::all(), f.clone(), NOW).await.unwrap();
    assert_eq!(facets.total, 300);
    (facets, store.timeline(Scope::all(), f, NOW).await.unwrap())
}

/// After the rollup tables were dropped and their migration ran again, the counts
/// are those of before.
pub async fn counts_after_backfill(store: &dyn Store, before: (Facets, crate::rollup::Timeline)) {
    let f = trail_core::query::parse("period:30d").unwrap();
    let facets = store.facets(Scope::all(), f.clone(), NOW).await.unwrap();
    assert_eq!(maps(&facets), maps(&before.0));
    assert_eq!(store.timeline(Scope::all(), f, NOW).await.unwrap(), before.1);
}
