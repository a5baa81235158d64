//! Conformance of alerting's store: rules and destinations per organization, the
//! evaluator's position moved by one evaluation at a time, deliveries leased to one
//! worker at a time.

use futures::future::join_all;
use trail_core::Timestamp;

use super::seed_org;
use crate::{
    alerts::{AlertRule, DeliveryStatus, Destination, Evaluation, NewDelivery},
    Store,
};

fn rule(org: &str, name: &str) -> AlertRule {
    AlertRule {
        org: org.into(),
        name: name.into(),
        enabled: true,
        query: Some("category:auth".into()),
        threshold: 3,
        window_secs: 600,
        group_by: Some("actor".into()),
        quiet_secs: 900,
        destinations: vec![7],
    }
}

pub async fn alerting_state_is_kept_per_org_and_moved_once(store: &dyn Store) {
    seed_org(store, "acme").await;
    seed_org(store, "globex").await;
    // Rules: stored per organization, changed in place.
    store.put_alert_rule(rule("acme", "custom-a")).await.unwrap();
    store.put_alert_rule(AlertRule { threshold: 9, ..rule("acme", "custom-a") }).await.unwrap();
    store.put_alert_rule(rule("globex", "custom-g")).await.unwrap();
    let acme = store.alert_rules("acme").await.unwrap();
    assert_eq!(acme, vec![AlertRule { threshold: 9, ..rule("acme", "custom-a") }]);
    assert!(!store.delete_alert_rule("globex", "custom-a").await.unwrap());
    assert!(store.delete_alert_rule("acme", "custom-a").await.unwrap());
    assert!(store.alert_rules("acme").await.unwrap().is_empty());
    // Destinations: another organization's cannot be changed or deleted.
    let d = Destination {
        id: 0,
        org: "acme".into(),
        name: "hook".into(),
        kind: crate::alerts::DestinationKind::Webhook,
        url: Some("http://127.0.0.1:9/x".into()),
        recipients: vec![],
        secrets: vec!["whsec_AAAA".into()],
        enabled: true,
        created_at: 5,
    };
    let d = store.create_destination(d).await.unwrap();
    assert!(d.id > 0 && d.secrets == vec!["whsec_AAAA".to_string()]);
    assert!(!store
        .update_destination(Destination { org: "globex".into(), enabled: false, ..d.clone() })
        .await
        .unwrap());
    assert!(store.update_destination(Destination { enabled: false, ..d.clone() }).await.unwrap());
    assert!(!store.destinations("acme").await.unwrap()[0].enabled);
    assert!(store.destinations("globex").await.unwrap().is_empty());
    assert!(!store.delete_destination("globex", d.id).await.unwrap());
    // The evaluator starts once; of two moves from the same place one wins, and only
    // its deliveries are stored.
    assert_eq!(store.evaluation("acme").await.unwrap(), None);
    let start = Evaluation { cursor: 10, state: "{}".into() };
    assert!(store.commit_evaluation("acme", None, start.clone(), vec![], Timestamp(1)).await.unwrap());
    assert!(!store.commit_evaluation("acme", None, start.clone(), vec![], Timestamp(1)).await.unwrap());
    let moves = (0..4).map(|i| {
        let fired = NewDelivery { rule: "r".into(), destination: d.id, payload: format!("{{\"n\":{i}}}") };
        store.commit_evaluation(
            "acme",
            Some(10),
            Evaluation { cursor: 20, state: format!("{i}") },
            vec![fired],
            Timestamp(2),
        )
    });
    let won: Vec<bool> = join_all(moves).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    let now = store.evaluation("acme").await.unwrap().unwrap();
    assert_eq!(now.cursor, 20);
    let listed = store.deliveries("acme", 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].payload, format!("{{\"n\":{}}}", now.state));
    assert!(store.deliveries("globex", 10).await.unwrap().is_empty());
    // Deliveries due are leased to one claimer at a time.
    for i in 0..5 {
        let extra = NewDelivery { rule: "r".into(), destination: d.id, payload: format!("{i}") };
        store.add_delivery("acme", extra, Timestamp(3)).await.unwrap();
    }
    let claims = join_all((0..3).map(|_| store.claim_deliveries(Timestamp(100), Timestamp(1_000), 4))).await;
    let mut ids: Vec<i64> = claims.into_iter().flat_map(|c| c.unwrap()).map(|d| d.id).collect();
    ids.sort_unstable();
    let n = ids.len();
    ids.dedup();
    assert_eq!((n, ids.len()), (6, 6), "every due delivery claimed once");
    assert!(
        store.claim_deliveries(Timestamp(500), Timestamp(1_000), 10).await.unwrap().is_empty(),
        "leased until 1000"
    );
    let mut first = store.delivery("acme", ids[0]).await.unwrap().unwrap();
    assert!(store.delivery("globex", ids[0]).await.unwrap().is_none());
    first.status = DeliveryStatus::Delivered;
    first.attempts = 1;
    first.last_code = Some(204);
    first.done_at = Some(1_100);
    store.update_delivery(&first).await.unwrap();
    let again = store.claim_deliveries(Timestamp(2_000), Timestamp(3_000), 10).await.unwrap();
    assert_eq!(again.len(), 5, "a delivered one is not claimed again");
    assert_eq!(store.delivery("acme", ids[0]).await.unwrap().unwrap(), first);
}
