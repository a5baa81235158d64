//! The store's behaviour as a model, the way vector tests its disk buffer: random
//! sequences of appends (some resending idempotency keys, within a batch and across
//! batches), lists with random filters and page sizes, retention runs and verifications
//! run against the store and against a plain in-memory model, which must agree after
//! every step. Each case has an organization of its own in the store it is given.
//!
//! Not modelled here: `Restore`, which only the PostgreSQL backend implements (the
//! migrate-store tests copy a store and verify the copy).

use std::{
    collections::HashMap,
    sync::atomic::{AtomicUsize, Ordering},
};

use proptest::{prelude::*, test_runner::TestRunner};
use rand::{rngs::StdRng, SeedableRng};
use serde_json::json;
use trail_core::{merkle, Event, Timestamp};
use uuid::Uuid;

use super::{batch, list_all, new_event, random_events, seed_org, NOW};
use crate::{
    archive::{self, Archive, Retention},
    verify::{verify, VerifyOptions},
    Scope, Store,
};

const DAY: i64 = 86_400_000_000;
/// How old events are, in days: far from every retention period below, so that which
/// side of a cutoff an event falls is never a matter of where a day starts.
const AGES: [i64; 6] = [0, 10, 45, 100, 200, 400];
const PERIODS: [u32; 4] = [30, 90, 180, 365];
const FILTERS: [&str; 12] = [
    "",
    "category:auth",
    "type:auth,vpn",
    "result:FAILED",
    "status:failure",
    "actor:alice@acme.com",
    "resource_type:secret",
    "ip:10.0.0.0/16",
    "cluster:c2 namespace:default",
    "period:7d",
    "created:<2024-01-01",
    "category:service result:DONE,PENDING",
];

/// One step of a case.
#[derive(Debug, Clone)]
enum Op {
    /// A batch: per event, its age (an index into `AGES`) and maybe an idempotency key
    /// from a small pool, so that resends happen.
    Append {
        seed: u64,
        events: Vec<(usize, Option<u8>)>,
    },
    List {
        filter: usize,
        limit: usize,
    },
    Retention {
        period: usize,
    },
    Verify {
        proof_at: prop::sample::Index,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let events = prop::collection::vec((0..AGES.len(), prop::option::weighted(0.4, 0u8..6)), 1..12);
    prop_oneof![
        4 => (any::<u64>(), events).prop_map(|(seed, events)| Op::Append { seed, events }),
        3 => (0..FILTERS.len(), 1usize..40).prop_map(|(filter, limit)| Op::List { filter, limit }),
        1 => (0..PERIODS.len()).prop_map(|period| Op::Retention { period }),
        1 => any::<prop::sample::Index>().prop_map(|proof_at| Op::Verify { proof_at }),
    ]
}

/// What the store should hold of one organization.
#[derive(Default)]
struct Model {
    /// Every event in seq order, and whether retention archived it.
    events: Vec<(Event, bool)>,
    /// Each event's leaf hash, in seq order.
    hashes: Vec<merkle::Hash>,
    /// Idempotency keys and the event each first came with.
    keys: HashMap<String, (Uuid, u64)>,
}

pub async fn the_store_behaves_like_its_model(store: &dyn Store) {
    let cases = AtomicUsize::new(0);
    let dir = tempfile::tempdir().unwrap();
    let archive = Archive::new(dir.path());
    let config = proptest::test_runner::Config { cases: 32, failure_persistence: None, ..Default::default() };
    let mut runner = TestRunner::new(config);
    let handle = tokio::runtime::Handle::current();
    let outcome = runner.run(&prop::collection::vec(op(), 1..10), |ops| {
        let org = format!("model{}", cases.fetch_add(1, Ordering::Relaxed));
        tokio::task::block_in_place(|| handle.block_on(run_case(store, &archive, &org, ops)))
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

async fn run_case(store: &dyn Store, archive: &Archive, org: &str, ops: Vec<Op>) -> Result<(), TestCaseError> {
    seed_org(store, org).await;
    let mut model = Model::default();
    for op in ops {
        match op {
            Op::Append { seed, events } => append(store, org, &mut model, seed, &events).await?,
            Op::List { filter, limit } => {
                let f = trail_core::query::parse(FILTERS[filter]).unwrap();
                let listed = list_all(store, Scope::org(org), f.clone(), limit).await;
                // Every page newest first, and together exactly the online events that match.
                prop_assert!(listed.windows(2).all(|w| w[0].timestamp >= w[1].timestamp));
                let mut got: Vec<Uuid> = listed.iter().map(|e| e.id).collect();
                let mut want: Vec<Uuid> = model
                    .events
                    .iter()
                    .filter(|(e, archived)| !archived && f.matches(e, NOW))
                    .map(|(e, _)| e.id)
                    .collect();
                got.sort();
                want.sort();
                prop_assert_eq!(got, want, "filter {:?}, page size {}", FILTERS[filter], limit);
            }
            Op::Retention { period } => {
                let rules = Retention { default_days: PERIODS[period], categories: Default::default(), key_days: None };
                archive::run(store, archive, &rules, NOW).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
                let cutoff = Retention::cutoff(PERIODS[period], NOW).0;
                for (e, archived) in &mut model.events {
                    *archived |= e.timestamp.0 < cutoff;
                }
                let online: Vec<u64> = store.scan(org, 0, 10_000).await.unwrap().iter().map(|(s, _)| *s).collect();
                let want: Vec<u64> = model.events.iter().filter(|(_, a)| !a).map(|(e, _)| e.seq).collect();
                prop_assert_eq!(online, want, "online after retention at {} days", PERIODS[period]);
            }
            Op::Verify { proof_at } => {
                let opts = VerifyOptions { vkey: "", archive: Some(archive), ..Default::default() };
                let report = verify(store, org, opts).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
                let archived = model.events.iter().filter(|(_, a)| *a).count() as u64;
                prop_assert_eq!((report.entries, report.archived), (model.events.len() as u64, archived));
                // Nothing is signed in these stores (no key): the only findings may be
                // about checkpoints, never about an entry.
                let named: Vec<String> =
                    report.findings.iter().filter(|f| f.seq.is_some()).map(ToString::to_string).collect();
                prop_assert!(named.is_empty(), "{}", named.join("\n"));
                if !model.hashes.is_empty() {
                    let n = model.hashes.len() as u64;
                    let i = proof_at.index(model.hashes.len());
                    let proof = store.inclusion_proof(org, i as u64, n).await.unwrap();
                    let root = merkle::root(&model.hashes);
                    prop_assert!(merkle::verify_inclusion(i as u64, n, &model.hashes[i], &proof, &root));
                }
            }
        }
    }
    Ok(())
}

async fn append(
    store: &dyn Store,
    org: &str,
    model: &mut Model,
    seed: u64,
    events: &[(usize, Option<u8>)],
) -> Result<(), TestCaseError> {
    let mut rng = StdRng::seed_from_u64(seed);
    let raw = random_events(&mut rng, events.len());
    let first = model.events.len() as u64;
    let mut sent = Vec::new();
    for (i, (mut v, (age, key))) in raw.into_iter().zip(events).enumerate() {
        v["timestamp"] = json!(Timestamp(NOW.0 - AGES[*age] * DAY - 1_000_000 * (i as i64 + 1)).to_rfc3339_micros());
        if let Some(k) = key {
            v["idempotency_key"] = json!(format!("key-{k}"));
        }
        sent.push(new_event(v));
    }
    let b = batch(org, sent.clone());
    let ids: Vec<Uuid> = b.events.iter().map(|(id, _)| *id).collect();
    let acks = store.append(b).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(acks.len(), sent.len());
    let mut next = first;
    for ((ack, ev), id) in acks.iter().zip(&sent).zip(ids) {
        let earlier = ev.idempotency_key.as_ref().and_then(|k| model.keys.get(k).copied());
        match earlier {
            Some((id0, seq0)) => prop_assert_eq!((ack.id, ack.seq, ack.duplicate), (id0, seq0, true)),
            None => {
                prop_assert_eq!((ack.id, ack.seq, ack.duplicate), (id, next, false));
                if let Some(k) = &ev.idempotency_key {
                    model.keys.insert(k.clone(), (id, next));
                }
                next += 1;
            }
        }
    }
    // The new entries as stored: the model keeps their events and leaf hashes.
    let stored = store.scan(org, first, (next - first) as usize).await.unwrap();
    prop_assert_eq!(stored.len() as u64, next - first);
    for (seq, leaf) in stored {
        let e = Event::from_leaf(&leaf).unwrap();
        prop_assert_eq!(e.seq, seq);
        model.hashes.push(merkle::leaf_hash(&leaf));
        model.events.push((e, false));
    }
    Ok(())
}
