//! Importers (issue 23): `trail import`'s path (CloudTrail JSON Lines read, converted,
//! appended 1,000 at a time) against `trail ingest`'s path for the same events already
//! in Trail's shape (read, validated, appended 1,000 at a time), alternating runs on
//! fresh stores.

use std::{sync::Arc, time::Instant};

use anyhow::Result;
use serde_json::{json, Value};
use trail_core::Limits;
use trail_server::work::import::{self, Format};
use trail_store::{prelude::*, sqlite::SqliteStore, AppendBatch, Org};

use crate::{median, signed};

fn record(i: usize) -> Value {
    let services = ["ec2", "s3", "iam", "kms", "lambda", "sts"];
    let names = ["RunInstances", "PutObject", "CreateAccessKey", "Decrypt", "Invoke", "AssumeRole"];
    let k = i % services.len();
    let mut r = json!({
        "eventVersion": "1.08", "eventTime": format!("2026-11-{:02}T{:02}:{:02}:{:02}Z", 1 + i % 25, i % 24, i % 60, (i / 60) % 60),
        "eventSource": format!("{}.amazonaws.com", services[k]), "eventName": names[k], "awsRegion": "eu-west-1",
        "sourceIPAddress": if i.is_multiple_of(7) { "cloudformation.amazonaws.com".to_string() } else { format!("203.0.113.{}", i % 250) },
        "userAgent": "aws-cli/2.15.0 Python/3.11", "requestID": format!("req-{i:08}"), "eventID": format!("{i:08}-evt"),
        "eventType": "AwsApiCall", "recipientAccountId": "111122223333", "readOnly": false,
        "userIdentity": {"type": "IAMUser", "principalId": format!("AIDA{i:06}"), "arn": format!("arn:aws:iam::111122223333:user/u{}", i % 300),
                          "accountId": "111122223333", "userName": format!("u{}", i % 300)},
        "requestParameters": {"bucketName": "logs", "key": format!("k/{i}")}, "responseElements": null,
    });
    if i.is_multiple_of(20) {
        r["errorCode"] = "AccessDenied".into();
        r["errorMessage"] = "User is not authorized".into();
    }
    r
}

async fn fresh(dir: &std::path::Path) -> Result<Arc<SqliteStore>> {
    let store = Arc::new(SqliteStore::open(&dir.join("trail.db"), signed())?);
    store.ensure_org(Org { slug: "acme".into(), name: "Acme".into() }).await?;
    Ok(store)
}

pub(crate) async fn bench_import(n: usize, runs: usize) -> Result<()> {
    println!("## Import: CloudTrail records through `trail import`'s path, against plain ingest of the same events\n");
    let records: Vec<Value> = (0..n).map(record).collect();
    let cloudtrail: String = records.iter().map(Value::to_string).collect::<Vec<_>>().join("\n");
    // The same events in Trail's shape, as `trail ingest` reads them.
    let plain: String = records
        .iter()
        .map(|r| import::cloudtrail::map(r).map(|v| v.to_string()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?
        .join("\n");
    println!(
        "{n} records ({} MB as CloudTrail JSON Lines; {} MB as Trail events), appended 1,000 at a time into a fresh signed SQLite store; alternating.\n",
        cloudtrail.len() / 1_000_000,
        plain.len() / 1_000_000
    );
    println!("| run | import records/s | plain ingest events/s | import / plain |");
    println!("|---:|---:|---:|---:|");
    let (mut imp, mut pln) = (Vec::new(), Vec::new());
    for run in 1..=runs {
        let dir = tempfile::tempdir_in(".")?;
        let store = fresh(dir.path()).await?;
        let st = trail_server::work::Services::new(
            store.clone(),
            trail_server::ServerConfig::default(),
            trail_server::system_clock(),
        );
        let t = Instant::now();
        let text = cloudtrail.clone();
        let converted = tokio::task::spawn_blocking(move || import::convert(Format::CloudTrail, &text)).await?;
        anyhow::ensure!(converted.skipped.is_empty(), "records skipped: {:?}", &converted.skipped[..1]);
        let stored = import::store(&st, "acme", converted.events).await?;
        let a = stored.acks.len() as f64 / t.elapsed().as_secs_f64();
        store.close();
        drop(dir);

        let dir = tempfile::tempdir_in(".")?;
        let store = fresh(dir.path()).await?;
        let t = Instant::now();
        let text = plain.clone();
        let limits = Limits { max_request_bytes: usize::MAX, max_batch_events: usize::MAX, ..Limits::default() };
        let events =
            tokio::task::spawn_blocking(move || trail_core::event::parse_batch(text.as_bytes(), &limits)).await??;
        let total = events.len();
        let mut it = events.into_iter().map(|e| (uuid::Uuid::now_v7(), e)).peekable();
        while it.peek().is_some() {
            let chunk: Vec<_> = it.by_ref().take(1000).collect();
            store.append(AppendBatch { org: "acme".into(), received_at: crate::now(), events: chunk }).await?;
        }
        let b = total as f64 / t.elapsed().as_secs_f64();
        store.close();
        drop(dir);
        println!("| {run} | {a:.0} | {b:.0} | {:.2} |", a / b);
        imp.push(a);
        pln.push(b);
    }
    let (a, b) = (median(&mut imp), median(&mut pln));
    println!("\nMedian: import {a:.0} records/s, plain {b:.0} events/s, import / plain {:.2}.\n", a / b);
    Ok(())
}
