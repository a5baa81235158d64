//! A real Prometheus server (Debian's `prometheus`, started by the test on loopback)
//! scrapes `trail serve`'s `[metrics] listen` address; its HTTP API then answers
//! `trail_events_ingested_total` with what was ingested.

use crate::support::{self, run_ok, spawn_served};

use std::{
    net::TcpListener,
    process::{Command, Stdio},
};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn prometheus_scrapes_trail_and_sees_the_events_ingested() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let metrics_port = free_port();
    std::fs::write(d.join("trail.toml"), format!("[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n")).unwrap();
    let trail = |args: &[&str]| {
        let mut c = support::trail(d);
        c.arg("--config").arg(d.join("trail.toml")).args(args);
        c
    };
    let key = run_ok(&mut trail(&["keys", "create", "--org", "acme", "--scope", "ingest"])).trim().to_string();
    let served = spawn_served(&mut trail(&["serve", "--listen", "127.0.0.1:0"]));
    let prom_port = free_port();
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: trail\n    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"
    );
    std::fs::write(d.join("prometheus.yml"), config).unwrap();
    let mut prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", d.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", d.join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus (Debian's package) must be installed for this test");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let found = rt.block_on(async {
        let http = reqwest::Client::new();
        let body: String =
            (0..25).map(|i| format!("{{\"action\":\"user:update\",\"details\":{{\"n\":{i}}}}}\n")).collect();
        let r = http.post(format!("{}/api/v1/events", served.base)).bearer_auth(&key).body(body).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let url = format!("http://127.0.0.1:{prom_port}/api/v1/query?query=trail_events_ingested_total");
        support::until("Prometheus to have scraped trail_events_ingested_total", async || {
            let v: serde_json::Value = http.get(&url).send().await.ok()?.json().await.ok()?;
            let result = v["data"]["result"].as_array()?.first()?.clone();
            let value: f64 = result["value"][1].as_str()?.parse().ok()?;
            (value >= 25.0).then_some(result)
        })
        .await
    });
    let _ = prometheus.kill();
    let _ = prometheus.wait();
    assert_eq!(found["metric"]["org"], "acme", "{found}");
    assert_eq!(found["metric"]["job"], "trail", "{found}");
}
