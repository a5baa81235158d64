//! Alerts: rules evaluated as events are committed, firings persisted as deliveries
//! with the evaluator's position, and deliveries sent (and retried) to webhooks, Slack,
//! Discord and mail.
//!
//! Rooms: `rules` (the rules and their state, no I/O), `evaluate` (follows each
//! organization's log from its stored position; one evaluation wins across servers),
//! `message` (a firing's payload, link and texts), `send` (one attempt to one
//! destination: signing, shapes, refusing private addresses), `deliver` (the worker:
//! leases, retries with backoff, 410 disables).

use std::{collections::HashSet, sync::Mutex};

use tokio::sync::Notify;

use super::Services;

pub mod deliver;
pub mod evaluate;
pub mod message;
pub mod rules;
pub mod send;

/// Wake-ups for the two loops: which organizations have new events, and that new
/// deliveries are waiting.
#[derive(Default)]
pub struct Signals {
    orgs: Mutex<HashSet<String>>,
    appended: Notify,
    pub(crate) queued: Notify,
}

impl Signals {
    /// Events were committed to `org`'s log.
    pub(crate) fn appended(&self, org: &str) {
        if let Ok(mut o) = self.orgs.lock() {
            o.insert(org.to_string());
        }
        self.appended.notify_one();
    }

    fn take(&self) -> Vec<String> {
        self.orgs.lock().map(|mut o| o.drain().collect()).unwrap_or_default()
    }
}

/// Starts the evaluator and the delivery worker (when alerts are enabled).
pub(crate) fn start(st: &Services, spawner: &super::Spawner) {
    if !st.config.alerts.enabled {
        return;
    }
    spawner.spawn(evaluate::run(st.clone(), spawner.clone()));
    spawner.spawn(deliver::run(st.clone()));
    // Other servers' commits to a shared database wake this evaluator too (the one
    // whose evaluation commits first wins; the others find nothing left).
    if let Some(mut rx) = st.store.appended_elsewhere() {
        let st = st.clone();
        spawner.spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(r) => st.alerts.appended(&r.org),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return,
                }
            }
        });
    }
}
