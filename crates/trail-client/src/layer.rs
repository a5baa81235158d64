//! `AuditLayer`: records an axum app's requests as Trail events.

use std::{
    future::Future,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    task::{Context, Poll},
};

use axum::{
    extract::{ConnectInfo, MatchedPath},
    http::{Method, Request, Response},
};
use serde_json::{json, Map, Value};
use tower::{Layer, Service};

use crate::Client;

/// Who made a request, as the app knows it: put it in the request's extensions (an
/// authentication middleware inside the layer, or before it), or in the response's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actor {
    /// The app's id of the user.
    pub id: Option<String>,
    /// A display name.
    pub name: Option<String>,
    /// An email address.
    pub email: Option<String>,
}

/// Records every mutating request (POST, PUT, PATCH, DELETE; reads too with
/// [`AuditLayer::with_reads`]) through a [`Client`]: action `<category>:<METHOD>
/// <matched route>`, the actual path (`/orders/42`) in `details.path` unless
/// [`AuditLayer::record_paths`] turns it off, result DONE for 1xx–3xx and FAILED
/// otherwise with the status code, the [`Actor`] extension, the `x-request-id` header,
/// and the client address from the connection (`ConnectInfo`) or, when the peer is a
/// trusted proxy, the last untrusted `X-Forwarded-For` entry.
#[derive(Clone)]
pub struct AuditLayer {
    client: Client,
    category: String,
    reads: bool,
    paths: bool,
    trusted_proxies: Vec<IpAddr>,
}

impl AuditLayer {
    /// A layer recording through `client`, category `api`, mutating requests only,
    /// with their paths.
    pub fn new(client: Client) -> AuditLayer {
        AuditLayer { client, category: "api".into(), reads: false, paths: true, trusted_proxies: Vec::new() }
    }

    /// Record each request's actual path beside its route (default); turn it off for
    /// paths that carry personal data (`/users/ann@example.com`): the route template
    /// alone is recorded then.
    pub fn record_paths(mut self, paths: bool) -> AuditLayer {
        self.paths = paths;
        self
    }

    /// The category of the actions recorded (default `api`).
    pub fn category(mut self, category: impl Into<String>) -> AuditLayer {
        self.category = category.into();
        self
    }

    /// Record reads (GET, HEAD, OPTIONS) too.
    pub fn with_reads(mut self, reads: bool) -> AuditLayer {
        self.reads = reads;
        self
    }

    /// Proxies whose `X-Forwarded-For` is believed.
    pub fn trusted_proxies(mut self, proxies: impl IntoIterator<Item = IpAddr>) -> AuditLayer {
        self.trusted_proxies = proxies.into_iter().collect();
        self
    }
}

impl<S> Layer<S> for AuditLayer {
    type Service = AuditService<S>;

    fn layer(&self, inner: S) -> AuditService<S> {
        AuditService { inner, layer: self.clone() }
    }
}

/// The service [`AuditLayer`] wraps around an app.
#[derive(Clone)]
pub struct AuditService<S> {
    inner: S,
    layer: AuditLayer,
}

/// What is known of a request before it runs.
struct Seen {
    method: Method,
    route: String,
    path: String,
    actor: Option<Actor>,
    request_id: Option<String>,
    ip: Option<IpAddr>,
    user_agent: Option<String>,
}

impl AuditLayer {
    fn client_ip<B>(&self, req: &Request<B>) -> Option<IpAddr> {
        let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())?;
        if !self.trusted_proxies.contains(&peer) {
            return Some(peer);
        }
        let forwarded = req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok()).unwrap_or_default();
        let chain: Vec<IpAddr> = forwarded.split(',').filter_map(|s| s.trim().parse().ok()).collect();
        chain.into_iter().rev().find(|ip| !self.trusted_proxies.contains(ip)).or(Some(peer))
    }

    fn event(&self, seen: Seen, status: u16, late_actor: Option<Actor>) -> Value {
        let route = seen.route.replace(':', "");
        let mut e = Map::new();
        e.insert("action".into(), format!("{}:{} {}", self.category, seen.method, route).into());
        e.insert("result".into(), if status < 400 { "DONE" } else { "FAILED" }.into());
        e.insert("status_code".into(), status.into());
        if let Some(a) = late_actor.or(seen.actor) {
            let mut m = Map::new();
            for (k, v) in [("id", a.id), ("name", a.name), ("email", a.email)] {
                if let Some(v) = v {
                    m.insert(k.into(), v.into());
                }
            }
            m.insert("type".into(), "user".into());
            e.insert("actor".into(), Value::Object(m));
        }
        if let Some(id) = seen.request_id {
            e.insert("request_id".into(), id.into());
        }
        if let Some(ip) = seen.ip {
            e.insert("source_ip".into(), ip.to_string().into());
        }
        if let Some(ua) = seen.user_agent {
            e.insert("user_agent".into(), ua.into());
        }
        e.insert("resource".into(), json!({"type": "route", "name": route}));
        if self.paths {
            e.insert("details".into(), json!({"path": seen.path}));
        }
        Value::Object(e)
    }
}

impl<S, B, R> Service<Request<B>> for AuditService<S>
where
    S: Service<Request<B>, Response = Response<R>> + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<R>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let read = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        if read && !self.layer.reads {
            return Box::pin(self.inner.call(req));
        }
        let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
        let seen = Seen {
            method: req.method().clone(),
            route: req
                .extensions()
                .get::<MatchedPath>()
                .map_or_else(|| req.uri().path().to_string(), |m| m.as_str().to_string()),
            path: req.uri().path().to_string(),
            actor: req.extensions().get::<Actor>().cloned(),
            request_id: header("x-request-id"),
            ip: self.layer.client_ip(&req),
            user_agent: header("user-agent"),
        };
        let layer = self.layer.clone();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await?;
            let event = layer.event(seen, res.status().as_u16(), res.extensions().get::<Actor>().cloned());
            layer.client.record(event);
            Ok(res)
        })
    }
}
