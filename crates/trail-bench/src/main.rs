//! Trail's benchmarks, printed as Markdown for BENCHMARKS.md:
//! - durable ingest over real HTTP (batches of 1 with 64 clients, 100, 1,000) against
//!   a bare rusqlite loop inserting the same rows, same schema, same batches;
//! - first-page query latency (p50/p99) per filter and for `q` on a large store;
//! - bytes on disk per event;
//! - with `--exports --keep DIR`, export rates, server CPU and peak RSS per format;
//! - with `--verify --keep DIR`, the full verification against SHA-256 of the same bytes.
//!
//! Usage: `cargo run --release -p trail-bench -- --help` lists every option (clap).
//! Not a test: it measures, it does not assert.
//!
//! `cargo run -p trail-bench -- --screenshots` is not a benchmark: it runs the browser
//! test with its screenshots written to `docs/`, refreshing the README's pictures on
//! purpose (the test suite writes them under `target/screenshots/`).

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};
use trail_store::prelude::*;

mod alerts;
mod archives;
mod exports;
mod facets;
mod import;
mod installation;
mod metrics;
mod postgres;
mod search;
mod streams;
mod tiles;
mod verify;
mod witnesses;

use exports::*;
use postgres::*;

use anyhow::{Context, Result};
use rand::{rngs::StdRng, seq::IndexedRandom, Rng, SeedableRng};
use serde_json::Value;
use trail_core::{event::parse_event, Timestamp};
use trail_server::{work::demo, AppState, ServerConfig};
use trail_store::{
    sqlite::{self, SqliteConfig, SqliteStore},
    AppendBatch, KeyScope, Org, Store,
};
use verify::verify_table;

/// Trail's benchmarks, printed as Markdown for BENCHMARKS.md. Each figure beside a
/// reference measured in the same run.
#[derive(Debug, clap::Parser)]
#[command(name = "trail-bench", version)]
struct Args {
    /// Leaves of the synthetic tree for proof latency (0: skip).
    #[arg(long, default_value_t = 10_000_000)]
    tree_size: u64,
    /// Keep (or reuse) the query benchmark's store in this directory.
    #[arg(long, value_name = "DIR")]
    keep: Option<std::path::PathBuf>,
    /// Events of the query benchmark's store.
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    /// Events per ingest run.
    #[arg(long, default_value_t = 200_000)]
    ingest_events: usize,
    /// Skip the ingest benchmark.
    #[arg(long)]
    skip_ingest: bool,
    /// Skip the query benchmark (and the building of its store).
    #[arg(long)]
    skip_query: bool,
    /// Export rates, CPU and peak RSS per format on the kept store (build `trail` first).
    #[arg(long)]
    exports: bool,
    /// Time `verify` against its reference on the kept store.
    #[arg(long)]
    verify: bool,
    /// PostgreSQL ingest against a bare `COPY`.
    #[arg(long)]
    postgres: bool,
    /// PostgreSQL queries and facets on a store of this many events (0: skip).
    #[arg(long, default_value_t = 0, value_name = "N")]
    postgres_query: usize,
    /// The alerts benchmark, with this many events per ingest run (0: skip).
    #[arg(long, default_value_t = 0, value_name = "N")]
    alerts: usize,
    /// The streams benchmark, with this many events per ingest run (0: skip).
    #[arg(long, default_value_t = 0, value_name = "N")]
    streams: usize,
    /// The import benchmark, with this many CloudTrail records (0: skip).
    #[arg(long, default_value_t = 0, value_name = "N")]
    import: usize,
    /// Ingest with the installation log extended against without, with this many
    /// events per run (0: skip).
    #[arg(long, default_value_t = 0, value_name = "N")]
    installation: usize,
    /// Ingest with three witnesses against none, and the time to a quorum at a steady
    /// 10,000 events/s, with this many events per ingest run (0: skip).
    #[arg(long, default_value_t = 0, value_name = "N")]
    witnesses: usize,
    /// Retention into a locked bucket (SeaweedFS) against the S3 client alone, and a
    /// month downloaded from the bucket against from local files, with this many events
    /// (0: skip).
    #[arg(long, default_value_t = 0, value_name = "N")]
    archive: usize,
    /// Ingest with metrics counted against without, with this many events per run (0:
    /// skip).
    #[arg(long, default_value_t = 0, value_name = "N")]
    metrics: usize,
    /// A server's memory and answer times under searches at and past the bounds.
    #[arg(long)]
    search_memory: bool,
    /// Runs of each ingest configuration (Trail and the bare loop alternate) and of
    /// each export format (the formats alternate); the tables give the medians.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    runs: u64,
    /// Only the ingest configurations with these batch sizes (all when empty).
    #[arg(long, value_delimiter = ',', value_name = "N,N")]
    batches: Vec<usize>,
    /// Not a benchmark: run the browser test with its screenshots going to `docs/`.
    #[arg(long, exclusive = true)]
    screenshots: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Runs the browser test with its screenshots going to the workspace's `docs/`.
fn screenshots() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize()?;
    let status = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&root)
        .args(["test", "-p", "trail", "--test", "it", "e2e::the_audit_page_in_chromium", "--", "--exact"])
        .env("TRAIL_SCREENSHOTS", root.join("docs"))
        .status()?;
    anyhow::ensure!(status.success(), "the browser test failed; docs/ may be partly refreshed");
    println!("docs/*.png refreshed: review them with `git diff --stat docs/`");
    Ok(())
}

/// The benchmark's checkpoint signer: a fixed key, so the tree and checkpoints are on
/// exactly as in `trail serve`.
pub(crate) fn signer() -> Arc<trail_store::LogSigner> {
    Arc::new(trail_store::LogSigner {
        name: "trail.bench".into(),
        key: ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
    })
}

pub(crate) fn signed() -> SqliteConfig {
    SqliteConfig { signer: Some(signer()), ..SqliteConfig::default() }
}

pub(crate) fn now() -> Timestamp {
    Timestamp::from_datetime(chrono::Utc::now())
}

/// `n` realistic events (about 1 KB each) spread over 120 days, in time order.
pub(crate) fn events(n: usize, seed: u64) -> Vec<Value> {
    events_part(n, 0, n, seed)
}

/// Events `first..first + count` of `n` realistic events spread over 120 days in time
/// order, so a large store can be generated and loaded in parts.
pub(crate) fn events_part(n: usize, first: usize, count: usize, seed: u64) -> Vec<Value> {
    let mut rng = StdRng::seed_from_u64(seed);
    let people = demo::people(0, "acme.com");
    let end = now().0;
    let span = 120 * 86_400_000_000i64;
    let step = span / n as i64;
    (first..first + count)
        .map(|i| {
            let t = end - span + (i as i64) * step + rng.random_range(0..step.max(1));
            let p = people.choose(&mut rng).unwrap_or(&people[0]);
            demo::sample_event(&mut rng, p, Timestamp(t))
        })
        .collect()
}

pub(crate) async fn start_server(
    dir: &Path,
) -> Result<(String, String, Arc<SqliteStore>, tokio::sync::oneshot::Sender<()>)> {
    start_server_with(dir, ServerConfig::default()).await
}

/// `start_server` with a configuration of its own.
pub(crate) async fn start_server_with(
    dir: &Path,
    config: ServerConfig,
) -> Result<(String, String, Arc<SqliteStore>, tokio::sync::oneshot::Sender<()>)> {
    let store = Arc::new(SqliteStore::open(&dir.join("trail.db"), signed())?);
    store.ensure_org(Org { slug: "acme".into(), name: "Acme".into() }).await?;
    store.ensure_org(Org { slug: "globex".into(), name: "Globex".into() }).await?;
    let key = trail_server::create_api_key(&*store, "acme", KeyScope::Admin, "bench").await?.0;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let state = AppState::new(store.clone(), config, trail_server::system_clock());
    tokio::spawn(trail_server::serve(listener, state, async move {
        let _ = rx.await;
    }));
    Ok((base, key, store, tx))
}

/// Ingest into a fresh embedded store over HTTP; returns events/s.
pub(crate) async fn ingest_http(bodies: Vec<String>, per_body: usize, clients: usize) -> Result<f64> {
    ingest_http_with(bodies, per_body, clients, ServerConfig::default()).await
}

/// `ingest_http` into a server with a configuration of its own.
pub(crate) async fn ingest_http_with(
    bodies: Vec<String>,
    per_body: usize,
    clients: usize,
    config: ServerConfig,
) -> Result<f64> {
    let dir = tempfile::tempdir_in(".")?;
    let (base, key, store, _stop) = start_server_with(dir.path(), config).await?;
    let rate = post_all(&base, &key, bodies, per_body, clients).await?;
    store.close();
    Ok(rate)
}

/// The reference: the same rows (same schema, FTS included) inserted by a plain
/// rusqlite loop, one transaction and fsync per batch.
pub(crate) fn bare_sqlite(events: &[Value], batch: usize) -> Result<f64> {
    let dir = tempfile::tempdir_in(".")?;
    let mut conn = rusqlite::Connection::open(dir.path().join("bare.db"))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "cache_size", -65536)?;
    sqlite::migrate(&mut conn)?;
    conn.execute("INSERT INTO orgs (slug, name, created_at) VALUES ('acme', 'Acme', 0)", [])?;
    let received = now();
    // Rows are prepared outside the timed loop: this measures SQLite alone.
    let mut last = i64::MIN;
    let rows: Vec<_> = events
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let p = sqlite::Prepared::new("acme", uuid::Uuid::now_v7(), parse_event(v.clone()).unwrap(), received);
            last = (p.ts() * sqlite::SLOTS).max(last + 1);
            (p.row(last, 1, i as u64), p.leaf(i as u64), p.doc(1))
        })
        .collect();
    let start = Instant::now();
    for chunk in rows.chunks(batch) {
        let tx = conn.transaction()?;
        {
            let mut ins = tx.prepare_cached(sqlite::INSERT_SQL)?;
            let mut ins_leaf = tx.prepare_cached(sqlite::INSERT_LEAF_SQL)?;
            let mut fts = tx.prepare_cached(sqlite::INSERT_FTS_SQL)?;
            for (row, leaf, doc) in chunk {
                ins.execute(rusqlite::params_from_iter(row.iter()))?;
                ins_leaf.execute(rusqlite::params![row[1], row[2], leaf])?;
                fts.execute(rusqlite::params![tx.last_insert_rowid(), doc])?;
            }
        }
        tx.commit()?;
    }
    Ok(events.len() as f64 / start.elapsed().as_secs_f64())
}

pub(crate) async fn bench_ingest(n: usize, runs: usize, batches: &[usize]) -> Result<()> {
    println!("## Durable ingest over HTTP (realistic events, fsync per commit)\n");
    let evs = events(n, 1);
    let mean = evs.iter().map(|e| e.to_string().len()).sum::<usize>() / evs.len();
    println!("{} events, mean event size {mean} bytes; median of {runs} runs (Trail and bare alternate).\n", evs.len());
    println!("| batch | clients | Trail events/s | bare rusqlite events/s (same rows, same batches) | Trail / bare | runs: Trail / bare |");
    println!("|---:|---:|---:|---:|---:|---|");
    for (batch, clients, count) in [(1000usize, 8usize, n), (1000, 16, n), (100, 16, n), (1, 64, n.min(50_000))] {
        if !batches.is_empty() && !batches.contains(&batch) {
            continue;
        }
        let slice = &evs[..count];
        let bodies: Vec<String> = slice
            .chunks(batch)
            .map(|c| if batch == 1 { c[0].to_string() } else { Value::Array(c.to_vec()).to_string() })
            .collect();
        let (mut trail, mut bare) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            trail.push(ingest_http(bodies.clone(), batch, clients).await?);
            bare.push(bare_sqlite(slice, batch)?);
        }
        let each: Vec<String> = trail.iter().zip(&bare).map(|(t, b)| format!("{t:.0} / {b:.0}")).collect();
        let (t, b) = (median(&mut trail), median(&mut bare));
        println!("| {batch} | {clients} | {t:.0} | {b:.0} | {:.2} | {} |", t / b, each.join(", "));
    }
    println!();
    Ok(())
}

pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

pub(crate) async fn bench_query(n: usize, keep: Option<std::path::PathBuf>) -> Result<()> {
    let tmp = tempfile::tempdir_in(".")?;
    let dir_path = keep.unwrap_or_else(|| tmp.path().to_path_buf());
    let reuse = dir_path.join("trail.db").exists();
    std::fs::create_dir_all(&dir_path)?;
    let (base, key, store, _stop) = start_server(&dir_path).await?;
    let platform = trail_server::create_api_key(&*store, "acme", KeyScope::Platform, "bench").await?.0;
    let chunk = 10_000;
    let (people, request_ids, load) = load_events(&*store, n, chunk, reuse).await?;
    store.close();
    let db = dir_path.join("trail.db");
    let conn = rusqlite::Connection::open(&db)?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    drop(conn);
    let bytes = std::fs::metadata(&db)?.len();
    drop(_stop);
    let (base, key) = {
        // Reopen so the server runs on the checkpointed file, as after a restart.
        let store = Arc::new(SqliteStore::open(&db, signed())?);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let b = format!("http://{}", listener.local_addr()?);
        let state = AppState::new(store, ServerConfig::default(), trail_server::system_clock());
        tokio::spawn(trail_server::serve(listener, state, std::future::pending()));
        let _ = base;
        (b, key)
    };
    println!("## Query latency on {n} stored events\n");
    println!(
        "Store loaded in {:.1} s ({:.0} events/s through `Store::append`, batches of {chunk}). \
         On disk: {:.0} MB, **{:.0} bytes per event** (all indexes and the FTS5 index included).\n",
        load.as_secs_f64(),
        n as f64 / load.as_secs_f64(),
        bytes as f64 / 1e6,
        bytes as f64 / n as f64
    );
    println!("First page (limit 50, newest first) over HTTP with a read key of the 900k-event organization, 200 runs each after 20 warm-up runs (sorts: 20 after 2).\n");
    query_table(&base, &key, &platform, &people, &request_ids).await?;
    facets::facets_table(&base, &key, facets::Reference::Sqlite(&db)).await?;
    tiles::tiles_table(&base, &key).await?;
    tiles::mirror_table(&base, &key, &db).await?;
    let vkey = trail_core::checkpoint::verifier_key("trail.bench/acme", &signer().key.verifying_key());
    let entries = verify_table(&db, &vkey).await?;
    let store = SqliteStore::open(&db, signed())?;
    proof_latency(&store, "acme", entries).await?;
    Ok(())
}

/// Loads `n` realistic events through `Store::append` (90% acme, 10% globex) unless
/// `reuse`; returns some actors and request ids seen, and the time it took.
pub(crate) async fn load_events(
    store: &dyn Store,
    n: usize,
    chunk: usize,
    reuse: bool,
) -> Result<(Vec<Value>, Vec<String>, std::time::Duration)> {
    let start = Instant::now();
    let received = now();
    let mut done = 0;
    let mut people = Vec::new();
    let mut request_ids = Vec::new();
    while done < n {
        let m = chunk.min(n - done);
        let evs = events_part(n, done, m, done as u64 + 7);
        // 90% of events belong to acme, 10% to globex.
        let (mut a, mut g) = (Vec::new(), Vec::new());
        for (i, v) in evs.into_iter().enumerate() {
            if i % 997 == 0 {
                request_ids.push(v["request_id"].as_str().unwrap_or_default().to_string());
                people.push(v["actor"].clone());
            }
            let e = (uuid::Uuid::now_v7(), parse_event(v)?);
            if i % 10 == 9 {
                g.push(e)
            } else {
                a.push(e)
            }
        }
        if !reuse {
            store.append(AppendBatch { org: "acme".into(), received_at: received, events: a }).await?;
            store.append(AppendBatch { org: "globex".into(), received_at: received, events: g }).await?;
        }
        done += m;
    }
    Ok((people, request_ids, start.elapsed()))
}

/// First-page latency over HTTP for each filter (read key of acme; `company` with the
/// platform key).
pub(crate) async fn query_table(
    base: &str,
    key: &str,
    platform: &str,
    people: &[Value],
    request_ids: &[String],
) -> Result<()> {
    println!("| filter | p50 ms | p99 ms | rows |");
    println!("|---|---:|---:|---:|");
    let client = reqwest::Client::new();
    let emails: Vec<String> = people.iter().filter_map(|p| p["email"].as_str().map(String::from)).collect();
    let names: Vec<String> = people.iter().filter_map(|p| p["name"].as_str().map(String::from)).collect();
    let mut rng = StdRng::seed_from_u64(5);
    type Gen = Box<dyn Fn(&mut StdRng) -> String>;
    let pick = |v: Vec<String>| -> Gen { Box::new(move |r: &mut StdRng| v.choose(r).cloned().unwrap_or_default()) };
    let fixed = |s: &'static str| -> Gen { Box::new(move |_| s.to_string()) };
    let cases: Vec<(&str, Gen, bool)> = vec![
        ("(none)", fixed(""), false),
        ("period=7d", fixed("period=7d"), false),
        (
            "from/to (one day, 60 days ago)",
            Box::new(|_| {
                let d = Timestamp(now().0 - 60 * 86_400_000_000).to_datetime().format("%Y-%m-%d").to_string();
                format!("from={d}&to={d}")
            }),
            false,
        ),
        ("category=auth", fixed("category=auth"), false),
        ("category=db_backup", fixed("category=db_backup"), false),
        ("operation=rollback", fixed("operation=rollback"), false),
        ("action=service:deploy", fixed("action=service:deploy"), false),
        ("result=FAILED", fixed("result=FAILED"), false),
        ("result=PENDING", fixed("result=PENDING"), false),
        ("status=failure", fixed("status=failure"), false),
        ("actor=<email>", pick(emails.iter().map(|e| format!("actor={e}")).collect()), false),
        ("actor=<name>", pick(names.iter().map(|e| format!("actor={}", e.replace(' ', "%20"))).collect()), false),
        ("actor=<prefix>@", fixed("actor=sarah.kim@"), false),
        ("company=globex (platform key)", fixed("company=globex"), true),
        ("request_id=<id>", pick(request_ids.iter().map(|r| format!("request_id={r}")).collect()), false),
        ("resource=checkout-api", fixed("resource=checkout-api"), false),
        ("resource_type=secret", fixed("resource_type=secret"), false),
        ("workspace=ws-prod", fixed("workspace=ws-prod"), false),
        ("project=billing", fixed("project=billing"), false),
        ("cluster=staging-1", fixed("cluster=staging-1"), false),
        ("namespace=payments", fixed("namespace=payments"), false),
        ("ip=<address>", pick(demo::people(0, "acme.com").iter().map(|p| format!("ip={}", p.ip)).collect()), false),
        ("ip=10.0.0.0/8 (CIDR)", fixed("ip=10.0.0.0/8"), false),
        ("ip=172.16.0.0/12 (CIDR, not on an indexed prefix)", fixed("ip=172.16.0.0/12"), false),
        ("sort=email", fixed("sort=email"), false),
        ("category=auth&result=FAILED&period=30d", fixed("category=auth&result=FAILED&period=30d"), false),
        ("q=encryption", fixed("q=encryption"), false),
        ("q=checkout", fixed("q=checkout"), false),
        ("q=<request id>", pick(request_ids.iter().map(|r| format!("q={r}")).collect()), false),
        ("q=\"image pull\"", fixed("q=%22image%20pull%22"), false),
        ("q=harb (prefix)", fixed("q=harb"), false),
    ];
    for (name, gen, use_platform) in cases {
        let k = if use_platform { platform } else { key };
        // Sorts other than time order sort every matching row: fewer runs.
        let runs = if name.starts_with("sort=") { 22 } else { 220 };
        let mut times = Vec::with_capacity(runs);
        let mut rows = 0;
        for i in 0..runs {
            let qs = gen(&mut rng);
            let t = Instant::now();
            let r = client.get(format!("{base}/api/v1/events?{qs}")).bearer_auth(k).send().await?;
            anyhow::ensure!(r.status().is_success(), "{name}: {}", r.status());
            let v: Value = r.json().await?;
            let el = t.elapsed();
            if i >= runs / 11 {
                times.push(el);
                rows = v["events"].as_array().map_or(0, Vec::len);
            }
        }
        times.sort();
        println!("| `{name}` | {:.2} | {:.2} | {rows} |", percentile(&times, 0.5), percentile(&times, 0.99));
    }
    println!();
    Ok(())
}

/// p50/p99 of inclusion and consistency proofs at random positions of a tree.
pub(crate) async fn proof_latency(store: &SqliteStore, org: &str, size: u64) -> Result<()> {
    let mut rng = StdRng::seed_from_u64(11);
    let (mut inc, mut con) = (Vec::new(), Vec::new());
    for _ in 0..1000 {
        let i = rng.random_range(0..size);
        let t = Instant::now();
        store.inclusion_proof(org, i, size).await?;
        inc.push(t.elapsed());
        let from = rng.random_range(1..size);
        let t = Instant::now();
        store.consistency_proof(org, from, size).await?;
        con.push(t.elapsed());
    }
    inc.sort();
    con.sort();
    println!("| proof at {size} entries | p50 ms | p99 ms |");
    println!("|---|---:|---:|");
    println!("| inclusion | {:.3} | {:.3} |", percentile(&inc, 0.5), percentile(&inc, 0.99));
    println!("| consistency | {:.3} | {:.3} |\n", percentile(&con, 0.5), percentile(&con, 0.99));
    Ok(())
}

/// Builds a tree of `n` leaves directly in `tree_nodes` (no events) and measures proofs
/// on it: proof cost depends on the tree alone.
pub(crate) async fn bench_big_tree(n: u64) -> Result<()> {
    let dir = tempfile::tempdir_in(".")?;
    let path = dir.path().join("tree.db");
    {
        let mut conn = rusqlite::Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        sqlite::migrate(&mut conn)?;
        conn.execute("INSERT INTO orgs (slug, name, created_at) VALUES ('big', 'Big', 0)", [])?;
        let mut tree = trail_core::merkle::Frontier::default();
        let started = Instant::now();
        let mut i = 0u64;
        while i < n {
            let tx = conn.transaction()?;
            {
                let mut ins =
                    tx.prepare_cached("INSERT INTO tree_nodes (org_id, level, idx, hash) VALUES (1, ?1, ?2, ?3)")?;
                for _ in 0..200_000.min(n - i) {
                    for (level, idx, hash) in tree.push(trail_core::merkle::leaf_hash(&i.to_le_bytes())) {
                        ins.execute(rusqlite::params![level, idx as i64, &hash[..]])?;
                    }
                    i += 1;
                }
            }
            tx.commit()?;
        }
        eprintln!("built a {n}-leaf tree in {:.0} s", started.elapsed().as_secs_f64());
    }
    let store = SqliteStore::open(&path, SqliteConfig::default())?;
    println!("Synthetic tree of {n} leaves (tree nodes only):\n");
    proof_latency(&store, "big", n).await?;
    store.close();
    Ok(())
}

/// mimalloc: the ingest path allocates many small objects on several threads, where
/// glibc's allocator showed up as a fifth of the profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<()> {
    let a = <Args as clap::Parser>::parse();
    if a.screenshots {
        return screenshots();
    }
    let runs = a.runs as usize;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        if !a.skip_ingest {
            bench_ingest(a.ingest_events, runs, &a.batches).await?;
        }
        if !a.skip_query {
            bench_query(a.events, a.keep.clone()).await?;
        }
        if a.postgres {
            bench_postgres(a.ingest_events).await?;
        }
        if a.postgres_query > 0 {
            bench_postgres_query(a.postgres_query).await?;
        }
        if a.exports {
            let dir = a.keep.clone().context("--exports needs --keep DIR holding the store of a query run")?;
            bench_exports(&dir, runs).await?;
        }
        if a.search_memory {
            let dir = a.keep.clone().context("--search-memory needs --keep DIR holding the store of a query run")?;
            search::bench_search_memory(&dir).await?;
        }
        if a.alerts > 0 {
            alerts::bench_alerts(a.alerts, runs).await?;
        }
        if a.streams > 0 {
            streams::bench_streams(a.streams, runs).await?;
        }
        if a.installation > 0 {
            installation::bench_installation(a.installation, runs).await?;
        }
        if a.witnesses > 0 {
            witnesses::bench_witnesses(a.witnesses, runs).await?;
        }
        if a.metrics > 0 {
            metrics::bench_metrics(a.metrics, runs).await?;
        }
        if a.archive > 0 {
            archives::bench_archive(a.archive, runs).await?;
        }
        if a.import > 0 {
            import::bench_import(a.import, runs).await?;
        }
        if a.tree_size > 0 {
            bench_big_tree(a.tree_size).await?;
        }
        if a.verify {
            let dir = a.keep.clone().context("--verify needs --keep DIR holding the store of a query run")?;
            let vkey = trail_core::checkpoint::verifier_key("trail.bench/acme", &signer().key.verifying_key());
            verify_table(&dir.join("trail.db"), &vkey).await?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    #[test]
    fn the_arguments_and_help_are_clap_ones() {
        super::Args::command().debug_assert();
        let a = super::Args::try_parse_from(["trail-bench", "--batches", "1000,1", "--runs", "2"]).unwrap();
        assert_eq!((a.batches, a.runs), (vec![1000, 1], 2));
        let help = super::Args::try_parse_from(["trail-bench", "--help"]).unwrap_err();
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
        assert!(super::Args::try_parse_from(["trail-bench", "--runs", "0"]).is_err());
    }
}
