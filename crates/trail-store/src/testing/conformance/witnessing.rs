//! The witnesses' state, on every backend: a lease one holder at a time (until it
//! ends), answers that release it, cosignatures kept per size and witness (a second
//! one of the same size replacing the first), and the newest cosigned sizes.

use trail_core::Timestamp;

use crate::{
    witnesses::{WitnessAnswer, WitnessStatus},
    Store,
};

pub async fn witnesses_are_leased_once_and_keep_their_cosignatures(store: &dyn Store) {
    let (t0, t1) = (Timestamp(1_000), Timestamp(2_000));
    let first = store.lease_witness("w1", "server-a", t0, t1).await.unwrap().expect("a new witness is leased");
    assert_eq!((first.size, first.status, first.failures), (0, WitnessStatus::Pending, 0));
    assert!(store.lease_witness("w1", "server-b", t0, t1).await.unwrap().is_none(), "one holder at a time");
    assert!(
        store.lease_witness("w1", "server-b", Timestamp(2_001), Timestamp(3_000)).await.unwrap().is_some(),
        "an ended lease is taken"
    );
    let answer = |size, status, cosignature: Option<&str>| WitnessAnswer {
        name: "w1".into(),
        size,
        status,
        detail: String::new(),
        failures: 0,
        retry_at: Timestamp(2_500),
        at: Timestamp(2_500),
        cosignature: cosignature.map(str::to_string),
    };
    store.witness_answered(answer(7, WitnessStatus::Cosigned, Some("— w1 AAAA\n"))).await.unwrap();
    assert!(
        store.lease_witness("w1", "server-a", Timestamp(2_600), Timestamp(4_000)).await.unwrap().is_some(),
        "answering releases"
    );
    store.witness_answered(answer(7, WitnessStatus::Cosigned, Some("— w1 BBBB\n"))).await.unwrap();
    store.lease_witness("w2", "server-a", t0, t1).await.unwrap();
    let mut refused = answer(9, WitnessStatus::Refused, None);
    refused.name = "w2".into();
    refused.failures = 3;
    store.witness_answered(refused).await.unwrap();
    store.lease_witness("w2", "server-a", Timestamp(3_000), Timestamp(4_000)).await.unwrap();
    let mut w2 = answer(7, WitnessStatus::Cosigned, Some("— w2 CCCC\n"));
    w2.name = "w2".into();
    store.witness_answered(w2).await.unwrap();
    let states = store.witness_states().await.unwrap();
    assert_eq!(
        states.iter().map(|s| (s.name.as_str(), s.size, s.status)).collect::<Vec<_>>(),
        [("w1", 7, WitnessStatus::Cosigned), ("w2", 7, WitnessStatus::Cosigned)]
    );
    assert_eq!(
        store.cosignatures(7).await.unwrap(),
        [("w1".to_string(), "— w1 BBBB\n".to_string()), ("w2".to_string(), "— w2 CCCC\n".to_string())]
    );
    assert!(store.cosignatures(9).await.unwrap().is_empty());
    assert_eq!(store.cosigned_sizes(5).await.unwrap(), [(7, vec!["w1".to_string(), "w2".to_string()])]);
}
