//! Legal holds placed and released (by the API and the command line alike): the reason
//! and query checked, the hold kept, and the change recorded in the held
//! organization's log (`hold:place`, `hold:release`) with its reason. Retention keeps
//! what an active hold covers (`trail_store::archive::run`).

use serde_json::json;
use trail_store::holds::{LegalHold, NewHold};

use super::{selfaudit::Record, Services, WorkError};

/// The longest reason kept.
const MAX_REASON: usize = 2_000;

fn check_reason(reason: &str) -> Result<String, WorkError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.len() > MAX_REASON {
        return Err(WorkError::field("reason", format!("a hold needs a reason of 1 to {MAX_REASON} characters")));
    }
    Ok(reason.to_string())
}

/// Places a hold on `org` (every event, or those `query` matches) and records it with
/// `record` (the actor placing it).
pub async fn place(
    st: &Services,
    org: &str,
    query: Option<&str>,
    reason: &str,
    placed_by: &str,
    mut record: Record,
) -> Result<LegalHold, WorkError> {
    let reason = check_reason(reason)?;
    let query = match query.map(str::trim).filter(|q| !q.is_empty()) {
        Some(q) => {
            trail_core::query::parse(q).map_err(|e| WorkError::field("query", e.message))?;
            Some(q.to_string())
        }
        None => None,
    };
    let hold = NewHold { org: org.into(), query, reason, placed_by: placed_by.into(), at: (st.clock)() };
    let hold = st.store.place_hold(hold).await?;
    record.org = hold.org.clone();
    let record = record
        .resource("legal_hold", hold.id, hold.query.as_deref().unwrap_or("every event"))
        .details(json!({"id": hold.id, "query": hold.query, "reason": hold.reason}));
    super::selfaudit::record(st, record).await;
    follow_in_bucket(st, &hold.org);
    Ok(hold)
}

/// With the archive in a bucket, the S3 legal holds of the organization's archived
/// objects follow the holds now, in the background (retention's run does it again).
fn follow_in_bucket(st: &Services, org: &str) {
    let Some(archive) = st.archive.clone().filter(|a| a.dir().is_none()) else { return };
    let (st, org) = (st.clone(), org.to_string());
    tokio::spawn(async move {
        let now = (st.clock)();
        let held = match trail_store::archive::Held::of(&*st.store, &org).await {
            Ok(h) => h,
            Err(e) => return tracing::warn!(error = %e, %org, "cannot read the legal holds"),
        };
        match trail_store::archive::legal_holds(&*st.store, &archive, &org, &held, now).await {
            Ok((set, lifted)) => tracing::info!(%org, set, lifted, "S3 legal holds follow the holds"),
            Err(e) => tracing::warn!(error = %e, %org, "S3 legal holds not updated (the next retention run retries)"),
        }
    });
}

/// Releases `org`'s active hold `id`, recorded with the reason.
pub async fn release(
    st: &Services,
    org: &str,
    id: i64,
    reason: &str,
    released_by: &str,
    mut record: Record,
) -> Result<LegalHold, WorkError> {
    let reason = check_reason(reason)?;
    let hold = st
        .store
        .release_hold(org, id, released_by, &reason, (st.clock)())
        .await?
        .ok_or_else(|| WorkError::NotFound(format!("no active legal hold {id} on {org}")))?;
    record.org = hold.org.clone();
    let record = record
        .resource("legal_hold", hold.id, hold.query.as_deref().unwrap_or("every event"))
        .details(json!({"id": hold.id, "query": hold.query, "reason": reason, "placed_reason": hold.reason}));
    super::selfaudit::record(st, record).await;
    follow_in_bucket(st, &hold.org);
    Ok(hold)
}
