//! Facets and timelines per period preset over HTTP (issue 20: ≤ 100 ms p99 at 1M
//! events), beside the reference measured in the same run: the counts as they were
//! made before the per-day rollups, the same `GROUP BY`s over the period's events,
//! sent straight to the database.

use std::time::{Duration, Instant};

use anyhow::Result;
use trail_core::{filter::Period, Timestamp};

use crate::{now, percentile};

/// How the reference reaches the database.
pub(crate) enum Reference<'a> {
    Sqlite(&'a std::path::Path),
    Postgres(&'a str),
}

const RUNS: usize = 60;
const WARM: usize = 5;

async fn http_times(client: &reqwest::Client, url: &str, key: &str) -> Result<(Vec<Duration>, u64)> {
    let mut times = Vec::with_capacity(RUNS);
    let mut total = 0;
    for i in 0..RUNS + WARM {
        let t = Instant::now();
        let r = client.get(url).bearer_auth(key).send().await?;
        anyhow::ensure!(r.status().is_success(), "{url}: {}", r.status());
        let v: serde_json::Value = r.json().await?;
        if i >= WARM {
            times.push(t.elapsed());
            total = v["total"].as_u64().unwrap_or(0);
        }
    }
    times.sort();
    Ok((times, total))
}

/// The pre-rollup facets of organization `acme` from `from`: four `GROUP BY`s over
/// the events, as the store ran them before issue 20.
async fn reference_ms(r: &Reference<'_>, from: Timestamp) -> Result<f64> {
    let mut times = Vec::new();
    match r {
        Reference::Sqlite(db) => {
            let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
            let org: i64 = c.query_row("SELECT id FROM orgs WHERE slug = 'acme'", [], |r| r.get(0))?;
            let lo = from.0 * trail_store::sqlite::SLOTS;
            // `+`: the period's positions drive the scan (its best plan), not an index
            // led by the organization.
            let w = "+e.org_id = ?1 AND ts >= ?2 AND pos >= ?3";
            let texts = [
                format!("SELECT category, COUNT(*) AS n FROM events e WHERE {w} GROUP BY category ORDER BY n DESC LIMIT 200"),
                format!("SELECT result, COUNT(*) AS n FROM events e WHERE {w} GROUP BY result ORDER BY n DESC LIMIT 4"),
                format!("SELECT actor_email, MAX(actor_name), COUNT(*) AS n FROM events e WHERE {w} GROUP BY actor_email ORDER BY n DESC LIMIT 200"),
                format!("SELECT org_id, COUNT(*) AS n FROM events e WHERE {w} GROUP BY org_id ORDER BY n DESC LIMIT 1000"),
            ];
            for i in 0..8 {
                let t = Instant::now();
                for text in &texts {
                    let mut s = c.prepare_cached(text)?;
                    let mut rows = s.query(rusqlite::params![org, from.0, lo])?;
                    while rows.next()?.is_some() {}
                }
                if i >= 2 {
                    times.push(t.elapsed());
                }
            }
        }
        Reference::Postgres(url) => {
            let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            let org: i64 = c.query_one("SELECT id FROM orgs WHERE slug = 'acme'", &[]).await?.get(0);
            let w = "e.org_id = ANY($1) AND e.ts >= $2";
            let texts = [
                format!("SELECT e.category, COUNT(*) AS n FROM events e WHERE {w} GROUP BY e.category ORDER BY n DESC LIMIT 200"),
                format!("SELECT e.result, COUNT(*) AS n FROM events e WHERE {w} GROUP BY e.result ORDER BY n DESC LIMIT 4"),
                format!("SELECT e.actor_email, MAX(e.actor_name), COUNT(*) AS n FROM events e WHERE {w} GROUP BY e.actor_email ORDER BY n DESC LIMIT 200"),
                format!("SELECT e.org_id, COUNT(*) AS n FROM events e WHERE {w} GROUP BY e.org_id ORDER BY n DESC LIMIT 1000"),
            ];
            for i in 0..8 {
                let t = Instant::now();
                for text in &texts {
                    c.query(text.as_str(), &[&vec![org], &from.0]).await?;
                }
                if i >= 2 {
                    times.push(t.elapsed());
                }
            }
        }
    }
    times.sort();
    Ok(percentile(&times, 0.5))
}

/// Prints the table: per preset, facets and timeline p50/p99 over HTTP, and the
/// reference's p50.
pub(crate) async fn facets_table(base: &str, key: &str, reference: Reference<'_>) -> Result<()> {
    println!("Facets and timeline per period (organization of 90% of the events, {RUNS} runs after {WARM} warm-up; reference: the pre-rollup `GROUP BY`s over the period's events, 6 runs):\n");
    println!(
        "| period | events | facets p50 / p99 ms | timeline p50 / p99 ms | reference p50 ms | facets p99 / reference |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let client = reqwest::Client::new();
    for p in Period::ALL {
        let (f, total) = http_times(&client, &format!("{base}/api/v1/facets?period={}", p.as_str()), key).await?;
        let (t, _) = http_times(&client, &format!("{base}/api/v1/timeline?period={}", p.as_str()), key).await?;
        let reference = reference_ms(&reference, p.start(now())).await?;
        let f99 = percentile(&f, 0.99);
        println!(
            "| {} | {total} | {:.1} / {f99:.1} | {:.1} / {:.1} | {reference:.0} | {:.3} |",
            p.as_str(),
            percentile(&f, 0.5),
            percentile(&t, 0.5),
            percentile(&t, 0.99),
            f99 / reference
        );
    }
    println!();
    Ok(())
}
