//! An export request read from query parameters for a caller: the format and preset,
//! the filter, the caller's export scope, and how far back it may reach. Exports,
//! downloads and background jobs all start here.

use trail_core::Filter;
use trail_export::{Format, Preset};

use crate::{
    auth::Caller,
    error::ApiError,
    work::{export::ExportRequest, retention::online_window},
    AppState,
};

/// Builds an export request from query parameters for `caller`. With `download`, a
/// "Download log": any period (no online window), archived and online events merged in
/// time order, as CSV (the default) or JSON Lines.
pub(crate) fn request(
    st: &AppState,
    caller: &Caller,
    pairs: Vec<(String, String)>,
    download: bool,
) -> Result<ExportRequest, ApiError> {
    let mut format = download.then_some(Format::Csv);
    let mut preset = Preset::Standard;
    let mut org = None;
    let mut rest = Vec::new();
    for (k, v) in pairs {
        match k.as_str() {
            "format" => {
                format = match Format::parse(&v) {
                    Some(f @ (Format::Csv | Format::Jsonl)) => Some(f),
                    _ if download => return Err(ApiError::field("format", "a download is csv or jsonl")),
                    Some(f) => Some(f),
                    None => {
                        return Err(ApiError::field("format", "must be one of csv, xlsx, json, jsonl, pdf, evidence"))
                    }
                }
            }
            "preset" => {
                preset = Preset::parse(&v).ok_or_else(|| ApiError::field("preset", "must be standard or compliance"))?
            }
            "org" => org = Some(v),
            "cursor" | "limit" | "download" => {}
            _ => rest.push((k, v)),
        }
    }
    let format =
        format.ok_or_else(|| ApiError::field("format", "is required: csv, xlsx, json, jsonl, pdf or evidence"))?;
    let mut filter = Filter::from_pairs(rest.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    if preset == Preset::Compliance && filter.category.is_empty() && filter.action.is_empty() {
        filter.category = Preset::COMPLIANCE_CATEGORIES.iter().map(|c| c.to_string()).collect();
    }
    let mut scope = caller.export_scope()?;
    if let Some(o) = org.as_deref() {
        scope.org = Some(caller.log_org(Some(o))?);
    }
    let verifier_key = match format {
        Format::Evidence => {
            let org =
                scope.org.clone().ok_or_else(|| ApiError::field("org", "evidence covers one organization: name it"))?;
            let log = st
                .config
                .log
                .as_ref()
                .ok_or_else(|| ApiError::Unavailable("checkpoints are not signed here".into()))?;
            Some(log.verifier_key(&org))
        }
        _ => None,
    };
    // Downloads and evidence reach archived periods; the rest only the online window.
    let reaches_archive = download || format == Format::Evidence;
    if !reaches_archive {
        online_window(st, &mut filter, (st.clock)())?;
    }
    let generated_by = caller.actor()["email"].as_str().or(caller.actor()["name"].as_str()).unwrap_or("").to_string();
    Ok(ExportRequest {
        format,
        preset,
        scope: scope.clone(),
        filter,
        // Recorded in the log of the organization exported (a platform caller's export
        // of several, in the platform's log), never in a third one.
        audit_org: match (caller.perms.platform, &scope.org) {
            (false, _) => caller.org.clone(),
            (true, Some(org)) => org.clone(),
            (true, None) => crate::work::selfaudit::PLATFORM_LOG.to_string(),
        },
        actor: caller.actor(),
        ip: caller.ip,
        user_agent: caller.user_agent.clone(),
        generated_by,
        archive: if reaches_archive { st.archive.clone() } else { None },
        witness_policy: st.config.witness.as_ref().map(|w| w.policy.clone()),
        verifier_key,
        download,
    })
}
