//! The web page at `/audit`: plain HTML, CSS and eight JavaScript modules (the entry
//! `app.js`, and `detail.js`, `proof.js` (the detail's proof checked in the browser),
//! `exports.js`, `live.js`, `timeline.js`, `alerts.js`, `streams.js`, `holds.js`),
//! compiled into the binary
//! (nothing is fetched at run time).

use axum::{
    http::header,
    response::{IntoResponse, Redirect, Response},
    routing::get,
    Router,
};

use crate::AppState;

const PAGE: &str = include_str!("../ui/audit.html");
const SCRIPT: &str = include_str!("../ui/app.js");
const DETAIL: &str = include_str!("../ui/detail.js");
const PROOF: &str = include_str!("../ui/proof.js");
const EXPORTS: &str = include_str!("../ui/exports.js");
const LIVE: &str = include_str!("../ui/live.js");
const TIMELINE: &str = include_str!("../ui/timeline.js");
const ALERTS: &str = include_str!("../ui/alerts.js");
const STREAMS: &str = include_str!("../ui/streams.js");
const HOLDS: &str = include_str!("../ui/holds.js");
const STYLE: &str = include_str!("../ui/app.css");
const ICON: &str = include_str!("../ui/icon.svg");

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/audit") }))
        .route("/audit", get(|| async { asset("text/html; charset=utf-8", PAGE) }))
        .route("/ui/app.js", get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }))
        .route("/ui/detail.js", get(|| async { asset("text/javascript; charset=utf-8", DETAIL) }))
        .route("/ui/proof.js", get(|| async { asset("text/javascript; charset=utf-8", PROOF) }))
        .route("/ui/exports.js", get(|| async { asset("text/javascript; charset=utf-8", EXPORTS) }))
        .route("/ui/live.js", get(|| async { asset("text/javascript; charset=utf-8", LIVE) }))
        .route("/ui/timeline.js", get(|| async { asset("text/javascript; charset=utf-8", TIMELINE) }))
        .route("/ui/alerts.js", get(|| async { asset("text/javascript; charset=utf-8", ALERTS) }))
        .route("/ui/streams.js", get(|| async { asset("text/javascript; charset=utf-8", STREAMS) }))
        .route("/ui/holds.js", get(|| async { asset("text/javascript; charset=utf-8", HOLDS) }))
        .route("/ui/app.css", get(|| async { asset("text/css; charset=utf-8", STYLE) }))
        .route("/ui/icon.svg", get(|| async { asset("image/svg+xml", ICON) }))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::HeaderName::from_static("content-security-policy"), "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'"),
            (header::REFERRER_POLICY, "same-origin"),
            // The page needs none of the browser's powerful features.
            (
                header::HeaderName::from_static("permissions-policy"),
                "camera=(), microphone=(), geolocation=(), payment=(), usb=(), serial=(), bluetooth=(), \
                 hid=(), midi=(), display-capture=(), clipboard-read=(), interest-cohort=()",
            ),
        ],
        body,
    )
        .into_response()
}
