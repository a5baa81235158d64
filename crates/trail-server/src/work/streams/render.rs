//! Formatting off the async threads, at low priority: one thread per process renders
//! batches (OCSF records, Splunk events, syslog frames) at nice +10, so that when the
//! machine is saturated ingest keeps the CPU and streams catch up once it is not.

use std::sync::{mpsc, OnceLock};

type Job = Box<dyn FnOnce() + Send>;

/// How much lower the renderer runs than the rest of the process.
const NICE: i32 = 10;

static WORKER: OnceLock<mpsc::Sender<Job>> = OnceLock::new();

fn worker() -> &'static mpsc::Sender<Job> {
    WORKER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let spawned = std::thread::Builder::new().name("trail-stream-render".into()).spawn(move || {
            let tid = Some(rustix::thread::gettid());
            let current = rustix::process::getpriority_process(tid).unwrap_or(0);
            if let Err(e) = rustix::process::setpriority_process(tid, current + NICE) {
                tracing::debug!(error = %e, "the stream renderer keeps the default priority");
            }
            for job in rx {
                job();
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no stream renderer thread: batches are rendered in place");
        }
        tx
    })
}

/// Runs `f` on the renderer thread and waits for its answer; `None` if it panicked
/// (or no renderer thread could be made).
pub async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        if let Ok(v) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            let _ = tx.send(v);
        }
    });
    worker().send(job).ok()?;
    rx.await.ok()
}
