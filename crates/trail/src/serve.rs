//! `trail serve`: the server with its background jobs, the open-file limit it needs,
//! and the signals that stop it.

use anyhow::{bail, Context, Result};
use trail_server::{work::demo, AppState, ServerConfig};
use trail_store::{DynStore, KeyScope};

use crate::{
    config::Config,
    keys::new_key,
    log::now,
    store::{open_store, signing_key},
};

pub(crate) async fn serve(config: Config, demo: bool) -> Result<()> {
    raise_file_limit(config.connections.max_connections);
    // The archive first: a bucket that cannot be reached stops the start, naming why.
    let retention = crate::archive::retention(&config).await?;
    let publish = crate::archive::publish(&config).await?;
    let sqlite = open_store(&config).await?;
    let store: DynStore = sqlite.clone();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(data_dir = %config.data_dir.display(), database = ?config.database, "store opened");
    if demo {
        if store.is_empty().await? {
            eprintln!("filling the empty store with demo events...");
            let n = demo::fill(&*store, now(), 30_000).await?;
            eprintln!("stored {n} demo events for {} organizations", demo::ORGS.len());
        }
        // The keys of an earlier demo start are revoked: each start prints fresh ones.
        let earlier = store.list_keys(Some("acme")).await?;
        let earlier: Vec<_> =
            earlier.into_iter().filter(|k| k.label == "demo" && !k.revoked && k.user_id.is_none()).collect();
        for k in &earlier {
            crate::keys::revoke_key(&store, k).await?;
        }
        let read = new_key(&*store, "acme", KeyScope::Read, "demo").await?.0;
        let platform = new_key(&*store, "acme", KeyScope::Platform, "demo").await?.0;
        println!("Trail is running at http://{addr}");
        println!("read key (organization acme): {read}");
        println!("platform key (every organization): {platform}");
        if !earlier.is_empty() {
            println!("(the {} keys printed by the previous demo start are revoked)", earlier.len());
        }
        println!("try: curl -H 'Authorization: Bearer {read}' 'http://{addr}/api/v1/events?category=auth&result=FAILED&limit=5'");
    } else {
        println!("Trail is running at http://{addr}");
    }
    let log = trail_server::LogKey { name: config.name.clone(), public: signing_key(&config, false)?.verifying_key() };
    if let Some(w) = &config.witness {
        let ours = log.verifier_key(trail_store::installation::LOG_NAME);
        if !w.policy.logs.iter().any(|l| l.vkey == ours) {
            bail!(
                "[witness] policy: no `log` line names this installation's log; add `log {ours}` \
                 (trail keys verifier --org _installation)"
            );
        }
        if !w.policy.witnesses.iter().any(|w| w.url.is_some()) {
            bail!("[witness] policy: no witness has a URL to submit to (`witness NAME VKEY URL`)");
        }
    }
    let server_config = ServerConfig {
        limits: config.limits,
        log: Some(log),
        insecure_cookies: config.insecure_cookies,
        system_org: None,
        audit_reads: true,
        exports: config.exports.clone(),
        retention,
        publish,
        metrics: config.metrics.clone(),
        connections: config.connections.clone(),
        verify_at_minute: config.verify_at_minute,
        public_url: config.public_url.clone(),
        alerts: config.alerts.clone(),
        streams: config.streams.clone(),
        housekeeping: true,
        transparency_public: config.transparency_public,
        without_installation_log: false,
        witness: config.witness.clone(),
    };
    let state = AppState::new(store, server_config, trail_server::system_clock());
    if let Some(b) = trail_server::bootstrap(&state, "main").await.map_err(|e| anyhow::anyhow!("{e:?}"))? {
        println!("First start: platform administrator {} (organization {})", b.email, b.org);
        println!("one-time password (shown only now; change it at first login): {}", b.one_time_password);
    }
    if let Some(addr) = config.metrics.listen {
        let metrics = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("[metrics] listen: cannot listen on {addr}"))?;
        println!("metrics at http://{}/metrics", metrics.local_addr()?);
        let (state, stop) = (state.clone(), state.shutdown_token());
        tokio::spawn(async move {
            if let Err(e) = trail_server::serve_metrics(metrics, state, async move { stop.cancelled().await }).await {
                tracing::warn!(error = %e, "the metrics listener stopped");
            }
        });
    }
    trail_server::serve(listener, state, shutdown_signal()).await?;
    sqlite.close();
    Ok(())
}

/// Raises the open-file limit to its maximum, so that the connection cap, not the
/// process's descriptors, is what bounds open connections; warns if the cap is above it.
pub(crate) fn raise_file_limit(max_connections: usize) {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if let Some(max) = limit.maximum {
        limit.current = Some(max);
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
        }
    }
    let now = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    if (max_connections as u64).saturating_add(256) > now {
        tracing::warn!(max_connections, open_files = now, "max_connections is above what the open-file limit allows");
    }
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
