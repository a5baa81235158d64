//! Appends committed by other Trail processes on the same database, relayed from
//! `LISTEN trail_appends` to this process's live views.

use tokio_postgres::NoTls;

/// Relays `trail_appends` notifications of other processes until the store is dropped;
/// reconnects after a second when the connection is lost.
pub(super) async fn listen(
    url: String,
    origin: String,
    tx: tokio::sync::broadcast::Sender<crate::AppendedRange>,
    alive: std::sync::Weak<()>,
) {
    use futures::StreamExt;
    while alive.strong_count() > 0 {
        if let Ok((client, mut conn)) = tokio_postgres::connect(&url, NoTls).await {
            let (ntx, mut nrx) = tokio::sync::mpsc::unbounded_channel::<String>();
            let driver = tokio::spawn(async move {
                let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
                while let Some(m) = messages.next().await {
                    match m {
                        Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                            if ntx.send(n.payload().to_string()).is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(_) => return,
                    }
                }
            });
            if client.batch_execute("LISTEN trail_appends").await.is_ok() {
                loop {
                    let payload = tokio::select! {
                        p = nrx.recv() => match p { Some(p) => p, None => break },
                        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {
                            if alive.strong_count() == 0 { break } else { continue }
                        }
                    };
                    let Ok(v) = serde_json::from_str::<serde_json::Value>(&payload) else { continue };
                    if v["origin"].as_str() == Some(origin.as_str()) {
                        continue;
                    }
                    let range = crate::AppendedRange {
                        org: v["org"].as_str().unwrap_or_default().to_string(),
                        from: v["from"].as_u64().unwrap_or(0),
                        to: v["to"].as_u64().unwrap_or(0),
                    };
                    let _ = tx.send(range);
                }
            }
            driver.abort();
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}
