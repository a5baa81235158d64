//! `trail export` and `trail verify-file`: a filtered export or a download written to
//! a file, and an evidence file checked offline.

use std::{io::Read, sync::Arc};

use anyhow::{bail, Context, Result};
use trail_store::{DynStore, Scope};

use crate::{
    accounts::cli_state,
    config::Config,
    log::now,
    store::{archive, open_store, signing_key},
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
        archive: if download || format == Format::Evidence { archive(config) } else { None },
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

/// Checks evidence and tlog-proof files (`-` for standard input); an event's proof
/// and a checkpoint's proof into the installation log given together must be of the
/// same checkpoint.
pub(crate) fn verify_files(
    files: &[String],
    key: Option<&str>,
    installation_key: Option<&str>,
    policy: Option<&trail_core::policy::Policy>,
) -> Result<()> {
    let mut event_checkpoints = Vec::new();
    let mut proved_checkpoints = Vec::new();
    for file in files {
        let text = if file == "-" {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).context("cannot read standard input")?;
            s
        } else {
            std::fs::read_to_string(file).with_context(|| format!("cannot read {file}"))?
        };
        if text.starts_with(trail_core::tlog_proof::HEADER) {
            let proof = trail_core::tlog_proof::TlogProof::parse(&text).map_err(|p| anyhow::anyhow!("{file}: {p}"))?;
            if proof.is_checkpoint_proof() {
                let cp = match policy {
                    Some(p) => witnessed_checkpoint(file, &proof, key, p)?.org,
                    None => verify_checkpoint_proof(file, &proof, key, installation_key)?,
                };
                proved_checkpoints.push(cp);
            } else {
                event_checkpoints.push((file, verify_tlog_proof(file, &proof, key)?));
            }
            continue;
        }
        verify_evidence(file, &text, key, installation_key, policy)?;
    }
    if policy.is_some() || !proved_checkpoints.is_empty() {
        for (file, cp) in event_checkpoints {
            if !proved_checkpoints.contains(&cp) {
                bail!(
                    "{file}: its checkpoint ({} of size {}) is not the one proved into the {}installation log: \
                     give that checkpoint's tlog-proof too (GET /api/v1/checkpoint?size={}&format=tlog-proof)",
                    cp.origin,
                    cp.size,
                    if policy.is_some() { "witnessed " } else { "" },
                    cp.size
                );
            }
        }
    }
    Ok(())
}

fn verify_evidence(
    file: &str,
    text: &str,
    key: Option<&str>,
    installation_key: Option<&str>,
    policy: Option<&trail_core::policy::Policy>,
) -> Result<()> {
    if let Some(p) = policy {
        // The proof into the installation log, witnessed; then the file as usual.
        let header: trail_core::evidence::Header = text
            .lines()
            .next()
            .and_then(|l| serde_json::from_str(l).ok())
            .with_context(|| format!("{file}: line 1: not an evidence header"))?;
        let inst = header.installation.with_context(|| {
            format!("{file}: the file carries no proof into the installation log (exported before it was appended?)")
        })?;
        let proof = trail_core::tlog_proof::TlogProof::parse(&inst).map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
        let got = witnessed_checkpoint(file, &proof, key, p)?;
        if trail_core::cosignature::note_body(&got.org_note).ok()
            != trail_core::cosignature::note_body(&header.checkpoint).ok()
        {
            bail!("{file}: the installation proof is for another checkpoint");
        }
    }
    let report = trail_core::evidence::verify_with(text.lines(), key, installation_key)
        .map_err(|p| anyhow::anyhow!("{file}: {p}"))?;
    let trust =
        if key.is_some() { "" } else { " (signed by the key the file names; pass --key to check who signed it)" };
    println!(
        "ok: {} entries prove into checkpoint {} of size {}{trust}",
        report.entries, report.checkpoint.origin, report.checkpoint.size
    );
    match report.installation {
        Some(inst) => println!("ok: that checkpoint is in the installation log {} of size {}", inst.origin, inst.size),
        None if report.carries_installation => {
            println!("   the file also proves it into the installation log: pass --installation-key to check that")
        }
        None => {}
    }
    Ok(())
}

/// A C2SP tlog-proof file of an event (`GET /api/v1/proof/inclusion?format=tlog-proof`):
/// the entry it carries proved into the checkpoint signed by `key`.
fn verify_tlog_proof(
    file: &str,
    proof: &trail_core::tlog_proof::TlogProof,
    key: Option<&str>,
) -> Result<trail_core::checkpoint::Checkpoint> {
    let key = key.context("a tlog-proof names no key: pass --key with the log's verifier key")?;
    let cp = proof.verify(None, key).map_err(|p| anyhow::anyhow!("{file}: {p}"))?;
    let what = proof
        .extra
        .as_deref()
        .and_then(|e| trail_core::Event::from_leaf(e).ok())
        .map_or(String::new(), |e| format!(" (event {}, {})", e.id, e.action));
    println!("ok: entry {}{what} proves into checkpoint {} of size {}", proof.index, cp.origin, cp.size);
    Ok(cp)
}

/// A C2SP tlog-proof file of an organization checkpoint in the installation log (`GET
/// /api/v1/checkpoint?format=tlog-proof`).
fn verify_checkpoint_proof(
    file: &str,
    proof: &trail_core::tlog_proof::TlogProof,
    key: Option<&str>,
    installation_key: Option<&str>,
) -> Result<trail_core::checkpoint::Checkpoint> {
    let ikey = installation_key.context(
        "this tlog-proof proves a checkpoint into the installation log: pass --installation-key \
         (trail keys verifier --org _installation)",
    )?;
    let got = proof.verify_checkpoint(ikey, key).map_err(|p| anyhow::anyhow!("{file}: {p}"))?;
    let signed = if key.is_some() { "" } else { " (its own signature unchecked: pass --key)" };
    println!(
        "ok: checkpoint {} of size {}{signed} is entry {} of the installation log {} of size {}",
        got.org.origin, got.org.size, proof.index, got.installation.origin, got.installation.size
    );
    Ok(got.org)
}

/// A checkpoint proof under a policy: the installation checkpoint it proves into must
/// be signed by the policy's log and cosigned by its quorum; then the proof itself.
pub(crate) fn witnessed_checkpoint(
    file: &str,
    proof: &trail_core::tlog_proof::TlogProof,
    key: Option<&str>,
    policy: &trail_core::policy::Policy,
) -> Result<trail_core::tlog_proof::CheckpointInLog> {
    let w = policy.accept(&proof.checkpoint).map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
    let log = policy.log(&w.checkpoint.origin).context("the policy names the log")?;
    let got = proof.verify_checkpoint(&log.vkey, key).map_err(|p| anyhow::anyhow!("{file}: {p}"))?;
    println!(
        "ok: checkpoint {} of size {} is entry {} of {} of size {}, witnessed by {} ({})",
        got.org.origin,
        got.org.size,
        proof.index,
        got.installation.origin,
        got.installation.size,
        w.cosigners.join(", "),
        policy.describe_quorum()
    );
    Ok(got)
}
