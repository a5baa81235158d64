//! Alerts (issue 21): ingest with every built-in rule and 20 custom rules on, against
//! ingest with alerts off (same events, alternating runs), and commit-to-webhook
//! latency while the server ingests at full speed.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Result;
use axum::{body::Bytes, extract::State, routing::post, Router};
use serde_json::{json, Value};
use trail_server::{AlertConfig, AppState, ServerConfig};
use trail_store::{alerts::AlertRule, prelude::*, sqlite::SqliteStore, KeyScope, Org};

use crate::{events, percentile, post_all, signed};

/// Arrival times of webhook messages, by the id of their last event.
type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

async fn receiver() -> Result<(String, Arrivals)> {
    async fn hook(State(seen): State<Arrivals>, body: Bytes) -> &'static str {
        if let Ok(v) = serde_json::from_slice::<Value>(&body) {
            if let Some(id) = v["last_event"]["id"].as_str() {
                seen.lock().unwrap().insert(id.to_string(), Instant::now());
            }
        }
        ""
    }
    let seen: Arrivals = Arc::default();
    let app = Router::new().route("/hook", post(hook)).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, seen))
}

/// Twenty custom rules of the kinds people write: a query, a threshold within a
/// window, grouped by actor, address or resource.
fn custom_rules() -> Vec<AlertRule> {
    let queries = [
        "category:auth result:FAILED",
        "action:service:deploy result:FAILED",
        "category:secret",
        "operation:delete",
        "resource_type:secret",
        "namespace:payments",
        "cluster:prod-1",
        "status:failure",
        "result:PENDING",
        "action:user:role_change",
        "category:db_backup result:FAILED",
        "workspace:ws-prod operation:update",
        "ip:10.0.0.0/8 result:FAILED",
        "category:vpn",
        "operation:rollback",
        "resource:checkout-api",
        "project:billing",
        "action:audit:export",
        "category:auth operation:logout",
        "category:service",
    ];
    let groups = ["actor", "ip", "resource"];
    queries
        .iter()
        .enumerate()
        .map(|(i, q)| AlertRule {
            org: "acme".into(),
            name: format!("custom-{i:02}"),
            enabled: true,
            query: Some((*q).into()),
            threshold: 1000,
            window_secs: 60,
            group_by: Some(groups[i % 3].into()),
            quiet_secs: 900,
            destinations: vec![],
        })
        .collect()
}

struct Running {
    base: String,
    key: String,
    store: Arc<SqliteStore>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(dir: &std::path::Path, alerts: bool, hook: &str) -> Result<Running> {
    let store = Arc::new(SqliteStore::open(&dir.join("trail.db"), signed())?);
    store.ensure_org(Org { slug: "acme".into(), name: "Acme".into() }).await?;
    let key = trail_server::create_api_key(&*store, "acme", KeyScope::Admin, "bench").await?.0;
    if alerts {
        for r in custom_rules() {
            store.put_alert_rule(r).await?;
        }
        // Every token created is sent at once (no quiet period), for the latency probe.
        let mut tokens =
            trail_server::work::alerts::rules::defaults("api_token_created").unwrap_or_else(|| unreachable!());
        tokens.org = "acme".into();
        tokens.quiet_secs = 0;
        store.put_alert_rule(tokens).await?;
        let d = trail_store::alerts::Destination {
            id: 0,
            org: "acme".into(),
            name: "bench".into(),
            kind: trail_store::alerts::DestinationKind::Webhook,
            url: Some(hook.into()),
            recipients: vec![],
            secrets: vec![trail_server::work::alerts::send::new_secret()],
            enabled: true,
            created_at: 0,
        };
        store.create_destination(d).await?;
    }
    let config = ServerConfig {
        alerts: AlertConfig { enabled: alerts, allow_private_destinations: true, ..AlertConfig::default() },
        ..ServerConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let state = AppState::new(store.clone(), config, trail_server::system_clock());
    tokio::spawn(trail_server::serve(listener, state, async move {
        let _ = rx.await;
    }));
    if alerts {
        // The evaluator starts at the end of the log before the run begins.
        let deadline = Instant::now() + Duration::from_secs(30);
        while store.evaluation("acme").await?.is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    Ok(Running { base, key, store, _stop: tx })
}

pub(crate) async fn bench_alerts(n: usize, runs: usize) -> Result<()> {
    println!("## Alerts: ingest with rules on, and commit-to-webhook latency\n");
    let (hook, seen) = receiver().await?;
    let evs = events(n, 3);
    let bodies: Vec<String> = evs.chunks(1000).map(|c| Value::Array(c.to_vec()).to_string()).collect();
    println!("{n} events in batches of 1,000 from 8 clients, alternating: alerts off, then on (6 built-in and 20 custom rules, one webhook).\n");
    println!("| run | alerts off events/s | alerts on events/s | on / off | evaluator caught up after (s) |");
    println!("|---:|---:|---:|---:|---:|");
    let mut ratios = Vec::new();
    for run in 1..=runs {
        let mut rates = [0.0; 2];
        let mut lag = 0.0;
        for (i, on) in [false, true].into_iter().enumerate() {
            let dir = tempfile::tempdir_in(".")?;
            let s = start(dir.path(), on, &hook).await?;
            rates[i] = post_all(&s.base, &s.key, bodies.clone(), 1000, 8).await?;
            if on {
                let t = Instant::now();
                let end = s.store.log_end("acme").await?;
                while s.store.evaluation("acme").await?.is_none_or(|e| e.cursor < end) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                lag = t.elapsed().as_secs_f64();
            }
            s.store.close();
        }
        ratios.push(rates[1] / rates[0]);
        println!("| {run} | {:.0} | {:.0} | {:.2} | {lag:.2} |", rates[0], rates[1], rates[1] / rates[0]);
    }
    ratios.sort_by(f64::total_cmp);
    println!("\nMedian on / off: {:.2}\n", ratios[ratios.len() / 2]);
    // Latency: tokens created while the server ingests, at a steady 10,000 events/s
    // (about 40% of what it takes here) and at full speed (8 clients, no pause).
    for paced in [true, false] {
        let dir = tempfile::tempdir_in(".")?;
        let s = start(dir.path(), true, &hook).await?;
        let load = {
            let (base, key, bodies) = (s.base.clone(), s.key.clone(), bodies.clone());
            tokio::spawn(async move {
                if !paced {
                    return post_all(&base, &key, bodies, 1000, 8).await;
                }
                let client = reqwest::Client::new();
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                for b in bodies {
                    tick.tick().await;
                    client
                        .post(format!("{base}/api/v1/events"))
                        .bearer_auth(&key)
                        .body(b)
                        .send()
                        .await?
                        .bytes()
                        .await?;
                }
                Ok(0.0)
            })
        };
        let client = reqwest::Client::new();
        let mut sent = Vec::new();
        for i in 0..100 {
            let body = json!({"action": "api_key:create", "request_id": format!("probe-{i}")});
            let r = client.post(format!("{}/api/v1/events", s.base)).bearer_auth(&s.key).json(&body).send().await?;
            let acked = Instant::now();
            let v: Value = r.json().await?;
            let id = v["events"][0]["id"].as_str().unwrap_or_default().to_string();
            sent.push((id, acked));
            tokio::time::sleep(Duration::from_millis(if paced { 50 } else { 30 })).await;
        }
        let under_load = !load.is_finished();
        let deadline = Instant::now() + Duration::from_secs(120);
        while sent.iter().any(|(id, _)| !seen.lock().unwrap().contains_key(id)) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut lat: Vec<Duration> = sent
            .iter()
            .filter_map(|(id, acked)| seen.lock().unwrap().get(id).map(|t| t.saturating_duration_since(*acked)))
            .collect();
        lat.sort();
        load.abort();
        println!(
            "Commit-to-webhook latency of 100 `api_key:create` events (from the ingest answer to the receiver), {}{}: {} of 100 arrived; p50 {:.0} ms, p99 {:.0} ms.\n",
            if paced { "batches of 1,000 arriving at 10,000 events/s meanwhile" } else { "8 clients ingesting batches as fast as they can meanwhile" },
            if under_load { "" } else { " (the load ended before the last probe)" },
            lat.len(),
            percentile(&lat, 0.5),
            percentile(&lat, 0.99)
        );
        s.store.close();
    }
    Ok(())
}
