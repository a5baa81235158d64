//! Streams (issue 22): ingest with three streams on (JSON Lines, OCSF and Splunk HEC to
//! an HTTP receiver here) against ingest with none (same events, alternating runs),
//! and how far the streams lag behind while batches of 1,000 arrive, at full speed and
//! at a steady rate.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::Result;
use axum::{body::Bytes, extract::State, routing::post, Router};
use serde_json::{json, Value};
use trail_server::{AppState, ServerConfig, StreamConfig};
use trail_store::{prelude::*, sqlite::SqliteStore, KeyScope, Org};

use crate::{events, post_all, signed};

/// Lines received, all streams together. The receiver stands for a SIEM on another
/// machine: it runs on a runtime of its own whose one thread is at nice +10, so that
/// its work does not take the CPU from the Trail being measured.
async fn receiver() -> Result<(String, Arc<AtomicU64>)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .on_thread_start(|| {
            let tid = Some(rustix::thread::gettid());
            let _ = rustix::process::setpriority_process(tid, 10);
        })
        .enable_all()
        .build()?;
    let (url, n) = rt.spawn(serve_receiver()).await??;
    // The receiver lives as long as the benchmark.
    std::mem::forget(rt);
    Ok((url, n))
}

async fn serve_receiver() -> Result<(String, Arc<AtomicU64>)> {
    async fn take(State(n): State<Arc<AtomicU64>>, body: Bytes) -> &'static str {
        n.fetch_add(body.iter().filter(|b| **b == b'\n').count() as u64, Ordering::Relaxed);
        ""
    }
    let n = Arc::new(AtomicU64::new(0));
    let app = Router::new().route("/{*path}", post(take)).with_state(n.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, n))
}

struct Running {
    base: String,
    key: String,
    store: Arc<SqliteStore>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(dir: &std::path::Path, streams: bool, url: &str) -> Result<Running> {
    let store = Arc::new(SqliteStore::open(&dir.join("trail.db"), signed())?);
    store.ensure_org(Org { slug: "acme".into(), name: "Acme".into() }).await?;
    let key = trail_server::create_api_key(&*store, "acme", KeyScope::Admin, "bench").await?.0;
    let config = ServerConfig {
        streams: StreamConfig { enabled: streams, allow_private_destinations: true, ..StreamConfig::default() },
        ..ServerConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let state = AppState::new(store.clone(), config, trail_server::system_clock());
    tokio::spawn(trail_server::serve(listener, state, async move {
        let _ = rx.await;
    }));
    if streams {
        let client = reqwest::Client::new();
        for format in ["jsonl", "ocsf", "splunk_hec"] {
            let body = json!({"name": format, "kind": "http", "url": format!("{url}/{format}"), "format": format});
            let r = client.post(format!("{base}/api/v1/streams")).bearer_auth(&key).json(&body).send().await?;
            anyhow::ensure!(r.status().is_success(), "cannot make a stream: {}", r.text().await?);
        }
    }
    Ok(Running { base, key, store, _stop: tx })
}

/// The streams' furthest lag behind the log: events not yet looked at, and how long
/// the oldest of them has waited.
async fn lag(store: &SqliteStore) -> Result<(u64, f64)> {
    let end = store.log_end("acme").await?;
    let Some(cursor) = store.streams(Some("acme")).await?.iter().map(|s| s.cursor).min() else { return Ok((0, 0.0)) };
    let secs = match store.scan("acme", cursor, 1).await?.first() {
        Some((_, leaf)) if cursor < end => {
            let e = trail_core::Event::from_leaf(leaf)?;
            (crate::now().0 - e.received_at.0) as f64 / 1e6
        }
        _ => 0.0,
    };
    Ok((end - cursor.min(end), secs))
}

pub(crate) async fn bench_streams(n: usize, runs: usize) -> Result<()> {
    println!("## Streams: ingest with three streams on, and how far they lag\n");
    let (url, received) = receiver().await?;
    let evs = events(n, 5);
    let bodies: Vec<String> = evs.chunks(1000).map(|c| Value::Array(c.to_vec()).to_string()).collect();
    println!("{n} events in batches of 1,000 from 8 clients, alternating: no stream, then three (jsonl, ocsf, splunk_hec over HTTP, batches of up to 1,000).\n");
    println!("| run | no stream events/s | 3 streams events/s | 3 / none | max lag during ingest (events, s) | all delivered after the last ack (s) |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let mut ratios = Vec::new();
    for run in 1..=runs {
        let mut rates = [0.0; 2];
        let (mut worst, mut worst_s, mut drain) = (0u64, 0.0f64, 0.0);
        for (i, on) in [false, true].into_iter().enumerate() {
            let dir = tempfile::tempdir_in(".")?;
            let s = start(dir.path(), on, &url).await?;
            // The worst lag seen, sampled every 100 ms while the run lasts.
            let worst_seen = Arc::new(std::sync::Mutex::new((0u64, 0.0f64)));
            let probe = on.then(|| {
                let (store, w) = (s.store.clone(), worst_seen.clone());
                tokio::spawn(async move {
                    loop {
                        if let Ok((e, secs)) = lag(&store).await {
                            let mut w = w.lock().unwrap_or_else(|p| p.into_inner());
                            *w = (w.0.max(e), w.1.max(secs));
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                })
            });
            rates[i] = post_all(&s.base, &s.key, bodies.clone(), 1000, 8).await?;
            if on {
                let t = Instant::now();
                while lag(&s.store).await?.0 > 0 && t.elapsed() < Duration::from_secs(300) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                drain = t.elapsed().as_secs_f64();
            }
            if let Some(p) = probe {
                p.abort();
                (worst, worst_s) = *worst_seen.lock().unwrap_or_else(|p| p.into_inner());
            }
            s.store.close();
        }
        ratios.push(rates[1] / rates[0]);
        println!(
            "| {run} | {:.0} | {:.0} | {:.2} | {worst}, {worst_s:.1} | {drain:.2} |",
            rates[0],
            rates[1],
            rates[1] / rates[0]
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!("\nMedian 3 streams / none: {:.2}\n", ratios[ratios.len() / 2]);
    // Lag at steady rates in batches of 1,000, sampled every 100 ms.
    for per_second in [10_000u64, 20_000] {
        steady(&url, &received, &bodies, n, per_second).await?;
    }
    Ok(())
}

async fn steady(url: &str, received: &AtomicU64, bodies: &[String], n: usize, per_second: u64) -> Result<()> {
    let dir = tempfile::tempdir_in(".")?;
    let s = start(dir.path(), true, url).await?;
    let before = received.load(Ordering::Relaxed);
    let client = reqwest::Client::new();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000_000 / per_second));
    let mut samples = Vec::new();
    let t = Instant::now();
    for b in bodies {
        tick.tick().await;
        let (base, key, b, client) = (s.base.clone(), s.key.clone(), b.clone(), client.clone());
        tokio::spawn(
            async move { client.post(format!("{base}/api/v1/events")).bearer_auth(&key).body(b).send().await },
        );
        samples.push(lag(&s.store).await?);
    }
    let paced = t.elapsed().as_secs_f64();
    let end = Instant::now();
    while (lag(&s.store).await?.0 > 0 || s.store.log_end("acme").await? < n as u64)
        && end.elapsed() < Duration::from_secs(300)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut events: Vec<u64> = samples.iter().map(|x| x.0).collect();
    let mut secs: Vec<f64> = samples.iter().map(|x| x.1).collect();
    events.sort();
    secs.sort_by(f64::total_cmp);
    let q = |v: usize, p: f64| ((v as f64 - 1.0) * p).round() as usize;
    println!(
        "At a steady {:.0} events/s for {paced:.0} s: lag p50 {} events / {:.2} s, p99 {} events / {:.2} s, max {} events / {:.2} s; the streams delivered all {} lines {:.2} s after the last batch was sent.\n",
        n as f64 / paced,
        events[q(events.len(), 0.5)],
        secs[q(secs.len(), 0.5)],
        events[q(events.len(), 0.99)],
        secs[q(secs.len(), 0.99)],
        events[events.len() - 1],
        secs[secs.len() - 1],
        received.load(Ordering::Relaxed) - before,
        end.elapsed().as_secs_f64()
    );
    s.store.close();
    Ok(())
}
