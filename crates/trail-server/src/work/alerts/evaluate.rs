//! The evaluator: follows each organization's log from its stored position, feeds
//! the committed events to the rules, and stores the new position, the rules' state
//! and the deliveries of what fired in one transaction. The store moves the position
//! only from where this evaluation started, so with several servers on one database
//! each event is evaluated once and each firing stored once; a server whose commit
//! lost reads again from the winner's position.

use std::{collections::HashSet, time::Duration};

use serde_json::json;
use trail_core::Event;
use trail_store::alerts::{Evaluation, NewDelivery};

use super::{
    message,
    rules::{self, Compiled, Context, Firing, State},
};
use crate::work::{selfaudit, Services, WorkError};

/// Events read per step.
const CHUNK: usize = 5000;
/// Every organization is looked at this often even without a wake-up (appends by
/// another process on the embedded store, or a missed notice).
const SWEEP: Duration = Duration::from_secs(30);

pub async fn run(st: Services, spawner: crate::work::Spawner) {
    let mut all = true;
    loop {
        let orgs = if all {
            st.store.orgs().await.map(|o| o.into_iter().map(|o| o.slug).collect()).unwrap_or_default()
        } else {
            st.alerts.take()
        };
        for org in orgs {
            if let Err(e) = evaluate_org(&st, &org).await {
                tracing::warn!(org, error = %e, "alert evaluation failed; it is retried in a second");
                let (st, org) = (st.clone(), org.clone());
                spawner.spawn(async move {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    st.alerts.appended(&org);
                });
            }
        }
        all = tokio::time::timeout(SWEEP, st.alerts.appended.notified()).await.is_err();
    }
}

/// Evaluates what is new in one organization's log. Returns the firings stored.
pub async fn evaluate_org(st: &Services, org: &str) -> Result<Vec<Firing>, WorkError> {
    let mut fired = Vec::new();
    // Rules, administrators and destinations as they are when this pass starts (a
    // change is seen by the next pass).
    let mut setup: Option<(Vec<Compiled>, HashSet<String>, Vec<trail_store::alerts::Destination>)> = None;
    loop {
        let Some(at) = st.store.evaluation(org).await? else {
            // First run: start at the end of the log (history does not alert).
            let end = st.store.log_end(org).await?;
            let start = Evaluation { cursor: end, state: State::default().to_json() };
            st.store.commit_evaluation(org, None, start, vec![], (st.clock)()).await?;
            continue;
        };
        let rows = st.store.scan(org, at.cursor, CHUNK).await?;
        let Some(last) = rows.last().map(|(seq, _)| *seq) else { return Ok(fired) };
        if setup.is_none() {
            setup = Some(load(st, org).await?);
        }
        let Some((compiled, admins, destinations)) = &setup else { return Ok(fired) };
        let ctx = Context { admins, now: (st.clock)() };
        let mut state = State::parse(&at.state);
        let mut firings = Vec::new();
        let mut newest = i64::MIN;
        for (_, leaf) in &rows {
            let Ok(event) = Event::from_leaf(leaf) else { continue };
            newest = newest.max(event.timestamp.0);
            firings.extend(state.observe(compiled, &event, &ctx));
        }
        state.prune(compiled, newest);
        let base = st.config.public_base();
        let now = (st.clock)();
        let mut deliveries = Vec::new();
        for f in &firings {
            let rule = compiled.iter().find(|c| c.rule.name == f.rule).map(|c| &c.rule);
            let payload = message::payload(org, f, &base, now);
            let wanted = |id: i64| rule.is_none_or(|r| r.destinations.is_empty() || r.destinations.contains(&id));
            for d in destinations.iter().filter(|d| wanted(d.id)) {
                deliveries.push(NewDelivery { rule: f.rule.clone(), destination: d.id, payload: payload.to_string() });
            }
        }
        let next = Evaluation { cursor: last + 1, state: state.to_json() };
        let queued = !deliveries.is_empty();
        let won = st.store.commit_evaluation(org, Some(at.cursor), next, deliveries, now).await?;
        if !won {
            // Another server evaluated these events first: read on from its position.
            continue;
        }
        if queued {
            st.alerts.queued.notify_one();
        }
        for f in &firings {
            record(st, org, f).await;
        }
        fired.extend(firings);
    }
}

/// An organization's rules (compiled), administrators and destinations.
async fn load(
    st: &Services,
    org: &str,
) -> Result<(Vec<Compiled>, HashSet<String>, Vec<trail_store::alerts::Destination>), WorkError> {
    let stored = st.store.alert_rules(org).await?;
    let compiled = rules::effective(org, stored).into_iter().filter_map(|r| Compiled::new(r).ok()).collect();
    let admins = st
        .store
        .list_users(Some(org))
        .await?
        .into_iter()
        .filter(|u| u.manages() && !u.disabled)
        .map(|u| u.email.to_ascii_lowercase())
        .collect();
    let destinations = st.store.destinations(org).await?;
    Ok((compiled, admins, destinations))
}

/// Records a firing in the organization's log as `monitoring:alert`.
async fn record(st: &Services, org: &str, f: &Firing) {
    let details = json!({
        "rule": f.rule,
        "group": f.group.as_ref().map(|(by, v)| json!({"by": by, "value": v})),
        "count": f.count,
        "window_secs": f.window_secs,
        "suppressed": f.suppressed,
        "events": f.events.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
    });
    let r = selfaudit::Record {
        org: org.to_string(),
        action: "monitoring:alert",
        ok: true,
        actor: json!({"id": "trail-alerts", "name": "Trail alerts", "type": "system"}),
        resource: Some(json!({"type": "alert_rule", "id": f.rule, "name": f.rule})),
        details: Some(details),
        error: None,
        ip: None,
        user_agent: None,
    };
    selfaudit::record(st, r).await;
}
