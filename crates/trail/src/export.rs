//! `trail export` and `trail verify-file`: a filtered export or a download written to
//! a file, and an evidence file checked offline.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use trail_store::{DynStore, Scope};

use crate::{
    accounts::cli_state,
    config::Config,
    log::now,
    store::{open_store, signing_key},
};

pub(crate) async fn export(
    config: &Config,
    format: &str,
    out: &std::path::Path,
    org: Option<&str>,
    preset: &str,
    query: &str,
    download: bool,
) -> Result<()> {
    use trail_export::{Format, Preset};
    let format = Format::parse(format)
        .with_context(|| format!("--format must be csv, xlsx, json, jsonl, pdf or evidence, not '{format}'"))?;
    let preset =
        Preset::parse(preset).with_context(|| format!("--preset must be standard or compliance, not '{preset}'"))?;
    let mut filter = trail_core::query::parse(query).map_err(|e| anyhow::anyhow!("query: {}", e.message))?;
    if preset == Preset::Compliance && filter.category.is_empty() && filter.action.is_empty() {
        filter.category = Preset::COMPLIANCE_CATEGORIES.iter().map(|c| c.to_string()).collect();
    }
    if format == Format::Evidence && org.is_none() {
        bail!("--org is required for evidence (it covers one organization's log)");
    }
    let store = open_store(config).await?;
    if let Some(o) = org {
        crate::store::known_org(&*store, o).await?;
    }
    let verifier_key = org.map(|o| {
        signing_key(config, false)
            .map(|k| trail_core::checkpoint::verifier_key(&format!("{}/{o}", config.name), &k.verifying_key()))
    });
    let verifier_key = verifier_key.transpose()?;
    let scope = match org {
        Some(o) => Scope::org(o),
        None => Scope::all(),
    };
    let audit_org = match org {
        Some(o) => o.to_string(),
        None => store.orgs().await?.first().map(|o| o.slug.clone()).context("the store has no organization")?,
    };
    let req = trail_server::work::export::ExportRequest {
        format,
        preset,
        scope: scope.clone(),
        filter: filter.clone(),
        audit_org,
        actor: serde_json::json!({"id": "trail-cli", "name": "trail command line", "type": "system"}),
        ip: None,
        user_agent: None,
        generated_by: "trail command line".into(),
        verifier_key,
        archive: if download || format == Format::Evidence { crate::archive::archive(config).await? } else { None },
        witness_policy: config.witness.as_ref().map(|w| w.policy.clone()),
        download,
    };
    let dyn_store: DynStore = store.clone();
    let mut total = dyn_store.count(scope, filter, now()).await?;
    if req.archive.is_some() {
        total += dyn_store.archives(org).await?.iter().map(|f| f.count).sum::<u64>();
    }
    let progress = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} events {per_sec} eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let (bar2, p2) = (bar.clone(), progress.clone());
        tokio::spawn(async move {
            loop {
                bar2.set_position(p2.load(std::sync::atomic::Ordering::Relaxed));
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        });
        Some(bar)
    } else {
        None
    };
    let tmp = config.exports.tmp();
    let rows = trail_server::work::export::to_file(&dyn_store, &req, out, &tmp, now(), progress)
        .await
        .map_err(|e| anyhow::anyhow!("{}", work_message(e)))?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let state = cli_state(store.clone());
    let details = serde_json::json!({"format": format.as_str(), "filter": trail_core::query::render(&req.filter),
        "rows": rows, "org": org.unwrap_or("*"), "file": out.display().to_string(), "download": download});
    trail_server::work::selfaudit::record_system(
        &state,
        &req.audit_org,
        "audit:export",
        serde_json::json!({}),
        details,
    )
    .await;
    store.close();
    println!("wrote {rows} entries to {}", out.display());
    Ok(())
}

/// The message of a failed piece of work, for the command line.
pub(crate) fn work_message(e: trail_server::WorkError) -> String {
    match e {
        trail_server::WorkError::Field(f) => format!("{}: {}", f.field, f.message),
        other => other.to_string(),
    }
}
