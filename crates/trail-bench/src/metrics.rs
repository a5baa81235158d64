//! What metrics cost ingest: the same events over HTTP into a server that counts them
//! (`[metrics]` configured: every request timed, every event counted) and into one
//! that does not, alternating (the target: ≥ 0.97).

use anyhow::Result;
use serde_json::Value;
use trail_server::{MetricsConfig, ServerConfig};

use crate::{events, ingest_http_with, median};

pub(crate) async fn bench_metrics(n: usize, runs: usize) -> Result<()> {
    println!("## Ingest with metrics, against without\n");
    let evs = events(n, 13);
    let bodies: Vec<String> = evs.chunks(1000).map(|c| Value::Array(c.to_vec()).to_string()).collect();
    println!("{n} events in batches of 1,000 from 8 clients over HTTP; median of {runs} runs, alternating.\n");
    println!("| metrics | events/s | runs |");
    println!("|---|---:|---|");
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let with = ServerConfig {
            metrics: MetricsConfig { listen: None, token: Some("bench-metrics-token".into()) },
            ..ServerConfig::default()
        };
        on.push(ingest_http_with(bodies.clone(), 1000, 8, with).await?);
        off.push(ingest_http_with(bodies.clone(), 1000, 8, ServerConfig::default()).await?);
    }
    let show = |v: &[f64]| v.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", ");
    let (son, soff) = (show(&on), show(&off));
    let (m_on, m_off) = (median(&mut on), median(&mut off));
    println!("| counted | {m_on:.0} | {son} |");
    println!("| off (reference) | {m_off:.0} | {soff} |");
    println!("\nWith / without: **{:.2}** (target ≥ 0.97).\n", m_on / m_off);
    Ok(())
}
