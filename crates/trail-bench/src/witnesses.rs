//! Witnesses' cost and speed: ingest over HTTP into a server that submits every
//! installation checkpoint to three witnesses (real `trail-witness` servers on loopback,
//! each with its own SQLite file) against one without, alternating (target ≥ 0.95);
//! and at a steady 10,000 events/s, the time from a signed installation checkpoint to
//! a witnessed one covering it (target p99 ≤ 2 s).

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Result;
use serde_json::Value;
use trail_core::{checkpoint, policy::Policy};
use trail_server::{ServerConfig, WitnessConfig};
use trail_store::{Installation, Witnessing};

use crate::{events, ingest_http_with, median, percentile, signer, start_server_with};

/// Three witnesses on loopback following the benchmark's installation log, and the
/// policy (2 of 3) naming them.
async fn witnesses(dir: &std::path::Path) -> Result<Policy> {
    let ikey = checkpoint::verifier_key("trail.bench/checkpoints", &signer().key.verifying_key());
    let follow = Policy::parse(&format!("log {ikey}\nquorum none\n")).map_err(anyhow::Error::msg)?;
    let mut policy = format!("log {ikey}\n");
    for i in 1..=3 {
        let wdir = dir.join(format!("w{i}"));
        trail_witness::keys::load_or_create(&wdir, Some(&format!("w{i}.bench")))?;
        let w = Arc::new(trail_witness::open(&wdir, &follow)?);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        policy.push_str(&format!("witness w{i} {} http://{addr}\n", w.verifier_key()));
        tokio::spawn(trail_witness::serve(listener, w, std::future::pending()));
    }
    policy.push_str("group g 2 w1 w2 w3\nquorum g\n");
    Policy::parse(&policy).map_err(anyhow::Error::msg)
}

fn with(policy: &Policy) -> ServerConfig {
    ServerConfig { witness: Some(WitnessConfig::new(policy.clone())), ..ServerConfig::default() }
}

pub(crate) async fn bench_witnesses(n: usize, runs: usize) -> Result<()> {
    println!("## Witnesses: ingest with three against none, and the time to a quorum\n");
    let evs = events(n, 11);
    let bodies: Vec<String> = evs.chunks(1000).map(|c| Value::Array(c.to_vec()).to_string()).collect();
    println!("{n} events in batches of 1,000 from 8 clients over HTTP; median of {runs} runs, alternating. The witnesses are `trail-witness` servers on loopback (2 of 3).\n");
    println!("| witnesses | events/s | runs |");
    println!("|---|---:|---|");
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let dir = tempfile::tempdir_in(".")?;
        let policy = witnesses(dir.path()).await?;
        on.push(ingest_http_with(bodies.clone(), 1000, 8, with(&policy)).await?);
        off.push(ingest_http_with(bodies.clone(), 1000, 8, ServerConfig::default()).await?);
    }
    let show = |v: &[f64]| v.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", ");
    let (son, soff) = (show(&on), show(&off));
    let (m_on, m_off) = (median(&mut on), median(&mut off));
    println!("| three (2 of 3) | {m_on:.0} | {son} |");
    println!("| none (reference) | {m_off:.0} | {soff} |");
    println!("\nWith / without: **{:.2}** (target ≥ 0.95).\n", m_on / m_off);
    steady(30).await
}

/// At 10,000 events/s for `secs` seconds (batches of 100 every 10 ms), how long each
/// signed installation checkpoint waits for a witnessed one that covers it.
async fn steady(secs: u64) -> Result<()> {
    let dir = tempfile::tempdir_in(".")?;
    let policy = witnesses(dir.path()).await?;
    let (base, key, store, _stop) = start_server_with(dir.path(), with(&policy)).await?;
    let evs = events(100, 12);
    let body = Value::Array(evs).to_string();
    let client = reqwest::Client::new();
    let stop_at = Instant::now() + Duration::from_secs(secs);
    let sender = {
        let (client, base, key, body) = (client.clone(), base.clone(), key.clone(), body.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            // Each batch on a task of its own, so that one slow commit does not hold
            // back the rate.
            let mut batches = Vec::new();
            while Instant::now() < stop_at {
                tick.tick().await;
                let (client, url, key, body) =
                    (client.clone(), format!("{base}/api/v1/events"), key.clone(), body.clone());
                batches.push(tokio::spawn(async move {
                    let r = client.post(url).bearer_auth(&key).body(body).send().await;
                    if r.is_ok_and(|r| r.status().is_success()) {
                        100u64
                    } else {
                        0
                    }
                }));
            }
            let mut sent = 0;
            for b in batches {
                sent += b.await.unwrap_or(0);
            }
            sent
        })
    };
    let (mut signed_at, mut witnessed_upto): (BTreeMap<u64, Instant>, Vec<(u64, Instant)>) = Default::default();
    let grace = stop_at + Duration::from_secs(10);
    while Instant::now() < grace {
        if let Some(cp) = store.installation_checkpoint(None).await? {
            signed_at.entry(cp.size).or_insert_with(Instant::now);
        }
        for (size, names) in store.cosigned_sizes(8).await? {
            if policy.quorum_met(&names.iter().map(String::as_str).collect()) {
                if witnessed_upto.last().is_none_or(|(s, _)| *s < size) {
                    witnessed_upto.push((size, Instant::now()));
                }
                break;
            }
        }
        if Instant::now() > stop_at && witnessed_upto.last().map(|w| w.0) >= signed_at.keys().last().copied() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let sent = sender.await?;
    let mut waits: Vec<Duration> = signed_at
        .iter()
        .filter_map(|(size, t)| {
            let w = witnessed_upto.iter().find(|(s, _)| s >= size)?;
            Some(w.1.saturating_duration_since(*t))
        })
        .collect();
    let unwitnessed = signed_at.len() - waits.len();
    waits.sort();
    println!(
        "Steady load: {sent} events in {secs} s ({:.0} events/s); {} installation checkpoints signed, {unwitnessed} not witnessed at the end.\n",
        sent as f64 / secs as f64,
        signed_at.len()
    );
    println!("| signed → witnessed (quorum 2 of 3) | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|");
    if !waits.is_empty() {
        println!(
            "| each installation checkpoint | {:.0} | {:.0} | {:.0} |",
            percentile(&waits, 0.5),
            percentile(&waits, 0.99),
            waits.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        );
    }
    println!("\n(Target: p99 ≤ 2,000 ms. Measured by polling the store every 10 ms.)\n");
    store.close();
    Ok(())
}
