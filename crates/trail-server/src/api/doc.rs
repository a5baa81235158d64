//! The OpenAPI 3.1 document of the API (`GET /api/v1/openapi.json`), generated from the
//! handlers' annotations and the typed bodies they answer with. A golden copy is kept
//! in `crates/trail-server/openapi.json`, so that a change of the API shows in review;
//! a test fails when the two differ (`TRAIL_UPDATE_GOLDEN=1` rewrites the copy).

use axum::{http::header, response::IntoResponse};
use utoipa::{
    openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
    IntoParams, IntoResponses, Modify, OpenApi, ToSchema,
};

use crate::error::ErrorBody;

/// The errors any authenticated endpoint may answer with, each with the error body.
#[allow(dead_code)] // Documents responses; the bodies are made by `ApiError`.
#[derive(IntoResponses)]
pub(crate) enum Errors {
    /// A parameter, body field or header is wrong; `field` names it.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No valid API key or session (`field` is `authorization`).
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The caller's role or key scope does not allow this.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// Nothing of that id within the caller's scope.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// The body arrived too slowly (`too_slow`).
    #[response(status = 408)]
    TooSlow(ErrorBody),
    /// The body is larger than allowed (`too_large`).
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// Too many attempts or streams; see `retry_after` and the `Retry-After` header.
    #[response(status = 429)]
    TooMany(ErrorBody),
    /// A bug, or stored data that fails its check (`damaged`).
    #[response(status = 500)]
    Internal(ErrorBody),
    /// The store is unavailable, a commit's outcome is unknown, or a file could not be
    /// written: retry (with the same idempotency keys).
    #[response(status = 503)]
    Unavailable(ErrorBody),
    /// The server's disk is full: nothing was written.
    #[response(status = 507)]
    InsufficientStorage(ErrorBody),
}

/// The filter of lists, facets, exports and downloads (see the query language).
#[allow(dead_code)] // Documents parameters; handlers read them as pairs, in order.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct FilterParams {
    /// A preset: `1h`, `24h`, `today`, `7d`, `30d`, `90d`.
    period: Option<String>,
    /// Start (RFC 3339 time or date), inclusive.
    from: Option<String>,
    /// End (RFC 3339 time or date), inclusive.
    to: Option<String>,
    /// Categories, comma-separated (`auth,user`).
    category: Option<String>,
    /// The same as `category`.
    #[param(rename = "type")]
    kind: Option<String>,
    operation: Option<String>,
    /// `category:operation`, comma-separated.
    action: Option<String>,
    /// DONE, FAILED, PROCESSING, PENDING, comma-separated.
    result: Option<String>,
    /// `success` or `failure` (by status code, else result).
    status: Option<String>,
    /// An actor's id, name or email; `name@` matches an email's local part.
    actor: Option<String>,
    /// The same as `actor`.
    user: Option<String>,
    /// An organization's slug or name.
    company: Option<String>,
    request_id: Option<String>,
    /// A resource's name or id.
    resource: Option<String>,
    resource_type: Option<String>,
    /// A workspace's id or name.
    workspace: Option<String>,
    project: Option<String>,
    cluster: Option<String>,
    namespace: Option<String>,
    /// An address or CIDR block.
    ip: Option<String>,
    /// Words, prefixes and quoted phrases, or the query language (`category:auth failed`).
    q: Option<String>,
    /// `hide` leaves out Trail's own `audit:view` events (who viewed which filter).
    views: Option<String>,
    /// A column, `-` first for descending (`-timestamp`, the default).
    sort: Option<String>,
}

/// Paging of the list.
#[allow(dead_code)] // Documents parameters.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageParams {
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Events per page, 1 to 1,000 (default 50).
    limit: Option<u32>,
    /// Rows to skip first, at most 10,000 (not with `cursor`).
    offset: Option<u32>,
    /// Alias of `from` (the product documents' name).
    start: Option<String>,
    /// Alias of `to`.
    end: Option<String>,
}

/// What an export is.
#[allow(dead_code)] // Documents parameters.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ExportParams {
    /// csv, xlsx, json, jsonl, pdf or evidence (a download: csv or jsonl).
    format: Option<String>,
    /// `standard` or `compliance` (the compliance categories when no category is named).
    preset: Option<String>,
    /// One organization (platform callers; evidence needs one).
    org: Option<String>,
    /// A background job reads archived periods too, as a download does.
    download: Option<bool>,
}

/// The organization whose log or accounts are meant (the caller's by default).
#[allow(dead_code)] // Documents parameters.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct OrgParam {
    org: Option<String>,
}

/// Which checkpoint.
#[allow(dead_code)] // Documents parameters.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CheckpointParams {
    org: Option<String>,
    /// The tree size of an older checkpoint (default: the newest).
    size: Option<u64>,
    /// `note` (default): the signed note; or `tlog-proof`: a C2SP `tlog-proof@v1` file
    /// proving the checkpoint into the installation log (its `extra` is the checkpoint's
    /// signed note; 404 until it is appended there, within about a second).
    format: Option<String>,
}

/// Which entry, in which tree.
#[allow(dead_code)] // Documents parameters.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct InclusionParams {
    org: Option<String>,
    /// The entry's seq (or give `id`).
    index: Option<u64>,
    /// The event's id (or give `index`).
    id: Option<String>,
    /// The tree size (default: the newest checkpoint's).
    size: Option<u64>,
    /// `json` (default), or `tlog-proof`: a C2SP `tlog-proof@v1` file carrying the
    /// entry's stored bytes (as `extra`), its proof and the signed checkpoint of `size`,
    /// which `trail verify FILE --key VKEY` checks offline.
    format: Option<String>,
}

/// Which two trees.
#[allow(dead_code)] // Documents parameters.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ConsistencyParams {
    org: Option<String>,
    from: u64,
    /// Default: the newest checkpoint's size.
    to: Option<u64>,
}

/// An exported file (CSV, XLSX, JSON, JSON Lines, PDF, evidence).
#[allow(dead_code)] // Documents a binary body.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub(crate) struct File(Vec<u8>);

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("trail_*").build()),
        );
        c.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::SESSION_COOKIE,
                "A login session; changes also need the X-CSRF-Token header of the login answer.",
            ))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Trail",
        description = "A tamper-evident audit log: send events, query them, export them, prove them.",
        license(name = "Apache-2.0")
    ),
    paths(
        super::health::health,
        super::health::ready,
        super::events::ingest,
        super::events::list,
        crate::live::stream,
        super::events::detail,
        super::events::facets,
        super::timeline::timeline,
        super::alerts::list_rules,
        super::alerts::create_rule,
        super::alerts::put_rule,
        super::alerts::delete_rule,
        super::alerts::list_destinations,
        super::alerts::create_destination,
        super::alerts::rotate_secret,
        super::alerts::delete_destination,
        super::alerts::test_destination,
        super::alerts::list_deliveries,
        super::import::import,
        super::streams::create_stream,
        super::streams::list_streams,
        super::streams::get_stream,
        super::streams::change_stream,
        super::streams::pause_stream,
        super::streams::resume_stream,
        super::streams::replay_stream,
        super::streams::delete_stream,
        super::alerts::retry_delivery,
        super::proofs::checkpoint,
        super::proofs::inclusion,
        super::proofs::consistency,
        super::people::login,
        super::people::logout,
        super::people::change_password,
        super::people::me,
        super::people::list_users,
        super::people::create_user,
        super::people::update_user,
        super::people::list_roles,
        super::people::put_role,
        super::people::delete_role,
        super::keys::list_keys,
        super::keys::create_key,
        super::keys::revoke_key,
        super::exports::export,
        super::exports::download,
        super::jobs::start_job,
        super::jobs::job_status,
        super::jobs::job_file,
        super::holds::list_holds,
        super::holds::place_hold,
        super::holds::release_hold,
        super::schedules::list_schedules,
        super::schedules::create_schedule,
        super::schedules::delete_schedule,
        super::schedules::run_schedule_now,
        openapi_json,
    ),
    components(schemas(ErrorBody, super::events::EventPage)),
    modifiers(&Security),
    security(("api_key" = []), ("session" = [])),
    tags(
        (name = "events", description = "Sending and reading events"),
        (name = "proofs", description = "Checkpoints and Merkle proofs"),
        (name = "alerts", description = "Alert rules, destinations and deliveries"),
        (name = "streams", description = "Streams of events to SIEMs: at least once, in seq order, with health"),
        (name = "people", description = "Login, users and roles"),
        (name = "keys", description = "API keys"),
        (name = "exports", description = "Exports, downloads and background jobs"),
        (name = "schedules", description = "Scheduled exports"),
        (name = "holds", description = "Legal holds: what retention keeps"),
        (name = "system", description = "Health and this document")
    )
)]
struct ApiDoc;

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as served and kept in the repository: pretty JSON, one newline at the end.
pub fn document_json() -> String {
    let mut s = document().to_pretty_json().unwrap_or_default();
    s.push('\n');
    s
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "system", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
pub(crate) async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], document_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The golden copy is the document this build serves.
    #[test]
    fn the_golden_copy_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
        let now = document_json();
        if std::env::var("TRAIL_UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
            std::fs::write(&path, &now).unwrap();
        }
        let kept = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            kept == now,
            "crates/trail-server/openapi.json differs from the API: review the change, then run \
             TRAIL_UPDATE_GOLDEN=1 cargo test -p trail-server --lib the_golden_copy_is_current"
        );
    }

    /// Every error answer names its body.
    #[test]
    fn every_operation_documents_its_errors() {
        let doc = serde_json::to_value(document()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                assert!(!responses.is_empty(), "{method} {path}");
                if !["/api/v1/openapi.json", "/healthz", "/readyz"].contains(&path.as_str()) {
                    assert!(responses.contains_key("401"), "{method} {path} documents no 401");
                }
            }
        }
    }
}
