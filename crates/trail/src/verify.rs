//! `trail verify --org`: the stored log of one organization, checked in full; and
//! `trail verify --received`: a stream's copy kept by its receiver.

use anyhow::{bail, Context, Result};

use crate::{
    config::Config,
    store::{open_read_only, signing_key},
};

/// `trail verify --org`: everything stored for `org` (see `trail_store::verify`), with
/// a saved checkpoint when one is given. It opens the store for reading only: it never
/// creates a key, signs a checkpoint or writes a byte. Entries no valid checkpoint
/// covers fail it once older than `grace_s`.
pub(crate) async fn verify_org(
    config: &Config,
    org: &str,
    key: Option<String>,
    checkpoint: Option<&str>,
    grace_s: u64,
) -> Result<()> {
    let (vkey, against) = match key {
        Some(k) => {
            trail_core::checkpoint::parse_verifier_key(&k).map_err(|e| anyhow::anyhow!("--key: {e}"))?;
            let named = format!("the key {k}");
            (k, named)
        }
        None => {
            let path = &config.signing_key;
            if !path.exists() {
                bail!(
                    "there is no signing key at {}: give the published verifier key with --key (and a saved checkpoint with --checkpoint)",
                    path.display()
                );
            }
            let k = signing_key(config, false)?;
            let vkey = trail_core::checkpoint::verifier_key(&format!("{}/{org}", config.name), &k.verifying_key());
            println!(
                "checking {org} against this installation's own key ({}): this trusts the installation; an outside check gives --key and --checkpoint",
                path.display()
            );
            let named = format!("this installation's own key {vkey}");
            (vkey, named)
        }
    };
    let external = match &checkpoint {
        Some(f) => Some(std::fs::read_to_string(f).with_context(|| format!("cannot read checkpoint {f}"))?),
        None => None,
    };
    let store = open_read_only(config).await?;
    let archive = crate::archive::archive(config).await?;
    let opts = trail_store::verify::VerifyOptions {
        vkey: &vkey,
        archive: archive.as_deref(),
        external: external.as_deref(),
        now: Some(chrono::Utc::now().timestamp_micros()),
        grace_us: (grace_s.min(i64::MAX as u64 / 1_000_000) * 1_000_000) as i64,
    };
    let report = trail_store::verify::verify(&*store, org, opts).await;
    store.close();
    let report = report?;
    if report.ok() {
        let saved = match (&checkpoint, &external) {
            (Some(f), Some(note)) => {
                let size = note.lines().nth(1).unwrap_or("?");
                format!(" and the saved checkpoint {f} (size {size})")
            }
            _ => String::new(),
        };
        println!("ok: {org}: {} (checked against {against}{saved})", report.summary());
        Ok(())
    } else {
        bail!("{org}: verification failed:\n{}\n({})", report.problems(), report.summary())
    }
}

/// `trail repair --org`: the derived structures rebuilt from the verified bytes
/// (refused when the bytes, tree or checkpoints fail), recorded as `system:repair`.
pub(crate) async fn repair_org(config: &Config, org: &str) -> Result<()> {
    use trail_server::work::selfcheck::{repair, Repair};
    let store = crate::store::open_store(config).await?;
    let log = trail_server::LogKey { name: config.name.clone(), public: signing_key(config, false)?.verifying_key() };
    let server_config = trail_server::ServerConfig {
        log: Some(log),
        retention: crate::archive::retention(config).await?,
        ..trail_server::ServerConfig::default()
    };
    let services = trail_server::Services::new(store.clone(), server_config, trail_server::system_clock());
    let outcome = repair(&services, org).await.map_err(|e| anyhow::anyhow!("{}", crate::export::work_message(e)));
    store.close();
    match outcome? {
        Repair::Refused(r) => bail!(
            "{org}: not repaired: the stored events, their tree or their checkpoints fail, and a repair rebuilds only what is derived from them:\n{}",
            r.problems()
        ),
        Repair::Done { before, rebuilt, after } => {
            println!(
                "{org}: {} findings in derived structures; rebuilt {} rows, removed {} rows outside the log, wrote {} search-index documents, {} search words, {} idempotency key records",
                before.findings.len() as u64 + before.more,
                rebuilt.rows,
                rebuilt.strays,
                rebuilt.index_docs,
                rebuilt.words,
                rebuilt.keys
            );
            if !after.ok() {
                bail!("{org}: still wrong after the rebuild:\n{}", after.problems());
            }
            println!("ok: {org}: {}", after.summary());
            Ok(())
        }
    }
}

/// `trail verify --received COPY --checkpoint NOTE --key KEY`.
pub(crate) fn verify_received(copy: &str, note: &str, key: &str) -> Result<()> {
    let text = std::fs::read_to_string(copy).with_context(|| format!("cannot read {copy}"))?;
    let note = std::fs::read_to_string(note).with_context(|| format!("cannot read checkpoint {note}"))?;
    let r = trail_core::received::verify_copy(text.lines(), &note, key).map_err(|p| anyhow::anyhow!("{copy}: {p}"))?;
    let beyond =
        if r.beyond > 0 { format!("; {} later entries are not covered by it", r.beyond) } else { String::new() };
    println!(
        "ok: {}: seqs 0..{} are complete, unaltered and in order (checkpoint {} of size {}){beyond}",
        r.org,
        r.proven.saturating_sub(1),
        r.origin,
        r.proven
    );
    Ok(())
}

/// `trail mirror`: copies the log's tiles into `out`, checked before they are written.
/// A bucket URL (`s3://…`, where `[transparency] publish` writes) is read with
/// `[archive]`'s endpoint and the AWS credentials.
pub(crate) async fn mirror(
    config: &Config,
    url: &str,
    org: &str,
    vkey: &str,
    out: &std::path::Path,
    key: Option<String>,
) -> Result<()> {
    use trail_server::work::mirror;
    let bucket = match url.starts_with("s3://") {
        true => {
            let b = trail_store::archive::BucketConfig { url: url.to_string(), ..config.archive_settings.clone() };
            Some(trail_store::archive::Archive::open_bucket(&b).await.map_err(|e| anyhow::anyhow!("--url: {e}"))?)
        }
        false => None,
    };
    let src = mirror::Source { url: url.to_string(), org: org.to_string(), key, bucket };
    let done = mirror::mirror(&src, vkey, out).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "mirrored {} entries of {org} into {} ({} tiles and bundles fetched, {} already there and checked)",
        done.size,
        out.display(),
        done.fetched,
        done.kept
    );
    if done.unproved {
        println!("its checkpoint is not in the installation log yet (appended within a second): no checkpoint.tlog-proof; mirror again for it");
    }
    Ok(())
}

/// `trail verify --mirror DIR`: the whole mirrored log checked offline; with a policy,
/// its checkpoint witnessed too (the installation log's own, or an organization's
/// proved into a witnessed installation checkpoint by the mirror's
/// `checkpoint.tlog-proof`).
pub(crate) fn verify_mirror(dir: &std::path::Path, vkey: Option<&str>, policy: Option<&std::path::Path>) -> Result<()> {
    let policy = policy.map(trail_witness::read_policy).transpose()?;
    let note_path = dir.join("checkpoint");
    let note = std::fs::read_to_string(&note_path).with_context(|| format!("cannot read {}", note_path.display()))?;
    let origin = note.lines().next().unwrap_or_default().to_string();
    let vkey = match (&policy, vkey) {
        (_, Some(k)) => k.to_string(),
        (Some(p), None) => p
            .log(&origin)
            .map(|l| l.vkey.clone())
            .with_context(|| format!("the policy names no log {origin}: pass --key with the log's verifier key"))?,
        (None, None) => bail!("--mirror needs --key (or --policy naming the log)"),
    };
    let report = trail_server::work::mirror::verify_mirror(dir, &vkey).map_err(|e| anyhow::anyhow!("{e}"))?;
    if !report.findings.is_empty() {
        bail!("the mirror of {} does not verify:\n{}", report.origin, report.findings.join("\n"));
    }
    println!(
        "ok: {} entries of {} and {} hash tiles verified against its checkpoint of size {}",
        report.entries, report.origin, report.tiles, report.size
    );
    let Some(policy) = policy else { return Ok(()) };
    if policy.log(&origin).is_some() {
        let w = policy.accept(&note).map_err(|e| anyhow::anyhow!("{}: {e}", note_path.display()))?;
        println!("ok: witnessed by {} ({})", w.cosigners.join(", "), policy.describe_quorum());
        return Ok(());
    }
    let proof_path = dir.join(trail_server::work::mirror::CHECKPOINT_PROOF);
    let text = std::fs::read_to_string(&proof_path).with_context(|| {
        format!(
            "{} is missing: the checkpoint was not yet in the installation log when mirrored; mirror again",
            proof_path.display()
        )
    })?;
    let proof = trail_core::tlog_proof::TlogProof::parse(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", proof_path.display()))?;
    let got = crate::offline::witnessed_checkpoint(&proof_path.display().to_string(), &proof, Some(&vkey), &policy)?;
    if trail_core::cosignature::note_body(&got.org_note).ok() != trail_core::cosignature::note_body(&note).ok() {
        bail!("{}: it proves another checkpoint than the mirror's", proof_path.display());
    }
    Ok(())
}
