//! The live stream (`GET /api/v1/events/stream`, server-sent events): each subscriber
//! receives the events of the feed (`work::feed`) that match its filter and scope, as
//! the stored JSON; streams are counted per caller. Only events appended through this process are seen
//! (several servers on one database each stream their own appends).

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
use tokio::sync::broadcast;
use trail_core::Filter;

use crate::{auth::Caller, error::ApiError, AppState};

#[derive(Default)]
pub(crate) struct Live {
    /// Streams open per caller (actor id), so that one caller cannot hold them all.
    open: Mutex<HashMap<String, usize>>,
}

/// One open stream of a caller, counted until it is dropped.
struct Opened {
    live: Arc<Live>,
    who: String,
}

impl Drop for Opened {
    fn drop(&mut self) {
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
    let clock = st.clock.clone();
    // The stream's state holds `opened`, so the count drops when the client goes.
    let events = futures::stream::unfold((rx, filter, scope, opened), move |(mut rx, filter, scope, opened)| {
        let clock = clock.clone();
        async move {
            loop {
                match rx.recv().await {
                    Ok(e) => {
                        if scope.allows(&e.org, e.category()) && filter.matches(&e, clock()) {
                            let data = String::from_utf8_lossy(&e.to_leaf()).into_owned();
                            let ev = SseEvent::default().event("event").id(e.id.to_string()).data(data);
                            return Some((Ok::<_, Infallible>(ev), (rx, filter, scope, opened)));
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        let ev = SseEvent::default().event("lagged").data(n.to_string());
                        return Some((Ok(ev), (rx, filter, scope, opened)));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    });
    Ok(sse(events).into_response())
}

fn sse(s: impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static) -> impl IntoResponse {
    Sse::new(s).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
