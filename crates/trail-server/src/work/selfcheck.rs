//! Trail checks its own store every day (like retention, at a configured UTC minute):
//! every organization's log is verified in full (`trail_store::verify`), the result is
//! recorded as a `system:verify` event in that organization, and `/healthz` reports the
//! last run, saying `degraded` while a finding stands.

use std::sync::Mutex;

use serde_json::{json, Value};
pub use trail_store::repair::Repair;
use trail_store::verify::{verify, VerifyOptions, DEFAULT_GRACE_US};

use super::{daily::next_run, selfaudit, Services, WorkError};

/// Findings kept in an event's details (the report counts the rest).
const FINDINGS_RECORDED: usize = 20;

/// The last run's outcome, as `/healthz` shows it.
#[derive(Default)]
pub(crate) struct LastCheck(Mutex<Option<Value>>);

impl LastCheck {
    /// `(healthy, what to show)`; healthy until a run finds something.
    pub(crate) fn health(&self) -> (bool, Option<Value>) {
        let last = self.0.lock().ok().and_then(|l| l.clone());
        let ok = last.as_ref().is_none_or(|v| v["ok"] == true);
        (ok, last)
    }
}

/// One organization's result.
#[derive(Debug, Clone)]
pub struct OrgCheck {
    pub org: String,
    pub ok: bool,
    /// The report's summary line.
    pub summary: String,
    /// The findings, one a line.
    pub problems: String,
}

/// What the self-check and repair verify against: the installation's key, the
/// archive, and now with the default grace period.
fn options<'a>(st: &'a Services, vkey: &'a str) -> VerifyOptions<'a> {
    VerifyOptions {
        vkey,
        archive: st.archive.as_deref(),
        external: None,
        now: Some((st.clock)().0),
        grace_us: DEFAULT_GRACE_US,
    }
}

/// Verifies every organization's log now, records `system:verify` in each and keeps
/// the outcome for `/healthz`.
pub async fn run(st: &Services) -> Result<Vec<OrgCheck>, WorkError> {
    let log = st.config.log.clone().ok_or_else(|| WorkError::Unavailable("checkpoints are not signed here".into()))?;
    let started = (st.clock)();
    let mut out = Vec::new();
    for org in st.store.orgs().await? {
        let vkey = log.verifier_key(&org.slug);
        let opts = options(st, &vkey);
        let report = verify(&*st.store, &org.slug, opts).await?;
        let findings: Vec<String> = report.findings.iter().take(FINDINGS_RECORDED).map(ToString::to_string).collect();
        let details = json!({
            "entries": report.entries,
            "tree_nodes": report.nodes,
            "checkpoints": report.checkpoints,
            "newest_checkpoint": report.newest_checkpoint,
            "beyond_checkpoint": report.beyond_checkpoint(),
            "archived": report.archived,
            "findings": findings,
            "more_findings": (report.findings.len() + report.more as usize).saturating_sub(FINDINGS_RECORDED),
        });
        let rec = selfaudit::Record {
            org: org.slug.clone(),
            action: "system:verify",
            ok: report.ok(),
            actor: json!({"id": "trail-verify", "name": "daily self-check", "type": "system"}),
            resource: Some(json!({"type": "log", "id": org.slug, "name": format!("{} log", org.slug)})),
            details: Some(details),
            error: report.findings.first().map(ToString::to_string),
            ip: None,
            user_agent: None,
        };
        selfaudit::record(st, rec).await;
        if !report.ok() {
            tracing::error!(org = %org.slug, findings = %report.problems(), "the stored log does not verify");
        }
        out.push(OrgCheck { org: org.slug, ok: report.ok(), summary: report.summary(), problems: report.problems() });
    }
    let failed: Vec<&str> = out.iter().filter(|c| !c.ok).map(|c| c.org.as_str()).collect();
    let first = out.iter().find(|c| !c.ok).and_then(|c| c.problems.lines().next()).map(str::to_string);
    let last = json!({
        "at": started.to_rfc3339(),
        "ok": failed.is_empty(),
        "organizations": out.len(),
        "failed": failed,
        "first_finding": first,
    });
    if let Ok(mut l) = st.last_check.0.lock() {
        *l = Some(last);
    }
    Ok(out)
}

/// `trail repair --org`: rebuilds what is derived from `org`'s stored bytes when only
/// that is wrong (`trail_store::repair`), and records `system:repair` in the
/// organization: what was found, what was rebuilt, and whether it verifies after.
/// Refused (and recorded as FAILED) when the bytes, the tree or the checkpoints fail.
pub async fn repair(st: &Services, org: &str) -> Result<Repair, WorkError> {
    let log = st.config.log.clone().ok_or_else(|| WorkError::Unavailable("checkpoints are not signed here".into()))?;
    if !st.store.orgs().await?.iter().any(|o| o.slug == org) {
        return Err(WorkError::field("org", format!("no organization '{org}'")));
    }
    let vkey = log.verifier_key(org);
    let opts = options(st, &vkey);
    let outcome = trail_store::repair::repair(&*st.store, org, opts).await?;
    let findings = |r: &trail_store::verify::Report| -> Vec<String> {
        r.findings.iter().take(FINDINGS_RECORDED).map(ToString::to_string).collect()
    };
    let (ok, details, error) = match &outcome {
        Repair::Refused(r) => (
            false,
            json!({"refused": true, "findings": findings(r)}),
            Some(format!(
                "refused: the stored events, tree or checkpoints fail: {}",
                r.findings.first().map(ToString::to_string).unwrap_or_default()
            )),
        ),
        Repair::Done { before, rebuilt, after } => (
            after.ok(),
            json!({"found": findings(before), "rebuilt": rebuilt, "after": findings(after)}),
            after.findings.first().map(|f| format!("still wrong after the rebuild: {f}")),
        ),
    };
    let rec = selfaudit::Record {
        org: org.to_string(),
        action: "system:repair",
        ok,
        actor: json!({"id": "trail-cli", "name": "trail command line", "type": "system"}),
        resource: Some(json!({"type": "log", "id": org, "name": format!("{org} log")})),
        details: Some(details),
        error,
        ip: None,
        user_agent: None,
    };
    selfaudit::record(st, rec).await;
    Ok(outcome)
}

/// Records `system:verify` FAILED once for each organization the store's signer
/// refuses to sign (at start, and whenever the writer refuses one later), naming what
/// differs; `/healthz` and the page read the refusals from the store.
pub(crate) async fn watch_refusals(st: Services) {
    let mut recorded = std::collections::HashSet::new();
    loop {
        for r in st.store.refusals() {
            if !recorded.insert(r.org.clone()) {
                continue;
            }
            let rec = selfaudit::Record {
                org: r.org.clone(),
                action: "system:verify",
                ok: false,
                actor: json!({"id": "trail-signer", "name": "checkpoint signer", "type": "system"}),
                resource: Some(json!({"type": "log", "id": r.org, "name": format!("{} log", r.org)})),
                details: Some(json!({"signing": "stopped", "findings": [r.reason]})),
                error: Some(format!("nothing is signed for this log: {}", r.reason)),
                ip: None,
                user_agent: None,
            };
            selfaudit::record(&st, rec).await;
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

/// Runs the self-check every day at `run_at_minute` (UTC), until the shutdown signal.
pub(crate) async fn daily(st: Services) {
    let (Some(minute), Some(_)) = (st.config.verify_at_minute, st.config.log.as_ref()) else { return };
    loop {
        let now = (st.clock)();
        let next = next_run(None, minute, now);
        tokio::time::sleep(std::time::Duration::from_micros((next - now.0).max(0) as u64)).await;
        match run(&st).await {
            Ok(checks) => {
                let failed = checks.iter().filter(|c| !c.ok).count();
                tracing::info!(organizations = checks.len(), failed, "self-check ran");
            }
            Err(e) => tracing::warn!(error = ?e, "self-check failed to run"),
        }
    }
}
