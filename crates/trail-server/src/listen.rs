//! Serving connections so that slow or idle clients cannot take the server down: a cap
//! on the connections of each client address (past it, its new ones are closed at
//! once) and on all of them (past it, the address holding more than its share gives up
//! its newest connection, or new ones wait to be accepted), a deadline for
//! each request's head (which also closes a keep-alive connection that stays idle that
//! long), and a minimum rate for request bodies. A body cut off for being too slow is
//! answered 408 by `finish`. A trusted proxy's connections are not capped per address;
//! its clients' requests are, by `forwarded`.

use std::{
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{body::Body, extract::ConnectInfo, response::IntoResponse, Router};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, time::Sleep};
use tower::ServiceExt;

use crate::{
    error::ApiError,
    forwarded::{self, ClientAddr, Entered, InFlight},
    ConnectionConfig,
};

/// Marks a request whose body was cut off for being too slow.
#[derive(Clone, Default)]
pub(crate) struct BodyTooSlow(pub(crate) Arc<AtomicBool>);

/// Serves `app` on `listener` until `shutdown` completes, then lets the requests in
/// flight finish.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionConfig,
    metrics: Option<Arc<crate::work::metrics::Metrics>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let table = Arc::new(std::sync::Mutex::new(Table::default()));
    let in_flight = InFlight::default();
    let trusted = Arc::new(limits.trusted_proxies.clone());
    let room = Arc::new(tokio::sync::Notify::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was
                    // accepted: wait a moment rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let ip = addr.ip().to_canonical();
        let proxy = forwarded::is_trusted(&trusted, ip);
        let (max, per_client) = (limits.max_connections.max(1), limits.max_connections_per_client.max(1));
        let per_address = if proxy { max } else { per_client };
        // Past the global cap with no address over its share, the connection waits
        // (and so does the accept loop) until one ends.
        let admitted = loop {
            let freed = room.notified();
            let Ok(answer) = table.lock().map(|mut t| t.admit(ip, max, per_address)) else { break None };
            match answer {
                Admit::Yes(id, cancel) => break Some((id, cancel)),
                Admit::No => break None,
                Admit::Full => tokio::select! {
                    () = freed => continue,
                    () = &mut shutdown => break None,
                },
            }
        };
        let Some((id, cancel)) = admitted else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (body_timeout, min_rate) = (limits.body_timeout, limits.body_min_rate);
        let (app, trusted, in_flight) = (app.clone(), trusted.clone(), in_flight.clone());
        let svc = tower::service_fn(move |req: hyper::Request<Incoming>| {
            let client = if proxy { forwarded::client(ip, req.headers(), &trusted) } else { ip };
            // Behind a proxy, a client's requests are capped while in flight (until
            // their response's body ends); past the cap its newest is turned away.
            let entered = proxy.then(|| in_flight.enter(client, per_client));
            let app = app.clone();
            async move {
                let entered = match entered {
                    Some(None) => {
                        let m = "too many requests in flight from this address; retry shortly".to_string();
                        return Ok(ApiError::TooMany(m, 1).into_response());
                    }
                    Some(Some(entered)) => Some(entered),
                    None => None,
                };
                let slow = BodyTooSlow::default();
                let mut req = req.map(|b| Body::new(RateBody::new(b, body_timeout, min_rate, slow.clone())));
                req.extensions_mut().insert(ConnectInfo(addr));
                req.extensions_mut().insert(ClientAddr(client));
                req.extensions_mut().insert(slow);
                let response = app.oneshot(req).await?;
                Ok::<_, std::convert::Infallible>(match entered {
                    Some(entered) => response.map(|body| Body::new(Holding { body, _entered: entered })),
                    None => response,
                })
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(TokioIo::new(stream), hyper_util::service::TowerToHyperService::new(svc));
        let conn = graceful.watch(conn);
        let (table, room) = (table.clone(), room.clone());
        let open = metrics.as_ref().map(|m| m.connections.clone());
        if let Some(g) = &open {
            g.inc();
        }
        tokio::spawn(async move {
            tokio::select! {
                r = conn => if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended");
                },
                _ = cancel => tracing::debug!(%ip, "connection closed to make room for others"),
            }
            if let Ok(mut t) = table.lock() {
                t.leave(ip, id);
            }
            if let Some(g) = open {
                g.dec();
            }
            room.notify_one();
        });
    }
    drop(listener);
    // Requests in flight finish (acknowledged ingest is committed before its answer);
    // past the deadline the process goes anyway.
    if tokio::time::timeout(limits.shutdown_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!(timeout = ?limits.shutdown_timeout, "requests still in flight at the shutdown deadline");
    }
    Ok(())
}

/// The open connections by client address, oldest first, each with the means to close
/// it.
#[derive(Default)]
struct Table {
    by_ip: std::collections::HashMap<std::net::IpAddr, Vec<(u64, tokio::sync::oneshot::Sender<()>)>>,
    total: usize,
    next: u64,
}

/// Whether a new connection is served.
enum Admit {
    /// Yes: its id and what closes it.
    Yes(u64, tokio::sync::oneshot::Receiver<()>),
    /// No: its address holds its cap already.
    No,
    /// Not now: every place is taken by addresses holding no more than their share.
    Full,
}

impl Table {
    /// Admits a connection from `ip`.
    fn admit(&mut self, ip: std::net::IpAddr, max: usize, per_client: usize) -> Admit {
        if self.by_ip.get(&ip).map_or(0, Vec::len) >= per_client {
            return Admit::No;
        }
        if self.total >= max {
            // The address holding the most gives up its newest connection, if it holds
            // more than a fair share and more than the newcomer's address.
            let share = max / self.by_ip.len().max(1);
            let mine = self.by_ip.get(&ip).map_or(0, Vec::len);
            let Some((&heavy, held)) = self.by_ip.iter().max_by_key(|(_, v)| v.len()) else {
                return Admit::Full;
            };
            if held.len() <= share.max(1) || held.len() <= mine + 1 {
                return Admit::Full;
            }
            let Some((_, close)) = self.by_ip.get_mut(&heavy).and_then(Vec::pop) else {
                return Admit::Full;
            };
            let _ = close.send(());
            self.total -= 1;
            if self.by_ip.get(&heavy).is_some_and(Vec::is_empty) {
                self.by_ip.remove(&heavy);
            }
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.next += 1;
        self.by_ip.entry(ip).or_default().push((self.next, tx));
        self.total += 1;
        Admit::Yes(self.next, rx)
    }

    /// A connection ended (or was closed).
    fn leave(&mut self, ip: std::net::IpAddr, id: u64) {
        if let Some(list) = self.by_ip.get_mut(&ip) {
            if let Some(i) = list.iter().position(|(x, _)| *x == id) {
                list.remove(i);
                self.total -= 1;
            }
            if list.is_empty() {
                self.by_ip.remove(&ip);
            }
        }
    }
}

/// A request body that fails once it falls behind: it may take `base`, plus the time
/// its bytes so far need at `min_rate` bytes per second.
struct RateBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    start: tokio::time::Instant,
    base: Duration,
    min_rate: u64,
    received: u64,
    slow: BodyTooSlow,
}

impl RateBody {
    fn new(inner: Incoming, base: Duration, min_rate: u64, slow: BodyTooSlow) -> RateBody {
        let start = tokio::time::Instant::now();
        RateBody {
            inner,
            deadline: Box::pin(tokio::time::sleep_until(start + base)),
            start,
            base,
            min_rate: min_rate.max(1),
            received: 0,
            slow,
        }
    }
}

/// The error a too-slow body ends with.
#[derive(Debug, thiserror::Error)]
#[error("the request body arrived too slowly")]
pub(crate) struct TooSlow;

impl http_body::Body for RateBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                    let allowed = this.base + Duration::from_secs_f64(this.received as f64 / this.min_rate as f64);
                    this.deadline.as_mut().reset(this.start + allowed);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => Poll::Ready(other.map(|r| r.map_err(Into::into))),
            Poll::Pending => match std::future::Future::poll(this.deadline.as_mut(), cx) {
                Poll::Ready(()) => {
                    this.slow.0.store(true, Ordering::Relaxed);
                    Poll::Ready(Some(Err(Box::new(TooSlow))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its request counted as in flight until it ends.
struct Holding {
    body: Body,
    _entered: Entered,
}

impl http_body::Body for Holding {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
