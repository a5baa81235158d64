//! The witness over HTTP (axum): `POST /add-checkpoint` and the monitoring read
//! `GET /{origin hash}/checkpoint`, as C2SP `tlog-witness` names them.

use std::sync::Arc;

use axum::{
    extract::{DefaultBodyLimit, Path, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};

use crate::witness::Witness;

/// The largest request body taken (a checkpoint, its signatures and 63 hashes fit in a
/// few KiB).
const MAX_BODY: usize = 64 * 1024;

/// The witness's routes.
pub fn router(witness: Arc<Witness>) -> Router {
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .route("/{origin_hash}/checkpoint", get(checkpoint))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(witness)
}

async fn add_checkpoint(State(w): State<Arc<Witness>>, body: String) -> Response {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let answer = tokio::task::spawn_blocking(move || w.add_checkpoint(&body, now)).await;
    match answer {
        Ok(Ok(cosig)) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], cosig).into_response(),
        Ok(Err(r)) => {
            let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, [(header::CONTENT_TYPE, r.content_type)], r.body).into_response()
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn checkpoint(State(w): State<Arc<Witness>>, Path(origin_hash): Path<String>) -> Response {
    match tokio::task::spawn_blocking(move || w.checkpoint(&origin_hash)).await {
        Ok(Some(note)) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response(),
        _ => (StatusCode::NOT_FOUND, "this witness has cosigned no checkpoint of that log\n").into_response(),
    }
}
