//! Offline checks of what an auditor holds: evidence files and C2SP tlog-proof files
//! (an event's, and a checkpoint's in the installation log), against the published
//! keys or, with a C2SP tlog-policy, against the witnesses' quorum. When a checkpoint
//! is short of its quorum, the witnesses the policy names are asked which sizes they
//! have cosigned, so that the message says how far apart the log and they are.

use std::io::Read;

use anyhow::{bail, Context, Result};

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
    let w = policy
        .accept(&proof.checkpoint)
        .map_err(|e| anyhow::anyhow!("{file}: {e}{}", witness_sizes(policy, &proof.checkpoint)))?;
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

/// What the policy's witnesses say they last cosigned of the checkpoint's log (their
/// monitoring read, `GET <url>/<origin hash>/checkpoint`), as a clause for a message;
/// empty when the policy names no witness URL.
pub(crate) fn witness_sizes(policy: &trail_core::policy::Policy, note: &str) -> String {
    let hash = trail_core::cosignature::origin_hash(note.lines().next().unwrap_or_default());
    let asks: Vec<(String, String)> = policy
        .witnesses
        .iter()
        .filter_map(|w| Some((w.name.clone(), format!("{}/{hash}/checkpoint", w.url.as_deref()?))))
        .collect();
    if asks.is_empty() {
        return String::new();
    }
    // The command runs inside the runtime: ask from a thread with one of its own.
    let said = std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let client = trail_server::work::outbound::fetcher(std::time::Duration::from_secs(5)).ok()?;
                let mut out = Vec::new();
                for (name, url) in &asks {
                    let size = match trail_server::work::outbound::fetch(&client, url, None).await {
                        Ok(b) => String::from_utf8_lossy(&b).lines().nth(1).unwrap_or("?").to_string(),
                        Err(trail_server::WorkError::NotFound(_)) => "none".into(),
                        Err(_) => "unreachable".into(),
                    };
                    out.push(format!("{name} {size}"));
                }
                Some(out.join(", "))
            })
        })
        .join()
        .ok()
        .flatten()
    });
    said.map_or(String::new(), |s| format!("; the witnesses' newest cosigned sizes: {s}"))
}
