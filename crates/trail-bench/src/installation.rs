//! What the installation log costs ingest: the same events over HTTP into a server that
//! extends it every second (as every real server does) and into one that does not,
//! alternating (the target: ≥ 0.95).

use anyhow::Result;
use serde_json::Value;
use trail_server::ServerConfig;

use crate::{events, ingest_http_with, median};

pub(crate) async fn bench_installation(n: usize, runs: usize) -> Result<()> {
    println!("## Ingest with the installation log, against without\n");
    let evs = events(n, 7);
    let bodies: Vec<String> = evs.chunks(1000).map(|c| Value::Array(c.to_vec()).to_string()).collect();
    println!("{n} events in batches of 1,000 from 8 clients over HTTP; median of {runs} runs, alternating.\n");
    println!("| installation log | events/s | runs |");
    println!("|---|---:|---|");
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        on.push(ingest_http_with(bodies.clone(), 1000, 8, ServerConfig::default()).await?);
        let without = ServerConfig { without_installation_log: true, ..ServerConfig::default() };
        off.push(ingest_http_with(bodies.clone(), 1000, 8, without).await?);
    }
    let show = |v: &[f64]| v.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", ");
    let (son, soff) = (show(&on), show(&off));
    let (m_on, m_off) = (median(&mut on), median(&mut off));
    println!("| extended every second | {m_on:.0} | {son} |");
    println!("| off (reference) | {m_off:.0} | {soff} |");
    println!("\nWith / without: **{:.2}** (target ≥ 0.95).\n", m_on / m_off);
    Ok(())
}
