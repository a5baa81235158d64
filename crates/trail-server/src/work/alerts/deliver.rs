//! The delivery worker: takes due deliveries (leased, so that of several servers one
//! attempts each), attempts them, and stores the outcome: delivered; retried later with
//! exponential backoff and jitter for up to 24 hours; or failed, when the destination is
//! gone (410 disables it), refused, or the time is up.

use std::time::Duration;
use trail_core::Timestamp;

use trail_store::alerts::{Delivery, DeliveryStatus};

use super::send::{self, Outcome};
use crate::work::Services;

/// Deliveries are retried for this long after they were made.
const GIVE_UP_AFTER_US: i64 = 24 * 3_600 * 1_000_000;
/// The longest wait between two attempts.
const MAX_DELAY: Duration = Duration::from_secs(3600);
/// Looked for this often without a wake-up (retries come due, other servers' work).
const TICK: Duration = Duration::from_millis(500);

pub async fn run(st: Services) {
    loop {
        let now = (st.clock)().0;
        // A claimed delivery is kept from other workers for longer than an attempt may
        // take; one whose worker stopped mid-attempt is taken up again after that.
        let lease = (st.config.alerts.timeout * 2 + Duration::from_secs(5)).as_micros() as i64;
        match st.store.claim_deliveries(Timestamp(now), Timestamp(now + lease), 32).await {
            Ok(due) if !due.is_empty() => {
                let tasks = due.into_iter().map(|d| {
                    let st = st.clone();
                    async move { attempt(&st, d).await }
                });
                futures::future::join_all(tasks).await;
                continue;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read due alert deliveries"),
        }
        let _ = tokio::time::timeout(TICK, st.alerts.queued.notified()).await;
    }
}

/// The wait before attempt `n + 1` after `n` failed ones: the base doubled per attempt,
/// at most an hour, times a random factor in [0.5, 1.5).
pub fn backoff(base: Duration, attempts: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempts.saturating_sub(1).min(20)).min(MAX_DELAY);
    exp.mul_f64(0.5 + rand::random::<f64>())
}

/// Attempts one delivery and stores the outcome.
pub async fn attempt(st: &Services, mut d: Delivery) {
    let dest = match st.store.destinations(&d.org).await {
        Ok(all) => all.into_iter().find(|x| x.id == d.destination),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read alert destinations");
            return;
        }
    };
    let outcome = match &dest {
        None => Outcome::Gone { code: None, error: "the destination was deleted".into() },
        Some(x) if !x.enabled => Outcome::Gone { code: None, error: "the destination is disabled".into() },
        Some(x) => send::attempt(st, x, &d).await,
    };
    let now = (st.clock)().0;
    d.attempts += 1;
    match outcome {
        Outcome::Delivered(code) => {
            d.status = DeliveryStatus::Delivered;
            d.last_code = Some(i32::from(code));
            d.last_error = None;
            d.done_at = Some(now);
        }
        Outcome::Gone { code, error } => {
            d.status = DeliveryStatus::Failed;
            d.last_code = code.map(i32::from);
            d.last_error = Some(error);
            d.done_at = Some(now);
            if code == Some(410) {
                if let Some(mut x) = dest {
                    x.enabled = false;
                    if let Err(e) = st.store.update_destination(x).await {
                        tracing::warn!(error = %e, "cannot disable a gone destination");
                    }
                }
            }
        }
        Outcome::Failed { code, error } => {
            d.last_code = code.map(i32::from);
            d.last_error = Some(error);
            let next = now + backoff(st.config.alerts.retry_base, d.attempts).as_micros() as i64;
            if next - d.created_at > GIVE_UP_AFTER_US {
                d.status = DeliveryStatus::Failed;
                d.done_at = Some(now);
            } else {
                d.next_at = next;
            }
        }
    }
    if let Some(m) = &st.metrics {
        m.delivery(match d.status {
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            _ => "retrying",
        });
    }
    if let Err(e) = st.store.update_delivery(&d).await {
        tracing::warn!(error = %e, id = d.id, "cannot store an alert delivery's outcome");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_an_hour() {
        let base = Duration::from_secs(10);
        for _ in 0..50 {
            let first = backoff(base, 1);
            assert!(first >= Duration::from_secs(5) && first < Duration::from_secs(15), "{first:?}");
            let third = backoff(base, 3);
            assert!(third >= Duration::from_secs(20) && third < Duration::from_secs(60), "{third:?}");
            assert!(backoff(base, 30) < Duration::from_secs(5400));
        }
    }
}
