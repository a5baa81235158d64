//! What every response gets on its way out: headers that keep event data out of
//! caches and content sniffing, and the documented JSON error body for errors that
//! axum or hyper made themselves (a 405, a body over an extractor's limit), which
//! would otherwise leave empty or as plain text.

use std::sync::atomic::Ordering;

use axum::{
    extract::Request,
    http::{header, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{
    error::{ErrorBody, ErrorDetail},
    listen::BodyTooSlow,
};

/// The middleware; see the module comment.
pub(crate) async fn finish(req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let slow = req.extensions().get::<BodyTooSlow>().cloned();
    let mut resp = next.run(req).await;
    if slow.is_some_and(|s| s.0.load(Ordering::Relaxed)) {
        // Whatever the handler made of the cut-off body, the client was too slow.
        resp = too_slow();
    }
    let status = resp.status();
    if (status.is_client_error() || status.is_server_error()) && !is_json(&resp) {
        resp = json_error(resp);
    }
    let h = resp.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if api {
        // Events, exports and proofs are personal data and change: never kept by a
        // browser or a proxy.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

fn too_slow() -> Response {
    let body = ErrorBody {
        error: ErrorDetail::new(
            "too_slow",
            "the request body arrived too slowly; send it faster or in smaller requests",
            Some("body"),
        ),
    };
    (StatusCode::REQUEST_TIMEOUT, [(header::CONNECTION, "close")], axum::Json(body)).into_response()
}

fn is_json(resp: &Response) -> bool {
    resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("json"))
}

/// The same status with the documented body, keeping `Allow` and `Retry-After`.
fn json_error(resp: Response) -> Response {
    let status = resp.status();
    let (code, message, field) = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allow = resp.headers().get(header::ALLOW).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            ("method_not_allowed", format!("this endpoint does not take that method; it takes {allow}"), None)
        }
        StatusCode::PAYLOAD_TOO_LARGE => ("too_large", "the request body is too large".to_string(), Some("body")),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ("unsupported_media_type", "send the body as application/json".to_string(), Some("content-type"))
        }
        s if s.is_server_error() => ("internal", "internal error; see the server log".to_string(), None),
        s => ("bad_request", s.canonical_reason().unwrap_or("bad request").to_lowercase(), None),
    };
    let mut out = (status, axum::Json(ErrorBody { error: ErrorDetail::new(code, message, field) })).into_response();
    for name in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(v) = resp.headers().get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}
