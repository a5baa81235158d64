//! `trail import --format F --org ORG FILE…`: other systems' audit records (plain or
//! `.gz`) stored as the organization's events, with a progress bar on a terminal, the
//! records skipped and why, and a closing summary.

use std::io::Read;

use anyhow::{bail, Context, Result};
use trail_server::work::import::{self, Format};

use crate::{accounts::cli_state, config::Config, store::open_store};

/// A file's text, decompressed when it is gzip (by its first bytes), as it streams
/// from the file: at most `max_expanded` bytes are ever held; a file that expands
/// further is refused, naming it and the limit.
fn read(file: &str, max_expanded: u64) -> Result<String> {
    let mut f = std::fs::File::open(file).with_context(|| format!("cannot read {file}"))?;
    let mut magic = [0u8; 2];
    let n = f.read(&mut magic).with_context(|| format!("cannot read {file}"))?;
    let head = std::io::Cursor::new(magic[..n].to_vec());
    let bytes = if magic[..n] == [0x1f, 0x8b] {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(std::io::BufReader::new(head.chain(f)))
            .take(max_expanded.saturating_add(1))
            .read_to_end(&mut out)
            .with_context(|| format!("{file}: not gzip"))?;
        if out.len() as u64 > max_expanded {
            bail!("{file}: expands to more than {} MiB; split it, or raise --max-expanded-mib", max_expanded >> 20);
        }
        out
    } else {
        let mut out = head.into_inner();
        f.read_to_end(&mut out).with_context(|| format!("cannot read {file}"))?;
        out
    };
    String::from_utf8(bytes).with_context(|| format!("{file}: not UTF-8"))
}

pub(crate) async fn import_cmd(
    config: &Config,
    format: &str,
    org: &str,
    files: &[String],
    max_expanded: u64,
) -> Result<()> {
    let Some(format) = Format::parse(format) else {
        bail!("--format must be one of {}, not '{format}'", Format::NAMES.join(", "));
    };
    if files.is_empty() {
        bail!("give one or more FILEs");
    }
    let store = open_store(config).await?;
    if !store.orgs().await?.iter().any(|o| o.slug == org) {
        store.close();
        bail!("unknown organization '{org}' (create it with `trail keys create --org {org} --scope ingest`)");
    }
    let st = cli_state(store.clone());
    let (mut imported, mut duplicates, mut skipped) = (0usize, 0usize, 0usize);
    let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
        let bar = indicatif::ProgressBar::new(files.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} files {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let outcome: Result<()> = async {
        for file in files {
            let text = read(file, max_expanded)?;
            let converted = import::convert(format, &text);
            for s in &converted.skipped {
                eprintln!("{file}:{}: skipped: {}", s.line, s.reason);
            }
            skipped += converted.skipped.len();
            let stored = import::store(&st, org, converted.events).await.map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
            duplicates += stored.duplicates;
            imported += stored.acks.len() - stored.duplicates;
            if let Some(b) = &bar {
                b.inc(1);
                b.set_message(format!("{imported} imported"));
            }
        }
        Ok(())
    }
    .await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    store.close();
    outcome?;
    println!("imported {imported}, duplicates {duplicates}, skipped {skipped}");
    Ok(())
}
