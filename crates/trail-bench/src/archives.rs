//! Archives in a bucket (issue 36): a retention run archiving every event of a store to
//! a locked bucket on SeaweedFS, against the S3 client alone writing the same
//! compressed files and manifests (write-once, locked, with their SHA-256) in the same
//! run (the target: ≥ 0.8); and a month downloaded from the bucket against from the
//! same files in a local directory (≥ 0.7). Runs alternate; each run archives a fresh
//! copy of the store.

use std::{path::Path, sync::Arc, time::Instant};

use anyhow::{Context, Result};
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use base64::Engine;
use sha2::{Digest, Sha256};
use trail_core::{Filter, Timestamp};
use trail_store::{
    archive::{self, Archive, BucketConfig, LockMode, Retention},
    sqlite::SqliteStore,
    testing::s3::{S3Server, ACCESS_KEY, SECRET_KEY},
    Accounts, AppendBatch, Archives, EventLog, Org, Scope, Store,
};

use crate::{events_part, median, now, signed};

/// The store to archive: `n` events over the 120 days before now.
async fn build(path: &Path, n: usize) -> Result<()> {
    let store = SqliteStore::open(path, signed())?;
    store.ensure_org(Org { slug: "acme".into(), name: "Acme".into() }).await?;
    for first in (0..n).step_by(10_000) {
        let count = 10_000.min(n - first);
        let events = events_part(n, first, count, 11)
            .into_iter()
            .map(|v| Ok((uuid::Uuid::now_v7(), trail_core::event::parse_event(v)?)))
            .collect::<Result<Vec<_>, trail_core::FieldError>>()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        store.append(AppendBatch { org: "acme".into(), received_at: now(), events }).await?;
    }
    store.close();
    Ok(())
}

/// The S3 client alone, as the reference: the SDK with the same endpoint and keys.
async fn client(s3: &S3Server) -> aws_sdk_s3::Client {
    let creds = aws_sdk_s3::config::Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "bench");
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
    let http =
        aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring)).build_https();
    let conf = aws_sdk_s3::config::Builder::new()
        .http_client(http)
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(s3.endpoint())
        .force_path_style(true)
        .credentials_provider(creds)
        .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// Writes `objects` with the client alone, as Trail writes them: once, locked for a
/// year, with their SHA-256.
async fn put_all(c: &aws_sdk_s3::Client, prefix: &str, objects: &[(String, Vec<u8>)]) -> Result<f64> {
    let until = DateTime::from_secs(chrono::Utc::now().timestamp() + 366 * 86_400);
    let t = Instant::now();
    for (key, bytes) in objects {
        let sum = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes));
        c.put_object()
            .bucket("bench")
            .key(format!("{prefix}/{key}"))
            .if_none_match("*")
            .checksum_sha256(sum)
            .object_lock_mode(aws_sdk_s3::types::ObjectLockMode::Compliance)
            .object_lock_retain_until_date(until)
            .body(ByteStream::from(bytes.clone()))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("the reference's PUT: {e:?}"))?;
    }
    Ok(t.elapsed().as_secs_f64())
}

/// Every event of one month read back through `archive::merged`.
async fn month(store: &dyn Store, archive: Arc<Archive>, from: Timestamp, to: Timestamp) -> Result<(usize, f64)> {
    let filter = Filter { from: Some(from), to: Some(to), ..Filter::default() };
    let t = Instant::now();
    let mut rx = archive::merged(store, archive, Scope::org("acme"), filter, now(), 5_000).await?;
    let mut n = 0;
    while let Some(chunk) = rx.recv().await {
        n += chunk?.len();
    }
    Ok((n, t.elapsed().as_secs_f64()))
}

pub(crate) async fn bench_archive(n: usize, runs: usize) -> Result<()> {
    println!("## Archives in a bucket\n");
    let dir = tempfile::tempdir()?;
    let base = dir.path().join("base.db");
    build(&base, n).await?;
    let s3 = S3Server::start();
    s3.bucket("bench", true).await;
    let reference = client(&s3).await;
    let rules = Retention { default_days: 1, categories: Default::default(), key_days: None };
    let as_of = Timestamp(now().0 + 2 * 86_400_000_000);
    let (mut trail, mut alone, mut from_bucket, mut from_dir) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut to_dir = Vec::new();
    let (mut files, mut bytes, mut month_events) = (0, 0usize, 0);
    for run in 0..runs {
        // The same run into a local directory: what retention costs without the bucket.
        let path = dir.path().join(format!("dir{run}.db"));
        std::fs::copy(&base, &path)?;
        let store = SqliteStore::open(&path, signed())?;
        let t = Instant::now();
        archive::run(&store, &Archive::new(dir.path().join(format!("dirrun{run}"))), &rules, as_of).await?;
        to_dir.push(t.elapsed().as_secs_f64());
        store.close();
        std::fs::remove_file(&path)?;
        let path = dir.path().join(format!("run{run}.db"));
        std::fs::copy(&base, &path)?;
        let store = SqliteStore::open(&path, signed())?;
        let locked = BucketConfig {
            object_lock: Some(LockMode::Compliance),
            retain_years: 1,
            ..s3.config(&format!("s3://bench/run{run}/trail"))
        };
        let bucket = Arc::new(Archive::open_bucket(&locked).await?);
        let t = Instant::now();
        let report = archive::run(&store, &bucket, &rules, as_of).await?;
        trail.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(report[0].archived as usize == n, "archived {} of {n}", report[0].archived);
        // The same objects, written by the client alone.
        let recorded = store.archives(Some("acme")).await?;
        let mut objects = Vec::new();
        let local = Arc::new(Archive::new(dir.path().join(format!("local{run}"))));
        for f in &recorded {
            let data = bucket.get(&f.path).await?.context("an archived file")?;
            let manifest = serde_json::to_vec_pretty(f)?;
            local.keep(f.clone(), data.clone(), manifest.clone()).await?;
            objects.push((f.path.clone(), data));
            objects.push((f.path.replace(".jsonl.zst", ".manifest.json"), manifest));
        }
        (files, bytes) = (recorded.len(), objects.iter().map(|o| o.1.len()).sum());
        alone.push(put_all(&reference, &format!("run{run}/alone"), &objects).await?);
        // A month in the middle, from the bucket and from the directory, alternating.
        let from = Timestamp(now().0 - 75 * 86_400_000_000);
        let to = Timestamp(from.0 + 30 * 86_400_000_000);
        let (nb, tb) = month(&store, bucket.clone(), from, to).await?;
        let (nd, td) = month(&store, local, from, to).await?;
        anyhow::ensure!(nb == nd, "the bucket gave {nb} events, the directory {nd}");
        (month_events, from_bucket, from_dir) = (nb, [from_bucket, vec![tb]].concat(), [from_dir, vec![td]].concat());
        store.close();
    }
    let show = |v: &[f64]| v.iter().map(|t| format!("{t:.2}")).collect::<Vec<_>>().join(", ");
    println!(
        "{n} events archived by a retention run (read, compressed, written once and locked, confirmed, rows deleted) \
         into {files} files and manifests ({:.1} MB), SeaweedFS 4.48 on loopback; median of {runs} runs.\n",
        bytes as f64 / 1e6
    );
    println!("| | seconds (runs) | median |");
    println!("|---|---|---:|");
    let (st, sa, sb, sd) = (show(&trail), show(&alone), show(&from_bucket), show(&from_dir));
    let sdir = show(&to_dir);
    let (mt, ma, mdir) = (median(&mut trail), median(&mut alone), median(&mut to_dir));
    let (mb, md) = (median(&mut from_bucket), median(&mut from_dir));
    println!("| Trail: retention run to the bucket | {st} | {mt:.2} |");
    println!("| reference: the same objects by the S3 client alone | {sa} | {ma:.2} |");
    println!("| the same retention run to a local directory | {sdir} | {mdir:.2} |");
    println!("| a month ({month_events} events) downloaded from the bucket | {sb} | {mb:.2} |");
    println!("| the same month from local files (reference) | {sd} | {md:.2} |");
    println!(
        "\nArchive: client alone / Trail = **{:.2}** (target ≥ 0.8); directory / bucket = {:.2}. Download: local / bucket = **{:.2}** (target ≥ 0.7).\n",
        ma / mt,
        mdir / mt,
        md / mb
    );
    Ok(())
}
