//! `trail ingest` and `trail query`: events from a file into the log, and a filtered
//! page of it printed.

use std::io::Read;

use anyhow::{bail, Context, Result};
use trail_core::{event::parse_batch, Event, Limits, Timestamp};
use trail_store::{AppendBatch, ListQuery, Scope};

use crate::{
    config::Config,
    store::{known_org, open_store},
};

pub(crate) async fn ingest(config: &Config, file: &str, org: &str) -> Result<()> {
    let store = open_store(config).await?;
    if !store.orgs().await?.iter().any(|o| o.slug == org) {
        store.close();
        bail!("unknown organization '{org}' (create it with `trail keys create --org {org} --scope ingest`)");
    }
    let mut body = Vec::new();
    if file == "-" {
        std::io::stdin().read_to_end(&mut body).context("cannot read standard input")?;
    } else {
        body = std::fs::read(file).with_context(|| format!("cannot read {file}"))?;
    }
    // A file may hold far more than one HTTP request; only the per-event limit applies.
    let limits = Limits { max_request_bytes: usize::MAX, max_batch_events: usize::MAX, ..config.limits };
    let events = parse_batch(&body, &limits).map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
    let total = events.len();
    let received_at = now();
    let mut first = None;
    let mut last = 0;
    let mut events = events.into_iter().map(|e| (uuid::Uuid::now_v7(), e)).peekable();
    while events.peek().is_some() {
        let chunk: Vec<_> = events.by_ref().take(1000).collect();
        let acks = store.append(AppendBatch { org: org.into(), received_at, events: chunk }).await?;
        first = first.or(acks.first().map(|a| a.seq));
        last = acks.last().map_or(last, |a| a.seq);
    }
    store.close();
    println!("ingested {total} events into {org} (seq {}..={last})", first.unwrap_or(0));
    Ok(())
}

pub(crate) async fn query_cmd(
    config: &Config,
    text: &str,
    org: Option<String>,
    limit: usize,
    format: &str,
) -> Result<()> {
    if !(1..=1000).contains(&limit) {
        bail!("--limit must be from 1 to 1000");
    }
    if format != "table" && format != "jsonl" {
        bail!("--format must be table or jsonl, not '{format}'");
    }
    let filter = trail_core::query::parse(text).map_err(|e| anyhow::anyhow!("query: {}", e.message))?;
    let store = open_store(config).await?;
    if let Some(o) = &org {
        if let Err(e) = known_org(&*store, o).await {
            store.close();
            return Err(e);
        }
    }
    let scope = match org {
        Some(o) => Scope::org(o),
        None => Scope::all(),
    };
    let page = store.list(ListQuery { scope, filter, now: now(), cursor: None, limit }).await?;
    let mut out = std::io::stdout().lock();
    use std::io::Write;
    if format == "jsonl" {
        for leaf in &page.events {
            out.write_all(leaf)?;
            out.write_all(b"\n")?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "{:<20} {:<15} {:<18} {:<12} {:<28} {:<12} {:<16} Result",
        "Date/Time (UTC)", "Source IP", "Performer", "Company", "Email", "Type", "Operation"
    )?;
    for leaf in &page.events {
        let e = Event::from_leaf(leaf)?;
        let actor = e.actor.clone().unwrap_or_default();
        writeln!(
            out,
            "{:<20} {:<15} {:<18} {:<12} {:<28} {:<12} {:<16} {}",
            e.timestamp.to_datetime().format("%Y-%m-%d %H:%M:%S"),
            e.source_ip.as_deref().unwrap_or("-"),
            cut(actor.name.as_deref().unwrap_or("-"), 18),
            cut(e.company(), 12),
            cut(actor.email.as_deref().unwrap_or("-"), 28),
            e.category(),
            cut(e.operation(), 16),
            e.result.as_str()
        )?;
    }
    if page.next_cursor.is_some() {
        writeln!(out, "(more events match; raise --limit or narrow the query)")?;
    }
    Ok(())
}

pub(crate) fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

pub(crate) fn now() -> Timestamp {
    Timestamp::from_datetime(chrono::Utc::now())
}
