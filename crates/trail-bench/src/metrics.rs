//! What metrics cost ingest: the same events over HTTP into a server that counts them
//! (`[metrics]` configured: every request timed, every event counted) and into one
//! that does not, alternating (the target: ≥ 0.97), as `installation.rs` compares.

use anyhow::Result;
use trail_server::{MetricsConfig, ServerConfig};

pub(crate) async fn bench_metrics(n: usize, runs: usize) -> Result<()> {
    println!("## Ingest with metrics, against without\n");
    let with = ServerConfig {
        metrics: MetricsConfig { listen: None, token: Some("bench-metrics-token".into()) },
        ..ServerConfig::default()
    };
    crate::installation::on_against_off("metrics", (n, 13, runs), with, ServerConfig::default(), 0.97).await
}
