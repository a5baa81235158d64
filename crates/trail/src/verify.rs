//! `trail verify --org`: the stored log of one organization, checked in full.

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
