//! What a feature costs ingest, measured the same way for each: the same events over
//! HTTP into a server with the feature and into one without, alternating. Here the
//! installation log (extended every second, as every real server does; the target:
//! ≥ 0.95); `metrics.rs` uses the same comparison.

use anyhow::Result;
use serde_json::Value;
use trail_server::ServerConfig;

use crate::{events, ingest_http_with, median};

/// A feature on (`with`) against off (`reference`): `n` events in batches of 1,000
/// from 8 clients, `runs` alternating runs, the medians and their ratio as a table.
pub(crate) async fn on_against_off(
    what: &str,
    (n, seed, runs): (usize, u64, usize),
    with: ServerConfig,
    reference: ServerConfig,
    target: f64,
) -> Result<()> {
    let evs = events(n, seed);
    let bodies: Vec<String> = evs.chunks(1000).map(|c| Value::Array(c.to_vec()).to_string()).collect();
    println!("{n} events in batches of 1,000 from 8 clients over HTTP; median of {runs} runs, alternating.\n");
    println!("| {what} | events/s | runs |");
    println!("|---|---:|---|");
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        on.push(ingest_http_with(bodies.clone(), 1000, 8, with.clone()).await?);
        off.push(ingest_http_with(bodies.clone(), 1000, 8, reference.clone()).await?);
    }
    let show = |v: &[f64]| v.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", ");
    let (son, soff) = (show(&on), show(&off));
    let (m_on, m_off) = (median(&mut on), median(&mut off));
    println!("| on | {m_on:.0} | {son} |");
    println!("| off (reference) | {m_off:.0} | {soff} |");
    println!("\nWith / without: **{:.2}** (target ≥ {target}).\n", m_on / m_off);
    Ok(())
}

pub(crate) async fn bench_installation(n: usize, runs: usize) -> Result<()> {
    println!("## Ingest with the installation log, against without\n");
    let without = ServerConfig { without_installation_log: true, ..ServerConfig::default() };
    on_against_off("installation log", (n, 7, runs), ServerConfig::default(), without, 0.95).await
}
