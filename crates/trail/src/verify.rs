//! `trail verify --org`: the stored log of one organization, checked in full; and
//! `trail verify --received`: a stream's copy kept by its receiver.

use anyhow::{bail, Context, Result};

use crate::{
    config::Config,
    store::{archive, open_store, signing_key},
};

/// `trail verify --org`: everything stored for `org` (see `trail_store::verify`), with
/// a saved checkpoint when one is given.
pub(crate) async fn verify_org(
    config: &Config,
    org: &str,
    key: Option<String>,
    checkpoint: Option<&str>,
) -> Result<()> {
    let vkey = match key {
        Some(k) => k,
        None => {
            let k = signing_key(config, false)?;
            trail_core::checkpoint::verifier_key(&format!("{}/{org}", config.name), &k.verifying_key())
        }
    };
    let external = match &checkpoint {
        Some(f) => Some(std::fs::read_to_string(f).with_context(|| format!("cannot read checkpoint {f}"))?),
        None => None,
    };
    let store = open_store(config).await?;
    let archive = archive(config);
    let opts =
        trail_store::verify::VerifyOptions { vkey: &vkey, archive: archive.as_deref(), external: external.as_deref() };
    let report = trail_store::verify::verify(&*store, org, opts).await;
    store.close();
    let report = report?;
    if report.ok() {
        println!("ok: {org}: {}", report.summary());
        Ok(())
    } else {
        bail!("{org}: verification failed:\n{}\n({})", report.problems(), report.summary())
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
