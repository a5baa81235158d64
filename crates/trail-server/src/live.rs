//! The live stream (`GET /api/v1/events/stream`, server-sent events): each subscriber
//! receives the events of the feed (`work::feed`) that match its filter and scope, as
//! the stored JSON; streams are counted per caller. The feed holds this process's
//! appends and, with PostgreSQL, those of the other servers on the same database
//! (`feed::relay` reads them back when they are announced), so every server's live
//! view shows every append.

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    extract::{Query, State},
    response::{
        sse::{Event as SseEvent, KeepAlive, Sse},
        IntoResponse, Response,
    },
};
use futures::Stream;
use tokio::sync::{broadcast, watch};
use trail_core::Filter;

use crate::{auth::Caller, error::ApiError, AppState};

/// How often an open stream checks its credential again at the latest.
const RECHECK: Duration = Duration::from_secs(5);

pub(crate) struct Live {
    /// Streams open per caller (actor id), so that one caller cannot hold them all.
    open: Mutex<HashMap<String, usize>>,
    /// Bumped when a credential or a right changes in this process.
    changed: watch::Sender<u64>,
    /// Set when the server shuts down.
    closing: watch::Sender<bool>,
    /// Streams open now, over every caller (for metrics).
    count: Arc<std::sync::atomic::AtomicUsize>,
}

impl Default for Live {
    fn default() -> Live {
        Live::counting(Arc::default())
    }
}

impl Live {
    /// Streams counted in `count` as they open and end.
    pub(crate) fn counting(count: Arc<std::sync::atomic::AtomicUsize>) -> Live {
        Live { open: Mutex::default(), changed: watch::channel(0).0, closing: watch::channel(false).0, count }
    }

    /// A key was revoked, a user or a role changed, a session ended: open streams check
    /// their credentials now.
    pub(crate) fn credentials_changed(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// The server is shutting down: every open stream ends.
    pub(crate) fn close(&self) {
        self.closing.send_replace(true);
    }
}

/// One open stream of a caller, counted until it is dropped.
struct Opened {
    live: Arc<Live>,
    who: String,
}

impl Drop for Opened {
    fn drop(&mut self) {
        self.live.count.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut open) = self.live.open.lock() {
            if let Some(n) = open.get_mut(&self.who) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&self.who);
                }
            }
        }
    }
}

/// Counts a new stream of `who`, or `None` when it already holds `max`.
fn open(live: &Arc<Live>, who: String, max: usize) -> Option<Opened> {
    let mut open = live.open.lock().ok()?;
    let n = open.entry(who.clone()).or_default();
    if *n >= max {
        return None;
    }
    *n += 1;
    live.count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Some(Opened { live: live.clone(), who })
}

#[utoipa::path(
    get, path = "/api/v1/events/stream", tag = "events",
    params(crate::api::doc::FilterParams),
    responses((status = 200, description = "Server-sent events: each matching event as it is stored, as `data:` JSON", body = String, content_type = "text/event-stream"), crate::api::doc::Errors)
)]
pub(crate) async fn stream(
    State(st): State<AppState>,
    caller: Caller,
    q: Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let scope = caller.read_scope()?;
    let pairs: Vec<(&str, &str)> =
        q.0.iter().filter(|(k, _)| k != "cursor" && k != "limit").map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let filter = Filter::from_pairs(pairs)?;
    let max = st.config.connections.max_streams_per_caller;
    let who = caller.actor()["id"].as_str().unwrap_or_default().to_string();
    let opened = open(&st.live, who, max)
        .ok_or_else(|| ApiError::TooMany(format!("you have {max} live streams open already; close one first"), 5))?;
    let rx = st.feed.subscribe();
    let watch = Watch {
        st: st.clone(),
        caller,
        scope,
        changed: st.live.changed.subscribe(),
        closing: st.live.closing.subscribe(),
        next_check: tokio::time::Instant::now() + RECHECK,
    };
    // The stream's state holds `opened`, so the count drops when the client goes.
    let events =
        futures::stream::unfold((rx, filter, watch, opened), |(mut rx, filter, mut watch, opened)| async move {
            loop {
                if *watch.closing.borrow_and_update() {
                    return None;
                }
                let got = tokio::select! {
                    r = rx.recv() => r,
                    _ = watch.closing.changed() => continue,
                    _ = watch.changed.changed() => {
                        watch.next_check = tokio::time::Instant::now();
                        continue;
                    }
                    _ = tokio::time::sleep_until(watch.next_check) => {
                        if !watch.still_holds().await {
                            return None;
                        }
                        continue;
                    }
                };
                match got {
                    Ok(e) => {
                        if watch.scope.allows(&e.org, e.category()) && filter.matches(&e, (watch.st.clock)()) {
                            let data = String::from_utf8_lossy(&e.to_leaf()).into_owned();
                            let ev = SseEvent::default().event("event").id(e.id.to_string()).data(data);
                            return Some((Ok::<_, Infallible>(ev), (rx, filter, watch, opened)));
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        let ev = SseEvent::default().event("lagged").data(n.to_string());
                        return Some((Ok(ev), (rx, filter, watch, opened)));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
    Ok(sse(events).into_response())
}

/// What a stream knows of its caller, checked again while it is open.
struct Watch {
    st: AppState,
    caller: Caller,
    scope: trail_store::Scope,
    changed: watch::Receiver<u64>,
    closing: watch::Receiver<bool>,
    next_check: tokio::time::Instant,
}

impl Watch {
    /// Whether the credential still holds with the same view; schedules the next check.
    async fn still_holds(&mut self) -> bool {
        self.next_check = tokio::time::Instant::now() + RECHECK;
        match crate::auth::recheck(&self.st, &self.caller).await {
            Ok(now) => now.read_scope().is_ok_and(|scope| scope == self.scope),
            Err(ApiError::Unauthorized(_) | ApiError::Forbidden(_)) => false,
            // A store that cannot be read now is no reason to end the stream.
            Err(_) => true,
        }
    }
}

fn sse(s: impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static) -> impl IntoResponse {
    Sse::new(s).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
