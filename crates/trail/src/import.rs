//! `trail import --format F --org ORG FILE…`: other systems' audit records (plain or
//! `.gz`) stored as the organization's events, with a progress bar on a terminal, the
//! records skipped and why, and a closing summary. Each file streams through a reader
//! thread, so memory stays flat whatever its size.

use std::{
    fs::File,
    io::{BufRead, BufReader, Read},
};

use flate2::bufread::MultiGzDecoder;

use anyhow::{bail, Context, Result};
use trail_server::work::import::{self, Converted, Format};

use crate::{accounts::cli_state, config::Config, store::open_store};

/// A file as it streams, decompressed when it is gzip (by its first bytes). A gzip
/// file is first expanded once without keeping anything, to refuse one that expands
/// past `max_expanded` (naming it and the limit) before any of it is stored.
fn open(file: &str, max_expanded: u64) -> Result<Box<dyn BufRead + Send>> {
    let open = || -> Result<BufReader<File>> {
        Ok(BufReader::with_capacity(1 << 16, File::open(file).with_context(|| format!("cannot read {file}"))?))
    };
    let mut f = open()?;
    if !f.fill_buf().with_context(|| format!("cannot read {file}"))?.starts_with(&[0x1f, 0x8b]) {
        return Ok(Box::new(f));
    }
    let expanded =
        std::io::copy(&mut MultiGzDecoder::new(f).take(max_expanded.saturating_add(1)), &mut std::io::sink())
            .with_context(|| format!("{file}: not gzip"))?;
    if expanded > max_expanded {
        bail!("{file}: expands to more than {} MiB; split it, or raise --max-expanded-mib", max_expanded >> 20);
    }
    Ok(Box::new(BufReader::with_capacity(1 << 16, MultiGzDecoder::new(open()?))))
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
            // The file is read on its own thread, a thousand events at a time, while
            // the last thousand are stored: memory stays flat whatever the file's size.
            let input = open(file, max_expanded)?;
            let (parts, mut received) = tokio::sync::mpsc::channel::<Converted>(2);
            let reader = std::thread::spawn(move || {
                import::read(format, input, 1000, &mut |part| parts.blocking_send(part).is_ok())
            });
            let mut stored = Ok(());
            while let Some(part) = received.recv().await {
                for s in &part.skipped {
                    eprintln!("{file}:{}: skipped: {}", s.line, s.reason);
                }
                skipped += part.skipped.len();
                match import::store(&st, org, part.events).await {
                    Ok(s) => {
                        duplicates += s.duplicates;
                        imported += s.acks.len() - s.duplicates;
                    }
                    Err(e) => {
                        stored = Err(anyhow::anyhow!("{file}: {e}"));
                        break;
                    }
                }
                if let Some(b) = &bar {
                    b.set_message(format!("{imported} imported"));
                }
            }
            drop(received);
            let read = reader.join().map_err(|_| anyhow::anyhow!("{file}: the reader failed"))?;
            stored?;
            read.with_context(|| format!("cannot read {file}"))?;
            if let Some(b) = &bar {
                b.inc(1);
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
