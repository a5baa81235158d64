//! The search memory benchmark (issue 31): a `trail serve` process on a kept store sent
//! 100 searches of 2,000 words (refused), 100 of 16 one-letter words and 100 of the
//! most a search may hold (16 two-letter prefixes, each standing for many words), over lists, timelines,
//! exports and downloads, 4 at a time; its RSS against its idle baseline, and each
//! request's time.

use std::time::Instant;

use anyhow::Result;
use trail_store::{sqlite::SqliteStore, KeyScope};

use crate::{
    exports::{proc_status_mb, serve_store},
    signed,
};

pub(crate) async fn bench_search_memory(dir: &std::path::Path) -> Result<()> {
    let db = dir.join("trail.db");
    anyhow::ensure!(db.exists(), "{} holds no store: run with --keep {} first", dir.display(), dir.display());
    let store = SqliteStore::open(&db, signed())?;
    let key = trail_server::create_api_key(&store, "acme", KeyScope::Read, "bench").await?.0;
    store.close();
    drop(store);
    let (mut child, base) = serve_store(dir, &[])?;
    let pid = child.id();
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(120)).build()?;
    // Warm: one ordinary search on each operation, then the idle baseline.
    let ops = [
        "/api/v1/events?limit=50&",
        "/api/v1/timeline?",
        "/api/v1/export?format=csv&period=24h&",
        "/api/v1/download?format=csv&from=2026-01-01&to=2026-01-02&",
    ];
    for op in ops {
        client.get(format!("{base}{op}q=deploy")).bearer_auth(&key).send().await?.bytes().await?;
    }
    let idle = proc_status_mb(pid, "VmRSS:");
    println!("## Searches that would exhaust memory (issue 31)\n");
    println!(
        "A `trail serve` process on the kept store; idle RSS after one ordinary search per operation: {idle:.0} MB."
    );
    println!("100 requests of each kind over the four operations, 4 at a time.\n");
    println!("| Requests | Answers | Slowest (s) | RSS after (MB) | Over idle (MB) | Target |");
    println!("|---|---|---:|---:|---:|---|");
    let kinds = [
        ("2,000 words `a a a …` (4 KB)", vec!["a"; 2000].join("+")),
        ("16 one-letter words `a b c …`", ('a'..='p').map(String::from).collect::<Vec<_>>().join("+")),
        (
            "16 two-letter prefixes `de re co …` (refused past two that begin many words)",
            "de+re+co+pr+st+in+se+ac+us+up+ch+lo+ad+ap+ex+pa".to_string(),
        ),
        (
            "2 two-letter prefixes and 14 words (the most a search may hold)",
            "de+re+checkout+billing+login+session+notifier+staging+prod+default+kube+system+pod+delete+api+post"
                .to_string(),
        ),
    ];
    for (name, q) in kinds {
        let mut answers = std::collections::BTreeMap::<u16, usize>::new();
        let mut slowest = 0f64;
        for _ in 0..25 {
            let calls = ops.iter().map(|op| {
                let url = format!("{base}{op}q={q}");
                let (client, key) = (client.clone(), key.clone());
                async move {
                    let started = Instant::now();
                    let r = client.get(url).bearer_auth(key).send().await?;
                    let code = r.status().as_u16();
                    r.bytes().await?;
                    Ok::<_, anyhow::Error>((code, started.elapsed().as_secs_f64()))
                }
            });
            for r in futures::future::join_all(calls).await {
                let (code, secs) = r?;
                *answers.entry(code).or_default() += 1;
                slowest = slowest.max(secs);
            }
        }
        let rss = proc_status_mb(pid, "VmRSS:");
        let answers: Vec<String> = answers.iter().map(|(c, n)| format!("{n} × {c}")).collect();
        println!(
            "| {name} | {} | {slowest:.2} | {rss:.0} | {:.0} | ≤ 100 MB over idle, each ≤ 1 s |",
            answers.join(", "),
            rss - idle
        );
    }
    println!();
    let _ = child.kill();
    let _ = child.wait();
    Ok(())
}
