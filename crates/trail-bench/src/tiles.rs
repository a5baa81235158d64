//! C2SP tiles over HTTP on the query store: p50/p99 of the checkpoint, random full
//! hash tiles of levels 0 and 1, and random full entry bundles of the 900k-entry log
//! (the target: p99 ≤ 5 ms at 1M entries).

use std::time::Instant;

use anyhow::{ensure, Result};
use rand::{rngs::StdRng, Rng, SeedableRng};
use trail_core::tiles::{index_path, TILE_WIDTH};

use crate::percentile;

pub(crate) async fn tiles_table(base: &str, key: &str) -> Result<()> {
    let client = reqwest::Client::new();
    let get = async |path: String| -> Result<usize> {
        let r = client.get(format!("{base}{path}")).bearer_auth(key).send().await?;
        ensure!(r.status().is_success(), "{path}: {}", r.status());
        Ok(r.bytes().await?.len())
    };
    let cp = client.get(format!("{base}/log/acme/checkpoint")).bearer_auth(key).send().await?.text().await?;
    let size: u64 = cp.lines().nth(1).and_then(|l| l.parse().ok()).unwrap_or(0);
    ensure!(size >= TILE_WIDTH * TILE_WIDTH, "the log is too small for a level-1 tile");
    println!("C2SP tiles over HTTP with a read key, {size}-entry log, 500 requests each after 20 warm-up requests.\n");
    println!("| resource | p50 ms | p99 ms | bytes |");
    println!("|---|---:|---:|---:|");
    let mut rng = StdRng::seed_from_u64(34);
    let kinds: [(&str, u64); 4] = [
        ("checkpoint", 0),
        ("hash tile, level 0", size / TILE_WIDTH),
        ("hash tile, level 1", size / (TILE_WIDTH * TILE_WIDTH)),
        ("entry bundle (256 events)", size / TILE_WIDTH),
    ];
    for (name, full) in kinds {
        let path = |r: &mut StdRng| match name {
            "checkpoint" => "/log/acme/checkpoint".to_string(),
            n if n.starts_with("hash tile, level 0") => {
                format!("/log/acme/tile/0/{}", index_path(r.random_range(0..full)))
            }
            n if n.starts_with("hash tile, level 1") => {
                format!("/log/acme/tile/1/{}", index_path(r.random_range(0..full)))
            }
            _ => format!("/log/acme/tile/entries/{}", index_path(r.random_range(0..full))),
        };
        for _ in 0..20 {
            get(path(&mut rng)).await?;
        }
        let (mut times, mut bytes) = (Vec::new(), 0);
        for _ in 0..500 {
            let p = path(&mut rng);
            let t = Instant::now();
            bytes = get(p).await?;
            times.push(t.elapsed());
        }
        times.sort();
        println!("| {name} | {:.2} | {:.2} | {bytes} |", percentile(&times, 0.5), percentile(&times, 0.99));
    }
    println!();
    Ok(())
}

/// `trail mirror` of the 900k-entry log over HTTP (every tile and bundle fetched and
/// checked, then written) against reading the same stored bytes from the store in the
/// same run (`Store::scan` in seq order), alternating, two runs each.
pub(crate) async fn mirror_table(base: &str, key: &str, db: &std::path::Path) -> Result<()> {
    use trail_store::{prelude::*, sqlite::SqliteStore};
    let vkey = trail_core::checkpoint::verifier_key("trail.bench/acme", &crate::signer().key.verifying_key());
    let store = SqliteStore::open(db, crate::signed())?;
    println!(
        "`trail mirror` over HTTP (read key) against reading the same stored bytes with `Store::scan`, alternating.\n"
    );
    println!("| run | reference: scan entries/s | mirror entries/s (tiles and bundles checked and written) | mirror / reference |");
    println!("|---:|---:|---:|---:|");
    for run in 1..=2 {
        let t = Instant::now();
        let (mut from, mut bytes) = (0u64, 0usize);
        loop {
            let rows = store.scan("acme", from, 10_000).await?;
            let Some(last) = rows.last() else { break };
            from = last.0 + 1;
            bytes += rows.iter().map(|(_, l)| l.len()).sum::<usize>();
        }
        let reference = from as f64 / t.elapsed().as_secs_f64();
        let dir = tempfile::tempdir_in(".")?;
        let src = trail_server::work::mirror::Source {
            url: base.into(),
            org: "acme".into(),
            key: Some(key.into()),
            bucket: None,
        };
        let t = Instant::now();
        let done =
            trail_server::work::mirror::mirror(&src, &vkey, dir.path()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let mirrored = done.size as f64 / t.elapsed().as_secs_f64();
        ensure!(bytes > 0 && done.size >= from.min(done.size), "nothing read");
        println!("| {run} | {reference:.0} | {mirrored:.0} ({} entries) | {:.2} |", done.size, mirrored / reference);
    }
    println!();
    Ok(())
}
