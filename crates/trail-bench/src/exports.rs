//! The export benchmark: rates, server CPU and peak RSS per format, and the XLSX crate
//! alone as the reference.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use trail_store::{prelude::*, sqlite::SqliteStore, KeyScope};

use crate::{median, now, signed};

/// A process's peak resident memory (VmHWM), in MB.
pub(crate) fn peak_rss_mb(pid: u32) -> f64 {
    proc_status_mb(pid, "VmHWM:")
}

/// One memory line of /proc/PID/status, in MB.
pub(crate) fn proc_status_mb(pid: u32, key: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// Resets a process's peak so that each export's own peak is measured.
pub(crate) fn reset_peak_rss(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// One export's figures.
#[derive(Clone)]
pub(crate) struct ExportRun {
    rows: u64,
    bytes: u64,
    secs: f64,
    cpu: f64,
    peak: f64,
}

/// User + system CPU seconds of a process so far.
pub(crate) fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which ends with the last ')'): utime is the 12th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest.split_whitespace().map(|v| v.parse().unwrap_or(0.0)).collect();
    (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / 100.0
}

/// Exports every event once in `format` from the server at `base`: streamed formats
/// read and discarded, XLSX as a background job polled until done.
/// `total` is the store's count before the first export (streams give that many plus
/// the `audit:export` events of the exports before them).
pub(crate) async fn export_once(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    pid: u32,
    format: &str,
    total: u64,
) -> Result<ExportRun> {
    reset_peak_rss(pid);
    let cpu = cpu_secs(pid);
    let t = Instant::now();
    let (rows, bytes) = if format == "xlsx" {
        let job: serde_json::Value =
            client.post(format!("{base}/api/v1/exports?format=xlsx")).bearer_auth(key).send().await?.json().await?;
        let url = format!("{base}{}", job["status_url"].as_str().context("no job")?);
        let status = loop {
            let s: serde_json::Value = client.get(&url).bearer_auth(key).send().await?.json().await?;
            if s["status"] != "running" {
                break s;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        anyhow::ensure!(status["status"] == "done", "xlsx: {status}");
        (status["rows"].as_u64().unwrap_or(0), status["bytes"].as_u64().unwrap_or(0))
    } else {
        let mut r = client.get(format!("{base}/api/v1/export?format={format}")).bearer_auth(key).send().await?;
        anyhow::ensure!(r.status().is_success(), "{format}: {}", r.status());
        let mut bytes = 0u64;
        while let Some(c) = r.chunk().await? {
            bytes += c.len() as u64;
        }
        (total, bytes)
    };
    let secs = t.elapsed().as_secs_f64();
    Ok(ExportRun { rows, bytes, secs, cpu: cpu_secs(pid) - cpu, peak: peak_rss_mb(pid) })
}

/// Export rates on the store of a query run (`--keep DIR`), served by the real `trail`
/// binary (built beside this one) in its own process, so that its memory is measured
/// alone: every event of both organizations in each format; PDF at 10,000 rows.
/// A `trail serve` process (the release binary beside this one) on the store in `dir`,
/// on a free loopback port, with `env` set: the process and its base URL.
pub(crate) fn serve_store(dir: &std::path::Path, env: &[(&str, &str)]) -> Result<(std::process::Child, String)> {
    use std::io::BufRead;
    let bin = std::env::current_exe()?.with_file_name("trail");
    anyhow::ensure!(bin.exists(), "build the trail binary first: cargo build --release -p trail");
    // The server signs with the benchmark's key, so that the kept store stays one
    // that `--verify` finds whole after the server appended its own records.
    let key = dir.join("bench-signing.key");
    let hex: String = crate::signer().key.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&key, hex)?;
    let mut child = std::process::Command::new(&bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("TRAIL_LOG", "warn")
        .env("TRAIL_NAME", &crate::signer().name)
        .env("TRAIL_SIGNING_KEY", &key)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut lines = std::io::BufReader::new(child.stdout.take().context("stdout")?).lines();
    let first = lines.next().context("no output")??;
    let base = first.strip_prefix("Trail is running at ").context("unexpected output")?.to_string();
    std::thread::spawn(move || for _ in lines.by_ref() {});
    Ok((child, base))
}

pub(crate) async fn bench_exports(dir: &std::path::Path, runs: usize) -> Result<()> {
    let db = dir.join("trail.db");
    anyhow::ensure!(db.exists(), "{} holds no store: run with --keep {} first", dir.display(), dir.display());
    let store = Arc::new(SqliteStore::open(&db, signed())?);
    let key = trail_server::create_api_key(&*store, "acme", KeyScope::Platform, "bench").await?.0;
    let total = store.count(trail_store::Scope::all(), trail_core::Filter::default(), now()).await?;
    store.close();
    // Every stored event, not only the online window's (the data spans a year).
    let (mut child, base) = serve_store(dir, &[("TRAIL_ONLINE_DAYS", "0")])?;
    let pid = child.id();
    let client = reqwest::Client::new();
    println!("## Exports of {total} events\n");
    println!("Every event of both organizations (platform key), newest first, from a `trail serve` process on");
    println!("127.0.0.1; the client reads and discards the body. Peak RSS is the server process's, reset before");
    println!("each export (the lowest of the runs); it holds {:.0} MB before the first.\n", peak_rss_mb(pid));
    println!("Median of {runs} runs (the formats alternate); server CPU is the process's user + system time");
    println!("during the export, which drifts less than wall time on a shared machine.\n");
    println!(
        "| format | rows | seconds | rows/s | server CPU s | MB written | server peak RSS MB | runs: seconds / CPU s |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|");
    let formats = ["csv", "jsonl", "json", "xlsx"];
    let mut results: Vec<Vec<ExportRun>> = vec![Vec::new(); formats.len()];
    for _ in 0..runs {
        for (i, format) in formats.iter().enumerate() {
            results[i].push(export_once(&client, &base, &key, pid, format, total).await?);
        }
    }
    for (format, runs) in formats.iter().zip(&results) {
        let each: Vec<String> = runs.iter().map(|r| format!("{:.1} / {:.1}", r.secs, r.cpu)).collect();
        let rows = runs[0].rows;
        let bytes = runs[0].bytes;
        // The lowest peak: a run after an XLSX job starts from the job's resident set.
        let peak = runs.iter().map(|r| r.peak).fold(f64::MAX, f64::min);
        let secs = median(&mut runs.iter().map(|r| r.secs).collect::<Vec<_>>());
        let cpu = median(&mut runs.iter().map(|r| r.cpu).collect::<Vec<_>>());
        let name = if *format == "xlsx" { "xlsx (job)" } else { format };
        println!(
            "| {name} | {rows} | {secs:.1} | {:.0} | {cpu:.1} | {:.0} | {peak:.0} | {} |",
            rows as f64 / secs,
            bytes as f64 / 1e6,
            each.join(", ")
        );
    }
    let _ = child.kill();
    let _ = child.wait();
    // The jobs' workbooks (about 200 MB each) are not needed after.
    for f in std::fs::read_dir(dir.join("exports").join("jobs")).into_iter().flatten().flatten() {
        if f.path().extension().is_some_and(|e| e == "xlsx") {
            let _ = std::fs::remove_file(f.path());
        }
    }
    let store = Arc::new(SqliteStore::open(&db, signed())?);
    // PDF: the report of the 10,000 newest failed events.
    let q = trail_store::ListQuery {
        scope: trail_store::Scope::all(),
        filter: trail_core::query::parse("result:FAILED")?,
        now: now(),
        cursor: None,
        limit: 1,
    };
    let mut rx = store.stream(q, 1000).await?;
    let mut evs = Vec::new();
    while let Some(c) = rx.recv().await {
        evs.extend(c?.iter().map(|l| trail_core::Event::from_leaf(l)).collect::<Result<Vec<_>, _>>()?);
        if evs.len() >= 10_000 {
            break;
        }
    }
    drop(rx);
    evs.truncate(10_000);
    let t = Instant::now();
    let meta =
        trail_export::Meta { org: "all organizations".into(), filter: "result:FAILED".into(), ..Default::default() };
    let pdf =
        tokio::task::spawn_blocking(move || trail_export::pdf(&evs, &meta, trail_export::Preset::Standard)).await??;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "| pdf (render only, in the benchmark process) | 10000 | {secs:.2} | {:.0} | {:.1} | |",
        10_000.0 / secs,
        pdf.len() as f64 / 1e6
    );
    xlsx_reference(&store, &results[3]).await?;
    println!();
    store.close();
    Ok(())
}

/// The XLSX reference: `rust_xlsxwriter` alone writing the same cells, decoded from the
/// store into memory beforehand, in the same workbook (widths, formats, summary sheet),
/// so that the job's rate can be read against what the crate itself reaches here.
pub(crate) async fn xlsx_reference(store: &Arc<SqliteStore>, trail: &[ExportRun]) -> Result<()> {
    let q = trail_store::ListQuery {
        scope: trail_store::Scope::all(),
        filter: trail_core::Filter::default(),
        now: now(),
        cursor: None,
        limit: 1,
    };
    let mut rx = store.stream(q, 1000).await?;
    let (mut chunks, mut n) = (Vec::new(), 0usize);
    while let Some(c) = rx.recv().await {
        let c = c?;
        let keep = c.len().min(trail_export::XLSX_MAX_ROWS as usize - n);
        n += keep;
        chunks.push(trail_export::XlsxChunk::decode(&c[..keep])?);
    }
    let dir = tempfile::tempdir()?;
    let mut secs = Vec::new();
    for _ in 0..trail.len() {
        let path = dir.path().join("reference.xlsx");
        let (tmp, decoded) = (dir.path().to_path_buf(), std::mem::take(&mut chunks));
        let t = Instant::now();
        let back = tokio::task::spawn_blocking(move || -> Result<_> {
            let mut w = trail_export::XlsxWriter::new(&tmp)?;
            for c in &decoded {
                w.chunk(c)?;
            }
            w.finish(&trail_export::Meta::default(), &path)?;
            Ok(decoded)
        })
        .await??;
        secs.push(t.elapsed().as_secs_f64());
        chunks = back;
    }
    let each: Vec<String> = secs.iter().map(|s| format!("{s:.1}")).collect();
    let bare = median(&mut secs.clone());
    let job = median(&mut trail.iter().map(|r| r.secs).collect::<Vec<_>>());
    let (bare_rate, job_rate) = (n as f64 / bare, trail[0].rows as f64 / job);
    println!(
        "| xlsx reference: `rust_xlsxwriter` alone, cells decoded beforehand | {n} | {bare:.1} | {bare_rate:.0} | | | | {} |",
        each.join(", ")
    );
    println!("\nXLSX job / crate alone: {:.2}", job_rate / bare_rate);
    Ok(())
}
