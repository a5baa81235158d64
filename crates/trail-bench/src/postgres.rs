//! The PostgreSQL benchmark: durable ingest over HTTP against a bare `COPY` of the same
//! rows, and first-page queries, on a throwaway cluster.

use std::{sync::Arc, time::Instant};

use anyhow::Result;
use serde_json::Value;
use trail_core::event::parse_event;
use trail_server::{AppState, ServerConfig};
use trail_store::{KeyScope, Org, Store};

use crate::{events, load_events, now, query_table, signer};

/// Ingest over HTTP into the PostgreSQL backend (a throwaway PostgreSQL 15 cluster
/// started here), beside the same rows `COPY`ed into a table of the same columns and
/// indexes: the bare-database reference.
pub(crate) async fn bench_postgres(n: usize) -> Result<()> {
    use trail_store::{postgres::PgStore, testing::Cluster};
    let cluster = Cluster::start().map_err(|e| anyhow::anyhow!(e))?;
    println!("## PostgreSQL 15: durable ingest over HTTP\n");
    println!("A throwaway cluster on this machine (default settings, `synchronous_commit = on`), one `trail serve`");
    println!("in process, the same realistic events as above.\n");
    println!("| batch | clients | Trail on PostgreSQL events/s | bare `COPY` events/s (same rows, same batches) | Trail / bare |");
    println!("|---:|---:|---:|---:|---:|");
    let evs = events(n, 1);
    for (batch, clients, count) in [(1000usize, 8usize, n), (100, 16, n), (1, 64, n.min(20_000))] {
        let slice = &evs[..count];
        let bodies: Vec<String> = slice
            .chunks(batch)
            .map(|c| if batch == 1 { c[0].to_string() } else { Value::Array(c.to_vec()).to_string() })
            .collect();
        let url = cluster.database();
        let store: Arc<dyn Store> = Arc::new(PgStore::open(&url, Some(signer())).await?);
        store.ensure_org(Org { slug: "acme".into(), name: "Acme".into() }).await?;
        let key = trail_server::create_api_key(&*store, "acme", KeyScope::Admin, "bench").await?.0;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let state = AppState::new(store.clone(), ServerConfig::default(), trail_server::system_clock());
        let server = tokio::spawn(trail_server::serve(listener, state, std::future::pending()));
        let trail = post_all(&base, &key, bodies, batch, clients).await?;
        server.abort();
        let bare = bare_copy(&cluster.database(), slice, batch).await?;
        println!("| {batch} | {clients} | {trail:.0} | {bare:.0} | {:.2} |", trail / bare);
    }
    println!();
    Ok(())
}

/// The query table of `bench_query` on PostgreSQL: `n` events loaded through
/// `Store::append` into a throwaway cluster, then the same first-page queries.
pub(crate) async fn bench_postgres_query(n: usize) -> Result<()> {
    use trail_store::{postgres::PgStore, testing::Cluster};
    let cluster = Cluster::start().map_err(|e| anyhow::anyhow!(e))?;
    let url = cluster.database();
    let store: Arc<dyn Store> = Arc::new(PgStore::open(&url, Some(signer())).await?);
    for slug in ["acme", "globex"] {
        store.ensure_org(Org { slug: slug.into(), name: slug.into() }).await?;
    }
    let key = trail_server::create_api_key(&*store, "acme", KeyScope::Admin, "bench").await?.0;
    let platform = trail_server::create_api_key(&*store, "acme", KeyScope::Platform, "bench").await?.0;
    let chunk = 10_000;
    let (people, request_ids, load) = load_events(&*store, n, chunk, false).await?;
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    client.batch_execute("VACUUM ANALYZE").await?;
    let bytes: i64 = client.query_one("SELECT pg_database_size(current_database())", &[]).await?.get(0);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let state = AppState::new(store.clone(), ServerConfig::default(), trail_server::system_clock());
    tokio::spawn(trail_server::serve(listener, state, std::future::pending()));
    println!(
        "## PostgreSQL 15: query latency on {n} stored events
"
    );
    println!(
        "Loaded in {:.1} s ({:.0} events/s through `Store::append`, batches of {chunk}), then `VACUUM ANALYZE`. \
         Database size: {:.0} MB, {:.0} bytes per event.\n",
        load.as_secs_f64(),
        n as f64 / load.as_secs_f64(),
        bytes as f64 / 1e6,
        bytes as f64 / n as f64
    );
    println!("First page (limit 50, newest first) over HTTP, as in the SQLite table above.\n");
    query_table(&base, &key, &platform, &people, &request_ids).await?;
    crate::facets::facets_table(&base, &key, crate::facets::Reference::Postgres(&url)).await?;
    Ok(())
}

/// Posts pre-serialised bodies from `clients` concurrent clients; returns events/s.
pub(crate) async fn post_all(
    base: &str,
    key: &str,
    bodies: Vec<String>,
    per_body: usize,
    clients: usize,
) -> Result<f64> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(clients).build()?;
    let total = bodies.len() * per_body;
    let queue = Arc::new(std::sync::Mutex::new(bodies));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (queue, client, base, key) = (queue.clone(), client.clone(), base.to_string(), key.to_string());
        tasks.push(tokio::spawn(async move {
            loop {
                let body = queue.lock().ok().and_then(|mut q| q.pop());
                let Some(body) = body else { return Ok::<_, anyhow::Error>(()) };
                let r = client.post(format!("{base}/api/v1/events")).bearer_auth(&key).body(body).send().await?;
                anyhow::ensure!(r.status().is_success(), "ingest failed: {}", r.status());
                r.bytes().await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

/// The reference: the same rows `COPY`ed (text format) into a plain table with the
/// events' columns and indexes, one transaction per batch.
pub(crate) async fn bare_copy(url: &str, events: &[Value], batch: usize) -> Result<f64> {
    use futures::SinkExt;
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    client
        .batch_execute(
            "CREATE TABLE bare (org_id BIGINT, seq BIGINT, pos BIGINT, id UUID, ts BIGINT, received BIGINT, \
             category TEXT, operation TEXT, result SMALLINT, status_code INTEGER, actor_id TEXT, actor_name TEXT, \
             actor_email TEXT, company TEXT, request_id TEXT, resource_type TEXT, resource_id TEXT, \
             resource_name TEXT, workspace_id TEXT, workspace_name TEXT, project TEXT, cluster TEXT, namespace TEXT, \
             ip INET, doc TSVECTOR, leaf BYTEA, PRIMARY KEY (org_id, seq, ts));
             CREATE INDEX ON bare (ts DESC, pos DESC); CREATE INDEX ON bare (org_id, ts DESC, pos DESC);
             CREATE INDEX ON bare (id); CREATE INDEX ON bare (lower(category), ts DESC);
             CREATE INDEX ON bare (lower(actor_email), ts DESC); CREATE INDEX ON bare (request_id);
             CREATE INDEX ON bare (lower(resource_name), ts DESC); CREATE INDEX ON bare (ip);
             CREATE INDEX ON bare USING GIN (doc);",
        )
        .await?;
    // Rows prepared beforehand: this measures the database alone.
    let esc = |s: &str| s.replace('\\', "\\\\").replace('\t', "\\t").replace('\n', "\\n").replace('\r', "\\r");
    let opt = |s: Option<&str>| s.map_or("\\N".to_string(), esc);
    let received = now();
    let rows: Vec<String> = events
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let e = trail_core::Event::from_new(
                parse_event(v.clone()).unwrap(),
                uuid::Uuid::now_v7(),
                "acme",
                i as u64,
                received,
            );
            let leaf = e.to_leaf();
            let a = e.actor.clone().unwrap_or_default();
            let r = e.resource.clone().unwrap_or_default();
            let c = e.context.clone().unwrap_or_default();
            let w = c.workspace.clone().unwrap_or_default();
            // The same search document as Trail's (tsvector text: words are alphanumeric).
            let doc = trail_store::postgres::doc_words(&e);
            let hex: String = leaf.iter().map(|b| format!("{b:02x}")).collect();
            [
                "1".to_string(),
                i.to_string(),
                i.to_string(),
                e.id.to_string(),
                e.timestamp.0.to_string(),
                e.received_at.0.to_string(),
                esc(e.category()),
                esc(e.operation()),
                "0".into(),
                e.status_code.map_or("\\N".into(), |c| c.to_string()),
                opt(a.id.as_deref()),
                opt(a.name.as_deref()),
                opt(a.email.as_deref()),
                esc(e.company()),
                opt(e.request_id.as_deref()),
                opt(r.kind.as_deref()),
                opt(r.id.as_deref()),
                opt(r.name.as_deref()),
                opt(w.id.as_deref()),
                opt(w.name.as_deref()),
                opt(c.project.as_deref()),
                opt(c.cluster.as_deref()),
                opt(c.namespace.as_deref()),
                opt(e.source_ip.as_deref()),
                esc(&doc.join(" ")),
                format!("\\\\x{hex}"),
            ]
            .join("\t")
        })
        .collect();
    let start = Instant::now();
    for chunk in rows.chunks(batch) {
        client.batch_execute("BEGIN").await?;
        let sink = client.copy_in("COPY bare FROM STDIN").await?;
        let mut sink = std::pin::pin!(sink);
        let mut buf = String::new();
        for r in chunk {
            buf.push_str(r);
            buf.push('\n');
        }
        sink.send(bytes::Bytes::from(buf)).await?;
        sink.as_mut().finish().await?;
        client.batch_execute("COMMIT").await?;
    }
    Ok(events.len() as f64 / start.elapsed().as_secs_f64())
}
