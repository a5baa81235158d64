//! Metrics for Prometheus (`GET /metrics`, OpenMetrics text), with `prometheus-client`:
//! what the work counts as it goes (events ingested and refused by organization and
//! reason, alert deliveries by outcome, retention runs, request durations by route)
//! and what is read when scraped (the store's writer queue, commits and pool, entries
//! not yet under a checkpoint, streams' lag and failures, the witnesses' lag, open
//! connections and live streams, the process's memory). Organization labels are
//! bounded: the first `MAX_ORGS` organizations seen by name, then `other`.

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicI64, AtomicU64},
        Arc, Mutex,
    },
};

use prometheus_client::{
    encoding::text::encode,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
    },
    registry::Registry,
};

use super::Services;

/// Organizations named in labels; the rest are `other`.
pub const MAX_ORGS: usize = 50;

type Labels = Vec<(&'static str, String)>;

fn seconds() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Every metric of one server.
pub struct Metrics {
    registry: Registry,
    orgs: Mutex<HashSet<String>>,
    ingested: Family<Labels, Counter>,
    refused: Family<Labels, Counter>,
    requests: Family<Labels, Histogram, fn() -> Histogram>,
    deliveries: Family<Labels, Counter>,
    retention_runs: Family<Labels, Counter>,
    retention_archived: Counter,
    unsigned: Family<Labels, Gauge>,
    stream_lag: Family<Labels, Gauge>,
    stream_failures: Family<Labels, Gauge>,
    witness_lag: Gauge<f64, AtomicU64>,
    queue: Gauge,
    commits: Counter,
    committed: Counter,
    pool: Family<Labels, Gauge>,
    /// Open HTTP connections (the listener keeps it).
    pub connections: Gauge<i64, AtomicI64>,
    live: Gauge,
    memory: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut r = Registry::with_prefix("trail");
        let m = Metrics {
            orgs: Mutex::default(),
            ingested: Family::default(),
            refused: Family::default(),
            requests: Family::new_with_constructor(seconds),
            deliveries: Family::default(),
            retention_runs: Family::default(),
            retention_archived: Counter::default(),
            unsigned: Family::default(),
            stream_lag: Family::default(),
            stream_failures: Family::default(),
            witness_lag: Gauge::default(),
            queue: Gauge::default(),
            commits: Counter::default(),
            committed: Counter::default(),
            pool: Family::default(),
            connections: Gauge::default(),
            live: Gauge::default(),
            memory: Gauge::default(),
            registry: Registry::default(),
        };
        r.register("events_ingested", "Events stored, by organization", m.ingested.clone());
        r.register("events_refused", "Events refused, by organization and reason", m.refused.clone());
        r.register(
            "http_request_duration_seconds",
            "Request durations by method and route (POST /api/v1/events is ingest; GET list, facets, timeline are queries)",
            m.requests.clone(),
        );
        r.register("alert_deliveries", "Alert delivery attempts, by outcome", m.deliveries.clone());
        r.register("retention_runs", "Retention runs, by outcome", m.retention_runs.clone());
        r.register("retention_archived_events", "Events archived by retention", m.retention_archived.clone());
        r.register(
            "unsigned_entries",
            "Entries not yet under a signed checkpoint, by organization",
            m.unsigned.clone(),
        );
        r.register(
            "stream_lag_entries",
            "Entries a stream has yet to send, by organization and stream",
            m.stream_lag.clone(),
        );
        r.register(
            "stream_failed_sends",
            "A stream's failed sends, by organization and stream",
            m.stream_failures.clone(),
        );
        r.register(
            "witness_lag_seconds",
            "How far the newest witnessed installation checkpoint is behind",
            m.witness_lag.clone(),
        );
        r.register("writer_queue_depth", "Appends waiting for the writer", m.queue.clone());
        r.register("store_commits", "Group commits of appends", m.commits.clone());
        r.register("store_committed_events", "Events written by group commits", m.committed.clone());
        r.register("db_pool_connections", "Database connections, by state", m.pool.clone());
        r.register("http_connections_open", "Open HTTP connections", m.connections.clone());
        r.register("live_streams_open", "Open live event streams", m.live.clone());
        r.register("process_resident_memory_bytes", "Resident memory of the process", m.memory.clone());
        Metrics { registry: r, ..m }
    }
}

impl Metrics {
    /// The label of an organization: its slug while fewer than `MAX_ORGS` are named.
    fn org(&self, org: &str) -> String {
        let Ok(mut seen) = self.orgs.lock() else { return "other".into() };
        if seen.contains(org) || (seen.len() < MAX_ORGS && seen.insert(org.to_string())) {
            org.to_string()
        } else {
            "other".into()
        }
    }

    pub fn ingested(&self, org: &str, n: usize) {
        self.ingested.get_or_create(&vec![("org", self.org(org))]).inc_by(n as u64);
    }

    pub fn refused(&self, org: &str, reason: &str, n: usize) {
        let labels = vec![("org", self.org(org)), ("reason", reason.to_string())];
        self.refused.get_or_create(&labels).inc_by(n.max(1) as u64);
    }

    pub fn request(&self, method: &str, route: &str, seconds: f64) {
        self.requests
            .get_or_create(&vec![("method", method.to_string()), ("route", route.to_string())])
            .observe(seconds);
    }

    pub fn delivery(&self, outcome: &str) {
        self.deliveries.get_or_create(&vec![("outcome", outcome.to_string())]).inc();
    }

    pub fn retention(&self, ok: bool, archived: u64) {
        let outcome = if ok { "ok" } else { "failed" };
        self.retention_runs.get_or_create(&vec![("outcome", outcome.to_string())]).inc();
        self.retention_archived.inc_by(archived);
    }
}

/// Resident memory from `/proc/self/statm` (Linux, 4 KiB pages), in bytes.
fn resident_bytes() -> i64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: i64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// The same metrics in Prometheus's classic text format (0.0.4), for clients that do
/// not ask for OpenMetrics (`promtool`, older scrapers): a counter's HELP and TYPE name
/// its `_total` samples, and there is no `# EOF`.
pub fn classic_text(openmetrics: &str) -> String {
    let counters: HashSet<&str> =
        openmetrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(name).then(|| format!("{p}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// The metrics text (OpenMetrics), with what is read at scrape time brought up to date.
pub async fn render(st: &Services) -> String {
    let Some(m) = st.metrics.clone() else { return String::new() };
    refresh(st, &m).await;
    let mut out = String::new();
    if encode(&mut out, &m.registry).is_err() {
        out.clear();
    }
    out
}

async fn refresh(st: &Services, m: &Arc<Metrics>) {
    let stats = st.store.stats();
    m.queue.set(stats.queue_depth as i64);
    m.commits.inc_by(stats.commits.saturating_sub(m.commits.get()));
    m.committed.inc_by(stats.committed_events.saturating_sub(m.committed.get()));
    if let Some((size, idle)) = stats.pool {
        m.pool.get_or_create(&vec![("state", "idle".to_string())]).set(idle as i64);
        m.pool.get_or_create(&vec![("state", "in_use".to_string())]).set(size.saturating_sub(idle) as i64);
    }
    m.memory.set(resident_bytes());
    m.live.set(st.live_streams.load(std::sync::atomic::Ordering::Relaxed) as i64);
    if let Some(w) = super::witness::health(st) {
        m.witness_lag.set(w.lag_seconds as f64);
    }
    let Ok(orgs) = st.store.orgs().await else { return };
    for org in orgs.iter().take(MAX_ORGS) {
        let label = m.org(&org.slug);
        let end = st.store.log_end(&org.slug).await.unwrap_or(0);
        let signed = st.store.checkpoint(&org.slug, None).await.ok().flatten().map_or(0, |c| c.size);
        m.unsigned.get_or_create(&vec![("org", label.clone())]).set(end.saturating_sub(signed) as i64);
        for s in st.store.streams(Some(&org.slug)).await.unwrap_or_default() {
            let labels = vec![("org", label.clone()), ("stream", s.name.clone())];
            m.stream_lag.get_or_create(&labels).set(end.saturating_sub(s.cursor) as i64);
            m.stream_failures.get_or_create(&labels).set(s.failed as i64);
        }
    }
}
