//! Every background loop, started in one place (`start`) and stopped by one shutdown
//! signal, as in mini-redis: the relay of other processes' appends, the alert evaluator
//! and delivery worker, the stream supervisor and its drivers, the installation log's
//! extension (every second), and (when
//! `ServerConfig::housekeeping` is on, as in `trail serve`) scheduled exports,
//! retention, the daily self-check, the signer's refusal watch and publishing the logs
//! to a bucket. Each loop runs
//! through a `Spawner`, which ends it when the signal comes, at whatever await it is
//! waiting on; every loop keeps its position in the store, so the next start resumes.

use std::{future::Future, time::Duration};

use tokio::{runtime::Handle, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use super::{alerts, feed, publish, retention, schedules, selfcheck, streams, Services};

/// How often the organizations' new checkpoints are appended to the installation log.
const INSTALLATION_EVERY: Duration = Duration::from_secs(1);

/// How often due scheduled exports are looked for.
const SCHEDULES_EVERY: Duration = Duration::from_secs(30);

/// Spawns tasks that end with the shutdown signal.
#[derive(Clone)]
pub struct Spawner {
    rt: Handle,
    shutdown: CancellationToken,
}

impl Spawner {
    /// Runs `task` until it ends or the shutdown signal comes.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) -> JoinHandle<()> {
        let stop = self.shutdown.clone();
        self.rt.spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = task => {}
            }
        })
    }
}

/// Starts every background loop `st`'s configuration asks for; all of them stop when
/// `shutdown` is cancelled. Outside a Tokio runtime nothing starts.
pub fn start(st: &Services, shutdown: CancellationToken) {
    let Ok(rt) = Handle::try_current() else { return };
    let spawner = Spawner { rt, shutdown };
    // Events other processes append to a shared database reach this one's live view.
    if let Some(rx) = st.store.appended_elsewhere() {
        spawner.spawn(feed::relay(st.store.clone(), st.feed.clone(), rx));
    }
    if !st.config.without_installation_log {
        spawner.spawn(installation(st.clone()));
        if st.config.witness.is_some() {
            spawner.spawn(super::witness::run(st.clone()));
        }
    }
    alerts::start(st, &spawner);
    streams::start(st, &spawner);
    if st.config.housekeeping {
        spawner.spawn(schedules::every(st.clone(), SCHEDULES_EVERY));
        spawner.spawn(retention::daily(st.clone()));
        spawner.spawn(selfcheck::daily(st.clone()));
        spawner.spawn(selfcheck::watch_refusals(st.clone()));
        spawner.spawn(publish::run(st.clone()));
    }
}

/// Appends the organizations' new checkpoints to the installation log and signs it,
/// once a second (a store without a signer appends nothing).
async fn installation(st: Services) {
    loop {
        loop {
            match st.store.extend_installation(10_000).await {
                Ok(10_000) => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot extend the installation log");
                    break;
                }
            }
        }
        tokio::time::sleep(INSTALLATION_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_loop_ends_with_the_shutdown_signal() {
        let shutdown = CancellationToken::new();
        let spawner = Spawner { rt: Handle::current(), shutdown: shutdown.clone() };
        let forever = spawner.spawn(std::future::pending());
        let child = spawner.clone().spawn(async {
            loop {
                tokio::task::yield_now().await
            }
        });
        assert!(!forever.is_finished());
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), async {
            forever.await.unwrap();
            child.await.unwrap()
        })
        .await
        .expect("both loops end");
    }
}
